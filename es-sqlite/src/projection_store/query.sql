-- The documents of projection ?1 by id (bytewise), at most ?2 (-1: all)
-- after skipping ?3.
SELECT id, doc FROM es_documents
WHERE projection = ?1
ORDER BY id
LIMIT ?2 OFFSET ?3
