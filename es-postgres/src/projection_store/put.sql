INSERT INTO {schema}.documents (projection, id, doc) VALUES ($1, $2, $3)
ON CONFLICT (projection, id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = statement_timestamp()
