-- Stores checkpoint ?2 of projection ?1.
INSERT INTO es_checkpoints (projection, position, updated_at) VALUES (?1, ?2, {now})
ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at
