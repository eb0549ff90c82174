-- The stored documents of projection $1 among the ids $2 (text[]), in one
-- round trip: one index probe of the primary key (projection, id) per id.
-- Ids with no document are missing from the answer; an id listed twice
-- still matches its row once (ANY is a membership test, not a join).
SELECT id, doc FROM {schema}.documents
WHERE projection = $1 AND id = ANY($2)
