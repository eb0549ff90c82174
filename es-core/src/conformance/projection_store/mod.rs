//! Projection store cases: what every [`ProjectionStore`] must do.
//!
//! Run them all with [`projection_store_conformance!`](crate::projection_store_conformance).
//! Each case takes a fresh, empty store; the concurrent one clones it into
//! tasks, so clones must share their data.
//!
//! Document ids in these cases are lowercase ASCII letters and digits that
//! sort the same under any database collation, so "ordered by id" is
//! unambiguous.
//!
//! The cases live in files by subject: `documents` (get, put, delete,
//! queries) and `commits` (checkpoints, units of work, reset). This file
//! holds what they share.

use serde_json::Value;

mod commits;
mod documents;

pub use commits::*;
pub use documents::*;

use crate::store::{DocumentQuery, ProjectionStore, UnitOfWork};
use crate::GlobalPosition;

async fn get<S: ProjectionStore>(store: &S, projection: &str, id: &str) -> Option<Value> {
    store.get(projection, id).await.unwrap_or_else(|e| panic!("get `{projection}`/`{id}` failed: {e:?}"))
}

async fn put<S: ProjectionStore>(store: &S, projection: &str, id: &str, document: Value) {
    store
        .put(projection, id, document)
        .await
        .unwrap_or_else(|e| panic!("put `{projection}`/`{id}` failed: {e:?}"));
}

async fn query<S: ProjectionStore>(
    store: &S,
    projection: &str,
    query: DocumentQuery,
) -> Vec<(String, Value)> {
    store
        .query(projection, &query)
        .await
        .unwrap_or_else(|e| panic!("query of `{projection}` with {query:?} failed: {e:?}"))
}

async fn query_ids<S: ProjectionStore>(store: &S, projection: &str, q: DocumentQuery) -> Vec<String> {
    query(store, projection, q).await.into_iter().map(|(id, _)| id).collect()
}

async fn checkpoint<S: ProjectionStore>(store: &S, projection: &str) -> Option<GlobalPosition> {
    store
        .checkpoint(projection)
        .await
        .unwrap_or_else(|e| panic!("checkpoint of `{projection}` failed: {e:?}"))
        .map(|c| c.position)
}

async fn commit<S: ProjectionStore>(store: &S, projection: &str, work: UnitOfWork) {
    store.commit(projection, work).await.unwrap_or_else(|e| panic!("commit to `{projection}` failed: {e:?}"));
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}
