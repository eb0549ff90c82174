-- Extends lease ($1, $2, token $3) by $4 microseconds if it is still held:
-- not expired, and not taken (or re-taken) since under another token.
UPDATE {schema}.leases
SET expires_at = clock_timestamp() + $4 * interval '1 microsecond'
WHERE name = $1
  AND owner = $2
  AND token = $3
  AND expires_at > clock_timestamp()
