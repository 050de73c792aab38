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
//! | `public_url`   | `CPIS_PUBLIC_URL`  | `http://` + the listening address | the URL clients use; the service's own token issuer |
//! | `oidc_issuer`  | `CPIS_OIDC_ISSUER` | unset              | the OpenID Connect provider people sign in with (NHS CIS2) |
//! | `oidc_audience`| `CPIS_OIDC_AUDIENCE` | `cpis`           | the `aud` bearer tokens must carry |
//! | `oidc_client_id` | `CPIS_OIDC_CLIENT_ID` | the audience  | this service's client id at the provider (browser sign-in) |
//! | `oidc_client_secret` | `CPIS_OIDC_CLIENT_SECRET` | unset | its client secret, if the provider gave one |
//! | `oidc_claims`  | `CPIS_OIDC_CLAIMS` | `cis2`             | `cis2`, or `claims` to name flat claims in `[oidc_claim_names]` |
//! | `development`  | `CPIS_DEVELOPMENT` | `false`            | the built-in development issuer with demo personas; loopback only |
//! | `development_la` | `CPIS_DEVELOPMENT_LA` | `E06000001`   | the LA of the social-worker and la-system personas |
//! | `signing_key_file` | `CPIS_SIGNING_KEY_FILE` | `<data_dir>/signing-key.pem` | the service's ES256 key, made on first start; share it between nodes. The access log's Ed25519 key, `log-key.pem`, is made and kept beside it |
//! | `upload_limit_mb` | `CPIS_UPLOAD_LIMIT_MB` | `512`          | the largest LA upload accepted, in MiB (a larger one gets 413) |
//! | `max_in_flight` | `CPIS_MAX_IN_FLIGHT` | `4096` | requests a node answers at once; one more gets 503 with `Retry-After` at once, so a stalled database cannot pile up connections until the process runs out of file descriptors |
//! | `notification_retention_days` | `CPIS_NOTIFICATION_RETENTION_DAYS` | `365` | how long notifications stay in the LAs' feeds |
//! | `webhook_retry_hours` | `CPIS_WEBHOOK_RETRY_HOURS` | `72` | how long a failing webhook delivery is retried before it is parked for the LA to replay |
//! | `audit_retention_years` | `CPIS_AUDIT_RETENTION_YEARS` | `8` | how long access records are kept; their removal is itself logged, and the log still verifies |
//! | `plan_retention_days` | `CPIS_PLAN_RETENTION_DAYS` | `730` | how long withdrawn plans, and plans no longer visible, are kept |
//! | `webhook_lease_seconds` | `CPIS_WEBHOOK_LEASE_SECONDS` | `60` | how long a node's claim on a delivery holds; a stopped node's deliveries are taken over after it |
//!
//! `CPIS_CONFIG` names the file when `--config` is not given. Either
//! `oidc_issuer` or `development` must be set: without one, nobody could
//! sign in. `development` cannot be combined with `oidc_issuer`, and only
//! listens on loopback addresses, so that it cannot be switched on by
//! accident in production. Plain `http://` webhooks to loopback addresses
//! are accepted only with `development` (as under `cpis demo`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cpis_auth::{ClaimMapping, ClaimNames};
use cpis_domain::LaCode;
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

/// How people sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: Option<String>,
    pub audience: String,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub claims: ClaimMapping,
}

/// The configuration `cpis serve` runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub public_url: Option<String>,
    pub oidc: OidcConfig,
    pub development: bool,
    pub development_la: LaCode,
    pub signing_key_file: Option<PathBuf>,
    pub upload_limit_mb: usize,
    pub max_in_flight: u32,
    pub notification_retention_days: u32,
    pub webhook_retry_hours: u32,
    pub webhook_lease_seconds: u32,
    pub audit_retention_years: u32,
    pub plan_retention_days: u32,
}

impl Config {
    /// The service's own key file.
    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("signing-key.pem"))
    }

    /// The log's Ed25519 key: `log-key.pem` beside the signing key, so that
    /// nodes sharing one share the other.
    pub fn log_key_path(&self) -> PathBuf {
        self.signing_key_path()
            .parent()
            .map(|dir| dir.join("log-key.pem"))
            .unwrap_or_else(|| self.data_dir.join("log-key.pem"))
    }

    /// The checks that need the whole configuration.
    fn check(self) -> Result<Config, ConfigError> {
        if self.development && self.oidc.issuer.is_some() {
            return Err(ConfigError(
                "development = true runs the built-in sign-in without passwords and cannot be combined with oidc_issuer; remove one of them".into(),
            ));
        }
        if self.development && !self.listen.ip().is_loopback() {
            return Err(ConfigError(format!(
                "development = true signs anyone in without a password, so it only listens on a loopback address (127.0.0.1 or [::1]), not {}; change listen or turn development off",
                self.listen
            )));
        }
        if !self.development && self.oidc.issuer.is_none() {
            return Err(ConfigError(
                "nobody could sign in: set oidc_issuer (CPIS_OIDC_ISSUER) to your OpenID Connect provider, or development = true (CPIS_DEVELOPMENT=true) for a local trial".into(),
            ));
        }
        Ok(self)
    }
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
    public_url: Option<String>,
    oidc_issuer: Option<String>,
    oidc_audience: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<String>,
    oidc_claims: Option<String>,
    oidc_claim_names: Option<ClaimNames>,
    development: Option<bool>,
    development_la: Option<String>,
    signing_key_file: Option<PathBuf>,
    upload_limit_mb: Option<usize>,
    max_in_flight: Option<u32>,
    notification_retention_days: Option<u32>,
    webhook_retry_hours: Option<u32>,
    webhook_lease_seconds: Option<u32>,
    audit_retention_years: Option<u32>,
    plan_retention_days: Option<u32>,
}

/// What the command line sets; it wins over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `cpis demo` turns the development issuer on.
    pub development: bool,
    pub development_la: Option<String>,
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
    "CPIS_PUBLIC_URL",
    "CPIS_OIDC_ISSUER",
    "CPIS_OIDC_AUDIENCE",
    "CPIS_OIDC_CLIENT_ID",
    "CPIS_OIDC_CLIENT_SECRET",
    "CPIS_OIDC_CLAIMS",
    "CPIS_DEVELOPMENT",
    "CPIS_DEVELOPMENT_LA",
    "CPIS_SIGNING_KEY_FILE",
    "CPIS_UPLOAD_LIMIT_MB",
    "CPIS_MAX_IN_FLIGHT",
    "CPIS_NOTIFICATION_RETENTION_DAYS",
    "CPIS_WEBHOOK_RETRY_HOURS",
    "CPIS_WEBHOOK_LEASE_SECONDS",
    "CPIS_AUDIT_RETENTION_YEARS",
    "CPIS_PLAN_RETENTION_DAYS",
    "CPIS_UPLOAD_TOKEN",
    "CPIS_UPLOAD_CLIENT_ID",
    "CPIS_UPLOAD_KEY_FILE",
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
                KNOWN_VARIABLES[..KNOWN_VARIABLES.len() - 2].join(", ")
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
        if let Some(url) = &file.public_url {
            config.public_url = Some(parse_url(url, &from_file("public_url"))?);
        }
        if let Some(url) = &file.oidc_issuer {
            config.oidc.issuer = Some(parse_url(url, &from_file("oidc_issuer"))?);
        }
        if let Some(audience) = file.oidc_audience {
            config.oidc.audience = audience;
        }
        if let Some(client_id) = file.oidc_client_id {
            config.oidc.client_id = Some(client_id);
        }
        if let Some(secret) = file.oidc_client_secret {
            config.oidc.client_secret = Some(Secret::new(secret));
        }
        if let Some(claims) = &file.oidc_claims {
            config.oidc.claims = parse_claims(
                claims,
                file.oidc_claim_names.clone(),
                &from_file("oidc_claims"),
            )?;
        } else if let Some(names) = file.oidc_claim_names.clone() {
            config.oidc.claims = ClaimMapping::Claims(names);
        }
        if let Some(development) = file.development {
            config.development = development;
        }
        if let Some(la) = &file.development_la {
            config.development_la = parse_la(la, &from_file("development_la"))?;
        }
        if let Some(path) = file.signing_key_file {
            config.signing_key_file = Some(path);
        }
        if let Some(limit) = file.upload_limit_mb {
            config.upload_limit_mb = check_limit(limit, &from_file("upload_limit_mb"))?;
        }
        for (value, key, slot) in [
            (
                file.max_in_flight,
                "max_in_flight",
                &mut config.max_in_flight,
            ),
            (
                file.notification_retention_days,
                "notification_retention_days",
                &mut config.notification_retention_days,
            ),
            (
                file.webhook_retry_hours,
                "webhook_retry_hours",
                &mut config.webhook_retry_hours,
            ),
            (
                file.webhook_lease_seconds,
                "webhook_lease_seconds",
                &mut config.webhook_lease_seconds,
            ),
            (
                file.audit_retention_years,
                "audit_retention_years",
                &mut config.audit_retention_years,
            ),
            (
                file.plan_retention_days,
                "plan_retention_days",
                &mut config.plan_retention_days,
            ),
        ] {
            if let Some(value) = value {
                *slot = check_count(value, key, &from_file(key))?;
            }
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
        if let Some(url) = env.get("CPIS_PUBLIC_URL") {
            config.public_url = Some(parse_url(url, "CPIS_PUBLIC_URL")?);
        }
        if let Some(url) = env.get("CPIS_OIDC_ISSUER") {
            config.oidc.issuer = Some(parse_url(url, "CPIS_OIDC_ISSUER")?);
        }
        if let Some(audience) = env.get("CPIS_OIDC_AUDIENCE") {
            config.oidc.audience = audience.clone();
        }
        if let Some(client_id) = env.get("CPIS_OIDC_CLIENT_ID") {
            config.oidc.client_id = Some(client_id.clone());
        }
        if let Some(secret) = env.get("CPIS_OIDC_CLIENT_SECRET") {
            config.oidc.client_secret = Some(Secret::new(secret.clone()));
        }
        if let Some(claims) = env.get("CPIS_OIDC_CLAIMS") {
            config.oidc.claims =
                parse_claims(claims, file.oidc_claim_names.clone(), "CPIS_OIDC_CLAIMS")?;
        }
        if let Some(development) = env.get("CPIS_DEVELOPMENT") {
            config.development = parse_bool(development, "CPIS_DEVELOPMENT")?;
        }
        if let Some(la) = env.get("CPIS_DEVELOPMENT_LA") {
            config.development_la = parse_la(la, "CPIS_DEVELOPMENT_LA")?;
        }
        if let Some(path) = env.get("CPIS_SIGNING_KEY_FILE") {
            config.signing_key_file = Some(PathBuf::from(path));
        }
        if let Some(limit) = env.get("CPIS_UPLOAD_LIMIT_MB") {
            let parsed = limit.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "CPIS_UPLOAD_LIMIT_MB is {limit:?}; use a whole number of MiB such as 512"
                ))
            })?;
            config.upload_limit_mb = check_limit(parsed, "CPIS_UPLOAD_LIMIT_MB")?;
        }
        for (variable, key, slot) in [
            (
                "CPIS_MAX_IN_FLIGHT",
                "max_in_flight",
                &mut config.max_in_flight,
            ),
            (
                "CPIS_NOTIFICATION_RETENTION_DAYS",
                "notification_retention_days",
                &mut config.notification_retention_days,
            ),
            (
                "CPIS_WEBHOOK_RETRY_HOURS",
                "webhook_retry_hours",
                &mut config.webhook_retry_hours,
            ),
            (
                "CPIS_WEBHOOK_LEASE_SECONDS",
                "webhook_lease_seconds",
                &mut config.webhook_lease_seconds,
            ),
            (
                "CPIS_AUDIT_RETENTION_YEARS",
                "audit_retention_years",
                &mut config.audit_retention_years,
            ),
            (
                "CPIS_PLAN_RETENTION_DAYS",
                "plan_retention_days",
                &mut config.plan_retention_days,
            ),
        ] {
            if let Some(text) = env.get(variable) {
                let parsed = text.trim().parse().map_err(|_| {
                    ConfigError(format!("{variable} is {text:?}; use a whole number"))
                })?;
                *slot = check_count(parsed, key, variable)?;
            }
        }

        if let Some(listen) = &overrides.listen {
            config.listen = parse_listen(listen, "--listen")?;
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        if overrides.development {
            config.development = true;
        }
        if let Some(la) = &overrides.development_la {
            config.development_la = parse_la(la, "--la")?;
        }
        config.check()
    }

    /// The defaults of `cpis serve`.
    pub fn serve_defaults() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("cpis-data"),
            database: Database::Embedded,
            log_format: LogFormat::Human,
            log_filter: "info".to_owned(),
            public_url: None,
            oidc: OidcConfig {
                issuer: None,
                audience: "cpis".to_owned(),
                client_id: None,
                client_secret: None,
                claims: ClaimMapping::Cis2,
            },
            development: false,
            development_la: LaCode::parse("E06000001").unwrap_or_else(|_| unreachable_la()),
            signing_key_file: None,
            upload_limit_mb: 512,
            max_in_flight: 4096,
            notification_retention_days: 365,
            webhook_retry_hours: 72,
            webhook_lease_seconds: 60,
            audit_retention_years: 8,
            plan_retention_days: 730,
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

/// `E06000001` always parses; this is never reached.
fn unreachable_la() -> LaCode {
    #[allow(clippy::panic)]
    {
        panic!("the default development LA code is valid")
    }
}

fn parse_url(value: &str, source: &str) -> Result<String, ConfigError> {
    let value = value.trim().trim_end_matches('/');
    let scheme_ok = value.starts_with("https://") || value.starts_with("http://");
    let has_host = value
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if scheme_ok && has_host && !value.contains(char::is_whitespace) {
        Ok(value.to_owned())
    } else {
        Err(ConfigError(format!(
            "{source} is {value:?}, which is not an http(s) URL such as https://auth.example.nhs.uk"
        )))
    }
}

fn parse_claims(
    value: &str,
    names: Option<ClaimNames>,
    source: &str,
) -> Result<ClaimMapping, ConfigError> {
    match value.trim() {
        "cis2" => Ok(ClaimMapping::Cis2),
        "claims" => Ok(ClaimMapping::Claims(names.unwrap_or_default())),
        other => Err(ConfigError(format!(
            "{source} is {other:?}; use \"cis2\", or \"claims\" with an [oidc_claim_names] table"
        ))),
    }
}

fn check_limit(limit: usize, source: &str) -> Result<usize, ConfigError> {
    if (1..=16 * 1024).contains(&limit) {
        Ok(limit)
    } else {
        Err(ConfigError(format!(
            "{source} is {limit}; use 1 to 16384 MiB"
        )))
    }
}

/// Checks a count setting (a duration, or requests in flight) against the
/// range that makes sense for it.
fn check_count(value: u32, key: &str, source: &str) -> Result<u32, ConfigError> {
    let (range, unit) = match key {
        "notification_retention_days" => (1..=3650, "days"),
        "webhook_retry_hours" => (1..=720, "hours"),
        "audit_retention_years" => (1..=100, "years"),
        "plan_retention_days" => (1..=36_500, "days"),
        "max_in_flight" => (16..=1_000_000, "requests"),
        _ => (5..=3600, "seconds"),
    };
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError(format!(
            "{source} is {value}; use {} to {} {unit}",
            range.start(),
            range.end()
        )))
    }
}

fn parse_bool(value: &str, source: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        other => Err(ConfigError(format!(
            "{source} is {other:?}; use true or false"
        ))),
    }
}

fn parse_la(value: &str, source: &str) -> Result<LaCode, ConfigError> {
    LaCode::parse(value).map_err(|error| ConfigError(format!("{source}: {error}")))
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
            &env(&[
                ("CPIS_DATA_DIR", "/from/env"),
                ("CPIS_LOG", "debug"),
                ("CPIS_DEVELOPMENT", "true"),
            ]),
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
        let config = Config::load(
            Config::serve_defaults(),
            &env(&[("CPIS_DEVELOPMENT", "1")]),
            &flags,
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
    }

    #[test]
    fn database_urls_select_the_store_and_stay_secret() {
        let config = Config::load(
            Config::serve_defaults(),
            &env(&[
                ("CPIS_DATABASE_URL", "postgres://cpis:hunter2@db/cpis"),
                ("CPIS_OIDC_ISSUER", "https://idp.example"),
                ("CPIS_OIDC_CLIENT_SECRET", "s3cret"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(matches!(config.database, Database::Postgres(_)));
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!format!("{config:?}").contains("s3cret"));
        let config = Config::load(
            Config::serve_defaults(),
            &env(&[("CPIS_DATABASE_URL", ""), ("CPIS_DEVELOPMENT", "true")]),
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
            Some("development = true\n[oidc_claim_names]\nuser = \"oid\"\n"),
            &[],
            "unknown field `user`",
        );
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
        check(
            None,
            &[("CPIS_MAX_IN_FLIGHT", "8"), ("CPIS_DEVELOPMENT", "true")],
            "CPIS_MAX_IN_FLIGHT is 8; use 16 to 1000000 requests",
        );
        check(
            Some("development = true\nmax_in_flight = 0\n"),
            &[],
            "use 16 to 1000000 requests",
        );
    }

    #[test]
    fn the_bound_on_requests_in_flight_is_set_by_file_or_environment() {
        let config = Config::load(
            Config::serve_defaults(),
            &env(&[("CPIS_DEVELOPMENT", "true")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.max_in_flight, 4096);
        let file = write("development = true\nmax_in_flight = 100\n");
        let overrides = Overrides {
            config_file: Some(file.path().to_owned()),
            ..Overrides::default()
        };
        let config = Config::load(Config::serve_defaults(), &env(&[]), &overrides).unwrap();
        assert_eq!(config.max_in_flight, 100);
        let config = Config::load(
            Config::serve_defaults(),
            &env(&[("CPIS_MAX_IN_FLIGHT", "200")]),
            &overrides,
        )
        .unwrap();
        assert_eq!(config.max_in_flight, 200, "the environment over the file");
    }
}
