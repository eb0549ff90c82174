#!lua flags=no-writes
-- The unexpired lease on a name, if any (server clock).
--
-- KEYS[1] {ns}:lease:<name>  (a hash: owner, token, expires)
--
-- Reply: {owner, token}, or nil when nobody holds it.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local lease = redis.call('HMGET', KEYS[1], 'owner', 'token', 'expires')
if lease[1] and (tonumber(lease[3]) or 0) > now then
  return {lease[1], lease[2]}
end
return false
