-- Document ?2 of projection ?1.
SELECT doc FROM es_documents WHERE projection = ?1 AND id = ?2
