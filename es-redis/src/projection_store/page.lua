#!lua flags=no-writes
-- One page of a projection's documents in id order (byte order), read in
-- one step.
--
-- KEYS[1] {ns}:docs:<projection>    id -> document JSON (a hash)
-- KEYS[2] {ns}:docids:<projection>  the document ids (a sorted set, score 0)
-- ARGV[1] where to start: "-" (the first id) or "(" followed by the last id
--         of the previous page
-- ARGV[2] how many ids to skip, ARGV[3] how many to return (-1: all)
--
-- Reply: {ids, documents}, documents[i] being the JSON of ids[i] or false.
local ids = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], '+', 'LIMIT', ARGV[2], ARGV[3])
local documents = {}
-- unpack() is bounded by Lua's stack: fetch in chunks.
for i = 1, #ids, 1000 do
  local chunk = redis.call('HMGET', KEYS[1], unpack(ids, i, math.min(i + 999, #ids)))
  for j = 1, #chunk do
    documents[#documents + 1] = chunk[j]
  end
end
return {ids, documents}
