//! Which SQLite errors leave an append's outcome unknown.
//!
//! SQLite runs in the process: no connection can drop between a commit
//! and its reply, so the one place where an append's outcome can be in
//! doubt is the commit itself. In WAL mode a commit appends the
//! transaction's pages to the `-wal` file, ending with a commit frame, and
//! then flushes the file (`synchronous = FULL`). If writing or flushing
//! fails part way, SQLite returns an error, yet the commit frame may already
//! be in the file, and the next connection that opens it (after a restart,
//! say) may find the transaction committed. So, per driver error:
//!
//! | error | when | the append |
//! |---|---|---|
//! | any error before the commit: taking the write lock (`SQLITE_BUSY`, the busy timeout), a statement of the transaction (a constraint, a bad value) | the transaction is rolled back | [`AppendError::Backend`]: nothing was written |
//! | `SQLITE_BUSY` or `SQLITE_LOCKED` at the commit | the commit did not take place; the transaction is rolled back | `Backend`: nothing was written |
//! | at the commit (an explicit `COMMIT`, or the one `INSERT` of a lone single-event append, which commits itself): an error that refuses the statement before it writes (`SQLITE_ERROR`, `SQLITE_CONSTRAINT`, `SQLITE_READONLY`, `SQLITE_PERM`, `SQLITE_CANTOPEN`, `SQLITE_NOTADB`, `SQLITE_TOOBIG`, `SQLITE_MISMATCH`, `SQLITE_RANGE`, `SQLITE_AUTH`, a failed read) | before any page was written | `Backend`: nothing was written |
//! | at the commit: `SQLITE_IOERR` of a write or flush, `SQLITE_FULL`, `SQLITE_NOMEM`, `SQLITE_CORRUPT`, the driver's worker thread gone, and anything else | the commit frame may be in the file | [`AppendError::OutcomeUnknown`] |
//! | a group commit's task ended without answering (it panicked, or its runtime shut down) | | `OutcomeUnknown` |
//!
//! An unknown outcome is resolved by appending the same events again (same
//! ids): an exact retry if they were stored, stored once if not.

use es_core::error::AppendError;
use es_core::StreamId;

use crate::database::SqliteDatabase;
use crate::error::{
    result_code, SqliteError, SQLITE_AUTH, SQLITE_BUSY, SQLITE_CANTOPEN, SQLITE_CONSTRAINT, SQLITE_ERROR,
    SQLITE_IOERR_READ, SQLITE_IOERR_SHORT_READ, SQLITE_LOCKED, SQLITE_MISMATCH, SQLITE_NOTADB, SQLITE_PERM,
    SQLITE_RANGE, SQLITE_READONLY, SQLITE_TOOBIG,
};

/// Where in an append a driver error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Before the commit: beginning the transaction, or a statement inside it.
    BeforeCommit,
    /// The commit: an explicit `COMMIT`, or a statement in autocommit mode.
    Commit,
}

/// A driver error an append met, sorted: whether the append may have
/// committed, and the error naming the file. Shared by the members of a
/// group commit, which all met it.
pub(super) struct Failure {
    unknown: bool,
    error: SqliteError,
}

impl Failure {
    /// Sorts `error`, met at `stage`.
    pub(super) fn new(db: &SqliteDatabase, stage: Stage, error: sqlx::Error) -> Self {
        let unknown = stage == Stage::Commit && may_have_committed(&error);
        Self { unknown, error: db.write_error(error) }
    }

    /// The error of the append to `stream` that met it.
    pub(super) fn of(&self, stream: &StreamId) -> AppendError {
        let (stream, source) = (stream.clone(), Box::new(self.error.clone()));
        if self.unknown {
            AppendError::OutcomeUnknown { stream, source }
        } else {
            AppendError::Backend { stream, source }
        }
    }
}

/// Whether a commit that failed with `error` may nonetheless have
/// committed.
fn may_have_committed(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(_) => result_code(error).is_none_or(|code| !refused_before_writing(code)),
        sqlx::Error::Encode(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => false,
        _ => true,
    }
}

/// Whether SQLite result `code` (extended) refuses a statement before it
/// writes a page.
fn refused_before_writing(code: i64) -> bool {
    matches!(code, SQLITE_IOERR_READ | SQLITE_IOERR_SHORT_READ)
        || matches!(
            code & 0xff,
            SQLITE_ERROR
                | SQLITE_PERM
                | SQLITE_BUSY
                | SQLITE_LOCKED
                | SQLITE_READONLY
                | SQLITE_CANTOPEN
                | SQLITE_TOOBIG
                | SQLITE_CONSTRAINT
                | SQLITE_MISMATCH
                | SQLITE_AUTH
                | SQLITE_RANGE
                | SQLITE_NOTADB
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_and_flushes_at_the_commit_leave_the_outcome_unknown() {
        // SQLITE_IOERR_WRITE, SQLITE_IOERR_FSYNC, SQLITE_IOERR (plain),
        // SQLITE_FULL, SQLITE_NOMEM, SQLITE_CORRUPT.
        for code in [778, 1034, 10, 13, 7, 11] {
            assert!(!refused_before_writing(code), "{code}");
        }
        assert!(may_have_committed(&sqlx::Error::WorkerCrashed));
        assert!(may_have_committed(&sqlx::Error::Io(std::io::Error::other("gone"))));
    }

    #[test]
    fn refusals_and_a_busy_commit_wrote_nothing() {
        // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED, SQLITE_CONSTRAINT_UNIQUE,
        // SQLITE_CONSTRAINT_CHECK, SQLITE_READONLY, SQLITE_IOERR_READ, SQLITE_NOTADB.
        for code in [5, 517, 6, 2067, 275, 8, 266, 26] {
            assert!(refused_before_writing(code), "{code}");
        }
        assert!(!may_have_committed(&sqlx::Error::PoolTimedOut));
    }
}
