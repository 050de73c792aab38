//! Copying the WAL back into the database file, on a thread of its own.
//!
//! SQLite's automatic checkpoint ran on the writer and held every look
//! queued behind it for tens of milliseconds, so a thread of its own copies
//! the WAL with passive checkpoints, which wait for no one.
//!
//! A checkpoint as SQLite runs it syncs the WAL, copies, and syncs the
//! database file. That last sync forced the copied pages, scattered over the
//! file, out to the disk every round, and the WAL's own syncs (every commit
//! waits for one) queued behind it: without it the query's p99 at a fixed
//! 5,000 a second was lower in eight of nine interleaved pairs of runs
//! (median 19.5 ms against 23.7, and its worst look 26 to 84 ms against 27
//! ms to 30 s; BENCHMARKS.md, 2026-12-06). The database file is
//! not where a commit is made durable, the WAL is; the file's copy only has
//! to be on the disk before the WAL frames it came from can be lost. So this
//! thread's connection runs with `synchronous = OFF` and keeps two rules of
//! its own:
//! - A page is copied only from a frame already on the disk, or a crash could
//!   leave the file holding half of a commit the WAL never made durable.
//!   Before each copy it opens a read transaction (the fence) and then syncs
//!   the WAL: every frame in the fence's snapshot is then durable, and SQLite
//!   copies nothing past the snapshot of a reader still reading (or, if the
//!   fence reads the file alone because all was copied, nothing at all).
//! - Frames are lost only when the WAL starts again from its beginning (the
//!   writer does so when it finds everything copied and no reader in the
//!   WAL, or by `wal_checkpoint(RESTART)`) or is deleted when the last
//!   connection closes. So whenever a copy leaves nothing uncopied, the
//!   database file is synced before the fence ends, while the fence still
//!   keeps the WAL from starting again. A restart that finds frames still to
//!   copy copies them itself, as the writer's connection, and syncs.
//!   Before this connection closes it goes back to `synchronous = NORMAL`
//!   and syncs the file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use cpis_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension};

use crate::rows::DbResult;

/// How often the WAL is copied back into the database file. Each copy holds
/// up the writer's syncs, and the WAL's restart has to copy what was written
/// since the last one, so the more often, the smaller each. At a fixed 5,000
/// looks a second the p99 was 28 to 42 ms copying every 200 ms, 19 to 23 ms
/// every 50 ms, and 13 to 15 ms every 20 ms, but 20 ms cost about 7% of the
/// peak throughput (`cargo xtask bench query`, 2026-11-25, each copy then
/// followed by a sync of the database file). Measured again once that sync
/// was paced (`write_back_paced`; 2026-12-06), 50 ms was still the best of
/// 20, 50, 100 and 200 ms.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// The checkpointing thread's connections and files.
pub(crate) struct Checkpointer {
    /// Runs the passive checkpoints, with `synchronous = OFF`.
    conn: Connection,
    /// Holds the fence's read transaction.
    fence: Connection,
    wal: File,
    wal_name: PathBuf,
    database: File,
    database_name: PathBuf,
    /// How many times the database file was synced (for the tests).
    database_syncs: std::cell::Cell<u64>,
}

/// What one round found: the WAL's length and how much of it is copied, in
/// frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Copied {
    pub(crate) log: i64,
    pub(crate) copied: i64,
}

impl Checkpointer {
    /// Opens the checkpointer's connections to the database at `path`, whose
    /// WAL must exist (another connection has read it in WAL mode).
    pub(crate) fn open(path: &Path) -> StoreResult<Self> {
        let conn = crate::open_tuned(path)?;
        conn.execute_batch("PRAGMA synchronous = OFF;").db()?;
        let fence = crate::open_reader(path)?;
        let database_name = PathBuf::from(conn.path().unwrap_or_default());
        let wal_name = PathBuf::from(format!("{}-wal", database_name.display()));
        let open_file = |name: &Path| {
            File::open(name).map_err(|error| {
                StoreError::Unavailable(format!("cannot open {}: {error}", name.display()))
            })
        };
        Ok(Checkpointer {
            wal: open_file(&wal_name)?,
            database: open_file(&database_name)?,
            conn,
            fence,
            wal_name,
            database_name,
            database_syncs: std::cell::Cell::new(0),
        })
    }

    /// One round: copies every frame the disk already holds, and syncs the
    /// database file if nothing is left uncopied.
    pub(crate) fn copy_durable(&self) -> StoreResult<Copied> {
        let fence = Fence::begin(&self.fence)?;
        sync(&self.wal, &self.wal_name)?;
        let copied = self.passive()?;
        if copied.log > 0 && copied.copied == copied.log {
            self.sync_database()?;
        }
        drop(fence);
        Ok(copied)
    }

    /// Syncs the database file, so that a restart of the WAL after this has
    /// only what is copied later to sync.
    pub(crate) fn sync_database(&self) -> StoreResult<()> {
        self.database_syncs.set(self.database_syncs.get() + 1);
        write_back_paced(&self.database, &self.database_name)?;
        sync(&self.database, &self.database_name)
    }

    fn passive(&self) -> StoreResult<Copied> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok(Copied {
                    log: row.get(1)?,
                    copied: row.get(2)?,
                })
            })
            .db()
    }

    /// Leaves the database file synced and this connection syncing again,
    /// so that, if it is the last to close, SQLite's checkpoint at close
    /// syncs what it copies before deleting the WAL.
    fn close(self) -> StoreResult<()> {
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .db()?;
        self.sync_database()
    }
}

/// Into how many steps [`write_back_paced`] divides the database file, and
/// the least it writes back in one step.
const WRITE_BACK_STEPS: u64 = 64;
const WRITE_BACK_STEP_MIN: u64 = 1 << 20;

/// Starts the writeback of the database file's dirty pages one step of the
/// file at a time, waiting for each step's writes before the next, so that
/// the sync that follows has only the disk's cache to flush.
///
/// The pages a round copies lie scattered over the file. Synced at once,
/// hundreds of writes went to the disk together, and every commit's sync of
/// the WAL, waiting behind them, took up to 20 ms: that was the p99 of a look
/// at a fixed 5,000 a second. A step holds about a sixty-fourth of the
/// round's pages, so a WAL sync now waits for a few writes at most. In
/// interleaved runs of the query benchmark (BENCHMARKS.md, 2026-12-06) the
/// p99 at 5,000 a second went from 14.9 and 18.0 ms to 6.4 and 6.8 ms. Steps
/// of a quarter of a mebibyte were too many: waiting for each in turn, a
/// round took longer than its 50 ms.
#[cfg(target_os = "linux")]
fn write_back_paced(file: &File, name: &Path) -> StoreResult<()> {
    use std::os::fd::AsRawFd;
    let failed = |error: std::io::Error| {
        StoreError::Unavailable(format!("cannot write back {}: {error}", name.display()))
    };
    let as_offset = |n: u64| {
        libc::off64_t::try_from(n).map_err(|_| failed(std::io::ErrorKind::FileTooLarge.into()))
    };
    let len = file.metadata().map_err(failed)?.len();
    let step = as_offset((len / WRITE_BACK_STEPS).max(WRITE_BACK_STEP_MIN))?;
    let (len, mut offset) = (as_offset(len)?, 0);
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    while offset < len {
        #[allow(unsafe_code)]
        // SAFETY: sync_file_range reads no memory of ours: it takes a file
        // descriptor and three integers. The descriptor stays open while
        // `file` is borrowed, so it cannot name another file meanwhile.
        let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, step, flags) };
        if rc != 0 {
            return Err(failed(std::io::Error::last_os_error()));
        }
        // Past the end, the loop ends; saturating keeps that true at i64::MAX.
        offset = offset.saturating_add(step);
    }
    Ok(())
}

/// Elsewhere the sync writes everything at once.
#[cfg(not(target_os = "linux"))]
fn write_back_paced(_file: &File, _name: &Path) -> StoreResult<()> {
    Ok(())
}

fn sync(file: &File, name: &Path) -> StoreResult<()> {
    file.sync_data().map_err(|error| {
        StoreError::Unavailable(format!("cannot sync {}: {error}", name.display()))
    })
}

/// A read transaction held open: SQLite copies no frame past its snapshot.
struct Fence<'a>(&'a Connection);

impl<'a> Fence<'a> {
    fn begin(conn: &'a Connection) -> StoreResult<Self> {
        crate::writer::run_cached(conn, "BEGIN").db()?;
        let fence = Fence(conn);
        // A deferred transaction takes its snapshot at its first read.
        conn.prepare_cached("SELECT 1 FROM sqlite_schema LIMIT 1")
            .db()?
            .query_row([], |_| Ok(()))
            .optional()
            .db()?;
        Ok(fence)
    }
}

impl Drop for Fence<'_> {
    fn drop(&mut self) {
        if let Err(error) = crate::writer::run_cached(self.0, "COMMIT") {
            // Left open, it would keep the WAL from ever starting again.
            tracing::error!(%error, "the checkpoint's fence could not be ended");
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// Runs the checkpointer every [`CHECKPOINT_EVERY`] until `stop` is
/// dropped or sent to. Past `restart_frames` it syncs the database file and
/// copies once more, to leave the restart little to copy and sync, and
/// raises `restart`; the writer then restarts the WAL between two commits
/// (see `writer::restart_wal`), since a passive checkpoint never makes the
/// WAL start again while readers keep reading and the writer keeps
/// appending. (A restart from this thread had to win the write lock from a
/// writer that takes it back between commits at once.)
pub(crate) fn run_in_background(
    checkpointer: Checkpointer,
    restart_frames: i64,
    stop: Receiver<()>,
    restart: Arc<AtomicBool>,
) -> StoreResult<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cpis-sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
                let outcome = match checkpointer.copy_durable() {
                    Ok(copied) if copied.log > restart_frames => checkpointer
                        .sync_database()
                        .and_then(|()| checkpointer.copy_durable())
                        .map(|_| restart.store(true, Ordering::Relaxed)),
                    other => other.map(|_| ()),
                };
                if let Err(error) = outcome {
                    tracing::warn!(%error, "could not checkpoint the WAL");
                }
            }
            if let Err(error) = checkpointer.close() {
                tracing::error!(%error, "the checkpointer could not sync the database file");
            }
        })
        .map_err(|error| StoreError::Backend(Box::new(error)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A database in WAL mode with a table `t`, and a writer like the
    /// store's: it never checkpoints by itself.
    fn database() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (n INTEGER NOT NULL);",
            )
            .unwrap();
        (dir, path, writer)
    }

    fn commit(writer: &Connection, rows: i64) {
        let tx = writer.unchecked_transaction().unwrap();
        for n in 0..rows {
            tx.execute("INSERT INTO t (n) VALUES (?1)", [n]).unwrap();
        }
        tx.commit().unwrap();
    }

    /// Frames committed after the fence began (and so perhaps after the
    /// WAL's sync) are not copied while it lasts.
    #[test]
    fn nothing_past_the_fence_is_copied() {
        let (_dir, path, writer) = database();
        commit(&writer, 500);
        let checkpointer = Checkpointer::open(&path).unwrap();
        let fence = Fence::begin(&checkpointer.fence).unwrap();
        let before = checkpointer.passive().unwrap();
        commit(&writer, 500);
        let during = checkpointer.passive().unwrap();
        assert!(during.log > before.log, "the second commit added frames");
        assert_eq!(during.copied, before.log, "copied past the fence");
        drop(fence);
        let after = checkpointer.passive().unwrap();
        assert_eq!(after.copied, after.log);
    }

    /// A fence that began with everything copied reads the database file
    /// alone, and SQLite then copies nothing at all while it lasts.
    #[test]
    fn a_fence_on_a_copied_wal_holds_every_copy() {
        let (_dir, path, writer) = database();
        commit(&writer, 500);
        let checkpointer = Checkpointer::open(&path).unwrap();
        let copied = checkpointer.passive().unwrap();
        assert_eq!(copied.copied, copied.log);
        let fence = Fence::begin(&checkpointer.fence).unwrap();
        commit(&writer, 500);
        // The writer may have started the WAL again: the fence's reads do
        // not use it.
        let during = checkpointer.passive().unwrap();
        assert!(during.copied < during.log, "copied past the fence");
        drop(fence);
    }

    /// The paced writeback walks a file of any length, an empty one and
    /// one of several steps, and leaves nothing for the sync to refuse.
    #[test]
    fn the_database_file_is_written_back_step_by_step() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("file");
        std::fs::write(&name, b"").unwrap();
        write_back_paced(&File::open(&name).unwrap(), &name).unwrap();
        let pages = vec![7_u8; 3 * WRITE_BACK_STEP_MIN as usize + 4096];
        std::fs::write(&name, &pages).unwrap();
        let file = File::open(&name).unwrap();
        write_back_paced(&file, &name).unwrap();
        sync(&file, &name).unwrap();
        assert_eq!(std::fs::read(&name).unwrap(), pages);
    }

    /// The database file is synced when a round leaves nothing uncopied,
    /// and not while frames remain (the WAL cannot start again then).
    #[test]
    fn a_round_that_copies_everything_syncs_the_database_file() {
        let (_dir, path, writer) = database();
        commit(&writer, 500);
        let checkpointer = Checkpointer::open(&path).unwrap();
        let copied = checkpointer.copy_durable().unwrap();
        assert_eq!(copied.copied, copied.log);
        assert_eq!(checkpointer.database_syncs.get(), 1);
        // A reader still in the WAL keeps the rest uncopied.
        let reader = Connection::open(&path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM t;")
            .unwrap();
        commit(&writer, 500);
        let partial = checkpointer.copy_durable().unwrap();
        assert!(partial.copied < partial.log);
        assert_eq!(checkpointer.database_syncs.get(), 1);
        reader.execute_batch("COMMIT").unwrap();
    }
}
