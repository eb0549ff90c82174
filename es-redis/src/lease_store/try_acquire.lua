#!lua
-- Takes the lease for ARGV[1] for ARGV[2] microseconds, on the server
-- clock: a name never taken, an expired lease, or the owner's own
-- unexpired lease. Every acquisition, the owner's own included, gets the
-- next token, so a commit fenced with the owner's earlier token is refused
-- (a node restarted under the same owner id must not inherit the token its
-- earlier run may still commit under). The hash is never deleted, so
-- tokens of a name strictly increase.
--
-- KEYS[1] {ns}:lease:<name>  (a hash: owner, token, expires in microseconds)
-- ARGV[1] owner, ARGV[2] ttl in microseconds (1 up to about 100 years, so
--         now + ttl stays an exact Lua number)
--
-- Reply: the token, or nil when another owner holds the lease.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local lease = redis.call('HMGET', KEYS[1], 'owner', 'token', 'expires')
local held = lease[1] and (tonumber(lease[3]) or 0) > now
if held and lease[1] ~= ARGV[1] then
  return false
end
local token = (tonumber(lease[2]) or 0) + 1
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token, 'expires', now + tonumber(ARGV[2]))
return token
