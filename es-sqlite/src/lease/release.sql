-- Gives lease (?1, ?2, token ?3) up by expiring it now. The row stays, so
-- the next acquisition still gets a larger token. Nothing happens if the
-- lease was lost meanwhile.
UPDATE es_leases
SET expires_at = {now}
WHERE name = ?1
  AND owner = ?2
  AND token = ?3
  AND expires_at > {now}
