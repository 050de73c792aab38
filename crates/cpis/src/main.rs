//! `cpis`: Child Protection – Information Sharing, as one binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};

/// mimalloc: in a profile of the clinician's query, glibc's malloc and free
/// took a sixth of the request threads' time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cpis::config::{Config, Overrides, cpis_environment};
use cpis::{StartError, WithStore};
use cpis_auth::{OwnIssuer, SigningKey};
use cpis_core::identity::Identity;
use cpis_core::{Clock, Cpis};
use cpis_domain::LaCode;
use cpis_store::Store;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "cpis",
    version,
    about = "Child Protection – Information Sharing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the service (configured by file, CPIS_* variables and flags).
    Serve {
        /// A TOML configuration file (or CPIS_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address and port to listen on (or CPIS_LISTEN), e.g. 0.0.0.0:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Where the embedded store keeps its files (or CPIS_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve a ready demonstration on synthetic data (every NHS number is in the 999 test range).
    Demo {
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The demo's data directory, created or reused.
        #[arg(long, default_value = "cpis-demo")]
        data_dir: PathBuf,
        /// The same seed gives the same synthetic population.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The local authority of the social-worker and la-system personas.
        #[arg(long, default_value = "E06000001")]
        la: String,
    },
    /// Send an LA's file of plans (CSV or JSON) and report its acknowledgement.
    ///
    /// Exit codes: 0 all accepted, 3 some or all rejected, 4 the file refused, 1 other failure.
    Upload(cpis::upload_client::UploadArgs),
    /// The access log: `cpis audit verify` checks it against its records and
    /// signed checkpoints.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Print a bearer token for a development persona (the token is the last line).
    Token {
        /// The data directory of the running demo or development server.
        #[arg(long, default_value = "cpis-demo")]
        data_dir: PathBuf,
        /// ed-clinician, gp-clinician, privacy-officer, ed-clerk, social-worker, la-system or admin.
        #[arg(long)]
        persona: String,
        /// The local authority of the social-worker and la-system personas
        /// (default: the server's).
        #[arg(long)]
        la: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the log from the store's records and check every signed
    /// checkpoint. Exit codes: 0 the log is whole, 1 it is not (the first
    /// problem is printed), 2 it could not be checked.
    Verify {
        /// A TOML configuration file (or CPIS_CONFIG), for database_url.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The embedded store's directory (or CPIS_DATA_DIR); PostgreSQL
        /// comes from CPIS_DATABASE_URL or the file.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The log's verifier key (from GET /audit/v1/key); by default the
        /// public half of the service's own log key.
        #[arg(long)]
        key: Option<String>,
        /// A checkpoint kept outside the service (a saved
        /// /audit/v1/checkpoints/latest); the log must still give its tree
        /// head. May be given more than once.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    if let Err(error) = cpis::without_huge_pages() {
        eprintln!(
            "warning: transparent huge pages stay on ({error}); the server may slow down under bursts"
        );
    }
    if let Err(error) = cpis::with_most_open_files() {
        eprintln!("warning: the limit on open files stays as it was ({error})");
    }
    let cli = Cli::parse();
    if cfg!(feature = "bench-without-log") {
        eprintln!(
            "error: this build leaves access records out of the audit log; it is for benchmarks only"
        );
        return ExitCode::from(2);
    }
    if let Command::Upload(args) = cli.command {
        return upload(args);
    }
    if let Command::Audit {
        action:
            AuditCommand::Verify {
                config,
                data_dir,
                key,
                checkpoints,
            },
    } = cli.command
    {
        return audit_verify(config, data_dir, key, checkpoints);
    }
    // Declared before the runtime, so that even unwinding from a panic drops
    // the runtime first (locals drop in reverse order).
    let mut lock = None;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli.command, &mut lock));
    // Tasks may still hold the store (a check of the log a privacy officer
    // started, a read on a blocking thread): dropping the runtime ends them,
    // waiting for blocking work, and with them the store and its last
    // writes. Only then is the data directory let go.
    drop(runtime);
    drop(lock);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs `command`, keeping the data directory's lock, if it takes one, in
/// `lock` for the caller to let go once nothing can write there.
async fn run(command: Command, lock: &mut Option<cpis::DataDirLock>) -> Result<(), StartError> {
    let env = cpis_environment();
    match command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let overrides = Overrides {
                config_file: config,
                listen,
                data_dir,
                ..Overrides::default()
            };
            let config = Config::load(Config::serve_defaults(), &env, &overrides)?;
            cpis::init_logging(&config)?;
            *lock = cpis::prepare_storage(&config)?;
            let listener = cpis::bind(config.listen).await?;
            let identity = identity(&config, &listener).await?;
            let log = cpis::load_log_signer(&config, &cpis::public_url(&config, &listener)?)?;
            let limits = cpis::limits(&config);
            cpis::with_store(
                &config,
                cpis::Serve {
                    listener,
                    identity,
                    limits,
                    notifications: cpis::notification_settings(&config),
                    log,
                    retention: cpis::retention_settings(&config),
                },
            )
            .await
        }
        Command::Demo {
            listen,
            data_dir,
            seed,
            la,
        } => {
            let overrides = Overrides {
                config_file: None,
                listen: Some(listen),
                data_dir: Some(data_dir),
                development: true,
                development_la: Some(la),
            };
            let config = Config::load(Config::serve_defaults(), &env, &overrides)?;
            cpis::init_logging(&config)?;
            *lock = cpis::prepare_storage(&config)?;
            let listener = cpis::bind(config.listen).await?;
            let identity = identity(&config, &listener).await?;
            let log = cpis::load_log_signer(&config, &cpis::public_url(&config, &listener)?)?;
            let demo = Demo {
                listener,
                identity,
                limits: cpis::limits(&config),
                notifications: cpis::notification_settings(&config),
                log,
                seed,
                data_dir: config.data_dir.clone(),
            };
            cpis::with_store(&config, demo).await
        }
        // Handled in main, on a runtime of its own, before this one starts.
        Command::Upload(_) | Command::Audit { .. } => Ok(()),
        Command::Token {
            data_dir,
            persona,
            la,
        } => token(&data_dir, &persona, la.as_deref()),
    }
}

/// `cpis audit verify`: exit 0 when the log is whole, 1 when it is not, 2
/// when it cannot be checked.
fn audit_verify(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    key: Option<String>,
    checkpoints: Vec<PathBuf>,
) -> ExitCode {
    let checked = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| StartError(format!("cannot start the async runtime: {error}")))
        .and_then(|runtime| runtime.block_on(verify(config, data_dir, key, checkpoints)));
    match checked {
        Ok(report) => match report.failure {
            None => {
                println!(
                    "the access log is whole: {} leaves, {} signed checkpoints verified",
                    report.leaves, report.checkpoints
                );
                ExitCode::SUCCESS
            }
            Some(failure) => {
                println!(
                    "the access log is NOT whole: {failure} ({} leaves and {} checkpoints checked before it)",
                    report.leaves, report.checkpoints
                );
                ExitCode::from(1)
            }
        },
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn verify(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    key: Option<String>,
    checkpoints: Vec<PathBuf>,
) -> Result<cpis_core::audit::VerifyReport, StartError> {
    let held = checkpoints
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map_err(|error| StartError(format!("cannot read {}: {error}", path.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let overrides = Overrides {
        config_file: config,
        data_dir,
        // Nothing is served: the sign-in settings the check asks for do not
        // matter here.
        development: true,
        ..Overrides::default()
    };
    let config = Config::load(Config::serve_defaults(), &cpis_environment(), &overrides)?;
    let key = match key {
        Some(vkey) => cpis_core::audit::LogKey::parse_vkey(&vkey)
            .map_err(|error| StartError(error.to_string()))?,
        None if config.log_key_path().exists() => {
            cpis_core::audit::LogSigner::load_or_create(&config.log_key_path(), "")
                .map_err(|error| StartError(error.to_string()))?
                .public()
        }
        None => {
            return Err(StartError(format!(
                "no log key at {}; pass the log's verifier key with --key (GET /audit/v1/key)",
                config.log_key_path().display()
            )));
        }
    };
    cpis::with_store_to_read(&config, cpis::VerifyLog { key, held }).await
}

fn upload(args: cpis::upload_client::UploadArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cpis::upload_client::run(args)) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.exit as u8)
        }
    }
}

async fn identity(config: &Config, listener: &TcpListener) -> Result<Identity, StartError> {
    let key = cpis::load_signing_key(config)?;
    let public_url = cpis::public_url(config, listener)?;
    cpis::build_identity(config, &public_url, key).await
}

/// `cpis token`: signs a persona's token with the server's own key, for the
/// issuer recorded in the data directory. Only for development servers.
fn token(data_dir: &Path, persona: &str, la: Option<&str>) -> Result<(), StartError> {
    let issuer_path = data_dir.join(cpis::ISSUER_FILE);
    let issuer: cpis::IssuerFile = std::fs::read_to_string(&issuer_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .ok_or_else(|| {
            StartError(format!(
                "{} does not say which server to make a token for; start cpis demo (or a development server) with --data-dir {} first",
                issuer_path.display(),
                data_dir.display()
            ))
        })?;
    if !issuer.development {
        return Err(StartError(format!(
            "the server of {} is not a development server; its users sign in with their identity provider",
            data_dir.display()
        )));
    }
    let la_code = LaCode::parse(la.unwrap_or(&issuer.development_la))
        .map_err(|error| StartError(format!("--la: {error}")))?;
    let key_path = data_dir.join("signing-key.pem");
    let pem = std::fs::read_to_string(&key_path)
        .map_err(|error| StartError(format!("cannot read {}: {error}", key_path.display())))?;
    let key = SigningKey::from_pem(&pem)
        .map_err(|error| StartError(format!("{}: {error}", key_path.display())))?;
    let own = OwnIssuer {
        url: issuer.issuer,
        audience: issuer.audience,
        key: Arc::new(key),
        development: true,
    };
    let found = cpis_auth::personas(la_code)
        .into_iter()
        .find(|known| known.name == persona)
        .ok_or_else(|| {
            let names: Vec<&str> = cpis_auth::personas(la_code)
                .iter()
                .map(|p| p.name)
                .collect();
            StartError(format!(
                "there is no persona {persona:?}; choose one of {}",
                names.join(", ")
            ))
        })?;
    let token = own
        .issue_persona(&found, &own.audience, None, time::OffsetDateTime::now_utc())
        .map_err(|error| StartError(error.to_string()))?;
    eprintln!(
        "A bearer token for {} ({}), valid for 8 hours:",
        found.display_name, found.description
    );
    println!("{token}");
    Ok(())
}

/// `cpis demo`: loads (or reuses) the synthetic population, says what to try, serves.
struct Demo {
    listener: TcpListener,
    identity: Identity,
    limits: cpis_core::Limits,
    notifications: cpis_core::notify::NotificationSettings,
    log: cpis_core::audit::LogSigner,
    seed: u64,
    data_dir: PathBuf,
}

impl WithStore for Demo {
    type Output = ();
    async fn run<S: Store>(self, store: Arc<S>) -> Result<(), StartError> {
        let app = Arc::new(
            Cpis::new(store, Clock::system(), self.identity)
                .with_limits(self.limits)
                .with_notifications(self.notifications)
                .with_log(self.log, cpis_core::audit::CheckpointPolicy::default()),
        );
        let started = Instant::now();
        let loaded = app
            .load_demo(self.seed)
            .await
            .map_err(|error| StartError(format!("cannot load the demo data: {error}")))?;
        let status = app
            .status()
            .await
            .map_err(|error| StartError(format!("cannot read the demo data: {error}")))?;
        let addr = self
            .listener
            .local_addr()
            .map_err(|error| StartError(error.to_string()))?;
        let url = format!("http://{addr}");
        let how = if loaded.reused {
            format!("reused {}", self.data_dir.display())
        } else {
            format!(
                "loaded {} plans into {} in {:.1} s",
                loaded.plans_loaded,
                self.data_dir.display(),
                started.elapsed().as_secs_f64()
            )
        };
        let counts = status.counts;
        println!("cpis demo is ready at {url} (seed {}, {how})", loaded.seed);
        println!(
            "  {} local authorities, {} care settings, {} plans; every NHS number is synthetic, from the 999 test range",
            counts.local_authorities, counts.organisations, counts.plans
        );
        println!();
        println!("Try:");
        println!("  curl {url}/healthz");
        println!("  curl {url}/readyz");
        println!("  curl {url}/api/v1/status");
        println!("  curl {url}/api/v1/local-authorities");
        println!(
            "  TOKEN=$(cargo run -q --release -- token --data-dir {} --persona ed-clinician)",
            self.data_dir.display()
        );
        println!("  curl -H \"Authorization: Bearer $TOKEN\" {url}/api/v1/me");
        if let Some(first) = loaded.examples.first() {
            println!(
                "  curl -H \"Authorization: Bearer $TOKEN\" '{url}/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{}'",
                first.nhs_number.digits()
            );
            println!(
                "  curl -H \"Authorization: Bearer $TOKEN\" '{url}/fhir/R4/AuditEvent?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{}'",
                first.nhs_number.digits()
            );
        }
        println!();
        println!(
            "Sign in at {url}/auth/sign-in as any of these personas (no password: development only):"
        );
        for persona in app.personas() {
            println!("  {:<16} {}", persona.name, persona.description);
        }
        println!();
        println!("Children in the demo data:");
        for example in &loaded.examples {
            println!("  {}  {}", example.nhs_number, example.expect);
        }
        println!();
        println!("Stop with Ctrl-C; run the same command again to reuse the data.");
        cpis::serve(self.listener, app, cpis::shutdown_signal()).await
    }
}
