-- The checkpoint of projection ?1.
SELECT position FROM es_checkpoints WHERE projection = ?1
