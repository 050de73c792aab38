//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync.
//! So every write is a job sent to one thread, which runs whatever jobs are
//! waiting in one transaction and commits them together, made durable by
//! one fsync of the WAL. A job's caller hears back only after that fsync.
//!
//! The commit does not wait for the disk. The writer's connection runs with
//! `synchronous = NORMAL`, so SQLite writes a commit's WAL frames without an
//! fsync, and hands the group to the syncer thread, which `fdatasync`s the
//! WAL file and only then answers the group's callers. The writer meanwhile
//! runs the next group: the disk's flush and the next group's work overlap,
//! where with `synchronous = FULL` the writer sat in the flush for most of
//! each commit. NORMAL keeps SQLite's own syncs of the WAL header at a
//! restart and of both files at a checkpoint, so a crash cannot corrupt the
//! database; and no caller hears of a commit before a sync that began after
//! it. Other connections may read a commit a moment before it is durable.
//! If a sync fails the store takes no more writes, since a later sync's
//! success would not prove the earlier frames reached the disk.
//!
//! A failing job must roll back alone. A savepoint per job would do that,
//! but it copies every page a job touches into a statement journal, which
//! took 12% of the writer's time under the clinician's query. So a group
//! first runs without savepoints; only if one of its jobs fails is the whole
//! transaction rolled back and the group run again, each job inside a
//! savepoint of its own. Jobs are therefore written to be run more than once
//! (`FnMut`), and only the last run's outcome counts.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use cpis_store::{StoreError, StoreResult};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

/// How many jobs one transaction takes at most, so that one commit never
/// waits on an unbounded queue.
const MAX_GROUP: usize = 512;

/// How many jobs may wait for the writer before callers wait to send.
pub(crate) const QUEUE_DEPTH: usize = 8192;

/// Runs a statement kept prepared: every group begins and commits, and a
/// group run again opens and closes a savepoint per job; parsing them
/// afresh showed in a profile of the query.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// How a job's run went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ran {
    Done,
    /// The job failed; in a savepoint, it was rolled back alone.
    Failed,
    /// The transaction itself is no longer sound and must be rolled back.
    Broken,
}

pub(crate) trait Job: Send {
    /// Runs the job's work in the open transaction: `alone` inside a
    /// savepoint of its own, otherwise bare, leaving a failure's partial
    /// writes for the caller to roll back with the whole transaction.
    fn run(&mut self, conn: &Connection, alone: bool) -> Ran;
    /// Tells the caller the job's outcome once the group's commit is known:
    /// its own, or `failed`, which says why and whether it was committed.
    fn finish(self: Box<Self>, failed: Result<(), &str>);
}

pub(crate) type JobSender = mpsc::Sender<Box<dyn Job>>;

struct WriteJob<T, F> {
    work: F,
    outcome: Option<StoreResult<T>>,
    reply: Option<oneshot::Sender<StoreResult<T>>>,
}

impl<T, F> Job for WriteJob<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection, alone: bool) -> Ran {
        if alone && let Err(error) = run_cached(conn, "SAVEPOINT job") {
            self.outcome = Some(Err(unavailable(&error)));
            return Ran::Broken;
        }
        let work = &mut self.work;
        let outcome = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "a write panicked and was rolled back".into(),
            ))
        });
        let ran = match (&outcome, alone) {
            (Ok(_), false) => Ran::Done,
            (Err(_), false) => Ran::Failed,
            (Ok(_), true) if run_cached(conn, "RELEASE job").is_ok() => Ran::Done,
            (Err(_), true)
                if run_cached(conn, "ROLLBACK TO job").is_ok()
                    && run_cached(conn, "RELEASE job").is_ok() =>
            {
                Ran::Failed
            }
            (_, true) => Ran::Broken,
        };
        self.outcome = Some(outcome);
        ran
    }

    fn finish(mut self: Box<Self>, failed: Result<(), &str>) {
        let outcome = match (failed, self.outcome.take()) {
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::Unavailable("the write was not run".into())),
            (Err(why), _) => Err(StoreError::Unavailable(why.to_owned())),
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
    F: FnMut(&Connection) -> StoreResult<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = WriteJob {
        work,
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

/// Groups committed but not yet durable, on their way to the syncer.
pub(crate) type Committed = std::sync::mpsc::Sender<Vec<Box<dyn Job>>>;

/// The writer thread's loop: runs until every sender is dropped.
pub(crate) fn run_writer(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    committed: &Committed,
    restart: &AtomicBool,
    sync_failed: &AtomicBool,
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
        if sync_failed.load(Ordering::Acquire) {
            let why = format!("the write was not run: {SYNC_FAILED}");
            for job in group {
                job.finish(Err(&why));
            }
            continue;
        }
        match commit_group(&conn, &mut group) {
            Ok(()) => {
                if let Err(unsent) = committed.send(group) {
                    tracing::error!(
                        "the database's syncer has stopped; the store takes no more writes"
                    );
                    sync_failed.store(true, Ordering::Release);
                    for job in unsent.0 {
                        job.finish(Err(
                            "the write was committed but may not be durable: the database's syncer has stopped",
                        ));
                    }
                }
            }
            Err(why) => {
                tracing::error!(jobs = group.len(), error = %why, "a group of writes was rolled back");
                let why = format!("the write was not committed: {why}");
                for job in group {
                    job.finish(Err(&why));
                }
            }
        }
        if restart.swap(false, Ordering::Relaxed) && !restart_wal(&mut conn) {
            restart.store(true, Ordering::Relaxed);
        }
    }
}

const SYNC_FAILED: &str = "an earlier sync of the database's WAL failed; restart the service";

/// The syncer thread's loop: makes each committed group durable, together
/// with every other group waiting by then, and answers their callers.
/// Runs until the writer stops. `wal` is the WAL file as SQLite named it
/// (`wal_name`), opened while the writer's connection held it open, which
/// SQLite never deletes or replaces until that connection closes.
pub(crate) fn run_syncer(
    wal: File,
    wal_name: &Path,
    groups: std::sync::mpsc::Receiver<Vec<Box<dyn Job>>>,
    sync_failed: &AtomicBool,
) {
    while let Ok(mut durable) = groups.recv() {
        while let Ok(more) = groups.try_recv() {
            durable.extend(more);
        }
        let synced = if sync_failed.load(Ordering::Acquire) {
            Err(SYNC_FAILED.to_owned())
        } else {
            wal.sync_data().map_err(|error| {
                let error = format!("cannot sync {}: {error}", wal_name.display());
                tracing::error!(%error, "the WAL could not be synced; the store takes no more writes");
                sync_failed.store(true, Ordering::Release);
                error
            })
        };
        let failed =
            synced.map_err(|why| format!("the write was committed but may not be durable: {why}"));
        for job in durable {
            job.finish(failed.as_ref().map(|_| ()).map_err(String::as_str));
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
    if !run_group(conn, group, false)? {
        run_group(conn, group, true)?;
    }
    if let Err(error) = run_cached(conn, "COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(error.to_string());
    }
    Ok(())
}

/// Opens a transaction and runs the group in it, each job `alone` in a
/// savepoint or all bare. Returns `Ok(false)`, with the transaction rolled
/// back, when a bare job failed and the group must be run again alone.
fn run_group(conn: &Connection, group: &mut [Box<dyn Job>], alone: bool) -> Result<bool, String> {
    run_cached(conn, "BEGIN IMMEDIATE").map_err(|error| error.to_string())?;
    for job in group.iter_mut() {
        match job.run(conn, alone) {
            Ran::Done if !alone && conn.is_autocommit() => {
                return Err("a write ended the group's transaction".into());
            }
            Ran::Done => {}
            Ran::Failed if alone => {}
            Ran::Failed => {
                // A failure may have ended the transaction already.
                if !conn.is_autocommit() {
                    conn.execute_batch("ROLLBACK")
                        .map_err(|error| error.to_string())?;
                }
                return Ok(false);
            }
            Ran::Broken => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err("a savepoint could not be closed".into());
            }
        }
    }
    Ok(true)
}

fn unavailable(error: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A job that has run and now waits to hear how its commit went.
    fn job() -> (Box<dyn Job>, oneshot::Receiver<StoreResult<()>>) {
        let (reply, answer) = oneshot::channel();
        let job = WriteJob {
            work: |_: &Connection| Ok(()),
            outcome: Some(Ok(())),
            reply: Some(reply),
        };
        (Box::new(job), answer)
    }

    /// Runs the syncer on `wal` over `groups` of jobs sent before it starts,
    /// and returns each job's answer.
    fn sync(wal: File, groups: usize, failed: &AtomicBool) -> Vec<StoreResult<()>> {
        let (committed, to_sync) = std::sync::mpsc::channel();
        let mut answers = Vec::new();
        for _ in 0..groups {
            let (job, answer) = job();
            committed.send(vec![job]).unwrap();
            answers.push(answer);
        }
        drop(committed);
        run_syncer(wal, Path::new("cpis.db-wal"), to_sync, failed);
        answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap())
            .collect()
    }

    fn wal_file(dir: &Path) -> File {
        let wal = dir.join("cpis.db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        File::open(wal).unwrap()
    }

    #[test]
    fn a_committed_group_is_answered_once_its_wal_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let failed = AtomicBool::new(false);
        let answers = sync(wal_file(dir.path()), 3, &failed);
        assert!(answers.iter().all(Result::is_ok));
        assert!(!failed.load(Ordering::Acquire));
    }

    /// A WAL that cannot be synced (here a pipe, which `fdatasync` refuses)
    /// fails its callers, and every later group's, even if a later sync
    /// would succeed.
    #[test]
    fn a_failed_sync_fails_its_callers_and_every_later_write() {
        let (unsyncable, _writer) = std::io::pipe().unwrap();
        let unsyncable = File::from(std::os::fd::OwnedFd::from(unsyncable));
        let failed = AtomicBool::new(false);
        let answers = sync(unsyncable, 2, &failed);
        assert!(answers.iter().all(|answer| matches!(answer,
            Err(StoreError::Unavailable(why)) if why.contains("may not be durable"))));
        assert!(failed.load(Ordering::Acquire));

        let dir = tempfile::tempdir().unwrap();
        let later = sync(wal_file(dir.path()), 1, &failed);
        assert!(matches!(&later[0], Err(StoreError::Unavailable(why)) if why.contains("restart")));
    }
}
