//! Tests of the test kit, on an account aggregate declared with the macros:
//! three events, three commands, one error type.

use serde::{Deserialize, Serialize};

use super::{AggregateTest, CommandFailure};
use crate::error::ValidationError;
use crate::{command, event, Aggregate, Apply, Command, Events, Handle};

// ---- events ---------------------------------------------------------------

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {
    owner: String,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyDeposited {
    amount: u64,
}

#[event(version = 2)]
#[derive(Debug, Clone, PartialEq)]
struct MoneyWithdrawn {
    amount: u64,
}

// ---- commands -------------------------------------------------------------

#[command(aggregate = Account, validate = owner_not_blank)]
#[derive(Debug, Clone)]
struct OpenAccount {
    #[id]
    account_id: String,
    owner: String,
}

#[command(aggregate = Account, validate = deposit_positive)]
#[derive(Debug, Clone)]
struct Deposit {
    #[id]
    account_id: String,
    amount: u64,
}

#[command(aggregate = Account, validate = withdraw_positive)]
#[derive(Debug, Clone)]
struct Withdraw {
    #[id]
    account_id: String,
    amount: u64,
}

// Hand-written rules rather than `#[validate(..)]`: the tests assert these
// exact messages, and "blank" trims where `non_empty` does not.
fn owner_not_blank(command: &OpenAccount) -> Result<(), ValidationError> {
    let mut error = ValidationError::new(OpenAccount::NAME);
    if command.owner.trim().is_empty() {
        error.field("owner", "must not be blank");
    }
    error.into_result()
}

fn deposit_positive(command: &Deposit) -> Result<(), ValidationError> {
    positive_amount(Deposit::NAME, command.amount)
}

fn withdraw_positive(command: &Withdraw) -> Result<(), ValidationError> {
    positive_amount(Withdraw::NAME, command.amount)
}

fn positive_amount(command: &'static str, amount: u64) -> Result<(), ValidationError> {
    let mut error = ValidationError::new(command);
    if amount == 0 {
        error.field("amount", "must be positive");
    }
    error.into_result()
}

// ---- the aggregate --------------------------------------------------------

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum AccountError {
    #[error("account is not open")]
    NotOpen,
    #[error("account is already open for {owner}")]
    AlreadyOpen { owner: String },
    #[error("balance {balance} is below the requested {requested}")]
    InsufficientFunds { balance: u64, requested: u64 },
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(
    name = "account",
    error = AccountError,
    events(AccountOpened, MoneyDeposited, MoneyWithdrawn),
    commands(OpenAccount, Deposit, Withdraw)
)]
struct Account {
    owner: Option<String>,
    balance: u64,
    deposits: u32,
}

impl Handle<OpenAccount> for Account {
    fn handle(&self, command: OpenAccount) -> Result<Events<Self>, AccountError> {
        match &self.owner {
            None => Ok(Events::one(AccountOpened { owner: command.owner })),
            // Opening again for the same owner is a harmless repeat.
            Some(owner) if *owner == command.owner => Ok(Events::none()),
            Some(owner) => Err(AccountError::AlreadyOpen { owner: owner.clone() }),
        }
    }
}

impl Handle<Deposit> for Account {
    fn handle(&self, command: Deposit) -> Result<Events<Self>, AccountError> {
        if self.owner.is_none() {
            return Err(AccountError::NotOpen);
        }
        Ok(Events::one(MoneyDeposited { amount: command.amount }))
    }
}

impl Handle<Withdraw> for Account {
    fn handle(&self, command: Withdraw) -> Result<Events<Self>, AccountError> {
        if self.owner.is_none() {
            return Err(AccountError::NotOpen);
        }
        if command.amount > self.balance {
            return Err(AccountError::InsufficientFunds { balance: self.balance, requested: command.amount });
        }
        // Two events for one command, so the kit sees multi-event outcomes.
        Ok(Events::one(MoneyWithdrawn { amount: command.amount }).and(MoneyDeposited { amount: 0 }))
    }
}

impl Apply<AccountOpened> for Account {
    fn apply(&mut self, event: &AccountOpened) {
        self.owner = Some(event.owner.clone());
    }
}

impl Apply<MoneyDeposited> for Account {
    fn apply(&mut self, event: &MoneyDeposited) {
        self.balance += event.amount;
        self.deposits += 1;
    }
}

impl Apply<MoneyWithdrawn> for Account {
    fn apply(&mut self, event: &MoneyWithdrawn) {
        self.balance -= event.amount;
    }
}

// ---- helpers --------------------------------------------------------------

fn opened() -> AccountEvent {
    AccountOpened { owner: "ada".into() }.into()
}

fn deposited(amount: u64) -> AccountEvent {
    MoneyDeposited { amount }.into()
}

fn withdrawn(amount: u64) -> AccountEvent {
    MoneyWithdrawn { amount }.into()
}

fn open(owner: &str) -> OpenAccount {
    OpenAccount { account_id: "acc-1".into(), owner: owner.into() }
}

fn deposit(amount: u64) -> Deposit {
    Deposit { account_id: "acc-1".into(), amount }
}

fn withdraw(amount: u64) -> Withdraw {
    Withdraw { account_id: "acc-1".into(), amount }
}

/// Runs `f`, which must panic, and returns its panic message.
fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("the check was expected to panic");
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map(|s| (*s).to_owned()).unwrap_or_default(),
    }
}

// ---- passing checks -------------------------------------------------------

#[test]
fn a_new_aggregate_handles_its_first_command() {
    AggregateTest::<Account>::given_no_events()
        .when(open("ada"))
        .then_expect_events(vec![opened()])
        .then_state(|account| {
            assert_eq!(account.owner.as_deref(), Some("ada"));
            assert_eq!(account.balance, 0);
        });
}

#[test]
fn given_events_are_folded_before_the_command_runs() {
    AggregateTest::<Account>::given(vec![opened(), deposited(50), deposited(20)])
        .when(withdraw(60))
        .then_expect_events(vec![withdrawn(60), deposited(0)])
        .then_state(|account| {
            assert_eq!(account.balance, 10, "70 deposited, 60 withdrawn");
            assert_eq!(account.deposits, 3, "the zero deposit of the withdrawal was applied too");
        });
}

#[test]
fn state_is_the_state_after_the_produced_events() {
    let then = AggregateTest::<Account>::given(vec![opened()]).when(deposit(5));
    assert_eq!(then.state().balance, 5);
    assert_eq!(then.state().deposits, 1);
}

#[test]
fn a_command_without_effect_expects_no_events() {
    AggregateTest::<Account>::given(vec![opened()])
        .when(open("ada"))
        .then_expect_no_events()
        .then_state(|account| assert_eq!(account.owner.as_deref(), Some("ada")));
}

#[test]
fn a_rejection_is_matched_by_value() {
    AggregateTest::<Account>::given(vec![opened(), deposited(10)])
        .when(withdraw(11))
        .then_expect_error(AccountError::InsufficientFunds { balance: 10, requested: 11 });
}

#[test]
fn a_rejection_is_matched_by_predicate() {
    AggregateTest::<Account>::given(vec![opened()])
        .when(open("bob"))
        .then_expect_error_matching(|e| matches!(e, AccountError::AlreadyOpen { owner } if owner == "ada"));
}

#[test]
fn validation_runs_before_the_aggregate_sees_the_command() {
    // The account is not open, so `handle` would say NotOpen; validation
    // must answer first.
    let invalid =
        AggregateTest::<Account>::given_no_events().when(withdraw(0)).then_expect_validation_error();
    assert_eq!(invalid.command, "Withdraw");
    assert_eq!(invalid.violations.len(), 1);
    assert_eq!(invalid.violations[0].field, Some("amount"));
    assert_eq!(invalid.violations[0].message, "must be positive");
}

#[test]
fn into_result_reports_events_and_both_kinds_of_failure() {
    let events = AggregateTest::<Account>::given(vec![opened()]).when(deposit(3)).into_result();
    assert_eq!(events, Ok(vec![deposited(3)]));

    let rejected = AggregateTest::<Account>::given_no_events().when(deposit(3)).into_result();
    assert_eq!(rejected, Err(CommandFailure::Rejected(AccountError::NotOpen)));

    let invalid = AggregateTest::<Account>::given_no_events().when(open("  ")).into_result();
    match invalid {
        Err(CommandFailure::Invalid(error)) => assert_eq!(error.violations[0].field, Some("owner")),
        other => panic!("expected a validation failure, got {other:?}"),
    }
}

// ---- failing checks: each panics with a message naming what went wrong ----

#[test]
fn mismatched_events_list_both_sides_and_mark_the_first_difference() {
    let message = panic_message(|| {
        AggregateTest::<Account>::given(vec![opened(), deposited(50)])
            .when(withdraw(20))
            .then_expect_events(vec![withdrawn(20), deposited(1), deposited(2)]);
    });
    let expected = "\
aggregate `account` given 2 events, when `Withdraw`: the produced events differ from the expected ones \
(first difference at index 1, marked `>`)
expected 3 events:
    [0] MoneyWithdrawn(MoneyWithdrawn { amount: 20 })
  > [1] MoneyDeposited(MoneyDeposited { amount: 1 })
    [2] MoneyDeposited(MoneyDeposited { amount: 2 })
actual 2 events:
    [0] MoneyWithdrawn(MoneyWithdrawn { amount: 20 })
  > [1] MoneyDeposited(MoneyDeposited { amount: 0 })
command: Withdraw { account_id: \"acc-1\", amount: 20 }";
    assert_eq!(message, expected);
}

#[test]
fn a_missing_event_is_marked_as_none() {
    let message = panic_message(|| {
        AggregateTest::<Account>::given(vec![opened()])
            .when(deposit(5))
            .then_expect_events(vec![deposited(5), deposited(6)]);
    });
    assert!(message.contains("first difference at index 1"), "{message}");
    assert!(
        message.contains(
            "actual 1 event:\n    [0] MoneyDeposited(MoneyDeposited { amount: 5 })\n  > [1] (none)\n"
        ),
        "{message}"
    );
}

#[test]
#[should_panic(expected = "aggregate `account` given 1 event, when `Deposit`: the produced events differ")]
fn unexpected_events_fail() {
    AggregateTest::<Account>::given(vec![opened()]).when(deposit(5)).then_expect_events(vec![deposited(6)]);
}

#[test]
#[should_panic(
    expected = "when `Deposit`: expected 1 event, but the aggregate rejected the command with NotOpen"
)]
fn expecting_events_from_a_rejected_command_fails() {
    AggregateTest::<Account>::given_no_events().when(deposit(5)).then_expect_events(vec![deposited(5)]);
}

#[test]
#[should_panic(
    expected = "when `Deposit`: expected 1 event, but the command failed validation: command `Deposit` \
                           is invalid: `amount` must be positive"
)]
fn expecting_events_from_an_invalid_command_fails() {
    AggregateTest::<Account>::given(vec![opened()]).when(deposit(0)).then_expect_events(vec![deposited(0)]);
}

#[test]
#[should_panic(expected = "when `OpenAccount`: expected no events, but the command produced 1 event:\n    \
                           [0] AccountOpened(AccountOpened { owner: \"ada\" })")]
fn expecting_no_events_when_some_were_produced_fails() {
    AggregateTest::<Account>::given_no_events().when(open("ada")).then_expect_no_events();
}

#[test]
#[should_panic(
    expected = "when `Deposit`: expected no events, but the aggregate rejected the command with NotOpen"
)]
fn expecting_no_events_from_a_rejected_command_fails() {
    AggregateTest::<Account>::given_no_events().when(deposit(1)).then_expect_no_events();
}

#[test]
#[should_panic(expected = "when `Deposit`: expected error NotOpen, but the command succeeded with 1 event:")]
fn expecting_an_error_from_a_successful_command_fails() {
    AggregateTest::<Account>::given(vec![opened()]).when(deposit(1)).then_expect_error(AccountError::NotOpen);
}

#[test]
#[should_panic(
    expected = "when `Withdraw`: expected error NotOpen, but got error InsufficientFunds { balance: 0, \
                           requested: 5 }"
)]
fn expecting_another_error_fails() {
    AggregateTest::<Account>::given(vec![opened()])
        .when(withdraw(5))
        .then_expect_error(AccountError::NotOpen);
}

#[test]
#[should_panic(expected = "when `Withdraw`: expected error NotOpen, but the command failed validation")]
fn expecting_an_error_from_an_invalid_command_fails() {
    AggregateTest::<Account>::given_no_events().when(withdraw(0)).then_expect_error(AccountError::NotOpen);
}

#[test]
#[should_panic(
    expected = "when `OpenAccount`: the error does not match the expectation: AlreadyOpen { owner: \
                           \"ada\" }"
)]
fn an_error_failing_the_predicate_fails() {
    AggregateTest::<Account>::given(vec![opened()])
        .when(open("bob"))
        .then_expect_error_matching(|e| matches!(e, AccountError::NotOpen));
}

#[test]
#[should_panic(expected = "when `Deposit`: expected an error, but the command succeeded with 1 event:")]
fn expecting_a_matching_error_from_a_successful_command_fails() {
    AggregateTest::<Account>::given(vec![opened()])
        .when(deposit(1))
        .then_expect_error_matching(|e| matches!(e, AccountError::NotOpen));
}

#[test]
#[should_panic(
    expected = "when `Deposit`: expected a validation error, but the command passed validation and \
                           produced 1 event:"
)]
fn expecting_a_validation_error_from_a_valid_command_fails() {
    AggregateTest::<Account>::given(vec![opened()]).when(deposit(1)).then_expect_validation_error();
}

#[test]
#[should_panic(
    expected = "when `Deposit`: expected a validation error, but the command passed validation and \
                           the aggregate rejected it with NotOpen"
)]
fn expecting_a_validation_error_from_a_rejected_command_fails() {
    AggregateTest::<Account>::given_no_events().when(deposit(1)).then_expect_validation_error();
}

#[test]
#[should_panic(
    expected = "when `Withdraw`: expected the command to succeed to check the state, but the aggregate \
                           rejected the command with InsufficientFunds"
)]
fn checking_the_state_after_a_rejected_command_fails() {
    AggregateTest::<Account>::given(vec![opened()]).when(withdraw(1)).then_state(|_| {});
}

#[test]
#[should_panic(expected = "balance is wrong")]
fn a_failing_state_check_fails_the_test() {
    AggregateTest::<Account>::given(vec![opened()])
        .when(deposit(1))
        .then_state(|account| assert_eq!(account.balance, 2, "balance is wrong"));
}
