-- The profiles of users with at least one unexpired conn, each once.
-- Read-only: pruning (and announcing who left) is the nodes' periodic job.
local seen, out = {}, {}
for _, conn in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], now_ms(), '+inf')) do
  local user = redis.call('HGET', KEYS[1], conn)
  if user and not seen[user] then
    seen[user] = true
    local profile = redis.call('HGET', KEYS[4], user)
    if profile then table.insert(out, profile) end
  end
end
return out
