-- Extends lease (?1, ?2, token ?3) by ?4 microseconds from now if it is
-- still held: not expired, and not taken (or re-taken) since under
-- another token.
UPDATE es_leases
SET expires_at = {now} + ?4
WHERE name = ?1
  AND owner = ?2
  AND token = ?3
  AND expires_at > {now}
