//! Documents: get, put, delete and queries, each projection apart.

use serde_json::{json, Value};

use super::{checkpoint, commit, get, ids, put, query, query_ids};
use crate::store::{Checkpoint, DocumentQuery, ProjectionStore, UnitOfWork};
use crate::GlobalPosition;

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

/// `get_many` answers the stored documents among the ids, each once with
/// its own id: absent ids and other projections' documents are left out,
/// an id listed twice is answered once, and an empty list answers nothing.
pub async fn projection_get_many_returns_the_stored_documents_among_the_ids<S: ProjectionStore>(store: S) {
    let get_many = |ids: Vec<String>| {
        let store = &store;
        async move {
            let mut found = store
                .get_many("balances", &ids)
                .await
                .unwrap_or_else(|e| panic!("get_many of {ids:?} failed: {e:?}"));
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found
        }
    };
    assert!(
        get_many(ids(&["acc1", "acc2"])).await.is_empty(),
        "a projection with no documents answers nothing"
    );
    put(&store, "balances", "acc1", json!({ "balance": 1 })).await;
    put(&store, "balances", "acc2", json!({ "balance": 2, "owner": "Zoë 🐢" })).await;
    put(&store, "balances", "acc3", json!({ "balance": 3 })).await;
    put(&store, "other", "acc4", json!({ "balance": 4 })).await;
    put(&store, "other", "acc9", json!({ "balance": 9 })).await;
    assert_eq!(
        get_many(ids(&["acc2", "acc9", "acc1", "acc4", "acc2"])).await,
        vec![
            ("acc1".to_owned(), json!({ "balance": 1 })),
            ("acc2".to_owned(), json!({ "balance": 2, "owner": "Zoë 🐢" })),
        ],
        "present ids answered once each; absent ids and another projection's documents left out"
    );
    assert!(get_many(Vec::new()).await.is_empty(), "an empty list answers nothing");
    assert!(get_many(ids(&["acc7"])).await.is_empty(), "only absent ids answer nothing");
    let many: Vec<String> = (0..300).map(|n| format!("acc{n}")).collect();
    assert_eq!(get_many(many).await.len(), 3, "a long list answers the stored ones among it");
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
/// still ordered by id and paged; `count` counts the same documents.
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
    let count = |filter: Option<Value>| {
        let store = &store;
        async move {
            store.count("accounts", filter.as_ref()).await.unwrap_or_else(|e| panic!("count failed: {e:?}"))
        }
    };
    assert_eq!(count(None).await, 4, "count without a filter: every document of the projection");
    assert_eq!(count(Some(json!({ "tier": "gold" }))).await, 3, "count with a filter: the matching ones");
    assert_eq!(count(Some(json!({ "owner": "dan" }))).await, 0, "count of no match");
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
