-- Subscription leases: each subscription runs on one node at a time.
-- `expires_at` is on the database clock, so nodes with skewed clocks agree.
-- A row is never deleted (a release only expires it), so `token` keeps
-- growing with every new acquisition of a name.
CREATE TABLE {schema}.leases (
    name        text        COLLATE "C" PRIMARY KEY,
    owner       text        NOT NULL,
    token       bigint      NOT NULL CHECK (token > 0),
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
