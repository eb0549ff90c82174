//! What can go wrong with the database file, named by its path.
//!
//! Every failure of SQLite or of the driver becomes a [`SqliteError`] that
//! names the file and says what kind of trouble it is (locked, corrupt,
//! unreadable), so an operator knows which file to look at. The es-core
//! error enums carry it as their `#[source]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A failure of the SQLite database file or of the driver, naming the file.
///
/// Cheap to clone: appends that shared a transaction share its failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// Another connection (another process, or a long write transaction of
    /// this one) held the write lock for longer than the busy timeout. The
    /// statement that waited did not run: nothing of it was written.
    #[error(
        "SQLite database `{}` stayed locked by another writer for {waited:?}; nothing was written",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// How long the statement waited for the lock.
        waited: Duration,
        /// The driver's error.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The file is not an SQLite database, or its pages are damaged.
    #[error("`{}` is not an SQLite database or is corrupt", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The file cannot be opened, read or written: a missing directory, a
    /// path that is a directory, missing permissions, a full or read-only
    /// disk, an I/O error.
    #[error("cannot open, read or write SQLite database `{}`", path.display())]
    Unusable {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// Any other failure of SQLite or the driver.
    #[error("SQLite database `{}` failed", path.display())]
    Backend {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: Arc<sqlx::Error>,
    },
}

impl SqliteError {
    /// The database file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Locked { path, .. }
            | Self::Corrupt { path, .. }
            | Self::Unusable { path, .. }
            | Self::Backend { path, .. } => path,
        }
    }

    /// Sorts a driver error on `path` by what it means for the file. A
    /// statement that timed out on the busy handler (or on this process's
    /// queue of writers, `waited` long) is [`SqliteError::Locked`].
    pub(crate) fn from_sqlx(path: &Path, waited: Duration, source: sqlx::Error) -> Self {
        let path = path.to_owned();
        let kind = kind_of(&source);
        let source = Arc::new(source);
        match kind {
            Kind::Locked => Self::Locked { path, waited, source },
            Kind::Corrupt => Self::Corrupt { path, source },
            Kind::Unusable => Self::Unusable { path, source },
            Kind::Other => Self::Backend { path, source },
        }
    }
}

/// What a driver error means for the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Locked,
    Corrupt,
    Unusable,
    Other,
}

// SQLite's primary result codes (https://www.sqlite.org/rescode.html); an
// extended code keeps its primary code in the low byte.
pub(crate) const SQLITE_ERROR: i64 = 1;
pub(crate) const SQLITE_PERM: i64 = 3;
pub(crate) const SQLITE_BUSY: i64 = 5;
pub(crate) const SQLITE_LOCKED: i64 = 6;
pub(crate) const SQLITE_READONLY: i64 = 8;
pub(crate) const SQLITE_IOERR: i64 = 10;
pub(crate) const SQLITE_CORRUPT: i64 = 11;
pub(crate) const SQLITE_FULL: i64 = 13;
pub(crate) const SQLITE_CANTOPEN: i64 = 14;
pub(crate) const SQLITE_TOOBIG: i64 = 18;
pub(crate) const SQLITE_CONSTRAINT: i64 = 19;
pub(crate) const SQLITE_MISMATCH: i64 = 20;
pub(crate) const SQLITE_AUTH: i64 = 23;
pub(crate) const SQLITE_RANGE: i64 = 25;
pub(crate) const SQLITE_NOTADB: i64 = 26;
// Extended codes of failed reads.
pub(crate) const SQLITE_IOERR_READ: i64 = 266;
pub(crate) const SQLITE_IOERR_SHORT_READ: i64 = 522;

/// The extended SQLite result code of a database error.
pub(crate) fn result_code(error: &sqlx::Error) -> Option<i64> {
    error.as_database_error()?.code()?.parse().ok()
}

fn kind_of(error: &sqlx::Error) -> Kind {
    match error {
        // Waiting for this process's single writer connection timed out.
        sqlx::Error::PoolTimedOut => Kind::Locked,
        sqlx::Error::Io(_) => Kind::Unusable,
        sqlx::Error::Database(_) => match result_code(error).map(|code| code & 0xff) {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => Kind::Locked,
            Some(SQLITE_CORRUPT | SQLITE_NOTADB) => Kind::Corrupt,
            Some(SQLITE_PERM | SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN) => {
                Kind::Unusable
            }
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

/// Whether a driver error is a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_file_and_says_nothing_was_written_when_locked() {
        let error = SqliteError::from_sqlx(
            Path::new("/data/app.db"),
            Duration::from_secs(5),
            sqlx::Error::PoolTimedOut,
        );
        assert!(matches!(error, SqliteError::Locked { .. }));
        assert_eq!(error.path(), Path::new("/data/app.db"));
        let message = error.to_string();
        assert!(message.contains("/data/app.db") && message.contains("nothing was written"), "{message}");
    }

    #[test]
    fn io_errors_make_the_file_unusable() {
        let io = sqlx::Error::Io(std::io::Error::other("disk on fire"));
        let error = SqliteError::from_sqlx(Path::new("x.db"), Duration::ZERO, io);
        assert!(matches!(error, SqliteError::Unusable { .. }), "{error:?}");
    }
}
