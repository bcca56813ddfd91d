//! The disk watch: reads the archive's disk every second, so that the
//! health service tells whether new data is taken, and the store sees space
//! another process took or freed without a write being tried.
//!
//! Invariant: the health service's `wormbox.v1.Archive.write` is
//! NOT_SERVING while the store's reserve would refuse even a write of no
//! bytes (`DISK_FULL`), as read at most `EVERY` ago (a larger write may be
//! refused while it is SERVING); the rest of the archive stays
//! SERVING (reads, deletes, retention and holds go on). Each change is
//! logged once, not every second.

use std::time::Duration;

use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use wormbox_store::{DiskStatus, Store};

/// The health service name of writes of new data.
pub const WRITE_SERVICE: &str = "wormbox.v1.Archive.write";
/// How often the disk is read.
const EVERY: Duration = Duration::from_secs(1);

/// Sets the write service's health from the disk now, then keeps it true
/// in a task (aborted with the server's other duties).
pub async fn spawn_watch(store: Store, health: HealthReporter) -> JoinHandle<()> {
    let first = read(&store).await;
    if let Some(status) = first {
        report(&health, None, &status).await;
    }
    tokio::spawn(async move {
        let mut refusing = first.map(|s| s.refusing);
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(status) = read(&store).await else { continue };
            if refusing != Some(status.refusing) {
                report(&health, refusing, &status).await;
                refusing = Some(status.refusing);
            }
        }
    })
}

/// A `statvfs`: off the runtime's threads.
async fn read(store: &Store) -> Option<DiskStatus> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.disk_status()).await.ok()
}

async fn report(health: &HealthReporter, before: Option<bool>, status: &DiskStatus) {
    let available = status.space.map(|s| s.available);
    if status.refusing {
        tracing::warn!(
            available_bytes = available,
            reserve_bytes = status.reserve,
            "the archive's disk is within its reserve: new data is refused (DISK_FULL) until space is freed; \
             reads, deletes, retention and legal holds go on"
        );
        health.set_service_status(WRITE_SERVICE, ServingStatus::NotServing).await;
    } else {
        if before == Some(true) {
            tracing::info!(available_bytes = available, "the archive's disk has room again: new data is taken");
        }
        health.set_service_status(WRITE_SERVICE, ServingStatus::Serving).await;
    }
}
