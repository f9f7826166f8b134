//! A repository in an S3 bucket (AWS or any S3-compatible store).
//!
//! - Credentials come from the AWS SDK's default chain: environment, shared
//!   profile, web identity (IRSA on Kubernetes), container and instance
//!   metadata. They never appear in our messages.
//! - Create-only writes send `If-None-Match: *`; a store that answers 412 (or
//!   409 on a conditional conflict) has the object already.
//! - Objects above the multipart threshold go up in parts; any failure aborts
//!   the upload so no parts are left (a lifecycle rule for stray parts is still
//!   recommended: docs/operations.md).
//! - The SDK's own retries are off: [`super::retry::Retry`] retries by our
//!   classification, with backoff and jitter.

use super::delete::Deletion;
use super::{Backend, BackendError, ErrorKind, Expect, PutMode, ReadProfile, Stat, Version};
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use cairn_repo_format::{ObjectKind, ObjectName};
use std::path::Path;
use std::time::Duration;

/// How to reach the bucket.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// Endpoint URL of an S3-compatible store (default: AWS, or `AWS_ENDPOINT_URL_S3`).
    pub endpoint: Option<String>,
    /// Region (default: the SDK's chain, else us-east-1).
    pub region: Option<String>,
    /// Use virtual-hosted addressing even with a custom endpoint.
    pub virtual_hosted: bool,
    /// Objects at least this large are uploaded in parts.
    pub multipart_threshold: usize,
    /// Size of each part.
    pub part_size: usize,
    /// A response that sends nothing for this long is abandoned and the
    /// request tried again (0: the default, [`DEFAULT_READ_TIMEOUT`]).
    pub read_timeout: Duration,
}

/// The longest one attempt of one request may take: a part of 16 MiB
/// at 100 KiB/s.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(180);

/// Default read timeout: long enough for a store that is slow to start a
/// large ranged read, short enough that a stalled connection is retried.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Default multipart threshold: a full default pack goes up in parts.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 24 << 20;
/// Default part size.
pub const DEFAULT_PART_SIZE: usize = 16 << 20;

/// Read size for request bodies from spooled files.
const FILE_BUFFER: usize = 256 << 10;

/// The bytes of an upload.
#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    /// In memory.
    Memory(&'a Bytes),
    /// A spooled file, read again for every attempt and part.
    File(&'a Path),
}

/// A repository at `s3:BUCKET/PREFIX`.
#[derive(Debug, Clone)]
pub struct S3Backend {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    threshold: usize,
    part_size: usize,
    /// The endpoint, for messages (`AWS` when the SDK chooses it).
    endpoint: String,
    /// How long a response may send nothing.
    read_timeout: Duration,
}

/// Splits `BUCKET/PREFIX` (after `s3:` or `s3://`).
pub fn parse_address(rest: &str) -> Result<(String, String), BackendError> {
    let rest = rest.trim_start_matches("//");
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(BackendError {
            kind: ErrorKind::Other,
            op: "open",
            object: String::new(),
            location: format!("s3:{rest}"),
            detail: "an S3 repository address is s3:BUCKET/PREFIX (or s3://BUCKET/PREFIX); the bucket is missing".into(),
        });
    }
    let prefix = prefix.trim_matches('/');
    Ok((
        bucket.to_owned(),
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        },
    ))
}

impl S3Backend {
    /// Builds the client from the SDK's configuration chain and `opts`.
    pub async fn new(bucket: String, prefix: String, opts: &S3Options) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &opts.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let shared = loader.load().await;
        let env_endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .ok()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        let custom_endpoint = opts.endpoint.is_some() || env_endpoint.is_some();
        let endpoint = opts
            .endpoint
            .clone()
            .or(env_endpoint)
            .unwrap_or_else(|| "AWS S3".to_owned());
        let read_timeout = if opts.read_timeout.is_zero() {
            DEFAULT_READ_TIMEOUT
        } else {
            opts.read_timeout
        };
        let mut conf = aws_sdk_s3::config::Builder::from(&shared)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(read_timeout)
                    // A request whose body cannot be sent (a connection
                    // that stalls while we write) is given up too.
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .force_path_style(custom_endpoint && !opts.virtual_hosted);
        if shared.region().is_none() {
            conf = conf.region(aws_config::Region::new("us-east-1"));
        }
        if let Some(e) = &opts.endpoint {
            conf = conf.endpoint_url(e);
        }
        let threshold = if opts.multipart_threshold == 0 {
            DEFAULT_MULTIPART_THRESHOLD
        } else {
            opts.multipart_threshold
        };
        let part_size = if opts.part_size == 0 {
            DEFAULT_PART_SIZE
        } else {
            opts.part_size.max(5 << 20)
        };
        Self {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
            bucket,
            prefix,
            threshold,
            part_size,
            endpoint,
            read_timeout,
        }
    }

    /// A client with static credentials, for tests against the local server.
    #[cfg(test)]
    pub fn for_test(
        endpoint: &str,
        access: &str,
        secret: &str,
        bucket: &str,
        prefix: &str,
        threshold: usize,
        part_size: usize,
    ) -> Self {
        let creds = aws_sdk_s3::config::Credentials::new(access, secret, None, None, "cairn-test");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: bucket.into(),
            prefix: prefix.into(),
            threshold,
            part_size,
            endpoint: endpoint.into(),
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }

    /// GETs an object, or a byte range of it, and reads the whole body.
    /// An object (or a range of it) and its ETag.
    async fn fetch(
        &self,
        name: &ObjectName,
        range: Option<String>,
    ) -> Result<(Bytes, Option<String>), BackendError> {
        let key = self.key(name);
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .set_range(range)
            .send()
            .await
            .map_err(|e| self.err("get", key.clone(), e))?;
        // The SDK's read timeout covers only the wait for the first byte: a
        // connection that stalls in the middle of a body is given up here,
        // after as long without a byte, and the read tried again.
        let fail = |detail: String| BackendError {
            kind: ErrorKind::Transient,
            op: "get",
            object: key.clone(),
            location: self.location(),
            detail,
        };
        let etag = resp.e_tag.clone();
        let mut body = resp.body;
        let mut out = bytes::BytesMut::with_capacity(
            usize::try_from(resp.content_length.unwrap_or(0)).unwrap_or(0),
        );
        loop {
            match tokio::time::timeout(self.read_timeout, body.next()).await {
                Err(_) => {
                    return Err(fail(format!(
                        "no data for {} s in the middle of the body (a stalled connection to {})",
                        self.read_timeout.as_secs(),
                        self.endpoint
                    )))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(fail(format!("reading the body: {}", chain_text(&e))))
                }
                Ok(Some(Ok(chunk))) => out.extend_from_slice(&chunk),
            }
        }
        Ok((out.freeze(), etag))
    }

    /// Multipart uploads not completed or aborted under our prefix (tests).
    #[cfg(test)]
    pub async fn stray_uploads(&self) -> usize {
        match self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .send()
            .await
        {
            Ok(r) => r.uploads().len(),
            Err(e) => panic!("listing multipart uploads: {e:?}"),
        }
    }

    fn key(&self, name: &ObjectName) -> String {
        format!("{}{}", self.prefix, name.path())
    }

    fn err<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
        &self,
        op: &'static str,
        object: String,
        e: SdkError<E, HttpResponse>,
    ) -> BackendError {
        let (kind, hint) = classify(&e, &self.bucket, &self.endpoint);
        let what = match &e {
            SdkError::ServiceError(se) => format!(
                "{} (HTTP {}): {}",
                se.err().code().unwrap_or("error"),
                se.raw().status().as_u16(),
                se.err().message().unwrap_or("no message")
            ),
            // The causes, without the SDK's debug dump.
            other => chain_text(other),
        };
        BackendError {
            kind,
            op,
            object,
            location: self.location(),
            detail: format!("{what}{hint}"),
        }
    }

    /// Uploads `body` as `key`: in one request, or in parts from the
    /// threshold on. Every attempt reads its bytes afresh.
    async fn put_body(&self, key: &str, body: Body<'_>, mode: PutMode) -> Result<(), BackendError> {
        let len = match body {
            Body::Memory(data) => data.len() as u64,
            Body::File(path) => tokio::fs::metadata(path)
                .await
                .map_err(|e| self.spool_err(key, path, &e))?
                .len(),
        };
        if len >= self.threshold as u64 {
            return self.put_multipart(key, body, len, mode).await;
        }
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(self.read(key, body, 0, len).await?);
        if mode == PutMode::Create {
            req = req.if_none_match("*");
        }
        req.send()
            .await
            .map_err(|e| self.err("put", key.to_owned(), e))?;
        Ok(())
    }

    /// `len` bytes of `body` from `offset`, as a request body.
    async fn read(
        &self,
        key: &str,
        body: Body<'_>,
        offset: u64,
        len: u64,
    ) -> Result<ByteStream, BackendError> {
        match body {
            Body::Memory(data) => {
                let range = usize::try_from(offset).unwrap_or(usize::MAX)
                    ..usize::try_from(offset + len).unwrap_or(usize::MAX);
                Ok(ByteStream::from(data.slice(range)))
            }
            Body::File(path) => ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(len))
                .buffer_size(FILE_BUFFER)
                .build()
                .await
                .map_err(|e| self.spool_err(key, path, &std::io::Error::other(e))),
        }
    }

    fn spool_err(&self, key: &str, path: &Path, e: &std::io::Error) -> BackendError {
        BackendError::spool(key.to_owned(), self.location(), path, e)
    }

    async fn put_multipart(
        &self,
        key: &str,
        body: Body<'_>,
        len: u64,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.err("put", key.to_owned(), e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let result = self.upload_parts(key, &upload_id, body, len, mode).await;
        if result.is_err() {
            // Leave no parts behind; if the abort itself fails, the bucket's
            // lifecycle rule for incomplete uploads is the backstop.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: Body<'_>,
        len: u64,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        let mut parts = Vec::new();
        let part_size = self.part_size as u64;
        for (i, start) in (0..len).step_by(self.part_size).enumerate() {
            let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let part_body = self
                .read(key, body, start, part_size.min(len - start))
                .await?;
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(part_body)
                .send()
                .await
                .map_err(|e| self.err("put", key.to_owned(), e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .part_number(number)
                    .build(),
            );
        }
        let mut complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if mode == PutMode::Create {
            complete = complete.if_none_match("*");
        }
        complete
            .send()
            .await
            .map_err(|e| self.err("put", key.to_owned(), e))?;
        Ok(())
    }
}

/// Our classification of an SDK error, and a hint for a person.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    e: &SdkError<E, HttpResponse>,
    bucket: &str,
    endpoint: &str,
) -> (ErrorKind, String) {
    match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            let status = se.raw().status().as_u16();
            match (status, code) {
                (_, "NoSuchBucket") => (ErrorKind::Other, format!(" (bucket {bucket:?} does not exist: check the name, the region and the endpoint)")),
                (404, _) | (_, "NoSuchKey") | (_, "NotFound") => (ErrorKind::NotFound, String::new()),
                (412, _) | (_, "PreconditionFailed") => (ErrorKind::AlreadyExists, String::new()),
                (409, "ConditionalRequestConflict") => (ErrorKind::Transient, String::new()),
                (401 | 403, _) | (_, "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => (
                    ErrorKind::PermissionDenied,
                    format!(" (access to bucket {bucket:?} was refused: check the credentials — environment, profile, or the service account's role — and the bucket policy)"),
                ),
                (429 | 503, _) | (_, "SlowDown" | "Throttling" | "RequestLimitExceeded") => (ErrorKind::RateLimited, String::new()),
                (500..=599, _) | (_, "InternalError" | "RequestTimeout") => (ErrorKind::Transient, String::new()),
                _ => (ErrorKind::Other, String::new()),
            }
        }
        // The request was sent or its answer was being read when the
        // connection failed: try again.
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            (ErrorKind::Transient, String::new())
        }
        SdkError::DispatchFailure(d) => {
            let chain = error_chain(e);
            if d.is_user() {
                (
                    ErrorKind::Other,
                    format!(
                        " (the request to {endpoint} could not be made: check the endpoint URL)"
                    ),
                )
            } else if is_tls_failure(&chain) {
                (ErrorKind::Other, format!(" (the TLS handshake with {endpoint} failed: check its certificate and the CA the client trusts, AWS_CA_BUNDLE)"))
            } else {
                // Connections cut, reset, refused or timed out, a name not
                // resolved: anything that may pass on another try.
                (ErrorKind::Transient, connection_hint(&chain, endpoint))
            }
        }
        _ => (ErrorKind::Other, String::new()),
    }
}

/// An error and its causes, as one text.
fn chain_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// [`chain_text`] in lowercase, to look for words in.
fn error_chain(e: &dyn std::error::Error) -> String {
    chain_text(e).to_lowercase()
}

fn is_tls_failure(chain: &str) -> bool {
    [
        "certificate",
        "invalidcertificate",
        "unknownissuer",
        "handshake",
    ]
    .iter()
    .any(|w| chain.contains(w))
}

/// What a person should look at when the connection itself failed.
fn connection_hint(chain: &str, endpoint: &str) -> String {
    if chain.contains("connection refused") {
        format!(" (nothing accepts connections at {endpoint}: check the endpoint URL and that the store is up)")
    } else if chain.contains("dns") || chain.contains("lookup") || chain.contains("resolve") {
        format!(" (the host name of {endpoint} does not resolve: check the endpoint URL)")
    } else {
        format!(" (the connection to {endpoint} failed)")
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn location(&self) -> String {
        format!("s3:{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
    }

    async fn put(&self, name: &ObjectName, data: Bytes, mode: PutMode) -> Result<(), BackendError> {
        self.put_body(&self.key(name), Body::Memory(&data), mode)
            .await
    }

    async fn put_file(
        &self,
        name: &ObjectName,
        path: &Path,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        self.put_body(&self.key(name), Body::File(path), mode).await
    }

    fn read_profile(&self) -> ReadProfile {
        ReadProfile::REMOTE
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, BackendError> {
        Ok(self.fetch(name, None).await?.0)
    }

    async fn get_range(
        &self,
        name: &ObjectName,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        Ok(self
            .fetch(name, Some(format!("bytes={offset}-{}", offset + len - 1)))
            .await?
            .0)
    }

    async fn stat(&self, name: &ObjectName) -> Result<Stat, BackendError> {
        let key = self.key(name);
        let resp = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.err("head", key, e))?;
        let modified_ns = resp.last_modified().map_or(0, |t| {
            t.secs()
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.subsec_nanos()))
        });
        Ok(Stat {
            size: resp
                .content_length()
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0),
            modified_ns,
        })
    }

    async fn get_versioned(&self, name: &ObjectName) -> Result<(Bytes, Version), BackendError> {
        let (data, etag) = self.fetch(name, None).await?;
        let etag = etag.ok_or_else(|| BackendError {
            kind: ErrorKind::Other,
            op: "get",
            object: name.path(),
            location: self.location(),
            detail: format!(
                "{} gave no ETag, which compare-and-swap needs",
                self.endpoint
            ),
        })?;
        Ok((data, Version(etag)))
    }

    /// One request (these objects are small): `If-None-Match: *` or
    /// `If-Match: <ETag>`; a 412 means the object exists, or changed.
    async fn put_versioned(
        &self,
        name: &ObjectName,
        data: Bytes,
        expect: Expect<'_>,
    ) -> Result<Version, BackendError> {
        let key = self.key(name);
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(data));
        let req = match expect {
            Expect::Absent => req.if_none_match("*"),
            Expect::Version(v) => req.if_match(&v.0),
        };
        let resp = req.send().await.map_err(|e| {
            let mut e = self.err("put", key.clone(), e);
            if e.kind == ErrorKind::AlreadyExists && matches!(expect, Expect::Version(_)) {
                e.kind = ErrorKind::Changed;
            }
            e
        })?;
        resp.e_tag()
            .map(|t| Version(t.to_owned()))
            .ok_or_else(|| BackendError {
                kind: ErrorKind::Other,
                op: "put",
                object: key,
                location: self.location(),
                detail: format!(
                    "{} gave no ETag, which compare-and-swap needs",
                    self.endpoint
                ),
            })
    }

    async fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectName>, BackendError> {
        Ok(self
            .list_sizes(kind)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// One listing gives the sizes too.
    async fn list_sizes(&self, kind: ObjectKind) -> Result<Vec<(ObjectName, u64)>, BackendError> {
        let prefix = if kind.is_single() {
            format!("{}{}", self.prefix, kind.prefix())
        } else {
            format!("{}{}/", self.prefix, kind.prefix())
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err("list", prefix.clone(), e))?;
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                if let Some(name) = key.strip_prefix(&self.prefix).and_then(ObjectName::parse) {
                    if name.kind() == kind {
                        let size = obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                        out.push((name, size));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn holds_anything(&self) -> Result<bool, BackendError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.err("list", self.prefix.clone(), e))?;
        Ok(page.key_count().unwrap_or(0) > 0 || !page.contents().is_empty())
    }

    async fn delete(&self, name: &ObjectName, _: &Deletion) -> Result<(), BackendError> {
        // S3 deletes of missing objects succeed; the contract says NotFound.
        self.head(name).await?;
        let key = self.key(name);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.err("delete", key, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("bucket/some/prefix/").ok(),
            Some(("bucket".into(), "some/prefix/".into()))
        );
        assert_eq!(
            parse_address("//bucket").ok(),
            Some(("bucket".into(), String::new()))
        );
        assert!(parse_address("/x").is_err());
    }
}
