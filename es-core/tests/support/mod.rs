//! A bank account aggregate written by hand, the way `#[event]`,
//! `#[command]` and `#[derive(Aggregate)]` will generate it, plus store
//! wrappers that count reads or force conflicts.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::{
    Aggregate, AppendError, AppendOutcome, Apply, Command, DecodeErrorKind, Direction, Event, EventSet,
    EventStore, Events, ExpectedVersion, GlobalPosition, Handle, NewEvent, RecordedEvent, Snapshot,
    SnapshotStore, StoreError, StreamId, StreamVersion, ValidationError,
};
use es_memory::InMemoryEventStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---- events (what `#[event]` generates) ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AccountOpened {
    pub(crate) owner: String,
}
impl Event for AccountOpened {
    const TYPE: &'static str = "AccountOpened";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MoneyDeposited {
    pub(crate) amount: u64,
}
impl Event for MoneyDeposited {
    const TYPE: &'static str = "MoneyDeposited";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MoneyWithdrawn {
    pub(crate) amount: u64,
}
impl Event for MoneyWithdrawn {
    const TYPE: &'static str = "MoneyWithdrawn";
}

/// Applying it panics while [`ARMED`] is set (and disarms it), so a test
/// can make exactly one apply panic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Exploded {}
impl Event for Exploded {
    const TYPE: &'static str = "Exploded";
}

pub(crate) static ARMED: AtomicBool = AtomicBool::new(false);

// ---- the event enum (what `#[derive(Aggregate)]` generates) ----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AccountEvent {
    AccountOpened(AccountOpened),
    MoneyDeposited(MoneyDeposited),
    MoneyWithdrawn(MoneyWithdrawn),
    Exploded(Exploded),
}

impl From<AccountOpened> for AccountEvent {
    fn from(e: AccountOpened) -> Self {
        Self::AccountOpened(e)
    }
}
impl From<MoneyDeposited> for AccountEvent {
    fn from(e: MoneyDeposited) -> Self {
        Self::MoneyDeposited(e)
    }
}
impl From<MoneyWithdrawn> for AccountEvent {
    fn from(e: MoneyWithdrawn) -> Self {
        Self::MoneyWithdrawn(e)
    }
}
impl From<Exploded> for AccountEvent {
    fn from(e: Exploded) -> Self {
        Self::Exploded(e)
    }
}

impl EventSet for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::AccountOpened(_) => AccountOpened::TYPE,
            Self::MoneyDeposited(_) => MoneyDeposited::TYPE,
            Self::MoneyWithdrawn(_) => MoneyWithdrawn::TYPE,
            Self::Exploded(_) => Exploded::TYPE,
        }
    }
    fn schema_version(&self) -> u32 {
        match self {
            Self::AccountOpened(_) => AccountOpened::VERSION,
            Self::MoneyDeposited(_) => MoneyDeposited::VERSION,
            Self::MoneyWithdrawn(_) => MoneyWithdrawn::VERSION,
            Self::Exploded(_) => Exploded::VERSION,
        }
    }
    fn to_payload(&self) -> Result<Value, serde_json::Error> {
        match self {
            Self::AccountOpened(e) => serde_json::to_value(e),
            Self::MoneyDeposited(e) => serde_json::to_value(e),
            Self::MoneyWithdrawn(e) => serde_json::to_value(e),
            Self::Exploded(e) => serde_json::to_value(e),
        }
    }
    fn from_stored(event_type: &str, schema_version: u32, payload: Value) -> Result<Self, DecodeErrorKind> {
        match event_type {
            AccountOpened::TYPE => {
                es_core::__private::decode_event(schema_version, payload).map(Self::AccountOpened)
            }
            MoneyDeposited::TYPE => {
                es_core::__private::decode_event(schema_version, payload).map(Self::MoneyDeposited)
            }
            MoneyWithdrawn::TYPE => {
                es_core::__private::decode_event(schema_version, payload).map(Self::MoneyWithdrawn)
            }
            Exploded::TYPE => es_core::__private::decode_event(schema_version, payload).map(Self::Exploded),
            _ => Err(DecodeErrorKind::UnknownType),
        }
    }
    fn event_types() -> &'static [&'static str] {
        &[AccountOpened::TYPE, MoneyDeposited::TYPE, MoneyWithdrawn::TYPE, Exploded::TYPE]
    }
}

// ---- commands (what `#[command(aggregate = Account)]` generates) ----

#[derive(Debug, Clone)]
pub(crate) struct OpenAccount {
    pub(crate) account_id: String,
    pub(crate) owner: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Deposit {
    pub(crate) account_id: String,
    pub(crate) amount: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Withdraw {
    pub(crate) account_id: String,
    pub(crate) amount: u64,
}

/// Panics in `handle` (`in_apply: false`) or records [`Exploded`].
#[derive(Debug, Clone)]
pub(crate) struct Explode {
    pub(crate) account_id: String,
    pub(crate) in_apply: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum AccountCommand {
    OpenAccount(OpenAccount),
    Deposit(Deposit),
    Withdraw(Withdraw),
    Explode(Explode),
}

impl Command for OpenAccount {
    type Aggregate = Account;
    const NAME: &'static str = "OpenAccount";
    fn aggregate_id(&self) -> String {
        self.account_id.clone()
    }
    fn into_aggregate_command(self) -> AccountCommand {
        AccountCommand::OpenAccount(self)
    }
}

impl Command for Deposit {
    type Aggregate = Account;
    const NAME: &'static str = "Deposit";
    fn aggregate_id(&self) -> String {
        self.account_id.clone()
    }
    fn validate(&self) -> Result<(), ValidationError> {
        let mut error = ValidationError::new(Self::NAME);
        if self.amount == 0 {
            error.field("amount", "must be positive");
        }
        error.into_result()
    }
    fn into_aggregate_command(self) -> AccountCommand {
        AccountCommand::Deposit(self)
    }
}

impl Command for Withdraw {
    type Aggregate = Account;
    const NAME: &'static str = "Withdraw";
    fn aggregate_id(&self) -> String {
        self.account_id.clone()
    }
    fn into_aggregate_command(self) -> AccountCommand {
        AccountCommand::Withdraw(self)
    }
}

impl Command for Explode {
    type Aggregate = Account;
    const NAME: &'static str = "Explode";
    fn aggregate_id(&self) -> String {
        self.account_id.clone()
    }
    fn into_aggregate_command(self) -> AccountCommand {
        AccountCommand::Explode(self)
    }
}

// ---- the aggregate ----

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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

impl Aggregate for Account {
    const NAME: &'static str = "account";
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn apply_event(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountOpened(e) => Apply::apply(self, e),
            AccountEvent::MoneyDeposited(e) => Apply::apply(self, e),
            AccountEvent::MoneyWithdrawn(e) => Apply::apply(self, e),
            AccountEvent::Exploded(e) => Apply::apply(self, e),
        }
    }

    fn handle_command(&self, command: AccountCommand) -> Result<Events<Self>, AccountError> {
        match command {
            AccountCommand::OpenAccount(c) => Handle::handle(self, c),
            AccountCommand::Deposit(c) => Handle::handle(self, c),
            AccountCommand::Withdraw(c) => Handle::handle(self, c),
            AccountCommand::Explode(c) => Handle::handle(self, c),
        }
    }
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

/// An in-memory store that counts stream reads and the events they return.
#[derive(Clone, Default)]
pub(crate) struct CountingStore {
    pub(crate) inner: InMemoryEventStore,
    pub(crate) reads: Arc<AtomicU64>,
    pub(crate) events_read: Arc<AtomicU64>,
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
        self.inner.append(stream, expected, events).await
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
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.inner.stream_version(stream).await
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
    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head_position().await
    }
}
