-- GCRA, the generic cell rate algorithm (ITU-T I.371; the algorithm of redis-cell and
-- of the governor crate), kept in Redis so every instance shares one limit.
-- KEYS[1]: the limited key. ARGV[1]: the emission interval (µs per request, 1/rate);
-- ARGV[2]: the burst (requests); ARGV[3]: how many requests the caller would like to
-- take at once (a lease it spends locally). Returns how many it may take (at least 1,
-- at most ARGV[3], all counted now), or minus the µs until one would conform. The
-- clock is the server's, so the instances' clocks never matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local free = math.floor((tolerance - (tat - now)) / interval)
if free < 1 then
  return -math.max(1, math.ceil(tat + interval - now - tolerance))
end
local take = math.min(free, tonumber(ARGV[3]))
tat = tat + take * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return take
