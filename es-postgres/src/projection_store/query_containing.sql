SELECT id, doc FROM {schema}.documents
WHERE projection = $1 AND doc @> $4::jsonb
ORDER BY id
OFFSET $2
LIMIT $3
