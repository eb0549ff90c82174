//! Checkpoints and units of work: what a commit stores, in what order,
//! and what a reset clears.

use serde_json::json;

use super::super::join;
use super::{checkpoint, commit, get, ids, put, query, query_ids};
use crate::store::{Checkpoint, DocumentQuery, ProjectionStore, UnitOfWork};
use crate::GlobalPosition;

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
