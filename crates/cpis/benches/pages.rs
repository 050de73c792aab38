//! The web application's pages on the demo population: how long the server
//! takes to answer each, beside a minimal axum server returning a fixed body
//! over the same kind of connection in the same run.
//!
//! Run with `cargo xtask bench pages`. `CPIS_BENCH_REQUESTS` sets how many
//! requests each page gets (default 300), one at a time on a kept-alive
//! connection, so the time is the server's (loopback adds tens of µs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use cpis_sqlite::SqliteStore;
use reqwest::{Client, Method};

fn main() {
    // As the `cpis` binary does before anything else.
    cpis::without_huge_pages().unwrap();
    let requests: usize = common::setting("CPIS_BENCH_REQUESTS", 300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(requests));
}

struct Timing {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Sends `requests` requests one after another and times each.
async fn time(requests: usize, send: impl Fn() -> reqwest::RequestBuilder) -> Timing {
    for _ in 0..10 {
        let response = send().send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }
    let mut taken = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let response = send().send().await.unwrap();
        let status = response.status();
        let _ = response.bytes().await.unwrap();
        taken.push(started.elapsed());
        assert!(status.is_success(), "{status}");
    }
    taken.sort();
    Timing {
        p50: taken[taken.len() / 2],
        p99: taken[taken.len() * 99 / 100],
        max: taken[taken.len() - 1],
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn run(requests: usize) {
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reference_url = format!("http://{}/fixed", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = Router::new().route("/fixed", get(|| async { "fixed body" }));
        axum::serve(listener, app).await.unwrap();
    });
    // Measured again after warming up, as the pages are.
    let _ = time(requests, || client.get(&reference_url)).await;
    let reference = time(requests, || client.get(&reference_url)).await;
    println!(
        "reference, minimal axum fixed body: p50 {:.3} ms, p99 {:.3} ms",
        ms(reference.p50),
        ms(reference.p99)
    );

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let (url, _, app, listener) = common::start_server(
        store,
        "E06000001",
        "ed-clinician",
        cpis_core::Limits::default(),
    )
    .await;
    let loaded = app.load_demo(1).await.unwrap();
    let flagged = loaded.examples[0].nhs_number.digits();
    let token = |persona: &str| app.persona_token(persona).unwrap();
    let (clinician, social_worker, privacy) = (
        token("ed-clinician"),
        token("social-worker"),
        token("privacy-officer"),
    );
    tokio::spawn(cpis::serve(listener, app.clone(), std::future::pending()));

    let search = vec![("nhs_number", flagged.clone())];
    let report = vec![
        ("by", "nhs_number".to_owned()),
        ("subject", flagged.clone()),
    ];
    let none = Vec::new();
    // Each page: what it is, whose token, how it is asked for, and its form.
    type Page<'a> = (
        &'a str,
        &'a str,
        Method,
        &'a str,
        &'a Vec<(&'a str, String)>,
    );
    let pages: Vec<Page> = vec![
        ("start page", "", Method::GET, "/", &none),
        ("search form", &clinician, Method::GET, "/app/search", &none),
        (
            "search: a flagged child (recorded, notified)",
            &clinician,
            Method::POST,
            "/app/search",
            &search,
        ),
        (
            "LA dashboard",
            &social_worker,
            Method::GET,
            "/app/la",
            &none,
        ),
        (
            "LA plans, first page",
            &social_worker,
            Method::GET,
            "/app/la/plans",
            &none,
        ),
        (
            "LA uploads",
            &social_worker,
            Method::GET,
            "/app/la/uploads",
            &none,
        ),
        (
            "LA notifications",
            &social_worker,
            Method::GET,
            "/app/la/webhook",
            &none,
        ),
        (
            "LA settings",
            &social_worker,
            Method::GET,
            "/app/la/settings",
            &none,
        ),
        (
            "access report by NHS number (logged)",
            &privacy,
            Method::POST,
            "/app/reports",
            &report,
        ),
        ("audit log", &privacy, Method::GET, "/app/audit", &none),
    ];
    println!(
        "embedded SQLite, demo population ({} plans), {requests} requests a page:",
        loaded.plans_loaded
    );
    println!("| page | p50 | p99 | max | p50 ratio to the fixed body |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, bearer, method, path, form) in pages {
        let target = format!("{url}{path}");
        let timing = time(requests, || {
            let mut request = client.request(method.clone(), &target);
            if !bearer.is_empty() {
                request = request.bearer_auth(bearer);
            }
            if method == Method::POST {
                request = request.form(form);
            }
            request
        })
        .await;
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} |",
            ms(timing.p50),
            ms(timing.p99),
            ms(timing.max),
            timing.p50.as_secs_f64() / reference.p50.as_secs_f64()
        );
    }
}
