-- Takes the lease on ?1 for owner ?2 for ?3 microseconds, in one
-- statement (one write transaction): a new name, an expired lease or the
-- owner's own unexpired lease. Re-acquiring one's own unexpired lease
-- keeps its token; any other acquisition takes a token above every token
-- of the table, so tokens strictly increase (also across names). No row
-- comes back when another owner holds it. SQLite has one writer at a
-- time, so two owners racing cannot both win.
INSERT INTO es_leases (name, owner, token, expires_at, acquired_at)
VALUES (?1, ?2, (SELECT coalesce(max(token), 0) + 1 FROM es_leases), {now} + ?3, {now})
ON CONFLICT (name) DO UPDATE
SET token = CASE
        WHEN es_leases.owner = excluded.owner AND es_leases.expires_at > {now} THEN es_leases.token
        ELSE excluded.token
    END,
    acquired_at = CASE
        WHEN es_leases.owner = excluded.owner AND es_leases.expires_at > {now} THEN es_leases.acquired_at
        ELSE excluded.acquired_at
    END,
    owner = excluded.owner,
    expires_at = excluded.expires_at
WHERE es_leases.expires_at <= {now} OR es_leases.owner = excluded.owner
RETURNING token
