//! The clinician's query under load: `GET /fhir/R4/CareTeam` with a bearer
//! token and a durable access record per request, on the demo population,
//! sent as 1,000 clinicians of the demo's care settings in turn
//! (`CPIS_BENCH_CLINICIANS`),
//! driven by `wrk` on the same machine, beside a minimal axum server that
//! returns a fixed body, measured in the same run.
//!
//! Run with `cargo xtask bench query` (needs `wrk`, Debian package wrk).
//! `CPIS_BENCH_STORES` runs only `sqlite` or only `postgres` (default both),
//! `CPIS_BENCH_SECONDS` sets each run's length (default 10),
//! `CPIS_BENCH_CONNECTIONS` the connections (default 256), and
//! `CPIS_BENCH_CHILDREN` how many children with plans the queries cycle
//! through (default 100,000, every child of the demo with a plan).
//! Every query of that run finds a plan, the costliest look; a second run
//! mixes in children without one (`CPIS_BENCH_FOUND_ONE_IN`, default 10:
//! one look in ten finds a plan), as a department sees them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use axum::Router;
use axum::routing::get;
use cpis_postgres::testing::TestSchema;
use cpis_sqlite::SqliteStore;
use cpis_store::Store;

fn main() {
    // As the `cpis` binary does before anything else.
    cpis::without_huge_pages().unwrap();
    cpis::with_most_open_files().unwrap();
    if std::env::args().any(|arg| arg == FIXED_RATE_CLIENT) {
        fixed_rate_client();
        return;
    }
    let seconds: u64 = common::setting("CPIS_BENCH_SECONDS", 10);
    // The server gets the runtime's threads; wrk runs beside it on the same 2 cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(seconds));
}

/// Concurrent connections wrk keeps open (`CPIS_BENCH_CONNECTIONS`, default 256):
/// a durable commit waits for the disk, so throughput is bounded by how many
/// queries are in flight to share each commit.
fn connections() -> u32 {
    common::setting("CPIS_BENCH_CONNECTIONS", 256)
}

/// How many clinicians send the queries (`CPIS_BENCH_CLINICIANS`, default
/// 1,000), spread over the demo's 382 care settings. Each look is found
/// by the privacy officer's reports by its user and its organisation
/// (PostgreSQL indexes both; SQLite keeps a row per user or organisation
/// and time bucket): with one clinician every look went to the end of
/// those indexes, while in use it goes to its clinician's and its
/// setting's place among many. A child is always
/// looked at by the same clinician, as most children are seen at one
/// department: looked at by one setting after another, every child would
/// soon be a repeat attendance, which almost none is.
fn clinicians() -> usize {
    common::setting("CPIS_BENCH_CLINICIANS", 1_000)
}

/// A token for each of [`clinicians`] emergency department clinicians
/// (B0107), the demo's care settings taken in turn.
fn clinician_tokens<S: Store>(app: &cpis_core::Cpis<S>) -> Vec<String> {
    let settings = cpis_core::reference::synthetic_organisations().unwrap();
    let la = cpis_domain::LaCode::parse("E06000001").unwrap();
    let template = cpis_auth::personas(la)
        .into_iter()
        .find(|p| p.name == "ed-clinician")
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    (0..clinicians().max(1))
        .map(|i| {
            // Personas hold `'static` names; a benchmark's few leak once.
            let persona = cpis_auth::Persona {
                user_id: Box::leak(format!("5550{i:08}").into_boxed_str()),
                display_name: Box::leak(format!("Dr Bench {i}").into_boxed_str()),
                organisation: settings[i % settings.len()].code.to_string(),
                ..template.clone()
            };
            app.identity()
                .own
                .issue_persona(&persona, "cpis", None, now)
                .unwrap()
        })
        .collect()
}

/// How many distinct children the queries cycle through
/// (`CPIS_BENCH_CHILDREN`). Fewer means each child is looked at more often,
/// so each look's repeat-attendance check reads more earlier looks: with
/// 1,000, a child is seen hundreds of times in a run, which no department
/// does.
fn children() -> usize {
    common::setting("CPIS_BENCH_CHILDREN", 100_000)
}

/// In the mixed run, one look in how many finds a plan
/// (`CPIS_BENCH_FOUND_ONE_IN`, default 10). About one child in a hundred in
/// England has a child protection plan, is looked after or is unborn with a
/// pre-birth plan; those children come to emergency departments more often
/// than others, and one in ten is meant to be on the costly side of that.
fn found_one_in() -> usize {
    common::setting("CPIS_BENCH_FOUND_ONE_IN", 10).max(1)
}

/// `found` (children with plans) with `one_in - 1` children without a plan
/// after each: valid NHS numbers of the 999 test range that the demo did
/// not give a plan, so the look reads nothing and notifies no one.
fn mixed(found: &[String], one_in: usize) -> Vec<String> {
    let known: std::collections::HashSet<&str> = found.iter().map(String::as_str).collect();
    let mut without = (0..1_000_000)
        .filter_map(|n| cpis_domain::NhsNumber::with_check_digit(999_000_000 + n))
        .map(cpis_domain::NhsNumber::digits)
        .filter(|n| !known.contains(n.as_str()));
    let mut numbers = Vec::new();
    for number in found.iter().take(100_000 / one_in) {
        numbers.push(number.clone());
        numbers.extend(without.by_ref().take(one_in - 1));
    }
    numbers
}

struct Wrk {
    requests: u64,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

/// Runs wrk against `url` for `seconds` with `connections`, each request
/// taking the next NHS number from `numbers`.
fn wrk(
    url: &str,
    tokens: Option<&[String]>,
    numbers: &[String],
    seconds: u64,
    connections: u32,
) -> Wrk {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("query.lua");
    let list = numbers
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(",");
    // Each request as the next clinician, when there are tokens.
    let (tokens, headers) = match tokens {
        Some(tokens) => (
            tokens
                .iter()
                .map(|t| format!("\"Bearer {t}\""))
                .collect::<Vec<_>>()
                .join(","),
            "{[\"Authorization\"] = tokens[(k % #tokens) + 1]}",
        ),
        None => (String::new(), "nil"),
    };
    std::fs::write(
        &script,
        format!(
            "local numbers = {{{list}}}\nlocal tokens = {{{tokens}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  local k = i % #numbers\n  local n = numbers[k + 1]\n  return wrk.format(nil, wrk.path .. n, {headers})\nend\n"
        ),
    )
    .unwrap();
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .expect("wrk (Debian package wrk) is needed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let value = |prefix: &str| -> Option<String> {
        text.lines()
            .find(|line| line.trim_start().starts_with(prefix))
            .and_then(|line| line.split_whitespace().nth(1).map(str::to_owned))
    };
    let ms = |text: Option<String>| -> f64 {
        let text = text.unwrap_or_default();
        if let Some(us) = text.strip_suffix("us") {
            us.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
        } else if let Some(ms) = text.strip_suffix("ms") {
            ms.parse().unwrap_or(f64::NAN)
        } else if let Some(s) = text.strip_suffix('s') {
            s.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
        } else {
            f64::NAN
        }
    };
    let non_2xx = text
        .lines()
        .find(|line| line.contains("Non-2xx"))
        .and_then(|line| line.split(':').nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    // "123456 requests in 10.00s, 1.23MB read"
    let requests = text
        .lines()
        .find(|line| line.contains(" requests in "))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Wrk {
        requests,
        requests_per_second: value("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: ms(value("50%")),
        p99_ms: ms(value("99%")),
        non_2xx,
    }
}

/// As wrk2 keeps a fixed number of connections: a client opening one for
/// every query still waiting ran the process (client and server share it)
/// out of file descriptors whenever the database stalled for a few
/// seconds, and then measured its own connection failures, not the server.
const FIXED_RATE_CONNECTIONS: usize = 1024;

/// The argument that makes this benchmark's binary the fixed-rate client.
const FIXED_RATE_CLIENT: &str = "--fixed-rate-client";

/// Latency at a fixed rate: an open loop of `rate` queries a second for
/// `seconds`, each timed from when it was due (so a slow answer cannot hide
/// the queries queued behind it), over at most [`FIXED_RATE_CONNECTIONS`]
/// connections (a query due while all are busy waits for one, its wait
/// counted). The client is this binary again, in a process of its own, as
/// wrk is: in the server's process it shared the server's allocator and its
/// open files, so a stall of the server showed up as the client's own
/// failures. Returns p50, p99 and max in ms, and a line saying how many
/// failed: answered with another status than 200, or not answered at all
/// (the connection refused or broken), with the first such error.
fn fixed_rate(
    target: &str,
    tokens: &[String],
    numbers: &[String],
    rate: u64,
    seconds: u64,
) -> (f64, f64, f64, String) {
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), numbers.join("\n")).unwrap();
    let token_list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_list.path(), tokens.join("\n")).unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .arg(FIXED_RATE_CLIENT)
        .env("CPIS_FIXED_RATE_TARGET", target)
        .env("CPIS_FIXED_RATE_TOKENS", token_list.path())
        .env("CPIS_FIXED_RATE_NUMBERS", list.path())
        .env("CPIS_FIXED_RATE", rate.to_string())
        .env("CPIS_FIXED_RATE_SECONDS", seconds.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "the fixed-rate client failed");
    let text = String::from_utf8(output.stdout).unwrap();
    let (times, failed) = text.trim_end().split_once('\t').unwrap();
    let times: Vec<f64> = times.split(' ').map(|ms| ms.parse().unwrap()).collect();
    (times[0], times[1], times[2], failed.to_owned())
}

/// The fixed-rate client's process: what [`fixed_rate`] asks, from the
/// environment; prints p50, p99 and max, a tab, and how many failed.
fn fixed_rate_client() {
    let setting = |name: &str| std::env::var(name).unwrap();
    let target = setting("CPIS_FIXED_RATE_TARGET");
    let lines = |name: &str| -> Vec<String> {
        std::fs::read_to_string(setting(name))
            .unwrap()
            .split('\n')
            .map(str::to_owned)
            .collect()
    };
    let tokens = lines("CPIS_FIXED_RATE_TOKENS");
    let numbers = lines("CPIS_FIXED_RATE_NUMBERS");
    let rate: u64 = setting("CPIS_FIXED_RATE").parse().unwrap();
    let seconds: u64 = setting("CPIS_FIXED_RATE_SECONDS").parse().unwrap();
    let (p50, p99, max, failed) = open_loop(target, tokens, numbers, rate, seconds);
    println!("{p50} {p99} {max}\t{failed}");
}

/// The fixed-rate client's loop, on one thread as wrk's is here.
fn open_loop(
    target: String,
    tokens: Vec<String>,
    numbers: Vec<String>,
    rate: u64,
    seconds: u64,
) -> (f64, f64, f64, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let client = reqwest::Client::new();
        let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(FIXED_RATE_CONNECTIONS));
        let total = (rate * seconds) as usize;
        let period = std::time::Duration::from_nanos(1_000_000_000 / rate);
        let start = tokio::time::Instant::now();
        let mut queries = Vec::with_capacity(total);
        for i in 0..total {
            let due = start + period * i as u32;
            tokio::time::sleep_until(due).await;
            let request = client
                .get(format!("{target}{}", numbers[i % numbers.len()]))
                .bearer_auth(&tokens[i % numbers.len() % tokens.len()]);
            let connections = connections.clone();
            queries.push(tokio::spawn(async move {
                let _connection = connections.acquire_owned().await.unwrap();
                let answer = request
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .map_err(|error| format!("{error:?}"));
                (answer, due.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        let mut latencies = Vec::with_capacity(total);
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        let (mut unanswered, mut first_error) = (0, None);
        for query in queries {
            let (answer, ms) = query.await.unwrap();
            match answer {
                Ok(200) => {}
                Ok(status) => *statuses.entry(status).or_default() += 1,
                Err(error) => {
                    unanswered += 1;
                    first_error.get_or_insert(error);
                }
            }
            latencies.push(ms);
        }
        let answered: usize = statuses.values().sum();
        let mut failed = format!("{} failed", answered + unanswered);
        if answered + unanswered > 0 {
            let statuses: String = statuses
                .iter()
                .map(|(status, n)| format!("{n} answered {status}, "))
                .collect();
            failed += &format!(
                " ({statuses}{unanswered} not answered{})",
                first_error
                    .map(|e| format!(", first: {e}"))
                    .unwrap_or_default()
            );
        }
        // A tail from one stall and a tail spread over the run call for
        // different causes: the second whose looks fared worst says which.
        let per_second = usize::try_from(rate).unwrap_or(usize::MAX).max(1);
        let by_second: Vec<f64> = latencies
            .chunks(per_second)
            .map(|second| {
                let mut second = second.to_vec();
                second.sort_by(f64::total_cmp);
                common::quantile(&second, 0.99)
            })
            .collect();
        let (worst, worst_p99) = by_second
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or_default();
        let each: Vec<String> = by_second.iter().map(|p99| format!("{p99:.1}")).collect();
        let failed = format!(
            "{failed}; the worst second was the {} of {seconds} (its p99 {worst_p99:.2} ms; each second's p99 {} ms)",
            ordinal(worst + 1),
            each.join(" / ")
        );
        latencies.sort_by(f64::total_cmp);
        (
            common::quantile(&latencies, 0.5),
            common::quantile(&latencies, 0.99),
            latencies[latencies.len() - 1],
            failed,
        )
    })
}

/// 1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, …, 21st.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

async fn run(seconds: u64) {
    // Reference: a minimal axum server returning a fixed body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reference_url = format!("http://{}/fixed?n=", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = Router::new().route("/fixed", get(|| async { "fixed body" }));
        axum::serve(listener, app).await.unwrap();
    });
    let numbers: Vec<String> = (0..1).map(|_| String::new()).collect();
    let reference = wrk(&reference_url, None, &numbers, seconds, connections());
    println!(
        "reference, minimal axum fixed body, {} connections: {:.0} requests/s (p50 {:.2} ms, p99 {:.2} ms)",
        connections(),
        reference.requests_per_second,
        reference.p50_ms,
        reference.p99_ms
    );

    // The same open loop against the fixed body: the tail that the client,
    // the runtime and the machine add to any server.
    let (p50, p99, max, failed) = tokio::task::spawn_blocking({
        let target = reference_url.clone();
        move || fixed_rate(&target, &[String::new()], &[String::new()], 5_000, seconds)
    })
    .await
    .unwrap();
    println!(
        "reference, minimal axum fixed body, at a fixed 5,000 requests/s for {seconds} s: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; {failed}"
    );

    let stores: String = common::setting("CPIS_BENCH_STORES", "both".to_owned());
    assert!(
        ["both", "sqlite", "postgres"].contains(&stores.as_str()),
        "CPIS_BENCH_STORES is sqlite, postgres or both, not {stores}"
    );
    if stores != "postgres" {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path()).unwrap();
        let path = sqlite.path().to_owned();
        bench("embedded SQLite", sqlite, seconds, &reference, Some(path)).await;
    }
    if stores == "sqlite" {
        return;
    }
    match TestSchema::new("the query benchmark") {
        Some(schema) => {
            bench(
                "PostgreSQL",
                schema.store().await,
                seconds,
                &reference,
                None,
            )
            .await
        }
        None => println!("PostgreSQL: skipped (set CPIS_TEST_DATABASE_URL)"),
    }
}

/// This process's CPU time so far, all its threads: the server's runtime
/// and the embedded store's writer, syncer and checkpointer, but not wrk or
/// the fixed-rate client (processes of their own), nor PostgreSQL's server.
/// Per look, it leaves out the time another tenant had the cores, though a
/// busy machine still makes each look's CPU time longer (BENCHMARKS.md).
fn process_cpu() -> std::time::Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    std::time::Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Microseconds of [`process_cpu`] a look, from a reading before.
fn cpu_per_look(before: std::time::Duration, looks: u64) -> f64 {
    (process_cpu() - before).as_secs_f64() * 1e6 / looks.max(1) as f64
}

/// The processes named `postgres` on this machine (its server's backends
/// and its own background processes): what PostgreSQL spends on the looks.
fn postgres_processes() -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|process| {
            std::fs::read_to_string(process.join("comm")).is_ok_and(|name| name == "postgres\n")
        })
        .collect()
}

/// CPU time of PostgreSQL's processes so far, if any, beside
/// [`process_cpu`]'s share of ours.
fn postgres_cpu() -> Option<std::time::Duration> {
    let ticks_per_second = rustix::param::clock_ticks_per_second();
    let mut ticks = 0;
    for process in postgres_processes() {
        let Ok(stat) = std::fs::read_to_string(process.join("stat")) else {
            continue;
        };
        // pid (comm) state ...: utime and stime are the 12th and 13th
        // fields after the command's closing parenthesis.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        for field in [11, 12] {
            ticks += fields
                .get(field)
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    (ticks > 0).then(|| std::time::Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64))
}

/// Bytes sent to storage so far (`write_bytes` of `/proc/…/io`: the WAL,
/// the database files) by this process, or, for PostgreSQL, by its
/// processes. More bytes a look, more for each sync of the log to wait on.
fn written_to_disk(postgres: bool) -> Option<u64> {
    let processes = if postgres {
        postgres_processes()
    } else {
        vec![std::path::PathBuf::from("/proc/self")]
    };
    let bytes = processes
        .iter()
        .filter_map(|process| std::fs::read_to_string(process.join("io")).ok())
        .filter_map(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("write_bytes: "))
                .and_then(|bytes| bytes.parse::<u64>().ok())
        })
        .sum();
    (bytes > 0).then_some(bytes)
}

/// PostgreSQL's batches so far (a look's reads, attendance reads on their
/// own, writes), if `store` is PostgreSQL.
fn batches<S: Store + 'static>(store: &S) -> Option<[cpis_postgres::Shared; 3]> {
    (store as &dyn std::any::Any)
        .downcast_ref::<cpis_postgres::PgStore>()
        .map(cpis_postgres::PgStore::shared)
}

/// Requests a batch between two readings of [`batches`], per statement.
fn per_batch(
    before: Option<[cpis_postgres::Shared; 3]>,
    after: Option<[cpis_postgres::Shared; 3]>,
) -> String {
    let (Some(before), Some(after)) = (before, after) else {
        return String::new();
    };
    // A look's attendances are read with its plans; the attendance reads
    // on their own serve other callers, and are left out when idle.
    let names = ["reads", "attendance reads", "writes"];
    let sizes: Vec<String> = (0..3)
        .filter_map(|i| {
            let batches = after[i].batches - before[i].batches;
            let requests = after[i].requests - before[i].requests;
            (batches > 0).then(|| format!("{} {:.1}", names[i], requests as f64 / batches as f64))
        })
        .collect();
    format!("; requests a batch: {}", sizes.join(", "))
}

/// What [`both_runs`] measured: wrk's figures, the fixed rate's p50, p99,
/// max and failures, and beside each the looks a PostgreSQL batch held.
struct Runs {
    http: Wrk,
    /// [`cpu_per_look`] over HTTP.
    cpu_us: f64,
    over_http: String,
    fixed: (f64, f64, f64, String),
    at_fixed_rate: String,
}

/// wrk over HTTP, then the fixed rate, both asking for `numbers` in turn.
async fn both_runs<S: Store + 'static>(
    store: &S,
    target: &str,
    tokens: &[String],
    numbers: &[String],
    seconds: u64,
) -> Runs {
    let before = batches(store);
    let server_before = before.and(postgres_cpu());
    let cpu = process_cpu();
    let result = wrk(target, Some(tokens), numbers, seconds, connections());
    let cpu_us = cpu_per_look(cpu, result.requests);
    let server = server_before
        .zip(postgres_cpu())
        .map(|(before, after)| {
            let us = (after - before).as_secs_f64() * 1e6 / result.requests.max(1) as f64;
            format!("; PostgreSQL's own processes {us:.1} us of CPU a look")
        })
        .unwrap_or_default();
    assert_eq!(result.non_2xx, 0, "every query answered 200");
    let before_fixed_rate = batches(store);
    let postgres = before_fixed_rate.is_some();
    // The fixed rate's looks a second, and so what the bytes are shared by.
    let rate = 5_000;
    let written_before = written_to_disk(postgres);
    let fixed = tokio::task::spawn_blocking({
        let (target, tokens, numbers) = (target.to_owned(), tokens.to_vec(), numbers.to_vec());
        move || fixed_rate(&target, &tokens, &numbers, rate, seconds)
    })
    .await
    .unwrap();
    let written = written_before
        .zip(written_to_disk(postgres))
        .map(|(before, after)| {
            let kib = after.saturating_sub(before) as f64 / 1024.0 / (rate * seconds) as f64;
            format!("; {kib:.1} KiB written to disk a look")
        })
        .unwrap_or_default();
    Runs {
        http: result,
        cpu_us,
        over_http: per_batch(before, before_fixed_rate) + &server,
        fixed,
        at_fixed_rate: per_batch(before_fixed_rate, batches(store)) + &written,
    }
}

async fn bench<S: Store + 'static>(
    name: &str,
    store: S,
    seconds: u64,
    reference: &Wrk,
    sqlite_path: Option<std::path::PathBuf>,
) {
    // As `cpis serve` runs: the access log's checkpoints are signed while
    // the looks go on (the leaves placed every second, a checkpoint every
    // 10,000 leaves or 10 seconds).
    let (url, _, app, listener) =
        common::start_server_with(store, "E06000001", "ed-clinician", |cpis| {
            cpis.with_log(
                cpis_core::audit::LogSigner::generate("cpis.bench/log").unwrap(),
                cpis_core::audit::CheckpointPolicy::default(),
            )
        })
        .await;
    let loaded = app.load_demo(1).await.unwrap();
    // Children with plans (some of them ended or withdrawn), each looked
    // at in turn: every look that finds a plan is notified.
    let population = cpis_core::demo::population(
        1,
        &app.local_authorities().await.unwrap(),
        cpis_domain::uk_date(time::OffsetDateTime::now_utc()),
        cpis_core::demo::DEMO_CHILDREN,
    )
    .unwrap();
    let mut numbers: Vec<String> = population
        .plans
        .iter()
        .map(|plan| plan.nhs_number().digits())
        .collect();
    numbers.dedup();
    numbers.truncate(children());
    let tokens = clinician_tokens(&app);
    let mut principals = Vec::with_capacity(tokens.len());
    for token in &tokens {
        principals.push(app.authenticate_bearer(token).await.unwrap());
    }
    // The same query without HTTP: where does the time go?
    let parsed: Vec<cpis_domain::NhsNumber> = numbers
        .iter()
        .map(|n| cpis_domain::NhsNumber::parse(n).unwrap())
        .collect();
    let started = std::time::Instant::now();
    for number in parsed.iter().take(2_000) {
        app.store().plans_for_nhs_number(*number).await.unwrap();
    }
    let lookup_us = started.elapsed().as_secs_f64() * 1e6 / 2_000.0;
    if let Some(path) = sqlite_path {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut select = conn.prepare("SELECT p.nhs_number, p.la_code, p.plan_type, p.start_date, p.end_date, p.delete_date, p.expected_delivery_date, p.local_reference, la.code, la.name, la.emergency_duty_number, la.office_hours_number FROM plan p JOIN local_authority la ON la.code = p.la_code WHERE p.nhs_number = ?1").unwrap();
        let started = std::time::Instant::now();
        let mut rows_seen = 0;
        for number in parsed.iter().take(2_000) {
            let mut rows = select.query([number.as_u64() as i64]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let _: String = row.get(9).unwrap();
                rows_seen += 1;
            }
        }
        println!(
            "  reference: the same join straight through rusqlite: {:.1} us a lookup ({rows_seen} rows)",
            started.elapsed().as_secs_f64() * 1e6 / 2_000.0
        );
    }
    // As long as each HTTP run, so that the figure is as steady as theirs.
    let started = std::time::Instant::now();
    let cpu = process_cpu();
    let deadline = started + std::time::Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..256)
        .map(|task| {
            let (app, principals, parsed) = (app.clone(), principals.clone(), parsed.clone());
            tokio::spawn(async move {
                let mut looks = 0_u64;
                for (k, number) in parsed.iter().enumerate().skip(task).step_by(256).cycle() {
                    if std::time::Instant::now() >= deadline {
                        break;
                    }
                    let principal = &principals[k % principals.len()];
                    app.look_up_flag(principal, *number, false, "bench")
                        .await
                        .unwrap();
                    looks += 1;
                }
                looks
            })
        })
        .collect();
    let mut looks = 0;
    for task in tasks {
        looks += task.await.unwrap();
    }
    let direct = looks as f64 / started.elapsed().as_secs_f64();
    let direct_cpu_us = cpu_per_look(cpu, looks);
    // Read by `cargo xtask bench log-overhead`.
    println!("figure: {name}: direct {direct:.0}");
    println!("figure: {name}: direct-cpu-us {direct_cpu_us:.1}");
    println!(
        "{name}: without HTTP: the store's lookup of plans by NHS number {lookup_us:.1} us; the whole query (lookup, access record, notifications) from 256 tasks {direct:.0}/s, {direct_cpu_us:.1} us of this process's CPU a look"
    );
    // Stopped at the end, so that the PostgreSQL half does not share the
    // cores with this half's server and its once-a-second tasks.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cpis::serve(listener, app.clone(), async {
        let _ = stopped.await;
    }));
    // The demo's LAs have no webhook, so their systems read their feeds:
    // here the benchmark's own LA, a page a second, as long as it serves.
    let feed_reader = tokio::spawn({
        let app = app.clone();
        async move {
            let la = cpis_domain::LaCode::parse("E06000001").unwrap();
            let mut cursor = None::<String>;
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                every.tick().await;
                let page = app
                    .notifications_of(la, cursor.as_deref(), 1_000)
                    .await
                    .unwrap();
                cursor = Some(page.next);
            }
        }
    });
    let target =
        format!("{url}/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C");
    let Runs {
        http: result,
        cpu_us,
        over_http,
        fixed: (p50, p99, max, failed),
        at_fixed_rate,
    } = both_runs(&**app.store(), &target, &tokens, &numbers, seconds).await;
    println!("figure: {name}: http {:.0}", result.requests_per_second);
    println!("figure: {name}: http-cpu-us {cpu_us:.1}");
    // The same two runs, now with children without a plan mixed in.
    let one_in = found_one_in();
    let mix = mixed(&numbers, one_in);
    let Runs {
        http: mixed_result,
        cpu_us: mixed_cpu_us,
        over_http: mixed_over_http,
        fixed: mixed_fixed,
        at_fixed_rate: mixed_at_fixed_rate,
    } = both_runs(&**app.store(), &target, &tokens, &mix, seconds).await;
    println!(
        "figure: {name}: http-mix {:.0}",
        mixed_result.requests_per_second
    );
    println!("figure: {name}: http-mix-cpu-us {mixed_cpu_us:.1}");
    feed_reader.abort();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let signed = app
        .store()
        .latest_checkpoint()
        .await
        .unwrap()
        .map_or(0, |checkpoint| checkpoint.size);
    println!("{name}: the access log's latest signed checkpoint covers {signed} leaves");
    println!(
        "{name}: at a fixed 5,000 queries/s for {seconds} s (open loop, from when each was due): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; {failed}{at_fixed_rate}"
    );
    println!(
        "{name} ({} plans, {} children, {} clinicians, {} connections): CareTeam with a bearer token and a durable access record: {:.0} requests/s (p50 {:.2} ms, p99 {:.2} ms; {cpu_us:.1} us of this process's CPU a look); ratio to the fixed body: {:.2}{over_http}",
        loaded.plans_loaded,
        numbers.len(),
        tokens.len(),
        connections(),
        result.requests_per_second,
        result.p50_ms,
        result.p99_ms,
        result.requests_per_second / reference.requests_per_second
    );
    let (p50, p99, max, failed) = mixed_fixed;
    println!(
        "{name}, one look in {one_in} finding a plan ({} children): {:.0} requests/s (p50 {:.2} ms, p99 {:.2} ms; {mixed_cpu_us:.1} us of this process's CPU a look); ratio to the fixed body: {:.2}{mixed_over_http}; at a fixed 5,000 queries/s for {seconds} s: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; {failed}{mixed_at_fixed_rate}",
        mix.len(),
        mixed_result.requests_per_second,
        mixed_result.p50_ms,
        mixed_result.p99_ms,
        mixed_result.requests_per_second / reference.requests_per_second
    );
}
