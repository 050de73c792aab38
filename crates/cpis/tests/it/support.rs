//! Helpers shared by the integration tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use std::any::Any;
use std::sync::Mutex;

use cpis_core::identity::development_identity;
use cpis_core::{Clock, Cpis};
use cpis_domain::LaCode;
use cpis_postgres::testing::TestSchema;
use cpis_sqlite::SqliteStore;
use cpis_store::Store;
use tokio::sync::oneshot;

/// Raw access to a test server's database, for tests that must break it.
#[derive(Debug, Clone)]
pub enum BackendHandle {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
    Unknown,
}

impl BackendHandle {
    /// Runs SQL straight on the database, under the service.
    pub async fn execute(&self, sql: &str) {
        match self {
            BackendHandle::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            BackendHandle::Postgres { url, schema } => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("SET search_path TO {schema}; {sql}"))
                    .await
                    .unwrap();
            }
            BackendHandle::Unknown => panic!("this test server's database is not reachable"),
        }
    }
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Signs any claims with the server's own key, as its issuer.
type Signer = Box<dyn Fn(&serde_json::Value) -> String + Send + Sync>;

/// One step of the server's delivery worker, as a named node.
type Stepper = Box<
    dyn Fn(&str) -> futures_util::future::BoxFuture<'static, cpis_core::notify::DeliveryReport>
        + Send
        + Sync,
>;

/// Signs a checkpoint now (if the log grew); verifies the whole log.
type Checkpointer = Box<dyn Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;
type Retainer = Box<
    dyn Fn() -> futures_util::future::BoxFuture<'static, cpis_store::log::RetentionRecord>
        + Send
        + Sync,
>;
type Verifier = Box<
    dyn Fn() -> futures_util::future::BoxFuture<'static, cpis_core::audit::VerifyReport>
        + Send
        + Sync,
>;

/// How long one webhook POST may take in tests, so a slow receiver is
/// found out quickly.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);

/// The LA of the LA personas in tests, and another LA for cross-LA attempts.
pub const TEST_LA: &str = "E09000007";
pub const OTHER_LA: &str = "E08000025";

/// The upload limit of test servers, small enough to test the 413.
pub const UPLOAD_LIMIT: usize = 4 * 1024 * 1024;

/// A server started in this process on a fresh store holding the reference
/// data and the synthetic care settings, with the development issuer on.
pub struct TestServer {
    pub url: String,
    /// Where the store's data is, for tests that reach under the service.
    pub backend: BackendHandle,
    /// The server's own issuer URL and audience.
    pub issuer: String,
    pub endpoints: Vec<cpis_http::Endpoint>,
    sign: Signer,
    step: Stepper,
    checkpoint: Checkpointer,
    verify: Verifier,
    retain: Retainer,
    /// How far the server's clock is ahead of the wall clock, in seconds.
    ahead: Arc<std::sync::atomic::AtomicI64>,
    stop: Option<oneshot::Sender<()>>,
    _guard: Box<dyn Any + Send>,
}

impl TestServer {
    /// A server on a fresh store of `backend`, or `None` when PostgreSQL
    /// tests are skipped (the reason is printed).
    pub async fn start(backend: Backend) -> Option<TestServer> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStore::open(dir.path()).unwrap();
                let handle = BackendHandle::Sqlite(store.path().to_owned());
                let mut server = Self::with_store(store, Box::new(dir)).await;
                server.backend = handle;
                Some(server)
            }
            Backend::Postgres => {
                let schema = TestSchema::new("the cpis integration tests")?;
                let store = schema.store().await;
                let handle = BackendHandle::Postgres {
                    url: schema.url.clone(),
                    schema: schema.name.clone(),
                };
                let mut server = Self::with_store(store, Box::new(schema)).await;
                server.backend = handle;
                Some(server)
            }
        }
    }

    /// A server on `store`, holding `guard` for as long as it runs.
    pub async fn with_store<S: Store>(store: S, guard: Box<dyn Any + Send>) -> TestServer {
        let listener = cpis::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let identity = development_identity(&url, LaCode::parse(TEST_LA).unwrap())
            .await
            .unwrap();
        Self::serve(listener, url, store, identity, guard).await
    }

    async fn serve<S: Store>(
        listener: tokio::net::TcpListener,
        url: String,
        store: S,
        identity: cpis_core::identity::Identity,
        guard: Box<dyn Any + Send>,
    ) -> TestServer {
        // The server's time runs with the wall clock, moved on by `advance`.
        let ahead = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let clock = {
            let ahead = ahead.clone();
            Clock::from_fn(move || {
                time::OffsetDateTime::now_utc()
                    + time::Duration::seconds(ahead.load(std::sync::atomic::Ordering::SeqCst))
            })
        };
        let app = Arc::new(
            Cpis::new(Arc::new(store), clock, identity)
                .with_limits(cpis_core::Limits {
                    upload_bytes: UPLOAD_LIMIT,
                    ..cpis_core::Limits::default()
                })
                .with_log(
                    cpis_core::audit::LogSigner::generate("cpis.test/log").unwrap(),
                    cpis_core::audit::CheckpointPolicy {
                        // Only when a test asks: checkpoints fall where it wants them.
                        every_leaves: u64::MAX,
                        every: time::Duration::days(365_000),
                    },
                )
                .with_notifications(cpis_core::notify::NotificationSettings {
                    attempt_timeout: ATTEMPT_TIMEOUT,
                    allow_loopback_http: true,
                    // Small, so that two workers share a queue between them.
                    batch: 8,
                    ..Default::default()
                }),
        );
        app.seed_reference_data().await.unwrap();
        app.store()
            .put_organisations(cpis_core::reference::synthetic_organisations().unwrap())
            .await
            .unwrap();
        let key = app.identity().signing_key().clone();
        let sign: Signer = Box::new(move |claims| key.sign(claims).unwrap());
        let endpoints = cpis_http::endpoints(app.clone());
        let step: Stepper = {
            let app = app.clone();
            Box::new(move |node| {
                let app = app.clone();
                let deliverer =
                    cpis_core::notify::Deliverer::new(node, ATTEMPT_TIMEOUT, true).unwrap();
                Box::pin(async move { app.deliver_step(&deliverer).await.unwrap() })
            })
        };
        let checkpoint: Checkpointer = {
            let app = app.clone();
            Box::new(move || {
                let app = app.clone();
                Box::pin(async move {
                    let (signer, policy) = app.log().unwrap();
                    app.make_checkpoint(&signer, policy, true).await.unwrap();
                })
            })
        };
        let retain: Retainer = {
            let app = app.clone();
            Box::new(move || {
                let app = app.clone();
                Box::pin(async move { app.apply_retention().await.unwrap() })
            })
        };
        let verify: Verifier = {
            let app = app.clone();
            Box::new(move || {
                let app = app.clone();
                Box::pin(async move {
                    let (signer, _) = app.log().unwrap();
                    app.verify_log(&signer.public()).await.unwrap()
                })
            })
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            // No delivery worker or checkpoints: tests take those steps themselves.
            cpis::serve_with(
                listener,
                app,
                async {
                    let _ = stopped.await;
                },
                false,
            )
            .await
            .unwrap();
        });
        TestServer {
            issuer: url.clone(),
            backend: BackendHandle::Unknown,
            url,
            endpoints,
            sign,
            step,
            checkpoint,
            verify,
            retain,
            ahead,
            stop: Some(stop),
            _guard: guard,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// One step of the delivery worker, as node `node`.
    pub async fn deliver_step(&self, node: &str) -> cpis_core::notify::DeliveryReport {
        (self.step)(node).await
    }

    /// Signs a checkpoint of the access log now, if it grew.
    pub async fn checkpoint(&self) {
        (self.checkpoint)().await
    }

    /// Removes what the retention rules no longer keep, now.
    pub async fn apply_retention(&self) -> cpis_store::log::RetentionRecord {
        (self.retain)().await
    }

    /// Checks the whole access log, as `cpis audit verify` does.
    pub async fn verify_log(&self) -> cpis_core::audit::VerifyReport {
        (self.verify)().await
    }

    /// Moves the server's clock on.
    pub fn advance(&self, by: time::Duration) {
        self.ahead
            .fetch_add(by.whole_seconds(), std::sync::atomic::Ordering::SeqCst);
    }

    /// A bearer token for a development persona (LA personas of [`TEST_LA`]).
    pub fn token(&self, persona: &str) -> String {
        self.token_for(persona, TEST_LA)
    }

    /// A bearer token for a development persona of `la`.
    pub fn token_for(&self, persona: &str, la: &str) -> String {
        self.sign(&self.persona_claims(persona, la))
    }

    /// The claims the development issuer gives a persona, to alter in tests.
    pub fn persona_claims(&self, persona: &str, la: &str) -> serde_json::Value {
        let found = cpis_auth::personas(LaCode::parse(la).unwrap())
            .into_iter()
            .find(|known| known.name == persona)
            .unwrap_or_else(|| panic!("no persona {persona}"));
        let now = time::OffsetDateTime::now_utc().unix_timestamp()
            + self.ahead.load(std::sync::atomic::Ordering::SeqCst);
        let mut claims = if found.la_system {
            serde_json::json!({
                "sub": found.user_id, "name": found.display_name,
                "cpis_kind": "la_system", "cpis_la": found.organisation,
            })
        } else {
            serde_json::json!({
                "sub": found.user_id, "nhsid_useruid": found.user_id, "name": found.display_name,
                "selected_roleid": "r1",
                "nhsid_nrbac_roles": [{
                    "person_roleid": "r1", "org_code": found.organisation,
                    "role_name": found.role_name, "role_code": found.role_code,
                    "activity_codes": found.activities,
                }],
            })
        };
        claims["iss"] = serde_json::json!(self.issuer);
        claims["aud"] = serde_json::json!("cpis");
        claims["iat"] = serde_json::json!(now);
        claims["exp"] = serde_json::json!(now + 3600);
        claims
    }

    /// Signs `claims` with the server's own key.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        (self.sign)(claims)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Declares each test twice, `sqlite` and `postgres`, in a module named after
/// it; the PostgreSQL run is skipped (with a notice) where no test database is set.
macro_rules! on_both_stores {
    ($(async fn $name:ident($server:ident: TestServer) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                use crate::support::{Backend, TestServer};

                async fn body($server: TestServer) $body

                #[tokio::test]
                async fn sqlite() {
                    body(TestServer::start(Backend::Sqlite).await.unwrap()).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(server) = TestServer::start(Backend::Postgres).await {
                        body(server).await;
                    }
                }
            }
        )*
    };
}
pub(crate) use on_both_stores;

/// A TCP forwarder that a test can cut and restore, to play a database that
/// goes away and comes back.
pub struct TcpProxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = TcpProxy {
            addr: listener.local_addr().unwrap(),
            target,
            tasks: Arc::default(),
        };
        proxy.accept(listener);
        proxy
    }

    fn accept(&self, listener: tokio::net::TcpListener) {
        let (target, tasks) = (self.target, self.tasks.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let forwarding = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(forwarding.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accepting.abort_handle());
    }

    /// Drops every connection and refuses new ones.
    pub async fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Accepts connections again on the same address.
    pub async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.accept(listener);
    }
}

/// The `cpis` binary built for these tests, with no `CPIS_` variables from
/// the test environment leaking in.
pub fn cpis() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cpis"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CPIS_") {
            command.env_remove(key);
        }
    }
    command.env("CPIS_LOG", "error");
    command
}

/// `cpis demo` for the LA personas of [`TEST_LA`], on `listen` with its data
/// in `data`: a server with registered care settings, as `cpis serve` runs.
pub fn demo_command(listen: SocketAddr, data: &Path) -> Command {
    let mut command = cpis();
    command
        .args([
            "demo",
            "--la",
            TEST_LA,
            "--listen",
            &listen.to_string(),
            "--data-dir",
        ])
        .arg(data);
    command
}

/// Runs `cpis` to completion, expecting it to fail at start-up; returns its
/// exit code and standard error.
pub fn fails_to_start(command: &mut Command) -> (Option<i32>, String) {
    let output = command.stdin(Stdio::null()).output().expect("cpis runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `cpis` process running in the background, stopped when dropped.
pub struct Running {
    pub child: Child,
    pub stdout_lines: Vec<String>,
    _guard: Option<Box<dyn Any>>,
}

impl Running {
    /// Starts `command` without waiting for it, holding `guard` (its data
    /// directory, say) until the process is stopped.
    pub fn spawn(command: &mut Command, guard: Box<dyn Any>) -> Running {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cpis starts");
        Running {
            child,
            stdout_lines: Vec::new(),
            _guard: Some(guard),
        }
    }

    /// Starts `command` and reads its standard output until a line contains
    /// `ready_marker`.
    pub fn start(command: &mut Command, ready_marker: &str) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cpis starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = reader.read_line(&mut line).expect("readable stdout");
            assert!(read > 0, "cpis exited before it was ready: {lines:?}");
            let ready = line.contains(ready_marker);
            lines.push(line.trim_end().to_owned());
            if ready {
                break;
            }
        }
        // Keep draining so that the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Running {
            child,
            stdout_lines: lines,
            _guard: None,
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cpis did not stop within 5 seconds of SIGTERM");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a line such as `cpis demo is ready at http://127.0.0.1:1234 (...)`.
pub fn address_in(line: &str) -> SocketAddr {
    let start = line.find("http://").expect("a URL") + "http://".len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().expect("an address")
}

pub fn free_port_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An independent OpenID Connect provider (oauth2-mock-server from the npm
/// registry, in `tests/node`), running for one test.
pub struct Provider {
    pub issuer: String,
    /// Its key ids: an RS256 key, then an ES256 key.
    pub keys: Vec<String>,
    child: Child,
}

impl Provider {
    /// Starts the provider, or returns `None` (after printing why) when Node
    /// or the provider's package is missing; under `CPIS_REQUIRE_ALL=1` that
    /// is a failure instead.
    pub fn start() -> Option<Provider> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
        let node = Command::new("node").arg("--version").output().is_ok();
        let installed = node && install_node_tools(&dir);
        if !(installed && node) {
            let why = "the independent OpenID provider needs Node.js and npm (tests/node is installed with `npm ci`)";
            if std::env::var("CPIS_REQUIRE_ALL").is_ok_and(|v| v == "1") {
                panic!("CPIS_REQUIRE_ALL=1 but {why}");
            }
            eprintln!("notice: skipping a test against an independent OpenID provider: {why}");
            return None;
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the provider did not start: {line:?}"));
        Some(Provider {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            keys: ready["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kid| kid.as_str().unwrap().to_owned())
                .collect(),
            child,
        })
    }

    async fn control(&self, path: &str, body: serde_json::Value) -> String {
        reqwest::Client::new()
            .post(format!("{}/test/{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A token signed by the provider: `body` is `{claims, kid?, expiresIn?, header?}`.
    pub async fn mint(&self, body: serde_json::Value) -> String {
        self.control("mint", body).await
    }

    /// Adds a key to the provider's published set; returns its id.
    pub async fn rotate(&self, alg: &str) -> String {
        self.control("rotate", serde_json::json!({"alg": alg}))
            .await
    }

    /// Claims the provider's token endpoint adds to the tokens it issues next.
    pub async fn next_claims(&self, claims: serde_json::Value) {
        self.control("next", serde_json::json!({"claims": claims}))
            .await;
    }
}

/// Installs the pinned test tools of `tests/node` (`npm ci`) once per test
/// run, if they are not there yet. Returns whether they are installed.
pub fn install_node_tools(dir: &Path) -> bool {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let marker = dir.join("node_modules/fhir/package.json");
    let others = [
        "node_modules/oauth2-mock-server/package.json",
        "node_modules/playwright-core/package.json",
        "node_modules/axe-core/package.json",
    ];
    if marker.exists() && others.iter().all(|other| dir.join(other).exists()) {
        return true;
    }
    let installed = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    installed && marker.exists()
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestServer {
    /// A server on a fresh embedded store whose people sign in with
    /// `issuer`, mapping CIS2's claims; no development issuer.
    pub async fn with_provider(issuer: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let listener = cpis::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let identity =
            cpis_core::identity::Identity::build(cpis_core::identity::IdentitySettings {
                public_url: url.clone(),
                audience: "cpis".to_owned(),
                client_id: "cpis".to_owned(),
                client_secret: None,
                provider: Some((issuer.to_owned(), cpis_auth::ClaimMapping::Cis2)),
                development: false,
                development_la: LaCode::parse(TEST_LA).unwrap(),
                key: Arc::new(cpis_auth::SigningKey::generate().unwrap()),
            })
            .await
            .unwrap();
        Self::serve(listener, url, store, identity, Box::new(dir)).await
    }
}

/// The `fhir` package (npm, an independent FHIR R4 implementation), to
/// validate what the server answers. `None`, after printing why, when Node.js
/// is missing (a failure under `CPIS_REQUIRE_ALL=1`).
pub fn validate_fhir(documents: &[serde_json::Value]) -> Option<Vec<serde_json::Value>> {
    use std::io::Write;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    let node = Command::new("node").arg("--version").output().is_ok();
    if !(node && install_node_tools(&dir)) {
        let why = "validating FHIR needs Node.js and npm (tests/node is installed with `npm ci`)";
        if std::env::var("CPIS_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("CPIS_REQUIRE_ALL=1 but {why}");
        }
        eprintln!("notice: skipping FHIR validation: {why}");
        return None;
    }
    let mut child = Command::new("node")
        .arg("validate-fhir.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut stdin = child.stdin.take().unwrap();
    for document in documents {
        writeln!(stdin, "{document}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    Some(
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
    )
}

/// Waits until the server at `url` answers ready.
pub async fn wait_ready(url: &str) {
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(format!("{url}/readyz")).await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{url} did not become ready");
}

/// A development persona's token from `cpis token`, for the server whose data is at `data`.
pub fn persona_token(data: &std::path::Path, persona: &str) -> String {
    let output = cpis()
        .args(["token", "--persona", persona, "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned()
}
