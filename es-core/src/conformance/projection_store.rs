//! Projection store cases: what every [`ProjectionStore`] must do.
//!
//! Run them all with [`projection_store_conformance!`](crate::projection_store_conformance).
//! Each case takes a fresh, empty store; the concurrent one clones it into
//! tasks, so clones must share their data.
//!
//! Document ids in these cases are lowercase ASCII letters and digits that
//! sort the same under any database collation, so "ordered by id" is
//! unambiguous.

use serde_json::{json, Value};

use super::join;
use crate::store::{Checkpoint, DocumentQuery, ProjectionStore, UnitOfWork};
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

/// Getting a document that was never put returns `None`.
pub async fn projection_get_missing_is_none<S: ProjectionStore>(store: S) {
    assert_eq!(get(&store, "balances", "acc1").await, None, "a missing document must be None");
    put(&store, "balances", "acc1", json!({ "balance": 1 })).await;
    assert_eq!(
        get(&store, "balances", "acc2").await,
        None,
        "another id of the projection must still be None"
    );
}

/// `put` creates and replaces a document, `get` returns it as put, and
/// `delete` removes it.
pub async fn projection_put_get_delete<S: ProjectionStore>(store: S) {
    let document =
        json!({ "owner": "Zoë 🐢", "balance": 10, "nested": { "tags": ["a", "b"], "none": null } });
    put(&store, "balances", "acc1", document.clone()).await;
    assert_eq!(get(&store, "balances", "acc1").await, Some(document), "get must return the document as put");

    let replaced = json!({ "owner": "Zoë 🐢", "balance": 25 });
    put(&store, "balances", "acc1", replaced.clone()).await;
    assert_eq!(get(&store, "balances", "acc1").await, Some(replaced), "put must replace the whole document");

    put(&store, "balances", "acc2", json!({ "balance": 3 })).await;
    store.delete("balances", "acc1").await.unwrap_or_else(|e| panic!("delete failed: {e:?}"));
    assert_eq!(get(&store, "balances", "acc1").await, None, "a deleted document must be gone");
    assert_eq!(
        get(&store, "balances", "acc2").await,
        Some(json!({ "balance": 3 })),
        "delete removed another id"
    );
}

/// Deleting a document that does not exist is not an error.
pub async fn projection_delete_missing_is_ok<S: ProjectionStore>(store: S) {
    if let Err(e) = store.delete("balances", "acc1").await {
        panic!("deleting from a projection that has no documents must succeed, got {e:?}");
    }
    put(&store, "balances", "acc2", json!({})).await;
    if let Err(e) = store.delete("balances", "acc1").await {
        panic!("deleting a missing document must succeed, got {e:?}");
    }
    assert_eq!(get(&store, "balances", "acc2").await, Some(json!({})));
}

/// `query` returns the projection's documents ordered by id, honouring
/// `offset` and `limit`.
pub async fn projection_query_orders_by_id_with_offset_and_limit<S: ProjectionStore>(store: S) {
    // Put in a scrambled order; ids sort as doc01 < doc02 < ... < doc12.
    for n in [7, 3, 12, 1, 9, 5, 11, 2, 8, 4, 10, 6] {
        put(&store, "list", &format!("doc{n:02}"), json!({ "n": n })).await;
    }
    let all: Vec<String> = (1..=12).map(|n| format!("doc{n:02}")).collect();
    let everything = query(&store, "list", DocumentQuery::all()).await;
    assert_eq!(
        everything.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        all,
        "query must order by id"
    );
    assert!(
        everything
            .iter()
            .all(|(id, doc)| doc["n"].as_u64().map(|n| format!("doc{n:02}")).as_deref() == Some(id)),
        "query must return each document with its own id"
    );
    assert_eq!(query_ids(&store, "list", DocumentQuery::all().limit(4)).await, all[..4].to_vec(), "limit 4");
    assert_eq!(
        query_ids(&store, "list", DocumentQuery::all().offset(3).limit(4)).await,
        all[3..7].to_vec(),
        "offset 3, limit 4"
    );
    assert_eq!(
        query_ids(&store, "list", DocumentQuery::all().offset(10)).await,
        all[10..].to_vec(),
        "offset 10"
    );
    assert_eq!(
        query_ids(&store, "list", DocumentQuery::all().offset(10).limit(5)).await,
        all[10..].to_vec(),
        "offset 10, limit 5 stops at the last document"
    );
    assert!(
        query_ids(&store, "list", DocumentQuery::all().offset(20)).await.is_empty(),
        "offset past the end"
    );
    assert!(
        query_ids(&store, "list", DocumentQuery::all().limit(0)).await.is_empty(),
        "limit 0 returns nothing"
    );
    assert_eq!(
        query_ids(&store, "list", DocumentQuery::all().limit(usize::MAX)).await,
        all,
        "a limit of usize::MAX returns every document"
    );
    assert!(
        query(&store, "empty", DocumentQuery::all()).await.is_empty(),
        "an unknown projection has no documents"
    );
}

/// `query` with `contains` keeps the documents that contain the filter in
/// the sense of [`json_contains`](crate::store::json_contains) (Postgres' `@>`),
/// still ordered by id and paged.
pub async fn projection_query_by_json_containment<S: ProjectionStore>(store: S) {
    let docs = [
        (
            "acc1",
            json!({ "owner": "ada", "tier": "gold", "tags": ["vip", "eu"], "address": { "city": "Oslo", "zip": "0150" } }),
        ),
        ("acc2", json!({ "owner": "bob", "tier": "gold", "tags": ["eu"], "address": { "city": "Bergen" } })),
        ("acc3", json!({ "owner": "ada", "tier": "basic", "tags": [], "address": { "city": "Oslo" } })),
        ("acc4", json!({ "owner": "cy", "tier": "gold", "tags": ["vip"], "balance": 5 })),
    ];
    for (id, doc) in &docs {
        put(&store, "accounts", id, doc.clone()).await;
    }
    put(&store, "other", "acc9", json!({ "owner": "ada" })).await;
    let matching = |filter: Value| {
        let store = &store;
        async move { query_ids(store, "accounts", DocumentQuery::containing(filter)).await }
    };
    assert_eq!(matching(json!({ "owner": "ada" })).await, ids(&["acc1", "acc3"]), "top-level field");
    assert_eq!(
        matching(json!({ "owner": "ada", "tier": "gold" })).await,
        ids(&["acc1"]),
        "all fields must match"
    );
    assert_eq!(matching(json!({ "tags": ["vip"] })).await, ids(&["acc1", "acc4"]), "array element");
    assert_eq!(matching(json!({ "tags": ["vip", "eu"] })).await, ids(&["acc1"]), "every array element");
    assert_eq!(
        matching(json!({ "address": { "city": "Oslo" } })).await,
        ids(&["acc1", "acc3"]),
        "nested object"
    );
    assert_eq!(matching(json!({ "balance": 5 })).await, ids(&["acc4"]), "number");
    assert_eq!(
        matching(json!({})).await,
        ids(&["acc1", "acc2", "acc3", "acc4"]),
        "an empty filter matches all"
    );
    assert!(matching(json!({ "owner": "dan" })).await.is_empty(), "no document matches");
    assert!(matching(json!({ "missing": null })).await.is_empty(), "a missing field is not null");
    let paged = query_ids(
        &store,
        "accounts",
        DocumentQuery::containing(json!({ "tier": "gold" })).offset(1).limit(1),
    )
    .await;
    assert_eq!(paged, ids(&["acc2"]), "offset and limit apply to the matching documents");
}

/// Containment follows Postgres' `@>` where JSON allows two readings:
/// numbers compare by value (`10` and `10.0` are equal), and a bare scalar
/// in a filter never matches an array holding it below the top level (nor
/// does an array element match a nested array holding it).
pub async fn projection_query_containment_compares_like_postgres<S: ProjectionStore>(store: S) {
    let docs = [
        ("flat", json!({ "amount": 3, "tags": ["vip"] })),
        ("float", json!({ "amount": 10.0 })),
        ("int", json!({ "amount": 10 })),
        ("nested", json!({ "tags": [["vip"]] })),
        ("scalar", json!({ "tags": "vip" })),
    ];
    for (id, doc) in &docs {
        put(&store, "edges", id, doc.clone()).await;
    }
    let matching = |filter: Value| {
        let store = &store;
        async move { query_ids(store, "edges", DocumentQuery::containing(filter)).await }
    };
    assert_eq!(matching(json!({ "amount": 10 })).await, ids(&["float", "int"]), "an integer filter");
    assert_eq!(matching(json!({ "amount": 10.0 })).await, ids(&["float", "int"]), "a float filter");
    assert_eq!(matching(json!({ "tags": ["vip"] })).await, ids(&["flat"]), "an array filter");
    assert_eq!(matching(json!({ "tags": "vip" })).await, ids(&["scalar"]), "a scalar filter on a field");
}

/// Projections are isolated: the same id in two projections is two
/// documents, and changes, queries and checkpoints of one leave the other
/// alone.
pub async fn projections_are_isolated<S: ProjectionStore>(store: S) {
    put(&store, "left", "doc1", json!({ "side": "left" })).await;
    put(&store, "right", "doc1", json!({ "side": "right" })).await;
    put(&store, "right", "doc2", json!({ "side": "right" })).await;
    assert_eq!(get(&store, "left", "doc1").await, Some(json!({ "side": "left" })));
    assert_eq!(get(&store, "right", "doc1").await, Some(json!({ "side": "right" })));
    assert_eq!(get(&store, "left", "doc2").await, None, "a document of `right` must not show in `left`");
    assert_eq!(
        query_ids(&store, "left", DocumentQuery::all()).await,
        ids(&["doc1"]),
        "query sees one projection"
    );

    let mut work = UnitOfWork::new();
    work.delete("doc1").checkpoint(Checkpoint::at(GlobalPosition(5)));
    commit(&store, "right", work).await;
    assert_eq!(
        get(&store, "left", "doc1").await,
        Some(json!({ "side": "left" })),
        "commit to `right` hit `left`"
    );
    assert_eq!(checkpoint(&store, "left").await, None, "a checkpoint of `right` must not show in `left`");
    assert_eq!(checkpoint(&store, "right").await, Some(GlobalPosition(5)));
    store.delete("left", "doc1").await.unwrap_or_else(|e| panic!("delete failed: {e:?}"));
    assert_eq!(
        get(&store, "right", "doc2").await,
        Some(json!({ "side": "right" })),
        "delete in `left` hit `right`"
    );
}

/// A projection's checkpoint is `None` until a unit of work sets it, then
/// it is the last committed one (a unit of work may carry only a checkpoint).
pub async fn projection_checkpoint_is_none_until_committed<S: ProjectionStore>(store: S) {
    assert_eq!(checkpoint(&store, "balances").await, None, "a new projection has no checkpoint");
    put(&store, "balances", "acc1", json!({})).await;
    assert_eq!(checkpoint(&store, "balances").await, None, "a plain put must not set a checkpoint");

    let mut work = UnitOfWork::new();
    work.put("acc2", json!({ "balance": 2 })).checkpoint(Checkpoint::at(GlobalPosition(17)));
    commit(&store, "balances", work).await;
    assert_eq!(
        checkpoint(&store, "balances").await,
        Some(GlobalPosition(17)),
        "commit must set the checkpoint"
    );

    let mut only_checkpoint = UnitOfWork::new();
    only_checkpoint.checkpoint(Checkpoint::at(GlobalPosition(4242)));
    commit(&store, "balances", only_checkpoint).await;
    assert_eq!(
        checkpoint(&store, "balances").await,
        Some(GlobalPosition(4242)),
        "a unit of work with only a checkpoint must move it"
    );
    assert_eq!(get(&store, "balances", "acc2").await, Some(json!({ "balance": 2 })));
}

/// A unit of work applies its changes in order (put then delete of one id
/// leaves it gone; delete then put leaves it present; the last put wins),
/// together with its checkpoint.
pub async fn projection_commit_applies_changes_in_order<S: ProjectionStore>(store: S) {
    put(&store, "p", "doc1", json!({ "v": 0 })).await;
    let mut work = UnitOfWork::new();
    work.put("doc2", json!({ "v": 1 }))
        .delete("doc2")
        .delete("doc1")
        .put("doc1", json!({ "v": 2 }))
        .put("doc3", json!({ "v": 3 }))
        .put("doc3", json!({ "v": 4 }))
        .delete("doc9")
        .checkpoint(Checkpoint::at(GlobalPosition(30)));
    commit(&store, "p", work).await;
    assert_eq!(get(&store, "p", "doc2").await, None, "put then delete of one id must leave it gone");
    assert_eq!(
        get(&store, "p", "doc1").await,
        Some(json!({ "v": 2 })),
        "delete then put must leave it present"
    );
    assert_eq!(get(&store, "p", "doc3").await, Some(json!({ "v": 4 })), "the last put of an id must win");
    assert_eq!(query_ids(&store, "p", DocumentQuery::all()).await, ids(&["doc1", "doc3"]));
    assert_eq!(
        checkpoint(&store, "p").await,
        Some(GlobalPosition(30)),
        "the checkpoint commits with the changes"
    );
}

/// A unit of work without a checkpoint applies its changes and leaves the
/// stored checkpoint as it was.
pub async fn projection_commit_without_checkpoint_keeps_checkpoint<S: ProjectionStore>(store: S) {
    let mut first = UnitOfWork::new();
    first.put("doc1", json!({ "v": 1 })).checkpoint(Checkpoint::at(GlobalPosition(8)));
    commit(&store, "p", first).await;

    let mut second = UnitOfWork::new();
    second.put("doc2", json!({ "v": 2 })).delete("doc1");
    commit(&store, "p", second).await;
    assert_eq!(
        checkpoint(&store, "p").await,
        Some(GlobalPosition(8)),
        "a commit without checkpoint moved it"
    );
    assert_eq!(query_ids(&store, "p", DocumentQuery::all()).await, ids(&["doc2"]), "its changes must apply");

    let mut fresh = UnitOfWork::new();
    fresh.put("doc1", json!({}));
    commit(&store, "q", fresh).await;
    assert_eq!(checkpoint(&store, "q").await, None, "a commit without checkpoint must not create one");
}

/// `reset` removes every document and the checkpoint of one projection and
/// leaves the others alone; the projection can be rebuilt afterwards.
pub async fn projection_reset_clears_only_that_projection<S: ProjectionStore>(store: S) {
    for projection in ["doomed", "kept"] {
        let mut work = UnitOfWork::new();
        work.put("doc1", json!({ "in": projection })).put("doc2", json!({ "in": projection }));
        work.checkpoint(Checkpoint::at(GlobalPosition(12)));
        commit(&store, projection, work).await;
    }
    store.reset("doomed").await.unwrap_or_else(|e| panic!("reset failed: {e:?}"));
    assert!(
        query(&store, "doomed", DocumentQuery::all()).await.is_empty(),
        "reset must remove every document"
    );
    assert_eq!(get(&store, "doomed", "doc1").await, None);
    assert_eq!(checkpoint(&store, "doomed").await, None, "reset must remove the checkpoint");
    assert_eq!(
        query_ids(&store, "kept", DocumentQuery::all()).await,
        ids(&["doc1", "doc2"]),
        "reset hit `kept`"
    );
    assert_eq!(checkpoint(&store, "kept").await, Some(GlobalPosition(12)), "reset moved another checkpoint");

    let mut rebuild = UnitOfWork::new();
    rebuild.put("doc3", json!({})).checkpoint(Checkpoint::at(GlobalPosition(1)));
    commit(&store, "doomed", rebuild).await;
    assert_eq!(query_ids(&store, "doomed", DocumentQuery::all()).await, ids(&["doc3"]));
    assert_eq!(checkpoint(&store, "doomed").await, Some(GlobalPosition(1)), "a reset projection starts over");
    store
        .reset("never-used")
        .await
        .unwrap_or_else(|e| panic!("resetting an unused projection failed: {e:?}"));
}

/// Units of work committed concurrently to different projections do not
/// interfere: each projection ends with exactly its own documents and its
/// own last checkpoint.
pub async fn concurrent_commits_to_different_projections<S: ProjectionStore + Clone>(store: S) {
    const PROJECTIONS: u64 = 8;
    const COMMITS: u64 = 25;
    let mut tasks = Vec::new();
    for p in 0..PROJECTIONS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let projection = format!("proj{p}");
            for n in 1..=COMMITS {
                let mut work = UnitOfWork::new();
                work.put(format!("doc{n:02}"), json!({ "projection": p, "n": n }))
                    .put("counter", json!({ "last": n }))
                    .checkpoint(Checkpoint::at(GlobalPosition(n * 10 + p)));
                if n > 1 {
                    work.delete(format!("doc{:02}", n - 1));
                }
                commit(&store, &projection, work).await;
            }
        }));
    }
    for task in tasks {
        join(task).await;
    }
    for p in 0..PROJECTIONS {
        let projection = format!("proj{p}");
        let docs = query(&store, &projection, DocumentQuery::all()).await;
        let last = format!("doc{COMMITS:02}");
        assert_eq!(
            docs,
            vec![
                ("counter".to_owned(), json!({ "last": COMMITS })),
                (last, json!({ "projection": p, "n": COMMITS })),
            ],
            "`{projection}` must hold exactly its own last documents"
        );
        assert_eq!(
            checkpoint(&store, &projection).await,
            Some(GlobalPosition(COMMITS * 10 + p)),
            "`{projection}` must hold its own last checkpoint"
        );
    }
}

/// A checkpoint keeps the end of a running replay with its position, and a
/// later checkpoint without one clears it; a handler's checkpoint (a name
/// with no documents) is stored like a projection's.
pub async fn checkpoint_keeps_the_end_of_a_replay<S: ProjectionStore>(store: S) {
    let replaying = Checkpoint::at(GlobalPosition(5)).replaying_until(Some(GlobalPosition(9)));
    let mut work = UnitOfWork::new();
    work.checkpoint(replaying);
    commit(&store, "welcome-mail", work).await;
    let stored = store.checkpoint("welcome-mail").await.unwrap();
    assert_eq!(stored, Some(replaying), "the stored checkpoint must keep the end of the replay");
    assert!(
        query(&store, "welcome-mail", DocumentQuery::all()).await.is_empty(),
        "a checkpoint is not a document"
    );

    let mut work = UnitOfWork::new();
    work.checkpoint(Checkpoint::at(GlobalPosition(10)));
    commit(&store, "welcome-mail", work).await;
    let stored = store.checkpoint("welcome-mail").await.unwrap();
    assert_eq!(
        stored,
        Some(Checkpoint::at(GlobalPosition(10))),
        "a checkpoint past the replay clears its end"
    );
}
