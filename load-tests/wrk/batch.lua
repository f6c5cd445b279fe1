-- BATCH events (default 100) per request. KEY comes from the environment.
local size = tonumber(os.getenv("BATCH") or "100")
local events = {}
for i = 1, size do
  events[i] = '{"eventType":"page_view","userId":"user_' .. i .. '","subsystem":"web","properties":{"page":"/home","referrer":"https://example.com","durationMs":1234}}'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("KEY")
wrk.body = '{"events":[' .. table.concat(events, ",") .. ']}'

function response(status, headers, body)
  if status ~= 202 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
