//! The read side of the ledger, registered at link time under `g-*`
//! names; each test selects the ones it runs.

use std::sync::Mutex;

use es_core::{
    event_handler, projection, EventId, HandlerCtx, HandlerError, Project, ProjectionTx, Recorded,
};
use serde::{Deserialize, Serialize};

use crate::domain::{Deposit, Deposited, Noted, Opened};

/// Every (stream, position, event id) the `g-seen` handler was given, in
/// order. Tests tell their events apart by stream name prefix.
pub(crate) static SEEN: Mutex<Vec<(String, u64, EventId)>> = Mutex::new(Vec::new());

#[event_handler(name = "g-seen", events(Opened, Deposited, Noted), group = "guarantees")]
#[derive(Default)]
pub(crate) struct Seen;

impl Seen {
    fn record<E>(e: &Recorded<E>) {
        SEEN.lock().unwrap().push((e.stream_id.as_str().to_owned(), e.position.get(), e.event_id));
    }

    /// What `g-seen` was given of the streams starting with `prefix`.
    pub(crate) fn of(prefix: &str) -> Vec<(u64, EventId)> {
        let seen = SEEN.lock().unwrap();
        seen.iter().filter(|(stream, ..)| stream.starts_with(prefix)).map(|(_, p, id)| (*p, *id)).collect()
    }
}

impl es_core::HandleEvent<Opened> for Seen {
    async fn handle(&self, e: &Recorded<Opened>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Self::record(e);
        Ok(())
    }
}

impl es_core::HandleEvent<Deposited> for Seen {
    async fn handle(&self, e: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Self::record(e);
        Ok(())
    }
}

impl es_core::HandleEvent<Noted> for Seen {
    async fn handle(&self, e: &Recorded<Noted>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Self::record(e);
        Ok(())
    }
}

/// A ledger's balance as the `g-balances` projection keeps it.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Balance {
    pub(crate) owner: String,
    pub(crate) balance: u64,
}

#[projection(name = "g-balances", events(Opened, Deposited), group = "guarantees")]
#[derive(Default)]
pub(crate) struct Balances;

impl Project<Opened> for Balances {
    async fn project(&self, e: &Recorded<Opened>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Ok(tx.put(e.stream_id.as_str(), &Balance { owner: e.owner.clone(), balance: 0 })?)
    }
}

impl Project<Deposited> for Balances {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let mut balance: Balance = tx.get(e.stream_id.as_str()).await?.unwrap_or_default();
        balance.balance += e.amount;
        Ok(tx.put(e.stream_id.as_str(), &balance)?)
    }
}

/// A process manager: every opened ledger gets a welcome bonus of 5.
#[event_handler(name = "g-bonus", group = "guarantees")]
pub(crate) async fn welcome_bonus(e: &Recorded<Opened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let id = e.stream_id.as_str().trim_start_matches("ledger-").to_owned();
    ctx.execute(Deposit { id, amount: 5 }).await?;
    Ok(())
}

/// The deposit `g-fragile` cannot take.
pub(crate) const FRAGILE_AMOUNT: u64 = 13;

/// Sums deposits, and panics on one unlucky amount.
#[projection(name = "g-fragile", events(Deposited), group = "guarantees")]
#[derive(Default)]
pub(crate) struct Fragile;

impl Project<Deposited> for Fragile {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        assert_ne!(e.amount, FRAGILE_AMOUNT, "unlucky amount");
        let total: u64 = tx.get(e.stream_id.as_str()).await?.unwrap_or(0);
        Ok(tx.put(e.stream_id.as_str(), &(total + e.amount))?)
    }
}

/// Every owner the `g-mail` handler welcomed, with the stream prefix
/// telling tests apart.
pub(crate) static MAILED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A side effect that must never happen twice: welcome mail.
#[event_handler(name = "g-mail", replay = "skip", group = "guarantees")]
pub(crate) async fn welcome_mail(e: &Recorded<Opened>, _: &HandlerCtx) -> Result<(), HandlerError> {
    MAILED.lock().unwrap().push(e.owner.clone());
    Ok(())
}

/// The deposit `g-strict` refuses.
pub(crate) const REFUSED_AMOUNT: u64 = 66;

/// Every deposit the strongly consistent `g-strict` handler accepted.
pub(crate) static STRICT: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// A strongly consistent handler that refuses one amount.
#[event_handler(name = "g-strict", consistency = "strong", group = "guarantees")]
pub(crate) async fn strict(e: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
    if e.amount == REFUSED_AMOUNT {
        return Err(HandlerError::msg(format!("cannot take {REFUSED_AMOUNT}")));
    }
    STRICT.lock().unwrap().push(e.amount);
    Ok(())
}
