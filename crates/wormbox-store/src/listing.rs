//! Listing versions and objects, S3-style: key byte order, newest first within
//! a key, prefix, delimiter with common prefixes, and marker paging.
//!
//! Invariant: a page never holds more than `max_keys` entries (versions,
//! markers and common prefixes together), and paging with the returned markers
//! visits every entry exactly once. A ListObjects call examines at most
//! `StoreOptions::list_scan_keys` keys (one more when the last would be a key
//! that is its own common prefix), however many delete markers it passes over.

use wormbox_model::{BucketName, ObjectKey, VersionSelector};

use crate::backend::{Entries, Keyspace};
use crate::codec::VersionRecord;
use crate::{Store, StoreError, VersionInfo};
use crate::{keys, versions};

/// The most entries one page may hold, and the default.
pub const MAX_KEYS: usize = 1000;

/// Parameters of `Store::list_versions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListVersionsParams {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to common prefixes at the first delimiter after `prefix`.
    pub delimiter: Option<String>,
    /// Start after this key (after its versions older than `version_id_marker`, if given).
    pub key_marker: Option<String>,
    /// With `key_marker`: start after this version of it.
    pub version_id_marker: Option<String>,
    /// Page size, 1..=1000; 0 means 1000.
    pub max_keys: usize,
}

/// One page of versions and markers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionsPage {
    /// Versions and markers in listing order.
    pub entries: Vec<VersionInfo>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// Where the next page starts.
    pub next_key_marker: Option<String>,
    /// Where the next page starts within `next_key_marker`.
    pub next_version_id_marker: Option<String>,
}

/// Parameters of `Store::list_objects`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListObjectsParams {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to common prefixes at the first delimiter after `prefix`.
    pub delimiter: Option<String>,
    /// Start after this key or common prefix.
    pub start_after: Option<String>,
    /// Page size, 1..=1000; 0 means 1000.
    pub max_keys: usize,
}

/// One page of latest versions that are not delete markers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectsPage {
    /// Objects in key order.
    pub objects: Vec<VersionInfo>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more follow.
    pub is_truncated: bool,
    /// Pass as `start_after` for the next page.
    pub next_start_after: Option<String>,
}

fn page_size(max_keys: usize) -> usize {
    if max_keys == 0 { MAX_KEYS } else { max_keys.min(MAX_KEYS) }
}

/// The common prefix that `key` rolls up into, if any.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    rest.find(delimiter).map(|at| &key[..prefix.len() + at + delimiter.len()])
}

/// Where to resume after `marker`: past its common prefix if it lies in one,
/// else past all of its versions.
fn start_after_key(bucket: &BucketName, marker: &str, prefix: &str, delimiter: Option<&str>) -> Vec<u8> {
    match common_prefix(marker, prefix, delimiter).filter(|_| marker.starts_with(prefix)) {
        Some(cp) => keys::after_prefix(bucket, cp),
        None => keys::after_object(bucket, marker),
    }
}

struct Cursor<'s> {
    store: &'s Store,
    prefix: Vec<u8>,
    entries: Entries<'s>,
}

impl<'s> Cursor<'s> {
    fn new(store: &'s Store, start: &[u8], prefix: Vec<u8>) -> Cursor<'s> {
        let entries = store.backend().scan(Keyspace::Versions, start, &prefix);
        Cursor { store, prefix, entries }
    }

    fn seek(&mut self, start: &[u8]) {
        self.entries = self.store.backend().scan(Keyspace::Versions, start, &self.prefix);
    }

    fn next(&mut self, bucket_prefix_len: usize) -> Result<Option<(String, VersionRecord)>, StoreError> {
        let Some(entry) = self.entries.next() else { return Ok(None) };
        let (raw_key, raw) = entry.map_err(|e| StoreError::backend("listing versions", e))?;
        let (key, _) = keys::decode_version_key(bucket_prefix_len, &raw_key)
            .ok_or_else(|| StoreError::DataLoss { what: "stored version key is malformed".to_owned() })?;
        Ok(Some((key, VersionRecord::decode(&raw)?)))
    }
}

impl Store {
    /// Lists versions and delete markers of `bucket`.
    pub fn list_versions(&self, bucket: &BucketName, params: &ListVersionsParams) -> Result<VersionsPage, StoreError> {
        self.bucket(bucket)?;
        let max = page_size(params.max_keys);
        let delimiter = params.delimiter.as_deref();
        let bucket_prefix_len = keys::bucket_prefix(bucket).len();
        let mut scan_prefix = keys::bucket_prefix(bucket);
        keys::push_escaped(&mut scan_prefix, &params.prefix);

        let mut resumed_in: Option<String> = None;
        let start = match (&params.key_marker, &params.version_id_marker) {
            (Some(marker), Some(version)) if !version.is_empty() => {
                let key = ObjectKey::new(marker).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
                let id = match VersionSelector::parse(version)
                    .map_err(|e| StoreError::InvalidArgument(format!("version id marker: {e}")))?
                {
                    VersionSelector::Id(id) => id,
                    VersionSelector::Null => versions::null_id(self.backend(), bucket, &key)?.ok_or_else(|| {
                        StoreError::InvalidArgument("version id marker `null` names no version".to_owned())
                    })?,
                };
                resumed_in = Some(marker.clone());
                let mut start = keys::version_key(bucket, marker, id);
                start.push(0);
                start
            }
            (Some(marker), _) => start_after_key(bucket, marker, &params.prefix, delimiter),
            (None, Some(version)) if !version.is_empty() => {
                return Err(StoreError::InvalidArgument("version id marker needs a key marker".to_owned()));
            }
            (None, _) => scan_prefix.clone(),
        };

        let mut page = VersionsPage::default();
        let mut count = 0;
        let mut previous_key: Option<String> = resumed_in;
        let mut cursor = Cursor::new(self, &start, scan_prefix);
        while let Some((key, record)) = cursor.next(bucket_prefix_len)? {
            if count == max {
                page.is_truncated = true;
                break;
            }
            if let Some(cp) = common_prefix(&key, &params.prefix, delimiter) {
                let cp = cp.to_owned();
                cursor.seek(&keys::after_prefix(bucket, &cp));
                page.next_key_marker = Some(cp.clone());
                page.next_version_id_marker = None;
                page.common_prefixes.push(cp);
                count += 1;
                continue;
            }
            let is_latest = previous_key.as_deref() != Some(key.as_str());
            let lock = versions::lock(self.backend(), bucket, &key, record.id)?;
            let info = versions::version_info(&key, &record, is_latest, lock);
            page.next_key_marker = Some(key.clone());
            // The stored id, even for the `null` version: `null` is found
            // through the key's null pointer, which a delete between pages
            // removes, while an id is a position whether or not it still exists.
            page.next_version_id_marker = Some(crate::external_id(record.id, false));
            page.entries.push(info);
            previous_key = Some(key);
            count += 1;
        }
        if !page.is_truncated {
            page.next_key_marker = None;
            page.next_version_id_marker = None;
        }
        Ok(page)
    }

    /// Lists the latest version of each key whose latest is not a delete
    /// marker. One call examines at most `StoreOptions::list_scan_keys` keys,
    /// so a bucket of delete markers cannot make one page read the whole
    /// bucket: a page may end early, with fewer entries than asked (even none),
    /// `is_truncated` set and `next_start_after` naming how far it looked, as
    /// S3's ListObjectsV2 may; paging on lists every visible entry once.
    pub fn list_objects(&self, bucket: &BucketName, params: &ListObjectsParams) -> Result<ObjectsPage, StoreError> {
        self.bucket(bucket)?;
        let max = page_size(params.max_keys);
        let scan_limit = self.options().list_scan_keys.max(1);
        let delimiter = params.delimiter.as_deref();
        let bucket_prefix_len = keys::bucket_prefix(bucket).len();
        let mut scan_prefix = keys::bucket_prefix(bucket);
        keys::push_escaped(&mut scan_prefix, &params.prefix);
        let start = match &params.start_after {
            Some(marker) => resume_objects_after(bucket, marker, &params.prefix, delimiter),
            None => scan_prefix.clone(),
        };
        let mut page = ObjectsPage::default();
        let mut count = 0;
        let mut examined = 0;
        // Where the next page goes on: the last entry listed or key passed
        // over, never a key that is its own common prefix (resuming after
        // that would skip the whole prefix, which may still be undecided).
        let mut resume: Option<String> = None;
        let mut resume_is_last = true;
        let mut cursor = Cursor::new(self, &start, scan_prefix);
        while let Some((key, record)) = cursor.next(bucket_prefix_len)? {
            let visible = !record.is_delete_marker;
            if (visible && count == max) || (examined >= scan_limit && resume_is_last && resume.is_some()) {
                page.is_truncated = true;
                break;
            }
            examined += 1;
            match common_prefix(&key, &params.prefix, delimiter).map(str::to_owned) {
                // A prefix is listed once some key under it is visible.
                Some(cp) if visible => {
                    cursor.seek(&keys::after_prefix(bucket, &cp));
                    page.common_prefixes.push(cp.clone());
                    count += 1;
                    resume = Some(cp);
                    resume_is_last = true;
                }
                // The first entry of a key is its latest; skip the rest of its versions.
                Some(cp) => {
                    cursor.seek(&keys::after_object(bucket, &key));
                    resume_is_last = cp != key;
                    if resume_is_last {
                        resume = Some(key);
                    }
                }
                None => {
                    cursor.seek(&keys::after_object(bucket, &key));
                    if visible {
                        let lock = versions::lock(self.backend(), bucket, &key, record.id)?;
                        page.objects.push(versions::version_info(&key, &record, true, lock));
                        count += 1;
                    }
                    resume = Some(key);
                    resume_is_last = true;
                }
            }
        }
        if page.is_truncated {
            page.next_start_after = resume;
        }
        Ok(page)
    }
}

/// Where ListObjects resumes after `marker`: past the whole prefix when the
/// marker is a common prefix itself (a page listed it), else past the
/// marker key's versions, still within its common prefix if it lies in one
/// (a page ended while that prefix was undecided).
fn resume_objects_after(bucket: &BucketName, marker: &str, prefix: &str, delimiter: Option<&str>) -> Vec<u8> {
    match common_prefix(marker, prefix, delimiter).filter(|cp| marker.starts_with(prefix) && *cp == marker) {
        Some(cp) => keys::after_prefix(bucket, cp),
        None => keys::after_object(bucket, marker),
    }
}
