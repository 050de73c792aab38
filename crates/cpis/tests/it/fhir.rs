//! The clinician's FHIR R4 query: CareTeam and AuditEvent searches, the
//! visibility rules end to end, the access history, notifications written
//! with the look, every error, fail-closed recording, and the JSON checked by
//! an independent FHIR implementation.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::support::{OTHER_LA, TEST_LA, TestServer, on_both_stores, validate_fhir};

const SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn days_ago(days: i64) -> String {
    cpis_domain::format_iso_date(
        cpis_domain::uk_date(OffsetDateTime::now_utc()) - Duration::days(days),
    )
}

/// Uploads `rows` (CSV lines after the header) as `la`'s system.
async fn upload(server: &TestServer, la: &str, rows: &[String]) {
    let mut csv = String::from(
        "nhs_number,plan_type,start_date,end_date,delete_date,expected_delivery_date\n",
    );
    for row in rows {
        csv.push_str(row);
        csv.push('\n');
    }
    let ack: Value = Client::new()
        .post(server.url("/la/v1/uploads"))
        .bearer_auth(server.token_for("la-system", la))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack["file_code"], "CPF02", "{ack}");
}

async fn search(
    server: &TestServer,
    resource: &str,
    token: &str,
    nhs: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = Client::new()
        .get(server.url(&format!(
            "/fhir/R4/{resource}?patient:identifier={SYSTEM}%7C{nhs}"
        )))
        .bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

fn nhs(n: u32) -> String {
    cpis_store::conformance::test_nhs_number(5_000 + n).digits()
}

async fn pending(server: &TestServer) -> u64 {
    let status: Value = reqwest::get(server.url("/api/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["outbox_pending"].as_u64().unwrap()
}

on_both_stores! {

async fn care_teams_show_visible_plans_only(server: TestServer) {
    let rows = vec![
        format!("{},CPP,{},,,", nhs(1), days_ago(100)),
        format!("{},LAC,{},{},,", nhs(2), days_ago(900), days_ago(365)),
        format!("{},LAC,{},{},,", nhs(3), days_ago(900), days_ago(366)),
        format!("{},CPP,{},,{},", nhs(4), days_ago(100), days_ago(0)),
        format!("{},UCPP,{},,,{}", nhs(5), days_ago(200), days_ago(28)),
        format!("{},UCPP,{},,,{}", nhs(6), days_ago(200), days_ago(29)),
        format!("{},UCPP,{},,,", nhs(7), days_ago(200)),
        format!("{},CPP,{},,,", nhs(8), days_ago(10)),
    ];
    upload(&server, TEST_LA, &rows).await;
    upload(&server, OTHER_LA, &[format!("{},LAC,{},,,", nhs(8), days_ago(5))]).await;
    let token = server.token("ed-clinician");
    let expect = [(1, 1), (2, 1), (3, 0), (4, 0), (5, 1), (6, 0), (7, 1), (8, 2), (9, 0)];
    let mut documents = Vec::new();
    for (n, total) in expect {
        let (status, bundle, headers) = search(&server, "CareTeam", &token, &nhs(n), &[]).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        assert_eq!(headers["content-type"], "application/fhir+json");
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "searchset");
        assert_eq!(bundle["total"], total, "NHS number {n}: {bundle}");
        assert_eq!(bundle["entry"].as_array().unwrap().len(), total);
        documents.push(bundle);
    }
    // The found child: the plan type's SNOMED code, dates, the LA and both numbers told apart.
    let team = &documents[0]["entry"][0]["resource"];
    assert_eq!(team["resourceType"], "CareTeam");
    assert_eq!(team["status"], "active");
    assert_eq!(team["category"][0]["coding"][0]["system"], "http://snomed.info/sct");
    assert_eq!(team["category"][0]["coding"][0]["code"], "342191000000101");
    assert_eq!(team["period"]["start"], days_ago(100));
    assert_eq!(team["subject"]["identifier"], json!({"system": SYSTEM, "value": nhs(1)}));
    assert_eq!(team["name"], "Camden");
    assert_eq!(team["managingOrganization"][0]["display"], "Camden");
    assert_eq!(team["telecom"].as_array().unwrap().len(), 2);
    let organisation = &team["contained"][0];
    assert_eq!(organisation["identifier"][0]["value"], TEST_LA);
    let purposes: Vec<&str> = organisation["contact"].as_array().unwrap().iter().map(|c| c["purpose"]["text"].as_str().unwrap()).collect();
    assert!(purposes[0].starts_with("Emergency duty team") && purposes[1] == "Office hours", "{purposes:?}");
    // Ended within the year: shown, inactive, with its end date.
    let ended = &documents[1]["entry"][0]["resource"];
    assert_eq!((ended["status"].as_str(), ended["period"]["end"].as_str()), (Some("inactive"), Some(days_ago(365).as_str())));
    assert_eq!(documents[1]["entry"][0]["resource"]["category"][0]["coding"][0]["code"], "764841000000100");
    assert_eq!(documents[4]["entry"][0]["resource"]["category"][0]["coding"][0]["code"], "818901000000100");
    // Several LAs for one child.
    let names: Vec<&str> = documents[7]["entry"].as_array().unwrap().iter().map(|e| e["resource"]["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"Camden") && names.contains(&"Birmingham"), "{names:?}");

    // An independent FHIR R4 implementation agrees the JSON is valid.
    let metadata: Value = Client::new()
        .get(server.url("/fhir/R4/metadata"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, audit, _) = search(&server, "AuditEvent", &token, &nhs(1), &[]).await;
    documents.push(metadata);
    documents.push(audit);
    if let Some(results) = validate_fhir(&documents) {
        for (result, document) in results.iter().zip(&documents) {
            assert_eq!(result["valid"], true, "{result}\\n{document}");
        }
    }
}

async fn looks_are_listed_notified_or_silent_as_the_rules_say(server: TestServer) {
    // Both LAs take pushed notifications, so that each item counts as pending.
    for la in [TEST_LA, OTHER_LA] {
        let response = reqwest::Client::new()
            .put(server.url("/la/v1/webhook"))
            .bearer_auth(server.token_for("la-system", la))
            .json(&json!({"url": format!("https://{la}.example/cpis")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let child = nhs(20);
    upload(&server, TEST_LA, &[format!("{child},CPP,{},,,", days_ago(30))]).await;
    upload(&server, OTHER_LA, &[format!("{child},LAC,{},,,", days_ago(3))]).await;
    let clinician = server.token("ed-clinician");
    let before = pending(&server).await;
    // An unscheduled look notifies each owning LA once.
    search(&server, "CareTeam", &clinician, &child, &[]).await;
    assert_eq!(pending(&server).await, before + 2);
    // A look marked scheduled, and a GP's (B0170 only), notify no one.
    search(&server, "CareTeam", &clinician, &child, &[("IsUnscheduledAccessEvent", "false")]).await;
    search(&server, "CareTeam", &server.token("gp-clinician"), &child, &[]).await;
    // A child with no visible plan notifies no one.
    search(&server, "CareTeam", &clinician, &nhs(21), &[]).await;
    assert_eq!(pending(&server).await, before + 2);
    // The same clinician again within 24 hours: listed once; scheduled looks not at all.
    search(&server, "CareTeam", &clinician, &child, &[]).await;
    let (status, history, _) = search(&server, "AuditEvent", &clinician, &child, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["total"], 1, "{history}");
    let event = &history["entry"][0]["resource"];
    assert_eq!(event["agent"][0]["who"]["display"], "Dr Amara Okafor");
    assert_eq!(event["agent"][0]["role"][0]["coding"][0]["code"], "R8000");
    assert_eq!(event["source"]["observer"]["display"], "Amberfield General Hospital Emergency Department");
    assert_eq!(event["entity"][0]["what"]["identifier"]["value"], child);
    // Thirty different clinicians: the 25 most recent are listed, newest first.
    for i in 0..30 {
        let mut claims = server.persona_claims("ed-clinician", TEST_LA);
        claims["nhsid_useruid"] = json!(format!("5550000{i:05}"));
        claims["name"] = json!(format!("Dr Number {i}"));
        search(&server, "CareTeam", &server.sign(&claims), &child, &[]).await;
    }
    let (_, history, _) = search(&server, "AuditEvent", &clinician, &child, &[]).await;
    assert_eq!(history["total"], 25);
    assert_eq!(history["entry"][0]["resource"]["agent"][0]["name"], "Dr Number 29");
}

async fn every_error_is_an_operation_outcome_with_its_code(server: TestServer) {
    let client = Client::new();
    let token = server.token("ed-clinician");
    let get = |query: &str| client.get(server.url(&format!("/fhir/R4/CareTeam{query}"))).bearer_auth(&token);
    let cases = [
        ("", "INVALID_SEARCH_DATA"),
        (&*format!("?patient:identifier={SYSTEM}%7C9434765918"), "INVALID_SEARCH_DATA"),
        ("?patient:identifier=9434765919", "INVALID_SEARCH_DATA"),
        ("?patient:identifier=https://example.org/id%7C9434765919", "INVALID_SEARCH_DATA"),
        (&*format!("?patient:identifier={SYSTEM}%7C9434765919&name=Smith"), "PRECONDITION_FAILED"),
        (&*format!("?patient:identifier={SYSTEM}%7C9434765919&_format=xml"), "PRECONDITION_FAILED"),
    ];
    for (query, code) in cases {
        let response = get(query).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.headers()["content-type"], "application/fhir+json");
        let outcome: Value = response.json().await.unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["details"]["coding"][0]["code"], code, "{query}: {outcome}");
    }
    let ok = get(&format!("?patient:identifier={SYSTEM}%7C943%20476%205919&_format=json")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "spaces in the NHS number and _format=json are fine");
    let header = get(&format!("?patient:identifier={SYSTEM}%7C9434765919"))
        .header("IsUnscheduledAccessEvent", "maybe")
        .send()
        .await
        .unwrap();
    let outcome: Value = header.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["details"]["coding"][0]["code"], "PRECONDITION_FAILED");
    let clerk = client
        .get(server.url(&format!("/fhir/R4/CareTeam?patient:identifier={SYSTEM}%7C9434765919")))
        .bearer_auth(server.token("ed-clerk"))
        .send()
        .await
        .unwrap();
    assert_eq!(clerk.status(), StatusCode::FORBIDDEN);
    let outcome: Value = clerk.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["details"]["coding"][0]["code"], "ACCESS_DENIED");
    let anonymous = client
        .get(server.url(&format!("/fhir/R4/CareTeam?patient:identifier={SYSTEM}%7C9434765919")))
        .header("X-Request-ID", "pas-42")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert_eq!(anonymous.headers()["x-request-id"], "pas-42");
}

async fn a_look_that_cannot_be_recorded_shows_nothing(server: TestServer) {
    let child = nhs(40);
    upload(&server, TEST_LA, &[format!("{child},CPP,{},,,", days_ago(30))]).await;
    let token = server.token("ed-clinician");
    let (status, _, _) = search(&server, "CareTeam", &token, &child, &[]).await;
    assert_eq!(status, StatusCode::OK);
    // Make the access log refuse every write, under the service.
    match &server.backend {
        crate::support::BackendHandle::Sqlite(_) => {
            server.backend.execute("CREATE TRIGGER refuse_access BEFORE INSERT ON access_log BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;").await;
        }
        _ => {
            server.backend.execute("CREATE FUNCTION refuse_access() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql; CREATE TRIGGER refuse_access BEFORE INSERT ON access_log FOR EACH ROW EXECUTE FUNCTION refuse_access();").await;
        }
    }
    let response = Client::new()
        .get(server.url(&format!(
            "/fhir/R4/CareTeam?patient:identifier={SYSTEM}%7C{child}"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.text().await.unwrap();
    assert!(body.contains("OperationOutcome") && body.contains("could not be recorded"), "{body}");
    assert!(!body.contains("CareTeam") && !body.contains(&child) && !body.contains("Camden"), "no data leaks: {body}");
}

}
