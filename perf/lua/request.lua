-- wrk script: sends PIPELINE copies of one request per write (1 = no pipelining).
-- Environment: METHOD (GET/POST), BODY (for POST), PIPELINE (default 1).
local method = os.getenv("METHOD") or "GET"
local body = os.getenv("BODY")
local depth = tonumber(os.getenv("PIPELINE") or "1")
local batch

init = function(args)
  local headers = {}
  if body ~= nil and body ~= "" then
    headers["Content-Type"] = "application/json"
  else
    body = nil
  end
  local one = wrk.format(method, wrk.path, headers, body)
  local parts = {}
  for i = 1, depth do parts[i] = one end
  batch = table.concat(parts)
end

request = function()
  return batch
end
