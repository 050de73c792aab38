//! The `cpis` binary's library half: configuration, start-up checks, logging
//! and the wiring of store, use cases and HTTP. `main.rs` only parses the
//! command line and reports errors.

pub mod config;

use std::fs::File;
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use cpis_core::{Clock, Cpis};
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

/// Prepares the data directory where the configured store needs one: the
/// embedded store keeps its files there; PostgreSQL nodes need none.
pub fn prepare_storage(config: &Config) -> Result<Option<DataDirLock>, StartError> {
    match config.database {
        Database::Embedded => prepare_data_dir(&config.data_dir).map(Some),
        Database::Postgres(_) => Ok(None),
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

/// Connects to PostgreSQL, explaining the usual failures without the password.
pub async fn open_postgres(url: &str) -> Result<PgStore, StartError> {
    PgStore::connect(url, PoolSettings::default())
        .await
        .map_err(|error| {
            StartError(format!(
                "cannot use the PostgreSQL database: {}; check CPIS_DATABASE_URL and that the server is running and reachable",
                redact(&error.to_string(), url)
            ))
        })
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

/// `cpis serve`: loads reference data on first start, then serves until shutdown.
pub struct Serve {
    pub listener: TcpListener,
}

impl WithStore for Serve {
    type Output = ();
    async fn run<S: Store>(self, store: Arc<S>) -> Result<(), StartError> {
        let app = Arc::new(Cpis::new(store, Clock::system()));
        app.seed_reference_data()
            .await
            .map_err(|error| StartError(format!("cannot load reference data: {error}")))?;
        serve(self.listener, app, shutdown_signal()).await
    }
}

/// Serves `app` on `listener` until `shutdown`.
pub async fn serve<S: Store>(
    listener: TcpListener,
    app: Arc<Cpis<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let addr = listener
        .local_addr()
        .map_err(|error| StartError(error.to_string()))?;
    tracing::info!(%addr, "serving");
    cpis_http::serve(listener, app, shutdown)
        .await
        .map_err(|error| StartError(format!("the server stopped: {error}")))
}
