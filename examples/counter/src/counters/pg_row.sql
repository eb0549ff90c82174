SELECT value, version, position FROM counters WHERE id = $1;
