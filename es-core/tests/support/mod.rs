//! A bank account aggregate declared with `#[event]`, `#[command]` and
//! `#[derive(Aggregate)]`. Tests that count store calls or inject faults
//! wrap their store in `es_core::testkit::TestStore`.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub(crate) mod readside;

use std::sync::atomic::{AtomicBool, Ordering};

use es_core::{command, event, Aggregate, Apply, Events, Handle, StreamId};
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
