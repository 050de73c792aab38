//! The one typed configuration: defaults, then a TOML file, then `CPIS_*`
//! environment variables, then command-line flags, each on top of the last.
//!
//! | key (file)     | environment        | default            | meaning |
//! |----------------|--------------------|--------------------|---------|
//! | `listen`       | `CPIS_LISTEN`      | `127.0.0.1:8080`   | address and port to serve HTTP on |
//! | `data_dir`     | `CPIS_DATA_DIR`    | `./cpis-data`      | where the embedded store keeps its files |
//! | `database_url` | `CPIS_DATABASE_URL`| unset (embedded)   | `postgres://…` to use PostgreSQL instead |
//! | `log_format`   | `CPIS_LOG_FORMAT`  | `human`            | `human` or `json` |
//! | `log`          | `CPIS_LOG`         | `info`             | a tracing filter, e.g. `info,cpis_http=debug` |
//!
//! `CPIS_CONFIG` names the file when `--config` is not given.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configuration problem, said as one sentence that tells what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A value that must never be printed, such as a database URL with a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Where plans and the access log live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded SQLite store in the data directory.
    Embedded,
    /// A PostgreSQL server.
    Postgres(Secret),
}

/// The configuration `cpis serve` runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    pub log_format: LogFormat,
    pub log_filter: String,
}

/// The keys a configuration file may hold; any other key is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    log_format: Option<String>,
    log: Option<String>,
}

/// What the command line sets; it wins over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// Environment variables cpis reads, and the ones its tests read; any other
/// `CPIS_` variable is a typo worth stopping for.
const KNOWN_VARIABLES: &[&str] = &[
    "CPIS_CONFIG",
    "CPIS_LISTEN",
    "CPIS_DATA_DIR",
    "CPIS_DATABASE_URL",
    "CPIS_LOG_FORMAT",
    "CPIS_LOG",
    "CPIS_TEST_DATABASE_URL",
    "CPIS_REQUIRE_ALL",
];

impl Config {
    /// Builds the configuration from `defaults`, the file, `env` (the
    /// process's `CPIS_*` variables) and `overrides`, in that order.
    pub fn load(
        defaults: Config,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        if let Some(unknown) = env
            .keys()
            .find(|key| key.starts_with("CPIS_") && !KNOWN_VARIABLES.contains(&key.as_str()))
        {
            return Err(ConfigError(format!(
                "the environment variable {unknown} is not one cpis knows; unset it or correct it to one of {}",
                KNOWN_VARIABLES[..6].join(", ")
            )));
        }
        let file_path = overrides
            .config_file
            .clone()
            .or_else(|| env.get("CPIS_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut config = defaults;
        let from_file = |key: &str| match &file_path {
            Some(path) => format!("{key} in {}", path.display()),
            None => key.to_owned(),
        };

        if let Some(listen) = &file.listen {
            config.listen = parse_listen(listen, &from_file("listen"))?;
        }
        if let Some(dir) = file.data_dir {
            config.data_dir = dir;
        }
        if let Some(url) = file.database_url {
            config.database = parse_database(&url, &from_file("database_url"))?;
        }
        if let Some(format) = &file.log_format {
            config.log_format = parse_log_format(format, &from_file("log_format"))?;
        }
        if let Some(filter) = file.log {
            config.log_filter = filter;
        }

        if let Some(listen) = env.get("CPIS_LISTEN") {
            config.listen = parse_listen(listen, "CPIS_LISTEN")?;
        }
        if let Some(dir) = env.get("CPIS_DATA_DIR") {
            config.data_dir = PathBuf::from(dir);
        }
        if let Some(url) = env.get("CPIS_DATABASE_URL") {
            config.database = parse_database(url, "CPIS_DATABASE_URL")?;
        }
        if let Some(format) = env.get("CPIS_LOG_FORMAT") {
            config.log_format = parse_log_format(format, "CPIS_LOG_FORMAT")?;
        }
        if let Some(filter) = env.get("CPIS_LOG") {
            config.log_filter = filter.clone();
        }

        if let Some(listen) = &overrides.listen {
            config.listen = parse_listen(listen, "--listen")?;
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }

    /// The defaults of `cpis serve`.
    pub fn serve_defaults() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("cpis-data"),
            database: Database::Embedded,
            log_format: LogFormat::Human,
            log_filter: "info".to_owned(),
        }
    }
}

/// The process's `CPIS_*` environment variables.
pub fn cpis_environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(key, _)| key.starts_with("CPIS_"))
        .collect()
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError(format!(
            "cannot read the configuration file {}: {error}; check the path given to --config or CPIS_CONFIG",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|error| {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let at = line
            .map(|line| format!(" at line {line}"))
            .unwrap_or_default();
        ConfigError(format!(
            "the configuration file {} is invalid{at}: {}; fix or remove that key",
            path.display(),
            error.message().trim_end_matches('\n')
        ))
    })
}

fn parse_listen(value: &str, source: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError(format!(
            "{source} is {value:?}, which is not an address and port such as 127.0.0.1:8080 or [::]:8080"
        ))
    })
}

fn parse_database(value: &str, source: &str) -> Result<Database, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(Database::Embedded);
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        return Ok(Database::Postgres(Secret::new(value)));
    }
    Err(ConfigError(format!(
        "{source} must be a postgres:// URL, or empty for the embedded store"
    )))
}

fn parse_log_format(value: &str, source: &str) -> Result<LogFormat, ConfigError> {
    match value.trim() {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        other => Err(ConfigError(format!(
            "{source} is {other:?}; use \"human\" or \"json\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn layers_apply_in_order() {
        let file = write(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\nlog_format = \"json\"\n",
        );
        let overrides = Overrides {
            config_file: Some(file.path().to_owned()),
            ..Overrides::default()
        };
        let config = Config::load(
            Config::serve_defaults(),
            &env(&[("CPIS_DATA_DIR", "/from/env"), ("CPIS_LOG", "debug")]),
            &overrides,
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.data_dir, PathBuf::from("/from/env"));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.log_filter, "debug");

        let flags = Overrides {
            listen: Some("127.0.0.1:9001".into()),
            ..overrides
        };
        let config = Config::load(Config::serve_defaults(), &env(&[]), &flags).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
    }

    #[test]
    fn database_urls_select_the_store_and_stay_secret() {
        let config = Config::load(
            Config::serve_defaults(),
            &env(&[("CPIS_DATABASE_URL", "postgres://cpis:hunter2@db/cpis")]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(matches!(config.database, Database::Postgres(_)));
        assert!(!format!("{config:?}").contains("hunter2"));
        let config = Config::load(
            Config::serve_defaults(),
            &env(&[("CPIS_DATABASE_URL", "")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.database, Database::Embedded);
    }

    #[test]
    fn bad_configuration_says_what_to_fix() {
        let check = |file: Option<&str>, vars: &[(&str, &str)], expected: &str| {
            let file = file.map(write);
            let overrides = Overrides {
                config_file: file.as_ref().map(|f| f.path().to_owned()),
                ..Overrides::default()
            };
            let error = Config::load(Config::serve_defaults(), &env(vars), &overrides)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
            assert!(!error.contains('\n'), "one line: {error:?}");
        };
        check(
            Some("listen = \"127.0.0.1:8080\"\nlisten_port = 80\n"),
            &[],
            "invalid at line 2: unknown field `listen_port`",
        );
        check(Some("listen = 8080\n"), &[], "invalid at line 1");
        check(Some("listen = \"8080\"\n"), &[], "listen in ");
        check(
            None,
            &[("CPIS_LISTEN", "localhost")],
            "CPIS_LISTEN is \"localhost\"",
        );
        check(
            None,
            &[("CPIS_DATABSE_URL", "x")],
            "CPIS_DATABSE_URL is not one cpis knows",
        );
        check(
            None,
            &[("CPIS_DATABASE_URL", "mysql://x")],
            "must be a postgres:// URL",
        );
        check(
            None,
            &[("CPIS_LOG_FORMAT", "xml")],
            "use \"human\" or \"json\"",
        );
        check(
            None,
            &[("CPIS_CONFIG", "/no/such/file.toml")],
            "cannot read the configuration file /no/such/file.toml",
        );
    }
}
