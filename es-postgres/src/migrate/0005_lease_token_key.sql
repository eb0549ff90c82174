-- The token becomes part of a key of `leases` (the pair is unique because
-- the name alone is). A fenced commit locks its lease's row `FOR KEY
-- SHARE`; an update that changes a key column (a takeover: it gives the
-- lease a new token) waits for that lock, while one that does not (a
-- renewal, a release) goes through. So a subscription renews its lease
-- while its batch runs, and no other node takes the lease over until the
-- batch has committed or rolled back.
CREATE UNIQUE INDEX leases_name_token ON {schema}.leases (name, token);
