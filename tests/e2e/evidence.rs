//! Evidence through the API: signed checkpoints, integrity verification and
//! its scrub, the audit trail, the retention report, what an auditor may and
//! may not do, and edits made directly to a stopped appliance's RocksDB.

use std::time::Duration;

use wormbox_proto::{ComplianceClient, v1};
use wormbox_reports::audit::{AuditRecord, chain};
use wormbox_store::backend::Keyspace;
use wormbox_store::evidence::Checkpoint;
use wormbox_test_utils::{TEST_EPOCH, TestAppliance, tamper};

use super::{create_bucket, get, put, reason};

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

async fn archive_with_records(app: &TestAppliance) -> Vec<v1::PutObjectResponse> {
    let mut archive = app.archive().await.unwrap();
    create_bucket(&mut archive, "books", v1::VersioningStatus::Enabled).await;
    create_bucket(&mut archive, "other", v1::VersioningStatus::Enabled).await;
    let mut acks = Vec::new();
    for (key, body) in
        [("ledger/2026.csv", "year,total\n2026,7\n"), ("ledger/2027.csv", "year,total\n"), ("notes/a", "n")]
    {
        acks.push(put(&mut archive, "books", key, body.as_bytes()).await.unwrap());
    }
    put(&mut archive, "other", "x", b"unrelated").await.unwrap();
    archive
        .delete_object(v1::DeleteObjectRequest { bucket: "books".into(), key: "notes/a".into(), ..Default::default() })
        .await
        .unwrap();
    acks
}

fn checkpoint_of(w: &v1::Checkpoint) -> Checkpoint {
    Checkpoint {
        sequence: w.sequence,
        head: wormbox_model::Digest::from_slice(&w.head).unwrap(),
        time: wormbox_model::Timestamp(w.time_unix_micros),
        signature: w.signature.clone(),
        tree_root: wormbox_model::Digest::from_slice(&w.tree_root),
    }
}

async fn audit(
    client: &mut ComplianceClient,
    request: v1::AuditLogRequest,
) -> Result<Vec<v1::AuditEntry>, tonic::Status> {
    let mut stream = client.audit_log(request).await?.into_inner();
    let mut out = Vec::new();
    while let Some(entry) = stream.message().await? {
        out.push(entry);
    }
    Ok(out)
}

fn record(e: &v1::AuditEntry) -> AuditRecord {
    AuditRecord {
        sequence: e.sequence,
        time_unix_micros: e.time_unix_micros,
        time: String::new(),
        operation: e.operation.clone(),
        kind: e.kind.clone(),
        principal: e.principal.clone(),
        bucket: e.bucket.clone(),
        key: e.key.clone(),
        version_id: e.version_id.clone(),
        sha256: hex::encode(&e.sha256),
        detail: e.detail.clone(),
        hash: hex::encode(&e.hash),
        format: u8::try_from(e.format).unwrap(),
        record_sha256: hex::encode(&e.record_sha256),
        lock_sha256: hex::encode(&e.lock_sha256),
    }
}

#[tokio::test]
async fn a_checkpoint_is_signed_by_the_published_key_and_anchors_the_audit_trail() {
    let app = TestAppliance::start().await.unwrap();
    archive_with_records(&app).await;
    let mut compliance = app.compliance().await.unwrap();
    let reply = compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap().into_inner();
    let published = std::fs::read_to_string(app.data_dir().join("checkpoint-signing.pub")).unwrap();
    assert_eq!(published.trim(), hex::encode(&reply.public_key));
    let wire = reply.checkpoint.unwrap();
    let checkpoint = checkpoint_of(&wire);
    assert!(checkpoint.verify(&reply.public_key));
    assert_eq!(wire.sequence, app.server().app().store().ledger_head().unwrap().0);
    // The same head asked again: the same checkpoint, and it is kept.
    let again = compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap().into_inner();
    assert_eq!(again.checkpoint.unwrap(), wire);
    let stored = compliance.get_checkpoint(v1::GetCheckpointRequest { sequence: wire.sequence }).await.unwrap();
    assert_eq!(stored.into_inner().checkpoint.unwrap(), wire);
    let missing = compliance.get_checkpoint(v1::GetCheckpointRequest { sequence: 1_000_000 }).await.unwrap_err();
    assert_eq!(reason(&missing), "INVALID_ARGUMENT");

    // Every entry up to the checkpoint rehashes to its head, off the appliance.
    let all =
        audit(&mut compliance, v1::AuditLogRequest { to_sequence: wire.sequence, ..Default::default() }).await.unwrap();
    let records: Vec<AuditRecord> = all.iter().map(record).collect();
    let (n, head) = chain(&records).unwrap();
    assert_eq!((n, head), (checkpoint.sequence, checkpoint.head));
}

#[tokio::test]
async fn the_audit_log_filters_by_bucket_prefix_kind_principal_and_time() {
    let app = TestAppliance::start().await.unwrap();
    archive_with_records(&app).await;
    let mut compliance = app.compliance().await.unwrap();
    let books =
        audit(&mut compliance, v1::AuditLogRequest { bucket: "books".into(), ..Default::default() }).await.unwrap();
    assert!(books.iter().all(|e| e.bucket == "books"));
    let writes = audit(
        &mut compliance,
        v1::AuditLogRequest {
            bucket: "books".into(),
            key_prefix: "ledger/".into(),
            kinds: vec!["writes".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(writes.len(), 2);
    assert!(writes.iter().all(|e| e.operation == "version-written" && e.sha256.len() == 32 && e.hash.len() == 32));
    let markers = audit(&mut compliance, v1::AuditLogRequest { kinds: vec!["markers".into()], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(markers.len(), 1);
    assert_eq!(markers[0].key, "notes/a");
    let admin_key = app.admin_credential().split(':').next().unwrap().to_owned();
    let by_admin = audit(&mut compliance, v1::AuditLogRequest { principal: admin_key.clone(), ..Default::default() })
        .await
        .unwrap();
    assert!(!by_admin.is_empty() && by_admin.iter().all(|e| e.principal == admin_key));
    let future = audit(
        &mut compliance,
        v1::AuditLogRequest { since_unix_micros: TEST_EPOCH.0 + DAY_MICROS, ..Default::default() },
    )
    .await
    .unwrap();
    assert!(future.is_empty());
    let bad = audit(&mut compliance, v1::AuditLogRequest { kinds: vec!["everything".into()], ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("everything"));
}

#[tokio::test]
async fn verify_integrity_reports_and_records_and_rejects_malformed_checkpoints() {
    let app = TestAppliance::start().await.unwrap();
    archive_with_records(&app).await;
    let mut compliance = app.compliance().await.unwrap();
    let held =
        compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap().into_inner().checkpoint.unwrap();
    let request = v1::VerifyIntegrityRequest { checkpoints: vec![held.clone()], ..Default::default() };
    let report = compliance.verify_integrity(request).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.versions_checked, 4);
    assert_eq!(report.markers_checked, 1);
    assert!(report.checkpoints_checked >= 1);
    let entries = audit(&mut compliance, v1::AuditLogRequest { kinds: vec!["integrity".into()], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].sequence, report.ledger_sequence);
    assert_eq!(entries[0].operation, "integrity-verified");

    let mut forged = held.clone();
    forged.signature[10] ^= 1;
    let request = v1::VerifyIntegrityRequest { checkpoints: vec![forged], ..Default::default() };
    let report = compliance.verify_integrity(request).await.unwrap().into_inner();
    assert!(!report.ok);
    assert!(report.divergences[0].what.contains("invalid signature"), "{report:?}");

    let mut short = held;
    short.head.truncate(5);
    let err = compliance
        .verify_integrity(v1::VerifyIntegrityRequest { checkpoints: vec![short], ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = compliance
        .verify_integrity(v1::VerifyIntegrityRequest { from_checkpoint: 1_000_000, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // The server keeps serving.
    compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap();
}

#[tokio::test]
async fn the_retention_report_streams_a_header_every_row_and_a_summary() {
    let app = TestAppliance::start().await.unwrap();
    archive_with_records(&app).await;
    let mut compliance = app.compliance().await.unwrap();
    let request = v1::RetentionReportRequest { bucket: "books".into(), ..Default::default() };
    let mut stream = compliance.retention_report(request).await.unwrap().into_inner();
    let mut parts = Vec::new();
    while let Some(part) = stream.message().await.unwrap() {
        parts.push(part.part.unwrap());
    }
    let Some(v1::retention_report_part::Part::Header(header)) = parts.first() else { panic!("header first") };
    let Some(v1::retention_report_part::Part::Summary(summary)) = parts.last() else { panic!("summary last") };
    assert_eq!(header.total_rows as usize, parts.len() - 2);
    assert_eq!(header.total_rows, 4, "three versions and one marker");
    assert_eq!(summary.delete_markers, 1);
    assert_eq!(summary.unprotected, 3);
    assert!(checkpoint_of(header.checkpoint.as_ref().unwrap()).verify(&header.public_key));
    assert!(checkpoint_of(summary.checkpoint.as_ref().unwrap()).verify(&header.public_key));
    let err = compliance
        .retention_report(v1::RetentionReportRequest { bucket: "missing".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "NO_SUCH_BUCKET");
}

#[tokio::test]
async fn an_auditor_runs_every_report_but_reads_no_bytes_and_writes_nothing() {
    let app = TestAppliance::start().await.unwrap();
    archive_with_records(&app).await;
    let auditor = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let writer = app.principal("app", v1::Role::Writer).await.unwrap();
    let mut as_auditor = app.compliance_as(&auditor).await.unwrap();
    as_auditor.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap();
    assert!(as_auditor.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner().ok);
    assert!(!audit(&mut as_auditor, v1::AuditLogRequest::default()).await.unwrap().is_empty());
    as_auditor.retention_report(v1::RetentionReportRequest::default()).await.unwrap();

    let mut archive = app.archive_as(&auditor).await.unwrap();
    let denied = get(&mut archive, "books", "ledger/2026.csv", "").await.unwrap_err();
    assert_eq!(reason(&denied), "ACCESS_DENIED");
    let denied = put(&mut archive, "books", "ledger/2028.csv", b"x").await.unwrap_err();
    assert_eq!(reason(&denied), "ACCESS_DENIED");
    let head = archive
        .head_object(v1::HeadObjectRequest {
            bucket: "books".into(),
            key: "ledger/2026.csv".into(),
            ..Default::default()
        })
        .await;
    assert!(head.is_ok(), "metadata stays readable");

    let mut as_writer = app.compliance_as(&writer).await.unwrap();
    let denied = audit(&mut as_writer, v1::AuditLogRequest::default()).await.unwrap_err();
    assert_eq!(reason(&denied), "ACCESS_DENIED");
    let denied = as_writer.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap_err();
    assert_eq!(reason(&denied), "ACCESS_DENIED");
    let denied = as_writer.retention_report(v1::RetentionReportRequest::default()).await.unwrap_err();
    assert_eq!(reason(&denied), "ACCESS_DENIED");
}

#[tokio::test]
async fn the_background_scrub_writes_its_result_to_the_ledger() {
    let app = TestAppliance::start_with(|c| {
        c.evidence.scrub_interval_seconds = 1;
        c.evidence.scrub_bytes_per_second = 0;
    })
    .await
    .unwrap();
    archive_with_records(&app).await;
    let mut compliance = app.compliance().await.unwrap();
    // The scrub runs on real time (tokio's timer), not the test's clock.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found =
            audit(&mut compliance, v1::AuditLogRequest { kinds: vec!["integrity".into()], ..Default::default() })
                .await
                .unwrap();
        if let Some(entry) = found.first() {
            assert_eq!(entry.operation, "integrity-verified", "{entry:?}");
            assert_eq!(entry.principal, "system");
            assert!(entry.detail.contains("no divergence"), "{}", entry.detail);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no scrub result within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each edit made directly to the stopped appliance's RocksDB is named by the
/// integrity check once it is running again.
#[tokio::test]
async fn edits_to_a_stopped_appliances_rocksdb_are_named_exactly() {
    let mut app = TestAppliance::start().await.unwrap();
    let acks = archive_with_records(&app).await;
    let db = app.data_dir().join("db");

    type Edit = Box<dyn Fn(&std::path::Path) -> anyhow::Result<Vec<u8>>>;
    let cases: Vec<(&str, Edit, String)> = vec![
        (
            "stored bytes",
            Box::new(|db| {
                tamper::edit(
                    db,
                    Keyspace::Chunks,
                    |_, v| tamper::contains(v, b"2026,7"),
                    |v| tamper::flip_in(v, b"2026,7"),
                )
            }),
            "bytes of books/ledger/2026.csv".to_owned(),
        ),
        (
            "version metadata",
            Box::new(|db| {
                tamper::edit(
                    db,
                    Keyspace::Versions,
                    |k, _| tamper::contains(k, b"ledger/2027.csv"),
                    |v| tamper::flip_in(v, b"application/octet-stream"),
                )
            }),
            "metadata record of books/ledger/2027.csv".to_owned(),
        ),
        (
            "ledger entry",
            Box::new(|db| {
                tamper::edit(
                    db,
                    Keyspace::Ledger,
                    |_, v| tamper::contains(v, b"notes/a"),
                    |v| tamper::flip_in(v, b"notes/a"),
                )
            }),
            "does not hash to its stored chain hash".to_owned(),
        ),
    ];
    for (what, edit, expected) in cases {
        app.stop().await.unwrap();
        let key = edit(&db).unwrap();
        app.restart().await.unwrap();
        let mut compliance = app.compliance().await.unwrap();
        let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
        assert!(!report.ok, "{what}: the edit went unnoticed");
        let first = &report.divergences[0];
        assert!(first.what.contains(&expected), "{what}: {first:?}");
        if what == "stored bytes" {
            assert_eq!(first.sequence, acks[0].ledger_sequence, "{what}: named with the entry that wrote it");
        }
        // Undo, so that the next case starts clean.
        app.stop().await.unwrap();
        tamper::edit(&db, keyspace_of(what), |k, _| k == key.as_slice(), |v| undo(what, v)).unwrap();
        app.restart().await.unwrap();
        let mut compliance = app.compliance().await.unwrap();
        let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
        assert!(report.ok, "{what}: after undoing, {report:?}");
    }
}

fn keyspace_of(what: &str) -> Keyspace {
    match what {
        "stored bytes" => Keyspace::Chunks,
        "version metadata" => Keyspace::Versions,
        _ => Keyspace::Ledger,
    }
}

fn undo(what: &str, value: &mut [u8]) {
    let flipped: &[u8] = match what {
        "stored bytes" => b"3026,7",
        "version metadata" => b"`pplication/octet-stream",
        _ => b"ootes/a",
    };
    tamper::flip_in(value, flipped);
}

/// Records' bytes live in the log's segment files beside RocksDB: a byte
/// changed there fails the checksum its frame recorded, is named like a
/// damaged block inside RocksDB, a read of it fails instead of returning
/// it, and undoing it verifies again.
#[tokio::test]
async fn an_edit_to_a_value_segment_file_is_named_and_never_served() {
    let mut app = TestAppliance::start().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    create_bucket(&mut archive, "scans", v1::VersioningStatus::Enabled).await;
    let body: Vec<u8> = (0..256 * 1024u32).map(|n| b"scan-of-contract-"[(n % 17) as usize]).collect();
    let ack = put(&mut archive, "scans", "contract.pdf", &body).await.unwrap();
    app.stop().await.unwrap();

    let db = app.data_dir().join("db");
    let segment = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("the record went to a value segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.windows(body.len()).position(|w| w == body).expect("its bytes are in the segment") + 1000;
    bytes[at] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    app.restart().await.unwrap();
    let mut compliance = app.compliance().await.unwrap();
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(!report.ok, "the edit went unnoticed");
    let what = &report.divergences[0].what;
    assert!(what.contains("of scans/contract.pdf") && what.contains("could not be read"), "{what}");
    assert_eq!(report.divergences[0].sequence, ack.ledger_sequence);
    let mut archive = app.archive().await.unwrap();
    assert!(get(&mut archive, "scans", "contract.pdf", "").await.is_err(), "edited bytes are not served");

    app.stop().await.unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    app.restart().await.unwrap();
    let mut compliance = app.compliance().await.unwrap();
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(report.ok, "after undoing: {report:?}");
    let mut archive = app.archive().await.unwrap();
    assert_eq!(get(&mut archive, "scans", "contract.pdf", "").await.unwrap().1, body);
}

/// The index lost (a stopped appliance's RocksDB files deleted, the log's
/// segment files left): `wormboxd rebuild-index` rebuilds it from the log
/// alone, verifies it against the ledger, the version bytes, the signed
/// checkpoints and an auditor's published checkpoint before it replaces
/// anything, and the appliance then serves every version as before. A log
/// cut short (root removing its last frames, checkpoints and all) is
/// refused against the published checkpoint, and a rebuild with none named
/// must say so.
#[tokio::test]
async fn a_lost_index_is_rebuilt_from_the_log_alone_and_verified() {
    let mut app = TestAppliance::start().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    create_bucket(&mut archive, "scans", v1::VersioningStatus::Enabled).await;
    let body = |n: usize| format!("scanned page {n} ").repeat(50 * (n + 1)).into_bytes();
    let mut acks = Vec::new();
    for n in 0..24 {
        acks.push(put(&mut archive, "scans", &format!("page/{n:02}"), &body(n)).await.unwrap());
    }
    // A second version of one page, and a purged one: the log holds both.
    put(&mut archive, "scans", "page/00", b"second").await.unwrap();
    drop(archive);
    let published = app.server().app().store().checkpoint().await.unwrap();
    let public_key = app.server().app().public_key().to_vec();
    let auditors_copy = app.temp_dir().join("published.json");
    let file = wormbox_reports::CheckpointFile::new(&published, &public_key);
    std::fs::write(&auditors_copy, serde_json::to_vec(&file).unwrap()).unwrap();
    app.stop().await.unwrap();

    let db = app.data_dir().join("db");
    for entry in std::fs::read_dir(&db).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "seg") && path.file_name().is_some_and(|n| n != "LOCK") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let options = wormbox_server::rocks_options(&wormbox_server::config::WormboxdConfig::default());
    let rebuilt_dir = app.data_dir().join(wormbox_server::index::REBUILT_DIR);
    let rebuild = |published: &wormbox_server::index::Published| {
        wormbox_server::index::rebuild_index(app.data_dir(), &options, 1_800_000_000, published)
    };
    let unnamed = rebuild(&wormbox_server::index::Published::default()).unwrap_err().to_string();
    assert!(unnamed.contains("--no-published-checkpoint"), "{unnamed}");
    assert!(!rebuilt_dir.exists(), "a refusal for want of a checkpoint does no work");

    // The log's last segment cut in half: what remains replays (a cut tail is
    // what a crash leaves), and alone it would verify, but the published
    // checkpoint lies beyond it.
    let mut segments: Vec<_> = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap().clone();
    let whole = std::fs::read(&last).unwrap();
    std::fs::write(&last, &whole[..whole.len() / 2]).unwrap();
    let with_auditors_copy = wormbox_server::index::Published { paths: vec![auditors_copy.clone()], none_kept: false };
    let cut = rebuild(&with_auditors_copy).unwrap_err().to_string();
    assert!(cut.contains("does not verify") && cut.contains("truncated"), "{cut}");
    assert!(std::fs::read(&last).unwrap() == whole[..whole.len() / 2], "a refused rebuild leaves the log as it was");
    std::fs::remove_dir_all(&rebuilt_dir).unwrap();
    std::fs::write(&last, &whole).unwrap();

    let rebuilt = rebuild(&with_auditors_copy).unwrap();
    assert!(rebuilt.frames > 25, "{rebuilt:?}");
    assert!(rebuilt.report.is_ok() && rebuilt.report.versions_checked == 25, "{}", rebuilt.report.summary());
    assert!(rebuilt.replaced.ends_with("db.replaced-1800000000"));
    assert!(!rebuilt_dir.exists());

    app.restart().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    for (n, ack) in acks.iter().enumerate() {
        let (version, data) = get(&mut archive, "scans", &format!("page/{n:02}"), &ack.version_id).await.unwrap();
        assert_eq!((version.sha256, data), (ack.sha256.clone(), body(n)), "page {n}");
    }
    assert_eq!(get(&mut archive, "scans", "page/00", "").await.unwrap().1, b"second");
    let mut compliance = app.compliance().await.unwrap();
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");
    // Writing goes on over the rebuilt index.
    put(&mut archive, "scans", "page/99", b"after the rebuild").await.unwrap();
}

/// A client rebuilds the signed root from the entries alone (the Merkle
/// leaves), reads in bounded pages, and a writer reads none.
#[tokio::test]
async fn the_entries_rebuild_the_signed_merkle_root_and_only_auditors_and_admins_read_them() {
    let app = TestAppliance::start().await.unwrap();
    archive_with_records(&app).await;
    let mut compliance = app.compliance().await.unwrap();
    let checkpoint = compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap().into_inner();
    let signed = checkpoint_of(&checkpoint.checkpoint.unwrap());
    let mut tree = wormbox_store::merkle::Frontier::default();
    let mut chain = wormbox_store::ledger::GENESIS;
    let mut start = 1;
    while start <= signed.sequence {
        let request = v1::GetEntriesRequest { start, end: (start + 4).min(signed.sequence + 1) };
        let page = compliance.get_entries(request).await.unwrap().into_inner().entries;
        assert!(!page.is_empty() && page.len() <= 4);
        for e in page {
            assert_eq!(e.sequence, start);
            let mut hashed = chain.0.to_vec();
            hashed.extend_from_slice(&e.entry);
            chain = wormbox_model::Digest::from_slice(ring::digest::digest(&ring::digest::SHA256, &hashed).as_ref())
                .unwrap();
            assert_eq!(e.chain_hash, chain.0.to_vec(), "entry {start} chains");
            tree.push(wormbox_store::merkle::leaf_hash(&e.entry), |_, _, _| {});
            start += 1;
        }
    }
    assert_eq!(chain, signed.head);
    assert_eq!(Some(tree.root()), signed.tree_root, "the leaves make the signed root");

    // Past the end: fewer entries; nonsense and oversize pages refused.
    let head = app.server().app().store().ledger_head().unwrap().0;
    let tail = compliance.get_entries(v1::GetEntriesRequest { start: head, end: head + 50 }).await.unwrap();
    assert_eq!(tail.into_inner().entries.len(), 1);
    for (start, end) in [(0, 5), (5, 5), (1, 1002), (head + 1, head + 2)] {
        let err = compliance.get_entries(v1::GetEntriesRequest { start, end }).await.unwrap_err();
        assert_eq!(reason(&err), "INVALID_ARGUMENT", "{start}..{end}");
    }
    let writer = app.principal("app", v1::Role::Writer).await.unwrap();
    let mut as_writer = app.compliance_as(&writer).await.unwrap();
    let err = as_writer.get_entries(v1::GetEntriesRequest { start: 1, end: 2 }).await.unwrap_err();
    assert_eq!(reason(&err), "ACCESS_DENIED");
}

/// A client holding only a signed checkpoint note reads the ledger's tree
/// as C2SP tlog-tiles over gRPC: every tile up to the checkpoint recomputes
/// from the entries to the signed root; bad paths and tiles the ledger does
/// not hold yet are refused; a writer reads none.
#[tokio::test]
async fn the_tiles_served_over_grpc_recompute_to_the_signed_note_s_root() {
    let app = TestAppliance::start().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    create_bucket(&mut archive, "stream", v1::VersioningStatus::Enabled).await;
    let records: Vec<v1::IngestRecord> = (0..600u64)
        .map(|n| v1::IngestRecord {
            sequence: n,
            bucket: "stream".to_owned(),
            key: format!("rec/{n:05}"),
            data: format!("record {n}").into_bytes(),
            ..Default::default()
        })
        .collect();
    let mut acks = archive.ingest(tokio_stream::iter(records)).await.unwrap().into_inner();
    while let Some(ack) = acks.message().await.unwrap() {
        assert!(ack.error.is_none(), "{ack:?}");
    }
    let mut compliance = app.compliance().await.unwrap();
    let reply = compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap().into_inner();
    let opened = wormbox_store::note::open(&reply.note, &reply.public_key).unwrap();
    assert!(opened.size > 600);
    let mut fetched = std::collections::HashMap::new();
    for tile in wormbox_store::tiles::Tile::of_tree(opened.size) {
        let request = v1::GetTileRequest { path: tile.to_string() };
        fetched.insert(tile, compliance.get_tile(request).await.unwrap().into_inner().data);
    }
    assert!(fetched.keys().any(|t| t.to_string() == "tile/1/000.p/2"), "{:?}", fetched.keys());
    let entries = wormbox_store::tiles::check(opened.size, &opened.root, &mut |tile| {
        fetched.get(&tile).cloned().ok_or_else(|| format!("{tile} was not fetched"))
    });
    assert_eq!(entries, Ok(opened.size));
    let last_bundle = fetched
        .iter()
        .filter(|(t, _)| matches!(t, wormbox_store::tiles::Tile::Entries { .. }))
        .max_by_key(|(t, _)| t.first())
        .unwrap()
        .1;
    let last = *wormbox_store::tiles::unbundle(last_bundle).unwrap().last().unwrap();
    let last = wormbox_store::ledger::LedgerEntry::decode_canonical(last).unwrap();
    assert_eq!(last.sequence, opened.size);

    for path in ["tile/0/0", "tile/0/000.p/0", "../tile/0/000", "tile/3/000", "tile/entries/009"] {
        let err = compliance.get_tile(v1::GetTileRequest { path: path.to_owned() }).await.unwrap_err();
        assert_eq!(reason(&err), "INVALID_ARGUMENT", "{path}");
    }
    let writer = app.principal("app", v1::Role::Writer).await.unwrap();
    let mut as_writer = app.compliance_as(&writer).await.unwrap();
    let err = as_writer.get_tile(v1::GetTileRequest { path: "tile/0/000".to_owned() }).await.unwrap_err();
    assert_eq!(reason(&err), "ACCESS_DENIED");
}
