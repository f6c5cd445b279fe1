-- Random batches of BATCH events for report benchmarks: one partner, USERS distinct users,
-- 4 subsystems (sub1..sub4), 50 event types, timestamps spread over the DAYS days before
-- START (epoch seconds, default now). KEY comes from the environment.
local size = tonumber(os.getenv("BATCH") or "100")
local users = tonumber(os.getenv("USERS") or "200000")
local span = tonumber(os.getenv("DAYS") or "30") * 86400
local start = tonumber(os.getenv("START") or os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("KEY")

function setup(thread)
  thread:set("id", math.random(1, 1000000))
end

function init()
  math.randomseed(os.time() + (id or 0))
end

function request()
  local parts = {}
  for i = 1, size do
    local at = os.date("!%Y-%m-%dT%H:%M:%SZ", start - math.random(1, span))
    parts[i] = string.format(
      '{"eventType":"type_%d","userId":"user_%d","subsystem":"sub%d","timestamp":"%s","properties":{"n":%d}}',
      math.random(1, 50), math.random(1, users), math.random(1, 4), at, i)
  end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

function response(status, headers, body)
  if status ~= 202 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
