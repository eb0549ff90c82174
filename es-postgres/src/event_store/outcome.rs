//! Which driver errors leave an append's outcome unknown.
//!
//! An append through the pool is one statement in its own transaction: the
//! statement and its commit are one round trip. Once it was sent, only the
//! reply says whether it committed. So, per kind of [`sqlx::Error`]:
//!
//! | driver error | when | the append |
//! |---|---|---|
//! | `PoolTimedOut`, `PoolClosed`, and any error while acquiring a connection (`Io` of a refused connect, `Tls`, `Configuration`, a `Database` error at login) | before the statement was sent | [`AppendError::Backend`]: nothing was written |
//! | `Encode`, `InvalidArgument`, `TypeNotFound` | while building the statement, before it was sent | `Backend`: nothing was written |
//! | `Database` (an SQLSTATE from the server), except the classes below | the server refused the statement; its transaction rolled back | `Backend`: nothing was written |
//! | `Database` of class 08 (connection exception) or 57P01-57P03 (the server shutting down or ending the session) | the session ended around the statement, possibly after its commit | [`AppendError::OutcomeUnknown`] |
//! | `Io` (a reset, an EOF), `Protocol`, `WorkerCrashed` | the connection broke while the statement or its commit was in flight | `OutcomeUnknown` |
//! | `RowNotFound`, `ColumnDecode`, `Decode`, ... | the statement ran (and committed) but its reply could not be read | `OutcomeUnknown` |
//! | anything else | | `OutcomeUnknown` (the safe answer: a retry with the same ids is an exact retry) |
//!
//! Inside a caller's transaction ([`PgEventStore::append_in_tx`](super::PgEventStore::append_in_tx))
//! nothing commits before the caller's `COMMIT`, and a transaction whose
//! connection broke is rolled back by the server: every error there is
//! `Backend` (the caller's own `COMMIT` is theirs to judge).

use es_core::error::AppendError;
use es_core::StreamId;

/// The error of an append statement that failed with `error`: its outcome
/// is unknown if the statement may have committed without us hearing so.
pub(super) fn statement_failed(stream: &StreamId, in_caller_tx: bool, error: sqlx::Error) -> AppendError {
    let stream = stream.clone();
    if !in_caller_tx && may_have_committed(&error) {
        AppendError::OutcomeUnknown { stream, source: Box::new(error) }
    } else {
        AppendError::Backend { stream, source: Box::new(error) }
    }
}

/// Whether a statement sent in its own transaction may have committed
/// although it returned `error`.
pub(super) fn may_have_committed(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| session_ended(&code)),
        sqlx::Error::Encode(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::Configuration(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::InvalidSavePointStatement => false,
        _ => true,
    }
}

/// Whether an append failed because its connection broke or the server
/// ended its session (whatever that means for the outcome): a kept
/// connection that fails so is not used again, and a lone append on one
/// is made again on a new connection (`writers.rs`).
pub(super) fn connection_lost(error: &AppendError) -> bool {
    let source: &(dyn std::error::Error + 'static) = match error {
        AppendError::OutcomeUnknown { source, .. } | AppendError::Backend { source, .. } => source.as_ref(),
        _ => return false,
    };
    std::iter::successors(Some(source), |e| e.source())
        .filter_map(|e| e.downcast_ref::<sqlx::Error>())
        .any(broken_connection)
}

/// Whether `error` says the connection is gone: it broke, or the server
/// ended the session (class 08, or 57P: shut down, terminated, or idle too
/// long).
pub(super) fn broken_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
        }
        _ => false,
    }
}

/// Whether opening a connection failed at once for a reason the pool's
/// open connections do not share (the server refused one more client, or
/// the connect failed), as opposed to running out of time or a closed pool.
pub(super) fn refused_to_connect(error: &sqlx::Error) -> bool {
    !matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
}

/// SQLSTATEs with which the server ends a session: connection exceptions
/// (class 08) and an administrator's or a shutdown's termination
/// (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now).
/// A session can be ended this way after its last commit went through.
fn session_ended(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn classify(error: sqlx::Error) -> &'static str {
        match statement_failed(&StreamId::new("s"), false, error) {
            AppendError::OutcomeUnknown { .. } => "unknown",
            AppendError::Backend { .. } => "nothing written",
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_connection_lost_in_flight_is_an_unknown_outcome() {
        assert_eq!(classify(sqlx::Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof))), "unknown");
        assert_eq!(classify(sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset))), "unknown");
        assert_eq!(classify(sqlx::Error::Protocol("expected to read 5 bytes, got 0".into())), "unknown");
        assert_eq!(classify(sqlx::Error::WorkerCrashed), "unknown");
        assert_eq!(classify(sqlx::Error::RowNotFound), "unknown");
    }

    #[test]
    fn errors_before_the_statement_was_sent_wrote_nothing() {
        assert_eq!(classify(sqlx::Error::PoolTimedOut), "nothing written");
        assert_eq!(classify(sqlx::Error::PoolClosed), "nothing written");
        assert_eq!(classify(sqlx::Error::Encode("bad".into())), "nothing written");
    }

    #[test]
    fn in_a_callers_transaction_nothing_commits_without_the_caller() {
        let error = sqlx::Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert!(matches!(statement_failed(&StreamId::new("s"), true, error), AppendError::Backend { .. }));
    }

    #[test]
    fn sessions_ended_by_the_server_are_told_apart_from_refusals() {
        for code in ["08006", "08003", "57P01", "57P02", "57P03"] {
            assert!(session_ended(code), "{code}");
        }
        for code in ["23505", "40001", "42P01", "57014", "53100"] {
            assert!(!session_ended(code), "{code}");
        }
    }
}
