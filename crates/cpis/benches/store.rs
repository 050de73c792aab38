//! Store benchmarks: bulk plan upserts, lookups by NHS number, and durable
//! access-record writes, on the embedded store and (when
//! `CPIS_TEST_DATABASE_URL` is set) on PostgreSQL, each beside a reference
//! measured in the same run.
//!
//! Run with `cargo xtask bench store` (or `cargo bench -p cpis --bench store`).
//! `CPIS_BENCH_ROWS` sets the bulk size (default 1,000,000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use cpis_core::{demo, reference};
use cpis_domain::{NhsNumber, Plan, PlanType};
use cpis_postgres::testing::TestSchema;
use cpis_sqlite::SqliteStore;
use cpis_store::conformance::test_access;
use cpis_store::{PlanBatch, Store};
use time::OffsetDateTime;
use uuid::Uuid;

fn main() {
    // As the `cpis` binary does before anything else.
    cpis::without_huge_pages().unwrap();
    let rows: usize = common::setting("CPIS_BENCH_ROWS", 1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(rows));
}

async fn run(rows: usize) {
    let las = reference::local_authorities().unwrap();
    let today = cpis_domain::uk_date(OffsetDateTime::now_utc());
    // One LA's upload for the bulk test, the same rows for every store: the
    // demo population's plans, then more plan types for the same children,
    // since the 999 test range has only about 909,000 valid numbers.
    let children = (u32::try_from(rows).unwrap() * 100 / 108).min(800_000);
    let la = las[0].code;
    let population = demo::population(11, &las, today, children).unwrap().plans;
    let mut bulk: Vec<Plan> = population
        .iter()
        .cloned()
        .map(|plan| rehome(plan, la, None))
        .collect();
    for plan_type in [PlanType::LookedAfter, PlanType::ChildProtection] {
        for plan in &population {
            if bulk.len() >= rows * 11 / 10 {
                break;
            }
            if plan.plan_type() != PlanType::UnbornChildProtection {
                bulk.push(rehome(plan.clone(), la, Some(plan_type)));
            }
        }
    }
    let mut bulk = dedupe(bulk);
    bulk.truncate(rows);
    println!("# cpis store benchmarks, {} rows", bulk.len());
    println!();

    let dir = tempfile::tempdir().unwrap();
    let reference_secs = sqlite3_import(dir.path(), &bulk);
    println!(
        "reference: sqlite3 .import of the same {} rows into a bare table: {:.2} s ({:.0} rows/s)",
        bulk.len(),
        reference_secs,
        bulk.len() as f64 / reference_secs
    );

    let sqlite = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let path = dir.path().join(cpis_sqlite::DATABASE_FILE);
    bench_store(
        "embedded SQLite",
        sqlite,
        &bulk,
        reference_secs,
        Some(&|numbers: &[NhsNumber]| raw_lookup_rate(&path, numbers)),
    )
    .await;

    match TestSchema::new("the store benchmarks") {
        Some(schema) => {
            let pg = Arc::new(schema.store().await);
            bench_store("PostgreSQL", pg, &bulk, reference_secs, None).await;
        }
        None => println!("PostgreSQL: skipped (set CPIS_TEST_DATABASE_URL)"),
    }
    println!(
        "peak memory of this process (VmHWM): {}",
        common::peak_memory()
    );
}

/// Measures the reference lookup rate over the given numbers.
type LookupFloor<'a> = dyn Fn(&[NhsNumber]) -> f64 + 'a;

async fn bench_store<S: Store>(
    name: &str,
    store: Arc<S>,
    bulk: &[Plan],
    reference_secs: f64,
    lookup_floor: Option<&LookupFloor<'_>>,
) {
    println!();
    println!("## {name}");
    store
        .put_local_authorities(reference::local_authorities().unwrap())
        .await
        .unwrap();

    // Bulk upsert: one batch, one transaction.
    let started = Instant::now();
    let applied = store
        .apply_plans(PlanBatch {
            la: bulk[0].la(),
            batch_id: Uuid::now_v7(),
            plans: bulk.to_vec().into(),
            snapshot: None,
            at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(applied.inserted as usize, bulk.len());
    println!(
        "bulk upsert of {} plans in one transaction: {:.2} s ({:.0} rows/s), ratio to sqlite3 .import: {:.2}",
        bulk.len(),
        secs,
        bulk.len() as f64 / secs,
        reference_secs / secs
    );

    // Lookups by NHS number, the query's read: one task, then two.
    let numbers: Vec<NhsNumber> = bulk
        .iter()
        .step_by(7)
        .map(Plan::nhs_number)
        .take(50_000)
        .collect();
    let numbers = Arc::new(numbers);
    let floor = lookup_floor.map(|measure| measure(&numbers));
    let started = Instant::now();
    for number in numbers.iter() {
        store.plans_for_nhs_number(*number).await.unwrap();
    }
    let one_task = numbers.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let tasks: Vec<_> = (0..2)
        .map(|offset| {
            let (store, numbers) = (store.clone(), numbers.clone());
            tokio::spawn(async move {
                let mut found = 0usize;
                for number in numbers.iter().skip(offset).step_by(2) {
                    found += store.plans_for_nhs_number(*number).await.unwrap().len();
                }
                found
            })
        })
        .collect();
    let mut found = 0;
    for task in tasks {
        found += task.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(found >= numbers.len());
    let rate = numbers.len() as f64 / secs;
    println!(
        "lookups by NHS number (plans joined with their LA): {one_task:.0}/s from one task, {rate:.0}/s from two"
    );
    if let Some(floor) = floor {
        println!(
            "  reference: a bare rusqlite count by NHS number on one thread: {floor:.0}/s; ratio of our one-task rate: {:.2}",
            one_task / floor
        );
    }

    // Durable access records: one at a time, then 256 writers at once.
    let at = OffsetDateTime::now_utc();
    let sequential = 300;
    let started = Instant::now();
    for i in 0..sequential {
        store
            .record_access(test_access(numbers[i], at, true), vec![], None)
            .await
            .unwrap();
    }
    let one_at_a_time = sequential as f64 / started.elapsed().as_secs_f64();
    let concurrent = 20_000;
    let started = Instant::now();
    let writers: Vec<_> = (0..256)
        .map(|writer| {
            let (store, numbers) = (store.clone(), numbers.clone());
            tokio::spawn(async move {
                for i in (writer..concurrent).step_by(256) {
                    let record = test_access(numbers[i % numbers.len()], at, true);
                    store.record_access(record, vec![], None).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let grouped = concurrent as f64 / started.elapsed().as_secs_f64();
    println!(
        "durable access records: {one_at_a_time:.0}/s one at a time, {grouped:.0}/s from 256 concurrent writers (ratio {:.1})",
        grouped / one_at_a_time
    );
}

/// Moves a plan to `la` (and to `plan_type`), so the bulk test is one LA's upload.
fn rehome(plan: Plan, la: cpis_domain::LaCode, plan_type: Option<PlanType>) -> Plan {
    let mut key = *plan.key();
    key.la = la;
    key.plan_type = plan_type.unwrap_or(key.plan_type);
    Plan::new(cpis_domain::PlanFields {
        key,
        end_date: plan.end_date(),
        delete_date: plan.delete_date(),
        expected_delivery_date: plan.expected_delivery_date(),
        local_reference: plan.local_reference().cloned(),
    })
    .unwrap()
}

fn dedupe(mut plans: Vec<Plan>) -> Vec<Plan> {
    plans.sort_by_key(|plan| *plan.key());
    plans.dedup_by_key(|plan| *plan.key());
    plans
}

/// The reference: the sqlite3 shell importing the same rows as CSV into a
/// bare table, with the same durability settings.
fn sqlite3_import(dir: &std::path::Path, plans: &[Plan]) -> f64 {
    let mut file = Vec::new();
    for plan in plans {
        let date = |d: Option<time::Date>| d.map(cpis_domain::format_iso_date).unwrap_or_default();
        writeln!(
            file,
            "{},{},{},{},{},{},{},{}",
            plan.nhs_number().digits(),
            plan.la(),
            plan.plan_type(),
            cpis_domain::format_iso_date(plan.start_date()),
            date(plan.end_date()),
            date(plan.delete_date()),
            date(plan.expected_delivery_date()),
            plan.local_reference()
                .map(|r| r.as_str())
                .unwrap_or_default()
        )
        .unwrap();
    }
    common::sqlite3_import(
        dir,
        &file,
        Some(
            "CREATE TABLE plan (nhs_number, la_code, plan_type, start_date, end_date, delete_date, expected_delivery_date, local_reference);",
        ),
    )
}

/// Point lookups straight through rusqlite on the same file: the floor our
/// store's lookups are measured against.
fn raw_lookup_rate(path: &std::path::Path, numbers: &[NhsNumber]) -> f64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut select = conn
        .prepare("SELECT count(*) FROM plan WHERE nhs_number = ?1")
        .unwrap();
    let started = Instant::now();
    for number in numbers {
        let nhs = i64::try_from(number.as_u64()).unwrap();
        let _: i64 = select.query_row([nhs], |row| row.get(0)).unwrap();
    }
    numbers.len() as f64 / started.elapsed().as_secs_f64()
}
