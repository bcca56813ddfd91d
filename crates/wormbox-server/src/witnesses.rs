//! Witnessing: each `[[witness]]` is sent the newest signed checkpoint, as a
//! C2SP signed note with the consistency proof from the last checkpoint it
//! cosigned (C2SP tlog-witness), and what it answers is recorded: its
//! cosignature, or its refusal.
//!
//! Invariant: a cosignature is recorded only after it verified under the
//! witness's configured key over the checkpoint sent (`wormbox-witness`'s
//! client checks it); a refusal that says the ledger forked is recorded and
//! then reported by every `verify`; a witness that cannot be reached
//! changes nothing and is asked again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wormbox_store::evidence::{Ed25519Signer, Signer as _};
use wormbox_store::{Store, WitnessOutcome};
use wormbox_witness::{AddCheckpoint, Submitted, WitnessClient};

/// How often each witness task looks for a new checkpoint.
const POLL: Duration = Duration::from_secs(1);
/// How often an unreachable witness is logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Starts one task per witness; they end when the handles are aborted.
pub(crate) fn spawn(
    store: Store,
    signer: Arc<Ed25519Signer>,
    witnesses: Vec<WitnessClient>,
) -> Vec<tokio::task::JoinHandle<()>> {
    witnesses
        .into_iter()
        .map(|client| {
            let (store, signer) = (store.clone(), Arc::clone(&signer));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(POLL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut warned: Option<Instant> = None;
                loop {
                    tick.tick().await;
                    if let Err(why) = witness_once(&store, &signer, &client).await
                        && warned.is_none_or(|at| at.elapsed() >= WARN_EVERY)
                    {
                        tracing::warn!(witness = %client.key().name, url = client.url(), %why, "a witness was not asked");
                        warned = Some(Instant::now());
                    }
                }
            })
        })
        .collect()
}

/// Sends the newest checkpoint to `client` unless it cosigned it (or
/// refused it) already, and records the answer.
pub(crate) async fn witness_once(store: &Store, signer: &Ed25519Signer, client: &WitnessClient) -> Result<(), String> {
    let name = client.key().name.clone();
    let Some(checkpoint) = store.last_checkpoint().map_err(|e| e.to_string())? else { return Ok(()) };
    let last = store.witness_last(&name).map_err(|e| e.to_string())?.map(|(sequence, _)| sequence);
    if last.is_some_and(|last| last >= checkpoint.sequence) {
        return Ok(());
    }
    let refusals = store.witness_refusals().map_err(|e| e.to_string())?;
    if refusals.iter().any(|r| r.witness == name && r.sequence == checkpoint.sequence) {
        return Ok(());
    }
    // Only what this key signed is sent (as GetCheckpoint's note).
    if !checkpoint.verify(signer.public_key()) {
        return Err(format!("the stored checkpoint at {} is not signed by this appliance", checkpoint.sequence));
    }
    let Some(note) = wormbox_store::note::sign(signer, &checkpoint) else { return Ok(()) };
    let mut old = last.unwrap_or(0);
    let mut attempts = 0;
    let outcome = loop {
        // Once from the size recorded here, once more from the size the
        // witness names: a witness whose size keeps changing is not chased.
        attempts += 1;
        if attempts > 2 {
            return Err(format!("the witness named another size again (now {old}); asked again later"));
        }
        let (proof_store, first, second) = (store.clone(), old, checkpoint.sequence);
        let proof = tokio::task::spawn_blocking(move || proof_store.consistency_proof(first, second))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let request = AddCheckpoint { old_size: old, proof, checkpoint: note.clone() };
        match client.add_checkpoint(&request).await.map_err(|e| e.to_string())? {
            Submitted::Cosigned(cosignature) => {
                tracing::info!(witness = %name, sequence = checkpoint.sequence, "a witness cosigned the checkpoint");
                break WitnessOutcome::Cosigned { line: cosignature.line, timestamp: cosignature.timestamp };
            }
            // The witness holds another size for this log than recorded
            // here (its record, or ours, is older): once more from its size.
            Submitted::Conflict { size } if size != old && size <= checkpoint.sequence => {
                if last.is_some_and(|last| size < last) {
                    tracing::warn!(
                        witness = %name,
                        holds = size,
                        cosigned_here = last,
                        "a witness holds an older checkpoint than it cosigned for this appliance: it lost its state"
                    );
                }
                old = size;
            }
            Submitted::Conflict { size } => {
                break WitnessOutcome::Refused {
                    status: 409,
                    why: format!(
                        "it holds a checkpoint of {size} entries of this log; this ledger's newest signed checkpoint \
                         is at {}",
                        checkpoint.sequence
                    ),
                };
            }
            Submitted::Refused { status, why } => {
                tracing::error!(witness = %name, sequence = checkpoint.sequence, status, %why, "a witness REFUSED the checkpoint");
                break WitnessOutcome::Refused { status, why };
            }
        }
    };
    store.record_witness(&name, checkpoint.sequence, outcome).await.map_err(|e| e.to_string())
}
