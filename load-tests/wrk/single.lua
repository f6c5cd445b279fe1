-- One event per request. KEY comes from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("KEY")
wrk.body = '{"eventType":"page_view","userId":"user_123","subsystem":"web","properties":{"page":"/home","referrer":"https://example.com","durationMs":1234}}'

function response(status, headers, body)
  if status ~= 202 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
