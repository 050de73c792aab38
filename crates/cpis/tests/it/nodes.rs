//! Several nodes on one PostgreSQL database, and a database that goes away.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpis_auth::SigningKey;
use cpis_domain::LaCode;
use cpis_postgres::testing::TestSchema;
use cpis_postgres::{PgStore, PoolSettings};
use cpis_store::conformance::{test_access, test_nhs_number};
use cpis_store::{OutboxClaim, OutboxItem, OutboxKind, Store, Webhook};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{Running, TcpProxy, TestServer, cpis, fails_to_start, free_port_address};

fn postgres_address(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the test database must be reached over TCP, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = if host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    format!("{host}:{port}").parse().unwrap()
}

/// The same database, reached through `proxy`.
fn through(url: &str, proxy: SocketAddr) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let user = config.get_user().unwrap_or("postgres");
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{proxy}/{database}")
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_node_whose_database_goes_away_turns_unready_and_recovers() {
    let Some(schema) = TestSchema::new("the database-goes-away test") else {
        return;
    };
    let proxy = TcpProxy::start(postgres_address(&schema.url)).await;
    let settings = PoolSettings {
        wait_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        ..PoolSettings::default()
    };
    let store = PgStore::connect_with_schema(
        &through(&schema.url, proxy.addr),
        Some(&schema.name),
        settings,
    )
    .await
    .unwrap();
    let server = TestServer::with_store(store, Box::new(schema)).await;
    assert_eq!(get_json(&server.url("/readyz")).await.0, 200);
    // A look before the cut, so that the batched statements' connections
    // are open when the database goes.
    let child = test_nhs_number(7).digits();
    let look = || {
        reqwest::Client::new()
            .get(server.url(&format!(
                "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{child}"
            )))
            .bearer_auth(server.token("ed-clinician"))
            .send()
    };
    assert_eq!(look().await.unwrap().status(), 200);

    proxy.cut().await;
    let refused = look().await.unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome", "no data: {body}");
    let (status, body) = get_json(&server.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    let response = reqwest::get(server.url("/api/v1/status")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("try again"),
        "{body}"
    );
    assert!(
        !body.to_string().contains("postgres"),
        "no internals leak: {body}"
    );

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if get_json(&server.url("/readyz")).await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the node did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get_json(&server.url("/api/v1/status")).await.0, 200);
    // A connection that broke unnoticed fails one more batch, at most.
    while look().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "looks did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_unreachable_database_stops_the_start_with_one_sentence() {
    // A data directory of its own: a node keeps its signing key there.
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = fails_to_start(
        cpis()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("CPIS_DEVELOPMENT", "true")
            .env(
                "CPIS_DATABASE_URL",
                "postgres://cpis:s3cret@127.0.0.1:1/cpis",
            ),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot use the PostgreSQL database"),
        "{stderr}"
    );
    assert!(stderr.contains("127.0.0.1:1/cpis"), "{stderr}");
    assert!(
        !stderr.contains("s3cret"),
        "the password never shows: {stderr}"
    );
}

/// A `cpis serve` node on `schema`. Nodes of one service share the signing
/// key and the public URL (the load balancer's), nothing else.
fn start_node(schema: &TestSchema, listen: SocketAddr, key: &Path, public_url: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut command = cpis();
    command
        .args(["serve", "--listen", &listen.to_string(), "--data-dir"])
        .arg(dir.path())
        .env("CPIS_DEVELOPMENT", "true")
        .env("CPIS_SIGNING_KEY_FILE", key)
        .env("CPIS_PUBLIC_URL", public_url)
        .env("CPIS_DATABASE_URL", schema.url_with_search_path());
    Running::spawn(&mut command, Box::new(dir))
}

async fn wait_until_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = reqwest::get(format!("{base}/readyz")).await
            && response.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_behave_as_one_service() {
    let Some(schema) = TestSchema::new("the two-node test") else {
        return;
    };
    schema.create_empty().await;
    // Both nodes start at once on an empty schema: migrations and reference
    // data must not race.
    let (addr_a, addr_b) = (free_port_address(), free_port_address());
    let (a, b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    let shared = tempfile::tempdir().unwrap();
    let key_file = shared.path().join("signing-key.pem");
    std::fs::write(&key_file, SigningKey::generate().unwrap().pem()).unwrap();
    let node_a = start_node(&schema, addr_a, &key_file, &a);
    let node_b = start_node(&schema, addr_b, &key_file, &a);
    wait_until_ready(&a).await;
    wait_until_ready(&b).await;
    let (_, status_a) = get_json(&format!("{a}/api/v1/status")).await;
    assert_eq!(status_a["local_authorities"], 153, "{status_a}");

    // A token issued by one node is honoured by the other: one issuer, one key.
    let tokens: Value = reqwest::Client::new()
        .post(format!("{a}/oauth2/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["error"], "invalid_request", "{tokens}");
    let jwks_a: Value = reqwest::get(format!("{a}/oauth2/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_b: Value = reqwest::get(format!("{b}/oauth2/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_a, jwks_b, "both nodes publish the same key");
    let (_, log_a) = get_json(&format!("{a}/audit/v1/key")).await;
    let (_, log_b) = get_json(&format!("{b}/audit/v1/key")).await;
    assert_eq!(
        log_a, log_b,
        "both nodes sign the log with the key made by the first"
    );

    // An LA system uploads through node A; node B serves the result at once,
    // and honours the same token.
    let key = SigningKey::from_pem(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let token = key
        .sign(&serde_json::json!({
            "iss": a, "aud": "cpis", "sub": "camden-system", "name": "Camden system",
            "cpis_kind": "la_system", "cpis_la": "E09000007", "iat": now, "exp": now + 600,
        }))
        .unwrap();
    let client = reqwest::Client::new();
    let ack: Value = client
        .post(format!("{a}/la/v1/uploads"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body("nhs_number,plan_type,start_date\n9434765919,CPP,2026-01-05\n")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack["file_code"], "CPF02", "{ack}");
    let id = ack["id"].as_str().unwrap();
    let from_b: Value = client
        .get(format!("{b}/la/v1/uploads/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(from_b, ack, "node B serves what node A wrote");
    for node in [&a, &b] {
        let (_, status) = get_json(&format!("{node}/api/v1/status")).await;
        assert_eq!(status["plans"], 1, "{node}: {status}");
    }
    let writer = schema.store().await;
    let camden = LaCode::parse("E09000007").unwrap();

    // Two running nodes deliver what either wrote, each item once.
    let receiver = crate::notifications::Receiver::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    writer
        .put_webhook(Webhook {
            la: camden,
            url: receiver.url.clone(),
            secret: secret.to_owned(),
            created_at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    let delivered_items: Vec<OutboxItem> = (0..100)
        .map(|_| {
            let id = Uuid::now_v7();
            OutboxItem {
                id,
                la: camden,
                kind: OutboxKind::Access,
                payload: serde_json::json!({"id": id, "kind": "access"}).into(),
                created_at: OffsetDateTime::now_utc(),
                attempts: 0,
            }
        })
        .collect();
    for chunk in delivered_items.chunks(10) {
        writer
            .record_access(
                test_access(test_nhs_number(8), OffsetDateTime::now_utc(), true),
                chunk.to_vec(),
                None,
            )
            .await
            .unwrap();
    }
    for _ in 0..600 {
        if receiver.count() >= delivered_items.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut ids: Vec<String> = receiver
        .verified(secret)
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), delivered_items.len(), "each item delivered once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), delivered_items.len(), "no item delivered twice");
    drop(node_a);
    drop(node_b);

    // Underneath: two pools claiming the same outbox at once never take
    // the same item, and between them take every item.
    let items: Vec<OutboxItem> = (0..200)
        .map(|_| OutboxItem {
            id: Uuid::now_v7(),
            la: camden,
            kind: OutboxKind::Access,
            payload: serde_json::json!({}).into(),
            created_at: OffsetDateTime::now_utc() - time::Duration::minutes(1),
            attempts: 0,
        })
        .collect();
    writer
        .record_access(
            test_access(test_nhs_number(9), OffsetDateTime::now_utc(), true),
            items.clone(),
            None,
        )
        .await
        .unwrap();
    let pools = [
        Arc::new(schema.store().await),
        Arc::new(schema.store().await),
    ];
    let claimers = pools.iter().enumerate().map(|(index, store)| {
        let store = store.clone();
        tokio::spawn(async move {
            let node = format!("node-{index}");
            let mut claimed = Vec::new();
            loop {
                let batch = store
                    .claim_outbox(OutboxClaim {
                        node: node.clone(),
                        now: OffsetDateTime::now_utc(),
                        lease: time::Duration::minutes(5),
                        limit: 7,
                    })
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|item| item.id));
            }
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no item was claimed twice");
    let mut expected: Vec<Uuid> = items.iter().map(|item| item.id).collect();
    expected.sort();
    assert_eq!(all, expected, "every item was claimed");
    drop(schema);
}
