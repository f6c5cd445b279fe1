-- Random batches of BATCH events for report benchmarks: one partner, USERS distinct users,
-- 4 subsystems (sub1..sub4), 50 event types, over the DAYS days before START (epoch
-- seconds, default now). Time moves forward as requests go, EVENTS of them spanning the
-- DAYS (as live traffic would arrive; then it wraps around), so each write touches an
-- hour or two, not all of them. KEY comes from the environment.
local size = tonumber(os.getenv("BATCH") or "100")
local users = tonumber(os.getenv("USERS") or "200000")
local span = tonumber(os.getenv("DAYS") or "30") * 86400
local start = tonumber(os.getenv("START") or os.time())
local total = tonumber(os.getenv("EVENTS") or "10000000")
-- Where this run of wrk starts in the sequence (the events stored so far).
local offset = tonumber(os.getenv("OFFSET") or "0")
local threads = 2
local sent = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("KEY")

local thread_index = 0
function setup(thread)
  thread:set("id", thread_index)
  thread_index = thread_index + 1
end

function init()
  math.randomseed(os.time() + (id or 0))
  -- The threads take turns in the sequence, from where the last run of wrk stopped.
  sent = offset + (id or 0)
end

function request()
  local parts = {}
  for i = 1, size do
    local position = (sent % total) / total
    sent = sent + threads
    -- Up to 59 s of jitter, and still before START: every event is inside the range.
    local at = os.date("!%Y-%m-%dT%H:%M:%SZ", start - span + math.floor(position * (span - 60)) + math.random(0, 59))
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
