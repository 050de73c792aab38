//! The use cases of CP-IS, written against the `Store` trait: the only place
//! where the domain's rules meet storage.

pub mod audit;
pub mod demo;
mod duplicates;
pub mod identity;
pub mod notify;
pub mod overview;
pub mod query;
pub mod reference;
pub mod reports;
pub mod upload;

use std::sync::Arc;

use cpis_domain::{DomainError, LocalAuthority};
use cpis_store::{PlanBatch, Store, StoreCounts, StoreError};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// What the use cases report, turned into HTTP statuses at the edge.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("reference data is invalid: {0}")]
    ReferenceData(String),
    /// The request cannot be acted on as sent; the message says why.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// An outside service (the identity provider) failed.
    #[error("{0}")]
    Provider(String),
    /// The request is sound but refused as it stands (a snapshot that would
    /// withdraw too much); the message says how to proceed.
    #[error("{0}")]
    Refused(String),
    /// The principal may not do this; the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// The service cannot do this safely now (fail closed); try again.
    #[error("{0}")]
    Unavailable(String),
    /// A request body larger than the configured limit.
    #[error("the request is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    /// A fault of ours; logged, shown as a plain 500.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where time comes from: the wall clock in service, a fixed instant in tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(OffsetDateTime::now_utc))
    }

    /// Time from `now`: a clock a test can move forward.
    pub fn from_fn(now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    pub fn fixed(at: OffsetDateTime) -> Self {
        Clock(Arc::new(move || at))
    }

    /// Now, to the microsecond: the precision both stores keep, so that an
    /// instant reads back exactly as it was written.
    pub fn now(&self) -> OffsetDateTime {
        let now = (self.0)();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }

    /// Today's date in the UK, which the plan rules use.
    pub fn today(&self) -> time::Date {
        cpis_domain::uk_date(self.now())
    }
}

/// Figures for the status page: counts only, nothing about a child.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServiceStatus {
    #[serde(flatten)]
    pub counts: StoreCounts,
}

/// What `cpis demo` loaded, or found already loaded.
#[derive(Debug, Clone)]
pub struct DemoLoad {
    pub seed: u64,
    pub plans_loaded: usize,
    pub reused: bool,
    pub examples: Vec<demo::DemoExample>,
}

/// Bounds on what one request may ask of the service.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest upload accepted, in bytes.
    pub upload_bytes: usize,
    /// Requests answered at once; one more is refused as unavailable at
    /// once rather than queued (`max_in_flight`).
    pub in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            upload_bytes: 512 * 1024 * 1024,
            in_flight: 4096,
        }
    }
}

/// The service: every use case, over one store.
pub struct Cpis<S> {
    store: Arc<S>,
    clock: Clock,
    identity: identity::Identity,
    limits: Limits,
    notifications: notify::NotificationSettings,
    /// The log key and when checkpoints are made; none, none are made.
    log: Option<(Arc<audit::LogSigner>, audit::CheckpointPolicy)>,
    retention: audit::RetentionSettings,
    /// Woken when a look writes outbox items, so the worker delivers at once.
    outbox_written: tokio::sync::Notify,
    /// The last whole-log check run on request, and when it finished.
    last_verification: std::sync::Mutex<Option<(time::OffsetDateTime, audit::VerifyReport)>>,
    /// Set while a requested check runs, so that only one runs at a time.
    verifying: std::sync::atomic::AtomicBool,
    /// Care settings recently read, so that a query does not read its
    /// caller's organisation from the store twice a request.
    organisations: std::sync::RwLock<
        std::collections::HashMap<
            cpis_domain::OdsCode,
            (cpis_domain::Organisation, std::time::Instant),
        >,
    >,
}

/// How long a care setting read from the store is reused. Settings change
/// rarely; a change reaches every node within this time.
const ORGANISATION_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl<S: Store> Cpis<S> {
    pub fn new(store: Arc<S>, clock: Clock, identity: identity::Identity) -> Self {
        Cpis {
            store,
            clock,
            identity,
            limits: Limits::default(),
            notifications: notify::NotificationSettings::default(),
            log: None,
            retention: audit::RetentionSettings::default(),
            outbox_written: tokio::sync::Notify::new(),
            last_verification: std::sync::Mutex::default(),
            verifying: std::sync::atomic::AtomicBool::new(false),
            organisations: std::sync::RwLock::default(),
        }
    }

    pub fn with_notifications(mut self, settings: notify::NotificationSettings) -> Self {
        self.notifications = settings;
        self
    }

    pub fn with_log(mut self, signer: audit::LogSigner, policy: audit::CheckpointPolicy) -> Self {
        self.log = Some((Arc::new(signer), policy));
        self
    }

    pub fn with_retention(mut self, retention: audit::RetentionSettings) -> Self {
        self.retention = retention;
        self
    }

    /// The log key and checkpoint policy, where the service signs checkpoints.
    pub fn log(&self) -> Option<(Arc<audit::LogSigner>, audit::CheckpointPolicy)> {
        self.log.clone()
    }

    pub fn notification_settings(&self) -> notify::NotificationSettings {
        self.notifications
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A registered care setting, from memory when it was read in the last minute.
    pub async fn organisation(
        &self,
        code: cpis_domain::OdsCode,
    ) -> Result<Option<cpis_domain::Organisation>, CoreError> {
        let cached = self.organisations.read().ok().and_then(|known| {
            known
                .get(&code)
                .filter(|(_, read_at)| read_at.elapsed() < ORGANISATION_CACHE_TTL)
                .map(|(organisation, _)| organisation.clone())
        });
        if let Some(organisation) = cached {
            return Ok(Some(organisation));
        }
        let found = self.store.organisation(code).await?;
        if let (Some(organisation), Ok(mut known)) = (&found, self.organisations.write()) {
            if known.len() > 100_000 {
                known.clear();
            }
            known.insert(code, (organisation.clone(), std::time::Instant::now()));
        }
        Ok(found)
    }

    /// Removes expired short-lived entries (sessions, sign-in states,
    /// authorization codes, used assertion ids). Reads already ignore them;
    /// this keeps the table from growing. Returns how many went.
    pub async fn purge_expired(&self) -> Result<u64, CoreError> {
        Ok(self.store.purge_ephemeral(self.clock.now()).await?)
    }

    /// Changes an LA's name and telephone numbers, and its repeat-attendance
    /// rule when one is given (otherwise the rule it has stays).
    pub async fn update_local_authority(
        &self,
        la: cpis_domain::LaCode,
        name: &str,
        emergency_duty_number: &str,
        office_hours_number: &str,
        repeat_attendance: Option<cpis_domain::RepeatRule>,
    ) -> Result<LocalAuthority, CoreError> {
        let rule = match repeat_attendance {
            Some(rule) => rule,
            None => self
                .store
                .local_authority(la)
                .await?
                .map(|current| current.repeat_attendance)
                .unwrap_or_default(),
        };
        let updated = LocalAuthority::new(
            la,
            name,
            cpis_domain::PhoneNumber::parse(emergency_duty_number)?,
            cpis_domain::PhoneNumber::parse(office_hours_number)?,
        )?
        .with_repeat_rule(rule);
        self.store
            .put_local_authorities(vec![updated.clone()])
            .await?;
        tracing::info!(la = %la, "local authority details changed");
        Ok(updated)
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// `Ok` when the service can answer queries now.
    pub async fn check_ready(&self) -> Result<(), CoreError> {
        Ok(self.store.check_ready().await?)
    }

    pub async fn status(&self) -> Result<ServiceStatus, CoreError> {
        Ok(ServiceStatus {
            counts: self.store.counts().await?,
        })
    }

    pub async fn local_authority(
        &self,
        code: cpis_domain::LaCode,
    ) -> Result<Option<LocalAuthority>, CoreError> {
        Ok(self.store.local_authority(code).await?)
    }

    pub async fn local_authorities(&self) -> Result<Vec<LocalAuthority>, CoreError> {
        Ok(self.store.local_authorities().await?)
    }

    /// Loads the shipped list of local authorities into an empty store. An
    /// existing list is left alone: authorities keep their numbers current
    /// themselves, and a restart must not undo that.
    pub async fn seed_reference_data(&self) -> Result<usize, CoreError> {
        if !self.store.local_authorities().await?.is_empty() {
            return Ok(0);
        }
        let authorities = reference::local_authorities()?;
        let count = authorities.len();
        self.store.put_local_authorities(authorities).await?;
        tracing::info!(count, "loaded the shipped list of local authorities");
        Ok(count)
    }

    /// Fills the store with the demo population for `seed`, or reuses it if
    /// this store already holds that seed's population.
    pub async fn load_demo(&self, seed: u64) -> Result<DemoLoad, CoreError> {
        const SEED_KEY: &str = "demo_seed";
        const DATE_KEY: &str = "demo_date";
        self.seed_reference_data().await?;
        let authorities = self.store.local_authorities().await?;
        if let Some(existing) = self.store.meta(SEED_KEY).await? {
            if existing != seed.to_string() {
                return Err(CoreError::ReferenceData(format!(
                    "this data directory holds the demo population for seed {existing}, not {seed}; use that seed, or another --data-dir"
                )));
            }
            let made_on = self
                .store
                .meta(DATE_KEY)
                .await?
                .and_then(|text| cpis_domain::parse_iso_date(&text).ok())
                .unwrap_or_else(|| self.clock.today());
            // Regenerating is cheap and gives the same examples as the first run.
            let population = demo::population(seed, &authorities, made_on, demo::DEMO_CHILDREN)?;
            return Ok(DemoLoad {
                seed,
                plans_loaded: 0,
                reused: true,
                examples: population.examples,
            });
        }
        let today = self.clock.today();
        self.store
            .put_organisations(reference::synthetic_organisations()?)
            .await?;
        let population = demo::population(seed, &authorities, today, demo::DEMO_CHILDREN)?;
        let plans_loaded = population.plans.len();
        let mut by_la: std::collections::BTreeMap<_, Vec<_>> = std::collections::BTreeMap::new();
        for plan in population.plans {
            by_la.entry(plan.la()).or_default().push(plan);
        }
        let at = self.clock.now();
        let batches = by_la.into_iter().map(|(la, plans)| {
            self.store.apply_plans(PlanBatch {
                la,
                batch_id: Uuid::now_v7(),
                plans: plans.into(),
                snapshot: None,
                at,
            })
        });
        // Awaited together so that the store can commit them as a group.
        for applied in futures_util::future::join_all(batches).await {
            applied?;
        }
        self.store
            .set_meta(DATE_KEY, &cpis_domain::format_iso_date(today))
            .await?;
        self.store.set_meta(SEED_KEY, &seed.to_string()).await?;
        Ok(DemoLoad {
            seed,
            plans_loaded,
            reused: false,
            examples: population.examples,
        })
    }
}
