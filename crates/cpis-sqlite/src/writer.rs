//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync.
//! So every write is a job sent to one thread, which runs each job as it
//! arrives in an open transaction and commits the jobs it has run together,
//! made durable by one fsync of the WAL. A job's caller hears back only
//! after that fsync.
//!
//! The commit does not wait for the disk. The writer's connection runs with
//! `synchronous = NORMAL`, so SQLite writes a commit's WAL frames without an
//! fsync, and hands the group to the syncer thread, which `fdatasync`s the
//! WAL file and only then answers the group's callers. The writer meanwhile
//! runs the jobs that come next, and commits them when the syncer is idle
//! again (and not within a millisecond of its last commit, see
//! [`COMMIT_GAP`]): the disk's flush and the next group's work overlap (with
//! `synchronous = FULL` the writer sat in the flush for most of each
//! commit), and a slow flush makes the next group larger, not its commits
//! more frequent. NORMAL keeps SQLite's own syncs of the WAL header at a
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cpis_store::{StoreError, StoreResult};
use rusqlite::Connection;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

/// How many jobs one transaction takes at most. Past it the writer commits,
/// even while the syncer is busy (the syncer then makes both groups durable
/// with one flush), so that the first callers of a long queue hear back
/// while the writer runs the rest. At 512, a backlog of a few hundred looks
/// kept the writer busy for several milliseconds with every caller waiting
/// on it and the runtime's workers idle, and then sent them all back at
/// once (seen with `perf record -e sched:sched_switch`): the two stages
/// took turns instead of overlapping. At 128 the query benchmark's looks
/// without HTTP went from 30,088-32,621/s to 34,683-40,058/s, and the
/// machine's idle share over HTTP from 8% to 4-6% (interleaved rounds,
/// 2026-12-07, BENCHMARKS.md). 32 and 64 were no faster, and each extra
/// commit rewrites the pages all looks share.
const MAX_GROUP: usize = 128;

/// The shortest time between two commits. Every commit rewrites the pages
/// all looks share (the ends of the access log, the outbox, the log and
/// their indexes), so small commits multiply what reaches the disk. The
/// syncer flushes in under a millisecond on this machine, so waiting for it
/// alone left commits of about three looks at 5,000 looks a second. With a
/// commit that follows a shared one waiting until 1 ms after it, 28 KB
/// reached the disk a look instead of 34 KB, the p99 was 14 to 16 ms, not
/// 21 to 30, and the median 3.2 ms, not 2.2 (`cargo xtask bench query`,
/// 2026-11-25, two interleaved runs each; 2 ms apart gave 25 KB and 1.5 ms
/// more at the median; on 2026-12-06, 2, 3 and 5 ms bought no throughput or
/// p99 beyond the noise and added what they wait to the median: see
/// BENCHMARKS.md). Only a commit that follows a shared one waits: a lone
/// caller writing one thing after another is not held back, since nobody
/// would join it, and neither is a write after a quiet millisecond.
const COMMIT_GAP: Duration = Duration::from_millis(1);

/// How many jobs may wait for the writer before callers wait to send.
pub(crate) const QUEUE_DEPTH: usize = 8192;

/// Runs a statement kept prepared: every group begins and commits, and a
/// group run again opens and closes a savepoint per job; parsing them
/// afresh showed in a profile of the query.
pub(crate) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
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

/// What the writer's queue carries.
pub(crate) enum ToWriter {
    Job(Box<dyn Job>),
    /// The syncer has answered every group handed to it: the writer may
    /// commit what it has run since.
    SyncerIdle,
}

pub(crate) type JobSender = mpsc::Sender<ToWriter>;

/// What the writer and the syncer share.
#[derive(Default)]
pub(crate) struct Handoff {
    /// Groups committed and handed to the syncer, not yet answered.
    in_syncer: AtomicUsize,
    /// Set when a sync has failed: the store takes no more writes.
    sync_failed: AtomicBool,
}

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
    jobs.send(ToWriter::Job(Box::new(job)))
        .await
        .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
    answer
        .await
        .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
}

/// Groups committed but not yet durable, on their way to the syncer.
pub(crate) type Committed = std::sync::mpsc::Sender<Vec<Box<dyn Job>>>;

/// The writer thread's loop: runs until every sender is dropped.
///
/// Each job runs as soon as it arrives, in the transaction left open for
/// the next commit. The writer commits when nothing more is waiting, the
/// syncer is idle and, if its last commit was shared, [`COMMIT_GAP`] has
/// passed since it (or the group is full), so one commit takes every job
/// run during the syncer's previous flush. Committing each batch as it
/// came wrote the pages every look shares (the ends of the access log, the
/// outbox and their indexes) once per small commit: about eight WAL frames
/// a look at 5,000 looks a second, so the WAL filled, and was restarted
/// with the writer held, every 0.4 s.
pub(crate) fn run_writer(
    mut conn: Connection,
    mut queue: mpsc::Receiver<ToWriter>,
    committed: &Committed,
    handoff: &Handoff,
    restart: &AtomicBool,
) {
    // Jobs run in the open transaction and not yet committed.
    let mut open: Vec<Box<dyn Job>> = Vec::new();
    // When the last commit began, and whether it was shared.
    let (mut last_commit, mut last_shared) = (Instant::now(), false);
    loop {
        let syncer_busy = handoff.in_syncer.load(Ordering::Acquire) > 0;
        let message = if open.is_empty() || (syncer_busy && open.len() < MAX_GROUP) {
            queue.blocking_recv()
        } else if open.len() >= MAX_GROUP {
            None
        } else {
            match queue.try_recv() {
                Ok(message) => Some(message),
                Err(TryRecvError::Empty) if last_shared && last_commit.elapsed() < COMMIT_GAP => {
                    // Too soon after the last commit: let more jobs join this one.
                    std::thread::sleep(COMMIT_GAP.saturating_sub(last_commit.elapsed()));
                    continue;
                }
                Err(_) => None,
            }
        };
        match message {
            Some(ToWriter::Job(job)) => run_bare(&conn, &mut open, job, committed, handoff),
            Some(ToWriter::SyncerIdle) => {}
            None if open.is_empty() => break,
            None => {
                (last_commit, last_shared) = (Instant::now(), open.len() > 1);
                commit(&conn, std::mem::take(&mut open), committed, handoff);
                if restart.swap(false, Ordering::Relaxed) && !restart_wal(&mut conn) {
                    restart.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Runs `job` bare in the open transaction (beginning one if need be). If
/// it fails, the transaction is rolled back and every job in it run again
/// alone, each in a savepoint, and committed at once.
fn run_bare(
    conn: &Connection,
    open: &mut Vec<Box<dyn Job>>,
    mut job: Box<dyn Job>,
    committed: &Committed,
    handoff: &Handoff,
) {
    if handoff.sync_failed.load(Ordering::Acquire) {
        job.finish(Err(&format!("the write was not run: {SYNC_FAILED}")));
        return;
    }
    if open.is_empty()
        && let Err(error) = run_cached(conn, "BEGIN IMMEDIATE")
    {
        job.finish(Err(&format!("the write was not committed: {error}")));
        return;
    }
    let ran = job.run(conn, false);
    open.push(job);
    let failed = match ran {
        Ran::Done if conn.is_autocommit() => Err("a write ended the group's transaction".into()),
        Ran::Done => return,
        // A failure may have ended the transaction already.
        _ if !conn.is_autocommit() => conn
            .execute_batch("ROLLBACK")
            .map_err(|error| error.to_string())
            .and_then(|()| run_alone(conn, open)),
        _ => run_alone(conn, open),
    };
    match failed {
        Ok(()) => commit(conn, std::mem::take(open), committed, handoff),
        Err(why) => {
            tracing::error!(jobs = open.len(), error = %why, "a group of writes was rolled back");
            let why = format!("the write was not committed: {why}");
            for job in open.drain(..) {
                job.finish(Err(&why));
            }
        }
    }
}

/// Commits the open transaction and hands its jobs to the syncer.
fn commit(conn: &Connection, group: Vec<Box<dyn Job>>, committed: &Committed, handoff: &Handoff) {
    let failed = if handoff.sync_failed.load(Ordering::Acquire) {
        Some(format!("the write was not committed: {SYNC_FAILED}"))
    } else {
        run_cached(conn, "COMMIT")
            .err()
            .map(|error| format!("the write was not committed: {error}"))
    };
    if let Some(why) = failed {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        tracing::error!(jobs = group.len(), error = %why, "a group of writes was rolled back");
        for job in group {
            job.finish(Err(&why));
        }
        return;
    }
    handoff.in_syncer.fetch_add(1, Ordering::AcqRel);
    if let Err(unsent) = committed.send(group) {
        tracing::error!("{SYNCER_STOPPED}");
        handoff.sync_failed.store(true, Ordering::Release);
        for job in unsent.0 {
            job.finish(Err(
                "the write was committed but may not be durable: the database's syncer has stopped",
            ));
        }
    }
}

const SYNCER_STOPPED: &str = "the database's syncer has stopped; the store takes no more writes";

const SYNC_FAILED: &str = "an earlier sync of the database's WAL failed; restart the service";

/// The syncer thread's loop: makes each committed group durable, together
/// with every other group waiting by then, and answers their callers; when
/// none is left it tells the writer, which may be holding a commit back
/// for it. Runs until the writer stops. `wal` is the WAL file as SQLite
/// named it (`wal_name`), opened while the writer's connection held it
/// open, which SQLite never deletes or replaces until that connection
/// closes. `writer` is weak, so that it does not keep the writer's queue
/// open when the store is dropped.
pub(crate) fn run_syncer(
    wal: File,
    wal_name: &Path,
    groups: std::sync::mpsc::Receiver<Vec<Box<dyn Job>>>,
    handoff: &Handoff,
    writer: &mpsc::WeakSender<ToWriter>,
) {
    let _stopped = SyncerStopped { handoff, writer };
    while let Ok(mut durable) = groups.recv() {
        let mut taken = 1;
        while let Ok(more) = groups.try_recv() {
            durable.extend(more);
            taken += 1;
        }
        let synced = if handoff.sync_failed.load(Ordering::Acquire) {
            Err(SYNC_FAILED.to_owned())
        } else {
            wal.sync_data().map_err(|error| {
                let error = format!("cannot sync {}: {error}", wal_name.display());
                tracing::error!(%error, "the WAL could not be synced; the store takes no more writes");
                handoff.sync_failed.store(true, Ordering::Release);
                error
            })
        };
        let failed =
            synced.map_err(|why| format!("the write was committed but may not be durable: {why}"));
        for job in durable {
            job.finish(failed.as_ref().map(|_| ()).map_err(String::as_str));
        }
        if handoff.in_syncer.fetch_sub(taken, Ordering::AcqRel) == taken
            && let Some(writer) = writer.upgrade()
        {
            // A full queue holds jobs, and the writer looks again after each.
            let _ = writer.try_send(ToWriter::SyncerIdle);
        }
    }
}

/// Tells the writer when the syncer stops: were it to stop by a panic, the
/// writer would otherwise hold its next commit back for it forever, and
/// every write would wait. The store then takes no more writes.
struct SyncerStopped<'a> {
    handoff: &'a Handoff,
    writer: &'a mpsc::WeakSender<ToWriter>,
}

impl Drop for SyncerStopped<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("{SYNCER_STOPPED}");
            self.handoff.sync_failed.store(true, Ordering::Release);
        }
        self.handoff.in_syncer.store(0, Ordering::Release);
        if let Some(writer) = self.writer.upgrade() {
            let _ = writer.try_send(ToWriter::SyncerIdle);
        }
    }
}

/// Makes the WAL start again from its beginning, between two commits (see
/// `checkpoint::run_in_background`). It waits a millisecond or so at most for
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

/// Opens a transaction and runs the group in it again, each job alone in a
/// savepoint, so that a failing job rolls back only its own writes.
fn run_alone(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), String> {
    run_cached(conn, "BEGIN IMMEDIATE").map_err(|error| error.to_string())?;
    for job in group.iter_mut() {
        if job.run(conn, true) == Ran::Broken {
            let _ = conn.execute_batch("ROLLBACK");
            return Err("a savepoint could not be closed".into());
        }
    }
    Ok(())
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
    /// and returns each job's answer, and whether the syncer told the writer
    /// it was idle.
    fn sync(wal: File, groups: usize, handoff: &Handoff) -> (Vec<StoreResult<()>>, bool) {
        let (committed, to_sync) = std::sync::mpsc::channel();
        let mut answers = Vec::new();
        for _ in 0..groups {
            let (job, answer) = job();
            handoff.in_syncer.fetch_add(1, Ordering::AcqRel);
            committed.send(vec![job]).unwrap();
            answers.push(answer);
        }
        drop(committed);
        let (writer, mut queue) = mpsc::channel(1);
        run_syncer(
            wal,
            Path::new("cpis.db-wal"),
            to_sync,
            handoff,
            &writer.downgrade(),
        );
        let answers = answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap())
            .collect();
        let idle = matches!(queue.try_recv(), Ok(ToWriter::SyncerIdle));
        (answers, idle)
    }

    /// A job inserting `n` into the table `t`, refused if `n` is negative.
    fn insert(n: i64) -> (Box<dyn Job>, oneshot::Receiver<StoreResult<()>>) {
        let (reply, answer) = oneshot::channel();
        let job = WriteJob {
            work: move |conn: &Connection| {
                if n < 0 {
                    return Err(StoreError::Conflict(format!("{n} is refused")));
                }
                conn.execute("INSERT INTO t (n) VALUES (?1)", [n])
                    .map(|_| ())
                    .map_err(|error| unavailable(&error))
            },
            outcome: None,
            reply: Some(reply),
        };
        (Box::new(job), answer)
    }

    /// A writer thread over a fresh database with a table `t`, its queue
    /// (`depth` jobs deep) and what it hands to the syncer, which no thread
    /// serves: a test plays the syncer.
    struct Writer {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        jobs: JobSender,
        to_sync: std::sync::mpsc::Receiver<Vec<Box<dyn Job>>>,
        handoff: std::sync::Arc<Handoff>,
        writer: std::thread::JoinHandle<()>,
    }

    impl Writer {
        fn start(depth: usize) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("writer.db");
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER NOT NULL);")
                .unwrap();
            let (jobs, queue) = mpsc::channel(depth);
            let (committed, to_sync) = std::sync::mpsc::channel();
            let handoff = std::sync::Arc::new(Handoff::default());
            let writer = std::thread::spawn({
                let handoff = handoff.clone();
                move || run_writer(conn, queue, &committed, &handoff, &AtomicBool::new(false))
            });
            Writer {
                _dir: dir,
                path,
                jobs,
                to_sync,
                handoff,
                writer,
            }
        }
    }

    /// What another connection sees committed in `t`.
    fn committed_rows(path: &Path) -> Vec<i64> {
        let conn = Connection::open(path).unwrap();
        let mut select = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
        select
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// While the syncer flushes one commit, the writer runs the jobs that
    /// arrive but holds their commit back until it hears the syncer is
    /// idle, then commits them as one group. A job failing meanwhile is
    /// rolled back alone, and what ran with it is committed at once.
    #[test]
    fn jobs_arriving_during_a_sync_are_committed_together_after_it() {
        let Writer {
            _dir,
            path,
            jobs,
            to_sync,
            handoff,
            writer,
        } = Writer::start(16);
        let send = |(job, answer): (Box<dyn Job>, oneshot::Receiver<StoreResult<()>>)| {
            jobs.blocking_send(ToWriter::Job(job)).unwrap();
            answer
        };
        let wait = std::time::Duration::from_secs(10);

        // The syncer is idle: the first job is committed alone, at once.
        send(insert(1));
        let flushing = to_sync.recv_timeout(wait).unwrap();
        assert_eq!(flushing.len(), 1);

        // Two more arrive while that group is being flushed.
        send(insert(2));
        send(insert(3));
        assert!(
            to_sync
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "nothing is committed while the syncer is busy"
        );
        assert_eq!(committed_rows(&path), [1]);

        // The flush ends: both are committed together.
        handoff.in_syncer.fetch_sub(1, Ordering::AcqRel);
        jobs.blocking_send(ToWriter::SyncerIdle).unwrap();
        let flushing = to_sync.recv_timeout(wait).unwrap();
        assert_eq!(flushing.len(), 2);
        assert_eq!(committed_rows(&path), [1, 2, 3]);

        // During that flush, one job runs well and the next fails.
        send(insert(4));
        let refused = send(insert(-1));
        let group = to_sync.recv_timeout(wait).unwrap();
        assert_eq!(group.len(), 2, "a failure commits what ran before it");
        assert_eq!(committed_rows(&path), [1, 2, 3, 4]);
        for job in group {
            job.finish(Ok(()));
        }
        assert!(matches!(
            refused.blocking_recv().unwrap(),
            Err(StoreError::Conflict(why)) if why.contains("refused")
        ));

        drop(jobs);
        writer.join().unwrap();
    }

    /// A backlog is not run whole before its first callers hear back: once
    /// `MAX_GROUP` jobs are open the writer commits them, though the syncer
    /// is still busy, and the rest wait for the syncer as any group does.
    #[test]
    fn a_full_group_is_committed_while_the_syncer_is_busy() {
        let w = Writer::start(MAX_GROUP + 8);
        let wait = std::time::Duration::from_secs(10);

        // The first job's group goes to the syncer, which stays busy.
        let (job, _answer) = insert(0);
        w.jobs.blocking_send(ToWriter::Job(job)).unwrap();
        assert_eq!(w.to_sync.recv_timeout(wait).unwrap().len(), 1);

        let backlog = MAX_GROUP + 3;
        for n in 1..=backlog {
            let (job, _answer) = insert(i64::try_from(n).unwrap());
            w.jobs.blocking_send(ToWriter::Job(job)).unwrap();
        }
        let full = w.to_sync.recv_timeout(wait).unwrap();
        assert_eq!(
            full.len(),
            MAX_GROUP,
            "a full group does not wait for the syncer"
        );
        assert!(
            w.to_sync
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the rest wait for the syncer"
        );
        assert_eq!(committed_rows(&w.path).len(), 1 + MAX_GROUP);

        w.handoff.in_syncer.store(0, Ordering::Release);
        w.jobs.blocking_send(ToWriter::SyncerIdle).unwrap();
        assert_eq!(
            w.to_sync.recv_timeout(wait).unwrap().len(),
            backlog - MAX_GROUP
        );
        assert_eq!(committed_rows(&w.path).len(), 1 + backlog);

        drop(w.jobs);
        w.writer.join().unwrap();
    }

    /// A job whose caller cannot be told: it makes the syncer panic.
    struct Unanswerable;

    impl Job for Unanswerable {
        fn run(&mut self, _: &Connection, _: bool) -> Ran {
            Ran::Done
        }
        fn finish(self: Box<Self>, _: Result<(), &str>) {
            panic!("the caller cannot be told");
        }
    }

    /// A syncer that stops by a panic tells the writer, which would
    /// otherwise hold its next commit back for it forever, and the store
    /// takes no more writes.
    #[test]
    fn a_syncer_that_panics_stops_the_store_taking_writes() {
        let dir = tempfile::tempdir().unwrap();
        let handoff = std::sync::Arc::new(Handoff::default());
        let (committed, to_sync) = std::sync::mpsc::channel();
        handoff.in_syncer.fetch_add(1, Ordering::AcqRel);
        committed
            .send(vec![Box::new(Unanswerable) as Box<dyn Job>])
            .unwrap();
        let (writer, mut queue) = mpsc::channel(1);
        let syncer = std::thread::spawn({
            let (handoff, wal) = (handoff.clone(), wal_file(dir.path()));
            move || {
                run_syncer(
                    wal,
                    Path::new("cpis.db-wal"),
                    to_sync,
                    &handoff,
                    &writer.downgrade(),
                )
            }
        });
        assert!(syncer.join().is_err());
        assert!(handoff.sync_failed.load(Ordering::Acquire));
        assert_eq!(handoff.in_syncer.load(Ordering::Acquire), 0);
        assert!(matches!(queue.try_recv(), Ok(ToWriter::SyncerIdle)));
    }

    fn wal_file(dir: &Path) -> File {
        let wal = dir.join("cpis.db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        File::open(wal).unwrap()
    }

    #[test]
    fn a_committed_group_is_answered_once_its_wal_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let handoff = Handoff::default();
        let (answers, idle) = sync(wal_file(dir.path()), 3, &handoff);
        assert!(answers.iter().all(Result::is_ok));
        assert!(!handoff.sync_failed.load(Ordering::Acquire));
        assert_eq!(handoff.in_syncer.load(Ordering::Acquire), 0);
        assert!(idle, "the writer is told it may commit");
    }

    /// A WAL that cannot be synced (here a pipe, which `fdatasync` refuses)
    /// fails its callers, and every later group's, even if a later sync
    /// would succeed.
    #[test]
    fn a_failed_sync_fails_its_callers_and_every_later_write() {
        let (unsyncable, _writer) = std::io::pipe().unwrap();
        let unsyncable = File::from(std::os::fd::OwnedFd::from(unsyncable));
        let handoff = Handoff::default();
        let (answers, _) = sync(unsyncable, 2, &handoff);
        assert!(answers.iter().all(|answer| matches!(answer,
            Err(StoreError::Unavailable(why)) if why.contains("may not be durable"))));
        assert!(handoff.sync_failed.load(Ordering::Acquire));

        let dir = tempfile::tempdir().unwrap();
        let (later, _) = sync(wal_file(dir.path()), 1, &handoff);
        assert!(matches!(&later[0], Err(StoreError::Unavailable(why)) if why.contains("restart")));
    }
}
