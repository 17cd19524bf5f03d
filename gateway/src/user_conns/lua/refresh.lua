-- Push the expiry of a user's connections on this node forward.
-- KEYS[1] ZSET conn -> expiry; ARGV[1] ttl ms, then the conns.
-- A conn whose claim expired meanwhile (Redis lost it) is claimed again,
-- even above the cap: it is already connected.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
