-- wrk script: POST /ingest with a new event_id on every request, so each
-- request is a new event to store (a repeated id would take the cheaper
-- duplicate path). Ids are <run>-<thread>-<n>; the run name comes after `--`
-- on wrk's command line and must differ between runs on one database.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

function init(args)
  run = args[1] or tostring(os.time())
  n = 0
  services = {"checkout", "search", "auth", "payments", "catalog", "email", "cart", "gateway"}
end

function request()
  n = n + 1
  local body = string.format(
    '{"event_id":"%s-%d-%d","timestamp":"2026-11-29T10:%02d:%02d.%03dZ","service":"%s",' ..
    '"message":"GET /api/articles/how-to-train-your-dragon 200 in 3 ms (request %d)",' ..
    '"metadata":{"host":"web-%d","region":"eu-west-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}}',
    run, thread_no, n, math.floor(n / 60000) % 60, math.floor(n / 1000) % 60, n % 1000, services[n % 8 + 1], n, n % 16)
  return wrk.format("POST", "/ingest", {["Content-Type"] = "application/json"}, body)
end
