//! Witnesses (C2SP tlog-witness) against real appliances: one witness
//! cosigns each new checkpoint of an appliance; a copy of that appliance's
//! data (same signing key) that goes on with another history is refused by
//! the witness, and `verify` on the copy reports it, while the original
//! verifies.

use std::sync::Arc;
use std::time::Duration;

use wormbox_proto::v1;
use wormbox_server::config::WitnessConfig;
use wormbox_test_utils::TestAppliance;
use wormbox_witness::{Witness, WitnessSigner};

use super::{create_bucket, put};

/// Starts a witness of the appliance whose public key is `log` on port 0.
async fn start_witness(dir: &std::path::Path, log: &[u8]) -> (Arc<Witness>, String) {
    let signer = WitnessSigner::from_seed("witness.test/w1", &[5; 32]).unwrap();
    let clock: Arc<dyn wormbox_model::Clock> =
        Arc::new(wormbox_model::ManualClock::new(wormbox_test_utils::TEST_EPOCH));
    let witness = Arc::new(Witness::open(signer, &[log.to_vec()], &dir.join("witness-state"), clock).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wormbox_witness::server::serve(listener, Arc::clone(&witness), std::future::pending()));
    (witness, url)
}

async fn checkpoint(app: &TestAppliance, sequence: u64) -> v1::GetCheckpointResponse {
    let mut compliance = app.compliance().await.unwrap();
    compliance.get_checkpoint(v1::GetCheckpointRequest { sequence }).await.unwrap().into_inner()
}

/// What the appliance recorded of the witness, once `done` says so (the
/// witnessing task asks every second; this waits up to 30 s).
async fn witnessed(
    app: &TestAppliance,
    sequence: u64,
    done: impl Fn(&v1::GetCheckpointResponse) -> bool,
) -> v1::GetCheckpointResponse {
    for _ in 0..300 {
        let reply = checkpoint(app, sequence).await;
        if done(&reply) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the witness's answer was not recorded: {:?}", checkpoint(app, sequence).await.witnesses);
}

async fn write(app: &TestAppliance, bucket: &str, prefix: &str, count: usize) {
    let mut archive = app.archive().await.unwrap();
    for n in 0..count {
        put(&mut archive, bucket, &format!("{prefix}/{n}"), format!("{prefix} {n}").as_bytes()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_witness_cosigns_each_checkpoint_and_refuses_a_forked_copy_of_the_ledger() {
    let mut app = TestAppliance::start().await.unwrap();
    let public_key = checkpoint(&app, 0).await.public_key;
    let (witness, url) = start_witness(&app.temp_dir(), &public_key).await;
    let key = witness.signer().key();
    app.restart_with(|c| {
        c.witness = vec![WitnessConfig { key: key.vkey(), url: url.clone() }];
        // Only the checkpoints this test asks for: none signed by the timer
        // between its writes.
        c.evidence.checkpoint_interval_seconds = 86_400;
    })
    .await
    .unwrap();
    let mut archive = app.archive().await.unwrap();
    create_bucket(&mut archive, "books", v1::VersioningStatus::Enabled).await;
    write(&app, "books", "a", 5).await;

    // The witness cosigns the head's checkpoint; the note carries its line.
    let first = checkpoint(&app, 0).await.checkpoint.unwrap().sequence;
    let cosigned = witnessed(&app, first, |r| !r.cosignatures.is_empty()).await;
    let (text, signatures) = cosigned.note.split_once("\n\n").unwrap();
    let cosignature = key.find(&format!("{text}\n"), signatures).expect("the note carries the witness's cosignature");
    assert_eq!(cosignature.line, cosigned.cosignatures[0].line);
    wormbox_store::note::open(&cosigned.note, &public_key).expect("the appliance's own signature still opens");
    assert_eq!(cosigned.witnesses[0].cosigned_sequence, first);
    assert!(!cosigned.witnesses[0].fork);

    // A copy of the data goes on with another history, same key.
    let forked = app.fork().await.unwrap();
    write(&app, "books", "b", 5).await;
    let second = checkpoint(&app, 0).await.checkpoint.unwrap().sequence;
    witnessed(&app, second, |r| !r.cosignatures.is_empty()).await;
    let origin = wormbox_store::note::origin(&public_key);
    assert_eq!(witness.recorded()[&origin].0, second);

    write(&forked, "books", "c", 8).await;
    let forked_head = checkpoint(&forked, 0).await.checkpoint.unwrap();
    assert!(forked_head.sequence > second);
    let refused = witnessed(&forked, forked_head.sequence, |r| r.witnesses.iter().any(|w| w.fork)).await;
    let status = &refused.witnesses[0];
    assert_eq!((status.refused_sequence, status.refused_status), (forked_head.sequence, 422), "{status:?}");
    assert_eq!((status.fork_sequence, status.fork_status), (forked_head.sequence, 422), "{status:?}");
    assert!(refused.cosignatures.is_empty());
    assert_eq!(witness.recorded()[&origin].0, second, "the witness's record did not move");

    // The copy's verify reports it; the original verifies.
    let mut compliance = forked.compliance().await.unwrap();
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(!report.ok, "{report:?}");
    let said = format!("{report:?}");
    assert!(said.contains("witness witness.test/w1 refused"), "{said}");
    let mut compliance = app.compliance().await.unwrap();
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");

    // A fork stays on record after a restart.
    let mut forked = forked;
    forked.restart().await.unwrap();
    assert!(checkpoint(&forked, 0).await.witnesses[0].fork);
}
