//! The account's rules, tested with es' given/when/then kit: no store needed.

use bank::{
    Account, AccountClosed, AccountError, AccountOpened, AccountVerified, CloseAccount, Deposit,
    MoneyDeposited, MoneyWithdrawn, OpenAccount, VerifyAccount, Withdraw,
};
use es_core::testkit::AggregateTest;

fn opened() -> AccountOpened {
    AccountOpened {
        account_id: "a1".into(),
        owner: "Ada".into(),
        account_number: "0000000042".into(),
        verification_code: "123456".into(),
    }
}

fn verified_with(balance: u64) -> Vec<bank::AccountEvent> {
    vec![opened().into(), AccountVerified {}.into(), MoneyDeposited { amount: balance }.into()]
}

#[test]
fn opening_generates_a_number_and_code_carried_in_the_event() {
    AggregateTest::<Account>::given_no_events()
        .when(OpenAccount { account_id: "a1".into(), owner: "Ada".into() })
        .then_state(|state| {
            assert!(state.open);
            assert_eq!(state.owner, "Ada");
            assert_eq!(state.account_number.len(), 10);
            assert_eq!(state.verification_code.len(), 6);
        });
}

#[test]
fn opening_twice_is_refused() {
    AggregateTest::<Account>::given(vec![opened().into()])
        .when(OpenAccount { account_id: "a1".into(), owner: "Ada".into() })
        .then_expect_error(AccountError::AlreadyOpen);
}

#[test]
fn verification_needs_the_right_code() {
    AggregateTest::<Account>::given(vec![opened().into()])
        .when(VerifyAccount { account_id: "a1".into(), code: "000000".into() })
        .then_expect_error(AccountError::WrongVerificationCode);
    AggregateTest::<Account>::given(vec![opened().into()])
        .when(VerifyAccount { account_id: "a1".into(), code: "123456".into() })
        .then_expect_events(vec![AccountVerified {}.into()]);
}

#[test]
fn withdrawing_more_than_the_balance_is_refused() {
    AggregateTest::<Account>::given(verified_with(50))
        .when(Withdraw { account_id: "a1".into(), amount: 51, reference: None })
        .then_expect_error(AccountError::InsufficientFunds { balance: 50, requested: 51 });
}

#[test]
fn withdrawing_from_an_unverified_account_is_refused() {
    AggregateTest::<Account>::given(vec![opened().into(), MoneyDeposited { amount: 10 }.into()])
        .when(Withdraw { account_id: "a1".into(), amount: 5, reference: None })
        .then_expect_error(AccountError::NotVerified);
}

#[test]
fn withdrawing_within_the_balance_records_the_reference() {
    AggregateTest::<Account>::given(verified_with(50))
        .when(Withdraw { account_id: "a1".into(), amount: 20, reference: Some("rent".into()) })
        .then_expect_events(vec![MoneyWithdrawn { amount: 20, reference: Some("rent".into()) }.into()]);
}

#[test]
fn zero_deposits_fail_validation() {
    let error = AggregateTest::<Account>::given(verified_with(0))
        .when(Deposit { account_id: "a1".into(), amount: 0 })
        .then_expect_validation_error();
    assert_eq!(error.violations.len(), 1);
    assert_eq!(error.violations[0].field, Some("amount"));
}

#[test]
fn long_references_fail_validation() {
    let error = AggregateTest::<Account>::given(verified_with(10))
        .when(Withdraw { account_id: "a1".into(), amount: 1, reference: Some("x".repeat(141)) })
        .then_expect_validation_error();
    assert_eq!(error.violations[0].field, Some("reference"));
}

#[test]
fn closing_needs_a_zero_balance_and_stops_everything() {
    AggregateTest::<Account>::given(verified_with(5))
        .when(CloseAccount { account_id: "a1".into() })
        .then_expect_error(AccountError::BalanceNotZero { balance: 5 });
    AggregateTest::<Account>::given(vec![opened().into(), AccountClosed {}.into()])
        .when(Deposit { account_id: "a1".into(), amount: 5 })
        .then_expect_error(AccountError::Closed);
}

#[test]
fn a_deposit_past_the_largest_balance_is_refused() {
    AggregateTest::<Account>::given(verified_with(5))
        .when(Deposit { account_id: "a1".into(), amount: u64::MAX - 4 })
        .then_expect_error(AccountError::BalanceLimit { balance: 5, requested: u64::MAX - 4 });
}

#[test]
fn commands_to_unopened_accounts_are_refused() {
    AggregateTest::<Account>::given_no_events()
        .when(Deposit { account_id: "a1".into(), amount: 5 })
        .then_expect_error(AccountError::NotOpen);
}

#[test]
fn version_1_withdrawals_are_upcast() {
    use es_core::EventSet;
    let event =
        bank::AccountEvent::from_stored("MoneyWithdrawn", 1, &serde_json::json!({"amount": 7}).into())
            .unwrap();
    assert_eq!(event, MoneyWithdrawn { amount: 7, reference: None }.into());
}
