//! The server over real HTTP, in process.

use serde_json::Value;

use crate::support::on_both_stores;

on_both_stores! {

async fn health_and_readiness_answer(server: TestServer) {
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

async fn status_counts_what_the_store_holds(server: TestServer) {
    let body: Value = reqwest::get(server.url("/api/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["local_authorities"], 153);
    assert_eq!(body["plans"], 0);
}

async fn the_local_authority_directory_lists_every_authority(server: TestServer) {
    let body: Value = reqwest::get(server.url("/api/v1/local-authorities"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 153);
    let camden = list.iter().find(|la| la["code"] == "E09000007").unwrap();
    assert_eq!(camden["name"], "Camden");
    assert!(camden["emergency_duty_number"].as_str().unwrap().starts_with("01632"));
}

async fn request_ids_are_echoed_or_made(server: TestServer) {
    let client = reqwest::Client::new();
    let echoed = client
        .get(server.url("/healthz"))
        .header("X-Request-ID", "ed-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "ed-7f3a");
    let made = client.get(server.url("/healthz")).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

async fn unknown_addresses_get_a_json_404(server: TestServer) {
    let response = reqwest::get(server.url("/no/such/page")).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/fhir+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "not-found");
    assert_eq!(body["issue"][0]["diagnostics"], "there is nothing at this address");
}
}

/// Once the server has stopped, nothing it ran beside it (housekeeping, the
/// delivery loops, the checkpointer) still holds the app: the embedded
/// store is then dropped, its last writes done, before `cpis serve` lets go
/// of the data directory's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_server_stops_nothing_still_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let listener = cpis::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let la = cpis_domain::LaCode::parse(crate::support::TEST_LA).unwrap();
    let identity = cpis_core::identity::development_identity(&url, la)
        .await
        .unwrap();
    let store = cpis_sqlite::SqliteStore::open(dir.path()).unwrap();
    let app = std::sync::Arc::new(
        cpis_core::Cpis::new(
            std::sync::Arc::new(store),
            cpis_core::Clock::system(),
            identity,
        )
        .with_log(
            cpis_core::audit::LogSigner::generate("cpis.test/log").unwrap(),
            cpis_core::audit::CheckpointPolicy::default(),
        ),
    );
    app.seed_reference_data().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cpis::serve_with(
        listener,
        app.clone(),
        async {
            let _ = stopped.await;
        },
        true,
    ));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let ready = client.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // No connection kept open: axum lets a closing connection's task, which
    // holds the app, end a moment after the server has returned.
    drop((ready, client));
    // Long enough for the checkpointer's first round and the delivery
    // loops' first steps.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(
        std::sync::Arc::into_inner(app).is_some(),
        "something the server ran still holds the app"
    );
}
