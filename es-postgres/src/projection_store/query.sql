SELECT id, doc FROM {schema}.documents
WHERE projection = $1
ORDER BY id
OFFSET $2
LIMIT $3
