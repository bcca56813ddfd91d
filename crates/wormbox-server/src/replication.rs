//! Starting the `[[replication]]` rules: each rule's S3 credential, sealed
//! under the master key in the data directory, an `S3Client` for its
//! replica, and its `Replicator`, checked against the replica bucket before
//! the appliance serves.
//!
//! Invariant: a rule whose replica answers that it cannot keep what it is
//! given (no Object Lock, no versioning, a default retention shorter than
//! the rule's minimum, a refused credential) stops the start with an error
//! naming the rule; a replica that does not answer delays only the copy
//! (async mode: the appliance serves and the replicator retries). The
//! credential exists in clear only in memory; the file holds it sealed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wormbox_mfa::MasterKey;
use wormbox_model::{BucketName, Clock, SystemClock};
use wormbox_replica::{
    Credentials, Handle, Mode, ReplicaError, Replicator, Rule, S3Client, S3Config, Status, TargetError,
};
use wormbox_store::Store;
use wormbox_store::retention::RetentionMode;

use crate::ServerError;
use crate::config::ReplicationConfig;

/// How long the start waits for a replica's answer about its bucket.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest one replica request may take, a whole version's upload
/// included (no multipart yet).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The file holding rule `rule`'s sealed credential.
pub fn credential_file(data_dir: &Path, rule: &str) -> PathBuf {
    data_dir.join(format!("replica-{rule}.credential"))
}

fn purpose(rule: &str) -> String {
    format!("replica:{rule}")
}

/// Seals `ACCESS_KEY:SECRET` for rule `rule` under the data directory's
/// master key (created if needed), replacing an earlier credential of that
/// rule (a rotated key). Returns the file written.
pub fn seal_credential(data_dir: &Path, rule: &str, credential: &str) -> Result<PathBuf, ServerError> {
    let invalid = |why: &str| ServerError::Replication(format!("replication rule `{rule}`: {why}"));
    let (access, secret) =
        credential.trim().split_once(':').ok_or_else(|| invalid("the credential is ACCESS_KEY:SECRET"))?;
    if access.is_empty() || secret.is_empty() || access.contains(char::is_whitespace) {
        return Err(invalid("the credential is ACCESS_KEY:SECRET, both non-empty"));
    }
    let (key, _) =
        MasterKey::load_or_create(&data_dir.join(crate::MFA_MASTER_KEY_FILE)).map_err(ServerError::MfaKey)?;
    let sealed =
        key.seal_secret(&purpose(rule), format!("{access}:{secret}").as_bytes()).map_err(ServerError::MfaKey)?;
    let path = credential_file(data_dir, rule);
    let staged = path.with_extension("credential.new");
    let _ = std::fs::remove_file(&staged);
    crate::write_new_file(&staged, &sealed, 0o600)
        .map_err(|source| ServerError::DataDir { path: staged.clone(), source })?;
    std::fs::rename(&staged, &path).map_err(|source| ServerError::DataDir { path: path.clone(), source })?;
    Ok(path)
}

fn open_credential(key: &MasterKey, data_dir: &Path, rule: &str) -> Result<Credentials, ServerError> {
    let path = credential_file(data_dir, rule);
    let sealed = std::fs::read(&path).map_err(|e| {
        ServerError::Replication(format!(
            "replication rule `{rule}`: cannot read its credential `{}` ({e}); seal one with `wormboxd replica-credential --rule {rule}`",
            path.display()
        ))
    })?;
    let plain = key.open_secret(&purpose(rule), &sealed).map_err(|_| {
        ServerError::Replication(format!(
            "replication rule `{rule}`: its credential `{}` does not open under this appliance's master key",
            path.display()
        ))
    })?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| ServerError::Replication(format!("replication rule `{rule}`: its credential is not text")))?;
    let (access, secret) = text
        .split_once(':')
        .ok_or_else(|| ServerError::Replication(format!("replication rule `{rule}`: its credential is malformed")))?;
    Ok(Credentials::new(access, secret))
}

fn rule_of(config: &ReplicationConfig) -> Result<Rule, ServerError> {
    let bucket = BucketName::new(&config.bucket).map_err(|e| {
        ServerError::Replication(format!("replication rule `{}`: bucket `{}`: {e}", config.name, config.bucket))
    })?;
    let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
    let rule = Rule {
        name: config.name.clone(),
        bucket,
        prefix: config.prefix.clone(),
        mode: if config.mode == "sync" { Mode::Sync } else { Mode::Async },
        minimum_retention: config.minimum_retention_days.map(|d| (RetentionMode::Compliance, days(d))),
        replicate_purges: config.replicate_purges,
        evidence_retention: days(config.evidence_retention_days),
    };
    rule.check().map_err(|e| ServerError::Replication(e.to_string()))?;
    Ok(rule)
}

/// The running replicators.
#[derive(Debug, Default)]
pub struct Replication {
    handles: Mutex<Vec<Handle>>,
    targets: Mutex<Vec<RuleTarget>>,
}

/// A rule as `replica status` and `verify --replica` see it: where it
/// copies to, and a client of its replica to read it back with.
#[derive(Clone, Debug)]
pub struct RuleTarget {
    /// The rule.
    pub rule: Rule,
    /// The replica's endpoint.
    pub endpoint: String,
    /// The replica bucket.
    pub target_bucket: String,
    /// A client of the replica bucket (the rule's own credential).
    pub client: S3Client,
}

impl Replication {
    /// Each rule's status, in configuration order.
    pub fn statuses(&self) -> Vec<Status> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).iter().map(Handle::status).collect()
    }

    /// Each rule with its replica, in configuration order.
    pub fn targets(&self) -> Vec<RuleTarget> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops every replicator; their progress is durable.
    pub async fn stop(&self) {
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in handles {
            handle.stop().await;
        }
    }
}

/// Starts every rule of `rules` (see the module's invariant).
pub async fn start(
    rules: &[ReplicationConfig],
    data_dir: &Path,
    store: &Store,
    public_key: &[u8],
) -> Result<Arc<Replication>, ServerError> {
    // Requests are signed with the real time, as the replica checks it (a
    // skew of 15 minutes is refused): a network protocol's clock, not the
    // compliance clock, which may be held back.
    let signing: Arc<dyn Clock> = Arc::new(SystemClock);
    let replication = Arc::new(Replication::default());
    if rules.is_empty() {
        return Ok(replication);
    }
    let (key, _) =
        MasterKey::load_or_create(&data_dir.join(crate::MFA_MASTER_KEY_FILE)).map_err(ServerError::MfaKey)?;
    let mut targets = Vec::new();
    let mut replicators = Vec::new();
    for config in rules {
        let rule = rule_of(config)?;
        let credentials = open_credential(&key, data_dir, &rule.name)?;
        let s3 = S3Config {
            endpoint: config.endpoint.clone(),
            region: config.region.clone(),
            bucket: config.target_bucket.clone(),
            credentials,
            ca_pem: config.ca_file.clone(),
            timeout: REQUEST_TIMEOUT,
        };
        let client = S3Client::new(s3, Arc::clone(&signing))
            .map_err(|e| ServerError::Replication(format!("replication rule `{}`: {e}", rule.name)))?;
        targets.push(RuleTarget {
            rule: rule.clone(),
            endpoint: config.endpoint.clone(),
            target_bucket: config.target_bucket.clone(),
            client: client.clone(),
        });
        let name = rule.name.clone();
        let mut replicator = Replicator::new(store.clone(), rule, client, public_key.to_vec())
            .map_err(|e| ServerError::Replication(e.to_string()))?;
        match tokio::time::timeout(CHECK_TIMEOUT, replicator.check_target()).await {
            Ok(Ok(())) => {}
            Ok(Err(ReplicaError::Target(TargetError::Unavailable(why)))) => {
                tracing::warn!(rule = %name, %why, "the replica does not answer; replication starts when it does");
            }
            Err(_) => {
                tracing::warn!(rule = %name, "the replica did not answer in time; replication starts when it does");
            }
            Ok(Err(err)) => return Err(ServerError::Replication(format!("replication rule `{name}`: {err}"))),
        }
        replicators.push(replicator);
    }
    let handles = replicators.into_iter().map(Replicator::spawn).collect();
    *replication.handles.lock().unwrap_or_else(|p| p.into_inner()) = handles;
    *replication.targets.lock().unwrap_or_else(|p| p.into_inner()) = targets;
    Ok(replication)
}
