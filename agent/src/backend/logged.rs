//! `--log-requests`: every storage request on standard error, one line each
//! (`cairn: GET packs/… bytes=0-1048575 -> ok`), so an operator can see
//! what a command reads and writes (and what it would cost on S3).

use super::delete::Deletion;
use super::{Backend, BackendError, DynBackend, Expect, PutMode, ReadProfile, Stat, Version};
use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo_format::{ObjectKind, ObjectName};
use std::path::{Path, PathBuf};

/// A backend that logs the requests made of another.
#[derive(Debug)]
pub struct Logged {
    inner: DynBackend,
}

impl Logged {
    /// Logs the requests of `inner`.
    pub fn new(inner: DynBackend) -> Self {
        Self { inner }
    }
}

fn log<T>(what: std::fmt::Arguments<'_>, r: &Result<T, BackendError>) {
    match r {
        Ok(_) => tracing::info!(target: "cairn::requests", "{what} -> ok"),
        Err(e) => tracing::info!(target: "cairn::requests", "{what} -> {:?}", e.kind),
    }
}

#[async_trait]
impl Backend for Logged {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, name: &ObjectName, data: Bytes, mode: PutMode) -> Result<(), BackendError> {
        let len = data.len();
        let r = self.inner.put(name, data, mode).await;
        log(format_args!("PUT {name} ({len} bytes, {mode:?})"), &r);
        r
    }

    async fn put_file(
        &self,
        name: &ObjectName,
        path: &Path,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        let len = tokio::fs::metadata(path).await.map_or(0, |m| m.len());
        let r = self.inner.put_file(name, path, mode).await;
        log(format_args!("PUT {name} ({len} bytes, {mode:?})"), &r);
        r
    }

    fn spool_dir(&self, name: &ObjectName) -> Option<PathBuf> {
        self.inner.spool_dir(name)
    }

    fn read_profile(&self) -> ReadProfile {
        self.inner.read_profile()
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, BackendError> {
        let r = self.inner.get(name).await;
        log(format_args!("GET {name}"), &r);
        r
    }

    async fn get_range(
        &self,
        name: &ObjectName,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        let r = self.inner.get_range(name, offset, len).await;
        let end = (offset + len).saturating_sub(1);
        log(format_args!("GET {name} bytes={offset}-{end}"), &r);
        r
    }

    async fn head(&self, name: &ObjectName) -> Result<u64, BackendError> {
        let r = self.inner.head(name).await;
        log(format_args!("HEAD {name}"), &r);
        r
    }

    async fn stat(&self, name: &ObjectName) -> Result<Stat, BackendError> {
        let r = self.inner.stat(name).await;
        log(format_args!("HEAD {name}"), &r);
        r
    }

    async fn get_versioned(&self, name: &ObjectName) -> Result<(Bytes, Version), BackendError> {
        let r = self.inner.get_versioned(name).await;
        log(format_args!("GET {name}"), &r);
        r
    }

    async fn put_versioned(
        &self,
        name: &ObjectName,
        data: Bytes,
        expect: Expect<'_>,
    ) -> Result<Version, BackendError> {
        let len = data.len();
        let r = self.inner.put_versioned(name, data, expect).await;
        let cond = match expect {
            Expect::Absent => "create",
            Expect::Version(_) => "if-match",
        };
        log(format_args!("PUT {name} ({len} bytes, {cond})"), &r);
        r
    }

    async fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectName>, BackendError> {
        let r = self.inner.list(kind).await;
        log(format_args!("LIST {kind:?}"), &r);
        r
    }

    async fn list_sizes(&self, kind: ObjectKind) -> Result<Vec<(ObjectName, u64)>, BackendError> {
        let r = self.inner.list_sizes(kind).await;
        log(format_args!("LIST {kind:?}"), &r);
        r
    }

    async fn delete(&self, name: &ObjectName, gate: &Deletion) -> Result<(), BackendError> {
        let r = self.inner.delete(name, gate).await;
        log(format_args!("DELETE {name}"), &r);
        r
    }

    async fn holds_anything(&self) -> Result<bool, BackendError> {
        let r = self.inner.holds_anything().await;
        log(format_args!("LIST (anything?)"), &r);
        r
    }
}
