//! The ledger: three events (one upcast from an older version), three
//! commands with validation rules, and the aggregate.

use std::fmt;

use es_core::error::UpcastError;
use es_core::{command, event, Aggregate, Apply, Events, Handle};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A ledger was opened.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opened {
    /// Who owns it.
    pub(crate) owner: String,
}

/// Money came in.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deposited {
    /// How much.
    pub(crate) amount: u64,
}

/// A note was written. Version 1 had `body` instead of `text`.
#[event(version = 2, upcast = upcast_noted)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Noted {
    /// The note.
    pub(crate) text: String,
}

fn upcast_noted(from_version: u32, payload: Value) -> Result<Value, UpcastError> {
    match from_version {
        1 => {
            let body = payload.get("body").cloned().ok_or(UpcastError::MissingField { field: "body" })?;
            Ok(json!({ "text": body }))
        }
        other => Err(UpcastError::UnsupportedVersion { from: other }),
    }
}

/// Opens a ledger.
#[command(aggregate = Ledger)]
#[derive(Debug, Clone)]
pub(crate) struct Open {
    /// The ledger.
    #[id]
    pub(crate) id: String,
    /// Its owner.
    #[validate(non_empty)]
    pub(crate) owner: String,
}

/// Deposits money.
#[command(aggregate = Ledger)]
#[derive(Debug, Clone)]
pub(crate) struct Deposit {
    /// The ledger.
    #[id]
    pub(crate) id: String,
    /// How much.
    #[validate(min = 1)]
    pub(crate) amount: u64,
}

/// Writes a note.
#[command(aggregate = Ledger)]
#[derive(Debug, Clone)]
pub(crate) struct Note {
    /// The ledger.
    #[id]
    pub(crate) id: String,
    /// The note.
    pub(crate) text: String,
}

/// Why a ledger refused a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LedgerError {
    /// Opening twice.
    AlreadyOpen,
    /// Using a ledger that was never opened.
    NotOpen,
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyOpen => f.write_str("the ledger is already open"),
            Self::NotOpen => f.write_str("the ledger is not open"),
        }
    }
}

impl std::error::Error for LedgerError {}

/// A ledger: a balance and notes.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(
    name = "ledger",
    error = LedgerError,
    events(Opened, Deposited, Noted),
    commands(Open, Deposit, Note)
)]
pub(crate) struct Ledger {
    pub(crate) owner: Option<String>,
    pub(crate) balance: u64,
    pub(crate) notes: Vec<String>,
}

impl Handle<Open> for Ledger {
    fn handle(&self, command: Open) -> Result<Events<Self>, LedgerError> {
        if self.owner.is_some() {
            return Err(LedgerError::AlreadyOpen);
        }
        Ok(Events::one(Opened { owner: command.owner }))
    }
}

impl Handle<Deposit> for Ledger {
    fn handle(&self, command: Deposit) -> Result<Events<Self>, LedgerError> {
        if self.owner.is_none() {
            return Err(LedgerError::NotOpen);
        }
        Ok(Events::one(Deposited { amount: command.amount }))
    }
}

impl Handle<Note> for Ledger {
    fn handle(&self, command: Note) -> Result<Events<Self>, LedgerError> {
        if self.owner.is_none() {
            return Err(LedgerError::NotOpen);
        }
        Ok(Events::one(Noted { text: command.text }))
    }
}

impl Apply<Opened> for Ledger {
    fn apply(&mut self, event: &Opened) {
        self.owner = Some(event.owner.clone());
    }
}

impl Apply<Deposited> for Ledger {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

impl Apply<Noted> for Ledger {
    fn apply(&mut self, event: &Noted) {
        self.notes.push(event.text.clone());
    }
}
