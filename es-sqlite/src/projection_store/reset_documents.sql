-- Deletes every document of projection ?1 (for a rebuild).
DELETE FROM es_documents WHERE projection = ?1
