-- Stores the checkpoint of subscription ?1: position ?2, and ?3 the end of
-- a running replay (NULL: none).
INSERT INTO es_checkpoints (projection, position, replay_until, updated_at) VALUES (?1, ?2, ?3, {now})
ON CONFLICT (projection) DO UPDATE
SET position = excluded.position, replay_until = excluded.replay_until, updated_at = excluded.updated_at
