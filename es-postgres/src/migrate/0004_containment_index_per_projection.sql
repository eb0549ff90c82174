-- The GIN index over every projection's documents made every document
-- write update it (about 1.7x the cost of a batch upsert). Containment
-- queries now use a partial index per projection that asks for one
-- (`PgProjectionStore::index_containment`); without one they scan that
-- projection's documents by its primary-key prefix.
DROP INDEX IF EXISTS {schema}.documents_doc_idx;
