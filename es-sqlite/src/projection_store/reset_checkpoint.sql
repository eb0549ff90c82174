-- Deletes the checkpoint of subscription ?1 (for a rebuild).
DELETE FROM es_checkpoints WHERE projection = ?1
