//! Commands and a projection under store faults: what the runtime and the
//! read side promise while an adapter's calls fail, whatever makes them
//! fail (connections killed on the server, a proxy cutting replies, the
//! testkit's injected faults).
//!
//! Unlike the other families, these are not stamped by a macro: the
//! adapter's test builds the nodes on stores that fail now and then, runs
//! its own source of faults beside [`commands_ride_through_faults`], and
//! checks the read model with [`totals_equal_the_fold`] once the faults
//! stopped:
//!
//! ```
//! use es_core::conformance::faults;
//! use es_core::readside::Registry;
//! use es_core::{Es, ReadSide};
//! use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
//!
//! # es_core::conformance::run_case(async {
//! let (events, documents) = (InMemoryEventStore::new(), InMemoryProjectionStore::new());
//! // An adapter's test builds these on stores that fail (see es-postgres's
//! // `connections_killed.rs`); here they do not.
//! let mut registry = Registry::new();
//! registry.register(faults::TOTALS, faults::totals()).unwrap();
//! let read_side = ReadSide::builder()
//!     .event_store(events.clone())
//!     .projection_store(documents.clone())
//!     .registry(registry)
//!     .start()
//!     .unwrap();
//! let nodes = [Es::builder().event_store(events.clone()).build().await.unwrap()];
//! let report = faults::commands_ride_through_faults(&events, &nodes, 2, 5).await;
//! assert_eq!(report.commands, 10);
//! faults::totals_equal_the_fold(&[&read_side], &events, &documents, &report).await;
//! # });
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::join;
use crate::error::ExecuteError;
use crate::readside::{Subscriber, SubscriptionState};
use crate::store::{Direction, DocumentQuery, EventStore, ProjectionStore};
use crate::{
    command, event, Aggregate, Apply, CommandId, Es, Events, Handle, HandlerError, Project, ProjectionTx,
    ReadSide, Recorded, StreamId, StreamVersion,
};

/// The most tries of one command before the case gives up on it.
const MAX_TRIES: usize = 500;
/// The pause between two tries of one command.
const PAUSE: Duration = Duration::from_millis(5);
/// How long the read model may take to reach the head once the faults
/// stopped.
const CATCH_UP: Duration = Duration::from_secs(120);

/// Something was added to a tally.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    /// How much.
    pub by: i64,
}

/// Add `by` to the tally `id`.
#[command(aggregate = Tally)]
#[derive(Debug, Clone)]
pub struct Add {
    /// The tally.
    #[id]
    pub id: String,
    /// How much.
    pub by: i64,
}

/// A tally never refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tally never refuses")]
pub struct Never;

/// A running total.
#[derive(Aggregate, Debug, Default, Serialize, Deserialize)]
#[aggregate(name = "faults_tally", error = Never, events(Added), commands(Add))]
pub struct Tally {
    /// The sum of everything added.
    pub total: i64,
}

impl Handle<Add> for Tally {
    fn handle(&self, command: Add) -> Result<Events<Self>, Never> {
        Ok(Events::one(Added { by: command.by }))
    }
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.by;
    }
}

/// The name the case's read model is registered under.
pub const TOTALS: &str = "faults-totals";

/// The case's read model: a tally's total as a document, read, changed
/// and put back for every event.
pub fn totals() -> Subscriber {
    Subscriber::projection(Totals).on::<Added>().build()
}

struct Totals;

impl Project<Added> for Totals {
    async fn project(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = e.stream_id.to_string();
        let total: i64 = tx.get(&id).await?.unwrap_or(0);
        tx.put(id, &(total + e.by))?;
        Ok(())
    }
}

/// What a run of [`commands_ride_through_faults`] met and stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultReport {
    /// Commands acknowledged (each in the end, after however many tries).
    pub commands: u64,
    /// Tries answered `OutcomeUnknown` (or `Panicked` after the append).
    pub unknown: u64,
    /// Tries that failed saying nothing was stored (and stored nothing).
    pub nothing_stored: u64,
    /// Per tally stream: the events and the total the commands added.
    pub fold: BTreeMap<StreamId, (u64, i64)>,
}

/// `tallies` tallies, each written by one writer on every node in `nodes`
/// (so the nodes also race for them), `commands` `Add`s per writer. Each
/// command is executed again with its id until it answers (at most 500
/// tries). After a try that failed saying nothing was stored, the case
/// reads the stream through `store` (a handle that does not fail) and
/// checks that the command stored nothing, unless an earlier try of it
/// had an unknown outcome (that try may land late). Any other failure
/// than an unknown outcome, a failed load or append, a conflict, a
/// timeout or a panic (an adapter's: the tally's code does not panic)
/// fails the case. At the end every acknowledged command is stored exactly
/// once, versions are gap-free, and each tally loads to its fold.
pub async fn commands_ride_through_faults<S: EventStore + Clone>(
    store: &S,
    nodes: &[Es],
    tallies: usize,
    commands: u64,
) -> FaultReport {
    let mut tasks = Vec::new();
    for tally in 0..tallies {
        for es in nodes {
            let (es, store) = (es.clone(), store.clone());
            tasks.push(tokio::spawn(
                async move { write(&es, &store, &format!("tally-{tally}"), commands).await },
            ));
        }
    }
    let mut report = FaultReport::default();
    for task in tasks {
        let (tally, written) = join(task).await;
        report.unknown += written.unknown;
        report.nothing_stored += written.nothing_stored;
        report.commands += written.acknowledged;
        let entry = report.fold.entry(tally).or_default();
        entry.0 += written.acknowledged;
        entry.1 += written.added;
    }
    // The tallies are loaded through `store`, which does not fail.
    let clean = Es::builder().event_store(store.clone()).build().await.expect("conformance: building an Es");
    for (stream, (count, total)) in &report.fold {
        let stored = store
            .read_stream(stream, StreamVersion(1), Direction::Forward, usize::MAX)
            .await
            .expect("conformance: reading a tally back");
        assert_eq!(
            stored.len() as u64,
            *count,
            "conformance: {stream} holds one event per acknowledged command"
        );
        let versions: Vec<u64> = stored.iter().map(|e| e.stream_version.get()).collect();
        assert!(
            versions.iter().copied().eq(1..=*count),
            "conformance: {stream}'s versions have gaps: {versions:?}"
        );
        let mut causes: Vec<_> = stored.iter().map(|e| e.metadata.causation_id).collect();
        causes.sort();
        causes.dedup();
        assert_eq!(causes.len(), stored.len(), "conformance: a command stored twice in {stream}");
        let id = stream.as_str().trim_start_matches("faults_tally-");
        let loaded = clean.load::<Tally>(id).await.expect("conformance: loading a tally");
        assert_eq!(loaded.total, *total, "conformance: {stream} loads to the fold of its commands");
    }
    clean.shutdown().await;
    report
}

/// What one writer saw.
struct Written {
    acknowledged: u64,
    added: i64,
    unknown: u64,
    nothing_stored: u64,
}

async fn write<S: EventStore>(es: &Es, store: &S, tally: &str, commands: u64) -> (StreamId, Written) {
    let stream = StreamId::for_aggregate(Tally::NAME, tally);
    let mut written = Written { acknowledged: 0, added: 0, unknown: 0, nothing_stored: 0 };
    for n in 0..commands {
        let by = i64::try_from(n % 7).unwrap_or(0) + 1;
        let id = CommandId::new();
        let mut tries = 0;
        // Whether an earlier try may have stored it (its outcome unknown).
        let mut maybe_stored = false;
        loop {
            tries += 1;
            assert!(tries <= MAX_TRIES, "conformance: command {id} on {tally} never answered");
            match es.execute(Add { id: tally.to_owned(), by }).id(id).await {
                Ok(_) => break,
                Err(ExecuteError::OutcomeUnknown { .. } | ExecuteError::Panicked { appended: true, .. }) => {
                    written.unknown += 1;
                    maybe_stored = true;
                }
                Err(
                    error @ (ExecuteError::Load(_)
                    | ExecuteError::Append(_)
                    | ExecuteError::Conflict { .. }
                    | ExecuteError::Timeout { .. }
                    | ExecuteError::Panicked { appended: false, .. }),
                ) => {
                    written.nothing_stored += 1;
                    // After an unknown outcome the earlier try may land at
                    // any time (a statement held up in the network reaches
                    // the server late), so only a command that met no
                    // unknown outcome can be checked.
                    if !maybe_stored {
                        let after = stored_by(store, &stream, id).await;
                        assert_eq!(after, 0, "conformance: `{error}` says this try stored nothing");
                    }
                }
                Err(other) => panic!("conformance: command {id} on {tally}: {other}"),
            }
            tokio::time::sleep(PAUSE).await;
        }
        written.acknowledged += 1;
        written.added += by;
    }
    (stream, written)
}

/// How many events of `stream` the command `id` stored (its events carry
/// it as their causation id).
async fn stored_by<S: EventStore>(store: &S, stream: &StreamId, id: CommandId) -> usize {
    store
        .read_stream(stream, StreamVersion(1), Direction::Forward, usize::MAX)
        .await
        .expect("conformance: reading a tally back")
        .iter()
        .filter(|e| e.metadata.causation_id == Some(id.as_uuid()))
        .count()
}

/// Waits (bounded) until one of `read_sides` has the [`TOTALS`]
/// projection's checkpoint at the head of `store`, none of them has it
/// failed, and the documents in `documents` are the report's fold.
pub async fn totals_equal_the_fold<S: EventStore, P: ProjectionStore>(
    read_sides: &[&ReadSide],
    store: &S,
    documents: &P,
    report: &FaultReport,
) {
    let head = store.head_position().await.expect("conformance: reading the head");
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let mut reached = false;
        for read_side in read_sides {
            let status = read_side.status(TOTALS).expect("conformance: the totals projection is registered");
            assert!(!matches!(status.state, SubscriptionState::Failed(_)), "conformance: {status:?}");
            reached |= status.checkpoint.is_some_and(|checkpoint| checkpoint >= head);
        }
        if reached {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "conformance: the totals never reached the head");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored: BTreeMap<String, i64> = documents
        .query(TOTALS, &DocumentQuery::all())
        .await
        .expect("conformance: reading the totals")
        .into_iter()
        .map(|(id, doc)| (id, serde_json::from_value(doc).expect("conformance: a total is a number")))
        .collect();
    let expected: BTreeMap<String, i64> =
        report.fold.iter().map(|(stream, (_, total))| (stream.to_string(), *total)).collect();
    assert_eq!(stored, expected, "conformance: the totals projection equals the fold");
}
