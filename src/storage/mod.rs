//! Persistence: the only module that speaks SQL. One code path for SQLite (the embedded
//! default) and PostgreSQL through diesel's `MultiConnection`; the backend follows the URL.

mod accounts;
mod audit_trail;
mod certificates;
mod codes;
mod destinations;
mod dispatch;
mod insurer_export;
mod kim;
mod mail;
mod outbox;
mod scans;
pub mod schema;
mod signatures;
mod writer;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use accounts::*;
pub use audit_trail::*;
pub use certificates::*;
pub use destinations::*;
pub use dispatch::*;
pub use insurer_export::*;
pub use kim::*;
pub use mail::*;
pub use outbox::*;
pub use scans::*;
pub use signatures::*;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database connection: {0}")]
    Connect(#[from] diesel::r2d2::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored document is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("stored data is invalid: {0}")]
    Invalid(String),
    /// A unique value (username, BSNR) is taken.
    #[error("{0} already exists")]
    Duplicate(&'static str),
    #[error("blocking task failed: {0}")]
    Task(String),
    /// A write of a group commit was not stored (the group's transaction failed).
    #[error("not stored: {0}")]
    NotCommitted(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }
}

/// Sets the SQLite pragmas on every new connection (DESIGN.md §3): without WAL and a busy
/// timeout most concurrent inserts fail with "database is locked". A 16 MiB page cache per
/// connection (SQLite's default is 2 MiB) and reads through a memory map keep the indexes
/// that every capture updates out of `read` system calls.
#[derive(Debug, Clone, Copy)]
struct Pragmas;

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> std::result::Result<(), diesel::r2d2::Error> {
        if let AnyConnection::Sqlite(c) = conn {
            c.batch_execute(
                // busy_timeout first: switching to WAL needs a lock that another new
                // connection may hold for a moment.
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                 PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                 PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Initialises OpenSSL (shared by libpq, the signature checks and the test Konnektor) before
/// the first PostgreSQL connection, without its exit handler: `openssl::init` passes
/// `OPENSSL_INIT_NO_ATEXIT`. With the handler, OpenSSL freed its state at process exit while a
/// pool or runtime thread still used it, and a process that had finished its work crashed
/// (SIGSEGV at exit, seen in a test binary on PostgreSQL). Idempotent.
pub fn init_openssl() {
    openssl::init();
}

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: Pool<ConnectionManager<AnyConnection>>,
    backend: Backend,
    url: String,
    writer: writer::Writer,
}

impl Database {
    /// Opens a pool for the URL: `postgres://…` or a SQLite path / `sqlite://` URL.
    pub fn connect(url: &str, max_connections: u32) -> Result<Self> {
        init_openssl();
        let backend = Backend::of(url);
        let given = url.to_owned();
        let url = match backend {
            Backend::Sqlite => url.strip_prefix("sqlite://").unwrap_or(url),
            Backend::Postgres => url,
        };
        let pool = Pool::builder()
            .max_size(max_connections.max(1))
            // No connection is opened in the background to keep one idle: a one-shot command
            // (`au-relay token create`) could otherwise exit while a pool thread is still
            // connecting, and OpenSSL's exit handler crashed that thread (seen here).
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(Pragmas))
            .build(ConnectionManager::<AnyConnection>::new(url))
            .map_err(|e| StorageError::Migration(format!("cannot open database: {e}")))?;
        // SQLite has one write lock: a second writer thread would only wait for it.
        let writers = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        };
        Ok(Self {
            writer: writer::Writer::start(pool.clone(), writers),
            pool,
            backend,
            url: given,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL this pool was opened with (to open another pool on the same database).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn conn(&self) -> Result<PooledConnection<ConnectionManager<AnyConnection>>> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` with a connection on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.conn()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
    }

    /// Runs `f` as one write of a group commit: concurrent writes share a transaction and a
    /// commit, each in its own savepoint (see `writer`). The result arrives after the commit.
    /// `f` runs on a writer thread that the whole group waits for: only short writes, with
    /// validation and document writing done before.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// Applies all pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize> {
        let mut conn = self.conn()?;
        let ran = match &mut *conn {
            AnyConnection::Sqlite(c) => {
                c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len())
            }
            AnyConnection::Postgres(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len()),
        };
        ran.map_err(|e| StorageError::Migration(e.to_string()))
    }

    /// Reverts every applied migration (used by the migration round-trip test and operators).
    pub fn revert_all(&self) -> Result<usize> {
        let mut conn = self.conn()?;
        let reverted = match &mut *conn {
            AnyConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            AnyConnection::Postgres(c) => c
                .revert_all_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len()),
        };
        reverted.map_err(|e| StorageError::Migration(e.to_string()))
    }

    /// `SELECT 1`: for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        self.run(|c| {
            c.batch_execute("SELECT 1")?;
            Ok(())
        })
        .await
    }

    /// Names of the user tables, for tests of the migrations.
    pub fn table_names(&self) -> Result<Vec<String>> {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        let mut conn = self.conn()?;
        let sql = match &*conn {
            AnyConnection::Sqlite(_) => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__diesel%' ORDER BY name"
            }
            AnyConnection::Postgres(_) => {
                "SELECT table_name AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '__diesel%' ORDER BY 1"
            }
        };
        let rows: Vec<Name> = diesel::sql_query(sql).load(&mut *conn)?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }
}

/// The current time as stored: UTC without offset, in microseconds (PostgreSQL's precision,
/// so both backends compare and round-trip timestamps alike).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// Runs `f` in one transaction: all of it or nothing (e.g. a change and its audit row).
pub fn atomically<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T>,
) -> Result<T> {
    conn.transaction(f)
}

/// Call first in a transaction that reads before it writes: on SQLite it takes the write lock
/// now (waiting up to `busy_timeout`), because a read transaction that later writes fails at
/// once with "database is locked" when another writer committed in between. Nothing on
/// PostgreSQL.
pub(crate) fn begin_write(c: &mut AnyConnection) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    if let AnyConnection::Sqlite(s) = c {
        // A write statement that changes nothing still starts a write transaction.
        diesel::sql_query("UPDATE practices SET id = id WHERE 0").execute(s)?;
    }
    Ok(())
}

/// Whether an error is a unique-constraint violation.
fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}
