#!lua
-- Appends a batch of events to one stream, all or nothing.
--
-- Redis runs one script at a time, so nothing interleaves with the checks
-- and writes below: the expectation holds when the events are written, and
-- positions are handed out in the order readers see them, without gaps.
-- The shebang line (no flags) makes Redis refuse the whole script up front
-- when it is over maxmemory, instead of failing it after some writes.
--
-- KEYS[1] {ns}:events      the global log (a stream; entry id <position>-0)
-- KEYS[2] {ns}:position    the last position handed out (a string counter)
-- KEYS[3] {ns}:ids         event id -> position (a hash)
-- KEYS[4] {ns}:stream:<s>  the stream's positions in version order (a list)
-- KEYS[5] {ns}:streams     the stream ids (a sorted set, score 0)
-- ARGV[1] the stream id
-- ARGV[2] the expectation: "any", "none", "exists" or "exact"
-- ARGV[3] for "exact": the version, in decimal ("0" means no stream)
-- ARGV[4] how many events follow
-- then 6 arguments per event: event id, aggregate type, event type, schema
--   version, payload (JSON text), metadata (JSON text). They are stored as
--   they are; nothing here parses JSON (cjson's depth and number limits
--   would differ from serde_json's).
--
-- Replies (nothing is written unless the reply is "ok"; an error reply
-- comes before the first write):
--   {"taken", version, e1, .., eN}  some event id of the batch is stored;
--       version is the stream's current one (0: none) and ei the stored
--       entry of event i ({entry id, {field, value, ..}}), false if its id
--       is free, or "missing" if its id is indexed at a position the log
--       has no entry for (keys edited by hand). The caller decides whether
--       this is an exact retry.
--   {"wrong", version}  the stream is at version (0: none), which the
--       expectation does not accept.
--   {"ok", version, first, at}  stored: the events have versions
--       version-N+1 .. version and positions first .. first+N-1, recorded
--       at `at` (microseconds of the server clock). An empty batch replies
--       {"ok", version, 0, 0}.

local n = tonumber(ARGV[4])
local current = redis.call('LLEN', KEYS[4])

-- Stored ids first: an exact retry succeeds even after the stream moved on.
local taken = false
local stored = {}
for i = 1, n do
  local position = redis.call('HGET', KEYS[3], ARGV[4 + (i - 1) * 6 + 1])
  if position then
    taken = true
    local entry = tonumber(position) and redis.call('XRANGE', KEYS[1], position .. '-0', position .. '-0')[1]
    stored[i] = entry or 'missing'
  else
    stored[i] = false
  end
end
if taken then
  local reply = {'taken', current}
  for i = 1, n do
    reply[i + 2] = stored[i]
  end
  return reply
end

local kind = ARGV[2]
local accepted = kind == 'any'
  or (kind == 'none' and current == 0)
  or (kind == 'exists' and current > 0)
  or (kind == 'exact' and tonumber(ARGV[3]) == current)
if not accepted then
  return {'wrong', current}
end
if n == 0 then
  return {'ok', current, 0, 0}
end

-- Every key written below has been read by now (the stream list by LLEN,
-- the ids hash by HGET, the counter by GET just below, the log by the
-- guarded first XADD), except the stream ids set: read it too, so that a key
-- of the wrong type (keys edited by hand) fails the script here, before its
-- first write. An error reply from this script thus always means that
-- nothing was written (the caller relies on it: see outcome.rs).
if current == 0 then
  redis.call('ZSCORE', KEYS[5], ARGV[1])
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if not last then
  return redis.error_reply('ERR the position counter ' .. KEYS[2] .. ' does not hold a number')
end
local time = redis.call('TIME')
local at = tonumber(time[1]) * 1000000 + tonumber(time[2])

for i = 1, n do
  local base = 4 + (i - 1) * 6
  local position = last + i
  local fields = {
    'id', ARGV[base + 1], 'stream', ARGV[1], 'version', current + i,
    'aggregate', ARGV[base + 2], 'type', ARGV[base + 3], 'schema', ARGV[base + 4],
    'payload', ARGV[base + 5], 'metadata', ARGV[base + 6], 'at', at,
  }
  local entry_id = string.format('%d-0', position)
  if i == 1 then
    -- The first write: if the log is ahead of the counter (keys edited by
    -- hand), it fails here and nothing has been written.
    local added = redis.pcall('XADD', KEYS[1], entry_id, unpack(fields))
    if type(added) == 'table' and added.err then
      return redis.error_reply('ERR cannot add position ' .. entry_id .. ' to ' .. KEYS[1] .. ': ' .. added.err)
    end
  else
    redis.call('XADD', KEYS[1], entry_id, unpack(fields))
  end
  redis.call('RPUSH', KEYS[4], position)
  redis.call('HSET', KEYS[3], ARGV[base + 1], position)
end
if current == 0 then
  redis.call('ZADD', KEYS[5], 0, ARGV[1])
end
redis.call('SET', KEYS[2], last + n)
return {'ok', current + n, last + 1, at}
