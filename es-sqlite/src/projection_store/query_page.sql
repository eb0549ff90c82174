-- One page of projection ?1's documents after id ?2 (NULL: from the
-- first), at most ?3, by id: containment queries filter page by page.
SELECT id, doc FROM es_documents
WHERE projection = ?1 AND (?2 IS NULL OR id > ?2)
ORDER BY id
LIMIT ?3
