//! The web application: its pages over HTTP on both stores (a look from a
//! page is recorded and notified exactly as the API's, fails closed, and
//! every bad input gets its page), and the main journeys in real Chromium
//! against `cpis demo`, with accessibility checks and screenshots.

use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::notifications::Caller;
use crate::support::{
    Running, TEST_LA, TestServer, cpis, free_port_address, install_node_tools, on_both_stores,
    wait_ready,
};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn nhs(n: u32) -> String {
    cpis_store::conformance::test_nhs_number(7_000 + n).digits()
}

/// A search from the page, as `persona` (pages take a bearer token as the
/// API does; a browser's session cookie is covered by the browser test).
async fn search_page(server: &TestServer, persona: &str, number: &str) -> (StatusCode, String) {
    let response = client()
        .post(server.url("/app/search"))
        .bearer_auth(server.token_for(persona, TEST_LA))
        .form(&[("nhs_number", number)])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn feed_len(server: &TestServer) -> usize {
    Caller::new(server).feed(TEST_LA).await.len()
}

/// Gives the test LA an open CPP for each of `numbers`.
async fn upload(server: &TestServer, numbers: &[String]) {
    Caller::new(server).plans(TEST_LA, numbers).await;
}

on_both_stores! {

async fn a_search_from_the_page_is_recorded_and_notified_as_the_api_is(server: TestServer) {
    let child = nhs(1);
    upload(&server, std::slice::from_ref(&child)).await;
    let spaced = format!("{} {} {}", &child[..3], &child[3..6], &child[6..]);
    let (status, page) = search_page(&server, "ed-clinician", &spaced).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"flag-banner\""), "{page}");
    assert!(page.contains("href=\"tel:+44"), "phone numbers are tel: links");
    assert_eq!(feed_len(&server).await, 1, "the LA is notified of the look");

    // A GP's look is silent; the next clinician sees the first one's look.
    let (status, page) = search_page(&server, "gp-clinician", &child).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("recorded as scheduled care"), "{page}");
    assert!(page.contains("Dr Amara Okafor"), "the history lists the earlier unscheduled look");
    assert_eq!(feed_len(&server).await, 1, "a scheduled look is not notified");

    // Both looks are in the privacy officer's report.
    let report: Value = client()
        .get(server.url(&format!("/audit/v1/reports/accesses?nhs_number={child}")))
        .bearer_auth(server.token_for("privacy-officer", TEST_LA))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = report["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{report}");
    assert_eq!(items[0]["unscheduled"], true);
    assert_eq!(items[1]["unscheduled"], false);

    let (status, page) = search_page(&server, "ed-clinician", &nhs(2)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No child protection information"), "{page}");
    assert!(!page.contains("flag-banner"));
}

async fn bad_numbers_get_an_inline_error_and_are_not_recorded(server: TestServer) {
    for (entered, says) in [
        ("", "Enter the NHS number"),
        ("12345", "must be 10 digits"),
        ("943 476 5918", "check digit"),
        ("943476591x", "must be 10 digits"),
    ] {
        let (status, page) = search_page(&server, "ed-clinician", entered).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{entered:?}");
        assert!(page.contains("nhsuk-error-summary") && page.contains(says), "{entered:?}: {page}");
        assert!(page.contains("nhsuk-input--error"), "the field is marked");
    }
    let status: Value = reqwest::get(server.url("/api/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["access_records"], 0, "nothing was recorded: {status}");
}

async fn a_look_from_the_page_that_cannot_be_recorded_shows_nothing(server: TestServer) {
    let child = nhs(3);
    upload(&server, std::slice::from_ref(&child)).await;
    match &server.backend {
        crate::support::BackendHandle::Sqlite(_) => {
            server.backend.execute("CREATE TRIGGER refuse_access BEFORE INSERT ON access_log BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;").await;
        }
        _ => {
            server.backend.execute("CREATE FUNCTION refuse_access() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql; CREATE TRIGGER refuse_access BEFORE INSERT ON access_log FOR EACH ROW EXECUTE FUNCTION refuse_access();").await;
        }
    }
    let (status, page) = search_page(&server, "ed-clinician", &child).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.contains("could not be recorded"), "{page}");
    assert!(!page.contains("flag-banner") && !page.contains("tel:"), "no data leaks: {page}");
}

async fn an_la_sees_its_plans_uploads_and_settings_and_only_its_own(server: TestServer) {
    upload(&server, &[nhs(4), nhs(5)]).await;
    let token = server.token_for("social-worker", TEST_LA);
    let get = |path: &str| {
        client()
            .get(server.url(path))
            .bearer_auth(&token)
            .send()
    };
    let dashboard = get("/app/la").await.unwrap().text().await.unwrap();
    assert!(dashboard.contains("data-testid=\"count-CPP\">2<"), "{dashboard}");
    let search = |number: String| {
        client()
            .post(server.url("/app/la/plans"))
            .bearer_auth(&token)
            .form(&[("nhs_number", number)])
            .send()
    };
    let plans = search(nhs(4)).await.unwrap().text().await.unwrap();
    assert!(plans.contains("1 plans match"), "{plans}");
    let bad = search("12".into()).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // An NHS number in an address is not searched.
    let ignored = get(&format!("/app/la/plans?nhs_number={}", nhs(4))).await.unwrap().text().await.unwrap();
    assert!(ignored.contains("2 plans match"), "{ignored}");
    let uploads = get("/app/la/uploads").await.unwrap().text().await.unwrap();
    let id = uploads
        .split("/app/la/uploads/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let ack = get(&format!("/app/la/uploads/{id}")).await.unwrap();
    assert_eq!(ack.status(), StatusCode::OK);
    // Another LA's social worker cannot open this LA's upload.
    let other = client()
        .get(server.url(&format!("/app/la/uploads/{id}")))
        .bearer_auth(server.token_for("social-worker", crate::support::OTHER_LA))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let missing = get("/app/la/uploads/not-an-id").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Settings: a bad number is refused with its field named, a good one saved.
    let save = |fields: Vec<(&'static str, &'static str)>| {
        client()
            .post(server.url("/app/la/settings"))
            .bearer_auth(&token)
            .form(&fields)
            .send()
    };
    let refused = save(vec![
        ("name", "Camden"),
        ("emergency_duty_number", "call us"),
        ("office_hours_number", "020 7974 4000"),
        ("organisations", "1"),
        ("days", "30"),
    ])
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let text = refused.text().await.unwrap();
    assert!(text.contains("href=\"#emergency-duty-number\"") && text.contains("href=\"#organisations\""), "{text}");
    let saved = save(vec![
        ("name", "Camden"),
        ("emergency_duty_number", "020 7974 4444"),
        ("office_hours_number", "020 7974 4000"),
        ("organisations", "4"),
        ("days", "21"),
    ])
    .await
    .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    let profile: Value = get("/la/v1/profile").await.unwrap().json().await.unwrap();
    assert_eq!(profile["emergency_duty_number"], "020 7974 4444");
    assert_eq!(profile["repeat_attendance"]["organisations"], 4);

    // The webhook form: a plain-http address elsewhere is refused on the page.
    let webhook = client()
        .post(server.url("/app/la/webhook"))
        .bearer_auth(&token)
        .form(&[("url", "http://hooks.example.org/cpis")])
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), StatusCode::BAD_REQUEST);
    assert!(webhook.text().await.unwrap().contains("https"));
}

async fn design_system_assets_are_served_from_the_binary_with_long_caching(server: TestServer) {
    let start = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::OK);
    let page = start.text().await.unwrap();
    let css = page
        .split("href=\"")
        .find_map(|rest| rest.split('"').next().filter(|href| href.ends_with(".css")))
        .unwrap()
        .to_owned();
    assert!(css.starts_with("/assets/nhsuk-"), "{css}");
    if css.starts_with("/assets/nhsuk-none") {
        let why = "the NHS.UK design system was not embedded (npm was unavailable at build time)";
        assert!(
            !std::env::var("CPIS_REQUIRE_ALL").is_ok_and(|v| v == "1"),
            "CPIS_REQUIRE_ALL=1 but {why}"
        );
        eprintln!("notice: {why}");
        return;
    }
    let response = client().get(server.url(&css)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    let body = response.text().await.unwrap();
    assert!(body.contains(".nhsuk-header"));
    assert!(!body.contains("://"), "the CSS fetches nothing from another site");
    let logo = css.replace("nhsuk-frontend.min.css", "images/favicon.svg");
    assert_eq!(client().get(server.url(&logo)).send().await.unwrap().status(), StatusCode::OK);
    let stale = client().get(server.url("/assets/nhsuk-0.0.1/nhsuk-frontend.min.css")).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
}

}

/// Debian's Chromium, or `None` (after a notice) when it is missing; under
/// `CPIS_REQUIRE_ALL=1` that is a failure.
fn browser_tools(node_dir: &Path) -> Option<String> {
    let chromium = std::env::var("CPIS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node = Command::new("node").arg("--version").output().is_ok();
    let ready = Path::new(&chromium).exists() && node && install_node_tools(node_dir);
    if ready {
        return Some(chromium);
    }
    let why = "browser tests need Debian's chromium, Node.js and npm (tests/node is installed with `npm ci`)";
    if std::env::var("CPIS_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("CPIS_REQUIRE_ALL=1 but {why}");
    }
    eprintln!("notice: skipping the browser journeys: {why}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_journeys_work_in_a_real_browser() {
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    let Some(chromium) = browser_tools(&node_dir) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let listen = free_port_address();
    let mut command = cpis();
    command
        .args(["demo", "--listen", &listen.to_string(), "--data-dir"])
        .arg(data.path());
    // The demo loads its population before it serves; it says so when done.
    let _server = Running::start(&mut command, "Stop with Ctrl-C");
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    // Screenshots are kept as the run's artifacts, beside the build.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("browser.mjs")
            .arg(&base)
            .arg(&shots)
            .env("CPIS_CHROMIUM", chromium)
            .current_dir(&node_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser journeys failed:\n{stdout}\n{stderr}"
    );
}
