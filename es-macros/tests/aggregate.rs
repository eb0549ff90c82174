//! A small real aggregate built with all three macros, checked end to end:
//! the generated `EventSet` round trips, decode errors, command validation,
//! and a full `Es` run on the in-memory store with time travel.

use std::fmt;

use es_core::error::{DecodeErrorKind, ExecuteError, UpcastError, ValidationError, Violation};
use es_core::store::{EventStore, ExpectedVersion, NewEvent, Payload};
use es_core::{
    command, event, Aggregate, Apply, Command, Es, Event, EventSet, Events, Handle, StreamId, StreamVersion,
};
use es_memory::InMemoryEventStore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// An account was opened.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOpened {
    /// Who owns it.
    pub owner: String,
    /// Its currency.
    pub currency: String,
}

/// Money came in.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct MoneyDeposited {
    /// How much.
    pub amount: u64,
}

/// Money went out. Version 1 had no `reference`.
#[event(name = "Withdrawn", version = 2, upcast = upcast_withdrawn)]
#[derive(Debug, Clone, PartialEq)]
pub struct MoneyWithdrawn {
    /// How much.
    pub amount: u64,
    /// What for.
    pub reference: String,
}

fn upcast_withdrawn(from_version: u32, mut payload: Value) -> Result<Value, UpcastError> {
    match from_version {
        1 => {
            payload["reference"] = json!("before references");
            Ok(payload)
        }
        other => Err(UpcastError::UnsupportedVersion { from: other }),
    }
}

/// Why the account refused a command.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountError {
    /// Opening an open account.
    AlreadyOpen,
    /// Moving money on an account that is not open.
    NotOpen,
    /// Withdrawing more than the balance.
    InsufficientFunds {
        /// The balance.
        balance: u64,
        /// The amount asked for.
        requested: u64,
    },
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyOpen => f.write_str("account is already open"),
            Self::NotOpen => f.write_str("account is not open"),
            Self::InsufficientFunds { balance, requested } => {
                write!(f, "balance {balance} does not cover {requested}")
            }
        }
    }
}

impl std::error::Error for AccountError {}

/// Opens an account.
#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct OpenAccount {
    /// The account.
    #[id]
    pub account_id: String,
    /// Who owns it.
    #[validate(non_empty)]
    pub owner: String,
    /// Its currency.
    #[validate(non_empty)]
    pub currency: String,
}

/// Deposits money.
#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct Deposit {
    /// The account.
    #[id]
    pub account_id: String,
    /// How much.
    #[validate(min = 1, max = 10_000)]
    pub amount: u64,
}

/// Withdraws money; the account is named by number.
#[command(aggregate = Account, validate = reference_is_not_reserved)]
#[derive(Debug, Clone)]
pub struct Withdraw {
    /// The account number (routed through its `ToString`).
    #[id]
    pub account_no: u32,
    /// How much.
    #[validate(min = 1)]
    pub amount: u64,
    /// What for.
    pub reference: String,
}

fn reference_is_not_reserved(command: &Withdraw) -> Result<(), ValidationError> {
    let mut error = ValidationError::new(Withdraw::NAME);
    if command.reference.starts_with("SYS-") {
        error.rule("references starting with `SYS-` are reserved");
    }
    error.into_result()
}

/// A bank account.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(
    name = "account",
    error = AccountError,
    events(AccountOpened, MoneyDeposited, MoneyWithdrawn),
    commands(OpenAccount, Deposit, Withdraw),
    snapshot_version = 3
)]
pub struct Account {
    owner: Option<String>,
    balance: u64,
    references: Vec<String>,
}

impl Handle<OpenAccount> for Account {
    fn handle(&self, command: OpenAccount) -> Result<Events<Self>, AccountError> {
        if self.owner.is_some() {
            return Err(AccountError::AlreadyOpen);
        }
        Ok(Events::one(AccountOpened { owner: command.owner, currency: command.currency }))
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
        Ok(Events::one(MoneyWithdrawn { amount: command.amount, reference: command.reference }))
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
    }
}

impl Apply<MoneyWithdrawn> for Account {
    fn apply(&mut self, event: &MoneyWithdrawn) {
        self.balance -= event.amount;
        self.references.push(event.reference.clone());
    }
}

fn sample_events() -> Vec<AccountEvent> {
    vec![
        AccountOpened { owner: "ada".into(), currency: "EUR".into() }.into(),
        MoneyDeposited { amount: 100 }.into(),
        MoneyWithdrawn { amount: 30, reference: "rent".into() }.into(),
    ]
}

fn violation(field: Option<&'static str>, message: &str) -> Violation {
    Violation { field, message: message.to_owned() }
}

#[test]
fn event_attribute_sets_type_names_and_versions() {
    assert_eq!((AccountOpened::TYPE, AccountOpened::VERSION), ("AccountOpened", 1));
    assert_eq!((MoneyDeposited::TYPE, MoneyDeposited::VERSION), ("MoneyDeposited", 1));
    assert_eq!((MoneyWithdrawn::TYPE, MoneyWithdrawn::VERSION), ("Withdrawn", 2));
}

#[test]
fn aggregate_derive_sets_name_snapshot_version_and_event_types() {
    assert_eq!(Account::NAME, "account");
    assert_eq!(Account::SNAPSHOT_VERSION, 3);
    assert_eq!(AccountEvent::event_types(), ["AccountOpened", "MoneyDeposited", "Withdrawn"]);
}

#[test]
fn event_set_round_trips_through_payloads() {
    for event in sample_events() {
        let payload = event.to_payload().unwrap();
        let decoded =
            AccountEvent::from_stored(event.event_type(), event.schema_version(), &payload).unwrap();
        assert_eq!(decoded, event);
    }
    let withdrawn = &sample_events()[2];
    assert_eq!((withdrawn.event_type(), withdrawn.schema_version()), ("Withdrawn", 2));
    assert_eq!(withdrawn.to_payload().unwrap(), json!({"amount": 30, "reference": "rent"}));
}

#[test]
fn older_schema_versions_are_upcast_on_decode() {
    let decoded = AccountEvent::from_stored("Withdrawn", 1, &Payload::from(json!({"amount": 5}))).unwrap();
    assert_eq!(
        decoded,
        AccountEvent::MoneyWithdrawn(MoneyWithdrawn { amount: 5, reference: "before references".into() })
    );
}

#[test]
fn unknown_types_and_newer_versions_are_typed_decode_errors() {
    let unknown = AccountEvent::from_stored("MoneyWithdrawn", 2, &Payload::from(json!({}))).unwrap_err();
    assert!(matches!(unknown, DecodeErrorKind::UnknownType), "{unknown:?}");

    let newer =
        AccountEvent::from_stored("Withdrawn", 3, &Payload::from(json!({"amount": 5, "reference": "x"})))
            .unwrap_err();
    assert!(matches!(newer, DecodeErrorKind::NewerVersion { found: 3, supported: 2 }), "{newer:?}");

    let bad = AccountEvent::from_stored("MoneyDeposited", 1, &Payload::from(json!({"amount": "lots"})))
        .unwrap_err();
    assert!(matches!(bad, DecodeErrorKind::Payload(_)), "{bad:?}");
}

#[test]
fn commands_route_by_their_id_field() {
    let open = OpenAccount { account_id: "7".into(), owner: "ada".into(), currency: "EUR".into() };
    assert_eq!(open.aggregate_id(), "7");
    let withdraw = Withdraw { account_no: 7, amount: 1, reference: "rent".into() };
    assert_eq!(withdraw.aggregate_id(), "7");
    assert_eq!((OpenAccount::NAME, Withdraw::NAME), ("OpenAccount", "Withdraw"));
    assert!(matches!(withdraw.into_aggregate_command(), AccountCommand::Withdraw(w) if w.amount == 1));
}

#[test]
fn field_rules_collect_every_violation() {
    let open = OpenAccount { account_id: "7".into(), owner: String::new(), currency: String::new() };
    let error = open.validate().unwrap_err();
    assert_eq!(error.command, "OpenAccount");
    assert_eq!(
        error.violations,
        [violation(Some("owner"), "must not be empty"), violation(Some("currency"), "must not be empty")]
    );

    let too_small = Deposit { account_id: "7".into(), amount: 0 };
    assert_eq!(
        too_small.validate().unwrap_err().violations,
        [violation(Some("amount"), "must be at least 1")]
    );
    let too_big = Deposit { account_id: "7".into(), amount: 10_001 };
    assert_eq!(
        too_big.validate().unwrap_err().violations,
        [violation(Some("amount"), "must be at most 10000")]
    );
    assert_eq!(Deposit { account_id: "7".into(), amount: 10_000 }.validate(), Ok(()));
}

#[test]
fn the_user_check_runs_after_the_field_rules_pass() {
    let reserved = Withdraw { account_no: 7, amount: 5, reference: "SYS-1".into() };
    assert_eq!(
        reserved.validate().unwrap_err().violations,
        [violation(None, "references starting with `SYS-` are reserved")]
    );
    // A broken field rule is reported alone: the user's check may rely on it.
    let both = Withdraw { account_no: 7, amount: 0, reference: "SYS-1".into() };
    assert_eq!(both.validate().unwrap_err().violations, [violation(Some("amount"), "must be at least 1")]);
    assert_eq!(Withdraw { account_no: 7, amount: 5, reference: "rent".into() }.validate(), Ok(()));
}

#[tokio::test]
async fn es_runs_the_aggregate_on_the_in_memory_store() {
    let store = InMemoryEventStore::new();
    let es = Es::builder().event_store(store.clone()).build().await.unwrap();

    es.execute(OpenAccount { account_id: "7".into(), owner: "ada".into(), currency: "EUR".into() })
        .await
        .unwrap();
    es.execute(Deposit { account_id: "7".into(), amount: 100 }).await.unwrap();
    let outcome = es.execute(Withdraw { account_no: 7, amount: 30, reference: "rent".into() }).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(3)));
    assert_eq!(outcome.events, [AccountEvent::from(MoneyWithdrawn { amount: 30, reference: "rent".into() })]);

    let refused = es.execute(Withdraw { account_no: 7, amount: 1_000, reference: "car".into() }).await;
    assert!(
        matches!(
            refused,
            Err(ExecuteError::Rejected(AccountError::InsufficientFunds { balance: 70, requested: 1_000 }))
        ),
        "{refused:?}"
    );
    let invalid = es.execute(Deposit { account_id: "7".into(), amount: 0 }).await;
    assert!(matches!(invalid, Err(ExecuteError::Validation(_))), "{invalid:?}");
    assert_eq!(store.len(), 3, "refused and invalid commands append nothing");

    let stored = store
        .read_stream(&StreamId::new("account-7"), StreamVersion(1), es_core::store::Direction::Forward, 10)
        .await;
    let types: Vec<String> = stored.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["AccountOpened", "MoneyDeposited", "Withdrawn"]);

    let now: Account = es.load("7").await.unwrap();
    assert_eq!(
        (now.owner.as_deref(), now.balance, now.references.as_slice()),
        (Some("ada"), 70, &["rent".to_owned()][..])
    );
    let after_deposit: Account = es.load_at("7", StreamVersion(2)).await.unwrap();
    assert_eq!((after_deposit.balance, after_deposit.references.len()), (100, 0));
    let after_open: Account = es.load_at("7", StreamVersion(1)).await.unwrap();
    assert_eq!((after_open.owner.as_deref(), after_open.balance), (Some("ada"), 0));
}

#[tokio::test]
async fn es_upcasts_old_events_it_reads_from_the_store() {
    let store = InMemoryEventStore::new();
    let stream = StreamId::for_aggregate(Account::NAME, "9");
    let history = vec![
        NewEvent::new("account", "AccountOpened", 1, json!({"owner": "bob", "currency": "EUR"})),
        NewEvent::new("account", "MoneyDeposited", 1, json!({"amount": 50})),
        NewEvent::new("account", "Withdrawn", 1, json!({"amount": 20})),
    ];
    store.append(&stream, ExpectedVersion::NoStream, history).await.unwrap();
    let es = Es::builder().event_store(store).build().await.unwrap();

    let account: Account = es.load("9").await.unwrap();
    assert_eq!(account.balance, 30);
    assert_eq!(account.references, ["before references"]);
}
