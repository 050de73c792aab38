//! The binary as an operator runs it: start-up errors, the demo, shutdown.

use crate::support::{Running, address_in, cpis, fails_to_start, free_port_address, write_file};

fn assert_one_clear_sentence(code: Option<i32>, stderr: &str, expected: &str) {
    assert_eq!(code, Some(2), "exit code; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr:?}");
    assert!(lines[0].contains(expected), "{stderr:?} lacks {expected:?}");
}

#[test]
fn an_unknown_configuration_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "cpis.toml",
        "listen = \"127.0.0.1:0\"\ndatabase = \"x\"\n",
    );
    let (code, stderr) = fails_to_start(
        cpis()
            .env("CPIS_DEVELOPMENT", "true")
            .arg("serve")
            .arg("--config")
            .arg(&config),
    );
    assert_one_clear_sentence(code, &stderr, "invalid at line 2: unknown field `database`");
}

#[test]
fn an_unusable_data_directory_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = write_file(dir.path(), "plain-file", "");
    let (code, stderr) = fails_to_start(
        cpis()
            .env("CPIS_DEVELOPMENT", "true")
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(not_a_dir.join("data")),
    );
    assert_one_clear_sentence(code, &stderr, "cannot use the data directory");
}

#[test]
fn a_port_in_use_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = fails_to_start(
        cpis()
            .env("CPIS_DEVELOPMENT", "true")
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(dir.path()),
    );
    assert_one_clear_sentence(code, &stderr, "the address is already in use");
}

#[test]
fn a_typo_in_an_environment_variable_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = fails_to_start(
        cpis()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("CPIS_DATA_DIRECTORY", "/tmp/x"),
    );
    assert_one_clear_sentence(code, &stderr, "CPIS_DATA_DIRECTORY is not one cpis knows");
}

#[test]
fn the_demo_serves_synthetic_data_reuses_it_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let demo = |listen: &str| {
        let mut command = cpis();
        command
            .args(["demo", "--seed", "3", "--listen", listen, "--data-dir"])
            .arg(&data_dir);
        command
    };
    // Started with a soft limit of 1,024 open files, which it raises.
    let plain = demo("127.0.0.1:0");
    let mut lowered = std::process::Command::new("sh");
    lowered
        .arg("-c")
        .arg("ulimit -Sn 1024 && exec \"$0\" \"$@\"")
        .arg(plain.get_program())
        .args(plain.get_args());
    let first = Running::start(&mut lowered, "Stop with Ctrl-C");
    let ready_line = first
        .stdout_lines
        .iter()
        .find(|line| line.contains("is ready at"))
        .unwrap();
    assert!(ready_line.contains("loaded"), "{ready_line}");
    let url = format!("http://{}", address_in(ready_line));
    let status: serde_json::Value = reqwest::blocking_get_json(&format!("{url}/api/v1/status"));
    assert_eq!(status["local_authorities"], 153);
    assert!(status["plans"].as_u64().unwrap() >= 100_000, "{status}");
    assert!(status["organisations"].as_u64().unwrap() >= 200, "{status}");
    let output = first.stdout_lines.join("\n");
    assert!(output.contains("999 "), "examples are printed: {output}");
    // The kernel backs none of the server's memory with huge pages
    // (`cpis::without_huge_pages`), and it may open as many files as its
    // hard limit allows (`cpis::with_most_open_files`).
    if cfg!(target_os = "linux") {
        let process =
            std::fs::read_to_string(format!("/proc/{}/status", first.child.id())).unwrap();
        assert!(
            process.lines().any(|line| line == "THP_enabled:\t0"),
            "{process}"
        );
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", first.child.id())).unwrap();
        let open_files: Vec<&str> = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .unwrap()
            .split_whitespace()
            .skip(3)
            .take(2)
            .collect();
        assert_eq!(
            open_files[0], open_files[1],
            "soft as high as hard: {limits}"
        );
    }

    // cpis token prints a persona's bearer token on its last line.
    let token = cpis()
        .args(["token", "--persona", "ed-clinician", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let stdout = String::from_utf8(token.stdout).unwrap();
    let bearer = stdout.lines().last().unwrap().to_owned();
    let me = reqwest::blocking_get_json_with_token(&format!("{url}/api/v1/me"), &bearer);
    assert_eq!(me["principal"]["display_name"], "Dr Amara Okafor", "{me}");
    // A look is a leaf of the access log, and the running server signs a
    // checkpoint covering it by itself (`checkpoint_forever`, once a second).
    // The first example printed, "999 123 4567  what it shows".
    let number: String = output
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("999 "))
        .unwrap()
        .chars()
        .take(12)
        .filter(char::is_ascii_digit)
        .collect();
    let bundle = reqwest::blocking_get_json_with_token(
        &format!(
            "{url}/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{number}"
        ),
        &bearer,
    );
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let note = loop {
        let (status, note) =
            reqwest::blocking_get_text(&format!("{url}/audit/v1/checkpoints/latest"));
        if status == 200 {
            break note;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint signed: {status} {note}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert!(size >= 1, "{note}");
    let (code, stderr) = fails_to_start(
        cpis()
            .args(["token", "--persona", "nobody", "--data-dir"])
            .arg(&data_dir),
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("choose one of ed-clinician"), "{stderr}");
    // A second demo on the same directory is refused while the first runs.
    let (code, stderr) = fails_to_start(&mut demo(&free_port_address().to_string()));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("another cpis is already using"), "{stderr}");
    assert_eq!(first.terminate(), Some(0), "SIGTERM stops the demo cleanly");

    let again = Running::start(&mut demo("127.0.0.1:0"), "Stop with Ctrl-C");
    let ready_again = again
        .stdout_lines
        .iter()
        .find(|line| line.contains("is ready at"))
        .unwrap();
    assert!(ready_again.contains("reused"), "{ready_again}");
    assert_eq!(
        again.stdout_lines[again.stdout_lines.len() - 12..],
        first_examples_tail(&output),
        "the same examples are printed again"
    );
}

fn first_examples_tail(output: &str) -> Vec<String> {
    let lines: Vec<String> = output.lines().map(str::to_owned).collect();
    lines[lines.len() - 12..].to_vec()
}

/// A tiny blocking GET, so the CLI tests need no async runtime of their own.
mod reqwest {
    pub fn blocking_get_json(url: &str) -> serde_json::Value {
        get(url, None)
    }

    pub fn blocking_get_json_with_token(url: &str, token: &str) -> serde_json::Value {
        get(url, Some(token))
    }

    /// The status and text of a GET without credentials.
    pub fn blocking_get_text(url: &str) -> (u16, String) {
        runtime().block_on(async {
            let response = client().get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A demo that stops answering fails the test, rather than holding it
    /// (and CI) until something else gives up.
    fn client() -> ::reqwest::Client {
        ::reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn get(url: &str, token: Option<&str>) -> serde_json::Value {
        runtime().block_on(async {
            let mut request = client().get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap().json().await.unwrap()
        })
    }
}
