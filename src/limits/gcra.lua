-- GCRA (generic cell rate algorithm) over one key, atomically, on Redis' clock.
-- KEYS[1]: the limiter key. ARGV: period in microseconds, limit per period, cost.
-- Returns {allowed (0|1), remaining, retry_after_us, reset_after_us}.
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local interval = period / limit
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval * cost
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%d', math.floor(new_tat)), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), 0, math.ceil(new_tat - now)}
