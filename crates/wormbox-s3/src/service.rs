//! The operations this endpoint serves (`impl S3 for Wormbox`), each routed
//! to its subject's file, and the conversions they share. Every operation
//! not named here is s3s's default: `NotImplemented`.
//!
//! Invariant: each operation calls exactly the `App` method the same gRPC
//! call does, with the caller `auth.rs` found, so both front doors judge and
//! ledger it the same way; conversions refuse what does not parse with
//! S3's code for it, before the application layer is called.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use wormbox_app::{App, AppError, MfaCode};
use wormbox_model::{BucketName, ObjectKey, Timestamp as WormTime, VersionSelector};

use crate::S3Options;
use crate::error::app_error;
use crate::{buckets, copy, listing, locks, multipart, objects};

/// The S3 operations over the application layer.
pub(crate) struct Wormbox {
    pub(crate) app: Arc<App>,
    pub(crate) options: S3Options,
}

impl Wormbox {
    pub(crate) fn new(app: Arc<App>, options: S3Options) -> Wormbox {
        Wormbox { app, options }
    }
}

/// A bucket name from a request (s3s checked S3's naming rules already).
pub(crate) fn bucket_name(name: &str) -> S3Result<BucketName> {
    BucketName::new(name).map_err(|e| s3_error!(InvalidBucketName, "{e}"))
}

/// An object key from a request.
pub(crate) fn object_key(key: &str) -> S3Result<ObjectKey> {
    ObjectKey::new(key).map_err(|e| match key.len() {
        n if n > 1024 => s3_error!(KeyTooLongError, "{e}"),
        _ => s3_error!(InvalidArgument, "{e}"),
    })
}

/// A `versionId` parameter: absent or empty is the latest.
pub(crate) fn version(id: Option<&str>) -> S3Result<Option<VersionSelector>> {
    match id {
        None | Some("") => Ok(None),
        Some(id) => {
            VersionSelector::parse(id).map(Some).map_err(|_| s3_error!(InvalidArgument, "Invalid version id specified"))
        }
    }
}

/// An `x-amz-mfa` header (`SERIAL CODE`), passed on as the client wrote it:
/// the MFA authority parses it strictly.
pub(crate) fn mfa(header: Option<&String>) -> Option<MfaCode> {
    header.map(|text| MfaCode::new(text.trim()))
}

/// A compliance-clock time as S3 shows it.
pub(crate) fn timestamp(at: WormTime) -> Timestamp {
    let micros = u64::try_from(at.as_micros()).unwrap_or(0);
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros))
}

/// An S3 time as the archive keeps it (microseconds since the epoch).
pub(crate) fn from_timestamp(at: &Timestamp) -> S3Result<WormTime> {
    let offset = time::OffsetDateTime::from(at.clone());
    let micros = offset.unix_timestamp_nanos() / 1000;
    i64::try_from(micros).map(WormTime).map_err(|_| s3_error!(InvalidArgument, "The date is out of range."))
}

/// Runs `work` (a scan) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> S3Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(app_error),
        Err(err) => Err(s3_error!(InternalError, "a blocking task failed: {err}")),
    }
}

#[async_trait::async_trait]
impl S3 for Wormbox {
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        buckets::list_buckets(self, req).await
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        buckets::create_bucket(self, req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        buckets::head_bucket(self, req).await
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        buckets::delete_bucket(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        buckets::get_bucket_location(self, req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        buckets::get_bucket_versioning(self, req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        buckets::put_bucket_versioning(self, req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        buckets::get_object_lock_configuration(self, req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        buckets::put_object_lock_configuration(self, req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        objects::put_object(self, req).await
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        objects::get_object(self, req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        objects::head_object(self, req).await
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        objects::delete_object(self, req).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        objects::delete_objects(self, req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        listing::list_objects(self, req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        listing::list_objects_v2(self, req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        listing::list_object_versions(self, req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        copy::copy_object(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        locks::get_object_retention(self, req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        locks::put_object_retention(self, req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        locks::get_object_legal_hold(self, req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        locks::put_object_legal_hold(self, req).await
    }
}
