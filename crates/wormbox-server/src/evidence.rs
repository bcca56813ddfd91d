//! The appliance's evidence duties: its checkpoint signing key, the timer
//! that signs a checkpoint after quiet periods, and the background scrub.
//!
//! Invariant: the private key is written once, mode 0600, and a key file that
//! group or others can read is refused; only the public key ever leaves the
//! appliance. A scrub only reads, and records its result in the ledger.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wormbox_store::Store;
use wormbox_store::evidence::{Ed25519Signer, IntegrityReport, Signer, VerifyOptions};

use crate::ServerError;
use crate::config::EvidenceConfig;
use wormbox_app::{Replication, Scrubs};
use wormbox_model::Clock;

/// The file, in the data directory, that holds the checkpoint signing key (PKCS#8).
pub const SIGNING_KEY_FILE: &str = "checkpoint-signing.key";
/// The file, in the data directory, that holds its public key (hex), for offline verification.
pub const PUBLIC_KEY_FILE: &str = "checkpoint-signing.pub";

/// Opens the signing key in `data_dir`, creating it (and its public file) on
/// first start. Returns the signer and whether it was created.
pub fn load_or_create_signer(data_dir: &Path) -> Result<(Ed25519Signer, bool), ServerError> {
    let path = data_dir.join(SIGNING_KEY_FILE);
    let err = |source| ServerError::DataDir { path: path.clone(), source };
    let invalid = |why: String| err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    let (signer, created) = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(mut file) => {
            let (signer, pkcs8) = Ed25519Signer::generate().map_err(|e| invalid(e.to_string()))?;
            file.write_all(&pkcs8).and_then(|()| file.sync_all()).map_err(err)?;
            (signer, true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut file = std::fs::File::open(&path).map_err(err)?;
            let mode = file.metadata().map_err(err)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(invalid(format!("readable by group or others (mode {:o}); it must be 0600", mode & 0o777)));
            }
            let mut pkcs8 = Vec::new();
            Read::by_ref(&mut file).take(4096).read_to_end(&mut pkcs8).map_err(err)?;
            (Ed25519Signer::from_pkcs8(&pkcs8).map_err(|e| invalid(e.to_string()))?, false)
        }
        Err(e) => return Err(err(e)),
    };
    // The public file is rewritten from the key each start, so it cannot drift.
    let public = data_dir.join(PUBLIC_KEY_FILE);
    let public_err = |source| ServerError::DataDir { path: public.clone(), source };
    std::fs::write(&public, format!("{}\n", hex::encode(signer.public_key()))).map_err(public_err)?;
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).map_err(public_err)?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok((signer, created))
}

/// Runs one integrity check at most `bytes_per_second` (0: no limit) and
/// records the result in the ledger, reporting its progress and end to
/// `scrubs`. Blocks: call from a blocking thread.
pub fn scrub(
    store: &Store,
    replication: &Arc<Replication>,
    public_key: &[u8],
    bytes_per_second: u64,
    scrubs: &Scrubs,
    clock: &dyn Clock,
) -> Result<(IntegrityReport, u64), ServerError> {
    let handle = tokio::runtime::Handle::current();
    // The compliance clock's time; the system clock's when the writer does
    // not say (the result is reported either way, never lost for a time).
    let now = || handle.block_on(store.clock_status()).map_or_else(|_| clock.now(), |c| c.compliance);
    scrubs.begin(now());
    let ran = run_scrub(store, replication, public_key, bytes_per_second, scrubs);
    match &ran {
        Ok((report, sequence)) => scrubs.finish(now(), report, *sequence),
        Err(_) => scrubs.abandon(),
    }
    ran
}

fn run_scrub(
    store: &Store,
    replication: &Arc<Replication>,
    public_key: &[u8],
    bytes_per_second: u64,
    scrubs: &Scrubs,
) -> Result<(IntegrityReport, u64), ServerError> {
    let started = Instant::now();
    let mut pace = |bytes: u64| {
        scrubs.read(bytes);
        if bytes_per_second == 0 {
            return;
        }
        let due = Duration::from_secs_f64(bytes as f64 / bytes_per_second as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    };
    let handle = tokio::runtime::Handle::current();
    // Released versions are checked through their replica (`wormbox-app`'s `tier.rs`).
    let mut replica = Arc::clone(replication).replica_reader(handle.clone());
    let options = VerifyOptions {
        witness_forks: true,
        public_key: Some(public_key.to_vec()),
        pace: Some(&mut pace),
        replica: Some(&mut replica),
        ..VerifyOptions::default()
    };
    let report = store.verify_integrity(options).map_err(ServerError::Scrub)?;
    let sequence = handle
        .block_on(store.record_integrity(&wormbox_store::Actor::system(), &report))
        .map_err(ServerError::Scrub)?;
    Ok((report, sequence))
}

/// Starts the checkpoint timer and (unless turned off) the scrub; the tasks
/// end when the returned handles are aborted.
pub(crate) fn spawn_duties(
    store: Store,
    replication: Arc<Replication>,
    signer: Arc<Ed25519Signer>,
    config: &EvidenceConfig,
    scrubs: Arc<Scrubs>,
    clock: Arc<dyn Clock>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let every = Duration::from_secs(config.checkpoint_interval_seconds);
    let timer_store = store.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A no-op when the head already has a checkpoint.
            if let Err(e) = timer_store.checkpoint().await {
                tracing::warn!(error = &e as &dyn std::error::Error, "signing a checkpoint failed");
            }
        }
    }));
    if config.scrub_interval_seconds > 0 {
        let every = Duration::from_secs(config.scrub_interval_seconds);
        let rate = config.scrub_bytes_per_second;
        let public_key = signer.public_key().to_vec();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (store, key, replication) = (store.clone(), public_key.clone(), Arc::clone(&replication));
                let (scrubs, clock) = (Arc::clone(&scrubs), Arc::clone(&clock));
                let run = move || scrub(&store, &replication, &key, rate, &scrubs, clock.as_ref());
                match tokio::task::spawn_blocking(run).await {
                    Ok(Ok((report, sequence))) if report.is_ok() => {
                        tracing::info!(ledger_sequence = sequence, summary = %report.summary(), "integrity scrub passed");
                    }
                    Ok(Ok((report, sequence))) => {
                        tracing::error!(ledger_sequence = sequence, summary = %report.summary(), "integrity scrub FOUND DIVERGENCES");
                    }
                    Ok(Err(e)) => tracing::error!(error = &e as &dyn std::error::Error, "integrity scrub failed to run"),
                    Err(e) => tracing::error!(error = &e as &dyn std::error::Error, "integrity scrub task failed"),
                }
            }
        }));
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_key_is_created_once_private_and_loose_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = load_or_create_signer(dir.path()).unwrap();
        assert!(created);
        let key_mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let public = std::fs::read_to_string(dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(public.trim(), hex::encode(first.public_key()));
        let (again, created) = load_or_create_signer(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again.public_key(), first.public_key());
        std::fs::set_permissions(dir.path().join(SIGNING_KEY_FILE), std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_or_create_signer(dir.path()).unwrap_err();
        assert!(format!("{:?}", err).contains("0600"), "{err:?}");
        std::fs::set_permissions(dir.path().join(SIGNING_KEY_FILE), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.path().join(SIGNING_KEY_FILE), b"garbage").unwrap();
        assert!(load_or_create_signer(dir.path()).is_err());
    }
}
