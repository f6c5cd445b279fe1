-- 100 browser page views a request, each with the context a browser library sends
-- (load-tests/ab_batch.sh). KEY comes from the environment.
local size = 100
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}
local events = {}
for i = 1, size do
  local agent = agents[(i % #agents) + 1]
  events[i] = '{"eventType":"page_view","userId":"user_' .. i .. '","subsystem":"web","properties":{"durationMs":1234},' ..
    '"context":{"userAgent":"' .. agent .. '","ip":"8.8.8.' .. (i % 200) .. '","page":{"url":"https://shop.example.com/p/' .. (i % 37) ..
    '?utm_source=news&utm_medium=email","referrer":"https://www.google.com/search?q=x"}}}'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("KEY")
wrk.body = '{"events":[' .. table.concat(events, ",") .. ']}'
