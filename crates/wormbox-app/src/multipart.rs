//! Multipart uploads (S3's CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts,
//! ListMultipartUploads): parts are kept as files under
//! `<data_dir>/multipart/<upload id>/` until the upload completes into one
//! version, written once like any PutObject, or is aborted or expires.
//!
//! Invariant: a part is visible only once all its bytes are on disk and
//! synced (written to a temporary file, synced, then renamed), so a crash
//! never leaves a part shorter than the client was told; parts are not
//! versions and are not in the ledger, and the completed object is one
//! `AppUpload` with its own SHA-256 and ledger entry, judged by the writer
//! as any write (bucket, retention, holds, role). An upload is seen only
//! by its initiator and admins (others get `NoSuchUpload`, the answer for
//! one that does not exist); its total is bounded by the archive's largest
//! object, the number of open uploads per principal by `MAX_OPEN_PER_PRINCIPAL`,
//! and uploads older than `expiry` are removed (`sweep`, hourly and at
//! start). One operation at a time changes an upload's parts: a complete or
//! an abort running takes the upload from every other call.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use wormbox_model::{BucketName, Clock, ObjectKey, Role, Timestamp, UserMetadata};
use wormbox_store::retention::{Retention, RetentionMode};
use wormbox_store::{Actor, CHUNK_BYTES, NewObject, StoreError, WriteAck};

use crate::{Access, App, AppError, PutObject};

/// Where uploads are kept, under the data directory.
pub const MULTIPART_DIR: &str = "multipart";
/// The highest part number (S3's).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// The smallest part but the last (S3's 5 MiB).
pub const MIN_PART_BYTES: u64 = 5 << 20;
/// Open uploads one principal may have at once.
pub const MAX_OPEN_PER_PRINCIPAL: usize = 100;
/// How often expired uploads are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Why a multipart call was refused (besides the store's and role refusals).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    /// No such upload for this caller, bucket and key (or it completed, was
    /// aborted or expired).
    #[error("the specified multipart upload does not exist: it may have been aborted or completed")]
    NoSuchUpload,
    /// A part named in a complete is not there, or its ETag differs.
    #[error("part {0} was not uploaded, or its ETag does not match")]
    InvalidPart(u32),
    /// A complete lists parts out of order or twice.
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is below 5 MiB.
    #[error("part {0} is smaller than the minimum allowed size of 5 MiB (only the last part may be)")]
    EntityTooSmall(u32),
    /// Too many open uploads, or a part number out of range.
    #[error("{0}")]
    Limit(String),
    /// Another call (a complete or an abort) holds the upload now.
    #[error("another request is completing or aborting this upload")]
    Busy,
}

/// What is kept of an upload besides its parts.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    bucket: String,
    key: String,
    initiator: String,
    created_micros: i64,
    content_type: String,
    metadata: BTreeMap<String, String>,
    retention: Option<(String, i64)>,
    legal_hold: Option<String>,
}

/// A part as stored: its size and the ETag the front door computed.
#[derive(Debug, Serialize, Deserialize)]
struct PartRecord {
    size: u64,
    etag: String,
    modified_micros: i64,
}

/// An open upload, as ListMultipartUploads shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenUpload {
    /// The upload id.
    pub upload_id: String,
    /// The key it will complete into.
    pub key: String,
    /// Who created it.
    pub initiator: String,
    /// When, by the compliance clock.
    pub created: Timestamp,
}

/// A stored part, as ListParts shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// Its number.
    pub number: u32,
    /// Its size.
    pub size: u64,
    /// Its ETag (no quotes).
    pub etag: String,
    /// When it was written.
    pub modified: Timestamp,
}

/// The uploads of an appliance.
#[derive(Debug)]
pub struct MultipartUploads {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    expiry: Duration,
    /// Uploads a complete or an abort is working on.
    busy: Mutex<HashSet<String>>,
    last_sweep: AtomicI64,
}

impl MultipartUploads {
    /// The uploads kept under `data_dir`; those older than `expiry` are removed.
    pub fn new(data_dir: &Path, clock: Arc<dyn Clock>, expiry: Duration) -> MultipartUploads {
        MultipartUploads {
            dir: data_dir.join(MULTIPART_DIR),
            clock,
            expiry,
            busy: Mutex::new(HashSet::new()),
            last_sweep: AtomicI64::new(i64::MIN),
        }
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Removes uploads older than the expiry (and staging leftovers of a crash). Blocks.
    pub fn sweep(&self) -> std::io::Result<usize> {
        let now = self.clock.now().as_micros();
        self.last_sweep.store(now, Ordering::Relaxed);
        let mut removed = 0;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let expiry = i64::try_from(self.expiry.as_micros()).unwrap_or(i64::MAX);
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let expired = match read_manifest(&entry.path()) {
                Ok(manifest) => now.saturating_sub(manifest.created_micros) > expiry,
                // A directory without a readable manifest is a create that crashed.
                Err(_) => true,
            };
            if expired && self.take(&id).is_ok() {
                let _ = std::fs::remove_dir_all(entry.path());
                self.give_back(&id);
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "expired multipart uploads removed");
        }
        Ok(removed)
    }

    fn sweep_if_due(&self) {
        let now = self.clock.now().as_micros();
        let every = SWEEP_EVERY.as_micros() as i64;
        if now.saturating_sub(self.last_sweep.load(Ordering::Relaxed)) >= every
            && let Err(err) = self.sweep()
        {
            tracing::warn!(error = %err, "could not sweep expired multipart uploads");
        }
    }

    fn take(&self, id: &str) -> Result<(), MultipartError> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if busy.insert(id.to_owned()) { Ok(()) } else { Err(MultipartError::Busy) }
    }

    fn give_back(&self, id: &str) {
        self.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// The manifest of `id` if `actor` may see it and it is for `bucket`/`key`.
    fn open(&self, actor: &Actor, bucket: &BucketName, key: &ObjectKey, id: &str) -> Result<Manifest, AppError> {
        let well_formed = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(MultipartError::NoSuchUpload.into());
        }
        let manifest = read_manifest(&self.upload_dir(id)).map_err(|_| MultipartError::NoSuchUpload)?;
        let mine = manifest.initiator == actor.access_key || actor.role == Role::Admin;
        if !mine || manifest.bucket != bucket.as_str() || manifest.key != key.as_str() {
            return Err(MultipartError::NoSuchUpload.into());
        }
        Ok(manifest)
    }
}

fn read_manifest(dir: &Path) -> std::io::Result<Manifest> {
    let raw = std::fs::read(dir.join("upload.json"))?;
    serde_json::from_slice(&raw).map_err(std::io::Error::other)
}

fn part_name(number: u32) -> String {
    format!("part-{number:05}")
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> AppError + '_ {
    move |e| AppError::Internal(format!("{what}: {e}"))
}

/// A part being received: bytes go to a temporary file; `finish` syncs it
/// and makes it the upload's part (replacing an earlier one of that number).
#[derive(Debug)]
pub struct PartWriter {
    number: u32,
    file: Option<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    size: u64,
    limit: u64,
    uploads: Arc<MultipartUploads>,
    upload_id: String,
    /// Whose disk reserve a part's bytes are admitted against.
    store: wormbox_store::Store,
}

impl PartWriter {
    /// Appends bytes (on a blocking thread), once the disk's reserve
    /// admits them.
    pub async fn write(&mut self, data: impl AsRef<[u8]> + Send + 'static) -> Result<(), AppError> {
        self.size += data.as_ref().len() as u64;
        if self.size > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit }.into());
        }
        // Held until the bytes are in the part's file.
        let _space = self.store.check_space(data.as_ref().len() as u64)?;
        let mut file = self.file.take().ok_or_else(|| AppError::Internal("the part was lost".into()))?;
        let (file, res) = tokio::task::spawn_blocking(move || {
            let res = file.write_all(data.as_ref());
            (file, res)
        })
        .await
        .map_err(|e| AppError::Internal(format!("a blocking task failed: {e}")))?;
        self.file = Some(file);
        res.map_err(io_error("writing a part"))
    }

    /// Syncs the part and puts it in place with its ETag.
    pub async fn finish(mut self, etag: String) -> Result<PartInfo, AppError> {
        wormbox_store::check_etag(&etag)?;
        let file = self.file.take().ok_or_else(|| AppError::Internal("the part was lost".into()))?;
        let modified = self.uploads.clock.now();
        let record = PartRecord { size: self.size, etag: etag.clone(), modified_micros: modified.as_micros() };
        let (tmp, path, dir) = (self.tmp.clone(), self.path.clone(), self.dir.clone());
        let (uploads, id) = (Arc::clone(&self.uploads), self.upload_id.clone());
        tokio::task::spawn_blocking(move || -> Result<(), AppError> {
            file.sync_all().map_err(io_error("storing a part"))?;
            drop(file);
            let json = serde_json::to_vec(&record).map_err(|e| AppError::Internal(e.to_string()))?;
            // Put in place under the lock that a complete or an abort takes
            // the upload with: no part changes under a complete reading it.
            let busy = uploads.busy.lock().unwrap_or_else(|p| p.into_inner());
            if busy.contains(&id) {
                let _ = std::fs::remove_file(&tmp);
                return Err(MultipartError::Busy.into());
            }
            // The record first: a part file is only ever read with its record.
            write_synced(&path.with_extension("json"), &json).map_err(io_error("storing a part"))?;
            std::fs::rename(&tmp, &path).map_err(io_error("storing a part"))?;
            drop(busy);
            sync_dir(&dir).map_err(io_error("storing a part"))
        })
        .await
        .map_err(|e| AppError::Internal(format!("a blocking task failed: {e}")))??;
        Ok(PartInfo { number: self.number, size: self.size, etag, modified })
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// One part as a complete names it: number and ETag (no quotes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// The part number.
    pub number: u32,
    /// The ETag the client was given for it.
    pub etag: String,
}

/// CompleteMultipartUpload.
#[derive(Clone, Debug)]
pub struct CompleteMultipart {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// The upload.
    pub upload_id: String,
    /// The parts, ascending.
    pub parts: Vec<CompletedPart>,
    /// The ETag of the whole (the front door's multipart form).
    pub etag: String,
}

fn random_id() -> Result<String, AppError> {
    let mut id = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| AppError::Internal("the system random generator failed".into()))?;
    Ok(hex::encode(id))
}

impl App {
    fn uploads(&self) -> Result<&Arc<MultipartUploads>, AppError> {
        self.multipart.as_ref().ok_or_else(|| AppError::Internal("multipart uploads are not configured".into()))
    }

    /// CreateMultipartUpload: checks what the completed write will need
    /// (role, hold right, bucket, free text) and keeps the attributes.
    pub async fn create_multipart(&self, actor: &Actor, request: PutObject) -> Result<String, AppError> {
        self.authorize(actor, Access::Write)?;
        self.authorize_lock_fields(actor, &request.object)?;
        self.store.bucket(&request.bucket)?;
        self.store.check_new_object(&request.object)?;
        drop(self.store.check_space(0)?);
        if request.object.expected_sha256.is_some() || request.object.etag.is_some() {
            return Err(StoreError::InvalidArgument("a multipart upload states no digest of the whole".into()).into());
        }
        let uploads = self.uploads()?;
        uploads.sweep_if_due();
        let open = self.list_uploads_of(uploads, None, Some(&actor.access_key))?.len();
        if open >= MAX_OPEN_PER_PRINCIPAL {
            return Err(MultipartError::Limit(format!(
                "{open} multipart uploads are open for this principal (at most {MAX_OPEN_PER_PRINCIPAL}): complete or \
                 abort some first"
            ))
            .into());
        }
        let id = random_id()?;
        let object = &request.object;
        let manifest = Manifest {
            bucket: request.bucket.to_string(),
            key: request.key.to_string(),
            initiator: actor.access_key.clone(),
            created_micros: uploads.clock.now().as_micros(),
            content_type: object.content_type.clone(),
            metadata: object.user_metadata.entries().clone(),
            retention: object.retention.as_ref().map(|r| (r.mode.as_str().to_owned(), r.until.as_micros())),
            legal_hold: object.legal_hold.clone(),
        };
        let dir = uploads.upload_dir(&id);
        let json = serde_json::to_vec(&manifest).map_err(|e| AppError::Internal(e.to_string()))?;
        let root = uploads.dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&root)?;
            std::fs::create_dir(&dir)?;
            write_synced(&dir.join("upload.json"), &json)?;
            sync_dir(&root)
        })
        .await
        .map_err(|e| AppError::Internal(format!("a blocking task failed: {e}")))?
        .map_err(io_error("creating a multipart upload"))?;
        Ok(id)
    }

    /// UploadPart: a writer of part `number` of upload `upload_id`.
    pub async fn upload_part(
        &self,
        actor: &Actor,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        number: u32,
    ) -> Result<PartWriter, AppError> {
        self.authorize(actor, Access::Write)?;
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(MultipartError::Limit(format!("part numbers are 1 to {MAX_PART_NUMBER}")).into());
        }
        let uploads = self.uploads()?;
        uploads.open(actor, bucket, key, upload_id)?;
        drop(self.store.check_space(0)?);
        let dir = uploads.upload_dir(upload_id);
        let path = dir.join(part_name(number));
        // A distinct temporary name per writer: two uploads of one part
        // number race, and the last to finish is the part.
        let tmp = dir.join(format!("{}.{}.tmp", part_name(number), random_id()?));
        let file = std::fs::File::create(&tmp).map_err(|_| MultipartError::NoSuchUpload)?;
        Ok(PartWriter {
            number,
            file: Some(file),
            tmp,
            path,
            dir,
            size: 0,
            limit: self.store.max_object_bytes(),
            uploads: Arc::clone(uploads),
            upload_id: upload_id.to_owned(),
            store: self.store.clone(),
        })
    }

    /// ListParts.
    pub fn list_parts(
        &self,
        actor: &Actor,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<Vec<PartInfo>, AppError> {
        self.authorize(actor, Access::Write)?;
        let uploads = self.uploads()?;
        uploads.open(actor, bucket, key, upload_id)?;
        parts_of(&uploads.upload_dir(upload_id))
    }

    /// ListMultipartUploads of `bucket` that `actor` may see (its own;
    /// every one for admins), oldest key first.
    pub fn list_multipart_uploads(&self, actor: &Actor, bucket: &BucketName) -> Result<Vec<OpenUpload>, AppError> {
        self.authorize(actor, Access::Write)?;
        self.store.bucket(bucket)?;
        let uploads = self.uploads()?;
        let mine = (actor.role != Role::Admin).then_some(actor.access_key.as_str());
        self.list_uploads_of(uploads, Some(bucket), mine)
    }

    fn list_uploads_of(
        &self,
        uploads: &MultipartUploads,
        bucket: Option<&BucketName>,
        initiator: Option<&str>,
    ) -> Result<Vec<OpenUpload>, AppError> {
        let entries = match std::fs::read_dir(&uploads.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("listing multipart uploads")(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Ok(manifest) = read_manifest(&entry.path()) else { continue };
            if bucket.is_some_and(|b| b.as_str() != manifest.bucket)
                || initiator.is_some_and(|i| i != manifest.initiator)
            {
                continue;
            }
            out.push(OpenUpload {
                upload_id: entry.file_name().to_string_lossy().into_owned(),
                key: manifest.key,
                initiator: manifest.initiator,
                created: Timestamp(manifest.created_micros),
            });
        }
        out.sort_by(|a, b| (&a.key, a.created, &a.upload_id).cmp(&(&b.key, b.created, &b.upload_id)));
        Ok(out)
    }

    /// AbortMultipartUpload: removes the upload and its parts.
    pub async fn abort_multipart(
        &self,
        actor: &Actor,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<(), AppError> {
        self.authorize(actor, Access::Write)?;
        let uploads = self.uploads()?;
        uploads.open(actor, bucket, key, upload_id)?;
        uploads.take(upload_id)?;
        let dir = uploads.upload_dir(upload_id);
        let res = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        uploads.give_back(upload_id);
        res.map_err(|e| AppError::Internal(format!("a blocking task failed: {e}")))?
            .map_err(io_error("removing a multipart upload"))
    }

    /// CompleteMultipartUpload: the named parts, in order, become one
    /// version, written through an `AppUpload` as `actor` (its SHA-256
    /// computed as the bytes pass), with the front door's ETag; the upload
    /// is removed once the version is stored. A refused write (a locked
    /// `null` version, a lock field the bucket refuses) keeps the upload.
    pub async fn complete_multipart(&self, actor: &Actor, request: CompleteMultipart) -> Result<WriteAck, AppError> {
        self.authorize(actor, Access::Write)?;
        let uploads = self.uploads()?;
        let manifest = uploads.open(actor, &request.bucket, &request.key, &request.upload_id)?;
        uploads.take(&request.upload_id)?;
        let res = self.complete_taken(actor, uploads, manifest, &request).await;
        if res.is_ok() {
            let dir = uploads.upload_dir(&request.upload_id);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
        uploads.give_back(&request.upload_id);
        res
    }

    async fn complete_taken(
        &self,
        actor: &Actor,
        uploads: &MultipartUploads,
        manifest: Manifest,
        request: &CompleteMultipart,
    ) -> Result<WriteAck, AppError> {
        if request.parts.is_empty() {
            return Err(StoreError::InvalidArgument("a complete names at least one part".into()).into());
        }
        if request.parts.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(MultipartError::InvalidPartOrder.into());
        }
        let dir = uploads.upload_dir(&request.upload_id);
        let stored: BTreeMap<u32, PartInfo> = parts_of(&dir)?.into_iter().map(|p| (p.number, p)).collect();
        let last = request.parts.len() - 1;
        for (i, part) in request.parts.iter().enumerate() {
            let found = stored.get(&part.number).filter(|p| p.etag == part.etag);
            let Some(found) = found else { return Err(MultipartError::InvalidPart(part.number).into()) };
            if i != last && found.size < MIN_PART_BYTES {
                return Err(MultipartError::EntityTooSmall(part.number).into());
            }
        }
        let retention = manifest.retention.map(|(mode, until)| Retention {
            mode: if mode == RetentionMode::Compliance.as_str() {
                RetentionMode::Compliance
            } else {
                RetentionMode::Governance
            },
            until: Timestamp(until),
        });
        let object = NewObject {
            content_type: manifest.content_type,
            // Checked as new when the upload was created, perhaps by a build
            // before the entry count.
            user_metadata: UserMetadata::stored(manifest.metadata).map_err(StoreError::InvalidArgument)?,
            retention,
            legal_hold: manifest.legal_hold,
            ..NewObject::default()
        };
        let put = PutObject { bucket: request.bucket.clone(), key: request.key.clone(), object };
        let mut upload = self.begin_upload(actor, put)?;
        for part in &request.parts {
            let mut file = std::fs::File::open(dir.join(part_name(part.number))).map_err(io_error("reading a part"))?;
            loop {
                let (back, chunk) = tokio::task::spawn_blocking(move || {
                    let mut chunk = vec![0u8; CHUNK_BYTES];
                    let mut filled = 0;
                    while filled < chunk.len() {
                        match file.read(&mut chunk[filled..]) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) => return (file, Err(e)),
                        }
                    }
                    chunk.truncate(filled);
                    (file, Ok(chunk))
                })
                .await
                .map_err(|e| AppError::Internal(format!("a blocking task failed: {e}")))?;
                file = back;
                let chunk = chunk.map_err(io_error("reading a part"))?;
                if chunk.is_empty() {
                    break;
                }
                upload.write(chunk).await?;
            }
        }
        upload.set_etag(request.etag.clone())?;
        upload.finish(actor, || {}).await
    }
}

/// The parts stored in an upload's directory, by number.
fn parts_of(dir: &Path) -> Result<Vec<PartInfo>, AppError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|_| MultipartError::NoSuchUpload)?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = name.strip_prefix("part-").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(raw) = std::fs::read(entry.path().with_extension("json")) else { continue };
        let Ok(record) = serde_json::from_slice::<PartRecord>(&raw) else { continue };
        // The record and the file are renamed in that order: a part whose
        // file is not the record's size is being replaced; skip it.
        if entry.metadata().map(|m| m.len()).ok() != Some(record.size) {
            continue;
        }
        out.push(PartInfo {
            number,
            size: record.size,
            etag: record.etag,
            modified: Timestamp(record.modified_micros),
        });
    }
    out.sort_by_key(|p| p.number);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_sort_by_number_and_parse_back() {
        assert_eq!(part_name(7), "part-00007");
        assert!(part_name(10) > part_name(9));
    }
}
