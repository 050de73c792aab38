//! An LA's 1,000,000-row CSV uploaded end to end through the HTTP API, on
//! the embedded store and (with `CPIS_TEST_DATABASE_URL`) on PostgreSQL,
//! beside `sqlite3 .import` of the same file into a bare table in the same run.
//!
//! Run with `cargo xtask bench upload`. `CPIS_BENCH_ROWS` sets the size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use cpis_core::Limits;
use cpis_domain::NhsNumber;
use cpis_postgres::testing::TestSchema;
use cpis_sqlite::SqliteStore;
use cpis_store::Store;

const LA: &str = "E09000007";

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

/// Writes `rows` distinct plans to `path`: every valid 999-range number as
/// a CPP, then as a LAC. Written as it is made, so the benchmark process
/// never holds the file.
fn write_csv(path: &Path, rows: usize) -> u64 {
    let numbers: Vec<NhsNumber> = (999_000_000u32..=999_999_999)
        .filter_map(NhsNumber::with_check_digit)
        .collect();
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(b"nhs_number,plan_type,start_date,end_date,local_reference\n")
        .unwrap();
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
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

async fn run(rows: usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plans.csv");
    let size = write_csv(&file, rows);
    println!(
        "# LA upload benchmark: {rows} rows, {:.1} MB of CSV",
        size as f64 / 1e6
    );
    let reference = common::sqlite3_import_file(dir.path(), &file, None);
    println!(
        "reference: sqlite3 .import of the same file into a bare table (WAL, synchronous=FULL): {reference:.2} s"
    );

    let data = dir.path().join("cpis");
    std::fs::create_dir_all(&data).unwrap();
    let store = SqliteStore::open(&data).unwrap();
    common::reset_peak_memory();
    let secs = upload_through_http(store, &file).await;
    println!(
        "embedded SQLite: {secs:.2} s end to end ({:.0} rows/s); ratio to sqlite3 .import: {:.2}; peak memory, client and server together (VmHWM): {}",
        rows as f64 / secs,
        reference / secs,
        common::peak_memory()
    );
    match TestSchema::new("the upload benchmark") {
        Some(schema) => {
            let store = schema.store().await;
            common::reset_peak_memory();
            let secs = upload_through_http(store, &file).await;
            println!(
                "PostgreSQL: {secs:.2} s end to end ({:.0} rows/s); ratio to sqlite3 .import: {:.2}; peak memory (VmHWM): {}",
                rows as f64 / secs,
                reference / secs,
                common::peak_memory()
            );
        }
        None => println!("PostgreSQL: skipped (set CPIS_TEST_DATABASE_URL)"),
    }
}

async fn upload_through_http<S: Store>(store: S, file: &Path) -> f64 {
    let limits = Limits {
        upload_bytes: 1 << 30,
        ..Limits::default()
    };
    let (url, token, app, listener) = common::start_server(store, LA, "la-system", limits).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cpis::serve(listener, app, async {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::open(file).await.unwrap(),
        256 * 1024,
    ));
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
