-- Checkpoints become one record per subscription name, handlers included,
-- with the end of a running replay in a column of its own.
--
-- Before this step a handler's checkpoint was stored under the name
-- `handler:<name>`, and the end of its replay as a document `replay-until`
-- in the namespace `handler:<name>`. Both move to the handler's own name.
ALTER TABLE {schema}.checkpoints ADD COLUMN replay_until bigint;

UPDATE {schema}.checkpoints c
SET replay_until = (
        SELECT CASE WHEN jsonb_typeof(d.doc) = 'number' THEN (d.doc #>> '{}')::numeric::bigint END
        FROM {schema}.documents d
        WHERE d.projection = c.projection AND d.id = 'replay-until'
    )
WHERE c.projection LIKE 'handler:%';

UPDATE {schema}.checkpoints
SET projection = substr(projection, length('handler:') + 1)
WHERE projection LIKE 'handler:%';

DELETE FROM {schema}.documents WHERE projection LIKE 'handler:%' AND id = 'replay-until';
