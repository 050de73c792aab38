//! The verifiable log: what its hashing costs a durable access record, and
//! how long `cpis audit verify` takes over a large log, beside a plain scan
//! of the same rows in the same run.
//!
//! Run with `cargo xtask bench log`. `CPIS_BENCH_LEAVES` sets the log's size
//! (default 1,000,000; the figure is for 10,000,000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use cpis_core::audit::{LogSigner, verify_log};
use cpis_domain::NhsNumber;
use cpis_sqlite::SqliteStore;
use cpis_store::Store;
use cpis_store::conformance::test_access;
use cpis_store::log::{Checkpoint, access_leaf_hash};
use cpis_store::merkle::Frontier;
use time::OffsetDateTime;

fn main() {
    // As the `cpis` binary does before anything else.
    cpis::without_huge_pages().unwrap();
    let leaves: usize = std::env::var("CPIS_BENCH_LEAVES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(leaves));
}

async fn run(leaves: usize) {
    println!("# log benchmark: {leaves} access records");
    let numbers: Vec<NhsNumber> = (999_000_000u32..)
        .filter_map(NhsNumber::with_check_digit)
        .take(10_000)
        .collect();
    let start = OffsetDateTime::now_utc();
    let records: Vec<_> = (0..100_000)
        .map(|i| test_access(numbers[i % numbers.len()], start, i % 3 != 0))
        .collect();
    let started = Instant::now();
    let mut sink = 0u8;
    for record in &records {
        sink ^= access_leaf_hash(record)[0];
    }
    let hash_micros = started.elapsed().as_secs_f64() * 1e6 / records.len() as f64;
    println!("hashing one access record into its leaf: {hash_micros:.2} µs ({sink})");

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let started = Instant::now();
    let tasks = 256;
    let per_task = leaves.div_ceil(tasks);
    let writers: Vec<_> = (0..tasks)
        .map(|task| {
            let (store, numbers) = (store.clone(), numbers.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    let n = task * per_task + i;
                    if n >= leaves {
                        break;
                    }
                    let at = start + time::Duration::microseconds(n as i64);
                    let record = test_access(numbers[n % numbers.len()], at, n % 3 != 0);
                    store.record_access(record, vec![], None).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let per_record = secs * 1e6 / leaves as f64;
    println!(
        "durable access records with their leaves, 256 writers, embedded SQLite: {:.0}/s ({per_record:.2} µs each); the hashing is {:.1}% of that",
        leaves as f64 / secs,
        hash_micros / per_record * 100.0
    );

    // One checkpoint over everything, as cpis serve would sign it.
    let size = store.sequence_log().await.unwrap();
    let mut frontier = Frontier::default();
    let mut from = 0;
    while from < size {
        for (_, hash) in store.log_leaf_hashes(from, from + 100_000).await.unwrap() {
            frontier.push(hash);
        }
        from += 100_000;
    }
    let signer = LogSigner::generate("bench.example/log").unwrap();
    let root = frontier.root();
    store
        .put_checkpoint(
            vec![],
            Checkpoint {
                size,
                root,
                note: signer.sign(size, &root),
                created_at: OffsetDateTime::now_utc(),
            },
        )
        .await
        .unwrap();

    let started = Instant::now();
    let report = verify_log(&*store, &signer.public()).await.unwrap();
    let verify_secs = started.elapsed().as_secs_f64();
    assert_eq!(report.failure, None);
    assert_eq!(report.leaves, size);

    let path = store.path().to_owned();
    let started = Instant::now();
    let scanned = tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut select = conn
            .prepare("SELECT id, at, nhs_number, user_id, user_name, role_code, role_name, activity_code, organisation_code, organisation_name, setting_type, unscheduled, returned, request_id FROM access_log")
            .unwrap();
        let mut rows = select.query([]).unwrap();
        let mut count = 0u64;
        while let Some(row) = rows.next().unwrap() {
            let name: String = row.get(4).unwrap();
            count += name.len() as u64 % 2;
        }
        count
    })
    .await
    .unwrap();
    let scan_secs = started.elapsed().as_secs_f64();
    println!(
        "cpis audit verify's check of {size} leaves and 1 checkpoint: {verify_secs:.2} s ({:.0} leaves/s); a plain rusqlite scan of the same rows: {scan_secs:.2} s ({scanned}); ratio {:.2}",
        size as f64 / verify_secs,
        scan_secs / verify_secs
    );
}
