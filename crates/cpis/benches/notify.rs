//! Notifications to local authorities: at a steady 1,000 CareTeam queries a
//! second, the time from each query to its LA's webhook receiving the item
//! (p50, p99); then the rate at which the worker drains a backlog, beside a
//! plain client POSTing the same bodies to the same receiver in the same run.
//!
//! Run with `cargo xtask bench notify`. `CPIS_BENCH_SECONDS` sets the length
//! of the steady phase (default 10), `CPIS_BENCH_BACKLOG` the backlog (20,000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use cpis_core::Limits;
use cpis_core::notify::{Deliverer, NotificationSettings};
use cpis_domain::{AccessRecord, LaCode, NhsNumber, PlanType};
use cpis_postgres::testing::TestSchema;
use cpis_sqlite::SqliteStore;
use cpis_store::conformance::{test_access, test_plan};
use cpis_store::{OutboxItem, OutboxKind, PlanBatch, Store};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

const LA: &str = "E09000007";
const RATE: u64 = 1_000;

fn main() {
    // As the `cpis` binary does before anything else.
    cpis::without_huge_pages().unwrap();
    let seconds: u64 = common::setting("CPIS_BENCH_SECONDS", 10);
    let backlog: usize = common::setting("CPIS_BENCH_BACKLOG", 20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("# notification benchmark: {RATE} queries/s for {seconds} s, then a backlog of {backlog}");
        let receiver = Receiver::start().await;
        let reference = reference_posts(&receiver, backlog).await;
        println!(
            "reference: a plain client POSTing {backlog} item bodies to the same receiver, 256 at a time: {reference:.0} posts/s"
        );
        let dir = tempfile::tempdir().unwrap();
        let sqlite = || SqliteStore::open(dir.path()).unwrap();
        run("embedded SQLite", sqlite(), &receiver, seconds, backlog, reference).await;
        match TestSchema::new("the notification benchmark") {
            Some(schema) => {
                let store = schema.store().await;
                run("PostgreSQL", store, &receiver, seconds, backlog, reference).await;
            }
            None => println!("PostgreSQL: skipped (set CPIS_TEST_DATABASE_URL)"),
        }
    });
}

/// An LA's endpoint: notes when each item arrived, against its `accessed_at`.
struct Receiver {
    url: String,
    /// Item id → milliseconds from the look to the item's arrival.
    latencies: Arc<Mutex<HashMap<String, f64>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let latencies: Arc<Mutex<HashMap<String, f64>>> = Arc::default();
        let app = {
            let latencies = latencies.clone();
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |body: Bytes| {
                    let latencies = latencies.clone();
                    async move {
                        let arrived = OffsetDateTime::now_utc();
                        if let Ok(item) = serde_json::from_slice::<serde_json::Value>(&body)
                            && let (Some(id), Some(at)) =
                                (item["id"].as_str(), item["accessed_at"].as_str())
                            && let Ok(at) = OffsetDateTime::parse(at, &Rfc3339)
                        {
                            let millis = (arrived - at).as_seconds_f64() * 1e3;
                            latencies.lock().unwrap().insert(id.to_owned(), millis);
                        }
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, latencies }
    }

    fn take(&self) -> HashMap<String, f64> {
        std::mem::take(&mut *self.latencies.lock().unwrap())
    }

    fn count(&self) -> usize {
        self.latencies.lock().unwrap().len()
    }
}

fn children(n: usize) -> Vec<NhsNumber> {
    (999_500_000u32..)
        .filter_map(NhsNumber::with_check_digit)
        .take(n)
        .collect()
}

fn item_for(record: &AccessRecord) -> OutboxItem {
    let id = Uuid::now_v7();
    OutboxItem {
        id,
        la: LaCode::parse(LA).unwrap(),
        kind: OutboxKind::Access,
        payload: serde_json::json!({
            "id": id, "kind": "access", "nhs_number": record.nhs_number.digits(),
            "accessed_at": record.at.format(&Rfc3339).unwrap(),
            "user_name": record.user_name, "role": record.role_name,
            "organisation_code": record.organisation_code,
            "organisation_name": record.organisation_name,
            "setting_type": record.setting_type,
        })
        .into(),
        created_at: record.at,
        attempts: 0,
    }
}

/// The same bodies, POSTed by a plain client with the worker's concurrency.
async fn reference_posts(receiver: &Receiver, count: usize) -> f64 {
    let client = reqwest::Client::new();
    let bodies: Vec<Vec<u8>> = children(count)
        .into_iter()
        .map(|child| {
            serde_json::to_vec(
                &item_for(&test_access(child, OffsetDateTime::now_utc(), true)).payload,
            )
            .unwrap()
        })
        .collect();
    let started = Instant::now();
    for chunk in bodies.chunks(256) {
        let posts = chunk.iter().map(|body| {
            client
                .post(&receiver.url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
        });
        for response in futures_util::future::join_all(posts).await {
            assert!(response.unwrap().status().is_success());
        }
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    receiver.take();
    rate
}

async fn run<S: Store>(
    name: &str,
    store: S,
    receiver: &Receiver,
    seconds: u64,
    backlog: usize,
    reference: f64,
) {
    let settings = NotificationSettings {
        allow_loopback_http: true,
        ..NotificationSettings::default()
    };
    let (url, token, app, listener) =
        common::start_server_with(store, LA, "ed-clinician", |cpis| {
            cpis.with_limits(Limits::default())
                .with_notifications(settings)
        })
        .await;
    app.store()
        .put_organisations(cpis_core::reference::synthetic_organisations().unwrap())
        .await
        .unwrap();
    let kids = children(1_000);
    let plans = kids
        .iter()
        .map(|child| {
            test_plan(
                LA,
                *child,
                PlanType::ChildProtection,
                time::macros::date!(2025 - 03 - 01),
            )
        })
        .collect::<Vec<_>>();
    app.store()
        .apply_plans(PlanBatch {
            la: LaCode::parse(LA).unwrap(),
            batch_id: Uuid::now_v7(),
            plans: plans.into(),
            snapshot: None,
            at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    app.register_webhook(LaCode::parse(LA).unwrap(), &receiver.url)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cpis::serve(listener, app.clone(), async {
        let _ = stopped.await;
    }));

    // Steady phase: an open loop at RATE queries a second, whatever the answers take.
    let client = reqwest::Client::new();
    let total = (RATE * seconds) as usize;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut queries = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let request = client
            .get(format!(
                "{url}/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{}",
                kids[i % kids.len()].digits()
            ))
            .bearer_auth(&token);
        queries.push(tokio::spawn(async move {
            request
                .send()
                .await
                .map(|response| response.status().as_u16())
        }));
    }
    let mut failed = 0;
    for query in queries {
        if !matches!(query.await.unwrap(), Ok(200)) {
            failed += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.count() < total - failed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies: Vec<f64> = receiver.take().into_values().collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "{name}: {total} queries at {RATE}/s ({failed} failed); {} items delivered; query to webhook p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        common::quantile(&latencies, 0.5),
        common::quantile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    let _ = stop.send(());
    let _ = server.await;

    // Backlog phase: items written with no worker running, then drained by
    // the worker as `cpis serve` runs it.
    let now = OffsetDateTime::now_utc();
    let writes = children(backlog).into_iter().enumerate().map(|(i, child)| {
        let record = test_access(child, now + time::Duration::microseconds(i as i64), true);
        let item = item_for(&record);
        let store = app.store().clone();
        async move { store.record_access(record, vec![item], None).await.unwrap() }
    });
    futures_util::future::join_all(writes).await;
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(cpis::deliver_forever(
        app.clone(),
        Deliverer::new("bench", Duration::from_secs(10), true).unwrap(),
        stopped,
    ));
    while receiver.count() < backlog && started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = receiver.count() as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = worker.await;
    receiver.take();
    println!(
        "{name}: the worker delivered a backlog of {backlog} at {rate:.0} items/s; ratio to the plain client: {:.2}",
        rate / reference
    );
}
