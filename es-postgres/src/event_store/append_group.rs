//! One group of appends in one statement (`append_group.sql`), and what
//! each request of the group comes to.
//!
//! | the statement | a request |
//! |---|---|
//! | committed, the request's expectation held | decided: its events are stored, its outcome is final |
//! | committed, the expectation did not hold, none of its ids stored | [`AppendError::WrongExpectedVersion`] naming the stream's version |
//! | committed, the expectation did not hold, some id stored | appended again alone (`append.rs`), which tells an exact retry of an earlier append from a duplicate |
//! | refused by the server, nothing written (a unique violation when another writer, on this node or another, took a stream's next version or an event id first; any other SQLSTATE) | every request appended again alone, in queue order: the stream that conflicted fails alone, the others commit |
//! | reply lost (`outcome.rs`: the statement may have committed) | every request: [`AppendError::OutcomeUnknown`] |
//! | no connection | every request: [`AppendError::Backend`], nothing was sent |
//!
//! So one stream's conflict never fails another stream's append, and a
//! refused group is never reported as a failure of its members.

use std::sync::Arc;

use es_core::error::AppendError;
use sqlx::{PgConnection, Row};

use super::append::{expectation, placed, version_of, Batch};
use super::group::{Outcome, Request};
use super::writers::Ran;
use super::{outcome, PgEventStore};
use crate::bounded::CallFailed;

/// The driver error of a group's statement, shared by every request of
/// the group.
#[derive(Debug, thiserror::Error)]
#[error("the group commit of {appends} appends failed: {source}")]
struct GroupFailed {
    appends: usize,
    source: Arc<sqlx::Error>,
}

impl GroupFailed {
    fn boxed(&self) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(GroupFailed { appends: self.appends, source: self.source.clone() })
    }
}

/// The group as the parallel arrays the statement unnests: one element
/// per request, and the events of all requests with the member of each.
#[derive(Default)]
struct Arrays<'a> {
    streams: Vec<&'a str>,
    kinds: Vec<i32>,
    exacts: Vec<i64>,
    members: Vec<i64>,
    events: Batch<'a>,
}

impl<'a> Arrays<'a> {
    fn new(requests: &'a [Request]) -> Self {
        let mut a = Self::default();
        for (member, request) in (1i64..).zip(requests) {
            let (kind, exact) = expectation(request.expected);
            a.streams.push(request.stream.as_str());
            a.kinds.push(kind);
            a.exacts.push(exact);
            for event in &request.events {
                a.members.push(member);
                a.events.push(event);
            }
        }
        a
    }
}

impl PgEventStore {
    /// Runs `requests` (at most one per stream, each already checked to be
    /// storable) as one statement. Per request: `Some` when decided, `None`
    /// when it must be appended again alone (see the module docs).
    pub(super) async fn append_group(&self, requests: &[Request]) -> Vec<Option<Outcome>> {
        let every = |failed: &GroupFailed, unknown: bool| {
            requests
                .iter()
                .map(|r| {
                    let (stream, source) = (r.stream.clone(), failed.boxed());
                    Some(Err(if unknown {
                        AppendError::OutcomeUnknown { stream, source }
                    } else {
                        AppendError::Backend { stream, source }
                    }))
                })
                .collect()
        };
        let failed = |error: sqlx::Error| GroupFailed { appends: requests.len(), source: Arc::new(error) };
        let a = Arrays::new(requests);
        let statement = || {
            sqlx::query(self.inner.sql.append_group.clone())
                .bind(&a.streams)
                .bind(&a.kinds)
                .bind(&a.exacts)
                .bind(&a.members)
                .bind(&a.events.ids)
                .bind(&a.events.aggregate_types)
                .bind(&a.events.event_types)
                .bind(&a.events.schema_versions)
                .bind(&a.events.payloads)
                .bind(&a.events.metadata)
        };
        // On a connection of the store's own (`writers.rs`; the pool's if
        // `own_connections` is off). A kept one
        // that turns out broken is dropped and the statement run again,
        // once, on a new one: the same appends under the same ids, so an
        // append the first try did commit is refused (its ids are stored)
        // and made again alone, where it is found as an exact retry. A
        // second try that sent nothing does not hide the first's unknown
        // outcome.
        let calls = &self.inner.calls;
        let deadline = tokio::time::Instant::now() + calls.get();
        let keep = self.inner.groups.max_in_flight();
        let broke = |rows: &Result<Vec<_>, sqlx::Error>| rows.as_ref().is_err_and(outcome::broken_connection);
        let mut first_try: Option<sqlx::Error> = None;
        let rows = loop {
            let run = async |conn: &mut PgConnection| statement().fetch_all(conn).await;
            let ran = if self.inner.groups.own_connections() {
                self.inner.writers.run(calls, deadline, keep, run, broke).await
            } else {
                calls.run_until(deadline, run).await.map(|answer| Ran { answer, reused: false })
            };
            match ran {
                Ok(Ran { answer: Err(error), reused: true })
                    if first_try.is_none() && outcome::broken_connection(&error) =>
                {
                    tracing::debug!(%error, appends = requests.len(), "a kept connection broke; running the group again");
                    first_try = Some(error);
                }
                Ok(ran) => break ran.answer,
                // No connection of the store's own to be had (too many
                // clients, say), and nothing sent: each append goes alone,
                // through the pool.
                Err(CallFailed::NoConnection(error))
                    if first_try.is_none() && outcome::refused_to_connect(&error) =>
                {
                    tracing::debug!(%error, appends = requests.len(), "no connection of the store's own; appending each alone");
                    return requests.iter().map(|_| None).collect();
                }
                Err(CallFailed::NoConnection(error)) => {
                    let (error, unknown) = match first_try {
                        Some(first) => {
                            let unknown = outcome::may_have_committed(&first);
                            (first, unknown)
                        }
                        None => (error, false),
                    };
                    return every(&failed(error), unknown);
                }
                Err(CallFailed::TimedOut(error)) => return every(&failed(error), true),
            }
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(error) if outcome::may_have_committed(&error) => return every(&failed(error), true),
            Err(error) => {
                tracing::debug!(%error, appends = requests.len(), "group refused; appending each alone");
                return requests.iter().map(|_| None).collect();
            }
        };
        let decided = match decide(requests, &rows) {
            Ok(decided) => decided,
            // The statement committed, but its reply makes no sense.
            Err(error) => return every(&failed(error), true),
        };
        if decided.iter().any(|d| matches!(d, Some(Ok(_)))) {
            self.inner.notifier.signal(self.inner.calls.pool(), &self.inner.channel);
        }
        decided
    }
}

/// What each request came to, from the statement's rows (one per request,
/// in order).
fn decide(requests: &[Request], rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Option<Outcome>>, sqlx::Error> {
    if rows.len() != requests.len() {
        return Err(sqlx::Error::Protocol(format!(
            "the group statement answered {} rows for {} appends",
            rows.len(),
            requests.len()
        )));
    }
    let mut decided = Vec::with_capacity(requests.len());
    for (request, row) in requests.iter().zip(rows) {
        let version: i64 = row.try_get("version")?;
        let holds: bool = row.try_get("expectation_holds")?;
        let first_position: i64 = row.try_get("first_position")?;
        let inserted: i64 = row.try_get("inserted")?;
        if !holds {
            let ids_stored: bool = row.try_get("ids_stored")?;
            decided.push((!ids_stored).then(|| {
                Err(AppendError::WrongExpectedVersion {
                    stream: request.stream.clone(),
                    expected: request.expected,
                    actual: version_of(version),
                })
            }));
            continue;
        }
        if usize::try_from(inserted).ok() != Some(request.events.len()) {
            return Err(sqlx::Error::Protocol(format!(
                "the group statement inserted {inserted} rows for an append of {}",
                request.events.len()
            )));
        }
        let (version, first) =
            (u64::try_from(version).unwrap_or(0), u64::try_from(first_position).unwrap_or(0));
        decided.push(Some(Ok(placed(&request.events, version, first))));
    }
    Ok(decided)
}
