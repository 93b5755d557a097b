-- wrk script: sends the raw requests of MIX_FILE (NUL-separated, written by
-- perf/api.py) in order, round-robin, each wrk thread starting at its own
-- offset. Counts non-2xx answers by status, printed at the end.
local requests = {}
local next_index = 1
local statuses = {}

init = function(args)
  local file = assert(io.open(os.getenv("MIX_FILE"), "rb"))
  local data = file:read("*a")
  file:close()
  local start = 1
  while true do
    local nul = string.find(data, "\0", start, true)
    if nul == nil then break end
    if nul > start then requests[#requests + 1] = string.sub(data, start, nul - 1) end
    start = nul + 1
  end
  next_index = (tonumber(os.getenv("MIX_OFFSET") or "0") + math.random(#requests)) % #requests + 1
end

request = function()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end
