-- Deletes the checkpoint of projection ?1 (for a rebuild).
DELETE FROM es_checkpoints WHERE projection = ?1
