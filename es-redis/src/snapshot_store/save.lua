#!lua
-- Stores a snapshot unless the stored one is newer (an equal version
-- replaces it, as in every other store).
--
-- KEYS[1] {ns}:snapshot:<stream>  (a hash)
-- ARGV[1] aggregate type, ARGV[2] stream version (decimal), ARGV[3] schema
-- version, ARGV[4] state (JSON text), ARGV[5] taken at (microseconds)
--
-- Reply: 1 if stored, 0 if a newer one was kept. A stored version that is
-- not a number (edited by hand) is replaced.
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '')
if stored and stored > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'aggregate', ARGV[1], 'version', ARGV[2], 'schema', ARGV[3], 'state', ARGV[4], 'at', ARGV[5])
return 1
