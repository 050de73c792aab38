//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go to one writer thread that commits whatever is waiting as one
//! durable transaction (see `writer`); reads use a small pool of read-only
//! connections and run on the caller's thread, since nearly every read here
//! is an index lookup that takes microseconds; a report's page, which may
//! read through many looks, runs on a blocking thread (`read_apart`).

mod checkpoint;
mod migrations;
mod plan_index;
mod rows;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use cpis_domain::{
    AccessRecord, Attendance, LaCode, LocalAuthority, NhsNumber, OdsCode, Organisation, Plan,
    format_iso_date,
};
use cpis_store::encoding::{corrupt, from_micros};
use cpis_store::log::{
    self, Checkpoint, LogEntry, LogKind, LogLeaf, LoggedRecord, ReportRecord, RetentionRecord,
};
use cpis_store::merkle::{self, Hash};
use cpis_store::{AccessFilter, AccessQuery, OutboxKind};
use cpis_store::{
    AppliedPlans, DeliveryCounts, FailedItem, LaClient, LookReads, OutboxClaim, OutboxItem,
    PlanBatch, PlanPage, Recorded, RepeatCheck, Store, StoreCounts, StoreError, StoreResult,
    UploadRecord, Webhook,
};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::plan_index::{PlanIndex, Scope};
use crate::rows::{DbResult, micros};
use crate::writer::{JobSender, write};

/// The name of the database file inside a data directory.
pub const DATABASE_FILE: &str = "cpis.db";

/// How many idle read connections are kept.
const READERS_KEPT: usize = 16;

/// Settings every connection gets, each from a profile of the clinician's
/// query (`cargo xtask bench query`):
/// - No memory map. A connection drops its map whenever it begins to read
///   after another has committed, and under the query's unbroken writes that
///   is nearly every read: the unmapping, its TLB shootdowns on the other
///   core and the page faults that map the pages again took a tenth of the
///   readers' time, more than the copies a plain read makes.
/// - The query planner's stability guarantee: without it SQLite re-prepares
///   (parses and plans again) every statement with a bound `LIMIT ?`, or a
///   parameter a partial index compares, each time it runs; that was a
///   tenth of the readers' time.
/// - A lock another connection holds is waited for in short steps
///   ([`wait_briefly`]).
fn tune(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch("PRAGMA mmap_size = 0;").db()?;
    conn.busy_handler(Some(wait_briefly)).db()?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .db()?;
    Ok(())
}

/// The writer's page cache, in pages. Small on purpose: when a B-tree split
/// leaves its new pages out of order, SQLite swaps them through the page
/// number of the lock page (1 GiB into the file), and until the file is
/// larger than that, the commit then truncates the cache at the file's end by
/// walking every slot of the cache's hash table, once a commit. With 64 MiB
/// (16,384 pages) that walk was a fifth of the writer's time; 500 pages make
/// it negligible, and the pages a look misses are read from the operating
/// system's cache. Interleaved runs of the query benchmark (BENCHMARKS.md,
/// 2026-12-06): 18,474 to 19,140 looks/s over HTTP against 15,855 to 16,136.
const WRITER_CACHE_PAGES: u32 = 500;

/// How long a connection waits for a lock before it gives up: a write
/// that cannot get in by then fails, and its look is answered 503.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Tries spent in the shortest steps before the steps lengthen.
const BUSY_SHORT_TRIES: i32 = 200;

/// SQLite's own busy handler (`busy_timeout`) sleeps 1, 2, 5, 10, ... up to
/// 100 ms between tries, so a lock released after one millisecond could
/// hold a look for tens. When the checkpointer restarted the WAL, the
/// writer met such a lock each time, and that was the p99 at a fixed rate
/// (100 to 400 ms). Here the first tries come every 50 us, then every
/// millisecond, up to [`BUSY_WAIT`] in all. `tries` is how many times
/// SQLite has already asked for this lock.
fn wait_briefly(tries: i32) -> bool {
    const SHORT: std::time::Duration = std::time::Duration::from_micros(50);
    const LONG: std::time::Duration = std::time::Duration::from_millis(1);
    let spent = SHORT * tries.min(BUSY_SHORT_TRIES).unsigned_abs()
        + LONG * (tries - BUSY_SHORT_TRIES).max(0).unsigned_abs();
    if spent >= BUSY_WAIT {
        return false;
    }
    std::thread::sleep(if tries < BUSY_SHORT_TRIES {
        SHORT
    } else {
        LONG
    });
    true
}

/// A store in one SQLite database file.
pub struct SqliteStore {
    path: PathBuf,
    jobs: JobSender,
    readers: Mutex<Vec<Connection>>,
    /// How a reader is opened: [`open_reader`], or [`open_reader_apart`].
    open_reader: fn(&Path) -> StoreResult<Connection>,
    /// Every plan and LA in memory too, for the looks (see `plan_index`).
    plans: Arc<PlanIndex>,
    _threads: Threads,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The writer ends once its only sender is gone and its queue is
        // done: gone now, whatever order the fields are dropped in, and
        // `Threads` then waits for it.
        let (closed, _) = tokio::sync::mpsc::channel(1);
        drop(std::mem::replace(&mut self.jobs, closed));
    }
}

/// The threads that write the database file, or hold it open, waited for
/// when they are dropped, with the store or when opening it fails: a write
/// sent by a task that was then cancelled (a request whose client went
/// away, a loop stopped at shutdown) still runs, and it must have run, and
/// been synced, before the store is gone and the data directory's lock let
/// go (`cpis::prepare_data_dir`). Without the wait a process could exit, or
/// another open the directory, while it ran. The writer must have lost its
/// jobs' sender first.
#[derive(Default)]
struct Threads {
    writer: Option<std::thread::JoinHandle<()>>,
    syncer: Option<std::thread::JoinHandle<()>>,
    loader: Option<plan_index::Loader>,
    /// Dropped to stop the checkpointer between two rounds.
    stop_checkpoints: Option<std::sync::mpsc::Sender<()>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        let joined = |name: &str, thread: Option<std::thread::JoinHandle<()>>| {
            if thread.is_some_and(|thread| thread.join().is_err()) {
                tracing::error!(thread = name, "a thread of the store had panicked");
            }
        };
        // The writer commits what is queued and hangs up on the syncer,
        // which syncs it. The loader ends at its next load once the copy it
        // fills is gone, or at `Stop` (a load under way, say the first read
        // of every plan, is finished first); its connection is then closed.
        // Only then is the checkpointer's last round of use.
        joined("writer", self.writer.take());
        joined("syncer", self.syncer.take());
        if let Some(loader) = self.loader.take() {
            let _ = loader.loads.send(plan_index::Load::Stop);
            joined("plans", Some(loader.thread));
        }
        drop(self.stop_checkpoints.take());
        joined("checkpoint", self.checkpointer.take());
    }
}

/// How the embedded store manages its files.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    /// The WAL's length, in frames (one 4 KiB page each), past which the
    /// writer makes it start again from its beginning (see
    /// `checkpoint`).
    pub wal_restart_frames: i64,
}

impl Default for SqliteSettings {
    /// 262,144 frames, 1 GiB of disk at most. A restart holds the writer,
    /// and every look queued behind it, for 4 to 60 ms on this machine
    /// (it copies what came since the last checkpoint and syncs the
    /// database file), so the fewer the better. At a steady 5,000 looks a
    /// second a 64 MiB limit meant a restart every 0.4 to 0.5 s and a p99
    /// of 25 to 42 ms; at 1 GiB, one restart in 8 s and a p99 of 14 to 17
    /// ms (`cargo xtask bench query`, 2026-11-25, three runs of each).
    /// Only sustained load reaches the limit: SQLite starts the WAL again
    /// by itself when a write finds it all copied back and no reader in it.
    /// Since the checkpointer paces its writeback (2026-12-06) the writer's
    /// own sync at a restart has taken at most 2.5 ms, but 64 MiB still gave
    /// one run in three a p99 of 31 ms, so the limit stays.
    fn default() -> Self {
        SqliteSettings {
            wal_restart_frames: 262_144,
        }
    }
}

/// Runs `work` in one read transaction, so that all it reads comes from
/// one snapshot, and ends the transaction whatever the outcome.
fn in_snapshot<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    writer::run_cached(conn, "BEGIN").db()?;
    let outcome = work(conn);
    let ended = writer::run_cached(
        conn,
        if outcome.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        },
    );
    if ended.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let value = outcome?;
    ended.db()?;
    Ok(value)
}

/// One statement's part of an LA's feed, each item with its number: `sql`
/// takes the LA, the number to read after and the limit as `?1` to `?3`,
/// and reads `id, la_code, kind, payload, created_at, attempts, feed_seq`.
fn feed_page(
    conn: &Connection,
    sql: &str,
    la: LaCode,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<(u64, OutboxItem)>> {
    let mut select = conn.prepare_cached(sql).db()?;
    let rows = select
        .query_map(params![la.as_str(), after, limit], |row| {
            let seq: i64 = row.get(6)?;
            Ok(rows::outbox(row)?.map(|item| (u64::try_from(seq).unwrap_or(0), item)))
        })
        .db()?;
    rows.map(|row| row.db().and_then(|item| item)).collect()
}

/// Opens a connection with the settings every connection gets ([`tune`]).
fn open_tuned(path: &Path) -> StoreResult<Connection> {
    let mut conn = Connection::open(path).map_err(|error| {
        StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
    })?;
    tune(&mut conn)?;
    Ok(conn)
}

/// Readers open read-write and are kept from writing by `query_only`: a
/// connection opened read-only takes a slower path through the WAL index
/// (measured: 31 us against 17 us a lookup).
fn open_reader(path: &Path) -> StoreResult<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| StoreError::Unavailable(format!("cannot open {}: {error}", path.display())))?;
    conn.execute_batch("PRAGMA query_only = ON;").db()?;
    tune(&mut conn)?;
    Ok(conn)
}

/// [`open_reader`] for the store opened only to read, which holds no lock
/// on the data directory: closed as the database's last connection, it
/// leaves the WAL as it is, where SQLite would copy it back and delete it.
fn open_reader_apart(path: &Path) -> StoreResult<Connection> {
    let conn = open_reader(path)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .db()?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`, applies any
    /// migrations, and starts the writer thread.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        Self::open_with(data_dir, SqliteSettings::default())
    }

    /// [`SqliteStore::open`], with settings of its own.
    pub fn open_with(data_dir: &Path, settings: SqliteSettings) -> StoreResult<Self> {
        let path = data_dir.join(DATABASE_FILE);
        let mut conn = open_tuned(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;",
        )
        .db()?;
        // The writer's own: a group run again with a savepoint per job (see
        // `writer`) keeps its savepoint journal in memory, where it had
        // outgrown SQLite's limit and gone to a temporary file; and a small
        // page cache (`WRITER_CACHE_PAGES`).
        conn.execute_batch(&format!(
            "PRAGMA temp_store = MEMORY; PRAGMA cache_size = {WRITER_CACHE_PAGES}; \
             PRAGMA wal_autocheckpoint = 0;"
        ))
        .db()?;
        migrations::apply(&mut conn)?;
        // From here the syncer makes each commit durable (see `writer`).
        conn.execute_batch("PRAGMA synchronous = NORMAL;").db()?;
        // Declared before the jobs' sender, so dropped after it if opening
        // fails from here on: the writer must lose its sender to end.
        let mut threads = Threads::default();
        let (stop_checkpoints, checkpoints_stopped) = std::sync::mpsc::channel();
        threads.stop_checkpoints = Some(stop_checkpoints);
        let restart = Arc::new(AtomicBool::new(false));
        threads.checkpointer = Some(checkpoint::run_in_background(
            checkpoint::Checkpointer::open(&path)?,
            settings.wal_restart_frames,
            checkpoints_stopped,
            restart.clone(),
        )?);
        let (jobs, queue) = tokio::sync::mpsc::channel(writer::QUEUE_DEPTH);
        let (committed, to_sync) = std::sync::mpsc::channel();
        let handoff = Arc::new(writer::Handoff::default());
        // The WAL as SQLite named it, after following any symbolic links;
        // it exists now, since the writer's connection has read in WAL mode.
        let wal_name = PathBuf::from(format!("{}-wal", conn.path().unwrap_or_default()));
        let wal = std::fs::File::open(&wal_name).map_err(|error| {
            StoreError::Unavailable(format!("cannot open {}: {error}", wal_name.display()))
        })?;
        let (syncer_handoff, writer_queue) = (handoff.clone(), jobs.downgrade());
        threads.syncer = Some(
            std::thread::Builder::new()
                .name("cpis-sqlite-syncer".into())
                .spawn(move || {
                    writer::run_syncer(wal, &wal_name, to_sync, &syncer_handoff, &writer_queue);
                })
                .map_err(|error| StoreError::Backend(Box::new(error)))?,
        );
        threads.writer = Some(
            std::thread::Builder::new()
                .name("cpis-sqlite-writer".into())
                .spawn(move || writer::run_writer(conn, queue, &committed, &handoff, &restart))
                .map_err(|error| StoreError::Backend(Box::new(error)))?,
        );
        let (plans, loader) = PlanIndex::start({
            let path = path.clone();
            move || open_reader(&path)
        })?;
        threads.loader = Some(loader);
        Ok(SqliteStore {
            path,
            jobs,
            readers: Mutex::new(Vec::new()),
            open_reader,
            plans,
            _threads: threads,
        })
    }

    /// Opens the database in `data_dir` only to read it, beside a server
    /// that may be writing to it (`cpis audit verify`): nothing is migrated
    /// or created, no writer, syncer or checkpointer starts, and so the
    /// data directory's lock is not needed. Writes answer unavailable, and
    /// every look reads the database (the server's writes would not mark an
    /// in-memory copy stale). The database must be at this cpis's schema
    /// version: a reader of another version could misread it.
    pub fn open_to_read(data_dir: &Path) -> StoreResult<Self> {
        let path = data_dir.join(DATABASE_FILE);
        if !path.is_file() {
            return Err(StoreError::Conflict(format!(
                "there is no database at {}; check the data directory (--data-dir or CPIS_DATA_DIR)",
                path.display()
            )));
        }
        let conn = open_reader_apart(&path)?;
        cpis_store::refuse_other_schema(
            &format!("the database at {}", path.display()),
            migrations::current(&conn)?,
            migrations::newest(),
        )?;
        let (jobs, _) = tokio::sync::mpsc::channel(1);
        Ok(SqliteStore {
            path,
            jobs,
            readers: Mutex::new(vec![conn]),
            open_reader: open_reader_apart,
            plans: PlanIndex::unused(),
            _threads: Threads::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a read on a pooled read-only connection.
    fn read<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => (self.open_reader)(&self.path)?,
        };
        let outcome = work(&conn);
        // A connection left inside a transaction would go on reading its
        // old snapshot: it is closed, not kept.
        if conn.is_autocommit()
            && let Ok(mut idle) = self.readers.lock()
            && idle.len() < READERS_KEPT
        {
            idle.push(conn);
        }
        outcome
    }

    /// [`SqliteStore::read`] for a read that may take long, such as a
    /// report's page through the busiest hours of the log: on a blocking
    /// thread, with a connection of its own, so that the runtime's workers
    /// go on answering looks meanwhile.
    async fn read_apart<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (path, open) = (self.path.clone(), self.open_reader);
        tokio::task::spawn_blocking(move || work(&open(&path)?))
            .await
            .map_err(|error| StoreError::Unavailable(format!("a long read stopped: {error}")))?
    }
}

impl Store for SqliteStore {
    const COUNTS_ATTENDANCES_IN_WRITE: bool = true;

    async fn check_ready(&self) -> StoreResult<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).db())?;
        write(&self.jobs, |_| Ok(())).await
    }

    async fn counts(&self) -> StoreResult<StoreCounts> {
        self.read(|conn| {
            let count = |sql: &str| -> StoreResult<u64> {
                conn.query_row(sql, [], |row| row.get::<_, i64>(0))
                    .db()
                    .map(|n| u64::try_from(n).unwrap_or(0))
            };
            Ok(StoreCounts {
                local_authorities: count("SELECT count(*) FROM local_authority")?,
                organisations: count("SELECT count(*) FROM organisation")?,
                plans: count("SELECT count(*) FROM plan")?,
                access_records: count("SELECT count(*) FROM access_log")?,
                outbox_pending: count(
                    "SELECT count(*) FROM outbox
                     WHERE push = 1 AND delivered_at IS NULL AND failed_at IS NULL",
                )?,
            })
        })
    }

    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.read(|conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .db()
        })
    }

    async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        write(&self.jobs, move |conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .db()?;
            Ok(())
        })
        .await
    }

    async fn put_local_authorities(&self, authorities: Vec<LocalAuthority>) -> StoreResult<()> {
        let changes: Vec<_> = authorities
            .iter()
            .map(|la| self.plans.change(Scope::La(la.code)))
            .collect();
        write(&self.jobs, move |conn| {
            changes.iter().for_each(plan_index::Change::keep);
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO local_authority (code, name, emergency_duty_number,
                         office_hours_number, repeat_organisations, repeat_days)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                         emergency_duty_number = excluded.emergency_duty_number,
                         office_hours_number = excluded.office_hours_number,
                         repeat_organisations = excluded.repeat_organisations,
                         repeat_days = excluded.repeat_days",
                )
                .db()?;
            for la in &authorities {
                insert
                    .execute(params![
                        la.code.as_str(),
                        la.name,
                        la.emergency_duty_number.as_str(),
                        la.office_hours_number.as_str(),
                        la.repeat_attendance.organisations,
                        la.repeat_attendance.days
                    ])
                    .db()?;
            }
            Ok(())
        })
        .await
    }

    async fn local_authorities(&self) -> StoreResult<Vec<LocalAuthority>> {
        self.read(rows::local_authorities)
    }

    async fn local_authority(&self, code: LaCode) -> StoreResult<Option<LocalAuthority>> {
        self.read(|conn| rows::local_authority_of(conn, code))
    }

    async fn put_organisations(&self, organisations: Vec<Organisation>) -> StoreResult<()> {
        write(&self.jobs, move |conn| {
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO organisation (code, name, setting_type) VALUES (?1, ?2, ?3)
                     ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                         setting_type = excluded.setting_type",
                )
                .db()?;
            for organisation in &organisations {
                insert
                    .execute(params![
                        organisation.code.as_str(),
                        organisation.name,
                        organisation.setting_type.code()
                    ])
                    .db()?;
            }
            Ok(())
        })
        .await
    }

    async fn organisation(&self, code: OdsCode) -> StoreResult<Option<Organisation>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT code, name, setting_type FROM organisation WHERE code = ?1")
                .db()?
                .query_row([code.as_str()], rows::organisation)
                .optional()
                .db()?
                .transpose()
        })
    }

    async fn organisations(&self) -> StoreResult<Vec<Organisation>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached("SELECT code, name, setting_type FROM organisation ORDER BY code")
                .db()?;
            let rows = select.query_map([], rows::organisation).db()?;
            rows.map(|row| row.db().and_then(|organisation| organisation))
                .collect()
        })
    }

    async fn plans_for_nhs_number(
        &self,
        nhs_number: NhsNumber,
    ) -> StoreResult<Vec<(Plan, LocalAuthority)>> {
        match self.plans.plans_of(nhs_number) {
            Some(plans) => Ok(plans),
            None => self.read(|conn| rows::plans_of(conn, nhs_number)),
        }
    }

    /// The plans from memory when it holds them as the database does;
    /// otherwise both reads from one snapshot, on one connection, so that
    /// the windows are those of the plans read.
    async fn reads_for_look(
        &self,
        nhs_number: NhsNumber,
        at: OffsetDateTime,
        attendances: bool,
    ) -> StoreResult<LookReads> {
        let held = self.plans.plans_of(nhs_number);
        if let Some(plans) = &held
            && (!attendances || plans.is_empty())
        {
            return Ok(LookReads {
                plans: held.unwrap_or_default(),
                windows: Vec::new(),
            });
        }
        self.read(|conn| {
            in_snapshot(conn, |conn| {
                let plans = match held {
                    Some(plans) => plans,
                    None => rows::plans_of(conn, nhs_number)?,
                };
                let mut windows = Vec::new();
                if attendances {
                    for window in cpis_store::windows_of(&plans) {
                        let seen = rows::attendances_of(conn, nhs_number, at - window, at)?;
                        windows.push((window, seen));
                    }
                }
                Ok(LookReads { plans, windows })
            })
        })
    }

    async fn plans_for_la(&self, la: LaCode, page: PlanPage) -> StoreResult<Vec<Plan>> {
        self.read(|conn| {
            let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
            let mut out = Vec::new();
            let mut push = |row: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
                out.push(rows::plan(row, 0)?);
                Ok(())
            };
            match page.after {
                None => {
                    let mut select = conn
                        .prepare_cached(&format!(
                            "{} WHERE la_code = ?1 ORDER BY nhs_number, plan_type, start_date LIMIT ?2",
                            rows::SELECT_PLAN
                        ))
                        .db()?;
                    let mut rows = select.query(params![la.as_str(), limit]).db()?;
                    while let Some(row) = rows.next().db()? {
                        push(row).db()?;
                    }
                }
                Some(after) => {
                    let mut select = conn
                        .prepare_cached(&format!(
                            "{} WHERE la_code = ?1 AND (nhs_number, plan_type, start_date) > (?2, ?3, ?4)
                             ORDER BY nhs_number, plan_type, start_date LIMIT ?5",
                            rows::SELECT_PLAN
                        ))
                        .db()?;
                    let mut rows = select
                        .query(params![
                            la.as_str(),
                            rows::nhs(after.nhs_number),
                            after.plan_type.code(),
                            format_iso_date(after.start_date),
                            limit
                        ])
                        .db()?;
                    while let Some(row) = rows.next().db()? {
                        push(row).db()?;
                    }
                }
            }
            out.into_iter().collect()
        })
    }

    async fn apply_plans(&self, batch: PlanBatch) -> StoreResult<AppliedPlans> {
        let change = self.plans.change(Scope::La(batch.la));
        write(&self.jobs, move |conn| {
            change.keep();
            rows::apply_plans(conn, &batch)
        })
        .await
    }

    async fn record_access(
        &self,
        record: AccessRecord,
        outbox: Vec<OutboxItem>,
        repeat: Option<RepeatCheck>,
    ) -> StoreResult<Recorded> {
        // Hashed and serialised here, off the writer thread that every write
        // waits for.
        #[cfg(not(feature = "bench-without-log"))]
        let leaf = log::access_leaf_hash(&record);
        let returned = serde_json::to_string(&record.returned).map_err(corrupt)?;
        // Counted in the writer, after the look's own insert: the pages are
        // the ones it has just written, no read transaction is opened for
        // it, and the looks committed in the same group are seen.
        let repeat = repeat.map(|check| (check.owners, check.wording));
        write(&self.jobs, move |conn| {
            rows::insert_access(conn, &record, &returned)?;
            #[cfg(not(feature = "bench-without-log"))]
            rows::insert_leaf(conn, LogKind::Access, record.id, &leaf)?;
            let mut recorded = Recorded::default();
            for item in &outbox {
                recorded.pushed |= rows::insert_outbox(conn, item)?;
            }
            let Some((owners, wording)) = &repeat else {
                return Ok(recorded);
            };
            for alert in rows::repeat_alerts(conn, &record, owners, *wording)? {
                // Takes the window only if the last alert is old enough;
                // otherwise changes nothing, and no item is written.
                let took = conn
                    .prepare_cached(
                        "INSERT INTO repeat_alert (la_code, nhs_number, alerted_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (la_code, nhs_number) DO UPDATE SET alerted_at = excluded.alerted_at
                         WHERE repeat_alert.alerted_at <= ?4",
                    )
                    .db()?
                    .execute(params![
                        alert.item.la.as_str(),
                        rows::nhs(alert.nhs_number),
                        micros(alert.item.created_at),
                        micros(alert.not_since)
                    ])
                    .db()?;
                if took > 0 {
                    recorded.pushed |= rows::insert_outbox(conn, &alert.item)?;
                    recorded.alerts += 1;
                }
            }
            Ok(recorded)
        })
        .await
    }

    async fn attendances(
        &self,
        nhs_number: NhsNumber,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<Vec<Attendance>> {
        self.read(|conn| rows::attendances_of(conn, nhs_number, since, until))
    }

    async fn recent_unscheduled_accesses(
        &self,
        nhs_number: NhsNumber,
        limit: usize,
    ) -> StoreResult<Vec<AccessRecord>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(&format!(
                    "{} WHERE nhs_number = ?1 AND unscheduled = 1 ORDER BY at DESC, id DESC LIMIT ?2",
                    rows::SELECT_ACCESS
                ))
                .db()?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = select
                .query_map(params![rows::nhs(nhs_number), limit], rows::access)
                .db()?;
            rows.map(|row| row.db().and_then(|record| record)).collect()
        })
    }

    async fn claim_outbox(&self, claim: OutboxClaim) -> StoreResult<Vec<OutboxItem>> {
        write(&self.jobs, move |conn| {
            let now = micros(claim.now);
            let lease_until = micros(claim.now + claim.lease);
            let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
            let mut update = conn
                .prepare_cached(
                    "UPDATE outbox SET claimed_by = ?1, lease_until = ?2
                     WHERE id IN (
                         SELECT id FROM outbox
                         WHERE push = 1 AND delivered_at IS NULL AND failed_at IS NULL
                           AND available_at <= ?3
                           AND (lease_until IS NULL OR lease_until <= ?3)
                         ORDER BY id LIMIT ?4)
                     RETURNING id, la_code, kind, payload, coalesce(retry_since, created_at), attempts",
                )
                .db()?;
            let rows = update
                .query_map(params![claim.node, lease_until, now, limit], rows::outbox)
                .db()?;
            let mut items = rows
                .map(|row| row.db().and_then(|item| item))
                .collect::<StoreResult<Vec<_>>>()?;
            items.sort_by_key(|item| item.id);
            Ok(items)
        })
        .await
    }

    async fn complete_outbox(
        &self,
        node: &str,
        ids: Vec<Uuid>,
        at: OffsetDateTime,
    ) -> StoreResult<u64> {
        let node = node.to_owned();
        write(&self.jobs, move |conn| {
            let mut update = conn
                .prepare_cached(
                    "UPDATE outbox SET delivered_at = ?1, claimed_by = NULL, lease_until = NULL
                     WHERE id = ?2 AND claimed_by = ?3 AND delivered_at IS NULL",
                )
                .db()?;
            let mut marked = 0;
            for id in &ids {
                marked += update
                    .execute(params![micros(at), id.to_string(), node])
                    .db()? as u64;
            }
            Ok(marked)
        })
        .await
    }

    async fn put_ephemeral(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let (namespace, key, value) = (namespace.to_owned(), key.to_owned(), value.to_owned());
        write(&self.jobs, move |conn| {
            let changed = conn
                .prepare_cached(
                    "INSERT INTO ephemeral (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
                         expires_at = excluded.expires_at
                     WHERE ephemeral.expires_at <= ?5",
                )
                .db()?
                .execute(params![namespace, key, value, micros(expires_at), micros(now)])
                .db()?;
            Ok(changed == 1)
        })
        .await
    }

    async fn ephemeral(
        &self,
        namespace: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT value FROM ephemeral WHERE namespace = ?1 AND key = ?2 AND expires_at > ?3",
            )
            .db()?
            .query_row(params![namespace, key, micros(now)], |row| row.get(0))
            .optional()
            .db()
        })
    }

    async fn take_ephemeral(
        &self,
        namespace: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        write(&self.jobs, move |conn| {
            let value: Option<(String, i64)> = conn
                .prepare_cached(
                    "DELETE FROM ephemeral WHERE namespace = ?1 AND key = ?2
                     RETURNING value, expires_at",
                )
                .db()?
                .query_row(params![namespace, key], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
                .db()?;
            Ok(value
                .filter(|(_, expires_at)| *expires_at > micros(now))
                .map(|(value, _)| value))
        })
        .await
    }

    async fn purge_ephemeral(&self, now: OffsetDateTime) -> StoreResult<u64> {
        write(&self.jobs, move |conn| {
            let removed = conn
                .prepare_cached("DELETE FROM ephemeral WHERE expires_at <= ?1")
                .db()?
                .execute([micros(now)])
                .db()?;
            Ok(removed as u64)
        })
        .await
    }

    async fn put_la_client(&self, client: LaClient) -> StoreResult<()> {
        write(&self.jobs, move |conn| {
            conn.prepare_cached(
                "INSERT INTO la_client (client_id, la_code, public_key, created_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (client_id) DO UPDATE SET la_code = excluded.la_code,
                     public_key = excluded.public_key, created_at = excluded.created_at",
            )
            .db()?
            .execute(params![
                client.client_id,
                client.la.as_str(),
                client.public_key.to_string(),
                micros(client.created_at)
            ])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn la_client(&self, client_id: &str) -> StoreResult<Option<LaClient>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT client_id, la_code, public_key, created_at FROM la_client WHERE client_id = ?1",
            )
            .db()?
            .query_row([client_id], rows::la_client)
            .optional()
            .db()?
            .transpose()
        })
    }

    async fn la_clients(&self) -> StoreResult<Vec<LaClient>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(
                    "SELECT client_id, la_code, public_key, created_at FROM la_client ORDER BY client_id",
                )
                .db()?;
            let rows = select.query_map([], rows::la_client).db()?;
            rows.map(|row| row.db().and_then(|client| client)).collect()
        })
    }

    async fn record_upload(
        &self,
        upload: UploadRecord,
        batch: Option<PlanBatch>,
    ) -> StoreResult<UploadRecord> {
        let change = batch
            .as_ref()
            .map(|batch| self.plans.change(Scope::La(batch.la)));
        write(&self.jobs, move |conn| {
            change.iter().for_each(plan_index::Change::keep);
            let mut upload = upload.clone();
            if let Some(batch) = &batch {
                upload.withdrawn = rows::apply_plans(conn, batch)?.withdrawn;
            }
            rows::insert_upload(conn, &upload)?;
            rows::insert_leaf(
                conn,
                LogKind::Upload,
                upload.id,
                &log::upload_leaf_hash(&upload),
            )?;
            Ok(upload)
        })
        .await
    }

    async fn upload(&self, la: LaCode, id: Uuid) -> StoreResult<Option<UploadRecord>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "{} WHERE la_code = ?1 AND id = ?2",
                rows::SELECT_UPLOAD
            ))
            .db()?
            .query_row(params![la.as_str(), id.to_string()], rows::upload)
            .optional()
            .db()?
            .transpose()
        })
    }

    async fn upload_by_key(&self, la: LaCode, key: &str) -> StoreResult<Option<UploadRecord>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "{} WHERE la_code = ?1 AND idempotency_key = ?2",
                rows::SELECT_UPLOAD
            ))
            .db()?
            .query_row(params![la.as_str(), key], rows::upload)
            .optional()
            .db()?
            .transpose()
        })
    }

    async fn uploads(&self, la: LaCode, limit: usize) -> StoreResult<Vec<UploadRecord>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(
                    "SELECT id, la_code, received_at, mode, file_code, accepted, rejected, withdrawn,
                            idempotency_key, 'null'
                     FROM upload WHERE la_code = ?1 ORDER BY received_at DESC, id DESC LIMIT ?2",
                )
                .db()?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = select
                .query_map(params![la.as_str(), limit], rows::upload)
                .db()?;
            rows.map(|row| row.db().and_then(|upload| upload)).collect()
        })
    }

    async fn notifications(
        &self,
        la: LaCode,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, OutboxItem)>> {
        // The indexed items first, then, if the page is not full, the
        // newest, which are in feed order after every indexed one.
        self.read(|conn| {
            in_snapshot(conn, |conn| {
                let after = i64::try_from(after).unwrap_or(i64::MAX);
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let mut page = feed_page(
                    conn,
                    "SELECT o.id, o.la_code, o.kind, o.payload, o.created_at, o.attempts, o.feed_seq
                     FROM outbox_feed_by_la f JOIN outbox o ON o.feed_seq = f.feed_seq
                     WHERE f.la_code = ?1 AND f.feed_seq > ?2 ORDER BY f.feed_seq LIMIT ?3",
                    la,
                    after,
                    limit,
                )?;
                let left = limit - page.len() as i64;
                if left > 0 {
                    let indexed = rows::feed_indexed(conn)?;
                    page.extend(feed_page(
                        conn,
                        "SELECT id, la_code, kind, payload, created_at, attempts, feed_seq
                         FROM outbox WHERE feed_seq > ?2 AND la_code = ?1
                         ORDER BY feed_seq LIMIT ?3",
                        la,
                        after.max(indexed),
                        left,
                    )?);
                }
                Ok(page)
            })
        })
    }

    async fn latest_notifications(
        &self,
        la: LaCode,
        kind: Option<OutboxKind>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxItem>> {
        // Newest first: the items not yet indexed, then the indexed ones.
        self.read(|conn| {
            in_snapshot(conn, |conn| {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let kind = kind.map(OutboxKind::code);
                let indexed = rows::feed_indexed(conn)?;
                let mut select = conn
                    .prepare_cached(
                        "SELECT id, la_code, kind, payload, created_at, attempts FROM outbox
                         WHERE feed_seq > ?4 AND la_code = ?1 AND (?2 IS NULL OR kind = ?2)
                         ORDER BY feed_seq DESC LIMIT ?3",
                    )
                    .db()?;
                let mut newest = select
                    .query_map(params![la.as_str(), kind, limit, indexed], rows::outbox)
                    .db()?
                    .map(|row| row.db().and_then(|item| item))
                    .collect::<StoreResult<Vec<_>>>()?;
                let left = limit - newest.len() as i64;
                if left > 0 {
                    let mut select = conn
                        .prepare_cached(
                            "SELECT o.id, o.la_code, o.kind, o.payload, o.created_at, o.attempts
                             FROM outbox_feed_by_la f JOIN outbox o ON o.feed_seq = f.feed_seq
                             WHERE f.la_code = ?1 AND (?2 IS NULL OR o.kind = ?2)
                             ORDER BY f.feed_seq DESC LIMIT ?3",
                        )
                        .db()?;
                    let older = select
                        .query_map(params![la.as_str(), kind, left], rows::outbox)
                        .db()?
                        .map(|row| row.db().and_then(|item| item))
                        .collect::<StoreResult<Vec<_>>>()?;
                    newest.extend(older);
                }
                Ok(newest)
            })
        })
    }

    async fn put_webhook(&self, webhook: Webhook) -> StoreResult<()> {
        write(&self.jobs, move |conn| {
            conn.prepare_cached(
                "INSERT INTO la_webhook (la_code, url, secret, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (la_code) DO UPDATE SET url = excluded.url,
                     secret = excluded.secret, created_at = excluded.created_at",
            )
            .db()?
            .execute(params![
                webhook.la.as_str(),
                webhook.url,
                webhook.secret,
                micros(webhook.created_at)
            ])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn webhook(&self, la: LaCode) -> StoreResult<Option<Webhook>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT la_code, url, secret, created_at FROM la_webhook WHERE la_code = ?1",
            )
            .db()?
            .query_row([la.as_str()], rows::webhook)
            .optional()
            .db()?
            .transpose()
        })
    }

    async fn delete_webhook(&self, la: LaCode) -> StoreResult<bool> {
        write(&self.jobs, move |conn| {
            let removed = conn
                .prepare_cached("DELETE FROM la_webhook WHERE la_code = ?1")
                .db()?
                .execute([la.as_str()])
                .db()?;
            conn.prepare_cached(&format!(
                "UPDATE outbox SET push = 0 WHERE feed_seq IN
                     (SELECT feed_seq FROM {} WHERE push = 1 AND delivered_at IS NULL)",
                rows::LA_ITEMS
            ))
            .db()?
            .execute([la.as_str()])
            .db()?;
            Ok(removed > 0)
        })
        .await
    }

    async fn park_outbox(
        &self,
        node: &str,
        id: Uuid,
        at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        let (node, error) = (node.to_owned(), error.to_owned());
        write(&self.jobs, move |conn| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, failed_at = ?1, last_error = ?2,
                     claimed_by = NULL, lease_until = NULL
                 WHERE id = ?3 AND claimed_by = ?4 AND delivered_at IS NULL",
            )
            .db()?
            .execute(params![micros(at), error, id.to_string(), node])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn failed_outbox(&self, la: LaCode, limit: usize) -> StoreResult<Vec<FailedItem>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(
                    "SELECT id, la_code, kind, payload, created_at, attempts, failed_at, last_error
                     FROM outbox WHERE la_code = ?1 AND failed_at IS NOT NULL
                     ORDER BY failed_at DESC, id DESC LIMIT ?2",
                )
                .db()?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = select
                .query_map(params![la.as_str(), limit], |row| {
                    let failed_at: i64 = row.get(6)?;
                    let last_error: Option<String> = row.get(7)?;
                    Ok(rows::outbox(row)?.and_then(|item| {
                        Ok(FailedItem {
                            item,
                            failed_at: from_micros(failed_at)?,
                            last_error,
                        })
                    }))
                })
                .db()?;
            rows.map(|row| row.db().and_then(|item| item)).collect()
        })
    }

    async fn replay_outbox(
        &self,
        la: LaCode,
        ids: Option<Vec<Uuid>>,
        at: OffsetDateTime,
    ) -> StoreResult<u64> {
        write(&self.jobs, move |conn| {
            // Retries run for the retry period again from now, and go out
            // if the LA has a webhook now.
            const REPLAY: &str = "UPDATE outbox SET failed_at = NULL, attempts = 0,
                     available_at = ?2, retry_since = ?2,
                     push = EXISTS (SELECT 1 FROM la_webhook WHERE la_code = ?1)
                 WHERE la_code = ?1 AND failed_at IS NOT NULL";
            let replayed = match &ids {
                None => conn
                    .prepare_cached(REPLAY)
                    .db()?
                    .execute(params![la.as_str(), micros(at)])
                    .db()?,
                Some(ids) => {
                    let mut update = conn.prepare_cached(&format!("{REPLAY} AND id = ?3")).db()?;
                    let mut replayed = 0;
                    for id in ids {
                        replayed += update
                            .execute(params![la.as_str(), micros(at), id.to_string()])
                            .db()?;
                    }
                    replayed
                }
            };
            Ok(replayed as u64)
        })
        .await
    }

    async fn delivery_counts(&self, la: LaCode) -> StoreResult<DeliveryCounts> {
        self.read(|conn| {
            let (pending, delivered, failed): (i64, i64, i64) = conn
                .prepare_cached(&format!(
                    "SELECT
                         count(*) FILTER (WHERE push = 1 AND delivered_at IS NULL AND failed_at IS NULL),
                         count(*) FILTER (WHERE delivered_at IS NOT NULL),
                         count(*) FILTER (WHERE failed_at IS NOT NULL)
                     FROM {}",
                    rows::LA_ITEMS
                ))
                .db()?
                .query_row([la.as_str()], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .db()?;
            let last_error: Option<String> = conn
                .prepare_cached(&format!(
                    "SELECT last_error FROM {}
                     WHERE delivered_at IS NULL AND last_error IS NOT NULL
                     ORDER BY available_at DESC LIMIT 1",
                    rows::LA_ITEMS
                ))
                .db()?
                .query_row([la.as_str()], |row| row.get(0))
                .optional()
                .db()?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            Ok(DeliveryCounts {
                pending: count(pending),
                delivered: count(delivered),
                failed: count(failed),
                last_error,
            })
        })
    }

    async fn purge_outbox(&self, before: OffsetDateTime) -> StoreResult<u64> {
        // An alert's window (up to 365 days) may outlast the feed's retention.
        let alerts_before = before - time::Duration::days(366);
        // Found by id, which carries the item's time (`OutboxItem::id`), so
        // that no index by time costs every look an entry (migration 15).
        let first_kept = log::first_id_at(before).to_string();
        write(&self.jobs, move |conn| {
            conn.prepare_cached(
                "DELETE FROM outbox_feed_by_la WHERE (la_code, feed_seq) IN
                     (SELECT la_code, feed_seq FROM outbox WHERE id < ?1)",
            )
            .db()?
            .execute([&first_kept])
            .db()?;
            let removed = conn
                .prepare_cached("DELETE FROM outbox WHERE id < ?1")
                .db()?
                .execute([&first_kept])
                .db()?;
            conn.prepare_cached("DELETE FROM repeat_alert WHERE alerted_at < ?1")
                .db()?
                .execute([micros(alerts_before)])
                .db()?;
            Ok(removed as u64)
        })
        .await
    }

    async fn record_report(&self, report: ReportRecord) -> StoreResult<()> {
        let leaf = merkle::leaf_hash(&log::report_leaf(&report));
        write(&self.jobs, move |conn| {
            conn.prepare_cached(
                "INSERT INTO report_log (id, at, user_id, user_name, role_code, organisation_code,
                     report, subject, from_date, to_date, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .db()?
            .execute(params![
                report.id.to_string(),
                micros(report.at),
                report.user_id,
                report.user_name,
                report.role_code,
                report.organisation_code,
                report.report,
                report.subject,
                format_iso_date(report.from),
                format_iso_date(report.to),
                report.request_id
            ])
            .db()?;
            rows::insert_leaf(conn, LogKind::Report, report.id, &leaf)
        })
        .await
    }

    async fn accesses(&self, query: AccessQuery) -> StoreResult<Vec<AccessRecord>> {
        self.read_apart(move |conn| {
            let by = |subject| rows::accesses_by_bucket(conn, &subject, &query);
            match &query.filter {
                AccessFilter::NhsNumber(number) => rows::accesses_of_child(conn, *number, &query),
                AccessFilter::User(user) => by(rows::BucketedSubject::user(user)),
                AccessFilter::Organisation(code) => by(rows::BucketedSubject::organisation(code)),
            }
        })
        .await
    }

    async fn apply_retention(&self, retention: RetentionRecord) -> StoreResult<RetentionRecord> {
        let change = self.plans.change(Scope::All);
        write(&self.jobs, move |conn| {
            change.keep();
            let mut retention = retention.clone();
            retention.removed_access = conn
                .prepare_cached("DELETE FROM access_log WHERE id < ?1")
                .db()?
                .execute([log::first_id_at(retention.access_before).to_string()])
                .db()? as u64;
            if retention.removed_access > 0 {
                rows::remove_report_buckets_before_the_log(conn)?;
            }
            retention.removed_plans = conn
                .prepare_cached(
                    "DELETE FROM plan WHERE delete_date < ?1 OR end_date < ?2
                         OR (plan_type = 'UCPP' AND expected_delivery_date < ?2)",
                )
                .db()?
                .execute(params![
                    format_iso_date(retention.plans_withdrawn_before),
                    format_iso_date(retention.plans_ended_before)
                ])
                .db()? as u64;
            if retention.removed_access + retention.removed_plans > 0 {
                conn.prepare_cached(
                    "INSERT INTO retention_log (id, at, access_before, plans_withdrawn_before,
                         plans_ended_before, removed_access, removed_plans)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .db()?
                .execute(params![
                    retention.id.to_string(),
                    micros(retention.at),
                    micros(retention.access_before),
                    format_iso_date(retention.plans_withdrawn_before),
                    format_iso_date(retention.plans_ended_before),
                    i64::try_from(retention.removed_access).unwrap_or(i64::MAX),
                    i64::try_from(retention.removed_plans).unwrap_or(i64::MAX)
                ])
                .db()?;
                let leaf = merkle::leaf_hash(&log::retention_leaf(&retention));
                rows::insert_leaf(conn, LogKind::Retention, retention.id, &leaf)?;
            }
            Ok(retention)
        })
        .await
    }

    async fn retention_records(&self) -> StoreResult<Vec<RetentionRecord>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(&format!("{} ORDER BY at", rows::SELECT_RETENTION))
                .db()?;
            let rows = select.query_map([], rows::retention).db()?;
            rows.map(|row| row.db().and_then(|record| record)).collect()
        })
    }

    async fn sequence_log(&self) -> StoreResult<u64> {
        self.read(|conn| {
            let next: i64 = conn
                .query_row(
                    "SELECT coalesce(max(idx), -1) + 1 FROM log_leaf",
                    [],
                    |row| row.get(0),
                )
                .db()?;
            Ok(u64::try_from(next).unwrap_or(0))
        })
    }

    async fn log_leaf_hashes(&self, from: u64, to: u64) -> StoreResult<Vec<(u64, Hash)>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(
                    "SELECT idx, hash FROM log_leaf WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
                )
                .db()?;
            let (from, to) = (
                i64::try_from(from).unwrap_or(i64::MAX),
                i64::try_from(to).unwrap_or(i64::MAX),
            );
            let rows = select
                .query_map(params![from, to], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                })
                .db()?;
            rows.map(|row| {
                let (index, hash) = row.db()?;
                Ok((u64::try_from(index).unwrap_or(0), rows::hash_from(hash)?))
            })
            .collect()
        })
    }

    async fn log_nodes(&self, wanted: Vec<(u32, u64)>) -> StoreResult<Vec<Option<Hash>>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached("SELECT hash FROM log_node WHERE level = ?1 AND idx = ?2")
                .db()?;
            wanted
                .iter()
                .map(|(level, index)| {
                    select
                        .query_row(
                            params![level, i64::try_from(*index).unwrap_or(i64::MAX)],
                            |row| row.get::<_, Vec<u8>>(0),
                        )
                        .optional()
                        .db()?
                        .map(rows::hash_from)
                        .transpose()
                })
                .collect()
        })
    }

    async fn put_checkpoint(
        &self,
        nodes: Vec<(u32, u64, Hash)>,
        checkpoint: Checkpoint,
    ) -> StoreResult<()> {
        write(&self.jobs, move |conn| {
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO log_node (level, idx, hash) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )
                .db()?;
            for (level, index, hash) in &nodes {
                insert
                    .execute(params![
                        level,
                        i64::try_from(*index).unwrap_or(i64::MAX),
                        &hash[..]
                    ])
                    .db()?;
            }
            conn.prepare_cached(
                "INSERT INTO log_checkpoint (size, root, note, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )
            .db()?
            .execute(params![
                i64::try_from(checkpoint.size).unwrap_or(i64::MAX),
                &checkpoint.root[..],
                checkpoint.note,
                micros(checkpoint.created_at)
            ])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn latest_checkpoint(&self) -> StoreResult<Option<Checkpoint>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT size, root, note, created_at FROM log_checkpoint ORDER BY size DESC LIMIT 1",
            )
            .db()?
            .query_row([], rows::checkpoint)
            .optional()
            .db()?
            .transpose()
        })
    }

    async fn checkpoints(&self, after_size: u64, limit: usize) -> StoreResult<Vec<Checkpoint>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(
                    "SELECT size, root, note, created_at FROM log_checkpoint
                     WHERE size > ?1 ORDER BY size LIMIT ?2",
                )
                .db()?;
            let rows = select
                .query_map(
                    params![
                        i64::try_from(after_size).unwrap_or(i64::MAX),
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    rows::checkpoint,
                )
                .db()?;
            rows.map(|row| row.db().and_then(|checkpoint| checkpoint))
                .collect()
        })
    }

    async fn log_entries(&self, from: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        self.read(|conn| {
            // Access records, nearly every leaf, come in the same read.
            let mut leaves = conn
                .prepare_cached(
                    "SELECT l.idx, l.kind, l.record_id, l.hash, a.id, a.at, a.nhs_number,
                         a.user_id, a.user_name, a.role_code, a.role_name, a.activity_code,
                         a.organisation_code, a.organisation_name, a.setting_type,
                         a.unscheduled, a.returned, a.request_id
                     FROM log_leaf l
                     LEFT JOIN access_log a ON l.kind = 'access' AND a.id = l.record_id
                     WHERE l.idx >= ?1 ORDER BY l.idx LIMIT ?2",
                )
                .db()?;
            let mut upload = conn
                .prepare_cached(&format!("{} WHERE id = ?1", rows::SELECT_UPLOAD))
                .db()?;
            let mut report = conn
                .prepare_cached(&format!("{} WHERE id = ?1", rows::SELECT_REPORT))
                .db()?;
            let mut retention = conn
                .prepare_cached(&format!("{} WHERE id = ?1", rows::SELECT_RETENTION))
                .db()?;
            let found = leaves
                .query_map(
                    params![
                        i64::try_from(from).unwrap_or(i64::MAX),
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    |row| {
                        let access = match row.get::<_, Option<String>>(4)? {
                            Some(_) => Some(rows::access_at(row, 4)?),
                            None => None,
                        };
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, Vec<u8>>(3)?,
                            access,
                        ))
                    },
                )
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            found
                .into_iter()
                .map(|(index, kind, record_id, hash, access)| {
                    let kind = LogKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown log kind {kind}")))?;
                    let record = match kind {
                        LogKind::Access => access.transpose()?.map(LoggedRecord::Access),
                        LogKind::Upload => upload
                            .query_row([&record_id], rows::upload)
                            .optional()
                            .db()?
                            .transpose()?
                            .map(LoggedRecord::Upload),
                        LogKind::Report => report
                            .query_row([&record_id], rows::report)
                            .optional()
                            .db()?
                            .transpose()?
                            .map(LoggedRecord::Report),
                        LogKind::Retention => retention
                            .query_row([&record_id], rows::retention)
                            .optional()
                            .db()?
                            .transpose()?
                            .map(LoggedRecord::Retention),
                    };
                    Ok(LogEntry {
                        leaf: LogLeaf {
                            index: u64::try_from(index).unwrap_or(0),
                            kind,
                            record_id: Uuid::parse_str(&record_id)
                                .map_err(|error| StoreError::Corrupt(error.to_string()))?,
                            hash: rows::hash_from(hash)?,
                        },
                        record: record.unwrap_or(LoggedRecord::Missing),
                    })
                })
                .collect()
        })
    }

    async fn retry_outbox(
        &self,
        node: &str,
        id: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        let (node, error) = (node.to_owned(), error.to_owned());
        write(&self.jobs, move |conn| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, available_at = ?1, last_error = ?2,
                     claimed_by = NULL, lease_until = NULL
                 WHERE id = ?3 AND claimed_by = ?4 AND delivered_at IS NULL",
            )
            .db()?
            .execute(params![micros(retry_at), error, id.to_string(), node])
            .db()?;
            Ok(())
        })
        .await
    }
}
