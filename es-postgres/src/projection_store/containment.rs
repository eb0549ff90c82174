//! Containment indexes: a partial GIN index over one projection's
//! documents, for the projections whose documents are queried by content.
//!
//! Documents carry no index over their content by default: every document
//! write would update it, and most projections are only read by id. A
//! projection whose documents are searched with
//! [`Documents::containing`](es_core::readside::Documents::containing) (or a
//! [`DocumentQuery`](es_core::store::DocumentQuery) with `contains`) asks
//! for one; without it such a query scans that projection's documents.

use es_core::error::ProjectionError;
use sqlx::AssertSqlSafe;

use super::{backend, PgProjectionStore};

impl PgProjectionStore {
    /// Indexes the documents of `projection` for containment queries
    /// (`doc @> filter`): a partial GIN index (`jsonb_path_ops`) over that
    /// projection's rows only, so the other projections' writes do not pay
    /// for it. Idempotent, and safe when several nodes call it at once
    /// (they take turns on an advisory lock); call it at start-up, after
    /// [`migrate`](Self::migrate). Creating it locks the documents table
    /// against writes while the index is built; once it exists, a call
    /// only looks it up.
    ///
    /// Containment queries are planned with the projection's name at hand,
    /// so they use the index once it exists.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the name holds a NUL character
    /// (Postgres text cannot) or the database fails; nothing is changed
    /// then.
    pub async fn index_containment(&self, projection: &str) -> Result<(), ProjectionError> {
        if projection.contains('\0') {
            return Err(backend(format!(
                "projection name {projection:?} holds a NUL character, which Postgres text cannot store"
            )));
        }
        let name = index_name(projection);
        // Already there (every start after the first): no lock on the
        // documents table, which CREATE INDEX IF NOT EXISTS would take.
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND indexname = $2)",
        )
        .bind(self.schema().as_str())
        .bind(&name)
        .fetch_one(self.pool())
        .await
        .map_err(backend)?;
        if exists {
            return Ok(());
        }
        let mut tx = self.inner.calls.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("es-postgres containment index {}", self.schema().as_str()))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // The server quotes the name (`%L`), whatever its characters.
        let statement: String = sqlx::query_scalar(
            "SELECT format('CREATE INDEX IF NOT EXISTS %I ON %I.documents \
             USING gin (doc jsonb_path_ops) WHERE projection = %L', $1, $2, $3)",
        )
        .bind(&name)
        .bind(self.schema().as_str())
        .bind(projection)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)
    }
}

/// The index's name: fixed per projection name (FNV-1a of its bytes), and
/// short enough for Postgres's 63-byte identifiers whatever the name.
fn index_name(projection: &str) -> String {
    let hash = projection.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("documents_contains_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::index_name;

    #[test]
    fn index_names_are_fixed_per_projection_and_fit_an_identifier() {
        assert_eq!(index_name("balances"), index_name("balances"));
        assert_ne!(index_name("balances"), index_name("balances2"));
        assert!(index_name(&"x".repeat(500)).len() <= 63);
    }
}
