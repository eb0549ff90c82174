INSERT INTO {schema}.checkpoints (projection, position) VALUES ($1, $2)
ON CONFLICT (projection) DO UPDATE SET position = EXCLUDED.position, updated_at = statement_timestamp()
