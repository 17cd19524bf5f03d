-- Take a place for a connection if the user holds fewer than the cap.
-- KEYS[1] ZSET conn -> expiry (ms since the epoch, Redis clock)
-- ARGV[1] conn, ARGV[2] cap, ARGV[3] ttl ms. Returns 1 (claimed) or 0 (full).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
