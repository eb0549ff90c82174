-- Takes the lease on $1 for owner $2 for $3 microseconds, in one statement:
-- a new name, an expired lease or the owner's own unexpired lease. The
-- conflicting row is locked and the WHERE re-checked against its newest
-- version, so two owners racing cannot both win. Re-acquiring one's own
-- unexpired lease keeps its token; any other acquisition increments it.
-- No row comes back when another owner holds it.
INSERT INTO {schema}.leases AS l (name, owner, token, expires_at, acquired_at)
VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond', clock_timestamp())
ON CONFLICT (name) DO UPDATE
SET token = CASE
        WHEN l.owner = excluded.owner AND l.expires_at > clock_timestamp() THEN l.token
        ELSE l.token + 1
    END,
    acquired_at = CASE
        WHEN l.owner = excluded.owner AND l.expires_at > clock_timestamp() THEN l.acquired_at
        ELSE excluded.acquired_at
    END,
    owner = excluded.owner,
    expires_at = excluded.expires_at
WHERE l.expires_at <= clock_timestamp() OR l.owner = excluded.owner
RETURNING token
