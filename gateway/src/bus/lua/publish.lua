-- Publish a room event and keep the room's recent-messages cache (protocol
-- v1's `room:messages:{id}`: last 100 entries, 24 h after the last one; the
-- entries' format is in src/recent_cache.rs). One round trip, atomic, and on
-- a Redis Cluster the cache key and the channel share the room's hash tag, so
-- both live on one shard.
--
-- KEYS[1]  the room's recent-messages list
-- ARGV[1]  the room's channel
-- ARGV[2]  the MessagePack envelope
-- ARGV[3]  the entry to push (a message, or an edit/deletion marker), or ""
-- ARGV[4]  "1" for sharded pub/sub (SPUBLISH), "0" for PUBLISH
-- ARGV[5]  the id of a message whose entries are replaced, or ""
-- ARGV[6]  the replacement (the message as it now is, with "rev")
-- ARGV[7]  the replacement's rev: only entries of a lower rev are replaced
if ARGV[5] ~= '' then
  local prefix = '{"id":' .. ARGV[5] .. ','
  local rev = tonumber(ARGV[7])
  local entries = redis.call('LRANGE', KEYS[1], 0, -1)
  for i, entry in ipairs(entries) do
    if string.sub(entry, 1, #prefix) == prefix then
      local ok, old = pcall(cjson.decode, entry)
      if ok and (tonumber(old['rev']) or 0) < rev then
        redis.call('LSET', KEYS[1], i - 1, ARGV[6])
      end
    end
  end
end
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[1], ARGV[3])
  redis.call('LTRIM', KEYS[1], 0, 99)
  redis.call('EXPIRE', KEYS[1], 86400)
end
if ARGV[4] == '1' then
  return redis.call('SPUBLISH', ARGV[1], ARGV[2])
end
return redis.call('PUBLISH', ARGV[1], ARGV[2])
