//! Fault injection for unit tests: a backend that fails some operations of
//! another, configured by a specification (compiled only under `cfg(test)`;
//! the binary has no hook for it, and end-to-end tests damage the network
//! instead, with a proxy):
//!
//! - `transient=P`: each operation fails with a transient error with
//!   probability P; for writes, half of those fail *after* the write took
//!   effect (a lost answer), which retries must handle.
//! - `permanent-after=N`: after N successful writes, every write fails with
//!   permission denied (a revoked credential mid-backup).
//! - `seed=S`: the random seed (default 1).

use super::delete::Deletion;
use super::{
    Backend, BackendError, DynBackend, ErrorKind, Expect, PutMode, ReadProfile, Stat, Version,
};
use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo_format::{ObjectKind, ObjectName};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A backend that injects failures into another.
#[derive(Debug)]
pub struct Faulty {
    inner: DynBackend,
    transient: f64,
    permanent_after: Option<u64>,
    writes: AtomicU64,
    rng: Mutex<rand::rngs::StdRng>,
}

/// Where an injected transient fault strikes.
enum Strike {
    None,
    Before,
    After,
}

impl Faulty {
    /// Parses a specification.
    pub fn parse(inner: DynBackend, spec: &str) -> Result<Self, String> {
        let (mut transient, mut permanent_after, mut seed) = (0.0, None, 1u64);
        let bad = |e: &dyn std::fmt::Display| format!("fault specification: {e}");
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("fault specification: {item:?} is not key=value"))?;
            match k {
                "transient" => transient = v.parse().map_err(|e| bad(&e))?,
                "permanent-after" => permanent_after = Some(v.parse().map_err(|e| bad(&e))?),
                "seed" => seed = v.parse().map_err(|e| bad(&e))?,
                _ => return Err(format!("fault specification: unknown key {k:?}")),
            }
        }
        Ok(Self {
            inner,
            transient,
            permanent_after,
            writes: AtomicU64::new(0),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        })
    }

    fn strike(&self, write: bool) -> Strike {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !rng.gen_bool(self.transient.clamp(0.0, 1.0)) {
            return Strike::None;
        }
        if write && rng.gen_bool(0.5) {
            Strike::After
        } else {
            Strike::Before
        }
    }

    fn fault(&self, kind: ErrorKind, op: &'static str, object: String) -> BackendError {
        BackendError {
            kind,
            op,
            object,
            location: self.inner.location(),
            detail: "injected fault".into(),
        }
    }

    /// Runs the write `put` (or not), with the faults the spec asks for.
    async fn write<T>(
        &self,
        name: &ObjectName,
        put: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        if let Some(n) = self.permanent_after {
            if self.writes.load(Ordering::SeqCst) >= n {
                return Err(self.fault(ErrorKind::PermissionDenied, "put", name.path()));
            }
        }
        let strike = self.strike(true);
        if matches!(strike, Strike::Before) {
            return Err(self.fault(ErrorKind::Transient, "put", name.path()));
        }
        let done = put.await?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        match strike {
            Strike::After => Err(self.fault(ErrorKind::Transient, "put", name.path())),
            _ => Ok(done),
        }
    }

    async fn read<T>(
        &self,
        op: &'static str,
        object: String,
        f: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        match self.strike(false) {
            Strike::None => f.await,
            _ => Err(self.fault(ErrorKind::Transient, op, object)),
        }
    }
}

#[async_trait]
impl Backend for Faulty {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, name: &ObjectName, data: Bytes, mode: PutMode) -> Result<(), BackendError> {
        self.write(name, self.inner.put(name, data, mode)).await
    }

    async fn put_file(
        &self,
        name: &ObjectName,
        path: &Path,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        self.write(name, self.inner.put_file(name, path, mode))
            .await
    }

    fn spool_dir(&self, name: &ObjectName) -> Option<PathBuf> {
        self.inner.spool_dir(name)
    }

    fn read_profile(&self) -> ReadProfile {
        self.inner.read_profile()
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, BackendError> {
        self.read("get", name.path(), self.inner.get(name)).await
    }

    async fn get_range(
        &self,
        name: &ObjectName,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        self.read("get", name.path(), self.inner.get_range(name, offset, len))
            .await
    }

    async fn head(&self, name: &ObjectName) -> Result<u64, BackendError> {
        self.read("head", name.path(), self.inner.head(name)).await
    }

    async fn stat(&self, name: &ObjectName) -> Result<Stat, BackendError> {
        self.read("head", name.path(), self.inner.stat(name)).await
    }

    async fn get_versioned(&self, name: &ObjectName) -> Result<(Bytes, Version), BackendError> {
        self.read("get", name.path(), self.inner.get_versioned(name))
            .await
    }

    async fn put_versioned(
        &self,
        name: &ObjectName,
        data: Bytes,
        expect: Expect<'_>,
    ) -> Result<Version, BackendError> {
        self.write(name, self.inner.put_versioned(name, data, expect))
            .await
    }

    async fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectName>, BackendError> {
        self.read("list", kind.prefix().to_owned(), self.inner.list(kind))
            .await
    }

    async fn list_sizes(&self, kind: ObjectKind) -> Result<Vec<(ObjectName, u64)>, BackendError> {
        self.read(
            "list",
            kind.prefix().to_owned(),
            self.inner.list_sizes(kind),
        )
        .await
    }

    async fn delete(&self, name: &ObjectName, gate: &Deletion) -> Result<(), BackendError> {
        self.read("delete", name.path(), self.inner.delete(name, gate))
            .await
    }

    async fn holds_anything(&self) -> Result<bool, BackendError> {
        self.read("list", String::new(), self.inner.holds_anything())
            .await
    }
}
