//! The read side's test fixtures on Postgres: a small tally domain, the
//! stores of one test in its own schema, a `totals` projection that shows
//! double application, and the settings the read side tests share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{drop_schema, fresh_schema, pool};
use es_core::readside::{ReadSideBuilder, ReadSideConfig, Registry, RetryPolicy, Subscriber};
use es_core::store::{DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::{
    command, event, Aggregate, Apply, Event, Events, GlobalPosition, Handle, HandlerError, Project,
    ProjectionTx, ReadSide, Recorded, StreamId,
};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::Notify;

pub(crate) const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

// ---- a small domain, written the way users write one ----

/// Something was added to a tally.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Added {
    pub(crate) amount: i64,
}

/// A remark no subscriber here consumes.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Noted {
    pub(crate) text: String,
}

/// Add to a tally.
#[command(aggregate = Tally)]
#[derive(Debug, Clone)]
pub(crate) struct Add {
    #[id]
    pub(crate) tally: String,
    pub(crate) amount: i64,
}

/// A tally refuses nothing; the error type is required all the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tally refuses nothing")]
pub(crate) struct TallyError;

/// A running total.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(name = "tally", error = TallyError, events(Added, Noted), commands(Add))]
pub(crate) struct Tally {
    pub(crate) total: i64,
}

impl Handle<Add> for Tally {
    fn handle(&self, command: Add) -> Result<Events<Self>, TallyError> {
        Ok(Events::one(Added { amount: command.amount }))
    }
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.amount;
    }
}

impl Apply<Noted> for Tally {
    fn apply(&mut self, _: &Noted) {}
}

// ---- stores and helpers ----

/// The stores of one test, in its own schema.
pub(crate) struct Db {
    pub(crate) pool: PgPool,
    pub(crate) schema: PgSchema,
    pub(crate) events: PgEventStore,
    pub(crate) documents: PgProjectionStore,
    pub(crate) leases: PgLeaseStore,
}

impl Db {
    pub(crate) async fn new() -> Self {
        let pool = pool(8).await;
        let schema = fresh_schema(&pool).await;
        Self {
            events: PgEventStore::with_schema(pool.clone(), schema.clone()),
            documents: PgProjectionStore::with_schema(pool.clone(), schema.clone()),
            leases: PgLeaseStore::with_schema(pool.clone(), schema.clone()),
            pool,
            schema,
        }
    }

    /// The stores of another node on the same database: its own pool and
    /// listener, the same tables.
    pub(crate) async fn other_node(&self) -> Self {
        let pool = pool(8).await;
        let schema = self.schema.clone();
        Self {
            events: PgEventStore::with_schema(pool.clone(), schema.clone()),
            documents: PgProjectionStore::with_schema(pool.clone(), schema.clone()),
            leases: PgLeaseStore::with_schema(pool.clone(), schema.clone()),
            pool,
            schema,
        }
    }

    /// A read side over these stores running `registry`.
    pub(crate) fn read_side(
        &self,
        owner: &str,
        registry: Registry,
        config: ReadSideConfig,
    ) -> ReadSideBuilder {
        ReadSide::builder()
            .event_store(self.events.clone())
            .projection_store(self.documents.clone())
            .lease_store(self.leases.clone())
            .owner(owner)
            .registry(registry)
            .config(config)
    }

    /// Appends `Added` events with these amounts to `tally-<tally>`, one
    /// append each; returns the position of the last.
    pub(crate) async fn add(&self, tally: &str, amounts: impl IntoIterator<Item = i64>) -> GlobalPosition {
        let stream = StreamId::for_aggregate(Tally::NAME, tally);
        let mut last = GlobalPosition::START;
        for amount in amounts {
            let event = new_event(&Added { amount });
            last = self
                .events
                .append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap()
                .last_position()
                .unwrap();
        }
        last
    }

    /// Appends a `Noted` event nobody consumes.
    pub(crate) async fn note(&self, tally: &str, text: &str) -> GlobalPosition {
        let stream = StreamId::for_aggregate(Tally::NAME, tally);
        let event = new_event(&Noted { text: text.into() });
        self.events.append(&stream, ExpectedVersion::Any, vec![event]).await.unwrap().last_position().unwrap()
    }

    /// The `totals` document of every tally.
    pub(crate) async fn totals(&self, projection: &str) -> BTreeMap<String, Total> {
        self.documents
            .query(projection, &DocumentQuery::all())
            .await
            .unwrap()
            .into_iter()
            .map(|(id, doc)| (id, serde_json::from_value(doc).unwrap()))
            .collect()
    }

    pub(crate) async fn drop(self) {
        drop_schema(&self.pool, &self.schema).await;
    }
}

pub(crate) fn new_event<E: Event + Serialize>(event: &E) -> NewEvent {
    NewEvent::new(Tally::NAME, E::TYPE, E::VERSION, serde_json::to_value(event).unwrap())
}

/// Settings for tests: small batches, quick retries; waits that are never
/// the reason a test passes (wake-ups come from NOTIFY or the runner).
pub(crate) fn config() -> ReadSideConfig {
    ReadSideConfig {
        batch_size: 8,
        catch_up_batch_size: 8,
        idle_wait: Duration::from_millis(200),
        lease_ttl: TTL,
        lease_retry: Duration::from_millis(20),
        store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
        remote_poll: Duration::from_millis(20),
        ..ReadSideConfig::default()
    }
}

pub(crate) fn retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts, Duration::from_millis(5))
}

/// The `totals` projection's document per tally.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Total {
    pub(crate) total: i64,
    pub(crate) events: u32,
}

/// Sums `Added` per tally and counts the events that went in, so applying
/// one twice shows. Optionally stops for good at one amount (a crash
/// mid-batch), fails at one amount, and counts how many run at once.
#[derive(Default, Clone)]
pub(crate) struct Totals {
    pub(crate) hang_at: Option<i64>,
    pub(crate) hung: Arc<Notify>,
    pub(crate) fail_at: Option<i64>,
    pub(crate) running: Arc<AtomicUsize>,
    pub(crate) most_at_once: Arc<AtomicUsize>,
    pub(crate) runs: Arc<AtomicUsize>,
}

impl Project<Added> for Totals {
    async fn project(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        let outcome = self.apply(e, tx).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

impl Totals {
    pub(crate) async fn apply(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        if self.fail_at == Some(e.amount) {
            return Err(HandlerError::msg(format!("refusing amount {}", e.amount)));
        }
        if self.hang_at == Some(e.amount) {
            self.hung.notify_one();
            std::future::pending::<()>().await;
        }
        let id = e.stream_id.as_str();
        let mut doc: Total = tx.get(id).await?.unwrap_or_default();
        // Give another node every chance to run at the same time.
        tokio::task::yield_now().await;
        doc.total += e.amount;
        doc.events += 1;
        tx.put(id, &doc)?;
        Ok(())
    }

    pub(crate) fn subscriber(&self) -> Subscriber {
        Subscriber::projection(self.clone()).on::<Added>().build()
    }
}

pub(crate) fn registry(entries: Vec<(&str, Subscriber)>) -> Registry {
    let mut registry = Registry::new();
    for (name, subscriber) in entries {
        registry.register(name, subscriber).unwrap();
    }
    registry
}

/// What `totals` must hold after every event of `added` exactly once.
pub(crate) fn fold(added: &[(&str, Vec<i64>)]) -> BTreeMap<String, Total> {
    let mut expected: BTreeMap<String, Total> = BTreeMap::new();
    for (tally, amounts) in added {
        let doc =
            expected.entry(StreamId::for_aggregate(Tally::NAME, tally).as_str().to_owned()).or_default();
        for amount in amounts {
            doc.total += amount;
            doc.events += 1;
        }
    }
    expected
}

/// Appends the amounts tally by tally, with an unconsumed event between
/// tallies; returns the last position.
pub(crate) async fn add_all(db: &Db, added: &[(&str, Vec<i64>)]) -> GlobalPosition {
    let mut last = GlobalPosition::START;
    for (tally, amounts) in added {
        db.add(tally, amounts.iter().copied()).await;
        last = db.note(tally, "between tallies").await;
    }
    last
}

pub(crate) fn forty() -> Vec<(&'static str, Vec<i64>)> {
    vec![
        ("a", (1..=10).collect()),
        ("b", (11..=20).collect()),
        ("c", (21..=30).collect()),
        ("d", (31..=40).collect()),
    ]
}
