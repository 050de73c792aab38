//! The verifiable access log: signed checkpoints, inclusion and consistency
//! proofs checked by a verifier written here from RFC 9162's text (not from
//! our code), and tampering with the store caught by verification.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde_json::Value;

use crate::notifications::Caller;
use crate::support::{TEST_LA, TestServer, on_both_stores};

type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    context.finish().as_ref().try_into().unwrap()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// RFC 9162, 2.1.3.2: verifying an inclusion proof.
fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    hash: Hash,
    path: &[Hash],
    root: Hash,
) -> bool {
    if leaf_index >= tree_size {
        return false;
    }
    let (mut fn_, mut sn) = (leaf_index, tree_size - 1);
    let mut r = hash;
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == root
}

/// RFC 9162, 2.1.4.2: verifying a consistency proof.
fn verify_consistency(
    first: u64,
    second: u64,
    first_hash: Hash,
    second_hash: Hash,
    proof: &[Hash],
) -> bool {
    if proof.is_empty() {
        return false;
    }
    let mut path = proof.to_vec();
    if first.is_power_of_two() {
        path.insert(0, first_hash);
    }
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node(c, &fr);
            sr = node(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == first_hash && sr == second_hash && sn == 0
}

fn decode(text: &Value) -> Hash {
    BASE64
        .decode(text.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// The latest checkpoint, its signature checked with the published key:
/// `(size, root)`.
async fn latest(server: &TestServer) -> (u64, Hash) {
    let key: Value = reqwest::get(server.url("/audit/v1/key"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vkey = key["vkey"].as_str().unwrap();
    let (name, rest) = vkey.split_once('+').unwrap();
    let (key_hash, public) = rest.split_once('+').unwrap();
    let public = BASE64.decode(public).unwrap();
    assert_eq!(public[0], 0x01, "an Ed25519 key");
    let response = reqwest::get(server.url("/audit/v1/checkpoints/latest"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let note = response.text().await.unwrap();
    let (body, signature) = note.split_once("\n\n").unwrap();
    let body = format!("{body}\n");
    let signature = signature
        .trim_end()
        .strip_prefix(&format!("\u{2014} {name} "))
        .unwrap();
    let signature = BASE64.decode(signature).unwrap();
    let expected_hash: String = sha256(&[name.as_bytes(), b"\n", &[0x01], &public[1..]])[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(key_hash, expected_hash);
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &public[1..])
        .verify(body.as_bytes(), &signature[4..])
        .expect("the checkpoint's signature verifies");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], name);
    (
        lines[1].parse().unwrap(),
        BASE64.decode(lines[2]).unwrap().try_into().unwrap(),
    )
}

async fn looks(server: &TestServer, caller: &Caller<'_>, children: &[String]) {
    for child in children {
        caller.look("ed-clinician", None, child).await;
    }
    let _ = server;
}

fn children(n: usize, offset: u32) -> Vec<String> {
    (999_600_000 + offset..)
        .filter_map(cpis_domain::NhsNumber::with_check_digit)
        .take(n)
        .map(|number| number.digits())
        .collect()
}

async fn status(server: &TestServer, path: &str) -> StatusCode {
    reqwest::get(server.url(path)).await.unwrap().status()
}

/// A privacy officer's report, as JSON, or CSV when `query` asks for it.
async fn report(server: &TestServer, query: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .get(server.url(&format!("/audit/v1/reports/accesses?{query}")))
        .bearer_auth(server.token("privacy-officer"))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

on_both_stores! {

async fn privacy_officers_see_who_looked_by_child_user_and_organisation(server: TestServer) {
    let caller = Caller::new(&server);
    let kids = children(2, 300);
    caller.plans(TEST_LA, &kids[..1]).await;
    caller.look("ed-clinician", None, &kids[0]).await;
    caller.look("ed-clinician", Some("ZZED001"), &kids[0]).await;
    caller.look("gp-clinician", None, &kids[0]).await;
    caller.look("ed-clinician", None, &kids[1]).await;

    let (status, body) = report(&server, &format!("nhs_number={}", kids[0])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(page["next"], Value::Null);
    assert_eq!(items[0]["unscheduled"], true);
    assert_eq!(items[0]["plans_shown"], 1);
    assert_eq!(items[1]["organisation_code"], "ZZED001");
    assert_eq!(items[2]["unscheduled"], false, "the GP's look is listed here, scheduled");
    let clinician = items[0]["user_id"].as_str().unwrap().to_owned();

    let (_, body) = report(&server, &format!("user={clinician}")).await;
    let by_user: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(by_user["items"].as_array().unwrap().len(), 3, "{body}");
    let (_, body) = report(&server, "organisation=ZZED001").await;
    let by_place: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(by_place["items"].as_array().unwrap().len(), 1, "{body}");

    // A page at a time.
    let mut after = String::new();
    let mut seen = 0;
    loop {
        let (_, body) = report(&server, &format!("user={clinician}&limit=2&after={after}")).await;
        let page: Value = serde_json::from_str(&body).unwrap();
        seen += page["items"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 3);

    // A date range that ends before today finds nothing; CSV has its header.
    let (status, csv) = report(&server, &format!("nhs_number={}&from=2020-01-01&to=2020-12-31&format=csv", kids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.starts_with("at,nhs_number,user_id,user_name,role_code"), "{csv}");
    assert_eq!(csv.lines().count(), 1);
    let (_, csv) = report(&server, &format!("nhs_number={}&format=csv", kids[0])).await;
    assert_eq!(csv.lines().count(), 4, "{csv}");

    for bad in [
        format!("nhs_number={}&user=x", kids[0]),
        "nhs_number=123".to_owned(),
        "organisation=not a code".to_owned(),
        format!("nhs_number={}&from=2026-02-01&to=2026-01-01", kids[0]),
        format!("nhs_number={}&from=yesterday", kids[0]),
        format!("nhs_number={}&limit=0", kids[0]),
        format!("nhs_number={}&after=nonsense", kids[0]),
        format!("nhs_number={}&format=xml", kids[0]),
        "".to_owned(),
    ] {
        assert_eq!(report(&server, &bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Every report run is in the log, and the log verifies.
    server.checkpoint().await;
    let verified = server.verify_log().await;
    assert_eq!(verified.failure, None);
    assert_eq!(verified.leaves, 1 + 4 + 7, "an upload, four looks, seven reports");
}

async fn checkpoints_and_proofs_satisfy_an_independent_verifier(server: TestServer) {
    let caller = Caller::new(&server);
    assert_eq!(status(&server, "/audit/v1/checkpoints/latest").await, StatusCode::NOT_FOUND);
    let kids = children(9, 0);
    caller.plans(TEST_LA, &kids[..2]).await; // an upload is a leaf too
    looks(&server, &caller, &kids[..5]).await;
    server.checkpoint().await;
    let (first, first_root) = latest(&server).await;
    assert_eq!(first, 6);
    looks(&server, &caller, &kids[5..]).await;
    server.checkpoint().await;
    let (size, root) = latest(&server).await;
    assert_eq!(size, 10);

    for leaf in 0..size {
        let proof: Value = reqwest::get(server.url(&format!("/audit/v1/proof/inclusion?leaf={leaf}&size={size}")))
            .await.unwrap().json().await.unwrap();
        let path: Vec<Hash> = proof["hashes"].as_array().unwrap().iter().map(decode).collect();
        assert!(verify_inclusion(leaf, size, decode(&proof["leaf_hash"]), &path, root), "leaf {leaf}");
        assert!(!verify_inclusion(leaf, size, [0; 32], &path, root));
    }
    // A leaf of the older tree, proved against the older head.
    let proof: Value = reqwest::get(server.url(&format!("/audit/v1/proof/inclusion?leaf=3&size={first}")))
        .await.unwrap().json().await.unwrap();
    let path: Vec<Hash> = proof["hashes"].as_array().unwrap().iter().map(decode).collect();
    assert!(verify_inclusion(3, first, decode(&proof["leaf_hash"]), &path, first_root));

    let proof: Value = reqwest::get(server.url(&format!("/audit/v1/proof/consistency?from={first}&to={size}")))
        .await.unwrap().json().await.unwrap();
    let path: Vec<Hash> = proof["hashes"].as_array().unwrap().iter().map(decode).collect();
    assert!(verify_consistency(first, size, first_root, root, &path));
    assert!(!verify_consistency(first, size, [1; 32], root, &path), "a different old head fails");
    for from in 1..size {
        let proof: Value = reqwest::get(server.url(&format!("/audit/v1/proof/consistency?from={from}&to={size}")))
            .await.unwrap().json().await.unwrap();
        assert!(!proof["hashes"].as_array().unwrap().is_empty(), "from {from}");
    }

    for bad in [
        format!("/audit/v1/proof/inclusion?leaf={size}&size={size}"),
        format!("/audit/v1/proof/inclusion?leaf=0&size={}", size + 1),
        "/audit/v1/proof/inclusion?leaf=0".to_owned(),
        "/audit/v1/proof/inclusion?leaf=x&size=1".to_owned(),
        "/audit/v1/proof/consistency?from=0&to=1".to_owned(),
        format!("/audit/v1/proof/consistency?from=3&to={}", size + 1),
        "/audit/v1/proof/consistency?from=5&to=4".to_owned(),
        "/audit/v1/proof/consistency?from=1&to=2&x=1".to_owned(),
    ] {
        assert_eq!(status(&server, &bad).await, StatusCode::BAD_REQUEST, "{bad}");
    }
    let report = server.verify_log().await;
    assert_eq!((report.leaves, report.checkpoints, report.failure), (10, 2, None));
}

async fn records_past_retention_go_and_the_log_still_verifies(server: TestServer) {
    let caller = Caller::new(&server);
    let kids = children(5, 400);
    looks(&server, &caller, &kids[..3]).await;
    server.checkpoint().await;
    let (first, first_root) = latest(&server).await;
    server.advance(time::Duration::days(9 * 365));
    looks(&server, &caller, &kids[3..]).await;
    let removed = server.apply_retention().await;
    assert_eq!(removed.removed_access, 3, "the looks of nine years ago, not today's");
    server.checkpoint().await;
    let (size, root) = latest(&server).await;
    assert_eq!(size, 6, "five looks and the removal");
    let report = server.verify_log().await;
    assert_eq!((report.failure, report.pruned, report.leaves), (None, 3, 6));

    // Proofs hold for removed records' leaves and across the removal.
    let proof: Value = reqwest::get(server.url(&format!("/audit/v1/proof/inclusion?leaf=0&size={size}")))
        .await.unwrap().json().await.unwrap();
    let path: Vec<Hash> = proof["hashes"].as_array().unwrap().iter().map(decode).collect();
    assert!(verify_inclusion(0, size, decode(&proof["leaf_hash"]), &path, root));
    let proof: Value = reqwest::get(server.url(&format!("/audit/v1/proof/consistency?from={first}&to={size}")))
        .await.unwrap().json().await.unwrap();
    let path: Vec<Hash> = proof["hashes"].as_array().unwrap().iter().map(decode).collect();
    assert!(verify_consistency(first, size, first_root, root, &path));

    // A recent record removed is not excused, nor by a retention record
    // slipped into the table outside the log.
    let db = &server.backend;
    db.execute("DELETE FROM access_log WHERE id = (SELECT record_id FROM log_leaf WHERE idx = 4)").await;
    let found = server.verify_log().await.failure.unwrap_or_default();
    assert!(found.contains("leaf 4") && found.contains("deleted"), "{found}");
    db.execute("INSERT INTO retention_log SELECT '01ffffff-ffff-7fff-bfff-ffffffffffff', at, 9000000000000000, plans_withdrawn_before, plans_ended_before, 1, 0 FROM retention_log").await;
    let found = server.verify_log().await.failure.unwrap_or_default();
    assert!(found.contains("leaf 4") && found.contains("deleted"), "a forged removal excuses nothing: {found}");
    db.execute("DELETE FROM retention_log WHERE id = '01ffffff-ffff-7fff-bfff-ffffffffffff'").await;
    // A leaf pointed at an old-looking id, its record deleted: the real
    // removal would then excuse a leaf placed after it, or more records
    // than it removed (which, depends on where each store placed it).
    db.execute("UPDATE log_leaf SET record_id = '00000000-0001-7000-8000-000000000000' WHERE idx = 4").await;
    let found = server.verify_log().await.failure.unwrap_or_default();
    assert!(
        found.contains("placed before records it excuses") || found.contains("more records than it removed"),
        "{found}"
    );
}

async fn verification_catches_every_kind_of_tampering(server: TestServer) {
    let caller = Caller::new(&server);
    let kids = children(8, 100);
    caller.plans(TEST_LA, &kids[..1]).await;
    looks(&server, &caller, &kids).await;
    server.checkpoint().await;
    assert_eq!(server.verify_log().await.failure, None);
    let db = &server.backend;
    let leaf = |index: u32| format!("(SELECT record_id FROM log_leaf WHERE idx = {index})");
    let failure = || async { server.verify_log().await.failure.unwrap_or_default() };

    // A field edited.
    db.execute(&format!("UPDATE access_log SET user_name = user_name || ' (edited)' WHERE id = {}", leaf(3))).await;
    let found = failure().await;
    assert!(found.contains("leaf 3") && found.contains("changed"), "{found}");
    db.execute(&format!("UPDATE access_log SET user_name = substr(user_name, 1, length(user_name) - 9) WHERE id = {}", leaf(3))).await;
    assert_eq!(server.verify_log().await.failure, None, "put back as it was");

    // A record deleted.
    db.execute(&format!("CREATE TABLE kept AS SELECT * FROM access_log WHERE id = {}", leaf(5))).await;
    db.execute(&format!("DELETE FROM access_log WHERE id = {}", leaf(5))).await;
    let found = failure().await;
    assert!(found.contains("leaf 5") && found.contains("deleted"), "{found}");
    db.execute("INSERT INTO access_log SELECT * FROM kept; DROP TABLE kept").await;
    assert_eq!(server.verify_log().await.failure, None);

    // Two records swapped in the log.
    let swap = "UPDATE log_leaf SET idx = -1 WHERE idx = 2; UPDATE log_leaf SET idx = 2 WHERE idx = 4; UPDATE log_leaf SET idx = 4 WHERE idx = -1;";
    db.execute(swap).await;
    let found = failure().await;
    assert!(found.contains("checkpoint 9"), "{found}");
    db.execute(swap).await;
    assert_eq!(server.verify_log().await.failure, None);

    // A record and its leaf removed together.
    db.execute(&format!("CREATE TABLE kept AS SELECT * FROM access_log WHERE id = {}", leaf(6))).await;
    db.execute("CREATE TABLE kept_leaf AS SELECT * FROM log_leaf WHERE idx = 6").await;
    db.execute(&format!("DELETE FROM access_log WHERE id = {}", leaf(6))).await;
    db.execute("DELETE FROM log_leaf WHERE idx = 6").await;
    let found = failure().await;
    assert!(found.contains("leaf 6 is missing"), "{found}");
    db.execute("INSERT INTO access_log SELECT * FROM kept; DROP TABLE kept; INSERT INTO log_leaf SELECT * FROM kept_leaf; DROP TABLE kept_leaf").await;
    assert_eq!(server.verify_log().await.failure, None);

    // The log cut short at its end.
    db.execute(&format!("DELETE FROM access_log WHERE id IN ({}, {})", leaf(7), leaf(8))).await;
    db.execute("DELETE FROM log_leaf WHERE idx >= 7").await;
    let found = failure().await;
    assert!(found.contains("cut short"), "{found}");
}

}

/// `cpis audit verify` on a server's data directory: exit 0 for a whole
/// log, 1 naming the first problem once a record is edited under it.
#[test]
fn the_verify_command_reports_a_whole_log_and_an_edited_one() {
    use crate::support::{
        Running, cpis, demo_command, free_port_address, persona_token, wait_ready,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listen = free_port_address();
    let url = format!("http://{listen}");
    let server = Running::spawn(&mut demo_command(listen, &data), Box::new(()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        wait_ready(&url).await;
        let token = persona_token(&data, "ed-clinician");
        for child in children(3, 200) {
            let response = reqwest::Client::new()
                .get(format!("{url}/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{child}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        // The first checkpoint is signed within a second or so of the first leaf.
        for _ in 0..100 {
            if status_at(&url).await == StatusCode::OK {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status_at(&url).await, StatusCode::OK);
        let note = reqwest::get(format!("{url}/audit/v1/checkpoints/latest"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        std::fs::write(dir.path().join("held.txt"), note).unwrap();
    });
    let verify = || {
        cpis()
            .args(["audit", "verify", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    // A privacy officer checks the log while the server runs and holds the
    // data directory: the check only reads.
    let beside = verify();
    assert_eq!(
        beside.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&beside.stdout),
        String::from_utf8_lossy(&beside.stderr)
    );
    drop(server);
    let whole = verify();
    let said = String::from_utf8_lossy(&whole.stdout).into_owned();
    assert_eq!(
        whole.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    assert!(said.contains("is whole"), "{said}");

    // The last looks removed with their leaves and every checkpoint covering them:
    // only a checkpoint kept outside can tell.
    let conn = rusqlite::Connection::open(data.join("cpis.db")).unwrap();
    conn.execute_batch(
        "DELETE FROM access_log WHERE id IN (SELECT record_id FROM log_leaf WHERE idx >= 2);
         DELETE FROM log_leaf WHERE idx >= 2;
         DELETE FROM log_checkpoint WHERE size >= 3;",
    )
    .unwrap();
    let cut = verify();
    assert_eq!(
        cut.status.code(),
        Some(0),
        "nothing left in the store shows it: {}",
        String::from_utf8_lossy(&cut.stdout)
    );
    let held = cpis()
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .arg("--checkpoint")
        .arg(dir.path().join("held.txt"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&held.stdout).into_owned();
    assert_eq!(held.status.code(), Some(1), "{said}");
    assert!(
        said.contains("cut short") && said.contains("held outside"),
        "{said}"
    );

    conn.execute(
        "UPDATE access_log SET organisation_name = 'Somewhere Else' WHERE id = (SELECT record_id FROM log_leaf WHERE idx = 1)",
        [],
    )
    .unwrap();
    drop(conn);
    let edited = verify();
    let said = String::from_utf8_lossy(&edited.stdout).into_owned();
    assert_eq!(edited.status.code(), Some(1), "{said}");
    assert!(
        said.contains("NOT whole") && said.contains("leaf 1"),
        "{said}"
    );
}

/// `cpis audit verify` changes nothing: where there is no database it
/// makes none, and a database of an older schema it reads not at all
/// rather than migrate it.
#[test]
fn the_verify_command_neither_creates_nor_migrates_a_database() {
    use crate::support::cpis;
    let dir = tempfile::tempdir().unwrap();
    let key = "cpis-test+0a2b3c4d+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
    let verify = || {
        cpis()
            .args(["audit", "verify", "--key", key, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let none = verify();
    let said = String::from_utf8_lossy(&none.stderr).into_owned();
    assert_eq!(none.status.code(), Some(2), "{said}");
    assert!(said.contains("no database"), "{said}");
    assert!(!dir.path().join("cpis.db").exists());

    let conn = rusqlite::Connection::open(dir.path().join("cpis.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); PRAGMA user_version = 3;",
    )
    .unwrap();
    let old = verify();
    let said = String::from_utf8_lossy(&old.stderr).into_owned();
    assert_eq!(old.status.code(), Some(2), "{said}");
    assert!(said.contains("schema version 3"), "{said}");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

async fn status_at(url: &str) -> StatusCode {
    reqwest::get(format!("{url}/audit/v1/checkpoints/latest"))
        .await
        .unwrap()
        .status()
}
