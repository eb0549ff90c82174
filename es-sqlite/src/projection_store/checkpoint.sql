-- The checkpoint of subscription ?1: its position and the end of a
-- running replay (NULL: none).
SELECT position, replay_until FROM es_checkpoints WHERE projection = ?1
