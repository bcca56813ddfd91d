//! Attacks through the appliance's own storage (issue 16, findings 21 and
//! 10): a byte flipped inside a record's bytes in the log (or, in
//! `wormbox-store-rocksdb`'s own tests, inside a RocksDB table block) of a
//! stopped appliance is lost data, never a retryable outage, and the
//! integrity check names it and checks the rest; a backup client that stops reading can neither stage a
//! second full copy of the archive, nor keep its copy, nor hold the shutdown.

use std::path::Path;
use std::time::{Duration, Instant};

use tonic::Code;
use wormbox_proto::v1;
use wormbox_server::backup::STAGING_DIR;
use wormbox_store::evidence::VerifyOptions;
use wormbox_test_utils::{TestAppliance, tamper};

use crate::e2e::{create_bucket, get, put, reason};

/// Records written before the damage; each is one chunk, in the log.
const RECORDS: u32 = 40;
/// The record whose bytes the damage lands in.
const TARGET: u32 = 20;

/// 1 KiB that names its record, so that it is found in the log and in no
/// other record.
fn record(n: u32) -> Vec<u8> {
    format!("archived record {n:04}; ").repeat(48).into_bytes()[..1024].to_vec()
}

/// Flips one bit in the middle of `needle` in every log segment file of
/// `db` that holds it; returns how many files were changed.
fn flip_in_the_log(db: &Path, needle: &[u8]) -> usize {
    let mut flipped = 0;
    for entry in std::fs::read_dir(db).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + needle.len() / 2] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            flipped += 1;
        }
    }
    flipped
}

/// Finding 21: a damaged table block answered UNAVAILABLE on GetObject, made
/// VerifyIntegrity fail as a call, and aborted offline verification with
/// RocksDB's raw message. Now: DATA_LOSS for every version whose stored
/// bytes are damaged (a record's bytes now live in the log, checked against
/// their frame's checksum when read), and both checks report it as a
/// divergence naming the version and the entry that wrote it, having read
/// every other version whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stored_bytes_are_data_loss_and_verification_names_them_and_checks_the_rest() {
    let mut app = TestAppliance::start().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    create_bucket(&mut archive, "records", v1::VersioningStatus::Enabled).await;
    let mut acks = Vec::new();
    for n in 0..RECORDS {
        acks.push(put(&mut archive, "records", &format!("rec/{n:04}"), &record(n)).await.unwrap());
    }
    drop(archive);
    app.stop().await.unwrap();
    let db = app.data_dir().join("db");
    assert_eq!(flip_in_the_log(&db, &record(TARGET)), 1, "record {TARGET} is in one log file");
    app.restart().await.unwrap();

    // Every version is served whole or answers DATA_LOSS; none is UNAVAILABLE.
    let mut archive = app.archive().await.unwrap();
    let mut lost = Vec::new();
    for (n, ack) in (0..RECORDS).zip(&acks) {
        match get(&mut archive, "records", &format!("rec/{n:04}"), &ack.version_id).await {
            Ok((_, body)) => assert_eq!(body, record(n), "record {n} is served whole or not at all"),
            Err(status) => {
                assert_eq!(status.code(), Code::DataLoss, "record {n}: {status:?}");
                lost.push(n);
            }
        }
    }
    assert!(lost.contains(&TARGET), "the damaged record was served: lost {lost:?}");
    let lost_count = lost.len() as u64;
    let target_name = format!("records/rec/{TARGET:04} version");
    let target_entry = acks[TARGET as usize].ledger_sequence;

    // Online: a report that is not ok, not a failed call.
    let mut compliance = app.compliance().await.unwrap();
    let report = compliance
        .verify_integrity(v1::VerifyIntegrityRequest::default())
        .await
        .expect("damage is reported, not a failed call")
        .into_inner();
    assert!(!report.ok);
    assert_eq!(report.divergence_count, lost_count, "one divergence per lost version: {report:?}");
    let named = report.divergences.iter().find(|d| d.what.contains(&target_name)).expect("the damaged record is named");
    assert_eq!(named.sequence, target_entry, "named with the entry that wrote it: {named:?}");
    assert!(named.what.contains("could not be read"), "{named:?}");
    assert_eq!(report.versions_checked, u64::from(RECORDS), "every version was visited");
    assert_eq!(report.bytes_checked, 1024 * (u64::from(RECORDS) - lost_count), "every other version was read whole");

    // Offline, on the stopped appliance's files: the same, instead of an abort.
    app.stop().await.unwrap();
    let backend = tamper::read_only(&db).unwrap();
    let offline =
        wormbox_store::evidence::verify(&*backend, VerifyOptions::default()).expect("damage is reported, not an abort");
    assert!(!offline.is_ok());
    assert_eq!(offline.divergence_count, lost_count, "{}", offline.summary());
    let named =
        offline.divergences.iter().find(|d| d.what.contains(&target_name)).expect("the damaged record is named");
    assert_eq!(named.sequence, Some(target_entry));
    assert_eq!(offline.versions_checked, u64::from(RECORDS));
    assert_eq!(offline.bytes_checked, 1024 * (u64::from(RECORDS) - lost_count));
    assert!(offline.ledger_entries >= report.ledger_sequence, "the whole ledger was read: {}", offline.summary());
}

pub(super) fn staged(app: &TestAppliance) -> usize {
    std::fs::read_dir(app.data_dir().join(STAGING_DIR)).map(|d| d.count()).unwrap_or(0)
}

/// Enough incompressible bytes that a backup is many more parts than the
/// stream's buffers (its channel, the transport, the client's HTTP/2
/// window), so that a client that does not read holds it mid-way.
async fn bulk(app: &TestAppliance) {
    let mut archive = app.archive().await.unwrap();
    create_bucket(&mut archive, "bulk", v1::VersioningStatus::Enabled).await;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..24 {
        let body: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        put(&mut archive, "bulk", &format!("blob/{i}"), &body).await.unwrap();
    }
}

/// Waits, bounded, for what the server does in the background in real time.
pub(super) async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A backup, once the one before has given up the slot (just after its copy
/// was removed).
pub(super) async fn backup_when_free(app: &TestAppliance) -> tonic::Streaming<v1::BackupChunk> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match app.admin().await.unwrap().backup(v1::BackupRequest {}).await {
            Ok(response) => return response.into_inner(),
            Err(status) if reason(&status) == "BACKUP_IN_PROGRESS" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(status) => panic!("no backup: {status:?}"),
        }
    }
}

/// Finding 10: five unread backups held five staged copies. Now a second is
/// refused while one runs, and the next runs once the first has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_backup_is_refused_while_one_is_unread() {
    let mut app = TestAppliance::start().await.unwrap();
    bulk(&app).await;
    let unread = app.admin().await.unwrap().backup(v1::BackupRequest {}).await.unwrap().into_inner();
    assert_eq!(staged(&app), 1);
    let refused = app.admin().await.unwrap().backup(v1::BackupRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "BACKUP_IN_PROGRESS");
    assert_eq!(staged(&app), 1, "a refused backup stages nothing");

    // The client walks away: the copy goes, and the next backup runs whole.
    drop(unread);
    wait_until("the abandoned backup's copy is removed", || staged(&app) == 0).await;
    let mut next = backup_when_free(&app).await;
    let mut manifest = false;
    while let Some(chunk) = next.message().await.unwrap() {
        manifest |= matches!(chunk.part, Some(v1::backup_chunk::Part::ManifestJson(_)));
    }
    assert!(manifest, "the next backup streams to its manifest");
    wait_until("the finished backup's copy is removed", || staged(&app) == 0).await;
    app.stop().await.unwrap();
}

/// Finding 10: an unread backup kept its staged copy for as long as its
/// client held the stream. Now it ends after the send timeout (shortened
/// here to one second): its copy is removed, its client finds the stream cut
/// off rather than complete, and the slot is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_backup_ends_after_the_send_timeout_and_its_copy_is_removed() {
    let mut app = TestAppliance::start_with(|c| c.backup.send_timeout_seconds = 1).await.unwrap();
    bulk(&app).await;
    let mut stalled = app.admin().await.unwrap().backup(v1::BackupRequest {}).await.unwrap().into_inner();
    assert_eq!(staged(&app), 1);
    wait_until("the stalled backup's copy is removed", || staged(&app) == 0).await;
    let cut_off = loop {
        match stalled.message().await {
            Ok(Some(chunk)) => assert!(
                !matches!(chunk.part, Some(v1::backup_chunk::Part::ManifestJson(_))),
                "a stalled backup never completes"
            ),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(cut_off, "the stalled stream ends in an error, not as if complete");
    drop(backup_when_free(&app).await);
    app.stop().await.unwrap();
}

/// Finding 10: SIGTERM did not stop a daemon with unread backups within
/// 20 s. Now stopping ends them first, removing their copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_ends_an_unread_backup_promptly() {
    let mut app = TestAppliance::start().await.unwrap();
    bulk(&app).await;
    let unread = app.admin().await.unwrap().backup(v1::BackupRequest {}).await.unwrap().into_inner();
    assert_eq!(staged(&app), 1);
    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("the server stops within 20 s with a backup unread")
        .unwrap();
    assert_eq!(staged(&app), 0, "the ended backup's copy is removed");
    drop(unread);
}
