//! The `cpis` binary's library half: configuration, start-up checks, logging
//! and the wiring of store, use cases and HTTP. `main.rs` only parses the
//! command line and reports errors.

pub mod config;
pub mod upload_client;

use std::fs::File;
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use cpis_auth::SigningKey;
use cpis_core::audit::{CheckpointPolicy, LogSigner, RetentionSettings};
use cpis_core::identity::{Identity, IdentitySettings};
use cpis_core::notify::{Deliverer, NotificationSettings};
use cpis_core::{Clock, Cpis, Limits};
use cpis_postgres::{PgStore, PoolSettings};
use cpis_sqlite::SqliteStore;
use cpis_store::Store;
use tokio::net::TcpListener;

use crate::config::{Config, Database, LogFormat};

/// A reason the program cannot start, said as one sentence that tells the
/// operator what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl From<config::ConfigError> for StartError {
    fn from(error: config::ConfigError) -> Self {
        StartError(error.0)
    }
}

/// Keeps the kernel from backing this process's memory with transparent
/// huge pages. mimalloc asks for them on its arenas, and when a burst of
/// connections has it free memory and take it again, each page taken again
/// is 2 MiB for the kernel to zero: in the query benchmark on PostgreSQL at
/// 5,000 looks a second, that was a fifth of both cores, and the server fell
/// behind and stayed behind (BENCHMARKS.md, "Transparent huge pages off").
/// This is what mimalloc itself does with `MIMALLOC_ALLOW_THP=0`, which it
/// reads only from the environment. Call it first thing in `main`.
pub fn without_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

/// Raises this process's soft limit on open files to its hard limit. Every
/// connection is a file, and soft limits are often 1,024 (systemd's
/// default), far below the requests a node may hold (`max_in_flight`): past
/// the limit the server stops accepting anyone. An unlimited hard limit is
/// left alone, since the kernel caps open files anyway.
pub fn with_most_open_files() -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(maximum) = limit.maximum
        && limit.current != Some(maximum)
    {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            },
        )?;
    }
    Ok(())
}

/// Sets up structured logs on standard error.
pub fn init_logging(config: &Config) -> Result<(), StartError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter).map_err(|error| {
        StartError(format!(
            "the log filter {:?} is invalid ({error}); use a level such as info or debug",
            config.log_filter
        ))
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already installed (a test harness, say) is fine.
    drop(installed);
    Ok(())
}

/// Holds the data directory's lock for as long as the server runs.
pub struct DataDirLock {
    _file: File,
}

/// Prepares the data directory. The embedded store keeps its database there
/// and locks it; PostgreSQL nodes keep only their key there, unless
/// `signing_key_file` points elsewhere, and take no lock.
pub fn prepare_storage(config: &Config) -> Result<Option<DataDirLock>, StartError> {
    match config.database {
        Database::Embedded => prepare_data_dir(&config.data_dir).map(Some),
        Database::Postgres(_) => {
            std::fs::create_dir_all(&config.data_dir).map_err(|error| {
                StartError(format!(
                    "cannot use the data directory {}: {error}; make it a writable directory, or choose another with --data-dir or CPIS_DATA_DIR",
                    config.data_dir.display()
                ))
            })?;
            Ok(None)
        }
    }
}

/// The file in the data directory that tells `cpis token` which issuer the
/// running server is.
pub const ISSUER_FILE: &str = "issuer.json";

/// What [`ISSUER_FILE`] holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct IssuerFile {
    pub issuer: String,
    pub audience: String,
    pub development: bool,
    pub development_la: String,
}

/// Reads (or makes, on first start) the service's signing key.
pub fn load_signing_key(config: &Config) -> Result<Arc<SigningKey>, StartError> {
    let path = config.signing_key_path();
    let (key, created) = SigningKey::load_or_create(&path).map_err(|error| {
        StartError(format!(
            "cannot use the signing key {}: {error}; fix the file or point signing_key_file (CPIS_SIGNING_KEY_FILE) at a PKCS#8 P-256 key",
            path.display()
        ))
    })?;
    if created {
        tracing::info!(path = %path.display(), kid = key.kid(), "made a new signing key");
    }
    Ok(Arc::new(key))
}

/// Builds sign-in and access control: discovers the provider, fetches its
/// keys, and records the issuer for `cpis token`.
pub async fn build_identity(
    config: &Config,
    public_url: &str,
    key: Arc<SigningKey>,
) -> Result<Identity, StartError> {
    if config.development {
        tracing::warn!("==================================================================");
        tracing::warn!("DEVELOPMENT SIGN-IN IS ON: anyone reaching {public_url} can sign in");
        tracing::warn!("as any demo persona without a password. Never run this in production.");
        tracing::warn!("==================================================================");
    }
    let settings = IdentitySettings {
        public_url: public_url.to_owned(),
        audience: config.oidc.audience.clone(),
        client_id: config
            .oidc
            .client_id
            .clone()
            .unwrap_or_else(|| config.oidc.audience.clone()),
        client_secret: config
            .oidc
            .client_secret
            .as_ref()
            .map(|secret| secret.expose().to_owned()),
        provider: config
            .oidc
            .issuer
            .clone()
            .map(|issuer| (issuer, config.oidc.claims.clone())),
        development: config.development,
        development_la: config.development_la,
        key,
    };
    let identity = Identity::build(settings).await.map_err(|error| {
        StartError(format!(
            "cannot set up sign-in: {error}; check oidc_issuer (CPIS_OIDC_ISSUER) and that the provider is reachable"
        ))
    })?;
    let record = IssuerFile {
        issuer: identity.own.url.clone(),
        audience: identity.own.audience.clone(),
        development: config.development,
        development_la: config.development_la.to_string(),
    };
    let path = config.data_dir.join(ISSUER_FILE);
    if let Ok(text) = serde_json::to_string_pretty(&record)
        && let Err(error) = std::fs::write(&path, text)
    {
        tracing::warn!(path = %path.display(), %error, "cannot record the issuer for cpis token");
    }
    Ok(identity)
}

/// The request limits the configuration sets.
pub fn limits(config: &Config) -> Limits {
    Limits {
        upload_bytes: config.upload_limit_mb.saturating_mul(1024 * 1024),
        in_flight: usize::try_from(config.max_in_flight).unwrap_or(usize::MAX),
    }
}

/// The key that signs the access log's checkpoints, made on first start;
/// the log is named after the public URL.
pub fn load_log_signer(config: &Config, public_url: &str) -> Result<LogSigner, StartError> {
    let origin = format!(
        "{}/log",
        public_url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
    );
    LogSigner::load_or_create(&config.log_key_path(), &origin).map_err(|error| {
        StartError(format!(
            "cannot use the log key {}: {error}",
            config.log_key_path().display()
        ))
    })
}

/// How notifications are kept and delivered, as the configuration sets.
pub fn notification_settings(config: &Config) -> NotificationSettings {
    NotificationSettings {
        retention: time::Duration::days(i64::from(config.notification_retention_days)),
        retry_for: time::Duration::hours(i64::from(config.webhook_retry_hours)),
        lease: time::Duration::seconds(i64::from(config.webhook_lease_seconds)),
        allow_loopback_http: config.development,
        ..NotificationSettings::default()
    }
}

/// How long records are kept, as the configuration sets.
pub fn retention_settings(config: &Config) -> RetentionSettings {
    RetentionSettings {
        // A year of 365.25 days, so that leap days do not shorten the period.
        access_for: time::Duration::days(i64::from(config.audit_retention_years) * 36_525 / 100),
        plans_for: time::Duration::days(i64::from(config.plan_retention_days)),
    }
}

/// The URL clients reach this server at.
pub fn public_url(config: &Config, listener: &TcpListener) -> Result<String, StartError> {
    match &config.public_url {
        Some(url) => Ok(url.clone()),
        None => listener
            .local_addr()
            .map(|addr| format!("http://{addr}"))
            .map_err(|error| StartError(error.to_string())),
    }
}

/// Creates the data directory if needed, checks that it can be written, and
/// locks it so that a second `cpis` cannot open the same embedded store.
pub fn prepare_data_dir(dir: &Path) -> Result<DataDirLock, StartError> {
    let fix = "make it a writable directory, or choose another with --data-dir or CPIS_DATA_DIR";
    let failed = |error: std::io::Error| {
        StartError(format!(
            "cannot use the data directory {}: {error}; {fix}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("cpis.lock"))
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError(format!(
            "another cpis is already using the data directory {}; stop it, or choose another with --data-dir or CPIS_DATA_DIR",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => Err(failed(error)),
    }
}

/// Binds the listening socket, explaining the usual failures.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|error| {
        let why = match error.kind() {
            ErrorKind::AddrInUse => "the address is already in use".to_owned(),
            ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".to_owned(),
            ErrorKind::AddrNotAvailable => "that address is not on this machine".to_owned(),
            _ => error.to_string(),
        };
        StartError(format!(
            "cannot listen on {addr}: {why}; stop whatever is using it or choose another address with --listen or CPIS_LISTEN"
        ))
    })
}

/// Opens the embedded store in `dir`.
pub fn open_sqlite(dir: &Path) -> Result<SqliteStore, StartError> {
    SqliteStore::open(dir).map_err(|error| {
        StartError(format!(
            "cannot open the embedded database in {}: {error}; check the directory, or restore it from a backup",
            dir.display()
        ))
    })
}

/// Stops a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to PostgreSQL, explaining the usual failures without the password.
pub async fn open_postgres(url: &str) -> Result<PgStore, StartError> {
    let connected = PgStore::connect(url, PoolSettings::default()).await;
    connected.map_err(|error| postgres_error(&error, url))
}

/// [`open_postgres`] only to read: nothing is migrated.
pub async fn open_postgres_to_read(url: &str) -> Result<PgStore, StartError> {
    let connected = PgStore::connect_to_read(url, PoolSettings::default()).await;
    connected.map_err(|error| postgres_error(&error, url))
}

fn postgres_error(error: &cpis_store::StoreError, url: &str) -> StartError {
    StartError(format!(
        "cannot use the PostgreSQL database: {}; check CPIS_DATABASE_URL and that the server is running and reachable",
        redact(&error.to_string(), url)
    ))
}

/// Removes any credentials of `url` from `message`.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty());
    match password {
        Some(password) => message.replace(password, "[redacted]"),
        None => message.to_owned(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// What the caller does with a store once it is open: generic so that every
/// backend runs the same code.
pub trait WithStore {
    type Output;
    fn run<S: Store>(self, store: Arc<S>)
    -> impl Future<Output = Result<Self::Output, StartError>>;
}

/// Opens the configured store and hands it to `work`.
pub async fn with_store<W: WithStore>(config: &Config, work: W) -> Result<W::Output, StartError> {
    match &config.database {
        Database::Embedded => {
            let store = open_sqlite(&config.data_dir)?;
            tracing::info!(path = %store.path().display(), "using the embedded store");
            work.run(Arc::new(store)).await
        }
        Database::Postgres(url) => {
            let store = open_postgres(url.expose()).await?;
            tracing::info!(database = store.target(), "using PostgreSQL");
            work.run(Arc::new(store)).await
        }
    }
}

/// Opens the configured store only to read it, beside a server that may be
/// writing to it, and hands it to `work`. The embedded store is opened
/// without the data directory's lock, which the server holds, and starts
/// nothing that writes ([`SqliteStore::open_to_read`]). Neither store is
/// migrated: one at another schema version is refused.
pub async fn with_store_to_read<W: WithStore>(
    config: &Config,
    work: W,
) -> Result<W::Output, StartError> {
    match &config.database {
        Database::Embedded => {
            let store = SqliteStore::open_to_read(&config.data_dir)
                .map_err(|error| StartError(format!("cannot read the embedded store: {error}")))?;
            work.run(Arc::new(store)).await
        }
        Database::Postgres(url) => {
            let store = open_postgres_to_read(url.expose()).await?;
            work.run(Arc::new(store)).await
        }
    }
}

/// `cpis audit verify`: the log checked against its records and checkpoints.
pub struct VerifyLog {
    pub key: cpis_core::audit::LogKey,
    /// Signed checkpoints kept outside the store, to check the log against.
    pub held: Vec<String>,
}

impl WithStore for VerifyLog {
    type Output = cpis_core::audit::VerifyReport;
    async fn run<S: Store>(self, store: Arc<S>) -> Result<Self::Output, StartError> {
        cpis_core::audit::verify_log_against(&*store, &self.key, &self.held)
            .await
            .map_err(|error| StartError(format!("cannot read the log: {error}")))
    }
}

/// `cpis serve`: loads reference data on first start, then serves until shutdown.
pub struct Serve {
    pub listener: TcpListener,
    pub identity: Identity,
    pub limits: Limits,
    pub notifications: NotificationSettings,
    pub log: LogSigner,
    pub retention: RetentionSettings,
}

impl WithStore for Serve {
    type Output = ();
    async fn run<S: Store>(self, store: Arc<S>) -> Result<(), StartError> {
        let app = Arc::new(
            Cpis::new(store, Clock::system(), self.identity)
                .with_limits(self.limits)
                .with_notifications(self.notifications)
                .with_log(self.log, CheckpointPolicy::default())
                .with_retention(self.retention),
        );
        app.seed_reference_data()
            .await
            .map_err(|error| StartError(format!("cannot load reference data: {error}")))?;
        serve(self.listener, app, shutdown_signal()).await
    }
}

/// How many delivery loops one node runs, so that one LA's slow endpoint
/// does not hold up the others' notifications.
const DELIVERY_LOOPS: usize = 4;

/// The delivery worker: loops that each take a step whenever a look writes
/// an item to push (one loop is woken per write), and at least every second
/// for retries and for items written on other nodes. It ends, with every
/// loop, once `stop` turns true or its sender is gone; a step cut short
/// leaves its items claimed until the claim runs out, and they are then
/// sent again (notifications are delivered at least once).
pub async fn deliver_forever<S: Store>(
    app: Arc<Cpis<S>>,
    deliverer: Deliverer,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..DELIVERY_LOOPS {
        loops.spawn(until_stopped(
            delivery_loop(app.clone(), deliverer.clone()),
            stop.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
}

/// Runs `work` until `stop` turns true (or its sender is gone), then drops it.
async fn until_stopped(
    work: impl Future<Output = ()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::select! {
        () = work => {}
        _ = stop.wait_for(|stop| *stop) => {}
    }
}

async fn delivery_loop<S: Store>(app: Arc<Cpis<S>>, deliverer: Deliverer) {
    let batch = app.notification_settings().batch;
    loop {
        match app.deliver_step(&deliverer).await {
            // A full batch: more may be waiting.
            Ok(report) if report.claimed >= batch => {}
            Ok(report) => {
                if report.claimed > 0 {
                    tracing::debug!(?report, "delivery step");
                }
                app.outbox_written(std::time::Duration::from_secs(1)).await;
            }
            Err(error) => {
                tracing::warn!(%error, "the delivery worker could not reach the store; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

/// Signs a checkpoint of the access log whenever one is due.
///
/// Each round runs on a blocking thread, not on one of the runtime's
/// workers. A checkpoint of 10,000 leaves (every 2 s at 5,000 looks a
/// second) reads their hashes and hashes the subtrees above them: on the
/// embedded store 13 to 19 ms of one worker's time in one piece, during which
/// every task queued on that worker waited (2026-12-07, BENCHMARKS.md). On a
/// thread of its own the operating system shares the cores between it and
/// the workers, a slice at a time.
///
/// A blocking thread cannot be aborted, so the loop ends only between
/// rounds, when `stop` says so (or its sender is gone); [`serve_with`] waits
/// for that before it returns, so that no round still writes once the data
/// directory's lock is let go.
async fn checkpoint_forever<S: Store>(
    app: Arc<Cpis<S>>,
    signer: Arc<LogSigner>,
    policy: CheckpointPolicy,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let runtime = tokio::runtime::Handle::current();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let (app, signer, runtime) = (app.clone(), signer.clone(), runtime.clone());
        let made = tokio::task::spawn_blocking(move || {
            runtime.block_on(app.make_checkpoint(&signer, policy, false))
        })
        .await;
        match made {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not sign a checkpoint of the access log");
            }
            Err(error) => tracing::error!(%error, "a checkpoint of the access log stopped"),
        }
    }
}

/// A name for this process's claims on deliveries, unique among nodes.
fn node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

/// Clears away what has expired or passed its retention, every
/// [`PURGE_EVERY`].
async fn housekeep_forever<S: Store>(app: Arc<Cpis<S>>) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        every.tick().await;
        match app.purge_expired().await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "cleared expired sessions and codes"),
            Err(error) => tracing::warn!(%error, "could not clear expired sessions and codes"),
        }
        if let Err(error) = app.apply_retention().await {
            tracing::warn!(%error, "could not remove records past their retention");
        }
        match app.purge_notifications().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed notifications past retention"),
            Err(error) => tracing::warn!(%error, "could not remove old notifications"),
        }
    }
}

/// How often expired sessions, codes and assertion ids are cleared away.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Serves `app` on `listener` until `shutdown`, with the housekeeping and
/// the delivery worker that run beside it.
pub async fn serve<S: Store>(
    listener: TcpListener,
    app: Arc<Cpis<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    serve_with(listener, app, shutdown, true).await
}

/// [`serve`], with the delivery worker and the log's checkpoints only if
/// `workers` is set: tests that take those steps themselves turn them off.
pub async fn serve_with<S: Store>(
    listener: TcpListener,
    app: Arc<Cpis<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    workers: bool,
) -> Result<(), StartError> {
    let addr = listener
        .local_addr()
        .map_err(|error| StartError(error.to_string()))?;
    tracing::info!(%addr, "serving");
    // Made before any task starts, so that its failure leaves none behind.
    let deliverer = if workers {
        let settings = app.notification_settings();
        let deliverer = Deliverer::new(
            node_name(),
            settings.attempt_timeout,
            settings.allow_loopback_http,
        )
        .map_err(|error| StartError(error.to_string()))?;
        tracing::info!(node = deliverer.node(), "delivering notifications");
        Some(deliverer)
    } else {
        None
    };
    // Every task started here ends when `stop` says so and is waited for
    // before this returns, so none of them still holds the store. Others
    // may (a log check a privacy officer started; for a moment, a closing
    // connection's task): the binary drops its runtime, which ends them,
    // before it lets go of the data directory's lock.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut background = vec![AbortOnDrop(tokio::spawn(until_stopped(
        housekeep_forever(app.clone()),
        stopped.clone(),
    )))];
    // Tests that sign checkpoints themselves run without the checkpointer,
    // which would otherwise sign whatever the log holds at its first tick.
    if let Some((signer, policy)) = app.log().filter(|_| workers) {
        background.push(AbortOnDrop(tokio::spawn(checkpoint_forever(
            app.clone(),
            signer,
            policy,
            stopped.clone(),
        ))));
    }
    if let Some(deliverer) = deliverer {
        background.push(AbortOnDrop(tokio::spawn(deliver_forever(
            app.clone(),
            deliverer,
            stopped,
        ))));
    }
    let served = cpis_http::serve(listener, app, shutdown).await;
    let _ = stop.send(true);
    for AbortOnDrop(task) in &mut background {
        let _ = task.await;
    }
    served.map_err(|error| StartError(format!("the server stopped: {error}")))
}
