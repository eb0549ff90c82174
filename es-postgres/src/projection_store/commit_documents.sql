-- Applies a unit of work's net changes: upserts, then deletes.
WITH upserted AS (
    INSERT INTO {schema}.documents AS d (projection, id, doc)
    SELECT $1, u.id, u.doc FROM unnest($2::text[], $3::jsonb[]) AS u(id, doc)
    ON CONFLICT (projection, id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = statement_timestamp()
    RETURNING 1
), deleted AS (
    DELETE FROM {schema}.documents WHERE projection = $1 AND id = ANY($4::text[])
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted) + (SELECT count(*) FROM deleted)
