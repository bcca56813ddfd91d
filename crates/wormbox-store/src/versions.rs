//! Finding a version: a selector resolved to its record, the `null` version's
//! pointer, and a version's lock record.
//!
//! Invariant: `Store`'s reads, the listing and the writer's rules resolve
//! versions here, through a `View`, so they agree on what a selector names: a
//! `null` version is named `null` (never by its internal id, except by
//! `record`, for followers of the ledger), and a malformed or dangling null
//! pointer is reported as data loss in the same words everywhere.

use wormbox_model::{BucketName, ObjectKey, VersionId, VersionSelector};

use crate::backend::Keyspace;
use crate::codec::{LockRecord, VersionRecord};
use crate::keys;
use crate::view::View;
use crate::{StoreError, VersionInfo, external_id};

/// The record stored under a version's internal id, `null` version or not.
pub(crate) fn record(
    view: &(impl View + ?Sized),
    bucket: &BucketName,
    key: &ObjectKey,
    id: VersionId,
) -> Result<Option<VersionRecord>, StoreError> {
    view.get(Keyspace::Versions, &keys::version_key(bucket, key.as_str(), id))?
        .map(|raw| VersionRecord::decode(&raw).map_err(StoreError::from))
        .transpose()
}

/// The internal id of the key's `null` version, if it has one.
pub(crate) fn null_id(
    view: &(impl View + ?Sized),
    bucket: &BucketName,
    key: &ObjectKey,
) -> Result<Option<VersionId>, StoreError> {
    let Some(raw) = view.get(Keyspace::Nulls, &keys::object_prefix(bucket, key.as_str()))? else {
        return Ok(None);
    };
    let bytes = <[u8; 16]>::try_from(raw.as_slice())
        .map_err(|_| StoreError::DataLoss { what: "null version pointer is malformed".to_owned() })?;
    Ok(Some(VersionId::from_u128(u128::from_be_bytes(bytes))))
}

/// The key's `null` version, if it has one.
pub(crate) fn null_version(
    view: &(impl View + ?Sized),
    bucket: &BucketName,
    key: &ObjectKey,
) -> Result<Option<VersionRecord>, StoreError> {
    let Some(id) = null_id(view, bucket, key)? else { return Ok(None) };
    let record = record(view, bucket, key, id)?
        .ok_or_else(|| StoreError::DataLoss { what: "null version pointer is dangling".to_owned() })?;
    Ok(Some(record))
}

/// The version `selector` names, or `NoSuchVersion` (an id that belongs to
/// the `null` version names nothing: that version is called `null`).
pub(crate) fn resolve(
    view: &(impl View + ?Sized),
    bucket: &BucketName,
    key: &ObjectKey,
    selector: &VersionSelector,
) -> Result<VersionRecord, StoreError> {
    let found = match selector {
        VersionSelector::Null => null_version(view, bucket, key)?,
        VersionSelector::Id(id) => record(view, bucket, key, *id)?.filter(|record| !record.is_null),
    };
    found.ok_or_else(|| StoreError::NoSuchVersion {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version: selector.to_string(),
    })
}

/// A version's retention and holds (none when nothing was ever set).
pub(crate) fn lock(
    view: &(impl View + ?Sized),
    bucket: &BucketName,
    key: &str,
    id: VersionId,
) -> Result<LockRecord, StoreError> {
    match view.get(Keyspace::Locks, &keys::version_key(bucket, key, id))? {
        Some(raw) => Ok(LockRecord::decode(&raw)?),
        None => Ok(LockRecord::default()),
    }
}

/// A version as callers see it, with its lock.
pub(crate) fn version_info(key: &str, record: &VersionRecord, is_latest: bool, lock: LockRecord) -> VersionInfo {
    VersionInfo {
        key: key.to_owned(),
        id: record.id,
        version_id: external_id(record.id, record.is_null),
        is_latest,
        is_delete_marker: record.is_delete_marker,
        size: record.size,
        sha256: record.sha256,
        content_type: record.content_type.clone(),
        user_metadata: record.user_metadata.clone(),
        created_at: record.created_at,
        creator: record.creator.clone(),
        retention: lock.retention,
        legal_holds: lock.holds,
        etag: record.etag.clone(),
    }
}
