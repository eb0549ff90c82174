-- Creates or replaces document ?2 of projection ?1 with ?3 (JSON text).
INSERT INTO es_documents (projection, id, doc, updated_at) VALUES (?1, ?2, ?3, {now})
ON CONFLICT (projection, id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at
