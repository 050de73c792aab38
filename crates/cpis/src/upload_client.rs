//! `cpis upload`: sends an LA's file to a cpis server and reports the
//! acknowledgement.
//!
//! Credentials, in order: `--token` (or `CPIS_UPLOAD_TOKEN`), a bearer token;
//! or `--client-id` and `--key` (or `CPIS_UPLOAD_CLIENT_ID` and
//! `CPIS_UPLOAD_KEY_FILE`), the LA system's registered client id and its
//! PKCS#8 P-256 private key, with which a short-lived access token is asked
//! for by client credentials with a signed JWT assertion.
//!
//! Exit codes: 0 every record accepted (CPF02); 3 some or all records
//! rejected (CPF03, CPF04); 4 the file was refused (CPF01 malformed, a
//! snapshot over its guard, too large, a wrong format); 1 anything else
//! (the server unreachable, the credentials refused).

use std::path::PathBuf;
use std::time::Duration;

use cpis_auth::SigningKey;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// What the user asked for: `cpis upload`'s arguments.
#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The file: .json for JSON, anything else is CSV.
    pub file: PathBuf,
    /// The cpis server, e.g. https://cpis.example.nhs.uk
    #[arg(long)]
    pub server: String,
    /// The LA the file is from; the credentials must be this LA's.
    #[arg(long)]
    pub la: String,
    /// changes (inserts and updates) or snapshot (all current plans; the rest are withdrawn).
    #[arg(long, default_value = "changes")]
    pub mode: String,
    /// Let a snapshot withdraw more than 10% of the LA's plans.
    #[arg(long)]
    pub force: bool,
    /// Write the acknowledgement as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Makes a retried upload return the first acknowledgement.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// A bearer token.
    #[arg(long, env = "CPIS_UPLOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The LA system's client id (with --key).
    #[arg(long, env = "CPIS_UPLOAD_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The LA system's private key (PKCS#8 PEM), to sign its client assertion.
    #[arg(long = "key", env = "CPIS_UPLOAD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// How the command ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadExit {
    AllAccepted = 0,
    Failed = 1,
    SomeRejected = 3,
    Refused = 4,
}

/// A failure, said as one sentence, with its exit code.
pub struct UploadFailure {
    pub exit: UploadExit,
    pub message: String,
}

fn failed(message: impl Into<String>) -> UploadFailure {
    UploadFailure {
        exit: UploadExit::Failed,
        message: message.into(),
    }
}

pub async fn run(args: UploadArgs) -> Result<UploadExit, UploadFailure> {
    let server = args.server.trim_end_matches('/').to_owned();
    let format = match args
        .file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(ext) if ext == "json" => "application/json",
        _ => "text/csv",
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|error| failed(error.to_string()))?;
    let token = credentials(&http, &server, &args).await?;

    // Check the credentials are the LA's the user named, before sending anything.
    let profile = http
        .get(format!("{server}/la/v1/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|error| failed(format!("cannot reach {server}: {error}")))?;
    if !profile.status().is_success() {
        return Err(failed(format!(
            "{server} refused these credentials ({}): {}",
            profile.status(),
            diagnostics(profile.json().await.unwrap_or(Value::Null))
        )));
    }
    let profile: Value = profile
        .json()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if profile["code"] != args.la.as_str() {
        return Err(failed(format!(
            "these credentials are for {} ({}), not {}; check --la",
            profile["code"].as_str().unwrap_or("?"),
            profile["name"].as_str().unwrap_or("?"),
            args.la
        )));
    }

    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|error| failed(format!("cannot read {}: {error}", args.file.display())))?;
    let size = file
        .metadata()
        .await
        .map(|meta| meta.len())
        .unwrap_or_default();
    let progress = ProgressBar::new(size);
    progress.set_style(
        ProgressStyle::with_template("{spinner} sending {bytes}/{total_bytes} [{bar:30}] {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ticker = progress.clone();
    let chunks = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            ticker.inc(bytes.len() as u64);
        }
        chunk
    });
    let mut request = http
        .post(format!(
            "{server}/la/v1/uploads?mode={}&force={}",
            args.mode, args.force
        ))
        .bearer_auth(&token)
        .header("content-type", format)
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(chunks));
    if let Some(key) = &args.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let response = request
        .send()
        .await
        .map_err(|error| failed(format!("the upload did not complete: {error}")))?;
    progress.finish_and_clear();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        std::fs::write(out, text)
            .map_err(|error| failed(format!("cannot write {}: {error}", out.display())))?;
    }
    if body.get("file_code").is_none() {
        let exit = if matches!(status.as_u16(), 409 | 413 | 415) {
            UploadExit::Refused
        } else {
            UploadExit::Failed
        };
        return Err(UploadFailure {
            exit,
            message: format!(
                "{server} refused the file ({status}): {}",
                diagnostics(body)
            ),
        });
    }
    eprintln!("{}", summary(&body));
    Ok(match body["file_code"].as_str() {
        Some("CPF02") => UploadExit::AllAccepted,
        Some("CPF03" | "CPF04") => UploadExit::SomeRejected,
        _ => UploadExit::Refused,
    })
}

async fn credentials(
    http: &reqwest::Client,
    server: &str,
    args: &UploadArgs,
) -> Result<String, UploadFailure> {
    if let Some(token) = &args.token {
        return Ok(token.trim().to_owned());
    }
    let (Some(client_id), Some(key_file)) = (&args.client_id, &args.key_file) else {
        return Err(failed(
            "give credentials: --token (CPIS_UPLOAD_TOKEN), or --client-id and --key (CPIS_UPLOAD_CLIENT_ID, CPIS_UPLOAD_KEY_FILE)",
        ));
    };
    let pem = std::fs::read_to_string(key_file)
        .map_err(|error| failed(format!("cannot read {}: {error}", key_file.display())))?;
    let key = SigningKey::from_pem(&pem)
        .map_err(|error| failed(format!("{}: {error}", key_file.display())))?;
    let token_endpoint = format!("{server}/oauth2/token");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let assertion = key
        .sign(&json!({
            "iss": client_id, "sub": client_id, "aud": token_endpoint,
            "iat": now, "exp": now + 60, "jti": uuid::Uuid::now_v7().to_string(),
        }))
        .map_err(|error| failed(error.to_string()))?;
    let response = http
        .post(&token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .map_err(|error| failed(format!("cannot reach {server}: {error}")))?;
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            failed(format!(
                "{server} gave no token for client {client_id}: {}",
                body["error_description"]
                    .as_str()
                    .unwrap_or("no reason given")
            ))
        })
}

fn diagnostics(body: Value) -> String {
    body["issue"][0]["diagnostics"]
        .as_str()
        .or_else(|| body["records"][0]["reason"].as_str())
        .unwrap_or("no reason given")
        .to_owned()
}

/// A readable account of an acknowledgement.
pub fn summary(ack: &Value) -> String {
    let mut text = format!(
        "{} upload {}: {} accepted, {} rejected, {} withdrawn ({})",
        ack["mode"].as_str().unwrap_or("?"),
        ack["id"].as_str().unwrap_or("?"),
        ack["accepted"],
        ack["rejected"],
        ack["withdrawn"],
        ack["file_code"].as_str().unwrap_or("?"),
    );
    let rejected: Vec<&Value> = ack["records"]
        .as_array()
        .map(|records| records.iter().filter(|r| r["code"] != "CPR06").collect())
        .unwrap_or_default();
    for record in rejected.iter().take(20) {
        text.push_str(&format!(
            "\n  line {}: {} {}",
            record["line"],
            record["code"].as_str().unwrap_or("?"),
            record["reason"].as_str().unwrap_or("")
        ));
    }
    if rejected.len() > 20 {
        text.push_str(&format!(
            "\n  … and {} more (see --out for all)",
            rejected.len() - 20
        ));
    }
    text
}
