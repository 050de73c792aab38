//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync.
//! So every write is a job sent to one thread, which runs whatever jobs are
//! waiting in one transaction, each inside its own savepoint (a failing job
//! rolls back alone), and commits them together with one fsync. A job's
//! caller hears back only after that commit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use cpis_store::{StoreError, StoreResult};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

/// How many jobs one transaction takes at most, so that one commit never
/// waits on an unbounded queue.
const MAX_GROUP: usize = 512;

/// How many jobs may wait for the writer before callers wait to send.
pub(crate) const QUEUE_DEPTH: usize = 8192;

/// Runs a statement kept prepared: every job opens and closes a savepoint,
/// and parsing them afresh showed in a profile of the query.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

pub(crate) trait Job: Send {
    /// Runs the job's work in the open transaction. Returns `false` when the
    /// transaction itself is no longer sound and must be rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Tells the caller the job's outcome, once the group's commit is known.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

pub(crate) type JobSender = mpsc::Sender<Box<dyn Job>>;

struct WriteJob<T, F> {
    work: Option<F>,
    outcome: Option<StoreResult<T>>,
    reply: Option<oneshot::Sender<StoreResult<T>>>,
}

impl<T, F> Job for WriteJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return true;
        };
        if let Err(error) = run_cached(conn, "SAVEPOINT job") {
            self.outcome = Some(Err(unavailable(&error)));
            return false;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "a write panicked and was rolled back".into(),
            ))
        });
        let sound = if outcome.is_ok() {
            run_cached(conn, "RELEASE job").is_ok()
        } else {
            run_cached(conn, "ROLLBACK TO job").is_ok() && run_cached(conn, "RELEASE job").is_ok()
        };
        self.outcome = Some(outcome);
        sound
    }

    fn finish(mut self: Box<Self>, committed: Result<(), &str>) {
        let outcome = match (committed, self.outcome.take()) {
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::Unavailable("the write was not run".into())),
            (Err(why), _) => Err(StoreError::Unavailable(format!(
                "the write was not committed: {why}"
            ))),
        };
        if let Some(reply) = self.reply.take() {
            // The caller may have gone away (a dropped request); the write stands.
            let _ = reply.send(outcome);
        }
    }
}

/// Sends `work` to the writer and waits until it is committed (or not).
pub(crate) async fn write<T, F>(jobs: &JobSender, work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = WriteJob {
        work: Some(work),
        outcome: None,
        reply: Some(reply),
    };
    jobs.send(Box::new(job))
        .await
        .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
    answer
        .await
        .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
}

/// The writer thread's loop: runs until every sender is dropped.
pub(crate) fn run_writer(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    restart: &AtomicBool,
) {
    while let Some(first) = jobs.blocking_recv() {
        let mut group = Vec::with_capacity(16);
        group.push(first);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let committed = commit_group(&conn, &mut group);
        if let Err(why) = &committed {
            tracing::error!(jobs = group.len(), error = %why, "a group of writes was rolled back");
        }
        for job in group {
            job.finish(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
        if restart.swap(false, Ordering::Relaxed) && !restart_wal(&mut conn) {
            restart.store(true, Ordering::Relaxed);
        }
    }
}

/// Makes the WAL start again from its beginning, between two commits (see
/// `checkpoint_in_background`). It waits a millisecond or so at most for
/// readers still reading older frames, since every look behind it waits
/// too; if they are not done by then, it returns `false`, to be tried
/// again after the next commit. A failure is logged and left for the
/// checkpointer to ask again.
fn restart_wal(conn: &mut Connection) -> bool {
    let waited = conn.busy_handler(Some(|tries: i32| {
        if tries >= 20 {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
        true
    }));
    let restarted = waited.and_then(|()| {
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
            row.get::<_, i64>(0)
        })
    });
    if let Err(error) = conn.busy_handler(Some(crate::wait_briefly)) {
        tracing::error!(%error, "the writer's busy handler could not be set back");
    }
    match restarted {
        Ok(busy) => busy == 0,
        Err(error) => {
            tracing::warn!(%error, "could not restart the WAL");
            true
        }
    }
}

fn commit_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), String> {
    run_cached(conn, "BEGIN IMMEDIATE").map_err(|error| error.to_string())?;
    for job in group.iter_mut() {
        if !job.run(conn) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err("a savepoint could not be closed".into());
        }
    }
    if let Err(error) = run_cached(conn, "COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(error.to_string());
    }
    Ok(())
}

fn unavailable(error: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}
