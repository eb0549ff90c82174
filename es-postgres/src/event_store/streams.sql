-- Lists streams by name: $1 a name prefix, $2 the first name past the
-- prefix's range (null: no end), $3 the name to start after (null: from the
-- first), $4 how many. Names sort bytewise (COLLATE "C"), so the range and
-- the order walk the unique index on (stream_id, stream_version); each
-- stream's version is its last entry there.
SELECT stream_id, max(stream_version) AS version
FROM {schema}.events
WHERE stream_id >= $1
  AND ($2::text IS NULL OR stream_id < $2)
  AND ($3::text IS NULL OR stream_id > $3)
GROUP BY stream_id
ORDER BY stream_id
LIMIT $4
