#!lua
-- Gives a lease up by expiring it now, if ARGV[1] still holds it with token
-- ARGV[2]; otherwise (expired, taken over, released) nothing happens. The
-- hash stays, so the next acquisition still gets a larger token.
--
-- KEYS[1] {ns}:lease:<name>  (a hash: owner, token, expires)
-- ARGV[1] owner, ARGV[2] token (decimal)
--
-- Reply: 1 if it was expired here, 0 if nothing changed.
local lease = redis.call('HMGET', KEYS[1], 'owner', 'token')
if lease[1] == ARGV[1] and lease[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'expires', 0)
  return 1
end
return 0
