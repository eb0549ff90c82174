#!lua flags=no-writes
-- Reads up to `limit` events of one stream from version `from` (inclusive),
-- forward or backward, in one step (so the page is one consistent view).
--
-- KEYS[1] {ns}:stream:<s>  the stream's positions in version order (a list)
-- KEYS[2] {ns}:events      the global log (a stream; entry id <position>-0)
-- ARGV[1] "forward" or "backward"
-- ARGV[2] from: a version, in decimal (backward from past the end starts
--         at the newest event)
-- ARGV[3] limit, in decimal (at least 1)
--
-- Reply: {version, position, entry, version, position, entry, ..} in read
-- order, where position is the list element as stored and entry the log's
-- entry ({entry id, {field, value, ..}}) or false if there is none (the
-- caller reports that as corruption). Huge `from` or `limit` values lose
-- precision as Lua numbers, but every index computed here is first clamped
-- to the list's length, so it is exact.

local len = redis.call('LLEN', KEYS[1])
local from = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local first, last, step
if ARGV[1] == 'forward' then
  first = math.max(from, 1)
  if first > len then
    return {}
  end
  last = first + math.min(limit, len - first + 1) - 1
  step = 1
else
  first = math.min(from, len)
  if first < 1 then
    return {}
  end
  last = first - math.min(limit, first) + 1
  step = -1
end

local low, high = math.min(first, last), math.max(first, last)
local positions = redis.call('LRANGE', KEYS[1], low - 1, high - 1)
local reply = {}
for version = first, last, step do
  local position = positions[version - low + 1]
  local entry = false
  if tonumber(position) then
    entry = redis.call('XRANGE', KEYS[2], position .. '-0', position .. '-0')[1] or false
  end
  reply[#reply + 1] = version
  reply[#reply + 1] = position
  reply[#reply + 1] = entry
end
return reply
