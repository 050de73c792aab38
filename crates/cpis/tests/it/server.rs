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
