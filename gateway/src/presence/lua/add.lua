-- ARGV[1] conn, ARGV[2] user id, ARGV[3] profile JSON, ARGV[4] ttl ms
-- Returns 1 when this is the user's first conn in the room.
local first = remember(ARGV[1], ARGV[2], ARGV[3], now_ms() + tonumber(ARGV[4]))
keep_keys(tonumber(ARGV[4]))
return first
