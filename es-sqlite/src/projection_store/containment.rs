//! Containment queries on SQLite: no index answers them, so a projection's
//! documents are read page by page in id order and filtered here.

use es_core::error::ProjectionError;
use es_core::store::{json_contains, DocumentQuery};
use serde_json::Value;

use super::SqliteProjectionStore;

const QUERY_PAGE: &str = include_str!("query_page.sql");

/// Documents read per page by a containment query, which SQLite cannot
/// answer with an index: it filters each page with [`json_contains`].
const CONTAINMENT_PAGE: i64 = 500;

impl SqliteProjectionStore {
    /// The documents matching a containment filter, read page by page.
    pub(super) async fn query_containing(
        &self,
        projection: &str,
        filter: &Value,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        let wanted = query.limit.map_or(usize::MAX, |limit| query.offset.saturating_add(limit));
        let mut matches = Vec::new();
        let mut after: Option<String> = None;
        while matches.len() < wanted {
            let rows = sqlx::query(QUERY_PAGE)
                .bind(projection)
                .bind(after.as_deref())
                .bind(CONTAINMENT_PAGE)
                .fetch_all(self.inner.db.readers())
                .await
                .map_err(|e| self.read_error(e))?;
            let full = rows.len() as i64 == CONTAINMENT_PAGE;
            for row in &rows {
                let (id, doc) = self.id_and_document(row, projection)?;
                if json_contains(&doc, filter) && matches.len() < wanted {
                    matches.push((id.clone(), doc));
                }
                after = Some(id);
            }
            if !full {
                break;
            }
        }
        Ok(matches.into_iter().skip(query.offset).collect())
    }
}
