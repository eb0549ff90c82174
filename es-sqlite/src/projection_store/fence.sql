-- A fenced commit's check, run first in its write transaction: whether
-- lease ?1 is held (unexpired on the database clock) with token ?2. The
-- transaction holds the file's write lock from its start, so no takeover,
-- renewal or release can land between this check and the commit. No row
-- comes back when no lease of that name was ever taken in this file (the
-- leases are kept elsewhere). ?2 is NULL for a token no SQLite integer can
-- hold, which the table never handed out.
SELECT coalesce(token = ?2, 0) AND expires_at > {now} AS held
FROM es_leases
WHERE name = ?1
