-- Takes the lease on $1 for owner $2 for $3 microseconds, in one statement:
-- a new name, an expired lease or the owner's own unexpired lease. The
-- conflicting row is locked and the WHERE re-checked against its newest
-- version, so two owners racing cannot both win. Every acquisition, the
-- owner's own included, increments the token, so a commit fenced with the
-- owner's earlier token is refused (a node restarted under the same owner
-- id must not inherit the token its earlier run may still commit under).
-- It changes the token, part of a key (migration 5), so it waits for a
-- fenced commit that holds the row FOR KEY SHARE (projection_store/
-- fence.sql); a renewal changes no key and does not. Two first
-- acquisitions of a name can also meet on that key: the store asks again.
-- No row comes back when another owner holds it.
INSERT INTO {schema}.leases AS l (name, owner, token, expires_at, acquired_at)
VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond', clock_timestamp())
ON CONFLICT (name) DO UPDATE
SET token = l.token + 1,
    acquired_at = excluded.acquired_at,
    owner = excluded.owner,
    expires_at = excluded.expires_at
WHERE l.expires_at <= clock_timestamp() OR l.owner = excluded.owner
RETURNING token
