-- Deletes document ?2 of projection ?1, if it exists.
DELETE FROM es_documents WHERE projection = ?1 AND id = ?2
