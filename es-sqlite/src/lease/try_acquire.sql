-- Takes the lease on ?1 for owner ?2 for ?3 microseconds, in one
-- statement (one write transaction): a new name, an expired lease or the
-- owner's own unexpired lease. Every acquisition, the owner's own included,
-- takes a token above every token of the table, so tokens strictly
-- increase (also across names) and a commit fenced with the owner's earlier
-- token is refused (a node restarted under the same owner id must not
-- inherit the token its earlier run may still commit under). No row comes
-- back when another owner holds it. SQLite has one writer at a time, so two
-- owners racing cannot both win.
INSERT INTO es_leases (name, owner, token, expires_at, acquired_at)
VALUES (?1, ?2, (SELECT coalesce(max(token), 0) + 1 FROM es_leases), {now} + ?3, {now})
ON CONFLICT (name) DO UPDATE
SET token = excluded.token,
    acquired_at = excluded.acquired_at,
    owner = excluded.owner,
    expires_at = excluded.expires_at
WHERE es_leases.expires_at <= {now} OR es_leases.owner = excluded.owner
RETURNING token
