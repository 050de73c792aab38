//! The verifiable access log: signed checkpoints (C2SP signed notes with
//! an Ed25519 key), inclusion and consistency proofs, and verification of
//! the whole log against its records and checkpoints.
//!
//! Leaves are written with their records (see `cpis_store::log`); subtree
//! hashes are folded in when a checkpoint is made, off the query path.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cpis_store::Store;
use cpis_store::log::{Checkpoint, LoggedRecord, RetentionRecord, first_id_at};
use cpis_store::merkle::{self, Frontier, Hash, Nodes};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{CoreError, Cpis};

/// When checkpoints are made: after this many new leaves, or this long
/// after the last one when anything is new.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    pub every_leaves: u64,
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_leaves: 10_000,
            every: Duration::seconds(10),
        }
    }
}

/// The shortest audit period verification accepts: a retention record
/// claiming to have removed newer records excuses nothing.
pub const MIN_AUDIT_PERIOD: Duration = Duration::days(365);

/// How long records are kept.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// Access records (the audit period).
    pub access_for: Duration,
    /// Plans, counted from when they were withdrawn or stopped being visible.
    pub plans_for: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            access_for: Duration::days(8 * 365 + 2),
            plans_for: Duration::days(2 * 365),
        }
    }
}

/// The service's log key: signs checkpoints as C2SP signed notes.
pub struct LogSigner {
    origin: String,
    key: Ed25519KeyPair,
}

/// A log's public key as outsiders hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogKey {
    /// The checkpoint origin, also the key's name.
    pub name: String,
    /// C2SP's verifier key: `name+keyhash+base64(0x01 || key)`.
    pub vkey: String,
    #[serde(skip)]
    pub public_key: [u8; 32],
}

impl LogKey {
    /// Reads a verifier key `name+hash+base64(0x01 || key)`.
    pub fn parse_vkey(vkey: &str) -> Result<LogKey, CoreError> {
        let bad = || CoreError::BadRequest(format!("{vkey:?} is not a verifier key"));
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(_), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let key = BASE64.decode(key).map_err(|_| bad())?;
        let public_key: [u8; 32] = match key.split_first() {
            Some((0x01, rest)) => rest.try_into().map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        Ok(LogKey::new(name, public_key))
    }

    fn new(name: &str, public_key: [u8; 32]) -> LogKey {
        let hash = key_hash(name, &public_key);
        let mut encoded = vec![0x01];
        encoded.extend_from_slice(&public_key);
        LogKey {
            name: name.to_owned(),
            vkey: format!(
                "{name}+{}+{}",
                hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                BASE64.encode(encoded)
            ),
            public_key,
        }
    }

    /// Checks a checkpoint note's signature by this key and reads its tree
    /// head: `(size, root)`. A key without a name (the service's own key
    /// read from its file) takes the note's origin as its name.
    pub fn open(&self, note: &str) -> Result<(u64, Hash), String> {
        let (body, signatures) = note
            .split_once("\n\n")
            .ok_or("the note has no signature lines")?;
        let body = format!("{body}\n");
        let origin = body.lines().next().unwrap_or_default();
        let name = if self.name.is_empty() {
            origin
        } else {
            self.name.as_str()
        };
        let hash = key_hash(name, &self.public_key);
        let prefix = format!("\u{2014} {name} ");
        let verified = signatures.lines().any(|line| {
            line.strip_prefix(&prefix)
                .and_then(|signature| BASE64.decode(signature).ok())
                .filter(|signature| signature.len() == 68 && signature[..4] == hash)
                .is_some_and(|signature| {
                    UnparsedPublicKey::new(&ED25519, &self.public_key)
                        .verify(body.as_bytes(), &signature[4..])
                        .is_ok()
                })
        });
        if !verified {
            return Err("the checkpoint's signature does not verify with the log key".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(name) {
            return Err("the checkpoint names another log".into());
        }
        let size = lines
            .next()
            .and_then(|size| size.parse().ok())
            .ok_or("the checkpoint has no tree size")?;
        let root: Hash = lines
            .next()
            .and_then(|root| BASE64.decode(root).ok())
            .and_then(|root| root.try_into().ok())
            .ok_or("the checkpoint has no root hash")?;
        Ok((size, root))
    }
}

fn key_hash(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(name.as_bytes());
    context.update(b"\n");
    context.update(&[0x01]);
    context.update(public_key);
    let mut hash = [0u8; 4];
    hash.copy_from_slice(&context.finish().as_ref()[..4]);
    hash
}

impl LogSigner {
    /// A new key, kept nowhere: for tests and one-off tools.
    pub fn generate(origin: &str) -> Result<Self, CoreError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| CoreError::Internal("cannot make a log key".into()))?;
        Self::from_pkcs8(origin, pkcs8.as_ref())
    }

    fn from_pkcs8(origin: &str, pkcs8: &[u8]) -> Result<Self, CoreError> {
        let key = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| CoreError::Internal("the log key is not an Ed25519 PKCS#8 key".into()))?;
        Ok(LogSigner {
            origin: origin.to_owned(),
            key,
        })
    }

    /// The key kept at `path` (base64 PKCS#8 between PEM lines), made on
    /// first use with permissions 0600. Nodes of one service share it.
    pub fn load_or_create(path: &Path, origin: &str) -> Result<Self, CoreError> {
        let unusable = |error: std::io::Error| {
            CoreError::Internal(format!("the log key {}: {error}", path.display()))
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let body: String = text
                    .lines()
                    .filter(|line| !line.starts_with("-----"))
                    .collect();
                let der = BASE64.decode(body.trim()).map_err(|_| {
                    CoreError::Internal(format!("the log key {} is not PEM", path.display()))
                })?;
                Self::from_pkcs8(origin, &der)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| CoreError::Internal("cannot make a log key".into()))?;
                let pem = format!(
                    "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                    BASE64.encode(pkcs8.as_ref())
                );
                // Written whole under another name, then linked into place:
                // nodes starting together on one shared key file all end up
                // with the first node's key, never a half-written one.
                let draft = path.with_extension(format!("{}.new", std::process::id()));
                write_private(&draft, &pem).map_err(unusable)?;
                let linked = std::fs::hard_link(&draft, path);
                let _ = std::fs::remove_file(&draft);
                match linked {
                    Ok(()) => Self::from_pkcs8(origin, pkcs8.as_ref()),
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path, origin)
                    }
                    Err(error) => Err(unusable(error)),
                }
            }
            Err(error) => Err(unusable(error)),
        }
    }

    pub fn public(&self) -> LogKey {
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(self.key.public_key().as_ref());
        LogKey::new(&self.origin, public_key)
    }

    /// The checkpoint note for a tree head: origin, size and root, then one
    /// signature line (C2SP tlog-checkpoint and signed-note).
    pub fn sign(&self, size: u64, root: &Hash) -> String {
        let body = format!("{}\n{size}\n{}\n", self.origin, BASE64.encode(root));
        let signature = self.key.sign(body.as_bytes());
        let public = self.public();
        let mut signed = key_hash(&public.name, &public.public_key).to_vec();
        signed.extend_from_slice(signature.as_ref());
        format!(
            "{body}\n\u{2014} {} {}\n",
            self.origin,
            BASE64.encode(signed)
        )
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// Subtree hashes wanted by an algorithm, found by running it once with
/// stand-in hashes (the algorithms' reads do not depend on the hashes).
struct Wanted<'a> {
    known: &'a HashMap<(u32, u64), Hash>,
    missing: BTreeSet<(u32, u64)>,
}

impl Nodes for Wanted<'_> {
    type Error = std::convert::Infallible;
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        if !self.known.contains_key(&(level, index)) {
            self.missing.insert((level, index));
        }
        Ok([0; 32])
    }
}

struct Known<'a>(&'a HashMap<(u32, u64), Hash>);

impl Nodes for Known<'_> {
    type Error = CoreError;
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, CoreError> {
        self.0.get(&(level, index)).copied().ok_or_else(|| {
            CoreError::Unavailable(format!(
                "the log's subtree {level}/{index} is not kept yet; try again after the next checkpoint"
            ))
        })
    }
}

/// What `verify_log` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub leaves: u64,
    pub checkpoints: u64,
    /// Leaves whose records were removed under the retention rules: their
    /// kept hashes stand in the tree.
    pub pruned: u64,
    /// The first problem found, said so that someone can find the record.
    pub failure: Option<String>,
}

impl<S: Store> Cpis<S> {
    /// Fetches what `run` will read that `known` lacks, then runs it.
    async fn with_nodes<T>(
        &self,
        known: &mut HashMap<(u32, u64), Hash>,
        run: impl Fn(&mut dyn FnMut(u32, u64) -> Result<Hash, CoreError>) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let mut wanted = Wanted {
            known,
            missing: BTreeSet::new(),
        };
        let _ = run(&mut |level, index| Ok(wanted.node(level, index).unwrap_or([0; 32])));
        let missing = wanted.missing;
        let (leaves, above): (Vec<_>, Vec<_>) =
            missing.into_iter().partition(|(level, _)| *level == 0);
        // Leaves come in runs: fetch each run in one read.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (_, index) in leaves {
            match runs.last_mut() {
                Some((_, end)) if *end == index => *end += 1,
                _ => runs.push((index, index + 1)),
            }
        }
        for (from, to) in runs {
            for (index, hash) in self.store.log_leaf_hashes(from, to).await? {
                known.insert((0, index), hash);
            }
        }
        if !above.is_empty() {
            let found = self.store.log_nodes(above.clone()).await?;
            for (key, hash) in above.into_iter().zip(found) {
                if let Some(hash) = hash {
                    known.insert(key, hash);
                }
            }
        }
        let mut nodes = Known(known);
        run(&mut |level, index| nodes.node(level, index))
    }

    /// Makes a checkpoint if one is due under `policy` (or whenever the log
    /// has grown, with `force`): places new leaves, keeps the subtrees they
    /// complete, and signs the new tree head.
    pub async fn make_checkpoint(
        &self,
        signer: &LogSigner,
        policy: CheckpointPolicy,
        force: bool,
    ) -> Result<Option<Checkpoint>, CoreError> {
        let size = self.store.sequence_log().await?;
        let last = self.store.latest_checkpoint().await?;
        let (old, last_at) = match &last {
            Some(checkpoint) => (checkpoint.size, Some(checkpoint.created_at)),
            None => (0, None),
        };
        let now = self.clock.now();
        let due = size > old
            && (force
                || size - old >= policy.every_leaves
                || last_at.is_none_or(|at| now - at >= policy.every));
        if !due {
            return Ok(None);
        }
        let mut known = HashMap::new();
        let made = self
            .with_nodes(&mut known, |node| {
                merkle::completed_subtrees(&mut Fn2(node), old, size)
            })
            .await?;
        for (level, index, hash) in &made {
            known.insert((*level, *index), *hash);
        }
        let root = self
            .with_nodes(&mut known, |node| merkle::root(&mut Fn2(node), size))
            .await?;
        let checkpoint = Checkpoint {
            size,
            root,
            note: signer.sign(size, &root),
            created_at: now,
        };
        self.store.put_checkpoint(made, checkpoint.clone()).await?;
        tracing::debug!(size, "log checkpoint signed");
        Ok(Some(checkpoint))
    }

    pub async fn latest_checkpoint(&self) -> Result<Checkpoint, CoreError> {
        self.store
            .latest_checkpoint()
            .await?
            .ok_or_else(|| CoreError::NotFound("the log has no checkpoint yet".into()))
    }

    /// The audit path of leaf `index` in the tree of `size` leaves, which a
    /// checkpoint must cover; with the leaf's hash.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<(Hash, Vec<Hash>), CoreError> {
        let latest = self.latest_checkpoint().await?;
        if size == 0 || size > latest.size || index >= size {
            return Err(CoreError::BadRequest(format!(
                "leaf must be below size, and size between 1 and the latest checkpoint's {}",
                latest.size
            )));
        }
        let mut known = HashMap::new();
        let proof = self
            .with_nodes(&mut known, |node| {
                merkle::inclusion_proof(&mut Fn2(node), index, size)
            })
            .await?;
        let leaf = self
            .store
            .log_leaf_hashes(index, index + 1)
            .await?
            .first()
            .map(|(_, hash)| *hash)
            .ok_or_else(|| CoreError::NotFound(format!("the log has no leaf {index}")))?;
        Ok((leaf, proof))
    }

    /// The proof that the tree of `from` leaves is a prefix of the tree of
    /// `to` leaves; `to` must be covered by a checkpoint.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, CoreError> {
        let latest = self.latest_checkpoint().await?;
        if from == 0 || from > to || to > latest.size {
            return Err(CoreError::BadRequest(format!(
                "from and to must satisfy 1 <= from <= to <= {}, the latest checkpoint's size",
                latest.size
            )));
        }
        let mut known = HashMap::new();
        self.with_nodes(&mut known, |node| {
            merkle::consistency_proof(&mut Fn2(node), from, to)
        })
        .await
    }

    pub async fn verify_log(&self, key: &LogKey) -> Result<VerifyReport, CoreError> {
        verify_log(&*self.store, key).await
    }

    /// Starts a check of the whole log with the service's own key, as a
    /// privacy officer asks, unless one is running; it goes on in the
    /// background (a national log takes minutes) and its result is kept to
    /// show until the next check. False when this server keeps no log.
    pub fn start_verification(self: &std::sync::Arc<Self>) -> bool {
        let Some((signer, _)) = self.log() else {
            return false;
        };
        if self.verifying.swap(true, Ordering::SeqCst) {
            return true;
        }
        let app = self.clone();
        tokio::spawn(async move {
            let report = app
                .verify_log(&signer.public())
                .await
                .unwrap_or_else(|error| VerifyReport {
                    failure: Some(format!("the check could not finish: {error}")),
                    ..VerifyReport::default()
                });
            if let Ok(mut last) = app.last_verification.lock() {
                *last = Some((app.clock.now(), report));
            }
            app.verifying.store(false, Ordering::SeqCst);
        });
        true
    }

    /// Whether a check started by [`Cpis::start_verification`] is running.
    pub fn verifying(&self) -> bool {
        self.verifying.load(Ordering::SeqCst)
    }

    /// The last check [`Cpis::start_verification`] finished on this node, if any.
    pub fn last_verification(&self) -> Option<(OffsetDateTime, VerifyReport)> {
        self.last_verification
            .lock()
            .ok()
            .and_then(|last| last.clone())
    }

    /// Removes access records older than the audit period, and plans
    /// withdrawn, or no longer visible, for longer than theirs. The removal
    /// is kept as a leaf of the log; the removed records' leaves stay, so
    /// checkpoints and proofs hold for everything, and verification accepts
    /// a missing record that a retention leaf covers by its time.
    pub async fn apply_retention(&self) -> Result<RetentionRecord, CoreError> {
        let now = self.clock.now();
        let today = self.clock.today();
        let settings = self.retention;
        let retention = self
            .store
            .apply_retention(RetentionRecord {
                id: Uuid::now_v7(),
                at: now,
                access_before: now - settings.access_for,
                plans_withdrawn_before: today - settings.plans_for,
                // Ended plans stay visible for 365 days after their end.
                plans_ended_before: today - settings.plans_for - Duration::days(365),
                removed_access: 0,
                removed_plans: 0,
            })
            .await?;
        if retention.removed_access + retention.removed_plans > 0 {
            tracing::info!(
                access = retention.removed_access,
                plans = retention.removed_plans,
                "removed records past their retention"
            );
        }
        Ok(retention)
    }
}

/// Recomputes the log from the records as `store` holds them now and checks
/// every checkpoint against it with `key`. Stops at the first problem: a
/// record changed or deleted, a leaf missing or out of place, a checkpoint
/// whose root or signature does not match, or a log shorter than its
/// checkpoints.
pub async fn verify_log<S: Store>(store: &S, key: &LogKey) -> Result<VerifyReport, CoreError> {
    verify_log_against(store, key, &[]).await
}

/// [`verify_log`], and also against checkpoints held outside the store
/// (signed notes an LA or other witness kept): the log must still give
/// each one's tree head. This catches a log cut short together with the
/// checkpoints that covered its end.
pub async fn verify_log_against<S: Store>(
    store: &S,
    key: &LogKey,
    outside: &[String],
) -> Result<VerifyReport, CoreError> {
    let mut held: Vec<(u64, Hash)> = Vec::with_capacity(outside.len());
    for note in outside {
        match key.open(note) {
            Ok(head) => held.push(head),
            Err(why) => {
                return Ok(VerifyReport {
                    failure: Some(format!("a checkpoint held outside: {why}")),
                    ..VerifyReport::default()
                });
            }
        }
    }
    held.sort_unstable();
    const PAGE: usize = 10_000;
    let mut report = VerifyReport::default();
    let mut frontier = Frontier::default();
    let mut checkpoints = store.checkpoints(0, PAGE).await?.into_iter().peekable();
    // Removals under the retention rules. Each may excuse missing access
    // records made before its boundary, only if it kept at least the
    // shortest audit period, is itself a leaf placed after every leaf
    // it excuses, and excuses no more records than it says it removed
    // (all checked below as the leaves pass, and at the end).
    let mut retentions = retentions_excusing(store).await?;
    // Retention id -> (records excused, highest leaf index excused).
    let mut excused: HashMap<Uuid, (u64, u64)> = HashMap::new();
    let mut retention_leaves: HashMap<Uuid, u64> = HashMap::new();
    let fail = |mut report: VerifyReport, why: String| {
        report.failure = Some(why);
        Ok(report)
    };
    loop {
        let page = store.log_entries(frontier.size(), PAGE).await?;
        if page.is_empty() {
            break;
        }
        for entry in page {
            let expected = frontier.size();
            let leaf = &entry.leaf;
            let what = format!("{} record {}", leaf.kind.code(), leaf.record_id);
            if leaf.index != expected {
                return fail(
                    report,
                    format!(
                        "leaf {expected} is missing: the log jumps to leaf {} ({what})",
                        leaf.index
                    ),
                );
            }
            if let LoggedRecord::Retention(retention) = &entry.record {
                retention_leaves.insert(retention.id, expected);
            }
            let hash = match entry.record.hash() {
                Some(hash) => hash,
                None => {
                    let is_access = leaf.kind == cpis_store::log::LogKind::Access;
                    let covering = |retentions: &[RetentionRecord]| {
                        retentions
                            .iter()
                            .find(|retention| leaf.record_id < first_id_at(retention.access_before))
                            .map(|retention| retention.id)
                    };
                    let mut pruned_by = is_access.then(|| covering(&retentions)).flatten();
                    if is_access && pruned_by.is_none() {
                        // Checked beside a running server, the housekeeping
                        // may have removed records since the retention
                        // records were read; a removal commits its record
                        // with its deletions, so reading them again now
                        // finds it. A record still not excused fails the
                        // check, so they are read again once for each
                        // removal made during the check, and once before
                        // a failure.
                        retentions = retentions_excusing(store).await?;
                        pruned_by = covering(&retentions);
                    }
                    match pruned_by {
                        Some(retention) => {
                            let (count, highest) = excused.entry(retention).or_insert((0, 0));
                            *count += 1;
                            *highest = expected;
                            report.pruned += 1;
                            leaf.hash
                        }
                        None => {
                            return fail(
                                report,
                                format!("leaf {expected}: the {what} has been deleted"),
                            );
                        }
                    }
                }
            };
            if hash != leaf.hash {
                return fail(
                    report,
                    format!("leaf {expected}: the {what} has been changed since it was logged"),
                );
            }
            if let LoggedRecord::Access(record) = &entry.record
                && record.id != leaf.record_id
            {
                return fail(report, format!("leaf {expected} stands for another record"));
            }
            frontier.push(hash);
            report.leaves += 1;
            for (size, root) in held.iter().filter(|(size, _)| *size == frontier.size()) {
                if *root != frontier.root() {
                    return fail(
                        report,
                        format!(
                            "the log no longer gives the tree head of the checkpoint of size {size} held outside"
                        ),
                    );
                }
            }
            while let Some(checkpoint) = checkpoints.next_if(|c| c.size == frontier.size()) {
                if let Some(why) = check_checkpoint(key, &checkpoint, frontier.root()) {
                    return fail(report, why);
                }
                report.checkpoints += 1;
                if checkpoints.peek().is_none() {
                    checkpoints = store
                        .checkpoints(checkpoint.size, PAGE)
                        .await?
                        .into_iter()
                        .peekable();
                }
            }
        }
    }
    for retention in &retentions {
        let Some((count, highest)) = excused.get(&retention.id).copied() else {
            continue;
        };
        let why = match retention_leaves.get(&retention.id) {
            None => Some("is not in the log"),
            Some(index) if *index < highest => Some("is placed before records it excuses"),
            Some(_) if count > retention.removed_access => {
                Some("excuses more records than it removed")
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            return fail(
                report,
                format!(
                    "access records are gone, excused by retention record {} which {why}",
                    retention.id
                ),
            );
        }
    }
    if let Some((size, _)) = held.iter().find(|(size, _)| *size > frontier.size()) {
        return fail(
            report,
            format!(
                "the log has been cut short: a checkpoint held outside covers {size} leaves but only {} remain",
                frontier.size()
            ),
        );
    }
    if let Some(checkpoint) = checkpoints.next() {
        return fail(
            report,
            format!(
                "the log has been cut short: a checkpoint covers {} leaves but only {} remain",
                checkpoint.size,
                frontier.size()
            ),
        );
    }
    Ok(report)
}

/// The retention records that may excuse missing access records: those
/// that kept at least the shortest audit period, oldest first.
async fn retentions_excusing<S: Store>(store: &S) -> Result<Vec<RetentionRecord>, CoreError> {
    let mut retentions: Vec<RetentionRecord> = store
        .retention_records()
        .await?
        .into_iter()
        .filter(|retention| retention.access_before <= retention.at - MIN_AUDIT_PERIOD)
        .collect();
    retentions.sort_by_key(|retention| retention.at);
    Ok(retentions)
}

fn check_checkpoint(key: &LogKey, checkpoint: &Checkpoint, root: Hash) -> Option<String> {
    match key.open(&checkpoint.note) {
        Err(why) => Some(format!("checkpoint {}: {why}", checkpoint.size)),
        Ok((size, signed_root)) if size != checkpoint.size || signed_root != checkpoint.root => {
            Some(format!(
                "checkpoint {}: its note does not match its record",
                checkpoint.size
            ))
        }
        Ok(_) if root != checkpoint.root => Some(format!(
            "checkpoint {}: the records no longer give the tree head it signed; a record before it was changed, added, removed or reordered",
            checkpoint.size
        )),
        Ok(_) => None,
    }
}

/// Adapts a closure to [`Nodes`].
struct Fn2<'a>(&'a mut dyn FnMut(u32, u64) -> Result<Hash, CoreError>);

impl Nodes for Fn2<'_> {
    type Error = CoreError;
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, CoreError> {
        (self.0)(level, index)
    }
}

pub fn encode_hash(hash: &Hash) -> String {
    BASE64.encode(hash)
}

/// A proof's hashes, base64 each, as the API shows them.
pub fn encode_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(encode_hash).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_signed_notes_that_open_with_the_public_key() {
        let signer = LogSigner::generate("cpis.example/log").unwrap();
        let key = signer.public();
        assert!(key.vkey.starts_with("cpis.example/log+"));
        assert_eq!(LogKey::parse_vkey(&key.vkey).unwrap(), key);
        let root = [7u8; 32];
        let note = signer.sign(42, &root);
        let mut lines = note.lines();
        assert_eq!(lines.next(), Some("cpis.example/log"));
        assert_eq!(lines.next(), Some("42"));
        assert_eq!(lines.next(), Some(BASE64.encode(root).as_str()));
        assert_eq!(lines.next(), Some(""));
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("\u{2014} cpis.example/log ")
        );
        assert_eq!(key.open(&note).unwrap(), (42, root));
        let forged = note.replace("\n42\n", "\n43\n");
        assert!(key.open(&forged).is_err());
        let other = LogSigner::generate("cpis.example/log").unwrap().public();
        assert!(other.open(&note).is_err());
    }

    #[test]
    fn a_key_is_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-key.pem");
        let made = LogSigner::load_or_create(&path, "o").unwrap().public();
        let read = LogSigner::load_or_create(&path, "o").unwrap().public();
        assert_eq!(made, read);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
