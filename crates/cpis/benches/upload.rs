//! An LA's 1,000,000-row CSV uploaded end to end through the HTTP API, on
//! the embedded store and (with `CPIS_TEST_DATABASE_URL`) on PostgreSQL,
//! beside `sqlite3 .import` of the same file into a bare table in the same run.
//!
//! Run with `cargo xtask bench upload`. `CPIS_BENCH_ROWS` sets the size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::time::Instant;

use cpis_core::Limits;
use cpis_domain::NhsNumber;
use cpis_postgres::testing::TestSchema;
use cpis_sqlite::SqliteStore;
use cpis_store::Store;

const LA: &str = "E09000007";

fn main() {
    let rows: usize = std::env::var("CPIS_BENCH_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(rows));
}

/// `rows` distinct plans: every valid 999-range number as a CPP, then as a LAC.
fn csv(rows: usize) -> Vec<u8> {
    let numbers: Vec<NhsNumber> = (999_000_000u32..=999_999_999)
        .filter_map(NhsNumber::with_check_digit)
        .collect();
    let mut out = Vec::with_capacity(rows * 48);
    out.extend_from_slice(b"nhs_number,plan_type,start_date,end_date,local_reference\n");
    for i in 0..rows {
        let number = numbers[i % numbers.len()];
        let plan_type = if i < numbers.len() { "CPP" } else { "LAC" };
        let start = 2015 + (i % 10);
        let end = if i % 5 == 0 {
            format!("{}-12-31", start + 1)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{},{plan_type},{start}-0{}-15,{end},REF-{i}",
            number.digits(),
            1 + i % 9
        )
        .unwrap();
    }
    out
}

async fn run(rows: usize) {
    let file = csv(rows);
    println!(
        "# LA upload benchmark: {rows} rows, {:.1} MB of CSV",
        file.len() as f64 / 1e6
    );
    let dir = tempfile::tempdir().unwrap();
    let reference = common::sqlite3_import(dir.path(), &file, None);
    println!(
        "reference: sqlite3 .import of the same file into a bare table (WAL, synchronous=FULL): {reference:.2} s"
    );

    let data = dir.path().join("cpis");
    std::fs::create_dir_all(&data).unwrap();
    let store = SqliteStore::open(&data).unwrap();
    let secs = upload_through_http(store, &file).await;
    println!(
        "embedded SQLite: {secs:.2} s end to end ({:.0} rows/s); ratio to sqlite3 .import: {:.2}",
        rows as f64 / secs,
        reference / secs
    );
    match TestSchema::new("the upload benchmark") {
        Some(schema) => {
            let secs = upload_through_http(schema.store().await, &file).await;
            println!(
                "PostgreSQL: {secs:.2} s end to end ({:.0} rows/s); ratio to sqlite3 .import: {:.2}",
                rows as f64 / secs,
                reference / secs
            );
        }
        None => println!("PostgreSQL: skipped (set CPIS_TEST_DATABASE_URL)"),
    }
    println!(
        "peak memory of this process, client and server together (VmHWM): {}",
        common::peak_memory()
    );
}

async fn upload_through_http<S: Store>(store: S, file: &[u8]) -> f64 {
    let limits = Limits {
        upload_bytes: 1 << 30,
    };
    let (url, token, app, listener) = common::start_server(store, LA, "la-system", limits).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cpis::serve(listener, app, async {
        let _ = stopped.await;
    }));
    let body = file.to_vec();
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{url}/la/v1/uploads"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let ack: serde_json::Value = response.json().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["file_code"], "CPF02", "{}", ack["records"][0]);
    let _ = stop.send(());
    secs
}
