-- GCRA (generic cell rate algorithm) over several budgets at once, atomically, on Redis'
-- clock: the cost is taken from every budget, or from none if any is exhausted.
-- KEYS[i]: a limiter key. ARGV[1]: period in microseconds, ARGV[2]: cost, ARGV[2 + i]: the
-- limit per period of KEYS[i].
-- Returns {allowed (0|1), index of the exhausted (or tightest) budget, its limit,
-- remaining, retry_after_us, reset_after_us}.
local period = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local updates = {}
local tightest, tightest_remaining, tightest_reset = 1, nil, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 + i])
  local interval = period / limit
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - period
  if allow_at > now then
    return {0, i, limit, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
  end
  local remaining = math.floor((now - allow_at) / interval)
  if tightest_remaining == nil or remaining < tightest_remaining then
    tightest, tightest_remaining, tightest_reset = i, remaining, math.ceil(new_tat - now)
  end
  updates[i] = new_tat
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%d', math.floor(updates[i])), 'PX', math.ceil((updates[i] - now) / 1000) + 1)
end
return {1, tightest, tonumber(ARGV[2 + tightest]), tightest_remaining, 0, tightest_reset}
