-- The newest position; 0 when there are no events.
SELECT coalesce(max(global_position), 0) FROM es_events
