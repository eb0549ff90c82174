-- A fenced commit's check, run first in its transaction: whether the lease
-- $1 is held (unexpired) with token $2. FOR KEY SHARE locks the row until
-- the transaction ends against a takeover (the upsert in
-- lease/try_acquire.sql gives a new token, and the token is part of a key:
-- migration 5), so the answer holds until this commit ends; a renewal or a
-- release changes no key and goes through. A takeover already under way is
-- waited for and its row read. No row comes back when no lease of that
-- name was ever taken here (the leases are kept elsewhere). $2 is null for
-- a token no bigint can hold, which the table never handed out.
SELECT coalesce(token = $2, false) AND expires_at > clock_timestamp() AS held
FROM {schema}.leases
WHERE name = $1
FOR KEY SHARE
