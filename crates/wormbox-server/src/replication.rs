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
//!
//! What runs once the rules are started (sync rules' waits, the capacity
//! tier's passes and reads) is `wormbox_app::Replication`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wormbox_app::{Replication, RuleTarget};
use wormbox_mfa::MasterKey;
use wormbox_model::{BucketName, Clock, SystemClock};
use wormbox_replica::restore;
use wormbox_replica::{Credentials, Handle, Mode, ReplicaError, Replicator, Rule, S3Client, S3Config, TargetError};
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
    // Before the first start too: the master key is created here then.
    crate::create_private_dir(data_dir)?;
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
        concurrency: config.concurrency,
    };
    rule.check().map_err(|e| ServerError::Replication(e.to_string()))?;
    Ok(rule)
}

/// The S3 client of rule `rule`, with its credential sealed in `dir` under `key`.
fn client_of(
    config: &ReplicationConfig,
    rule: &Rule,
    key: &MasterKey,
    dir: &Path,
    signing: &Arc<dyn Clock>,
) -> Result<S3Client, ServerError> {
    let credentials = open_credential(key, dir, &rule.name)?;
    let s3 = S3Config {
        endpoint: config.endpoint.clone(),
        region: config.region.clone(),
        bucket: config.target_bucket.clone(),
        credentials,
        ca_pem: config.ca_file.clone(),
        timeout: REQUEST_TIMEOUT,
    };
    S3Client::new(s3, Arc::clone(signing))
        .map_err(|e| ServerError::Replication(format!("replication rule `{}`: {e}", rule.name)))
}

/// Every rule's replica, reached with the credentials sealed in `keys` (an
/// escrow copy of the data directory's keys and `replica-*.credential`
/// files) under the master key there: what a restore from replicas reads.
pub fn restore_sources(rules: &[ReplicationConfig], keys: &Path) -> Result<Vec<restore::Source>, ServerError> {
    let signing: Arc<dyn Clock> = Arc::new(SystemClock);
    let path = keys.join(crate::MFA_MASTER_KEY_FILE);
    if !path.exists() {
        return Err(ServerError::Replication(format!(
            "{} is missing: the restore needs the master key",
            path.display()
        )));
    }
    let (key, _) = MasterKey::load_or_create(&path).map_err(ServerError::MfaKey)?;
    let mut out = Vec::new();
    for config in rules {
        let rule = rule_of(config)?;
        let client = client_of(config, &rule, &key, keys, &signing)?;
        out.push(restore::Source { rule, target: Arc::new(client) });
    }
    Ok(out)
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
    wormbox_app::spool::clear_spool(data_dir);
    if rules.is_empty() {
        return Ok(Arc::new(Replication::none(data_dir)));
    }
    let (key, _) =
        MasterKey::load_or_create(&data_dir.join(crate::MFA_MASTER_KEY_FILE)).map_err(ServerError::MfaKey)?;
    let mut targets = Vec::new();
    let mut replicators = Vec::new();
    // Each sync rule, with its bound, in the replicators' order.
    let mut specs = Vec::new();
    for config in rules {
        let rule = rule_of(config)?;
        specs.push((rule.mode == Mode::Sync).then(|| Duration::from_millis(config.sync_timeout_ms)));
        let client = client_of(config, &rule, &key, data_dir, &signing)?;
        targets.push(RuleTarget {
            rule: rule.clone(),
            endpoint: config.endpoint.clone(),
            target_bucket: config.target_bucket.clone(),
            client: client.clone(),
            tier_after: config.tier_after_days.map(|d| Duration::from_secs(u64::from(d) * 86_400)),
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
    let handles: Vec<Handle> = replicators.into_iter().map(Replicator::spawn).collect();
    let replication = Replication::new(store, data_dir, handles, targets, specs);
    Ok(replication)
}
