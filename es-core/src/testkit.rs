//! Given/when/then tests for aggregates: no store, no runtime, no async.
//!
//! An aggregate is a pure function of its past events and a command, so
//! the clearest test of it says just that: *given* these events happened,
//! *when* this command arrives, *then* expect these events (or this error).
//! [`AggregateTest`] folds the given events into a fresh state with
//! [`Aggregate::apply_event`], runs the command the way the runtime does
//! ([`Command::validate`] first, then [`Aggregate::handle_command`]), and
//! checks the outcome. A failed check panics with a message that names the
//! aggregate and the command and lists the events, so the test fails
//! readably.
//!
//! For tests of what surrounds the domain (the runtime, the read side, an
//! adapter), [`TestStore`] wraps any store: it counts the calls made to it
//! and fails chosen ones, or all of them as during an outage, and lets a
//! test watch or hold back a call as it starts ([`TestStore::before`]).
//!
//! # Example
//!
//! With the macros (`#[event]`, `#[command]`, `#[derive(Aggregate)]`) an
//! aggregate is only its state and its [`Handle`](crate::Handle) and
//! [`Apply`](crate::Apply) impls. The example below writes out by hand what
//! the macros generate and hides that part; the test is the last lines.
//!
//! ```
//! use es_core::testkit::AggregateTest;
//! use es_core::{Aggregate, Apply, Command, Events, Handle};
//! use es_core::error::ValidationError;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub struct AccountOpened { pub owner: String }
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub struct MoneyDeposited { pub amount: u64 }
//!
//! #[derive(Debug, Clone)]
//! pub struct Deposit { pub account_id: String, pub amount: u64 }
//!
//! #[derive(Debug, PartialEq, thiserror::Error)]
//! pub enum AccountError {
//!     #[error("the account is not open")]
//!     NotOpen,
//! }
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct Account { open: bool, balance: u64 }
//!
//! impl Handle<Deposit> for Account {
//!     fn handle(&self, command: Deposit) -> Result<Events<Self>, AccountError> {
//!         if !self.open {
//!             return Err(AccountError::NotOpen);
//!         }
//!         Ok(Events::one(MoneyDeposited { amount: command.amount }))
//!     }
//! }
//! impl Apply<AccountOpened> for Account {
//!     fn apply(&mut self, _: &AccountOpened) { self.open = true; }
//! }
//! impl Apply<MoneyDeposited> for Account {
//!     fn apply(&mut self, event: &MoneyDeposited) { self.balance += event.amount; }
//! }
//! #
//! # // What `#[event]`, `#[command]` and `#[derive(Aggregate)]` generate.
//! # impl es_core::Event for AccountOpened { const TYPE: &'static str = "AccountOpened"; }
//! # impl es_core::Event for MoneyDeposited { const TYPE: &'static str = "MoneyDeposited"; }
//! # #[derive(Debug, Clone, PartialEq)]
//! # pub enum AccountEvent { Opened(AccountOpened), Deposited(MoneyDeposited) }
//! # impl From<AccountOpened> for AccountEvent { fn from(e: AccountOpened) -> Self { Self::Opened(e) } }
//! # impl From<MoneyDeposited> for AccountEvent { fn from(e: MoneyDeposited) -> Self { Self::Deposited(e) } }
//! # impl es_core::EventSet for AccountEvent {
//! #     fn event_type(&self) -> &'static str {
//! #         match self { Self::Opened(_) => "AccountOpened", Self::Deposited(_) => "MoneyDeposited" }
//! #     }
//! #     fn schema_version(&self) -> u32 { 1 }
//! #     fn to_payload(&self) -> Result<es_core::store::Payload, serde_json::Error> {
//! #         match self { Self::Opened(e) => es_core::store::Payload::encode(e), Self::Deposited(e) => es_core::store::Payload::encode(e) }
//! #     }
//! #     fn from_stored(t: &str, _: u32, payload: &es_core::store::Payload) -> Result<Self, es_core::error::DecodeErrorKind> {
//! #         let bad = es_core::error::DecodeErrorKind::Payload;
//! #         match t {
//! #             "AccountOpened" => payload.decode().map(Self::Opened).map_err(bad),
//! #             "MoneyDeposited" => payload.decode().map(Self::Deposited).map_err(bad),
//! #             _ => Err(es_core::error::DecodeErrorKind::UnknownType),
//! #         }
//! #     }
//! #     fn event_types() -> &'static [&'static str] { &["AccountOpened", "MoneyDeposited"] }
//! # }
//! # #[derive(Debug, Clone)]
//! # pub enum AccountCommand { Deposit(Deposit) }
//! # impl Command for Deposit {
//! #     type Aggregate = Account;
//! #     const NAME: &'static str = "Deposit";
//! #     fn aggregate_id(&self) -> String { self.account_id.clone() }
//! #     fn validate(&self) -> Result<(), ValidationError> {
//! #         let mut error = ValidationError::new(Self::NAME);
//! #         if self.amount == 0 { error.field("amount", "must be positive"); }
//! #         error.into_result()
//! #     }
//! #     fn into_aggregate_command(self) -> AccountCommand { AccountCommand::Deposit(self) }
//! # }
//! # impl Aggregate for Account {
//! #     const NAME: &'static str = "account";
//! #     type Event = AccountEvent;
//! #     type Command = AccountCommand;
//! #     type Error = AccountError;
//! #     fn apply_event(&mut self, event: &AccountEvent) {
//! #         match event { AccountEvent::Opened(e) => self.apply(e), AccountEvent::Deposited(e) => self.apply(e) }
//! #     }
//! #     fn handle_command(&self, command: AccountCommand) -> Result<Events<Self>, AccountError> {
//! #         match command { AccountCommand::Deposit(c) => self.handle(c) }
//! #     }
//! # }
//!
//! // The tests:
//! let opened = AccountOpened { owner: "ada".into() };
//! AggregateTest::<Account>::given(vec![opened.into()])
//!     .when(Deposit { account_id: "1".into(), amount: 30 })
//!     .then_expect_events(vec![MoneyDeposited { amount: 30 }.into()])
//!     .then_state(|account| assert_eq!(account.balance, 30));
//!
//! AggregateTest::<Account>::given_no_events()
//!     .when(Deposit { account_id: "1".into(), amount: 30 })
//!     .then_expect_error(AccountError::NotOpen);
//!
//! let invalid = AggregateTest::<Account>::given_no_events()
//!     .when(Deposit { account_id: "1".into(), amount: 0 })
//!     .then_expect_validation_error();
//! assert_eq!(invalid.violations[0].field, Some("amount"));
//! ```

// Panicking with a readable message is how a test kit fails a test; every
// panic here is a failed expectation in the user's test.
#![allow(clippy::panic)]

mod aggregate;
mod read_side;
mod store_wrapper;

pub use aggregate::{AggregateTest, CommandFailure, Then};
pub(crate) use read_side::DispatchLog;
pub use read_side::ReadSideTest;
pub use store_wrapper::{Fault, InjectedFault, StoreCall, TestStore};

#[cfg(doc)]
use crate::aggregate::{Aggregate, Command};
