#!lua
-- Commits a projection's unit of work: document changes and checkpoint, all
-- or nothing, after checking its fence (Redis runs one script at a time, so
-- no lease can change hands between the check and the writes).
--
-- KEYS[1] {ns}:docs:<projection>    id -> document JSON (a hash)
-- KEYS[2] {ns}:docids:<projection>  the document ids (a sorted set, score 0)
-- KEYS[3] {ns}:checkpoints          subscription -> checkpoint (a hash)
-- KEYS[4] {ns}:lease:<name>         the fence's lease (a hash of owner,
--                                   token, expires); only when fenced
-- ARGV[1] the projection
-- ARGV[2] the checkpoint record (JSON text, see projection_store.rs), or ""
--         to leave the stored one
-- ARGV[3] the fence's token, in decimal, or "" when not fenced
-- ARGV[4] how many changes follow, then 3 arguments per change:
--         "put", id, document JSON | "delete", id, ""
--
-- Reply: "ok", or "fenced" (nothing written) when the fence's lease exists
-- here but is not held with that token, unexpired on the server clock. A
-- lease never taken in this namespace is kept elsewhere: the fence cannot
-- be checked and is ignored.

if ARGV[3] ~= '' then
  local lease = redis.call('HMGET', KEYS[4], 'token', 'expires')
  if lease[1] then
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
    if lease[1] ~= ARGV[3] or (tonumber(lease[2]) or 0) <= now then
      return 'fenced'
    end
  end
end

local n = tonumber(ARGV[4])
for i = 1, n do
  local base = 4 + (i - 1) * 3
  local id = ARGV[base + 2]
  if ARGV[base + 1] == 'put' then
    redis.call('HSET', KEYS[1], id, ARGV[base + 3])
    redis.call('ZADD', KEYS[2], 0, id)
  else
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
end
return 'ok'
