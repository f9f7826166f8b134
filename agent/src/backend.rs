//! Where objects live. One async trait, keyed by [`ObjectName`], so every
//! backend (local directory, S3, memory for tests) has the same contract and
//! cross-cutting behaviour can wrap any of them.

use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo_format::{ObjectKind, ObjectName};
use delete::Deletion;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) mod counted;
pub mod delete;
/// Test-only fault injection: not compiled into the binary, so no
/// environment variable can make a release inject faults.
#[cfg(test)]
pub mod faulty;
pub(crate) mod local;
pub(crate) mod logged;
#[cfg(test)]
pub mod memory;
pub(crate) mod retry;
pub(crate) mod s3;
pub mod spool;

// The settings a front end gives; no front end makes a backend itself
// (it reaches a repository through `crate::ops::Place`).
pub use retry::DEFAULT_RETRIES;
pub use s3::{S3Options, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_READ_TIMEOUT};

#[cfg(test)]
mod conformance;

/// How a put treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Create-if-absent: fails with [`ErrorKind::AlreadyExists`] if the object exists.
    Create,
    /// Replace atomically (leases only).
    Overwrite,
}

/// Classification of a backend failure; the only thing retry logic looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// A create-only write found the object already there.
    AlreadyExists,
    /// A compare-and-swap found the object at another version than expected.
    Changed,
    /// Credentials or permissions refuse the operation.
    PermissionDenied,
    /// The server asks to slow down.
    RateLimited,
    /// A failure that may succeed when tried again (timeouts, resets, 5xx).
    Transient,
    /// Anything else: permanent.
    Other,
}

/// A backend operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {object} in {location}: {detail}")]
pub struct BackendError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The operation (`put`, `get`, …).
    pub op: &'static str,
    /// The object name or prefix.
    pub object: String,
    /// The repository location.
    pub location: String,
    /// What the backend said.
    pub detail: String,
}

impl BackendError {
    /// A failed file operation, classified by its I/O error kind.
    pub fn io(op: &'static str, object: String, location: String, e: &std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        Self {
            kind,
            op,
            object,
            location,
            detail: e.to_string(),
        }
    }

    /// A put's spool file could not be read.
    pub fn spool(object: String, location: String, path: &Path, e: &std::io::Error) -> Self {
        let detail = format!("reading its spool file {}: {e}", path.display());
        Self::io(
            "put",
            object,
            location,
            &std::io::Error::new(e.kind(), detail),
        )
    }

    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Transient)
    }
}

/// An object's version, as its backend tells one from another (S3: the
/// ETag; a local directory: a hash of the bytes). Opaque: only compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub(crate) String);

impl Version {
    /// The version of a backend that has none of its own: a hash of the
    /// bytes (sealed objects carry a fresh random salt, so two writes
    /// never have the same bytes).
    pub(crate) fn of_bytes(data: &[u8]) -> Self {
        Self(blake3::hash(data).to_hex().to_string())
    }
}

/// What a [`Backend::put_versioned`] expects to replace.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// Nothing: create-only.
    Absent,
    /// The object at this version: compare-and-swap.
    Version(&'a Version),
}

/// What a backend knows of an object besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Its length in bytes.
    pub size: u64,
    /// When it was last written, by the storage's clock (nanoseconds since
    /// the epoch; S3 gives whole seconds).
    pub modified_ns: i64,
}

/// How restores read from a backend. Reads are always aligned windows
/// (`repo::read`); this says how many bytes to keep in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadProfile {
    /// Neighbouring windows are merged into one read up to this size.
    pub max_read: u64,
    /// Batches of a stream restore read ahead of its writer.
    pub batches_ahead: usize,
}

impl ReadProfile {
    /// A local disk answers from the page cache at once: small reads, little
    /// memory (docs/benchmarks.md: as fast as larger ones).
    pub const LOCAL: Self = Self {
        max_read: 2 << 20,
        batches_ahead: 3,
    };
    /// An object store answers each read after a round trip: larger reads
    /// and more of them in flight (5 % faster even against S3 on loopback,
    /// where a round trip is short; docs/benchmarks.md).
    pub const REMOTE: Self = Self {
        max_read: 4 << 20,
        batches_ahead: 5,
    };
}

/// An object store holding one repository.
///
/// Contract for every implementation:
/// - `put` with [`PutMode::Create`] is atomic create-if-absent: of several
///   concurrent creators exactly one succeeds and the others get
///   [`ErrorKind::AlreadyExists`]; a reader never sees a partial object. When it
///   returns `Ok` the object is durable.
/// - `put` with [`PutMode::Overwrite`] replaces atomically (old or new, never a mix).
/// - `get` and `get_range` are idempotent and have no side effects; a missing
///   object is [`ErrorKind::NotFound`]. `get_range` past the end returns the
///   bytes that exist.
/// - `list` returns the names of one kind that parse as format names (stray
///   files are ignored); it may miss objects created while it runs.
/// - `put_versioned` with [`Expect::Version`] is an atomic compare-and-swap:
///   it replaces the object only if it is still at that version, else fails
///   with [`ErrorKind::Changed`] ([`ErrorKind::NotFound`] if it is gone); of
///   several writers that read one version exactly one succeeds. With
///   [`Expect::Absent`] it is a create-only `put`. It returns the version
///   it wrote, which `get_versioned` and a later compare-and-swap know.
/// - `delete` of a missing object is [`ErrorKind::NotFound`]. It takes a
///   [`Deletion`], which only [`delete`] can make: that module
///   is the one place objects are deleted from.
/// - `put_file` is `put` with the bytes in a local file (a pack spooled to
///   disk as it filled, so it never sits in memory whole).
/// - All methods may be called concurrently from many tasks.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A human-readable location for messages (`/srv/repo`, `s3:bucket/prefix`).
    fn location(&self) -> String;
    /// Stores an object.
    async fn put(&self, name: &ObjectName, data: Bytes, mode: PutMode) -> Result<(), BackendError>;
    /// Stores an object whose bytes are the whole file at `path`, with the
    /// contract of [`Backend::put`]. The file stays the caller's to remove,
    /// so a retry can send it again. `path` may be `/proc/self/fd/N`, an
    /// unnamed spool file: open it by that path, and follow it when linking.
    /// This default reads it into memory.
    async fn put_file(
        &self,
        name: &ObjectName,
        path: &Path,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        let data = read_spooled(path, name, &self.location()).await?;
        self.put(name, data, mode).await
    }
    /// The directory to spool `name` in before [`Backend::put_file`], when
    /// the backend can publish a file from there without copying it (a
    /// local repository links it into place). `None`: any directory will do.
    fn spool_dir(&self, _name: &ObjectName) -> Option<PathBuf> {
        None
    }
    /// How restores should read from this backend.
    fn read_profile(&self) -> ReadProfile {
        ReadProfile::LOCAL
    }
    /// Reads a whole object.
    async fn get(&self, name: &ObjectName) -> Result<Bytes, BackendError>;
    /// Reads `len` bytes at `offset`.
    async fn get_range(
        &self,
        name: &ObjectName,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError>;
    /// The size of an object.
    async fn head(&self, name: &ObjectName) -> Result<u64, BackendError> {
        Ok(self.stat(name).await?.size)
    }
    /// An object's size and when it was last written.
    async fn stat(&self, name: &ObjectName) -> Result<Stat, BackendError>;
    /// Reads a whole object and its version.
    async fn get_versioned(&self, name: &ObjectName) -> Result<(Bytes, Version), BackendError>;
    /// Writes an object if it is as `expect` says: create-only, or
    /// compare-and-swap; returns the version written.
    async fn put_versioned(
        &self,
        name: &ObjectName,
        data: Bytes,
        expect: Expect<'_>,
    ) -> Result<Version, BackendError>;
    /// All objects of a kind.
    async fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectName>, BackendError>;
    /// All objects of a kind with their sizes. This default asks each
    /// object's size after listing.
    async fn list_sizes(&self, kind: ObjectKind) -> Result<Vec<(ObjectName, u64)>, BackendError> {
        let mut out = Vec::new();
        for name in self.list(kind).await? {
            match self.head(&name).await {
                Ok(size) => out.push((name, size)),
                // Deleted since the listing.
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
    /// Removes an object.
    async fn delete(&self, name: &ObjectName, gate: &Deletion) -> Result<(), BackendError>;
    /// Whether anything at all is stored at the location: objects of a
    /// repository, or anything else (`init` refuses such a place). This
    /// default sees only names of the format.
    async fn holds_anything(&self) -> Result<bool, BackendError> {
        for kind in ObjectKind::ALL {
            if !self.list(kind).await?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A shared backend.
pub type DynBackend = Arc<dyn Backend>;

/// Reads a spooled object's file for a `put_file` that needs its bytes.
///
/// # Errors
/// If the file cannot be read.
pub async fn read_spooled(
    path: &Path,
    name: &ObjectName,
    location: &str,
) -> Result<Bytes, BackendError> {
    tokio::fs::read(path)
        .await
        .map(Bytes::from)
        .map_err(|e| BackendError::spool(name.path(), location.to_owned(), path, &e))
}

/// How to open a repository's backend.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// S3 settings (for `s3:` addresses).
    #[serde(default)]
    pub s3: S3Options,
    /// Retries per operation for retryable errors.
    #[serde(default = "retry::default_retries")]
    pub retries: u32,
    /// Log every request (after retries).
    #[serde(default)]
    pub log_requests: bool,
}

/// Opens the backend a repository address names: `s3:BUCKET/PREFIX`,
/// `s3://BUCKET/PREFIX`, or a local path (optionally `local:PATH`). Every
/// backend is wrapped in [`retry::Retry`].
///
/// # Errors
/// If the address is malformed.
pub(crate) async fn open(address: &str, opts: &Options) -> Result<DynBackend, BackendError> {
    let base: DynBackend = if let Some(rest) = address.strip_prefix("s3:") {
        let (bucket, prefix) = s3::parse_address(rest)?;
        Arc::new(s3::S3Backend::new(bucket, prefix, &opts.s3).await)
    } else {
        let path = address.strip_prefix("local:").unwrap_or(address);
        Arc::new(local::LocalBackend::new(path.into()))
    };
    let retried: DynBackend = Arc::new(retry::Retry::new(base, opts.retries));
    Ok(if opts.log_requests {
        Arc::new(logged::Logged::new(retried))
    } else {
        retried
    })
}
