-- A unit of work in one statement, hence one round trip and its own
-- transaction: the fence, the net document changes and the checkpoint.
-- $1 projection; $2/$3 ids and documents to upsert; $4 ids to delete;
-- $5 whether there is a fence, $6 its lease, $7 its token (null: one no
-- bigint holds); $8 whether there is a checkpoint, $9 its position, $10
-- the end of a running replay.
--
-- The fence is read as fence.sql reads it (FOR KEY SHARE, so a takeover
-- waits for this statement's commit, and one under way is waited for and
-- its row read); every write runs only when it holds, and the first column says
-- whether it did. A lease with no row here is kept elsewhere: it holds.
-- Data-modifying CTEs always run to completion; `allowed` is computed once.
WITH fence AS (
    SELECT coalesce(token = $7, false) AND expires_at > clock_timestamp() AS held
    FROM {schema}.leases
    WHERE $5 AND name = $6
    FOR KEY SHARE
), allowed AS (
    SELECT NOT EXISTS (SELECT 1 FROM fence WHERE NOT held) AS ok
), upserted AS (
    INSERT INTO {schema}.documents AS d (projection, id, doc)
    SELECT $1, u.id, u.doc FROM unnest($2::text[], $3::jsonb[]) AS u(id, doc)
    WHERE (SELECT ok FROM allowed)
    ON CONFLICT (projection, id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = statement_timestamp()
    RETURNING 1
), deleted AS (
    DELETE FROM {schema}.documents
    WHERE projection = $1 AND id = ANY($4::text[]) AND (SELECT ok FROM allowed)
    RETURNING 1
), checkpoint AS (
    INSERT INTO {schema}.checkpoints (projection, position, replay_until)
    SELECT $1, $9, $10 WHERE $8 AND (SELECT ok FROM allowed)
    ON CONFLICT (projection) DO UPDATE
    SET position = EXCLUDED.position, replay_until = EXCLUDED.replay_until, updated_at = statement_timestamp()
    RETURNING 1
)
SELECT ok, (SELECT count(*) FROM upserted) + (SELECT count(*) FROM deleted) + (SELECT count(*) FROM checkpoint)
FROM allowed
