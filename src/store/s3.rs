//! The S3 backend (AWS S3 or an S3-compatible store) behind `ObjectStore`:
//! conditional creates, multipart uploads, ranged reads, server-side encryption.
//!
//! Only this file and `check` know S3. Write-once rests on `If-None-Match: *`,
//! which not every S3-compatible store honours: `check` finds out before anything
//! is stored. Every upload carries its SHA-256, computed before it is sent, as a
//! plain header: no streaming (`aws-chunked`) bodies or checksum trailers, which
//! some stores refuse.

use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream as S3Body, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
    ServerSideEncryption,
};
use base64::Engine;
use bytes::Bytes;
use sha2::Digest;
use time::OffsetDateTime;
use tokio_util::io::ReaderStream;

use super::{ByteStream, ObjectKey, ObjectMeta, ObjectStore, StoreAnswer, StoreError};

/// Server-side encryption asked of the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3 (AES256, keys managed by the store).
    S3,
    /// SSE-KMS with this key id (or the bucket's default key when `None`).
    Kms(Option<String>),
}

/// Object Lock retention written on evidence objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Users with a special permission can still remove or shorten it.
    Governance,
    /// Nobody can remove or shorten it until it expires.
    Compliance,
}

impl LockMode {
    /// The name S3 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// How to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (`""` or ending in `/`).
    pub prefix: String,
    /// Region.
    pub region: String,
    /// Endpoint of an S3-compatible store; `None` for AWS.
    pub endpoint: Option<String>,
    /// Path-style addressing (most S3-compatible stores need it).
    pub path_style: bool,
    /// Server-side encryption.
    pub sse: Option<Sse>,
    /// Object Lock mode for retained objects, when the bucket has Object Lock.
    pub lock_mode: LockMode,
    /// Files above this size are uploaded in parts.
    pub multipart_threshold: u64,
    /// Size of each part.
    pub part_size: u64,
    /// Static access key and secret; `None` uses the standard AWS chain.
    pub credentials: Option<(String, String)>,
}

/// One version (or delete marker) of an object, as ListObjectVersions names it.
struct StoredVersion {
    /// The full key in the bucket.
    key: String,
    version_id: Option<String>,
    delete_marker: bool,
}

/// Objects in an S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
}

fn local(key: &str, source: std::io::Error) -> StoreError {
    StoreError::Io {
        key: key.to_owned(),
        source,
    }
}

/// A failed SDK call as a `StoreError` that carries the store's own answer.
fn remote<E>(key: &str, op: &'static str, e: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    StoreError::Remote {
        key: key.to_owned(),
        op,
        answer: answer_of(e),
    }
}

/// What the store answered to a failed SDK call: status, code and message, or
/// why there was no answer. The message falls back to the start of the body.
pub fn answer_of<E>(e: &SdkError<E, HttpResponse>) -> StoreAnswer
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(s) => {
            let inner = s.err();
            let message = inner.message().map(str::to_owned).or_else(|| {
                s.raw()
                    .body()
                    .bytes()
                    .filter(|b| !b.is_empty())
                    .map(body_excerpt)
            });
            StoreAnswer {
                status: Some(s.raw().status().as_u16()),
                code: inner.code().map(str::to_owned),
                message,
                no_answer: None,
            }
        }
        SdkError::ResponseError(r) => StoreAnswer {
            status: Some(r.raw().status().as_u16()),
            code: None,
            message: Some(format!("an answer callproof could not read: {}", causes(e))),
            no_answer: None,
        },
        SdkError::TimeoutError(_) => StoreAnswer {
            no_answer: Some(format!("timed out: {}", causes(e))),
            ..StoreAnswer::default()
        },
        _ => StoreAnswer {
            no_answer: Some(causes(e)),
            ..StoreAnswer::default()
        },
    }
}

/// An error and every cause under it, in one line.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// The start of an error body that had no code, as printable text.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A body that broke off while it was read.
fn reading(key: &str, op: &'static str, e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Remote {
        key: key.to_owned(),
        op,
        answer: StoreAnswer {
            no_answer: Some(format!("the body broke off: {}", causes(&e))),
            ..StoreAnswer::default()
        },
    }
}

fn status_of<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    match e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    }
}

/// SHA-256 of `len` bytes of a file from `offset`, base64 as S3 headers carry
/// it; read in 64 KiB pieces off the async runtime.
async fn file_sha256(path: &Path, offset: u64, len: u64) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{} ended while it was being hashed", path.display()),
                ));
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(b64(&hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

fn b64(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

impl S3Store {
    /// Builds a client from the standard AWS chain (environment, profile,
    /// instance role) and the settings; makes no request.
    pub async fn connect(settings: S3Settings) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .region(aws_config::Region::new(settings.region.clone()));
        if let Some((key, secret)) = &settings.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                key.clone(),
                secret.clone(),
                None,
                None,
                "callproof settings",
            ));
        }
        let shared = loader.load().await;
        // Checksums only where S3 requires them: every upload sets its own
        // SHA-256 header, so the SDK never turns a body into a streamed
        // `aws-chunked` one with a checksum trailer (Garage refuses those).
        // Checksums the store sends back on reads are still verified.
        let mut conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenSupported);
        if let Some(endpoint) = &settings.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        S3Store {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
            settings,
        }
    }

    /// The SDK client, for the store check.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The settings.
    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    /// The full key in the bucket.
    pub fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.settings.prefix)
    }

    /// The encryption headers asked of every write.
    fn sse(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.settings.sse {
            None => (None, None),
            Some(Sse::S3) => (Some(ServerSideEncryption::Aes256), None),
            Some(Sse::Kms(id)) => (Some(ServerSideEncryption::AwsKms), id.clone()),
        }
    }

    /// The Object Lock headers of a retained write.
    fn lock(
        &self,
        retain_until: Option<OffsetDateTime>,
    ) -> (
        Option<ObjectLockMode>,
        Option<aws_sdk_s3::primitives::DateTime>,
    ) {
        let mode = match self.settings.lock_mode {
            LockMode::Governance => ObjectLockMode::Governance,
            LockMode::Compliance => ObjectLockMode::Compliance,
        };
        match retain_until {
            Some(until) => (
                Some(mode),
                Some(aws_sdk_s3::primitives::DateTime::from_secs(
                    until.unix_timestamp(),
                )),
            ),
            None => (None, None),
        }
    }

    /// Every version and delete marker stored under `prefix` (full keys),
    /// page by page; `None` when the store does not list versions (501).
    async fn versions_under(&self, prefix: &str) -> Result<Option<Vec<StoredVersion>>, StoreError> {
        let full = self.full_key(prefix);
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let listed = match self
                .client
                .list_object_versions()
                .bucket(&self.settings.bucket)
                .prefix(&full)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
            {
                Ok(l) => l,
                Err(e) if status_of(&e) == Some(501) => return Ok(None),
                Err(e) => return Err(remote(prefix, "ListObjectVersions", &e)),
            };
            for v in listed.versions() {
                if let Some(k) = v.key() {
                    out.push(StoredVersion {
                        key: k.to_owned(),
                        version_id: v.version_id().map(str::to_owned),
                        delete_marker: false,
                    });
                }
            }
            for m in listed.delete_markers() {
                if let Some(k) = m.key() {
                    out.push(StoredVersion {
                        key: k.to_owned(),
                        version_id: m.version_id().map(str::to_owned),
                        delete_marker: true,
                    });
                }
            }
            if listed.is_truncated() != Some(true) {
                break;
            }
            key_marker = listed.next_key_marker().map(str::to_owned);
            version_marker = listed.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() && version_marker.is_none() {
                break;
            }
        }
        Ok(Some(out))
    }

    /// A copy whose multipart threshold is `threshold`, for the store check to
    /// upload in parts (of the configured size) a file smaller than real ones.
    pub fn with_multipart_threshold(&self, threshold: u64) -> S3Store {
        let mut copy = self.clone();
        copy.settings.multipart_threshold = threshold;
        copy
    }

    /// One conditional `PutObject` of `body`, whose SHA-256 (base64) is
    /// `sha256`; 412 means the key was taken.
    async fn put_body(
        &self,
        key: &ObjectKey,
        body: S3Body,
        sha256: String,
        retain_until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let (sse, kms_key) = self.sse();
        let (lock_mode, lock_until) = self.lock(retain_until);
        let put = self
            .client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key.as_str()))
            .if_none_match("*")
            // Object Lock needs the algorithm named; the value travels as a header.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(sha256)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_object_lock_mode(lock_mode)
            .set_object_lock_retain_until_date(lock_until)
            .body(body);
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(412) => Err(StoreError::AlreadyExists(key.clone())),
            Err(e) => Err(remote(key.as_str(), "PutObject", &e)),
        }
    }

    /// Reads a whole object, or one version of it; `None` on 404.
    async fn get_object(
        &self,
        key: &ObjectKey,
        version_id: Option<String>,
    ) -> Result<Option<Bytes>, StoreError> {
        let op = if version_id.is_some() {
            "GetObject (version)"
        } else {
            "GetObject"
        };
        match self
            .client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key.as_str()))
            .set_version_id(version_id)
            .send()
            .await
        {
            Ok(out) => {
                let data = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| reading(key.as_str(), op, e))?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(remote(key.as_str(), op, &e)),
        }
    }

    async fn put_multipart(
        &self,
        key: &ObjectKey,
        path: &Path,
        size: u64,
        retain_until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let k = key.as_str();
        let full = self.full_key(k);
        // An object already there is refused before the upload, and again
        // (atomically) when the upload completes.
        if self.head(key).await?.is_some() {
            return Err(StoreError::AlreadyExists(key.clone()));
        }
        let (sse, kms_key) = self.sse();
        let (lock_mode, lock_until) = self.lock(retain_until);
        let create = self
            .client
            .create_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_object_lock_mode(lock_mode)
            .set_object_lock_retain_until_date(lock_until);
        let upload = create
            .send()
            .await
            .map_err(|e| remote(k, "CreateMultipartUpload", &e))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| StoreError::Remote {
                key: k.to_owned(),
                op: "CreateMultipartUpload",
                answer: StoreAnswer {
                    status: Some(200),
                    message: Some("the answer held no upload id".into()),
                    ..StoreAnswer::default()
                },
            })?
            .to_owned();
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0u64;
            let mut number = 1i32;
            while offset < size {
                let len = self.settings.part_size.min(size - offset);
                let sha256 = file_sha256(path, offset, len)
                    .await
                    .map_err(|e| local(k, e))?;
                let body = S3Body::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| local(k, std::io::Error::other(e)))?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.settings.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .checksum_sha256(&sha256)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| remote(k, "UploadPart", &e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .checksum_sha256(part.checksum_sha256().unwrap_or(&sha256))
                        .build(),
                );
                offset += len;
                number += 1;
            }
            match self
                .client
                .complete_multipart_upload()
                .bucket(&self.settings.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .if_none_match("*")
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if status_of(&e) == Some(412) => Err(StoreError::AlreadyExists(key.clone())),
                Err(e) => Err(remote(k, "CompleteMultipartUpload", &e)),
            }
        }
        .await;
        if result.is_err() {
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.settings.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(error = %remote(k, "AbortMultipartUpload", &e), "an unfinished upload stays in the bucket until a lifecycle rule removes it");
            }
        }
        result
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn create(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StoreError> {
        let sha256 = b64(&sha2::Sha256::digest(&bytes));
        self.put_body(key, S3Body::from(bytes), sha256, None).await
    }

    async fn create_retained(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        retain_until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let sha256 = b64(&sha2::Sha256::digest(&bytes));
        self.put_body(key, S3Body::from(bytes), sha256, Some(retain_until))
            .await
    }

    async fn create_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError> {
        self.create_file_retained(key, path, None).await
    }

    async fn create_file_retained(
        &self,
        key: &ObjectKey,
        path: &Path,
        retain_until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let k = key.as_str();
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| local(k, e))?
            .len();
        if size > self.settings.multipart_threshold {
            return self.put_multipart(key, path, size, retain_until).await;
        }
        // A taken key is refused before the upload too: some servers answer
        // the conditional PUT's 412 and close the connection before reading
        // a large body, which the client sees as a broken pipe, not a 412.
        if self.head(key).await?.is_some() {
            return Err(StoreError::AlreadyExists(key.clone()));
        }
        // Hashed first, so the checksum travels as a header and the file as a
        // plain body of known length.
        let sha256 = file_sha256(path, 0, size).await.map_err(|e| local(k, e))?;
        let body = S3Body::read_from()
            .path(path)
            .length(Length::Exact(size))
            .build()
            .await
            .map_err(|e| local(k, std::io::Error::other(e)))?;
        self.put_body(key, body, sha256, retain_until).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        self.get_object(key, None).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key.as_str()))
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                size: out.content_length().unwrap_or(0).max(0) as u64,
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(remote(key.as_str(), "HeadObject", &e)),
        }
    }

    async fn read_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, StoreError> {
        let Some(meta) = self.head(key).await? else {
            return Ok(None);
        };
        let end = range.end.min(meta.size);
        if range.start >= end {
            return Ok(Some(Box::pin(futures_util::stream::empty())));
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key.as_str()))
            .range(format!("bytes={}-{}", range.start, end - 1))
            .send()
            .await;
        match out {
            Ok(out) => {
                let reader = out.body.into_async_read();
                Ok(Some(Box::pin(ReaderStream::with_capacity(
                    reader,
                    64 * 1024,
                ))))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(remote(key.as_str(), "GetObject (range)", &e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        let full = self.full_key(prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.settings.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| remote(prefix, "ListObjectsV2", &e))?;
            for obj in page.contents() {
                if let Some(k) = obj
                    .key()
                    .and_then(|k| k.strip_prefix(&self.settings.prefix))
                {
                    if let Ok(key) = ObjectKey::new(k) {
                        out.push(key);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key.as_str()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(remote(key.as_str(), "DeleteObject", &e)),
        }
    }

    async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        let Some(found) = self.versions_under(prefix).await? else {
            return self.list(prefix).await;
        };
        let mut out: Vec<ObjectKey> = found
            .iter()
            .filter_map(|v| v.key.strip_prefix(&self.settings.prefix))
            .filter_map(|k| ObjectKey::new(k).ok())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn get_newest_version(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        if let Some(b) = self.get(key).await? {
            return Ok(Some(b));
        }
        let full = self.full_key(key.as_str());
        let Some(found) = self.versions_under(key.as_str()).await? else {
            return Ok(None);
        };
        // S3 lists a key's versions newest first; delete markers are not read.
        let Some(newest) = found
            .into_iter()
            .find(|v| v.key == full && !v.delete_marker)
        else {
            return Ok(None);
        };
        self.get_object(key, newest.version_id).await
    }

    async fn purge(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let full = self.full_key(key.as_str());
        let Some(found) = self.versions_under(key.as_str()).await? else {
            // A store that keeps no versions: a plain delete removes it.
            return self.delete(key).await;
        };
        let versions = found
            .into_iter()
            .filter(|v| v.key == full)
            .map(|v| v.version_id);
        for version in versions {
            match self
                .client
                .delete_object()
                .bucket(&self.settings.bucket)
                .key(&full)
                .set_version_id(version)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(remote(key.as_str(), "DeleteObject (version)", &e)),
            }
        }
        Ok(())
    }

    async fn set_legal_hold(&self, key: &ObjectKey, on: bool) -> Result<(), StoreError> {
        use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus};
        let status = if on {
            ObjectLockLegalHoldStatus::On
        } else {
            ObjectLockLegalHoldStatus::Off
        };
        self.client
            .put_object_legal_hold()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key.as_str()))
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| remote(key.as_str(), "PutObjectLegalHold", &e))
    }

    fn describe(&self) -> String {
        format!(
            "S3 bucket {} prefix {:?} at {}",
            self.settings.bucket,
            self.settings.prefix,
            self.settings.endpoint.as_deref().unwrap_or("AWS")
        )
    }
}
