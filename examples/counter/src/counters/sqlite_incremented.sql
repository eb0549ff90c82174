-- ?1 counter id, ?2 increment, ?3 stream version of `Incremented`, ?4 its
-- global position. Changes the row only if it is at the version just
-- before (?3 - 1): an event delivered again changes nothing.
UPDATE counters SET value = value + ?2, version = ?3, position = ?4
WHERE id = ?1 AND version = ?3 - 1;
