-- Shared by the presence scripts (prepended to them at build time).
-- KEYS[1] conns    HASH conn -> user id
-- KEYS[2] expiry   ZSET conn -> expiry, ms since the epoch (Redis server clock)
-- KEYS[3] users    HASH user id -> number of live conns
-- KEYS[4] profiles HASH user id -> profile JSON
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Forget one conn; returns its user id if that was the user's last conn.
local function forget(conn)
  local user = redis.call('HGET', KEYS[1], conn)
  redis.call('HDEL', KEYS[1], conn)
  redis.call('ZREM', KEYS[2], conn)
  if not user then return nil end
  if redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
    redis.call('HDEL', KEYS[3], user)
    redis.call('HDEL', KEYS[4], user)
    return user
  end
  return nil
end

-- Record one conn (or refresh its expiry); returns 1 if it is the user's first conn.
local function remember(conn, user, profile, expires_at)
  redis.call('ZADD', KEYS[2], expires_at, conn)
  if redis.call('HSETNX', KEYS[1], conn, user) == 0 then return 0 end
  redis.call('HSET', KEYS[4], user, profile)
  if redis.call('HINCRBY', KEYS[3], user, 1) == 1 then return 1 end
  return 0
end

-- Keys of a room nobody refreshes vanish on their own.
local function keep_keys(ttl_ms)
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl_ms * 3) end
end
