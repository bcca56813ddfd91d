//! Backups through the Admin API: admins only, a consistent copy with its
//! manifest, a staged copy that is removed whether the client reads to the
//! end or walks away, and restores refused for what would break the archive
//! (a newer format, loose key files, no published checkpoint named).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tonic::transport::Endpoint;
use wormbox_proto::{BearerAuth, v1};
use wormbox_reports::backup::BackupManifest;
use wormbox_server::backup::{RestoreOptions, STAGING_DIR, restore};
use wormbox_test_utils::TestAppliance;

use super::reason;

fn staged(app: &TestAppliance) -> usize {
    std::fs::read_dir(app.data_dir().join(STAGING_DIR)).map(|d| d.count()).unwrap_or(0)
}

/// Receives a whole backup stream into `dir` (db/ and backup.json), as the CLI does.
async fn receive(app: &TestAppliance, dir: &Path) -> BackupManifest {
    let mut stream = app.admin().await.unwrap().backup(v1::BackupRequest {}).await.unwrap().into_inner();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let mut current = None;
    while let Some(chunk) = stream.message().await.unwrap() {
        match chunk.part.unwrap() {
            v1::backup_chunk::Part::File(file) => {
                let path = dir.join("db").join(file.path);
                std::fs::File::create(&path).unwrap();
                current = Some(path);
            }
            v1::backup_chunk::Part::Data(data) => {
                use std::io::Write;
                let path = current.as_ref().unwrap();
                std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(&data).unwrap();
            }
            v1::backup_chunk::Part::ManifestJson(text) => {
                std::fs::write(dir.join("backup.json"), &text).unwrap();
                return BackupManifest::parse(&text).unwrap();
            }
        }
    }
    panic!("the stream ended without a manifest");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_take_backups_and_the_staged_copy_always_goes() {
    let app = TestAppliance::start().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "bkt".into(), ..Default::default() }).await.unwrap();
    // Enough incompressible bytes that a backup is many more parts than the
    // stream buffers, so that a client that stops reading holds it mid-way.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..8 {
        let body: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        super::put(&mut archive, "bkt", &format!("blob/{i}"), &body).await.unwrap();
    }

    for role in [v1::Role::Writer, v1::Role::Reader, v1::Role::Auditor] {
        let credential = app.principal(&format!("{role:?}").to_lowercase(), role).await.unwrap();
        let channel = Endpoint::from_shared(app.endpoint()).unwrap().connect().await.unwrap();
        let mut admin = v1::admin_client::AdminClient::with_interceptor(channel, BearerAuth::new(&credential).unwrap());
        let status = admin.backup(v1::BackupRequest {}).await.unwrap_err();
        assert_eq!(reason(&status), "ACCESS_DENIED", "{role:?}");
    }
    assert_eq!(staged(&app), 0, "a refused backup copies nothing");

    // A whole backup: every file listed, its checkpoint inside the copy.
    let dir = app.temp_dir().join("backup");
    let manifest = receive(&app, &dir).await;
    assert!(manifest.check_files(&dir).unwrap().is_empty());
    assert!(manifest.checkpoint.sequence <= manifest.ledger_sequence && manifest.ledger_sequence > 0);
    let (head, _) = app.server().app().store().ledger_head().unwrap();
    assert!(head >= manifest.ledger_sequence);

    // A client that walks away after the first part: the copy is removed all the same.
    let mut stream = app.admin().await.unwrap().backup(v1::BackupRequest {}).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    assert_eq!(staged(&app), 1, "the copy is staged while it streams");
    drop(stream);
    // The streaming thread notices on its next send; wait for it, bounded.
    for _ in 0..200 {
        if staged(&app) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(staged(&app), 0, "an abandoned backup's copy is removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_refuse_newer_formats_loose_keys_and_unnamed_published_checkpoints() {
    let app = TestAppliance::start().await.unwrap();
    let dir = app.temp_dir();
    let backup = dir.join("backup");
    let manifest = receive(&app, &backup).await;
    let keys = dir.join("keys");
    std::fs::create_dir(&keys).unwrap();
    for key in ["mfa-master.key", "checkpoint-signing.key"] {
        std::fs::copy(app.data_dir().join(key), keys.join(key)).unwrap();
    }
    let options = |target: &str| RestoreOptions {
        from: backup.clone(),
        data_dir: dir.join(target),
        keys: keys.clone(),
        published: Vec::new(),
        without_published: false,
    };

    let err = restore(&options("a")).unwrap_err().to_string();
    assert!(err.contains("--no-published-checkpoint"), "{err}");

    // A key file others can read is refused, not copied on.
    std::fs::set_permissions(keys.join("mfa-master.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = restore(&RestoreOptions { without_published: true, ..options("a") }).unwrap_err().to_string();
    assert!(err.contains("keys must be 0600"), "{err}");
    std::fs::set_permissions(keys.join("mfa-master.key"), std::fs::Permissions::from_mode(0o600)).unwrap();

    // A backup of a newer format than this build reads.
    let mut newer = manifest.clone();
    newer.store_format = wormbox_store::format::FORMAT_VERSION + 1;
    std::fs::write(backup.join("backup.json"), serde_json::to_string(&newer).unwrap()).unwrap();
    let err = restore(&RestoreOptions { without_published: true, ..options("a") }).unwrap_err().to_string();
    assert!(err.contains("newer than this build reads"), "{err}");
    assert!(!dir.join("a").exists());

    // Put right, with no published checkpoint said explicitly, it restores.
    std::fs::write(backup.join("backup.json"), serde_json::to_string(&manifest).unwrap()).unwrap();
    let restored = restore(&RestoreOptions { without_published: true, ..options("a") }).unwrap();
    assert_eq!(restored.ledger_sequence, manifest.ledger_sequence);
    assert!(restored.newest_published.is_none());
    assert!(dir.join("a/db/CURRENT").exists() && dir.join("a/checkpoint-signing.key").exists());
    // And never twice into the same place.
    let err = restore(&RestoreOptions { without_published: true, ..options("a") }).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_written_by_a_newer_build_is_refused_until_a_build_that_reads_it_runs() {
    use wormbox_store::backend::Keyspace;
    use wormbox_store::format::FORMAT_VERSION;
    use wormbox_test_utils::tamper;

    let mut app = TestAppliance::start().await.unwrap();
    app.stop().await.unwrap();
    let db = app.data_dir().join("db");
    let set = |version: u32| {
        tamper::edit(
            &db,
            Keyspace::Meta,
            |key, _| key == b"format-version",
            |value| {
                *value = version.to_be_bytes().to_vec();
            },
        )
        .unwrap();
    };
    set(FORMAT_VERSION + 1);
    let err = format!("{:#}", app.restart().await.unwrap_err());
    assert!(err.contains(&format!("format is version {}, newer than this build reads", FORMAT_VERSION + 1)), "{err}");
    // Offline verification refuses it too, rather than report divergences.
    let backend = tamper::read_only(&db).unwrap();
    let err = wormbox_store::evidence::verify(&*backend, Default::default()).unwrap_err();
    assert!(matches!(err, wormbox_store::StoreError::FormatTooNew { .. }), "{err}");
    drop(backend);
    // The build that wrote it (here: the same format again) opens it as it was.
    set(FORMAT_VERSION);
    app.restart().await.unwrap();
    app.archive().await.unwrap().list_buckets(v1::ListBucketsRequest::default()).await.unwrap();
}
