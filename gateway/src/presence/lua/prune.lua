-- Drop expired conns (their node died or lost Redis for longer than the TTL).
-- Returns the ids of users who have no conn left in the room.
local gone = {}
for _, conn in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms())) do
  local user = forget(conn)
  if user then table.insert(gone, user) end
end
return gone
