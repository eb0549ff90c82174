-- Lists streams by name: ?1 a name prefix, ?2 the least name past every
-- name with that prefix (NULL: none), ?3 the name to start after (NULL: from
-- the first), ?4 how many. TEXT compares bytewise, so the range and the
-- order walk the unique index on (stream_id, stream_version), and each
-- stream's version is its last entry there.
SELECT stream_id, max(stream_version) AS version
FROM es_events
WHERE stream_id >= ?1
  AND (?2 IS NULL OR stream_id < ?2)
  AND (?3 IS NULL OR stream_id > ?3)
GROUP BY stream_id
ORDER BY stream_id
LIMIT ?4
