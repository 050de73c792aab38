//! Notifications to local authorities: the pull feed, webhooks signed in the
//! Standard Webhooks form, the delivery worker, and repeat-attendance alerts.
//!
//! Every item is written to the outbox in the same transaction as the look
//! that caused it (see `query.rs`). The feed reads the outbox directly; the
//! worker pushes the items of LAs with a webhook, retrying with back-off for
//! a configurable period (72 hours) before parking an item for the LA to
//! replay. Items carry no clinical information: who looked, where, when.

use std::collections::HashMap;
use std::net::IpAddr;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cpis_domain::{AccessRecord, Attendance, LaCode, RepeatRule};
use cpis_store::{
    DeliveryCounts, FailedItem, OutboxClaim, OutboxItem, OutboxKind, Payload, Store, Webhook,
};
use serde::Serialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{CoreError, Cpis};

/// How notifications are kept and delivered.
#[derive(Debug, Clone, Copy)]
pub struct NotificationSettings {
    /// How long items stay in the feed.
    pub retention: Duration,
    /// How long a failing delivery is retried before it is parked.
    pub retry_for: Duration,
    /// How long a node's claim on an item holds; a crashed node's items are
    /// taken over after this.
    pub lease: Duration,
    /// How long one POST may take.
    pub attempt_timeout: std::time::Duration,
    /// Items one step claims.
    pub batch: usize,
    /// Accept `http://` webhooks on loopback addresses (the demo and
    /// development only).
    pub allow_loopback_http: bool,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            retention: Duration::days(365),
            retry_for: Duration::hours(72),
            lease: Duration::seconds(60),
            attempt_timeout: std::time::Duration::from_secs(10),
            batch: 64,
            allow_loopback_http: false,
        }
    }
}

/// The first retry waits this long; each later one twice the last, up to
/// [`MAX_BACKOFF`], less up to half at random so that retries from many
/// items do not arrive together.
const FIRST_BACKOFF: Duration = Duration::seconds(5);
const MAX_BACKOFF: Duration = Duration::hours(1);

/// The wait before retrying an item that has failed `attempts` times.
pub fn backoff(attempts: u32) -> Duration {
    let full = FIRST_BACKOFF
        .checked_mul(1i32 << attempts.min(20))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    full - full * (fastrand::f64() / 2.0)
}

/// The access item an LA receives when one of its children is looked at.
pub(crate) fn access_item(la: LaCode, record: &AccessRecord) -> OutboxItem {
    let id = cpis_store::log::id_at(record.at);
    OutboxItem {
        id,
        la,
        kind: OutboxKind::Access,
        // Cannot fail: strings, a UUID and a unit enum.
        payload: Payload::of(&LookPayload::of(record, id, OutboxKind::Access))
            .unwrap_or_else(|_| Value::Null.into()),
        created_at: record.at,
        attempts: 0,
    }
}

/// The alert an LA receives when its child has been seen at `rule`'s number
/// of organisations within its window; `record` is the look that tipped it.
pub(crate) fn repeat_item(
    la: LaCode,
    record: &AccessRecord,
    rule: RepeatRule,
    attendances: &[Attendance],
) -> OutboxItem {
    let id = cpis_store::log::id_at(record.at);
    let kind = OutboxKind::RepeatAttendance;
    let mut payload = match serde_json::to_value(LookPayload::of(record, id, kind)) {
        Ok(Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    payload.insert("rule".into(), json!(rule));
    payload.insert("attendances".into(), json!(attendances));
    OutboxItem {
        id,
        la,
        kind,
        payload: Value::Object(payload).into(),
        created_at: record.at,
        attempts: 0,
    }
}

/// What every item about a look says of it. Serialised straight to text for
/// an access item, as every look makes one per owning LA: a tree of maps
/// made and written out cost about 7% of the request-handling threads in a
/// profile of the query benchmark. The fields are in the order a map of
/// them gave (alphabetical), as LAs have received them.
#[derive(Serialize)]
struct LookPayload<'a> {
    accessed_at: String,
    id: Uuid,
    kind: &'static str,
    nhs_number: String,
    organisation_code: &'a str,
    organisation_name: &'a str,
    role: &'a str,
    setting_type: cpis_domain::SettingType,
    user_name: &'a str,
}

impl<'a> LookPayload<'a> {
    fn of(record: &'a AccessRecord, id: Uuid, kind: OutboxKind) -> Self {
        LookPayload {
            accessed_at: record.at.format(&Rfc3339).unwrap_or_default(),
            id,
            kind: kind.code(),
            nhs_number: record.nhs_number.digits(),
            organisation_code: record.organisation_code.as_str(),
            organisation_name: &record.organisation_name,
            role: &record.role_name,
            setting_type: record.setting_type,
            user_name: &record.user_name,
        }
    }
}

/// A page of an LA's feed and the cursor to ask for the next.
#[derive(Debug, Clone, Serialize)]
pub struct FeedPage {
    pub items: Vec<Payload>,
    /// Pass as `after` to read on; the same cursor when nothing was new.
    pub next: String,
}

/// A webhook just registered, with its secret: shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredWebhook {
    pub url: String,
    pub secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An LA's webhook as it stands, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookStatus {
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(flatten)]
    pub deliveries: DeliveryCounts,
}

/// What one step of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub parked: usize,
}

/// One node's delivery worker: its name (for claims) and its HTTP client.
#[derive(Clone)]
pub struct Deliverer {
    node: String,
    http: reqwest::Client,
}

impl Deliverer {
    /// `allow_loopback` lets deliveries reach this machine (the demo and
    /// development, as [`NotificationSettings::allow_loopback_http`]).
    pub fn new(
        node: impl Into<String>,
        attempt_timeout: std::time::Duration,
        allow_loopback: bool,
    ) -> Result<Self, CoreError> {
        let http = reqwest::Client::builder()
            .timeout(attempt_timeout)
            .connect_timeout(attempt_timeout)
            // A redirect is an answer to fix, not one to follow: it could
            // send a child's NHS number somewhere the LA never registered.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(PublicAddresses { allow_loopback })
            .user_agent(concat!("cpis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CoreError::Internal(format!("the webhook client: {error}")))?;
        Ok(Deliverer {
            node: node.into(),
            http,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }
}

/// Makes a new signing secret in Standard Webhooks' form: `whsec_` and 32
/// random bytes in base64.
fn new_secret() -> Result<String, CoreError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| CoreError::Internal("no randomness for a webhook secret".into()))?;
    Ok(format!("whsec_{}", BASE64.encode(bytes)))
}

/// The `webhook-signature` header for a message, as Standard Webhooks
/// defines it: `v1,` and the base64 HMAC-SHA256, keyed with the secret's
/// bytes, of `{id}.{timestamp}.{body}`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, CoreError> {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .ok_or_else(|| {
            CoreError::Internal("a stored webhook secret is not in whsec_ form".into())
        })?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    Ok(format!("v1,{}", BASE64.encode(context.sign().as_ref())))
}

/// Addresses a webhook may never reach, however it is named: the
/// unspecified address, link-local ones (a cloud's metadata service among
/// them), and loopback unless `allow_loopback`. IPv4 written as IPv6 is
/// judged as IPv4.
fn forbidden(ip: IpAddr, allow_loopback: bool) -> bool {
    let ip = ip.to_canonical();
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    link_local || (ip.is_loopback() && !allow_loopback)
}

/// Resolves webhook hosts, keeping only addresses a webhook may reach, so
/// that a name pointing at the server's own machine or a metadata service
/// (or one changed to point there after registration) is never posted to.
struct PublicAddresses {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for PublicAddresses {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| !forbidden(address.ip(), allow_loopback))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no address a webhook may be sent to").into());
            }
            let addresses: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addresses)
        })
    }
}

/// Checks a webhook address: `https` with a host, no credentials or
/// fragment; never a loopback or link-local address (the server's own
/// services, or a cloud's metadata endpoint); plain `http` only to loopback
/// and only where the setting allows (the demo).
fn check_webhook_url(text: &str, allow_loopback_http: bool) -> Result<reqwest::Url, CoreError> {
    let bad = |why: &str| CoreError::BadRequest(format!("the webhook url {text:?} {why}"));
    if text.len() > 2048 {
        return Err(bad("is longer than 2048 characters"));
    }
    let url = reqwest::Url::parse(text).map_err(|error| bad(&format!("is not a URL: {error}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a #fragment"));
    }
    let host = url.host_str().ok_or_else(|| bad("has no host"))?;
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical());
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let loopback = name == "localhost"
        || name.ends_with(".localhost")
        || ip.is_some_and(|ip| ip.is_loopback());
    let link_local = ip.is_some_and(|ip| forbidden(ip, true));
    match url.scheme() {
        _ if link_local => Err(bad("points at a link-local or unspecified address")),
        "https" if loopback && !allow_loopback_http => {
            Err(bad("points at this server's own machine"))
        }
        "https" => Ok(url),
        "http" if loopback && allow_loopback_http => Ok(url),
        "http" => Err(bad(
            "must use https (plain http is accepted only for loopback addresses in the demo)",
        )),
        _ => Err(bad("must use https")),
    }
}

impl<S: Store> Cpis<S> {
    /// The LA's feed after `after` (a cursor from an earlier page, or none
    /// for the beginning), at most `limit` items.
    pub async fn notifications_of(
        &self,
        la: LaCode,
        after: Option<&str>,
        limit: usize,
    ) -> Result<FeedPage, CoreError> {
        let cursor = match after.map(str::trim) {
            None | Some("") => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                CoreError::BadRequest(format!(
                    "after={text:?} is not a cursor; pass the \"next\" of an earlier page"
                ))
            })?,
        };
        if !(1..=1000).contains(&limit) {
            return Err(CoreError::BadRequest("limit must be 1 to 1000".into()));
        }
        let page = self.store.notifications(la, cursor, limit).await?;
        let next = page.last().map_or(cursor, |(seq, _)| *seq);
        Ok(FeedPage {
            items: page.into_iter().map(|(_, item)| item.payload).collect(),
            next: next.to_string(),
        })
    }

    /// Registers (or replaces) the LA's webhook with a new secret.
    pub async fn register_webhook(
        &self,
        la: LaCode,
        url: &str,
    ) -> Result<RegisteredWebhook, CoreError> {
        let url = check_webhook_url(url.trim(), self.notifications.allow_loopback_http)?;
        let webhook = Webhook {
            la,
            url: url.to_string(),
            secret: new_secret()?,
            created_at: self.clock.now(),
        };
        self.store.put_webhook(webhook.clone()).await?;
        tracing::info!(la = %la, url = %webhook.url, "webhook registered");
        Ok(RegisteredWebhook {
            url: webhook.url,
            secret: webhook.secret,
            created_at: webhook.created_at,
        })
    }

    pub async fn webhook_status(&self, la: LaCode) -> Result<WebhookStatus, CoreError> {
        let webhook = self.store.webhook(la).await?.ok_or_else(|| {
            CoreError::NotFound("your local authority has no webhook; PUT one first".into())
        })?;
        Ok(WebhookStatus {
            url: webhook.url,
            created_at: webhook.created_at,
            deliveries: self.store.delivery_counts(la).await?,
        })
    }

    pub async fn remove_webhook(&self, la: LaCode) -> Result<(), CoreError> {
        if self.store.delete_webhook(la).await? {
            tracing::info!(la = %la, "webhook removed");
            Ok(())
        } else {
            Err(CoreError::NotFound(
                "your local authority has no webhook".into(),
            ))
        }
    }

    pub async fn failed_deliveries(
        &self,
        la: LaCode,
        limit: usize,
    ) -> Result<Vec<FailedItem>, CoreError> {
        Ok(self.store.failed_outbox(la, limit.clamp(1, 1000)).await?)
    }

    /// Makes parked items due again: all of them, or those listed.
    pub async fn replay_deliveries(
        &self,
        la: LaCode,
        ids: Option<Vec<Uuid>>,
    ) -> Result<u64, CoreError> {
        let replayed = self.store.replay_outbox(la, ids, self.clock.now()).await?;
        if replayed > 0 {
            self.outbox_written.notify_one();
        }
        Ok(replayed)
    }

    /// Waits until a look writes an item to push (or parked items are
    /// replayed), or `at_most` passes.
    pub async fn outbox_written(&self, at_most: std::time::Duration) {
        let _ = tokio::time::timeout(at_most, self.outbox_written.notified()).await;
    }

    /// One step of the delivery worker: claims due items, POSTs each to its
    /// LA's webhook, and records the outcome (delivered, retried later, or
    /// parked once `retry_for` has passed since the item was written).
    pub async fn deliver_step(&self, deliverer: &Deliverer) -> Result<DeliveryReport, CoreError> {
        let now = self.clock.now();
        let items = self
            .store
            .claim_outbox(OutboxClaim {
                node: deliverer.node.clone(),
                now,
                lease: self.notifications.lease,
                limit: self.notifications.batch,
            })
            .await?;
        let mut report = DeliveryReport {
            claimed: items.len(),
            ..DeliveryReport::default()
        };
        if items.is_empty() {
            return Ok(report);
        }
        let mut webhooks: HashMap<LaCode, Option<Webhook>> = HashMap::new();
        for item in &items {
            if let std::collections::hash_map::Entry::Vacant(slot) = webhooks.entry(item.la) {
                slot.insert(self.store.webhook(item.la).await?);
            }
        }
        let attempts = items.iter().map(|item| {
            let webhook = webhooks.get(&item.la).cloned().flatten();
            async move {
                let outcome = match webhook {
                    Some(webhook) => self.post(deliverer, &webhook, item).await,
                    None => Err("the webhook was removed".to_owned()),
                };
                (item, outcome)
            }
        });
        let outcomes = futures_util::future::join_all(attempts).await;
        let mut delivered = Vec::new();
        let finished_at = self.clock.now();
        for (item, outcome) in outcomes {
            match outcome {
                Ok(()) => delivered.push(item.id),
                Err(error) if finished_at - item.created_at >= self.notifications.retry_for => {
                    tracing::warn!(la = %item.la, id = %item.id, %error, "delivery parked after its retries ran out");
                    self.store
                        .park_outbox(&deliverer.node, item.id, finished_at, &error)
                        .await?;
                    report.parked += 1;
                }
                Err(error) => {
                    let retry_at = finished_at + backoff(item.attempts);
                    tracing::info!(la = %item.la, id = %item.id, %error, attempts = item.attempts + 1, "delivery failed; will retry");
                    self.store
                        .retry_outbox(&deliverer.node, item.id, retry_at, &error)
                        .await?;
                    report.retried += 1;
                }
            }
        }
        report.delivered = self
            .store
            .complete_outbox(&deliverer.node, delivered, finished_at)
            .await? as usize;
        Ok(report)
    }

    async fn post(
        &self,
        deliverer: &Deliverer,
        webhook: &Webhook,
        item: &OutboxItem,
    ) -> Result<(), String> {
        let body = item.payload.as_str().as_bytes().to_vec();
        let id = item.id.to_string();
        // The receiver checks this against its own clock to refuse replays,
        // so it is the wall clock's time of sending, whatever the service's
        // clock says (tests move that one on).
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature =
            sign(&webhook.secret, &id, timestamp, &body).map_err(|error| error.to_string())?;
        let response = deliverer
            .http
            .post(&webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    "timed out".to_owned()
                } else if error.is_connect() {
                    "could not connect".to_owned()
                } else {
                    format!("request failed: {error}")
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }

    /// Removes notifications older than the retention period.
    pub async fn purge_notifications(&self) -> Result<u64, CoreError> {
        let before = self.clock.now() - self.notifications.retention;
        Ok(self.store.purge_outbox(before).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_item_is_written_as_its_map_was() {
        let nhs = cpis_domain::NhsNumber::parse("9998935822").unwrap_or_else(|_| unreachable!());
        let record = cpis_store::conformance::test_access(nhs, OffsetDateTime::now_utc(), true);
        let la = LaCode::parse("E09000007").unwrap_or_else(|_| unreachable!());
        let item = access_item(la, &record);
        // The map access items were made from before: the same bytes, keys
        // in the same order, as LAs have received.
        let map = json!({
            "nhs_number": record.nhs_number.digits(),
            "accessed_at": record.at.format(&Rfc3339).unwrap_or_default(),
            "user_name": record.user_name,
            "role": record.role_name,
            "organisation_code": record.organisation_code,
            "organisation_name": record.organisation_name,
            "setting_type": record.setting_type,
            "id": item.id,
            "kind": "access",
        });
        assert_eq!(item.payload.as_str(), map.to_string());
        let alert = repeat_item(
            la,
            &record,
            RepeatRule::new(3, 30).unwrap_or_else(|_| unreachable!()),
            &[],
        );
        let Value::Object(mut fields) = alert.payload.to_value() else {
            unreachable!()
        };
        assert!(fields.remove("rule").is_some() && fields.remove("attendances").is_some());
        let Value::Object(mut expected) = map else {
            unreachable!()
        };
        expected.insert("id".into(), json!(alert.id));
        expected.insert("kind".into(), json!("repeat_attendance"));
        assert_eq!(fields, expected, "an alert says the same of its look");
    }

    #[test]
    fn webhook_addresses_are_checked() {
        let ok = |url: &str, dev: bool| check_webhook_url(url, dev).is_ok();
        assert!(ok("https://hooks.camden.example/cpis", false));
        assert!(
            ok("https://10.1.2.3:8443/cpis", false),
            "private networks such as HSCN"
        );
        assert!(!ok("http://hooks.camden.example/cpis", false));
        assert!(
            !ok("http://hooks.camden.example/cpis", true),
            "http only to loopback"
        );
        assert!(!ok("http://127.0.0.1:9000/hook", false));
        assert!(ok("http://127.0.0.1:9000/hook", true));
        assert!(ok("http://[::1]:9000/hook", true));
        assert!(ok("http://localhost:9000/hook", true));
        assert!(
            !ok("https://127.0.0.1/hook", false),
            "the server's own machine"
        );
        assert!(
            !ok("https://169.254.169.254/latest/meta-data", true),
            "metadata endpoints"
        );
        assert!(!ok("https://[fe80::1]/hook", true));
        assert!(
            !ok("https://[::ffff:169.254.169.254]/", true),
            "IPv4 written as IPv6"
        );
        assert!(!ok("https://[::ffff:127.0.0.1]/hook", false));
        assert!(!ok("https://localhost./hook", false));
        assert!(!ok("https://api.localhost/hook", false));
        assert!(!ok("https://user:pass@hooks.camden.example/", false));
        assert!(!ok("https://hooks.camden.example/#x", false));
        assert!(!ok("ftp://hooks.camden.example/", false));
        assert!(!ok("not a url", false));
    }

    #[tokio::test]
    async fn names_are_resolved_to_permitted_addresses_only() {
        use reqwest::dns::Resolve;
        let name = |host: &str| host.parse::<reqwest::dns::Name>().unwrap();
        let strict = PublicAddresses {
            allow_loopback: false,
        };
        assert!(
            strict.resolve(name("localhost")).await.is_err(),
            "no way back to this machine"
        );
        let demo = PublicAddresses {
            allow_loopback: true,
        };
        let found: Vec<_> = demo.resolve(name("localhost")).await.unwrap().collect();
        assert!(found.iter().all(|address| address.ip().is_loopback()));
        assert!(forbidden("::ffff:169.254.169.254".parse().unwrap(), true));
        assert!(!forbidden("10.1.2.3".parse().unwrap(), false));
    }

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The vector in the Standard Webhooks reference library's tests.
        let signature = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(new_secret().unwrap().starts_with("whsec_"));
        assert_ne!(new_secret().unwrap(), new_secret().unwrap());
    }

    #[test]
    fn back_off_doubles_with_jitter_up_to_an_hour() {
        for attempts in 0..30 {
            let full = (FIRST_BACKOFF * 2i32.pow(attempts.min(20))).min(MAX_BACKOFF);
            let wait = backoff(attempts);
            assert!(wait <= full && wait >= full / 2, "{attempts}: {wait}");
        }
    }
}
