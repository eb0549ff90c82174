//! One SQLite database file, opened once per process and shared by the
//! stores: a pool of readers, one writer, and the signal that wakes
//! caught-up readers after an append.
//!
//! SQLite lets one connection write at a time. Rather than let several
//! connections of this process race for the file's write lock (SQLite's
//! busy handler sleeps between tries, so racers lose milliseconds each),
//! every write of the process goes through its single writer connection,
//! queued in order. Other processes on the same file take turns with it
//! through the file lock, waiting up to the busy timeout.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::watch;

use crate::error::SqliteError;
use crate::migrate::{migrate, MigrateError};

/// How SQLite makes a commit durable (its `synchronous` setting, in WAL
/// mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Every commit is flushed to disk before it returns: an acknowledged
    /// append survives a power loss. The default.
    #[default]
    Full,
    /// Commits reach the disk at checkpoints: an acknowledged append
    /// survives a crash of the process, but the last ones may be lost on a
    /// power loss or an operating system crash. Faster on disks where a
    /// flush is slow.
    Normal,
}

/// The longest busy timeout SQLite is given: its setting is a C `int` of
/// milliseconds, and a longer wait is no different in practice.
const MAX_BUSY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How a [`SqliteDatabase`] opens its file.
///
/// ```
/// use std::time::Duration;
/// use es_sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new()
///     .busy_timeout(Duration::from_secs(2))
///     .synchronous(Synchronous::Normal)
///     .readers(8)
///     .poll_interval(Duration::from_millis(20));
/// assert_eq!(options.get_busy_timeout(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    busy_timeout: Duration,
    synchronous: Synchronous,
    readers: u32,
    poll_interval: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            readers: 4,
            poll_interval: Duration::from_millis(50),
        }
    }
}

impl SqliteOptions {
    /// The defaults: a 5 s busy timeout, [`Synchronous::Full`], 4 reader
    /// connections, polling every 50 ms for other processes' appends.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a write waits for the write lock, held by another process
    /// or by this process's other writers (default 5 s, at most a day).
    /// A write that still has no lock fails with [`SqliteError::Locked`],
    /// having written nothing.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout.min(MAX_BUSY_TIMEOUT);
        self
    }

    /// How commits reach the disk (default [`Synchronous::Full`]).
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How many connections serve reads at once (default 4, at least 1).
    /// In WAL mode readers never wait for the writer, nor it for them.
    #[must_use]
    pub fn readers(mut self, readers: u32) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// How often a caught-up reader looks for events appended by other
    /// processes on the same file (default 50 ms). Appends through this
    /// process wake readers at once.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The busy timeout.
    pub fn get_busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The synchronous setting.
    pub fn get_synchronous(&self) -> Synchronous {
        self.synchronous
    }

    /// The number of reader connections.
    pub fn get_readers(&self) -> u32 {
        self.readers
    }

    /// The poll interval.
    pub fn get_poll_interval(&self) -> Duration {
        self.poll_interval
    }
}

/// An SQLite database file in WAL mode, shared by the stores of this crate
/// and by the application's own tables.
///
/// Open each file once per process and clone the handle (clones share the
/// connections): every write of the process then queues for one writer
/// connection, and appends wake the process's waiting readers at once.
/// Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("es-sqlite-doc-{}", uuid::Uuid::now_v7()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("app.db");
/// let db = es_sqlite::SqliteDatabase::open(&path).await?;
/// db.migrate().await?; // idempotent; safe when processes start together
/// assert_eq!(db.path(), path);
///
/// // The application's own tables live in the same file.
/// let mut tx = db.begin_write().await?;
/// sqlx::query("CREATE TABLE IF NOT EXISTS notes (text TEXT NOT NULL)").execute(&mut *tx).await?;
/// tx.commit().await?;
/// # db.close().await;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteDatabase {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    readers: SqlitePool,
    writer: SqlitePool,
    /// Bumped after every commit that stored events.
    appended: watch::Sender<u64>,
    /// A directory to remove with the last handle ([`SqliteDatabase::temporary`]).
    temporary: Option<PathBuf>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(dir) = &self.temporary {
            // Best effort: open connections keep working on unlinked files
            // (Unix), and a leftover in the temp directory harms nobody.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl fmt::Debug for SqliteDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDatabase").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl SqliteDatabase {
    /// Opens (creating it if missing) the database file at `path` with the
    /// default [`SqliteOptions`], and switches it to WAL mode. Run
    /// [`migrate`](SqliteDatabase::migrate) before using the stores.
    ///
    /// # Errors
    /// [`SqliteError`] naming the file: [`Unusable`](SqliteError::Unusable)
    /// if it cannot be opened or created, [`Corrupt`](SqliteError::Corrupt)
    /// if it is not an SQLite database, [`Locked`](SqliteError::Locked) if
    /// another process keeps it locked past the busy timeout.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, SqliteError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the database file at `path` with `options`.
    ///
    /// # Errors
    /// As [`open`](SqliteDatabase::open).
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, SqliteError> {
        Self::connect(path.as_ref().to_owned(), options, None).await
    }

    /// A database in a new file under the system's temporary directory
    /// (`es-sqlite-<uuid>/es.db`), removed when the last handle is dropped:
    /// for tests and demos that want real SQLite without keeping a file.
    ///
    /// # Errors
    /// [`SqliteError::Unusable`] if the directory cannot be created, or as
    /// [`open`](SqliteDatabase::open).
    pub async fn temporary() -> Result<Self, SqliteError> {
        Self::temporary_with(SqliteOptions::default()).await
    }

    /// [`temporary`](SqliteDatabase::temporary) with `options`.
    ///
    /// # Errors
    /// As [`temporary`](SqliteDatabase::temporary).
    pub async fn temporary_with(options: SqliteOptions) -> Result<Self, SqliteError> {
        let dir = std::env::temp_dir().join(format!("es-sqlite-{}", uuid::Uuid::now_v7().simple()));
        let path = dir.join("es.db");
        if let Err(error) = std::fs::create_dir_all(&dir) {
            return Err(SqliteError::Unusable { path, source: Arc::new(sqlx::Error::Io(error)) });
        }
        match Self::connect(path, options, Some(dir.clone())).await {
            Ok(db) => Ok(db),
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(error)
            }
        }
    }

    async fn connect(
        path: PathBuf,
        options: SqliteOptions,
        temporary: Option<PathBuf>,
    ) -> Result<Self, SqliteError> {
        let synchronous = match options.synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        };
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(options.busy_timeout);
        // The writer first: it creates the file and switches it to WAL,
        // and a file that is no database fails here, naming the path.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(options.busy_timeout)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None);
        let writer = open_pool(writer, &connect, &path, options.busy_timeout).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.readers)
            .min_connections(0)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None);
        let readers =
            open_pool(readers, &connect.create_if_missing(false), &path, options.busy_timeout).await;
        let readers = match readers {
            Ok(readers) => readers,
            Err(error) => {
                writer.close().await;
                return Err(error);
            }
        };
        let (appended, _) = watch::channel(0);
        Ok(Self { inner: Arc::new(Inner { path, options, readers, writer, appended, temporary }) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options the file was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.inner.options
    }

    /// The pool of reader connections, for the application's own queries.
    /// Write through [`begin_write`](SqliteDatabase::begin_write) instead,
    /// so that writes queue for the process's one writer connection.
    pub fn readers(&self) -> &SqlitePool {
        &self.inner.readers
    }

    /// Creates or upgrades the es tables in the file (see the crate docs).
    /// Idempotent, and safe when several processes call it at once.
    ///
    /// # Errors
    /// [`MigrateError`] naming the file and the step that failed; nothing
    /// of the run is kept.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        migrate(self).await
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`) on the process's
    /// writer connection, for the application's own tables: it holds the
    /// file's write lock until it commits or is dropped (rolled back), so
    /// keep it short. Appends and projection commits wait for it.
    ///
    /// # Errors
    /// [`SqliteError::Locked`] if the lock is not had within the busy
    /// timeout (nothing was written); other [`SqliteError`]s naming the file.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, SqliteError> {
        self.inner.writer.begin_with("BEGIN IMMEDIATE").await.map_err(|e| self.write_error(e))
    }

    /// Closes every connection (after checkpointing the WAL into the file).
    /// Handles used afterwards fail with a [`SqliteError`].
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.readers.close().await;
    }

    /// The process's writer connection, for one statement of the
    /// application's that is its own transaction (such as a single
    /// `INSERT`): cheaper than [`begin_write`](SqliteDatabase::begin_write)
    /// by two round trips. Other writes of the process wait until it is
    /// dropped. For several statements, use a transaction.
    ///
    /// # Errors
    /// [`SqliteError::Locked`] if this process's other writers kept it
    /// past the busy timeout (nothing was written).
    pub async fn writer(&self) -> Result<PoolConnection<Sqlite>, SqliteError> {
        self.inner.writer.acquire().await.map_err(|e| self.write_error(e))
    }

    /// A driver error of a write, naming the file.
    pub(crate) fn write_error(&self, error: sqlx::Error) -> SqliteError {
        SqliteError::from_sqlx(&self.inner.path, self.inner.options.busy_timeout, error)
    }

    /// A driver error of a read, naming the file. Waiting for a reader
    /// connection is not waiting for a lock.
    pub(crate) fn read_error(&self, error: sqlx::Error) -> SqliteError {
        match error {
            sqlx::Error::PoolTimedOut => SqliteError::Backend {
                path: self.inner.path.clone(),
                source: Arc::new(sqlx::Error::PoolTimedOut),
            },
            other => SqliteError::from_sqlx(&self.inner.path, self.inner.options.busy_timeout, other),
        }
    }

    /// Wakes this process's readers waiting for events: call after a
    /// commit that stored some.
    pub(crate) fn signal_appended(&self) {
        self.inner.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after every commit that stored events.
    pub(crate) fn appended(&self) -> watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        })
    }
}

/// Opens `pool` on `connect`. A file that another process is creating or
/// switching to WAL at the same moment can answer busy at once, without
/// SQLite's busy handler waiting (a journal-mode change takes the file's
/// exclusive lock): the connection is tried again, every 10 ms, until
/// `busy_timeout` has passed.
async fn open_pool(
    pool: SqlitePoolOptions,
    connect: &SqliteConnectOptions,
    path: &Path,
    busy_timeout: Duration,
) -> Result<SqlitePool, SqliteError> {
    let deadline = tokio::time::Instant::now() + busy_timeout;
    loop {
        match pool.clone().connect_with(connect.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(error) => match SqliteError::from_sqlx(path, busy_timeout, error) {
                SqliteError::Locked { .. } if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                error => return Err(error),
            },
        }
    }
}
