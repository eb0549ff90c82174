-- ?1 counter id, ?2 stream version of `Created`, ?3 its global position.
-- A counter created again (the event delivered again) keeps its row.
INSERT INTO counters (id, value, version, position) VALUES (?1, 0, ?2, ?3)
ON CONFLICT (id) DO NOTHING;
