#!lua
-- Extends a held lease by ARGV[3] microseconds from now (server clock) if
-- it is still held: same owner, same token, not expired.
--
-- KEYS[1] {ns}:lease:<name>  (a hash: owner, token, expires)
-- ARGV[1] owner, ARGV[2] token (decimal), ARGV[3] ttl in microseconds
--
-- Reply: 1 if renewed, 0 if the lease is lost.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local lease = redis.call('HMGET', KEYS[1], 'owner', 'token', 'expires')
if lease[1] == ARGV[1] and lease[2] == ARGV[2] and (tonumber(lease[3]) or 0) > now then
  redis.call('HSET', KEYS[1], 'expires', now + tonumber(ARGV[3]))
  return 1
end
return 0
