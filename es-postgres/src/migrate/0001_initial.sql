-- Events. A row's global position is derived from the id of the
-- transaction that wrote it: (xid << 20) | index within the transaction.
-- Position order is therefore (xid, index) order, and a reader that stops
-- below the oldest transaction still in flight (pg_snapshot_xmin) never
-- skips an event that commits later. See the crate docs.
CREATE TABLE {schema}.events (
    global_position bigint      NOT NULL,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream_id       text        COLLATE "C" NOT NULL,
    stream_version  bigint      NOT NULL,
    aggregate_type  text        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  bigint      NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    recorded_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
    CONSTRAINT events_pkey PRIMARY KEY (global_position),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    -- Readers rely on this: a row's position lies in its transaction's range.
    CONSTRAINT events_position_in_transaction_range
        CHECK ((global_position >> 20) = transaction_id::text::bigint)
);

-- Events are append only. UPDATE, DELETE and TRUNCATE are refused unless
-- the session (or transaction, with SET LOCAL) says `es.allow_deletion = on`.
CREATE FUNCTION {schema}.events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF coalesce(current_setting('es.allow_deletion', true), '') = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'events are append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING HINT = 'run SET LOCAL es.allow_deletion = on in the transaction to change stored events deliberately';
END
$fn$;

CREATE TRIGGER events_append_only_rows
    BEFORE UPDATE OR DELETE ON {schema}.events
    FOR EACH ROW EXECUTE FUNCTION {schema}.events_append_only();

CREATE TRIGGER events_append_only_truncate
    BEFORE TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.events_append_only();

-- Snapshots: the newest per stream.
CREATE TABLE {schema}.snapshots (
    stream_id      text        COLLATE "C" PRIMARY KEY,
    aggregate_type text        NOT NULL,
    stream_version bigint      NOT NULL,
    schema_version bigint      NOT NULL,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL
);

-- Projection documents, keyed by (projection, id); ids sort bytewise.
CREATE TABLE {schema}.documents (
    projection text        COLLATE "C" NOT NULL,
    id         text        COLLATE "C" NOT NULL,
    doc        jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (projection, id)
);

CREATE INDEX documents_doc_idx ON {schema}.documents USING gin (doc jsonb_path_ops);

-- Projection checkpoints: the position of the last event fully handled.
CREATE TABLE {schema}.checkpoints (
    projection text        COLLATE "C" PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT statement_timestamp()
);
