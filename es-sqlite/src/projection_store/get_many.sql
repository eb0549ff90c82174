-- The stored documents of projection ?1 among the ids ?2, a JSON array of
-- strings, in one statement: `json_each` turns the array into rows, and
-- each id is one probe of the primary key (projection, id). Ids with no
-- document are missing from the answer; `IN` is a membership test, so an
-- id listed twice matches its row once.
SELECT id, doc FROM es_documents
WHERE projection = ?1 AND id IN (SELECT value FROM json_each(?2))
