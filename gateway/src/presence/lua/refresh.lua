-- A node re-asserts its conns in a room (heartbeat, or after a reconnect).
-- ARGV[1] ttl ms, then triples: conn, user id, profile JSON.
-- Returns the profiles of users who were absent and are present again.
local ttl = tonumber(ARGV[1])
local expires_at = now_ms() + ttl
local back = {}
for i = 2, #ARGV, 3 do
  if remember(ARGV[i], ARGV[i + 1], ARGV[i + 2], expires_at) == 1 then
    table.insert(back, ARGV[i + 2])
  end
end
keep_keys(ttl)
return back
