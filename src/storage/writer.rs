//! Group commit: write jobs of many concurrent requests share one transaction and one commit.
//!
//! Each job runs in its own savepoint inside the group's transaction, so a job that fails rolls
//! back only its own writes; every job learns its result only after the group's `COMMIT`
//! succeeded (or the error if it did not: then nothing of the group is stored). One commit (one
//! `fsync`) serves a whole group, and on SQLite the writers no longer queue for the write lock
//! in `busy_timeout`'s sleeps.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};

use super::{AnyConnection, Result, StorageError};

/// Hands a job's result over once the group's commit is decided.
type Deliver = Box<dyn FnOnce(std::result::Result<(), &StorageError>) + Send>;
type Job = Box<dyn FnOnce(&mut AnyConnection) -> Deliver + Send>;

/// Most jobs in one group (one transaction).
const MOST_PER_GROUP: usize = 128;

/// The sending side of the writer threads. Cheap to clone; the threads end when the last clone
/// is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts `threads` writer threads that take their connections from `pool`.
    pub(super) fn start(pool: Pool<ConnectionManager<AnyConnection>>, threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let (pool, queue) = (pool.clone(), Arc::clone(&queue));
            let started = std::thread::Builder::new()
                .name(format!("db-writer-{n}"))
                .spawn(move || run(&pool, &queue));
            if let Err(e) = started {
                tracing::error!(error = %e, "cannot start a database writer thread");
            }
        }
        Self { jobs }
    }

    /// Runs `f` in the next group; its result arrives once that group is committed.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            // A savepoint: a failing job undoes only its own writes.
            let outcome = conn.transaction(f);
            Box::new(move |committed| {
                let result = match committed {
                    Ok(()) => outcome,
                    Err(e) => Err(StorageError::NotCommitted(e.to_string())),
                };
                // The requester may have gone (client disconnected); the row is stored anyway.
                let _ = tx.send(result);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StorageError::NotCommitted("no database writer is running".into()))?;
        rx.await.unwrap_or_else(|_| {
            Err(StorageError::NotCommitted(
                "the database writer gave up the write".into(),
            ))
        })
    }
}

/// One writer thread: takes whatever jobs are waiting (up to [`MOST_PER_GROUP`]) and commits
/// them together, until every [`Writer`] is dropped.
fn run(pool: &Pool<ConnectionManager<AnyConnection>>, queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let group = {
            let Ok(queue) = queue.lock() else { return };
            let Ok(first) = queue.recv() else { return };
            let mut group = vec![first];
            while group.len() < MOST_PER_GROUP {
                match queue.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            group
        };
        // A job must not panic; if one does, its group is not committed (the dropped senders
        // tell every requester) and the thread goes on with the next group.
        if catch_unwind(AssertUnwindSafe(|| commit_group(pool, group))).is_err() {
            tracing::error!("a database write panicked; its group was not committed");
        }
    }
}

fn commit_group(pool: &Pool<ConnectionManager<AnyConnection>>, group: Vec<Job>) {
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            // Dropping the jobs tells their requesters.
            tracing::warn!(error = %e, "no connection for a write group");
            return;
        }
    };
    let conn: &mut AnyConnection = &mut conn;
    if let Err(e) = begin(conn) {
        tracing::warn!(error = %e, "cannot begin a write group");
        return; // dropping the jobs tells their requesters
    }
    let delivers: Vec<Deliver> = group.into_iter().map(|job| job(conn)).collect();
    let committed = <AnyConnection as Connection>::TransactionManager::commit_transaction(conn)
        .map_err(StorageError::from);
    if committed.is_err() {
        // COMMIT failed: make sure the connection is not left inside the transaction.
        let _ = <AnyConnection as Connection>::TransactionManager::rollback_transaction(conn);
    }
    for deliver in delivers {
        deliver(committed.as_ref().map(|_| ()));
    }
}

/// `BEGIN`; on SQLite `BEGIN IMMEDIATE`, which takes the write lock at once (waiting in
/// `busy_timeout` for another writer), so a group never has to upgrade a read lock.
fn begin(conn: &mut AnyConnection) -> QueryResult<()> {
    match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        AnyConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
    }
}
