-- The profiles of users with at least one unexpired conn, each once, at
-- most ARGV[1] of them (a bounded read, so that a join in a large room does
-- not cost a walk over every member); the first value is how many users are
-- present in all (HLEN of the user counts: users of a dead node count until
-- the next prune, at most ~2 s after their entries expired). Read-only: pruning (and announcing who left) is the
-- nodes' periodic job.
local max = tonumber(ARGV[1])
local seen, out = {}, {redis.call('HLEN', KEYS[3])}
local conns = redis.call('ZRANGEBYSCORE', KEYS[2], now_ms(), '+inf', 'LIMIT', 0, max * 2)
for _, conn in ipairs(conns) do
  if #out > max then break end
  local user = redis.call('HGET', KEYS[1], conn)
  if user and not seen[user] then
    seen[user] = true
    local profile = redis.call('HGET', KEYS[4], user)
    if profile then table.insert(out, profile) end
  end
end
return out
