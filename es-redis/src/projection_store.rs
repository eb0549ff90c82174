//! The Redis projection store: JSON documents in one hash per projection,
//! an id index for ordered paging, checkpoints in one hash, and a commit
//! script that checks the fence and writes everything in one step.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use es_core::error::{BoxError, ProjectionError};
use es_core::store::{json_contains, Checkpoint, DocumentChange, DocumentQuery, ProjectionStore, UnitOfWork};
use es_core::GlobalPosition;
use redis::{Script, Value};
use serde_json::Value as Json;

use crate::connection::{Bounded, RedisConnection};
use crate::event_store::{count_arg, UnexpectedReply};
use crate::namespace::RedisNamespace;

static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("projection_store/commit.lua")));
static PAGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("projection_store/page.lua")));

/// How many ids a containment query reads per step.
const FILTER_PAGE: usize = 256;

/// A [`ProjectionStore`] on Redis, keeping its keys under one
/// [`RedisNamespace`].
///
/// A projection's documents are one hash (`{ns}:docs:<projection>`, id →
/// JSON text) plus a sorted set of their ids (`{ns}:docids:<projection>`)
/// that keeps them in id order (byte order) for paging. Checkpoints are one
/// hash (`{ns}:checkpoints`). A unit of work commits as one Lua script, so
/// its changes and its checkpoint land together or not at all.
///
/// **Queries.** Without a filter, a page costs O(log N + page) on the
/// server and is read in one step. With [`DocumentQuery::contains`], Redis
/// cannot look inside the JSON: the store walks the projection's documents
/// in id order, 256 at a time, and filters them
/// here with [`json_contains`] (Postgres' `@>` semantics), stopping once
/// `offset + limit` documents matched. That costs O(N) reads and transfer
/// for a filter that matches little, and the steps are separate reads: a
/// commit landing meanwhile may show in later steps and not in earlier ones.
///
/// **Fencing.** A fenced unit of work is checked in the commit script
/// against the lease hash `{ns}:lease:<name>` that a [`RedisLeaseStore`]
/// on the same namespace keeps: unless the lease is held with the fence's
/// token and unexpired on the server clock, the commit is refused with
/// [`ProjectionError::Fenced`] and nothing is stored. Redis runs one script
/// at a time, so no takeover can slip between the check and the writes. A
/// fence naming a lease never taken in this namespace (leases kept
/// elsewhere) cannot be checked and is ignored; lease hashes are never
/// deleted, so once a name was leased here its commits stay fenced.
///
/// [`RedisLeaseStore`]: crate::RedisLeaseStore
#[derive(Clone)]
pub struct RedisProjectionStore {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConnection,
    namespace: RedisNamespace,
    checkpoints: String,
}

impl fmt::Debug for RedisProjectionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisProjectionStore")
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

fn backend(error: impl Into<BoxError>) -> ProjectionError {
    ProjectionError::Backend(error.into())
}

fn parse_document(projection: &str, id: &str, text: &[u8]) -> Result<Json, ProjectionError> {
    serde_json::from_slice(text).map_err(|source| ProjectionError::Serde {
        projection: projection.to_owned(),
        id: id.to_owned(),
        source,
    })
}

impl RedisProjectionStore {
    /// A store keeping its keys under `namespace` on `redis`.
    pub fn new(redis: RedisConnection, namespace: RedisNamespace) -> Self {
        let checkpoints = namespace.checkpoints();
        Self { inner: Arc::new(Inner { redis, namespace, checkpoints }) }
    }

    /// The namespace the store's keys live under.
    pub fn namespace(&self) -> &RedisNamespace {
        &self.inner.namespace
    }

    /// The connection the store runs on.
    pub fn connection(&self) -> &RedisConnection {
        &self.inner.redis
    }

    fn conn(&self) -> Bounded {
        self.inner.redis.bounded()
    }

    /// One page of ids and documents in id order, from `start` (`-` or
    /// `(<id>`), skipping `offset`, at most `count` (-1: all).
    async fn page(
        &self,
        projection: &str,
        start: &str,
        offset: usize,
        count: i64,
    ) -> Result<Vec<(String, Json)>, ProjectionError> {
        let ns = &self.inner.namespace;
        let reply: Value = PAGE
            .key(ns.documents(projection))
            .key(ns.document_ids(projection))
            .arg(start)
            .arg(count_arg(offset))
            .arg(count)
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        let unexpected = |reply: &Value| backend(UnexpectedReply::new("the query script", reply));
        let Value::Array(parts) = &reply else { return Err(unexpected(&reply)) };
        let [Value::Array(ids), Value::Array(documents)] = parts.as_slice() else {
            return Err(unexpected(&reply));
        };
        if ids.len() != documents.len() {
            return Err(unexpected(&reply));
        }
        let mut page = Vec::with_capacity(ids.len());
        for (id, document) in ids.iter().zip(documents) {
            let Value::BulkString(id) = id else { return Err(unexpected(&reply)) };
            let id = String::from_utf8(id.clone()).map_err(|e| {
                backend(format!("a document id of projection `{projection}` is not UTF-8: {e}"))
            })?;
            match document {
                // Deleted between the index and the hash: only a hand edit
                // separates them (both change in one script).
                Value::Nil => continue,
                Value::BulkString(text) => {
                    let document = parse_document(projection, &id, text)?;
                    page.push((id, document));
                }
                other => return Err(unexpected(other)),
            }
        }
        Ok(page)
    }
}

/// A checkpoint as `{ns}:checkpoints` holds it: JSON text,
/// `{"position":12}` or `{"position":12,"replay_until":40}`.
fn encode_checkpoint(checkpoint: Checkpoint) -> String {
    match checkpoint.replay_until {
        None => format!(r#"{{"position":{}}}"#, checkpoint.position),
        Some(until) => format!(r#"{{"position":{},"replay_until":{until}}}"#, checkpoint.position),
    }
}

fn decode_checkpoint(raw: &[u8]) -> Option<Checkpoint> {
    let value: Json = serde_json::from_slice(raw).ok()?;
    let position = GlobalPosition(value.get("position")?.as_u64()?);
    let replay_until = match value.get("replay_until") {
        None | Some(Json::Null) => None,
        Some(until) => Some(GlobalPosition(until.as_u64()?)),
    };
    Some(Checkpoint::at(position).replaying_until(replay_until))
}

/// The net effect of `changes`: the last change per id wins.
fn net_changes(changes: Vec<DocumentChange>) -> Vec<(String, Option<Json>)> {
    let mut order: Vec<String> = Vec::with_capacity(changes.len());
    let mut last: HashMap<String, Option<Json>> = HashMap::with_capacity(changes.len());
    for change in changes {
        let (id, document) = match change {
            DocumentChange::Put { id, document } => (id, Some(document)),
            DocumentChange::Delete { id } => (id, None),
        };
        if last.insert(id.clone(), document).is_none() {
            order.push(id);
        }
    }
    order.into_iter().filter_map(|id| last.remove(&id).map(|document| (id, document))).collect()
}

#[async_trait]
impl ProjectionStore for RedisProjectionStore {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Json>, ProjectionError> {
        let text: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.inner.namespace.documents(projection))
            .arg(id)
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        text.map(|text| parse_document(projection, id, &text)).transpose()
    }

    /// One `HMGET` on the projection's document hash: one round trip, one
    /// moment's state (Redis runs commands one at a time).
    async fn get_many(
        &self,
        projection: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Json)>, ProjectionError> {
        let mut wanted: Vec<&String> = ids.iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(self.inner.namespace.documents(projection))
            .arg(&wanted)
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        if texts.len() != wanted.len() {
            return Err(backend(format!(
                "HMGET of {} ids of projection `{projection}` answered {} values",
                wanted.len(),
                texts.len()
            )));
        }
        let mut found = Vec::with_capacity(wanted.len());
        for (id, text) in wanted.into_iter().zip(texts) {
            if let Some(text) = text {
                found.push((id.clone(), parse_document(projection, id, &text)?));
            }
        }
        Ok(found)
    }

    async fn put(&self, projection: &str, id: &str, document: Json) -> Result<(), ProjectionError> {
        let mut work = UnitOfWork::new();
        work.put(id, document);
        self.commit(projection, work).await
    }

    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        let mut work = UnitOfWork::new();
        work.delete(id);
        self.commit(projection, work).await
    }

    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Json)>, ProjectionError> {
        let limit = query.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(filter) = &query.contains else {
            let count = query.limit.map_or(-1, count_arg);
            return self.page(projection, "-", query.offset, count).await;
        };
        let mut matched = Vec::new();
        let mut skip = query.offset;
        let mut start = "-".to_owned();
        loop {
            let page = self.page(projection, &start, 0, count_arg(FILTER_PAGE)).await?;
            let full = page.len() == FILTER_PAGE;
            if let Some((last, _)) = page.last() {
                start = format!("({last}");
            }
            for (id, document) in page {
                if !json_contains(&document, filter) {
                    continue;
                }
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                matched.push((id, document));
                if matched.len() == limit {
                    return Ok(matched);
                }
            }
            if !full {
                return Ok(matched);
            }
        }
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        let raw: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(&self.inner.checkpoints)
            .arg(name)
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        raw.map(|raw| {
            decode_checkpoint(&raw).ok_or_else(|| {
                backend(format!(
                    "the checkpoint of `{name}` is {:?}, not a checkpoint",
                    String::from_utf8_lossy(&raw)
                ))
            })
        })
        .transpose()
    }

    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        let ns = &self.inner.namespace;
        let mut invocation = COMMIT.prepare_invoke();
        invocation
            .key(ns.documents(projection))
            .key(ns.document_ids(projection))
            .key(&self.inner.checkpoints);
        if let Some(fence) = &work.fence {
            invocation.key(ns.lease(&fence.lease));
        }
        let changes = net_changes(work.changes);
        invocation
            .arg(projection)
            .arg(work.checkpoint.map(encode_checkpoint).unwrap_or_default())
            .arg(work.fence.as_ref().map(|f| f.token.to_string()).unwrap_or_default())
            .arg(changes.len());
        for (id, document) in changes {
            match document {
                Some(document) => {
                    let text = serde_json::to_string(&document).map_err(|source| ProjectionError::Serde {
                        projection: projection.to_owned(),
                        id: id.clone(),
                        source,
                    })?;
                    invocation.arg("put").arg(id).arg(text);
                }
                None => {
                    invocation.arg("delete").arg(id).arg("");
                }
            }
        }
        let reply: Value = invocation.invoke_async(&mut self.conn()).await.map_err(backend)?;
        match (&reply, work.fence) {
            (Value::BulkString(word), _) if word == b"ok" => Ok(()),
            (Value::BulkString(word), Some(fence)) if word == b"fenced" => Err(ProjectionError::Fenced {
                projection: projection.to_owned(),
                lease: fence.lease,
                token: fence.token,
            }),
            (other, _) => Err(backend(UnexpectedReply::new("the commit script", other))),
        }
    }

    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        let ns = &self.inner.namespace;
        let () = redis::pipe()
            .atomic()
            .cmd("UNLINK")
            .arg(ns.documents(projection))
            .arg(ns.document_ids(projection))
            .ignore()
            .cmd("HDEL")
            .arg(&self.inner.checkpoints)
            .arg(projection)
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn checkpoints_round_trip_as_json() {
        for checkpoint in [
            Checkpoint::at(GlobalPosition(12)),
            Checkpoint::at(GlobalPosition(u64::MAX)).replaying_until(Some(GlobalPosition(40))),
        ] {
            let text = encode_checkpoint(checkpoint);
            assert_eq!(decode_checkpoint(text.as_bytes()), Some(checkpoint), "{text}");
        }
        assert_eq!(encode_checkpoint(Checkpoint::at(GlobalPosition(12))), r#"{"position":12}"#);
        for bad in [&b"12"[..], b"{}", br#"{"position":-1}"#, br#"{"position":1,"replay_until":"x"}"#] {
            assert_eq!(decode_checkpoint(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_last_change_per_id_wins_in_first_seen_order() {
        let mut work = UnitOfWork::new();
        work.put("b", json!(1))
            .delete("b")
            .delete("a")
            .put("a", json!(2))
            .put("c", json!(3))
            .put("c", json!(4));
        let net = net_changes(work.changes);
        assert_eq!(
            net,
            vec![("b".to_owned(), None), ("a".to_owned(), Some(json!(2))), ("c".to_owned(), Some(json!(4)))]
        );
    }
}
