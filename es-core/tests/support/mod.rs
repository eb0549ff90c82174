//! A bank account aggregate declared with `#[event]`, `#[command]` and
//! `#[derive(Aggregate)]`, plus store wrappers that count reads or inject
//! faults (failed reads, a panic after an append, endless conflicts).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, StoreError};
use es_core::store::{
    AppendOutcome, Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent, Snapshot, SnapshotStore,
};
use es_core::{command, event, Aggregate, Apply, Events, GlobalPosition, Handle, StreamId, StreamVersion};
use es_memory::InMemoryEventStore;
use serde::{Deserialize, Serialize};

// ---- events ----

#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccountOpened {
    pub(crate) owner: String,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MoneyDeposited {
    pub(crate) amount: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MoneyWithdrawn {
    pub(crate) amount: u64,
}

/// Applying it panics while [`ARMED`] is set (and disarms it), so a test
/// can make exactly one apply panic.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exploded {}

pub(crate) static ARMED: AtomicBool = AtomicBool::new(false);

// ---- commands ----

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub(crate) struct OpenAccount {
    #[id]
    pub(crate) account_id: String,
    pub(crate) owner: String,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub(crate) struct Deposit {
    #[id]
    pub(crate) account_id: String,
    #[validate(min = 1)]
    pub(crate) amount: u64,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub(crate) struct Withdraw {
    #[id]
    pub(crate) account_id: String,
    pub(crate) amount: u64,
}

/// Panics in `handle` (`in_apply: false`) or records [`Exploded`].
#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub(crate) struct Explode {
    #[id]
    pub(crate) account_id: String,
    pub(crate) in_apply: bool,
}

// ---- the aggregate ----

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(
    name = "account",
    error = AccountError,
    events(AccountOpened, MoneyDeposited, MoneyWithdrawn, Exploded),
    commands(OpenAccount, Deposit, Withdraw, Explode)
)]
pub(crate) struct Account {
    pub(crate) open: bool,
    pub(crate) balance: u64,
    pub(crate) deposits: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AccountError {
    #[error("account is not open")]
    NotOpen,
    #[error("account is already open")]
    AlreadyOpen,
    #[error("balance {balance} is less than {wanted}")]
    Insufficient { balance: u64, wanted: u64 },
}

impl Handle<OpenAccount> for Account {
    fn handle(&self, command: OpenAccount) -> Result<Events<Self>, AccountError> {
        if self.open {
            return Err(AccountError::AlreadyOpen);
        }
        Ok(Events::one(AccountOpened { owner: command.owner }))
    }
}

impl Handle<Deposit> for Account {
    fn handle(&self, command: Deposit) -> Result<Events<Self>, AccountError> {
        if !self.open {
            return Err(AccountError::NotOpen);
        }
        Ok(Events::one(MoneyDeposited { amount: command.amount }))
    }
}

impl Handle<Withdraw> for Account {
    fn handle(&self, command: Withdraw) -> Result<Events<Self>, AccountError> {
        if self.balance < command.amount {
            return Err(AccountError::Insufficient { balance: self.balance, wanted: command.amount });
        }
        Ok(Events::one(MoneyWithdrawn { amount: command.amount }))
    }
}

impl Handle<Explode> for Account {
    fn handle(&self, command: Explode) -> Result<Events<Self>, AccountError> {
        if command.in_apply {
            return Ok(Events::one(Exploded {}));
        }
        panic!("handler of account `{}` explodes", command.account_id);
    }
}

impl Apply<AccountOpened> for Account {
    fn apply(&mut self, _: &AccountOpened) {
        self.open = true;
    }
}
impl Apply<MoneyDeposited> for Account {
    fn apply(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
        self.deposits += 1;
    }
}
impl Apply<MoneyWithdrawn> for Account {
    fn apply(&mut self, e: &MoneyWithdrawn) {
        self.balance -= e.amount;
    }
}
impl Apply<Exploded> for Account {
    fn apply(&mut self, _: &Exploded) {
        if ARMED.swap(false, Ordering::SeqCst) {
            panic!("apply of Exploded explodes");
        }
    }
}

pub(crate) fn open(id: &str) -> OpenAccount {
    OpenAccount { account_id: id.to_owned(), owner: format!("owner of {id}") }
}

pub(crate) fn deposit(id: &str, amount: u64) -> Deposit {
    Deposit { account_id: id.to_owned(), amount }
}

pub(crate) fn stream(id: &str) -> StreamId {
    StreamId::for_aggregate(Account::NAME, id)
}

// ---- store wrappers ----

/// An in-memory store that counts stream reads and the events they return,
/// and injects faults: `read_all` fails while `failing_reads` is above 0
/// (counting it down), and with `panic_after_append` every append panics
/// once its events are stored, as a buggy adapter might after its commit.
#[derive(Clone, Default)]
pub(crate) struct CountingStore {
    pub(crate) inner: InMemoryEventStore,
    pub(crate) reads: Arc<AtomicU64>,
    pub(crate) events_read: Arc<AtomicU64>,
    pub(crate) failing_reads: Arc<AtomicU64>,
    pub(crate) panic_after_append: bool,
}

impl CountingStore {
    pub(crate) fn over(inner: InMemoryEventStore) -> Self {
        Self { inner, ..Self::default() }
    }
    pub(crate) fn events_read(&self) -> u64 {
        self.events_read.load(Ordering::SeqCst)
    }
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        let outcome = self.inner.append(stream, expected, events).await?;
        assert!(!self.panic_after_append, "the adapter panicked after storing the events");
        Ok(outcome)
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self.inner.read_stream(stream, from, direction, limit).await?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.events_read.fetch_add(page.len() as u64, Ordering::SeqCst);
        Ok(page)
    }
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.failing_reads.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError::Backend("the connection dropped".into()));
        }
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<es_core::store::StreamSummary>, StoreError> {
        self.inner.streams(prefix, after, limit).await
    }
    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head_position().await
    }
    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.inner.wait_for_events(after, max_wait).await;
    }
}

#[async_trait]
impl SnapshotStore for CountingStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
}

/// A store whose every append loses a race that never happened.
#[derive(Clone, Default)]
pub(crate) struct AlwaysConflicting {
    pub(crate) inner: InMemoryEventStore,
    pub(crate) appends: Arc<AtomicU64>,
}

#[async_trait]
impl EventStore for AlwaysConflicting {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        _events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        Err(AppendError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual: Some(StreamVersion(7)),
        })
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, direction, limit).await
    }
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<es_core::store::StreamSummary>, StoreError> {
        self.inner.streams(prefix, after, limit).await
    }
    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head_position().await
    }
}
