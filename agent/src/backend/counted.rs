//! Counting the storage requests an operation makes (a prune reports them:
//! on S3 they are what it costs).

use super::delete::Deletion;
use super::{Backend, BackendError, DynBackend, Expect, PutMode, ReadProfile, Stat, Version};
use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo_format::{ObjectKind, ObjectName};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Requests made, by kind (as S3 bills them: PUT and LIST cost more than
/// GET and HEAD; DELETE is free).
#[derive(Debug, Default)]
pub struct Requests {
    /// PUTs.
    pub put: AtomicU64,
    /// GETs.
    pub get: AtomicU64,
    /// HEADs.
    pub head: AtomicU64,
    /// LISTs.
    pub list: AtomicU64,
    /// DELETEs.
    pub delete: AtomicU64,
}

impl Requests {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        [&self.put, &self.get, &self.head, &self.list, &self.delete]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// A backend that counts the requests made of another.
#[derive(Debug)]
pub struct Counted {
    inner: DynBackend,
    /// The counts.
    pub requests: Arc<Requests>,
}

impl Counted {
    /// Counts the requests of `inner` into `requests`.
    pub fn new(inner: DynBackend, requests: Arc<Requests>) -> Self {
        Self { inner, requests }
    }
}

#[async_trait]
impl Backend for Counted {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, name: &ObjectName, data: Bytes, mode: PutMode) -> Result<(), BackendError> {
        Requests::add(&self.requests.put);
        self.inner.put(name, data, mode).await
    }

    async fn put_file(
        &self,
        name: &ObjectName,
        path: &Path,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        Requests::add(&self.requests.put);
        self.inner.put_file(name, path, mode).await
    }

    fn spool_dir(&self, name: &ObjectName) -> Option<PathBuf> {
        self.inner.spool_dir(name)
    }

    fn read_profile(&self) -> ReadProfile {
        self.inner.read_profile()
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, BackendError> {
        Requests::add(&self.requests.get);
        self.inner.get(name).await
    }

    async fn get_range(
        &self,
        name: &ObjectName,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        Requests::add(&self.requests.get);
        self.inner.get_range(name, offset, len).await
    }

    async fn head(&self, name: &ObjectName) -> Result<u64, BackendError> {
        Requests::add(&self.requests.head);
        self.inner.head(name).await
    }

    async fn stat(&self, name: &ObjectName) -> Result<Stat, BackendError> {
        Requests::add(&self.requests.head);
        self.inner.stat(name).await
    }

    async fn get_versioned(&self, name: &ObjectName) -> Result<(Bytes, Version), BackendError> {
        Requests::add(&self.requests.get);
        self.inner.get_versioned(name).await
    }

    async fn put_versioned(
        &self,
        name: &ObjectName,
        data: Bytes,
        expect: Expect<'_>,
    ) -> Result<Version, BackendError> {
        Requests::add(&self.requests.put);
        self.inner.put_versioned(name, data, expect).await
    }

    async fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectName>, BackendError> {
        Requests::add(&self.requests.list);
        self.inner.list(kind).await
    }

    async fn list_sizes(&self, kind: ObjectKind) -> Result<Vec<(ObjectName, u64)>, BackendError> {
        Requests::add(&self.requests.list);
        self.inner.list_sizes(kind).await
    }

    async fn delete(&self, name: &ObjectName, gate: &Deletion) -> Result<(), BackendError> {
        Requests::add(&self.requests.delete);
        self.inner.delete(name, gate).await
    }

    async fn holds_anything(&self) -> Result<bool, BackendError> {
        Requests::add(&self.requests.list);
        self.inner.holds_anything().await
    }
}
