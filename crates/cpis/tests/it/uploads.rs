//! LA uploads over HTTP: every file and record code, both formats, both
//! modes, the snapshot guard, idempotency, the limits, and a server killed
//! in the middle of a large upload.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    OTHER_LA, Running, TEST_LA, TestServer, UPLOAD_LIMIT, cpis, free_port_address, on_both_stores,
    persona_token, wait_ready,
};

/// `n` distinct valid NHS numbers from the 999 range, as ten digits.
fn numbers(n: usize, offset: u32) -> Vec<String> {
    (999_300_000 + offset..)
        .filter_map(cpis_domain::NhsNumber::with_check_digit)
        .take(n)
        .map(|number| number.digits())
        .collect()
}

fn csv_of(numbers: &[String], plan_type: &str) -> String {
    let mut csv = String::from("nhs_number,plan_type,start_date,local_reference\n");
    for (i, number) in numbers.iter().enumerate() {
        csv.push_str(&format!("{number},{plan_type},2025-03-01,REF-{i}\n"));
    }
    csv
}

struct La<'a> {
    server: &'a TestServer,
    client: Client,
    token: String,
}

impl<'a> La<'a> {
    fn new(server: &'a TestServer, persona: &str, la: &str) -> Self {
        La {
            server,
            client: Client::new(),
            token: server.token_for(persona, la),
        }
    }

    async fn upload(
        &self,
        query: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let response = self
            .client
            .post(self.server.url(&format!("/la/v1/uploads{query}")))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            headers,
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.server.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn plan_count(server: &TestServer) -> u64 {
    let status: Value = reqwest::get(server.url("/api/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["plans"].as_u64().unwrap()
}

on_both_stores! {

async fn a_mixed_csv_is_acknowledged_record_by_record_and_kept(server: TestServer) {
    let la = La::new(&server, "la-system", TEST_LA);
    let csv = "nhs_number,plan_type,start_date,end_date\r\n\
               9434765919,CPP,2026-01-05,\r\n\
               9434765918,CPP,2026-01-05,\r\n\
               9990000018,CPX,2026-01-05,\r\n\
               9990000026,LAC,2025-01-05,2024-01-01\r\n";
    let (status, ack, headers) = la.upload("", "text/csv", csv).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["file_code"], "CPF03");
    assert_eq!((ack["accepted"].as_u64(), ack["rejected"].as_u64()), (Some(1), Some(3)));
    let lines: Vec<(u64, &str)> = ack["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, vec![(3, "CPR04"), (4, "CPR07"), (5, "CPR07")]);
    assert_eq!(ack["records"][0]["nhs_number"], "9434765918");
    assert_eq!(plan_count(&server).await, 1);
    let id = ack["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/la/v1/uploads/{id}").as_str());

    // Kept: the LA can read it again, and list it; no one else can.
    let (status, again) = la.get(&format!("/la/v1/uploads/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, ack);
    let (_, listed) = la.get("/la/v1/uploads").await;
    assert_eq!(listed["items"][0]["id"], id);
    assert!(listed["items"][0].get("records").is_none());
    let other = La::new(&server, "la-system", OTHER_LA);
    assert_eq!(other.get(&format!("/la/v1/uploads/{id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(other.get("/la/v1/uploads").await.1["items"], json!([]));
    let social_worker = La::new(&server, "social-worker", TEST_LA);
    assert_eq!(social_worker.get(&format!("/la/v1/uploads/{id}")).await.0, StatusCode::OK);
}

async fn json_uploads_and_every_file_code(server: TestServer) {
    let la = La::new(&server, "la-system", TEST_LA);
    let good = json!({"records": [
        {"nhs_number": "9434765919", "plan_type": "UCPP", "start_date": "2026-06-01", "expected_delivery_date": "2026-12-20"},
        {"nhs_number": "9990000018", "plan_type": "LAC", "start_date": "2020-01-01", "end_date": "2026-01-01", "local_reference": "LAC/7"}
    ]});
    let (status, ack, _) = la.upload("?records=all", "application/json", good.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["file_code"], "CPF02");
    assert_eq!(ack["records"].as_array().unwrap().len(), 2, "records=all lists accepted ones");
    assert_eq!(ack["records"][1]["code"], "CPR06");
    assert_eq!(ack["records"][1]["local_reference"], "LAC/7");

    let none = json!({"records": [{"nhs_number": "123", "plan_type": "CPP", "start_date": "2026-01-01"}]});
    let (status, ack, _) = la.upload("", "application/json", none.to_string()).await;
    assert_eq!((status, ack["file_code"].as_str()), (StatusCode::OK, Some("CPF04")));

    let before = plan_count(&server).await;
    let sneaky = json!({"records": [{"nhs_number": "9990000026", "plan_type": "CPP", "start_date": "2026-01-01", "reason_for_plan": "x"}]});
    let (status, ack, _) = la.upload("", "application/json", sneaky.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ack["file_code"], "CPF01");
    assert!(ack["records"][0]["reason"].as_str().unwrap().contains("reason_for_plan"), "{ack}");
    let extra_column = "nhs_number,plan_type,start_date,diagnosis\n9990000026,CPP,2026-01-01,x\n";
    let (status, ack, _) = la.upload("", "text/csv", extra_column).await;
    assert_eq!((status, ack["file_code"].as_str()), (StatusCode::BAD_REQUEST, Some("CPF01")));
    assert_eq!(plan_count(&server).await, before, "a malformed file changes nothing");
    let (status, kept) = la.get(&format!("/la/v1/uploads/{}", ack["id"].as_str().unwrap())).await;
    assert_eq!((status, kept["file_code"].as_str()), (StatusCode::OK, Some("CPF01")), "and is kept");

    let (status, ack, _) = la.upload("?mode=snapshot", "application/json", json!({"mode": "changes", "records": []}).to_string()).await;
    assert_eq!((status, ack["file_code"].as_str()), (StatusCode::BAD_REQUEST, Some("CPF01")));
}

async fn snapshots_withdraw_what_is_missing_within_their_guard(server: TestServer) {
    let la = La::new(&server, "la-system", TEST_LA);
    let all = numbers(20, 0);
    let (_, ack, _) = la.upload("", "text/csv", csv_of(&all, "CPP")).await;
    assert_eq!(ack["accepted"], 20);
    // 1 of 20 missing: 5%, allowed.
    let (status, ack, _) = la.upload("?mode=snapshot", "text/csv", csv_of(&all[1..], "CPP")).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!((ack["mode"].as_str(), ack["withdrawn"].as_u64()), (Some("snapshot"), Some(1)));
    // 9 of the 19 left missing: refused whole.
    let (status, refused, _) = la.upload("?mode=snapshot", "text/csv", csv_of(&all[10..], "CPP")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused["issue"][0]["diagnostics"].as_str().unwrap().contains("force=true"));
    let (_, listed) = la.get("/la/v1/uploads").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "a refused snapshot is not kept");
    // Forced, it goes through.
    let (status, ack, _) = la.upload("?mode=snapshot&force=true", "text/csv", csv_of(&all[10..], "CPP")).await;
    assert_eq!((status, ack["withdrawn"].as_u64()), (StatusCode::OK, Some(9)));
    // A snapshot with a rejected row withdraws nothing.
    let mut with_typo = csv_of(&all[10..], "CPP");
    with_typo.push_str("not-a-number,CPP,2025-03-01,\n");
    let (_, ack, _) = la.upload("?mode=snapshot&force=true", "text/csv", with_typo).await;
    assert_eq!((ack["file_code"].as_str(), ack["withdrawn"].as_u64()), (Some("CPF03"), Some(0)));
}

async fn a_retried_upload_returns_the_first_acknowledgement(server: TestServer) {
    let la = La::new(&server, "la-system", TEST_LA);
    let csv = csv_of(&numbers(5, 100), "LAC");
    let send = |key: &'static str| {
        la.client
            .post(server.url("/la/v1/uploads"))
            .bearer_auth(&la.token)
            .header("content-type", "text/csv")
            .header("idempotency-key", key)
            .body(csv.clone())
    };
    let first = send("batch-2026-11-25").send().await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let retry = send("batch-2026-11-25").send().await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);
    let (_, listed) = la.get("/la/v1/uploads").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "applied once");
    // Another LA's key space is its own.
    let other = La::new(&server, "la-system", OTHER_LA);
    let response = other
        .client
        .post(server.url("/la/v1/uploads"))
        .bearer_auth(&other.token)
        .header("content-type", "text/csv")
        .header("idempotency-key", "batch-2026-11-25")
        .body(csv.clone())
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("idempotent-replayed").is_none());
    let bad_key = send("has space").send().await.unwrap();
    assert_eq!(bad_key.status(), StatusCode::BAD_REQUEST);
}

async fn limits_formats_and_parameters_are_refused_clearly(server: TestServer) {
    let la = La::new(&server, "la-system", TEST_LA);
    let big = "x".repeat(UPLOAD_LIMIT + 1);
    let (status, outcome, _) = la.upload("", "text/csv", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("4 MiB"), "{outcome}");
    let (status, _, _) = la.upload("", "text/plain", "nhs_number").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, _) = la.upload("?mode=everything", "text/csv", "nhs_number").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = la.upload("?colour=red", "text/csv", "nhs_number").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(la.get("/la/v1/uploads/not-a-uuid").await.0, StatusCode::NOT_FOUND);
    assert_eq!(plan_count(&server).await, 0);
}

async fn an_la_keeps_its_own_numbers_current(server: TestServer) {
    let la = La::new(&server, "social-worker", TEST_LA);
    let put = |body: Value| {
        la.client
            .put(server.url("/la/v1/profile"))
            .bearer_auth(&la.token)
            .json(&body)
    };
    let bad = put(json!({"name": "Camden", "emergency_duty_number": "999", "office_hours_number": "020 7946 0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let text = bad.text().await.unwrap();
    assert!(text.contains("not a UK telephone number"), "{text}");
    let good = put(json!({"name": "Camden", "emergency_duty_number": "020 7946 0999", "office_hours_number": "020 7946 0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    let (_, profile) = la.get("/la/v1/profile").await;
    assert_eq!(profile["emergency_duty_number"], "020 7946 0999");
    let other = La::new(&server, "social-worker", OTHER_LA);
    assert_eq!(other.get("/la/v1/profile").await.1["code"], OTHER_LA);
}

}

/// A server killed mid-upload keeps all of the upload's rows or none.
#[test]
fn a_server_killed_during_a_large_upload_keeps_all_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 150_000;
    let csv = csv_of(&numbers(rows, 200_000), "LAC");
    for delay_ms in [150u64, 600] {
        let data = dir.path().join(format!("data-{delay_ms}"));
        let listen = free_port_address();
        let url = format!("http://{listen}");
        let serve = || {
            let mut command = cpis();
            command
                .args(["serve", "--listen", &listen.to_string(), "--data-dir"])
                .arg(&data)
                .env("CPIS_DEVELOPMENT", "true")
                .env("CPIS_DEVELOPMENT_LA", TEST_LA);
            Running::spawn(&mut command, Box::new(()))
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = serve();
        runtime.block_on(wait_ready(&url));
        let token = persona_token(&data, "la-system");
        let sender = {
            let (url, token, csv) = (url.clone(), token.clone(), csv.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let _ = Client::new()
                        .post(format!("{url}/la/v1/uploads"))
                        .bearer_auth(token)
                        .header("content-type", "text/csv")
                        .body(csv)
                        .send()
                        .await;
                })
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let mut server = server;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        drop(server);
        sender.join().unwrap();

        let restarted = serve();
        runtime.block_on(wait_ready(&url));
        let status: Value = runtime.block_on(async {
            reqwest::get(format!("{url}/api/v1/status"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        let plans = status["plans"].as_u64().unwrap();
        assert!(
            plans == 0 || plans == rows as u64,
            "after a kill at {delay_ms} ms: {plans} of {rows} plans"
        );
        drop(restarted);
    }
}

/// `cpis upload` against a demo server: a summary, the acknowledgement with
/// --out, and exit codes that tell all accepted from some rejected from refused.
#[test]
fn the_upload_command_reports_and_exits_by_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listen = free_port_address();
    let url = format!("http://{listen}");
    let mut command = cpis();
    command
        .args(["serve", "--listen", &listen.to_string(), "--data-dir"])
        .arg(&data)
        .env("CPIS_DEVELOPMENT", "true")
        .env("CPIS_DEVELOPMENT_LA", TEST_LA);
    let _server = Running::spawn(&mut command, Box::new(()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(wait_ready(&url));
    let token = persona_token(&data, "la-system");
    let good = dir.path().join("good.csv");
    std::fs::write(&good, csv_of(&numbers(50, 500), "CPP")).unwrap();
    let mixed = dir.path().join("mixed.csv");
    std::fs::write(
        &mixed,
        "nhs_number,plan_type,start_date\n9434765919,CPP,2026-01-05\n123,CPP,2026-01-05\n",
    )
    .unwrap();
    let malformed = dir.path().join("bad.json");
    std::fs::write(
        &malformed,
        r#"{"records": [{"nhs_number": "9434765919", "name": "x"}]}"#,
    )
    .unwrap();
    let out = dir.path().join("ack.json");
    let run = |file: &std::path::Path, la: &str| {
        cpis()
            .arg("upload")
            .arg(file)
            .args(["--server", &url, "--la", la, "--out"])
            .arg(&out)
            .env("CPIS_UPLOAD_TOKEN", &token)
            .output()
            .unwrap()
    };
    let all = run(&good, TEST_LA);
    assert_eq!(
        all.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    assert!(String::from_utf8_lossy(&all.stderr).contains("50 accepted, 0 rejected"));
    let ack: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(ack["file_code"], "CPF02");
    let some = run(&mixed, TEST_LA);
    assert_eq!(some.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&some.stderr).contains("line 3: CPR04"),
        "{}",
        String::from_utf8_lossy(&some.stderr)
    );
    let refused = run(&malformed, TEST_LA);
    assert_eq!(
        refused.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let wrong_la = run(&good, OTHER_LA);
    assert_eq!(wrong_la.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong_la.stderr).contains("not E08000025"));
}
