-- Publish a room event and, for chat messages, keep the room's recent-messages
-- cache (the seed's `room:messages:{id}`: last 100, 24 h after the last one).
-- One round trip, atomic, and on a Redis Cluster the cache key and the channel
-- share the room's hash tag, so both live on one shard.
--
-- KEYS[1]  the room's recent-messages list
-- ARGV[1]  the room's channel
-- ARGV[2]  the MessagePack envelope
-- ARGV[3]  the message as JSON for the cache, or "" for other events
-- ARGV[4]  "1" for sharded pub/sub (SPUBLISH), "0" for PUBLISH
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[1], ARGV[3])
  redis.call('LTRIM', KEYS[1], 0, 99)
  redis.call('EXPIRE', KEYS[1], 86400)
end
if ARGV[4] == '1' then
  return redis.call('SPUBLISH', ARGV[1], ARGV[2])
end
return redis.call('PUBLISH', ARGV[1], ARGV[2])
