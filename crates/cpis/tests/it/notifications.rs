//! Notifications to local authorities: the pull feed, signed webhooks that
//! survive receivers that are down, slow or failing, parking and replay,
//! repeat-attendance alerts at their boundaries, and a server killed in the
//! middle of a delivery. The worker's steps are taken by the tests, with the
//! server's clock moved on instead of waiting.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use cpis_domain::{NhsNumber, SettingType};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use time::Duration;
use tokio::sync::oneshot;

use crate::support::{
    OTHER_LA, Running, TEST_LA, TestServer, demo_command, free_port_address, on_both_stores,
    persona_token, wait_ready,
};

/// What a receiver does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Fail,
    /// Answers only after the sender has given up.
    Hang,
}

/// An LA's webhook endpoint: keeps what it accepts.
pub struct Receiver {
    pub url: String,
    /// Every request that reached the receiver, whatever it answered.
    arrivals: Arc<std::sync::atomic::AtomicUsize>,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    mode: Arc<Mutex<Mode>>,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: std::net::SocketAddr) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Accept));
        let arrivals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = {
            let (received, mode, arrivals) = (received.clone(), mode.clone(), arrivals.clone());
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let (received, mode) = (received.clone(), mode.clone());
                    arrivals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        let mode = *mode.lock().unwrap();
                        match mode {
                            Mode::Accept => {
                                received.lock().unwrap().push((headers, body));
                                AxumStatus::NO_CONTENT
                            }
                            Mode::Fail => AxumStatus::INTERNAL_SERVER_ERROR,
                            Mode::Hang => {
                                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                                AxumStatus::OK
                            }
                        }
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            url,
            arrivals,
            received,
            mode,
            _stop: stop,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// What arrived, each checked against `secret` with the Standard
    /// Webhooks reference library and its `webhook-id` against the item's id.
    pub fn verified(&self, secret: &str) -> Vec<Value> {
        let verifier = standardwebhooks::Webhook::new(secret).unwrap();
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, body)| {
                verifier
                    .verify(body, headers)
                    .unwrap_or_else(|error| panic!("a signature does not verify: {error:?}"));
                let item: Value = serde_json::from_slice(body).unwrap();
                assert_eq!(
                    headers["webhook-id"].to_str().unwrap(),
                    item["id"].as_str().unwrap()
                );
                assert_eq!(headers["content-type"], "application/json");
                item
            })
            .collect()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn arrivals(&self) -> usize {
        self.arrivals.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `n` distinct valid NHS numbers from the 999 range, from `offset`.
fn children(n: usize, offset: u32) -> Vec<String> {
    (999_400_000 + offset..)
        .filter_map(NhsNumber::with_check_digit)
        .take(n)
        .map(|number| number.digits())
        .collect()
}

/// Emergency departments among the synthetic care settings.
fn emergency_departments() -> Vec<String> {
    cpis_core::reference::synthetic_organisations()
        .unwrap()
        .into_iter()
        .filter(|organisation| organisation.setting_type == SettingType::EmergencyDepartment)
        .map(|organisation| organisation.code.as_str().to_owned())
        .collect()
}

pub struct Caller<'a> {
    server: &'a TestServer,
    client: Client,
}

impl<'a> Caller<'a> {
    pub fn new(server: &'a TestServer) -> Self {
        Caller {
            server,
            client: Client::new(),
        }
    }

    /// Gives `la` a CPP for each child.
    pub async fn plans(&self, la: &str, children: &[String]) {
        let mut csv = String::from("nhs_number,plan_type,start_date\n");
        for child in children {
            csv.push_str(&format!("{child},CPP,2025-03-01\n"));
        }
        let response = self
            .client
            .post(self.server.url("/la/v1/uploads"))
            .bearer_auth(self.server.token_for("la-system", la))
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let ack: Value = response.json().await.unwrap();
        assert_eq!(ack["file_code"], "CPF02", "{ack}");
    }

    /// A clinician's look at `child`, as `persona` working at `organisation`.
    pub async fn look(&self, persona: &str, organisation: Option<&str>, child: &str) -> Value {
        let mut claims = self.server.persona_claims(persona, TEST_LA);
        if let Some(code) = organisation {
            claims["nhsid_nrbac_roles"][0]["org_code"] = json!(code);
        }
        let response = self
            .client
            .get(self.server.url(&format!(
                "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{child}"
            )))
            .bearer_auth(self.server.sign(&claims))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn la(
        &self,
        method: reqwest::Method,
        path: &str,
        la: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.server.url(path))
            .bearer_auth(self.server.token_for("la-system", la));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Registers `url` as `la`'s webhook and returns its secret.
    pub async fn webhook(&self, la: &str, url: &str) -> String {
        let (status, body) = self
            .la(
                reqwest::Method::PUT,
                "/la/v1/webhook",
                la,
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["secret"].as_str().unwrap().to_owned()
    }

    /// Every item in `la`'s feed, read a page at a time.
    pub async fn feed(&self, la: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self
                .la(
                    reqwest::Method::GET,
                    &format!("/la/v1/notifications?limit=2&after={cursor}"),
                    la,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let batch = page["items"].as_array().unwrap().clone();
            if batch.is_empty() {
                assert_eq!(
                    page["next"].as_str().unwrap(),
                    if cursor.is_empty() { "0" } else { &cursor }
                );
                return items;
            }
            cursor = page["next"].as_str().unwrap().to_owned();
            items.extend(batch);
        }
    }
}

on_both_stores! {

async fn looks_reach_the_owning_las_by_feed_and_signed_webhook(server: TestServer) {
    let caller = Caller::new(&server);
    let kids = children(3, 0);
    caller.plans(TEST_LA, &kids[..2]).await;
    caller.plans(OTHER_LA, &kids[1..2]).await;
    let receiver = Receiver::start().await;
    let secret = caller.webhook(TEST_LA, &receiver.url).await;
    assert!(secret.starts_with("whsec_"));

    caller.look("ed-clinician", None, &kids[0]).await;
    caller.look("ed-clinician", None, &kids[1]).await;
    caller.look("ed-clinician", None, &kids[2]).await; // no plan: nobody is told
    caller.look("gp-clinician", None, &kids[0]).await; // scheduled: silent

    let ours = caller.feed(TEST_LA).await;
    assert_eq!(ours.len(), 2, "{ours:#?}");
    assert_eq!(ours[0]["nhs_number"], kids[0].as_str());
    assert_eq!(ours[1]["nhs_number"], kids[1].as_str());
    for item in &ours {
        assert_eq!(item["kind"], "access");
        assert_eq!(item["setting_type"], "emergency_department");
        assert!(item["organisation_code"].as_str().unwrap().starts_with("ZZ"));
        assert!(item["user_name"].as_str().is_some() && item["role"].as_str().is_some());
        assert!(item["accessed_at"].as_str().is_some() && item["organisation_name"].as_str().is_some());
        // Who looked, where and when: nothing clinical, nothing about plans.
        let keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 9, "{keys:?}");
    }
    let theirs = caller.feed(OTHER_LA).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["nhs_number"], kids[1].as_str());

    // Only the LA with a webhook is pushed to; each item once, signed.
    let report = server.deliver_step("node-a").await;
    assert_eq!((report.claimed, report.delivered), (2, 2));
    assert_eq!(receiver.verified(&secret), ours);
    assert_eq!(server.deliver_step("node-a").await.claimed, 0);
    let (status, hook) = caller.la(reqwest::Method::GET, "/la/v1/webhook", TEST_LA, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((hook["delivered"].as_u64(), hook["pending"].as_u64()), (Some(2), Some(0)));
    assert!(hook.get("secret").is_none(), "the secret is shown once only");
    let (status, _) = caller.la(reqwest::Method::GET, "/la/v1/webhook", OTHER_LA, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_receiver_down_failing_or_slow_gets_every_item_afterwards(server: TestServer) {
    let caller = Caller::new(&server);
    let kids = children(3, 100);
    caller.plans(TEST_LA, &kids).await;
    // Down: nothing listens at the address yet.
    let address = crate::support::free_port_address();
    let secret = caller.webhook(TEST_LA, &format!("http://{address}/hook")).await;
    caller.look("ed-clinician", None, &kids[0]).await;
    let report = server.deliver_step("node-a").await;
    assert_eq!((report.claimed, report.retried), (1, 1));
    let (_, hook) = caller.la(reqwest::Method::GET, "/la/v1/webhook", TEST_LA, None).await;
    assert_eq!(hook["last_error"], "could not connect");
    assert_eq!(server.deliver_step("node-a").await.claimed, 0, "it waits for its retry");

    // Up, but failing; then slow.
    let receiver = Receiver::start_on(address).await;
    receiver.set(Mode::Fail);
    caller.look("ed-clinician", None, &kids[1]).await;
    server.advance(Duration::minutes(2));
    let report = server.deliver_step("node-a").await;
    assert_eq!((report.claimed, report.retried), (2, 2));
    receiver.set(Mode::Hang);
    caller.look("ed-clinician", None, &kids[2]).await;
    server.advance(Duration::minutes(5));
    let report = server.deliver_step("node-a").await;
    assert_eq!((report.claimed, report.retried), (3, 3));
    let (_, hook) = caller.la(reqwest::Method::GET, "/la/v1/webhook", TEST_LA, None).await;
    assert_eq!(hook["last_error"], "timed out");

    // Healthy again: everything arrives, once, in the end.
    receiver.set(Mode::Accept);
    for _ in 0..10 {
        server.advance(Duration::hours(1));
        server.deliver_step("node-a").await;
    }
    let delivered = receiver.verified(&secret);
    let mut numbers: Vec<&str> = delivered.iter().map(|item| item["nhs_number"].as_str().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, kids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(caller.feed(OTHER_LA).await.len(), 0, "nothing went to another LA");
}

async fn deliveries_failing_past_their_retry_period_are_parked_and_replayed(server: TestServer) {
    let caller = Caller::new(&server);
    let kids = children(2, 200);
    caller.plans(TEST_LA, &kids).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Fail);
    let secret = caller.webhook(TEST_LA, &receiver.url).await;
    caller.look("ed-clinician", None, &kids[0]).await;
    caller.look("ed-clinician", None, &kids[1]).await;
    assert_eq!(server.deliver_step("node-a").await.retried, 2);
    server.advance(Duration::hours(71));
    assert_eq!(server.deliver_step("node-a").await.retried, 2, "still within 72 hours");
    server.advance(Duration::hours(2));
    assert_eq!(server.deliver_step("node-a").await.parked, 2);
    server.advance(Duration::hours(2));
    assert_eq!(server.deliver_step("node-a").await.claimed, 0, "parked items wait for the LA");

    let (status, failures) = caller.la(reqwest::Method::GET, "/la/v1/webhook/failures", TEST_LA, None).await;
    assert_eq!(status, StatusCode::OK);
    let failed = failures["items"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["last_error"], "HTTP 500");
    assert!(failed[0]["attempts"].as_u64().unwrap() >= 3);
    let (_, theirs) = caller.la(reqwest::Method::GET, "/la/v1/webhook/failures", OTHER_LA, None).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let (_, hook) = caller.la(reqwest::Method::GET, "/la/v1/webhook", TEST_LA, None).await;
    assert_eq!(hook["failed"], 2);

    receiver.set(Mode::Accept);
    let first = failed[1]["id"].clone();
    let (status, replayed) = caller
        .la(reqwest::Method::POST, "/la/v1/webhook/replay", TEST_LA, Some(json!({"ids": [first]})))
        .await;
    assert_eq!((status, replayed["replayed"].as_u64()), (StatusCode::OK, Some(1)));
    assert_eq!(server.deliver_step("node-a").await.delivered, 1);
    let (_, replayed) = caller
        .la(reqwest::Method::POST, "/la/v1/webhook/replay", TEST_LA, Some(json!({})))
        .await;
    assert_eq!(replayed["replayed"], 1);
    assert_eq!(server.deliver_step("node-a").await.delivered, 1);
    assert_eq!(receiver.verified(&secret).len(), 2);
    let (status, _) = caller
        .la(reqwest::Method::POST, "/la/v1/webhook/replay", TEST_LA, Some(json!({"ids": ["not-a-uuid"]})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn repeat_attendance_is_alerted_at_the_threshold_once_per_window(server: TestServer) {
    let caller = Caller::new(&server);
    let kids = children(2, 300);
    caller.plans(TEST_LA, &kids).await;
    let settings = emergency_departments();
    let alerts = |feed: &[Value]| -> Vec<Value> {
        feed.iter().filter(|item| item["kind"] == "repeat_attendance").cloned().collect()
    };

    // Two departments, one of them twice, and a scheduled look: no alert.
    caller.look("ed-clinician", Some(&settings[0]), &kids[0]).await;
    caller.look("ed-clinician", Some(&settings[1]), &kids[0]).await;
    caller.look("ed-clinician", Some(&settings[1]), &kids[0]).await;
    caller.look("gp-clinician", None, &kids[0]).await;
    assert!(alerts(&caller.feed(TEST_LA).await).is_empty());

    // The third department, within 30 days: one alert naming all three.
    server.advance(Duration::days(29));
    caller.look("ed-clinician", Some(&settings[2]), &kids[0]).await;
    let found = alerts(&caller.feed(TEST_LA).await);
    assert_eq!(found.len(), 1, "{found:#?}");
    let alert = &found[0];
    assert_eq!(alert["nhs_number"], kids[0].as_str());
    assert_eq!(alert["rule"], json!({"organisations": 3, "days": 30}));
    assert_eq!(alert["organisation_code"], settings[2].as_str());
    let seen: Vec<&str> = alert["attendances"].as_array().unwrap().iter().map(|a| a["organisation_code"].as_str().unwrap()).collect();
    assert_eq!(seen, vec![settings[0].as_str(), settings[1].as_str(), settings[2].as_str()]);
    assert_eq!(alert["attendances"][1]["looks"], 2);
    // The LA team's dashboard shows it as an open alert.
    let dashboard = reqwest::Client::new()
        .get(server.url("/app/la"))
        .bearer_auth(server.token_for("social-worker", TEST_LA))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let alerts_table = dashboard.split("data-testid=\"alerts\"").nth(1).unwrap_or_default();
    let spaced = format!("{} {} {}", &kids[0][..3], &kids[0][3..6], &kids[0][6..]);
    assert!(alerts_table.contains(&spaced) && alerts_table.contains("Repeat attendance"), "{dashboard}");

    // A fourth department in the same window: no second alert.
    caller.look("ed-clinician", Some(&settings[3]), &kids[0]).await;
    assert_eq!(alerts(&caller.feed(TEST_LA).await).len(), 1);

    // 30 days on, the first looks have left the window: departments 2, 3
    // and 4 still count, and a new window begins with a fifth.
    server.advance(Duration::days(30));
    caller.look("ed-clinician", Some(&settings[4]), &kids[0]).await;
    assert_eq!(alerts(&caller.feed(TEST_LA).await).len(), 1, "only 1 of the earlier looks is within 30 days");
    caller.look("ed-clinician", Some(&settings[5]), &kids[0]).await;
    caller.look("ed-clinician", Some(&settings[6]), &kids[0]).await;
    assert_eq!(alerts(&caller.feed(TEST_LA).await).len(), 2);

    // An LA sets its own rule: two departments within 7 days.
    let (status, profile) = caller
        .la(reqwest::Method::PUT, "/la/v1/profile", TEST_LA, Some(json!({
            "name": "Camden", "emergency_duty_number": "01632 960100", "office_hours_number": "01632 960101",
            "repeat_attendance": {"organisations": 2, "days": 7}
        })))
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["repeat_attendance"], json!({"organisations": 2, "days": 7}));
    caller.look("ed-clinician", Some(&settings[0]), &kids[1]).await;
    server.advance(Duration::days(7));
    caller.look("ed-clinician", Some(&settings[1]), &kids[1]).await;
    assert_eq!(alerts(&caller.feed(TEST_LA).await).len(), 2, "exactly 7 days apart is outside");
    caller.look("ed-clinician", Some(&settings[2]), &kids[1]).await;
    assert_eq!(alerts(&caller.feed(TEST_LA).await).len(), 3);
    let (status, _) = caller
        .la(reqwest::Method::PUT, "/la/v1/profile", TEST_LA, Some(json!({
            "name": "Camden", "emergency_duty_number": "01632 960100", "office_hours_number": "01632 960101",
            "repeat_attendance": {"organisations": 1, "days": 7}
        })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Another LA's feed has none of it.
    assert!(caller.feed(OTHER_LA).await.is_empty());
}

async fn the_feed_and_webhook_refuse_what_they_cannot_use(server: TestServer) {
    let caller = Caller::new(&server);
    for query in ["limit=0", "limit=1001", "limit=x", "after=abc", "after=-1", "since=1"] {
        let (status, body) = caller
            .la(reqwest::Method::GET, &format!("/la/v1/notifications?{query}"), TEST_LA, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    for url in [
        "http://hooks.camden.example/cpis",
        "ftp://hooks.camden.example/",
        "https://169.254.169.254/latest",
        "https://user:pw@hooks.camden.example/",
        "not a url",
    ] {
        let (status, body) = caller
            .la(reqwest::Method::PUT, "/la/v1/webhook", TEST_LA, Some(json!({"url": url})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
    }
    let (status, _) = caller
        .la(reqwest::Method::PUT, "/la/v1/webhook", TEST_LA, Some(json!({"uri": "https://x.example/"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let first = caller.webhook(TEST_LA, "https://hooks.camden.example/cpis").await;
    let second = caller.webhook(TEST_LA, "https://hooks.camden.example/cpis").await;
    assert_ne!(first, second, "registering again gives a new secret");
    let (status, _) = caller.la(reqwest::Method::DELETE, "/la/v1/webhook", TEST_LA, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = caller.la(reqwest::Method::DELETE, "/la/v1/webhook", TEST_LA, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn two_workers_deliver_each_item_once(server: TestServer) {
    let caller = Caller::new(&server);
    let kids = children(40, 400);
    caller.plans(TEST_LA, &kids).await;
    let receiver = Receiver::start().await;
    let secret = caller.webhook(TEST_LA, &receiver.url).await;
    for child in &kids {
        caller.look("ed-clinician", None, child).await;
    }
    loop {
        let (a, b) = tokio::join!(server.deliver_step("node-a"), server.deliver_step("node-b"));
        if a.claimed + b.claimed == 0 {
            break;
        }
    }
    let delivered = receiver.verified(&secret);
    assert_eq!(delivered.len(), 40);
    let mut ids: Vec<&str> = delivered.iter().map(|item| item["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40, "no item twice");
}

}

/// Polls `done` every 50 ms for up to `seconds`.
async fn eventually(seconds: u64, done: impl Fn() -> bool) -> bool {
    for _ in 0..seconds * 20 {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    done()
}

/// A server killed while a delivery is in flight loses nothing: its claim
/// lapses and the restarted server delivers the item. (`cpis demo`, for
/// its registered care settings; it serves as `cpis serve` does.)
#[test]
fn a_server_killed_mid_delivery_delivers_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listen = free_port_address();
    let url = format!("http://{listen}");
    let serve = || {
        let mut command = demo_command(listen, &data);
        command.env("CPIS_WEBHOOK_LEASE_SECONDS", "5");
        Running::spawn(&mut command, Box::new(()))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut server = serve();
    runtime.block_on(async {
        wait_ready(&url).await;
        let client = Client::new();
        let la = persona_token(&data, "la-system");
        let child = children(1, 500).remove(0);
        let response = client
            .post(format!("{url}/la/v1/uploads"))
            .bearer_auth(&la)
            .header("content-type", "text/csv")
            .body(format!("nhs_number,plan_type,start_date\n{child},LAC,2025-03-01\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let receiver = Receiver::start().await;
        receiver.set(Mode::Hang);
        let hook: Value = client
            .put(format!("{url}/la/v1/webhook"))
            .bearer_auth(&la)
            .json(&json!({"url": receiver.url}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = hook["secret"].as_str().unwrap().to_owned();
        let response = client
            .get(format!(
                "{url}/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{child}"
            ))
            .bearer_auth(persona_token(&data, "ed-clinician"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        // The worker has the item in flight: kill the server there.
        assert!(eventually(10, || receiver.arrivals() > 0).await, "the delivery never started");
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        receiver.set(Mode::Accept);
        assert_eq!(receiver.count(), 0);

        server = serve();
        wait_ready(&url).await;
        assert!(eventually(30, || receiver.count() > 0).await, "the item was lost");
        let delivered = receiver.verified(&secret);
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0]["nhs_number"], child.as_str());
        assert_eq!(delivered[0]["kind"], "access");
    });
    drop(server);
}
