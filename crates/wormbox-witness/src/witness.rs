//! The witness's judgement of an add-checkpoint request (C2SP
//! `tlog-witness`), and the small file it keeps: per log, the size and root
//! of the last checkpoint it cosigned.
//!
//! Invariant: checking a request against the recorded checkpoint and
//! recording the new one happen under one lock, and the file is replaced
//! whole and synced before the cosignature leaves, so two racing requests
//! can never roll the record back and a crash never loses a cosigned size.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use data_encoding::BASE64 as STANDARD;
use wormbox_model::{Clock, Digest};
use wormbox_store::{merkle, note};

use crate::cosign::WitnessSigner;
use crate::protocol::{AddCheckpoint, parse_size};

/// The first line of the state file.
const STATE_HEADER: &str = "# wormbox witness: per log, the last checkpoint cosigned: origin size base64(root)";

/// Why a witness cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The state file cannot be read or written.
    #[error("the witness state file `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another witness process holds the state file.
    #[error("the witness state file `{path}` is in use by another witness process (its lock `{path}.lock` is held)")]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// The state file is not what a witness writes.
    #[error("the witness state file `{path}` is malformed at line {line}; it is not replaced")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
    },
}

/// An HTTP answer: status, content type, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its body.
    pub body: String,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        let mut body = body.into();
        body.push('\n');
        Reply { status, content_type: "text/plain; charset=utf-8", body }
    }
}

/// A witness: its key, the logs it follows and what it recorded of them.
#[derive(Debug)]
pub struct Witness {
    signer: WitnessSigner,
    /// Log public keys by origin.
    logs: HashMap<String, Vec<u8>>,
    path: PathBuf,
    state: Mutex<BTreeMap<String, (u64, Digest)>>,
    clock: Arc<dyn Clock>,
    /// Held while the witness runs: two processes on one state file would
    /// each overwrite the other's record.
    _lock: std::fs::File,
}

impl Witness {
    /// A witness cosigning as `signer` for the Wormbox appliances whose
    /// public keys are `logs`, recording in the file at `path` (read if it
    /// exists, created at the first cosignature).
    pub fn open(
        signer: WitnessSigner,
        logs: &[Vec<u8>],
        path: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Witness, WitnessError> {
        let logs = logs.iter().map(|key| (note::origin(key), key.clone())).collect();
        let lock_path = sibling(path, ".lock");
        let io = |source| WitnessError::Io { path: lock_path.clone(), source };
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(WitnessError::InUse { path: path.to_owned() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let state = match std::fs::read_to_string(path) {
            Ok(text) => parse_state(&text).map_err(|line| WitnessError::Malformed { path: path.to_owned(), line })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(WitnessError::Io { path: path.to_owned(), source }),
        };
        Ok(Witness { signer, logs, path: path.to_owned(), state: Mutex::new(state), clock, _lock: lock })
    }

    /// The signer's key (to configure the appliance with).
    pub fn signer(&self) -> &WitnessSigner {
        &self.signer
    }

    /// The size and root last cosigned for each log, by origin.
    pub fn recorded(&self) -> BTreeMap<String, (u64, Digest)> {
        self.state.lock().expect("the state lock is never poisoned").clone()
    }

    /// Judges one add-checkpoint request body, as the protocol says.
    pub fn add_checkpoint(&self, body: &[u8]) -> Reply {
        let request = match AddCheckpoint::parse(body) {
            Ok(request) => request,
            Err(why) => return Reply::text(400, why),
        };
        let Some((text, _)) = request.checkpoint.split_once("\n\n") else {
            return Reply::text(400, "the checkpoint is not a signed note");
        };
        let origin = text.split('\n').next().unwrap_or_default();
        let Some(key) = self.logs.get(origin) else {
            return Reply::text(
                404,
                format!("this witness follows no log `{}`", origin.chars().take(100).collect::<String>()),
            );
        };
        let checkpoint = match note::open(&request.checkpoint, key) {
            Ok(checkpoint) => checkpoint,
            Err(e) => return Reply::text(403, e.to_string()),
        };
        // Nothing to vouch for, and a size the state file never records.
        if checkpoint.size == 0 {
            return Reply::text(400, "a checkpoint of an empty tree is not cosigned");
        }
        if request.old_size > checkpoint.size {
            return Reply::text(400, "the old size is larger than the checkpoint's");
        }
        let mut state = self.state.lock().expect("the state lock is never poisoned");
        let (size, root) = state.get(origin).copied().unwrap_or((0, merkle::empty_root()));
        if request.old_size != size {
            return Reply { status: 409, content_type: "text/x.tlog.size", body: format!("{size}\n") };
        }
        if checkpoint.size == size && checkpoint.root != root {
            tracing::warn!(origin, size, "refused: a checkpoint of the size last cosigned with another root (a fork)");
            return Reply::text(409, "the log's checkpoint of this size has another root: the log forked");
        }
        if !merkle::verify_consistency(size, checkpoint.size, &root, &checkpoint.root, &request.proof) {
            tracing::warn!(origin, from = size, to = checkpoint.size, "refused: the consistency proof does not verify");
            return Reply::text(
                422,
                "the consistency proof does not link the checkpoint to the last one cosigned: the log forked or \
                 rewrote its history",
            );
        }
        let mut next = state.clone();
        next.insert(origin.to_owned(), (checkpoint.size, checkpoint.root));
        if let Err(e) = write_state(&self.path, &next) {
            tracing::error!(error = %e, "the witness could not record the checkpoint; it did not cosign");
            return Reply::text(500, "the witness could not record the checkpoint");
        }
        *state = next;
        drop(state);
        let timestamp = u64::try_from(self.clock.now().0.div_euclid(1_000_000)).unwrap_or(0);
        let cosignature = self.signer.cosign(&format!("{text}\n"), timestamp);
        Reply { status: 200, content_type: "text/plain; charset=utf-8", body: cosignature }
    }
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_owned).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn parse_state(text: &str) -> Result<BTreeMap<String, (u64, Digest)>, usize> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if n == 0 && line == STATE_HEADER {
            continue;
        }
        let mut fields = line.split(' ');
        let (Some(origin), Some(size), Some(root), None) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(n + 1);
        };
        // A size of 0 is never recorded (nothing is cosigned before it).
        let size = parse_size(size).filter(|size| *size > 0).ok_or(n + 1)?;
        let root = STANDARD.decode(root.as_bytes()).ok().and_then(|raw| Digest::from_slice(&raw)).ok_or(n + 1)?;
        if out.insert(origin.to_owned(), (size, root)).is_some() {
            return Err(n + 1);
        }
    }
    Ok(out)
}

/// Replaces the state file whole: a temporary file, synced, renamed over
/// it, and the directory synced.
fn write_state(path: &Path, state: &BTreeMap<String, (u64, Digest)>) -> std::io::Result<()> {
    let mut text = format!("{STATE_HEADER}\n");
    for (origin, (size, root)) in state {
        text.push_str(&format!("{origin} {size} {}\n", STANDARD.encode(&root.0)));
    }
    let temporary = sibling(path, ".tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests;
