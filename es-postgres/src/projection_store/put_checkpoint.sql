-- Stores a subscription's checkpoint: $1 name, $2 position, $3 the end of
-- a running replay (null: none).
INSERT INTO {schema}.checkpoints (projection, position, replay_until) VALUES ($1, $2, $3)
ON CONFLICT (projection) DO UPDATE
SET position = EXCLUDED.position, replay_until = EXCLUDED.replay_until, updated_at = statement_timestamp()
