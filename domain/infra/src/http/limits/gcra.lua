-- GCRA, the generic cell rate algorithm (ITU-T I.371; the algorithm of redis-cell and
-- of the governor crate), kept in Redis so every instance shares one limit.
-- KEYS[1]: the limited key. ARGV[1]: the emission interval (µs per request, 1/rate);
-- ARGV[2]: the burst (requests). Returns 0 when the request conforms (and counts it),
-- else how many µs until it would. The clock is the server's, so instances' clocks
-- never matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local ahead = tat + interval - now
if ahead > tolerance then
  return math.ceil(ahead - tolerance)
end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', math.ceil(ahead / 1000) + 1)
return 0
