//! Listings: ListObjects (v1), ListObjectsV2 and ListObjectVersions, with
//! prefix, delimiter, paging and `encoding-type=url`.
//!
//! Invariant: a page is the store's page (bounded work per call, paging on
//! lists every visible entry exactly once: ARCHITECTURE.md), run on a
//! blocking thread; V2's continuation token is the store's resume key,
//! base64url-encoded, and is checked like any other start key.

use std::sync::Arc;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use wormbox_app::{ListObjectVersions, ListObjects};
use wormbox_store::{ListObjectsParams, ListVersionsParams, VersionInfo};

use crate::auth::caller;
use crate::convert::{Wormbox, blocking, bucket_name, timestamp};
use crate::objects::etag_of;

/// The most keys a page holds, as in S3.
const MAX_KEYS: i32 = 1000;

/// What `encoding-type=url` leaves as it is (S3 keeps `/` readable).
const URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// How names appear in a listing: as they are, or URL-encoded.
#[derive(Clone, Copy)]
struct Names(bool);

impl Names {
    fn of(encoding: Option<&EncodingType>) -> S3Result<Names> {
        match encoding.map(EncodingType::as_str) {
            None => Ok(Names(false)),
            Some(EncodingType::URL) => Ok(Names(true)),
            Some(other) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {other}")),
        }
    }

    fn show(self, name: &str) -> String {
        if self.0 { utf8_percent_encode(name, URL_KEEP).to_string() } else { name.to_owned() }
    }

    fn show_opt(self, name: Option<&str>) -> Option<String> {
        name.map(|n| self.show(n))
    }
}

fn max_keys(asked: Option<i32>) -> S3Result<usize> {
    match asked {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be 0 or more")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

fn nonempty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

fn owner_of(info: &VersionInfo) -> Owner {
    Owner { id: Some(info.creator.clone()), display_name: Some(info.creator.clone()) }
}

fn object_of(info: &VersionInfo, names: Names, fetch_owner: bool) -> Object {
    Object {
        key: Some(names.show(&info.key)),
        last_modified: Some(timestamp(info.created_at)),
        e_tag: Some(ETag::Strong(etag_of(info))),
        size: Some(info.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        owner: fetch_owner.then(|| owner_of(info)),
        ..Default::default()
    }
}

fn prefixes(found: Vec<String>, names: Names) -> Option<Vec<CommonPrefix>> {
    Some(found.into_iter().map(|p| CommonPrefix { prefix: Some(names.show(&p)) }).collect())
}

pub(crate) async fn list_objects(
    w: &Wormbox,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let names = Names::of(input.encoding_type.as_ref())?;
    let bucket = bucket_name(&input.bucket)?;
    let params = ListObjectsParams {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: nonempty(input.delimiter.clone()),
        start_after: nonempty(input.marker.clone()),
        max_keys: max_keys(input.max_keys)?,
    };
    let app = Arc::clone(&w.app);
    let list = ListObjects { bucket: bucket.clone(), params };
    let page = blocking(move || app.list_objects(&actor, &list)).await?;
    let output = ListObjectsOutput {
        name: Some(bucket.to_string()),
        prefix: Some(names.show(&input.prefix.unwrap_or_default())),
        delimiter: names.show_opt(input.delimiter.as_deref()),
        marker: Some(names.show(&input.marker.unwrap_or_default())),
        next_marker: if page.is_truncated { names.show_opt(page.next_start_after.as_deref()) } else { None },
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS)),
        is_truncated: Some(page.is_truncated),
        contents: Some(page.objects.iter().map(|o| object_of(o, names, true)).collect()),
        common_prefixes: prefixes(page.common_prefixes, names),
        encoding_type: input.encoding_type,
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// A V2 continuation token: the store's resume key, base64url.
fn token_of(key: &str) -> String {
    data_encoding::BASE64URL_NOPAD.encode(key.as_bytes())
}

fn key_of_token(token: &str) -> S3Result<String> {
    data_encoding::BASE64URL_NOPAD
        .decode(token.as_bytes())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

pub(crate) async fn list_objects_v2(
    w: &Wormbox,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let actor = caller(&req)?;
    let input = req.input;
    let names = Names::of(input.encoding_type.as_ref())?;
    let bucket = bucket_name(&input.bucket)?;
    // The token wins over start-after: it is where the last page ended.
    let start_after = match nonempty(input.continuation_token.clone()) {
        Some(token) => Some(key_of_token(&token)?),
        None => nonempty(input.start_after.clone()),
    };
    let params = ListObjectsParams {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: nonempty(input.delimiter.clone()),
        start_after,
        max_keys: max_keys(input.max_keys)?,
    };
    let app = Arc::clone(&w.app);
    let list = ListObjects { bucket: bucket.clone(), params };
    let page = blocking(move || app.list_objects(&actor, &list)).await?;
    let fetch_owner = input.fetch_owner.unwrap_or(false);
    let contents: Vec<Object> = page.objects.iter().map(|o| object_of(o, names, fetch_owner)).collect();
    let key_count = (contents.len() + page.common_prefixes.len()) as i32;
    let output = ListObjectsV2Output {
        name: Some(bucket.to_string()),
        prefix: Some(names.show(&input.prefix.unwrap_or_default())),
        delimiter: names.show_opt(input.delimiter.as_deref()),
        start_after: names.show_opt(input.start_after.as_deref()),
        continuation_token: input.continuation_token,
        next_continuation_token: if page.is_truncated { page.next_start_after.as_deref().map(token_of) } else { None },
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS)),
        key_count: Some(key_count),
        is_truncated: Some(page.is_truncated),
        contents: Some(contents),
        common_prefixes: prefixes(page.common_prefixes, names),
        encoding_type: input.encoding_type,
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub(crate) async fn list_object_versions(
    w: &Wormbox,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let names = Names::of(input.encoding_type.as_ref())?;
    let bucket = bucket_name(&input.bucket)?;
    let key_marker = nonempty(input.key_marker.clone());
    let version_id_marker = nonempty(input.version_id_marker.clone());
    if version_id_marker.is_some() && key_marker.is_none() {
        return Err(s3_error!(InvalidArgument, "A version-id marker cannot be specified without a key marker."));
    }
    let params = ListVersionsParams {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: nonempty(input.delimiter.clone()),
        key_marker,
        version_id_marker,
        max_keys: max_keys(input.max_keys)?,
    };
    let app = Arc::clone(&w.app);
    let list = ListObjectVersions { bucket: bucket.clone(), params };
    let page = blocking(move || app.list_versions(&actor, &list)).await?;
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for info in &page.entries {
        if info.is_delete_marker {
            markers.push(DeleteMarkerEntry {
                key: Some(names.show(&info.key)),
                version_id: Some(info.version_id.clone()),
                is_latest: Some(info.is_latest),
                last_modified: Some(timestamp(info.created_at)),
                owner: Some(owner_of(info)),
            });
        } else {
            versions.push(ObjectVersion {
                key: Some(names.show(&info.key)),
                version_id: Some(info.version_id.clone()),
                is_latest: Some(info.is_latest),
                last_modified: Some(timestamp(info.created_at)),
                e_tag: Some(ETag::Strong(etag_of(info))),
                size: Some(info.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                owner: Some(owner_of(info)),
                ..Default::default()
            });
        }
    }
    let output = ListObjectVersionsOutput {
        name: Some(bucket.to_string()),
        prefix: Some(names.show(&input.prefix.unwrap_or_default())),
        delimiter: names.show_opt(input.delimiter.as_deref()),
        key_marker: Some(names.show(&input.key_marker.unwrap_or_default())),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        next_key_marker: if page.is_truncated { names.show_opt(page.next_key_marker.as_deref()) } else { None },
        next_version_id_marker: if page.is_truncated { page.next_version_id_marker } else { None },
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS)),
        is_truncated: Some(page.is_truncated),
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: prefixes(page.common_prefixes, names),
        encoding_type: input.encoding_type,
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_token_round_trips_and_a_forged_one_is_refused() {
        let key = "records/2026/ä b+c";
        assert_eq!(key_of_token(&token_of(key)).unwrap(), key);
        assert!(key_of_token("not base64!").is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes() {
        assert_eq!(Names(true).show("a b/c+d"), "a%20b/c%2Bd");
        assert_eq!(Names(false).show("a b/c+d"), "a b/c+d");
    }
}
