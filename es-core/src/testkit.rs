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
//! and fails chosen ones, or all of them as during an outage.
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

use std::fmt::{self, Debug, Write as _};

use crate::aggregate::{Aggregate, Command};
use crate::error::ValidationError;

mod store_wrapper;

pub use store_wrapper::{Fault, InjectedFault, StoreCall, TestStore};

/// The start of a given/when/then test of aggregate `A`: the events that
/// already happened. See the [module docs](self) for an example.
pub struct AggregateTest<A: Aggregate> {
    given: Vec<A::Event>,
}

impl<A: Aggregate> AggregateTest<A> {
    /// Starts a test of an aggregate that already went through `events`
    /// (in order).
    pub fn given(events: Vec<A::Event>) -> Self {
        Self { given: events }
    }

    /// Starts a test of an aggregate that has no events yet (a new one).
    pub fn given_no_events() -> Self {
        Self { given: Vec::new() }
    }

    /// Runs `command` against the state folded from the given events, as the
    /// runtime would: [`Command::validate`] first, and only if that passes
    /// [`Command::into_aggregate_command`] and [`Aggregate::handle_command`].
    /// Check the outcome with the `then_*` methods of the returned [`Then`].
    pub fn when<C: Command<Aggregate = A>>(self, command: C) -> Then<A> {
        let mut state = A::default();
        for event in &self.given {
            state.apply_event(event);
        }
        let context = Context {
            aggregate: A::NAME,
            command: C::NAME,
            command_debug: format!("{command:?}"),
            given: self.given.len(),
        };
        let outcome = match command.validate() {
            Err(invalid) => Err(CommandFailure::Invalid(invalid)),
            Ok(()) => match state.handle_command(command.into_aggregate_command()) {
                Ok(events) => Ok(events.into_vec()),
                Err(refusal) => Err(CommandFailure::Rejected(refusal)),
            },
        };
        if let Ok(events) = &outcome {
            for event in events {
                state.apply_event(event);
            }
        }
        Then { context, state, outcome }
    }
}

impl<A: Aggregate> Debug for AggregateTest<A>
where
    A::Event: Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateTest").field("aggregate", &A::NAME).field("given", &self.given).finish()
    }
}

/// Why a command produced no events: it failed validation, or the aggregate
/// refused it.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandFailure<E> {
    /// [`Command::validate`] found broken rules; the aggregate never saw the
    /// command.
    Invalid(ValidationError),
    /// The aggregate's `handle` returned this error.
    Rejected(E),
}

impl<E: Debug> fmt::Display for CommandFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(invalid) => write!(f, "the command failed validation: {invalid}"),
            Self::Rejected(error) => write!(f, "the aggregate rejected the command with {error:?}"),
        }
    }
}

/// What the test reports about itself in failure messages.
struct Context {
    aggregate: &'static str,
    command: &'static str,
    command_debug: String,
    given: usize,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "aggregate `{}` given {}, when `{}`",
            self.aggregate,
            count(self.given, "event"),
            self.command
        )
    }
}

/// The outcome of [`AggregateTest::when`], to check with the `then_*`
/// methods. Each check panics with a readable message when the outcome is
/// not what it expects; the chainable ones return `self` so that several
/// checks read as one sentence.
pub struct Then<A: Aggregate> {
    context: Context,
    /// The given state, plus the produced events if the command succeeded.
    state: A,
    outcome: Result<Vec<A::Event>, CommandFailure<A::Error>>,
}

impl<A: Aggregate> Then<A> {
    /// Panics with the context, the command and `detail`.
    #[track_caller]
    fn fail(&self, detail: fmt::Arguments<'_>) -> ! {
        let detail = detail.to_string();
        panic!("{}: {}\ncommand: {}", self.context, detail.trim_end(), self.context.command_debug)
    }

    /// Runs `check` on the aggregate's state after the produced events were
    /// applied to it. Put assertions in `check`.
    ///
    /// # Panics
    /// If the command failed (there is no state after it), or if `check`
    /// panics.
    #[track_caller]
    pub fn then_state(self, check: impl FnOnce(&A)) -> Self {
        check(self.state());
        self
    }

    /// The aggregate's state after the produced events were applied to it.
    ///
    /// # Panics
    /// If the command failed: there is no state after it.
    #[track_caller]
    pub fn state(&self) -> &A {
        match &self.outcome {
            Ok(_) => &self.state,
            Err(failure) => {
                self.fail(format_args!("expected the command to succeed to check the state, but {failure}"))
            }
        }
    }

    /// The events the command produced, or why it produced none. For checks
    /// the `then_*` methods do not cover; never panics.
    ///
    /// # Errors
    /// The validation error or the aggregate's error, as a [`CommandFailure`].
    pub fn into_result(self) -> Result<Vec<A::Event>, CommandFailure<A::Error>> {
        self.outcome
    }
}

/// The checks that may print events in their messages: each needs the
/// aggregate's events to be `Debug` (the generated event enum is, when every
/// listed event derives `Debug`).
impl<A: Aggregate> Then<A>
where
    A::Event: Debug,
{
    /// Checks that the command produced exactly `expected`, in order.
    ///
    /// # Panics
    /// If the command failed, or produced other events; the message lists
    /// the expected and the actual events one per line with their index and
    /// marks the first difference with `>`.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>) -> Self
    where
        A::Event: PartialEq,
    {
        match &self.outcome {
            Err(failure) => self.fail(format_args!(
                "expected {}, but {failure}\nexpected:\n{}",
                count(expected.len(), "event"),
                list(&expected, None)
            )),
            Ok(actual) if *actual != expected => {
                let first = first_difference(&expected, actual);
                self.fail(format_args!(
                    "the produced events differ from the expected ones (first difference at index {first}, \
                     marked `>`)\nexpected {}:\n{}actual {}:\n{}",
                    count(expected.len(), "event"),
                    list(&expected, Some(first)),
                    count(actual.len(), "event"),
                    list(actual, Some(first)),
                ))
            }
            Ok(_) => self,
        }
    }

    /// Checks that the command succeeded without producing any event.
    ///
    /// # Panics
    /// If the command failed or produced events.
    #[track_caller]
    pub fn then_expect_no_events(self) -> Self {
        match &self.outcome {
            Err(failure) => self.fail(format_args!("expected no events, but {failure}")),
            Ok(actual) if !actual.is_empty() => self.fail(format_args!(
                "expected no events, but the command produced {}:\n{}",
                count(actual.len(), "event"),
                list(actual, None)
            )),
            Ok(_) => self,
        }
    }

    /// Checks that the aggregate rejected the command with `expected`.
    ///
    /// # Panics
    /// If the command succeeded, failed validation, or was rejected with
    /// another error.
    #[track_caller]
    pub fn then_expect_error(self, expected: A::Error) -> Self
    where
        A::Error: PartialEq,
    {
        match &self.outcome {
            Err(CommandFailure::Rejected(actual)) if *actual == expected => self,
            Err(CommandFailure::Rejected(actual)) => {
                self.fail(format_args!("expected error {expected:?}, but got error {actual:?}"))
            }
            Err(invalid) => self.fail(format_args!("expected error {expected:?}, but {invalid}")),
            Ok(events) => self.fail(format_args!(
                "expected error {expected:?}, but the command succeeded with {}:\n{}",
                count(events.len(), "event"),
                list(events, None)
            )),
        }
    }

    /// Checks that the aggregate rejected the command with an error for
    /// which `predicate` holds, such as `|e| matches!(e, AccountError::Overdrawn { .. })`.
    ///
    /// # Panics
    /// If the command succeeded, failed validation, or `predicate` returns
    /// false for its error.
    #[track_caller]
    pub fn then_expect_error_matching(self, predicate: impl FnOnce(&A::Error) -> bool) -> Self {
        match &self.outcome {
            Err(CommandFailure::Rejected(actual)) if predicate(actual) => self,
            Err(CommandFailure::Rejected(actual)) => {
                self.fail(format_args!("the error does not match the expectation: {actual:?}"))
            }
            Err(invalid) => self.fail(format_args!("expected an error from the aggregate, but {invalid}")),
            Ok(events) => self.fail(format_args!(
                "expected an error, but the command succeeded with {}:\n{}",
                count(events.len(), "event"),
                list(events, None)
            )),
        }
    }

    /// Checks that the command failed validation, and returns the
    /// [`ValidationError`] for further checks.
    ///
    /// # Panics
    /// If the command passed validation.
    #[track_caller]
    pub fn then_expect_validation_error(self) -> ValidationError {
        match self.outcome {
            Err(CommandFailure::Invalid(invalid)) => invalid,
            Err(CommandFailure::Rejected(ref error)) => self.fail(format_args!(
                "expected a validation error, but the command passed validation and the aggregate rejected \
                 it with {error:?}"
            )),
            Ok(ref events) => self.fail(format_args!(
                "expected a validation error, but the command passed validation and produced {}:\n{}",
                count(events.len(), "event"),
                list(events, None)
            )),
        }
    }
}

impl<A: Aggregate> Debug for Then<A>
where
    A::Event: Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Then")
            .field("aggregate", &self.context.aggregate)
            .field("command", &self.context.command_debug)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

/// "1 event", "3 events".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The index of the first event that differs (or is missing on one side).
fn first_difference<E: PartialEq>(expected: &[E], actual: &[E]) -> usize {
    expected.iter().zip(actual).position(|(e, a)| e != a).unwrap_or(expected.len().min(actual.len()))
}

/// One line per event, `    [i] Event`, with `  > ` before the line at
/// `mark`; a marked index past the end shows as `(none)`.
fn list<E: Debug>(events: &[E], mark: Option<usize>) -> String {
    let mut out = String::new();
    for (i, event) in events.iter().enumerate() {
        let marker = if mark == Some(i) { "  > " } else { "    " };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{marker}[{i}] {event:?}");
    }
    match mark {
        Some(i) if i >= events.len() => {
            let _ = writeln!(out, "  > [{i}] (none)");
        }
        _ if events.is_empty() => out.push_str("    (none)\n"),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests;
