//! Every plan and local authority held in memory as well, for the
//! clinician's look.
//!
//! SQLite throws a connection's page cache away whenever another connection
//! has committed, and under the looks' unbroken writes that is before nearly
//! every read: each plan lookup read its B-tree pages back from the operating
//! system, a seventh of the server's time (`cargo xtask bench query`,
//! 2026-12-06). Plans change only by uploads, retention and an LA's own
//! settings, so a copy in memory answers the look, and the database stays
//! the truth.
//!
//! The copy is kept true by never being used while it might be old:
//! - Before a write that may change an LA's plans or its row is sent to the
//!   writer, [`PlanIndex::change`] marks that LA stale; while any LA is
//!   stale, or the first load has not finished, [`PlanIndex::plans_of`]
//!   answers `None` and the store reads the database.
//! - The mark is a [`Change`] that travels inside the write job, so it ends
//!   only when the job is dropped: after its caller has been answered,
//!   committed or not. It then asks the loader thread to read that LA again.
//! - The loader reads the LA in a read transaction that begins after that,
//!   so it sees the commit, and puts it in only if no change to the LA began
//!   meanwhile (its generation is unchanged) and none is under way; otherwise
//!   the later change's own end asks again.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use cpis_domain::{LaCode, LocalAuthority, NhsNumber, Plan};
use cpis_store::{StoreError, StoreResult};
use rusqlite::Connection;

use crate::rows;

/// What the loader thread is asked to read again.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Load {
    La(LaCode),
    All,
    /// Ends the loader (sent when the store is dropped, by which time the
    /// copy is gone and any load before it ends the loader too).
    Stop,
}

/// What a change covers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    La(LaCode),
    /// Every LA held now (retention): one that arrives meanwhile comes
    /// with a change of its own.
    All,
}

#[derive(Default)]
struct LaEntry {
    /// The LA as the database held it when last read; `None` before.
    authority: Option<LocalAuthority>,
    /// The children with a plan of this LA in `children`, so that the LA's
    /// plans can be taken out when it is read again.
    children: Vec<NhsNumber>,
    /// Changes begun and not yet ended.
    changing: usize,
    /// Bumped when a change begins.
    generation: u64,
    stale: bool,
}

#[derive(Default)]
struct State {
    /// Every plan, by child, each LA's in the order the database gave them.
    children: HashMap<NhsNumber, Vec<Plan>>,
    las: HashMap<LaCode, LaEntry>,
    /// How many LAs are stale: the copy is used only when none is.
    stale: usize,
    /// Whether a load of everything has finished since the last change to
    /// every LA began (none before the first load).
    loaded: bool,
    /// Changes to every LA begun and not yet ended, and how many began.
    all_changing: usize,
    all_generation: u64,
}

impl State {
    fn mark_stale(&mut self, la: LaCode) {
        let entry = self.las.entry(la).or_default();
        entry.changing += 1;
        entry.generation += 1;
        if !entry.stale {
            entry.stale = true;
            self.stale += 1;
        }
    }

    /// Replaces what is held of `la` with what was read, unless a change to
    /// it began after `generation` was taken or is still under way.
    fn put(
        &mut self,
        la: LaCode,
        generation: u64,
        authority: Option<LocalAuthority>,
        plans: Vec<Plan>,
    ) -> bool {
        let entry = self.las.entry(la).or_default();
        if entry.changing > 0 || entry.generation != generation {
            return false;
        }
        let old = std::mem::take(&mut entry.children);
        let was_stale = std::mem::replace(&mut entry.stale, false);
        entry.authority = authority;
        let mut children = Vec::with_capacity(plans.len());
        for plan in &plans {
            if children.last() != Some(&plan.nhs_number()) {
                children.push(plan.nhs_number());
            }
        }
        entry.children = children;
        for child in old {
            if let Some(held) = self.children.get_mut(&child) {
                held.retain(|plan| plan.la() != la);
                if held.is_empty() {
                    self.children.remove(&child);
                }
            }
        }
        for plan in plans {
            self.children
                .entry(plan.nhs_number())
                .or_default()
                .push(plan);
        }
        if was_stale {
            self.stale -= 1;
        }
        true
    }
}

/// The plans and LAs in memory, shared by the store and its loader thread.
pub(crate) struct PlanIndex {
    state: RwLock<State>,
    /// The loader's queue; a `Mutex` so that a `Change` ended on any thread
    /// can send.
    loader: Mutex<Sender<Load>>,
    /// Loads finished, and a signal at each, for whoever waits for the copy
    /// to be in use (tests).
    loads: (Mutex<u64>, Condvar),
}

/// A change under way to one LA's plans or row, or to every LA's: while it
/// lives, the copy is not used. It must live as long as the write job.
pub(crate) struct Change {
    index: Arc<PlanIndex>,
    /// The LAs marked stale, each once.
    las: Vec<LaCode>,
    load: Load,
}

impl Change {
    /// Does nothing: a write job calls it so that it holds the change, and
    /// ends it only when the job itself is dropped.
    pub(crate) fn keep(&self) {}
}

impl Drop for Change {
    fn drop(&mut self) {
        match self.index.state.write() {
            Ok(mut state) => {
                if matches!(self.load, Load::All) {
                    state.all_changing = state.all_changing.saturating_sub(1);
                }
                for la in &self.las {
                    if let Some(entry) = state.las.get_mut(la) {
                        entry.changing = entry.changing.saturating_sub(1);
                    }
                }
            }
            // A panic while the lock was held: the copy is never used again.
            Err(_) => return,
        }
        if let Ok(loader) = self.index.loader.lock() {
            // A loader that has stopped leaves the LA stale: looks read the database.
            let _ = loader.send(self.load);
        }
    }
}

/// The loader thread, and the way to tell it to stop.
pub(crate) struct Loader {
    pub(crate) thread: std::thread::JoinHandle<()>,
    pub(crate) loads: std::sync::mpsc::Sender<Load>,
}

impl PlanIndex {
    /// An empty copy, with the thread that fills it from the database at
    /// `path` and reads each changed LA again. The thread ends at a
    /// [`Load::Stop`] sent through the returned sender.
    pub(crate) fn start(
        open: impl FnOnce() -> StoreResult<Connection> + Send + 'static,
    ) -> StoreResult<(Arc<Self>, Loader)> {
        let (loader, loads) = std::sync::mpsc::channel();
        let index = Arc::new(PlanIndex {
            state: RwLock::new(State::default()),
            loader: Mutex::new(loader.clone()),
            loads: (Mutex::new(0), Condvar::new()),
        });
        let weak = Arc::downgrade(&index);
        let thread = std::thread::Builder::new()
            .name("cpis-sqlite-plans".into())
            .spawn(move || match open() {
                Ok(conn) => run_loader(&conn, &weak, &loads),
                Err(error) => {
                    tracing::error!(%error, "plans are read from the database at every look")
                }
            })
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        // The first load.
        let _ = loader.send(Load::All);
        Ok((
            index,
            Loader {
                thread,
                loads: loader,
            },
        ))
    }

    /// A copy that is never filled, so that every look reads the database:
    /// for a store that only reads, beside a process that writes (see
    /// `SqliteStore::open_to_read`), where no change would mark it stale.
    pub(crate) fn unused() -> Arc<Self> {
        let (loader, _) = std::sync::mpsc::channel();
        Arc::new(PlanIndex {
            state: RwLock::new(State::default()),
            loader: Mutex::new(loader),
            loads: (Mutex::new(0), Condvar::new()),
        })
    }

    /// Marks `scope` stale until the returned change is dropped and the LA
    /// read again. Call it before the write is sent.
    pub(crate) fn change(self: &Arc<Self>, scope: Scope) -> Change {
        let mut las = Vec::new();
        let load = match scope {
            Scope::La(la) => {
                las.push(la);
                Load::La(la)
            }
            Scope::All => Load::All,
        };
        if let Ok(mut state) = self.state.write() {
            if matches!(scope, Scope::All) {
                state.all_changing += 1;
                state.all_generation += 1;
                las = state.las.keys().copied().collect();
            }
            for la in &las {
                state.mark_stale(*la);
            }
        }
        Change {
            index: self.clone(),
            las,
            load,
        }
    }

    /// Whether looks are answered from the copy now.
    #[cfg(test)]
    pub(crate) fn serving(&self) -> bool {
        self.state
            .read()
            .is_ok_and(|state| state.loaded && state.stale == 0)
    }

    /// Waits until the copy is in use, at most `timeout`; whether it is.
    #[cfg(test)]
    pub(crate) fn wait_serving(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let (loads, signal) = &self.loads;
        let Ok(mut seen) = loads.lock() else {
            return false;
        };
        while !self.serving() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            match signal.wait_timeout(seen, left) {
                Ok((guard, _)) => seen = guard,
                Err(_) => return false,
            }
        }
        true
    }

    /// A child's plans with their LAs, as the database holds them, or `None`
    /// when the copy may be old and the database must be read.
    pub(crate) fn plans_of(&self, nhs_number: NhsNumber) -> Option<Vec<(Plan, LocalAuthority)>> {
        let state = self.state.read().ok()?;
        if !state.loaded || state.stale > 0 {
            return None;
        }
        let Some(plans) = state.children.get(&nhs_number) else {
            return Some(Vec::new());
        };
        plans
            .iter()
            .map(|plan| {
                let authority = state.las.get(&plan.la())?.authority.clone()?;
                Some((plan.clone(), authority))
            })
            .collect()
    }
}

/// The loader thread: reads what it is asked to, until the store is gone.
fn run_loader(conn: &Connection, index: &std::sync::Weak<PlanIndex>, loads: &Receiver<Load>) {
    while let Ok(load) = loads.recv() {
        let Some(index) = index.upgrade() else { return };
        let outcome = match load {
            Load::All => load_all(conn, &index),
            Load::La(la) => load_la(conn, &index, la),
            Load::Stop => return,
        };
        if let Err(error) = outcome {
            // Left stale: looks read the database until the next change.
            tracing::error!(%error, "plans could not be read into memory; looks read the database");
        }
        let (loads, signal) = &index.loads;
        if let Ok(mut done) = loads.lock() {
            *done += 1;
            signal.notify_all();
        }
    }
}

/// Reads one LA again, unless a change to it is under way.
fn load_la(conn: &Connection, index: &PlanIndex, la: LaCode) -> StoreResult<()> {
    let generation = {
        let state = index.state.read().map_err(poisoned)?;
        match state.las.get(&la) {
            Some(entry) if entry.changing == 0 => entry.generation,
            _ => return Ok(()),
        }
    };
    let (authority, plans) = crate::in_snapshot(conn, |conn| {
        let authority = rows::local_authority_of(conn, la)?;
        let plans = rows::plans_of_la(conn, la)?;
        Ok((authority, plans))
    })?;
    index
        .state
        .write()
        .map_err(poisoned)?
        .put(la, generation, authority, plans);
    Ok(())
}

/// Reads every LA and plan: the first load, and after retention.
fn load_all(conn: &Connection, index: &PlanIndex) -> StoreResult<()> {
    let (all_generation, generations): (u64, HashMap<LaCode, u64>) = {
        let state = index.state.read().map_err(poisoned)?;
        let generations = state
            .las
            .iter()
            .map(|(la, entry)| (*la, entry.generation))
            .collect();
        (state.all_generation, generations)
    };
    let (authorities, plans) = crate::in_snapshot(conn, |conn| {
        let authorities = rows::local_authorities(conn)?;
        Ok((authorities, rows::all_plans(conn)?))
    })?;
    let mut by_la: HashMap<LaCode, Vec<Plan>> = HashMap::new();
    for plan in plans {
        by_la.entry(plan.la()).or_default().push(plan);
    }
    let mut state = index.state.write().map_err(poisoned)?;
    for authority in authorities {
        let la = authority.code;
        let plans = by_la.remove(&la).unwrap_or_default();
        let generation = generations.get(&la).copied().unwrap_or(0);
        // An LA changed meanwhile stays stale, and its change's end reads it again.
        state.put(la, generation, Some(authority), plans);
    }
    // A change to every LA begun meanwhile may have changed LAs this load
    // had not met yet; its end loads everything again.
    state.loaded = state.all_changing == 0 && state.all_generation == all_generation;
    Ok(())
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("the plans held in memory were left half-changed by a panic".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use cpis_domain::{PhoneNumber, PlanFields, PlanType};
    use cpis_store::conformance::{batch, test_la, test_nhs_number, test_plan};
    use cpis_store::log::RetentionRecord;
    use cpis_store::{Snapshot, Store, UploadRecord};
    use time::macros::{date, datetime};
    use uuid::Uuid;

    use super::*;
    use crate::SqliteStore;

    const WAIT: Duration = Duration::from_secs(30);
    const A: &str = "E06000001";
    const B: &str = "E06000002";

    fn plans(la: &str, children: std::ops::Range<u32>, plan_type: PlanType) -> Vec<Plan> {
        children
            .map(|n| test_plan(la, test_nhs_number(n), plan_type, date!(2026 - 01 - 05)))
            .collect()
    }

    /// A child's plans in a fixed order, to compare the copy with the database.
    fn sorted(mut plans: Vec<(Plan, LocalAuthority)>) -> Vec<(Plan, LocalAuthority)> {
        plans.sort_by_key(|(plan, _)| format!("{:?}", plan.key()));
        plans
    }

    /// Waits for the copy to be in use, then checks that it gives each child
    /// exactly what the database holds.
    fn assert_copy_is_the_database(store: &SqliteStore, children: std::ops::Range<u32>) {
        assert!(
            store.plans.wait_serving(WAIT),
            "the copy comes back into use"
        );
        for n in children {
            let child = test_nhs_number(n);
            let held = store.plans.plans_of(child).expect("the copy answers");
            let stored = store.read(|conn| rows::plans_of(conn, child)).unwrap();
            assert_eq!(sorted(held), sorted(stored), "child {n}");
        }
    }

    #[tokio::test]
    async fn the_copy_is_what_the_database_holds_after_every_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .put_local_authorities(vec![test_la(A, "Hartlepool"), test_la(B, "Middlesbrough")])
            .await
            .unwrap();
        store
            .apply_plans(batch(A, plans(A, 1..20, PlanType::ChildProtection), None))
            .await
            .unwrap();
        store
            .apply_plans(batch(B, plans(B, 10..30, PlanType::LookedAfter), None))
            .await
            .unwrap();
        assert_copy_is_the_database(&store, 0..35);

        // A snapshot that withdraws what it leaves out.
        let snapshot = Snapshot {
            withdraw_on: date!(2026 - 12 - 01),
            max_withdraw_percent: None,
        };
        let applied = store
            .apply_plans(batch(
                A,
                plans(A, 1..15, PlanType::ChildProtection),
                Some(snapshot),
            ))
            .await
            .unwrap();
        assert_eq!(applied.withdrawn, 5);
        assert_copy_is_the_database(&store, 0..35);

        // The LA's own numbers.
        let renumbered = LocalAuthority::new(
            LaCode::parse(A).unwrap(),
            "Hartlepool",
            PhoneNumber::parse("01632 960999").unwrap(),
            PhoneNumber::parse("01632 960998").unwrap(),
        )
        .unwrap();
        store
            .put_local_authorities(vec![renumbered.clone()])
            .await
            .unwrap();
        assert_copy_is_the_database(&store, 0..35);
        let (_, la) = &store.plans.plans_of(test_nhs_number(1)).unwrap()[0];
        assert_eq!(la.emergency_duty_number, renumbered.emergency_duty_number);

        // An upload with its plans; and a plan ended long ago, then retention.
        let ended = Plan::new(PlanFields {
            end_date: Some(date!(2024 - 01 - 31)),
            ..test_plan(
                B,
                test_nhs_number(40),
                PlanType::ChildProtection,
                date!(2023 - 01 - 05),
            )
            .fields()
        })
        .unwrap();
        let upload = UploadRecord {
            id: Uuid::now_v7(),
            la: LaCode::parse(B).unwrap(),
            received_at: datetime!(2026-12-01 10:00 UTC),
            mode: "changes".into(),
            file_code: "CPF03".into(),
            accepted: 2,
            rejected: 0,
            withdrawn: 0,
            idempotency_key: None,
            records: serde_json::json!([]),
        };
        let mut uploaded = plans(B, 41..42, PlanType::LookedAfter);
        uploaded.push(ended);
        store
            .record_upload(upload, Some(batch(B, uploaded, None)))
            .await
            .unwrap();
        assert_copy_is_the_database(&store, 0..45);
        assert_eq!(store.plans.plans_of(test_nhs_number(40)).unwrap().len(), 1);
        let retention = store
            .apply_retention(RetentionRecord {
                id: Uuid::now_v7(),
                at: datetime!(2026-12-01 10:00 UTC),
                access_before: datetime!(2018-12-01 10:00 UTC),
                plans_withdrawn_before: date!(2024 - 12 - 01),
                plans_ended_before: date!(2025 - 12 - 01),
                removed_access: 0,
                removed_plans: 0,
            })
            .await
            .unwrap();
        assert_eq!(retention.removed_plans, 1);
        assert_copy_is_the_database(&store, 0..45);
        assert!(
            store
                .plans
                .plans_of(test_nhs_number(40))
                .unwrap()
                .is_empty()
        );

        // A store opened again loads what is on disk.
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_copy_is_the_database(&store, 0..45);
    }

    /// Every look after a change has returned sees it, whether the copy is
    /// in use at that moment or not, while other LAs change at the same time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_look_after_a_change_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        store
            .put_local_authorities(vec![test_la(A, "Hartlepool"), test_la(B, "Middlesbrough")])
            .await
            .unwrap();
        let added = Arc::new(AtomicUsize::new(0));
        let looker = tokio::spawn({
            let (store, added) = (store.clone(), added.clone());
            async move {
                let mut served = 0;
                while added.load(Ordering::Acquire) < 40 {
                    let known = added.load(Ordering::Acquire);
                    served += usize::from(store.plans.serving());
                    for n in 0..known {
                        let found = store
                            .plans_for_nhs_number(test_nhs_number(1_000 + n as u32))
                            .await
                            .unwrap();
                        assert_eq!(found.len(), 1, "child {n}, added before the look");
                    }
                    tokio::task::yield_now().await;
                }
                served
            }
        });
        for n in 0..40 {
            // The other LA changes too, so that the copy keeps going out of use.
            let other = tokio::spawn({
                let store = store.clone();
                async move {
                    store
                        .apply_plans(batch(B, plans(B, n..n + 1, PlanType::LookedAfter), None))
                        .await
                }
            });
            let child = 1_000 + n;
            store
                .apply_plans(batch(
                    A,
                    plans(A, child..child + 1, PlanType::ChildProtection),
                    None,
                ))
                .await
                .unwrap();
            let found = store
                .plans_for_nhs_number(test_nhs_number(child))
                .await
                .unwrap();
            assert_eq!(found.len(), 1, "a look right after the change sees it");
            added.store(n as usize + 1, Ordering::Release);
            other.await.unwrap().unwrap();
        }
        looker.await.unwrap();
        assert_copy_is_the_database(&store, 0..1_040);
    }

    #[tokio::test]
    async fn a_change_under_way_keeps_the_copy_out_of_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .put_local_authorities(vec![test_la(A, "Hartlepool")])
            .await
            .unwrap();
        assert!(store.plans.wait_serving(WAIT));
        let change = store.plans.change(Scope::La(LaCode::parse(A).unwrap()));
        assert!(store.plans.plans_of(test_nhs_number(1)).is_none());
        let everything = store.plans.change(Scope::All);
        drop(change);
        assert!(store.plans.plans_of(test_nhs_number(1)).is_none());
        drop(everything);
        assert!(store.plans.wait_serving(WAIT));
    }

    /// What a load read is put in only if no change to the LA began after
    /// it took the LA's generation, and none is under way.
    #[test]
    fn a_load_older_than_a_change_is_not_put_in() {
        let la = LaCode::parse(A).unwrap();
        let mut state = State::default();
        state.mark_stale(la);
        let generation = state.las[&la].generation;
        assert!(
            !state.put(la, generation, None, Vec::new()),
            "a change is under way"
        );
        state.las.get_mut(&la).unwrap().changing -= 1;
        assert!(
            !state.put(la, generation - 1, None, Vec::new()),
            "read before the change began"
        );
        assert_eq!(state.stale, 1);
        let child = test_nhs_number(1);
        let read = vec![test_plan(
            A,
            child,
            PlanType::ChildProtection,
            date!(2026 - 01 - 05),
        )];
        assert!(state.put(la, generation, Some(test_la(A, "Hartlepool")), read));
        assert_eq!(state.stale, 0);
        assert_eq!(state.children[&child].len(), 1);
        // Read again without the plan: it goes.
        state.mark_stale(la);
        state.las.get_mut(&la).unwrap().changing -= 1;
        assert!(state.put(la, generation + 1, None, Vec::new()));
        assert!(!state.children.contains_key(&child));
    }
}
