//! Committing a unit of work in one statement: the fence, the net document
//! changes and the checkpoint in one round trip (`commit_unit.sql`), where
//! a transaction of its own would take six (acquire, begin, fence,
//! documents, checkpoint, commit).

use std::collections::HashMap;

use es_core::error::ProjectionError;
use es_core::store::{DocumentChange, UnitOfWork};
use es_core::GlobalPosition;
use serde_json::Value;
use sqlx::types::Json;

use super::{backend, PgProjectionStore};

/// The net effect of a list of changes (the last change per id wins), as
/// the arrays the statements bind.
pub(super) struct NetChanges {
    pub(super) put_ids: Vec<String>,
    pub(super) put_docs: Vec<Json<Value>>,
    pub(super) deleted: Vec<String>,
}

impl NetChanges {
    pub(super) fn of(changes: Vec<DocumentChange>) -> Self {
        let mut last: HashMap<String, Option<Value>> = HashMap::with_capacity(changes.len());
        for change in changes {
            match change {
                DocumentChange::Put { id, document } => last.insert(id, Some(document)),
                DocumentChange::Delete { id } => last.insert(id, None),
            };
        }
        let mut net = Self { put_ids: Vec::new(), put_docs: Vec::new(), deleted: Vec::new() };
        for (id, document) in last {
            match document {
                Some(document) => {
                    net.put_ids.push(id);
                    net.put_docs.push(Json(document));
                }
                None => net.deleted.push(id),
            }
        }
        net
    }
}

/// `position` as the bigint column stores it, or an error naming the
/// projection if it does not fit.
pub(super) fn bigint(projection: &str, position: GlobalPosition) -> Result<i64, ProjectionError> {
    i64::try_from(position.get())
        .map_err(|_| backend(format!("checkpoint {position} of `{projection}` does not fit a bigint")))
}

impl PgProjectionStore {
    /// [`ProjectionStore::commit`](es_core::store::ProjectionStore::commit):
    /// all of `work` or nothing, refused with `Fenced` (nothing stored) if
    /// its fence does not hold.
    pub(super) async fn commit_unit(
        &self,
        projection: &str,
        work: UnitOfWork,
    ) -> Result<(), ProjectionError> {
        // `after` is for table projections' transactions (transactions.rs).
        let UnitOfWork { changes, checkpoint, fence, after: _ } = work;
        let NetChanges { put_ids, put_docs, deleted } = NetChanges::of(changes);
        let position = checkpoint.map(|c| bigint(projection, c.position)).transpose()?;
        let until =
            checkpoint.and_then(|c| c.replay_until).map(|until| bigint(projection, until)).transpose()?;
        let statement = sqlx::query_as(self.inner.sql.commit_unit.clone())
            .bind(projection)
            .bind(&put_ids)
            .bind(&put_docs)
            .bind(&deleted)
            .bind(fence.is_some())
            .bind(fence.as_ref().map(|f| f.lease.as_str()))
            // A token past bigint was never handed out by the lease table: null.
            .bind(fence.as_ref().and_then(|f| i64::try_from(f.token).ok()))
            .bind(checkpoint.is_some())
            .bind(position)
            .bind(until);
        let (held, _written): (bool, i64) =
            self.inner.calls.run(async |conn| statement.fetch_one(conn).await).await.map_err(backend)?;
        match fence {
            Some(fence) if !held => Err(ProjectionError::Fenced {
                projection: projection.to_owned(),
                lease: fence.lease,
                token: fence.token,
            }),
            _ => Ok(()),
        }
    }
}
