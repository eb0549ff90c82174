//! [`AggregateTest`]: given events, when a command, then expect events or
//! an error; see the [test kit's docs](super) for an example.

use std::fmt::{self, Debug, Write as _};

use crate::aggregate::{Aggregate, Command};
use crate::error::ValidationError;

/// The start of a given/when/then test of aggregate `A`: the events that
/// already happened. See the [test kit's docs](super) for an example.
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
