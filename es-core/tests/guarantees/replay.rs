//! Replaying never re-runs a side effect marked `replay = "skip"`.

use es_core::readside::Selection;
use es_core::store::EventStore;
use es_core::ReadSide;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use crate::domain::Open;
use crate::helpers::{app, app_with, read_side, WAIT};
use crate::subscribers::MAILED;

/// Replaying a `replay = "skip"` handler never runs it for history, also
/// when the replay is stopped half way and the subscription restarted (or
/// taken over by a fresh read side); news after the replay runs it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_replay_never_runs_a_skipping_handler_for_history() {
    let mailed = || MAILED.lock().unwrap().iter().filter(|o| o.starts_with("mail-")).count();
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-mail"]).await;
    for n in 0..300 {
        es.execute(Open { id: format!("m{n}"), owner: format!("mail-{n}") }).await.unwrap();
    }
    let head = store.head_position().await.unwrap();
    let read_side = read_side(&es);
    read_side.wait_for("g-mail", head, WAIT).await.unwrap();
    assert_eq!(mailed(), 300, "one mail per opening");

    // Replay, interrupted at once, resumed on this node.
    read_side.rebuild("g-mail").await.unwrap();
    read_side.stop("g-mail").await.unwrap();
    read_side.restart("g-mail").await.unwrap();
    read_side.wait_for("g-mail", head, WAIT).await.unwrap();
    assert_eq!(mailed(), 300, "no mail sent again after an interrupted replay");

    // Replay, interrupted, and resumed by another read side on the store.
    read_side.rebuild("g-mail").await.unwrap();
    es.shutdown().await;
    let fresh = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(documents.clone())
        .select(Selection::names(["g-mail"]))
        .start()
        .unwrap();
    fresh.wait_for("g-mail", head, WAIT).await.unwrap();
    assert_eq!(mailed(), 300, "no mail sent again when another node resumes the replay");

    let news =
        app(&store).await.execute(Open { id: "late".into(), owner: "mail-late".into() }).await.unwrap();
    fresh.wait_for("g-mail", news.position.unwrap(), WAIT).await.unwrap();
    assert_eq!(mailed(), 301, "news is mailed once");
    fresh.shutdown().await;
}
