//! `cpis`: Child Protection – Information Sharing, as one binary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use cpis::config::{Config, Overrides, cpis_environment};
use cpis::{StartError, WithStore};
use cpis_core::{Clock, Cpis};
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> Result<(), StartError> {
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
            };
            let config = Config::load(Config::serve_defaults(), &env, &overrides)?;
            cpis::init_logging(&config)?;
            let _lock = cpis::prepare_storage(&config)?;
            let listener = cpis::bind(config.listen).await?;
            cpis::with_store(&config, cpis::Serve { listener }).await
        }
        Command::Demo {
            listen,
            data_dir,
            seed,
        } => {
            let overrides = Overrides {
                config_file: None,
                listen: Some(listen),
                data_dir: Some(data_dir),
            };
            let config = Config::load(Config::serve_defaults(), &env, &overrides)?;
            cpis::init_logging(&config)?;
            let _lock = cpis::prepare_storage(&config)?;
            let listener = cpis::bind(config.listen).await?;
            let demo = Demo {
                listener,
                seed,
                data_dir: config.data_dir.clone(),
            };
            cpis::with_store(&config, demo).await
        }
    }
}

/// `cpis demo`: loads (or reuses) the synthetic population, says what to try, serves.
struct Demo {
    listener: TcpListener,
    seed: u64,
    data_dir: PathBuf,
}

impl WithStore for Demo {
    type Output = ();
    async fn run<S: Store>(self, store: Arc<S>) -> Result<(), StartError> {
        let app = Arc::new(Cpis::new(store, Clock::system()));
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
