//! An in-memory backend for unit tests of code above the backend layer.

use super::delete::Deletion;
use super::{Backend, BackendError, ErrorKind, Expect, PutMode, Stat, Version};
use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo_format::{ObjectKind, ObjectName};
use std::collections::HashMap;
use std::sync::Mutex;

/// Objects in a map.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    objects: Mutex<HashMap<String, Bytes>>,
}

impl MemoryBackend {
    fn err(kind: ErrorKind, op: &'static str, name: &ObjectName) -> BackendError {
        BackendError {
            kind,
            op,
            object: name.path(),
            location: "memory".into(),
            detail: format!("{kind:?}"),
        }
    }
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bytes>> {
        // A panic while holding the lock leaves a consistent map: recover it.
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }
    async fn put(&self, name: &ObjectName, data: Bytes, mode: PutMode) -> Result<(), BackendError> {
        let mut m = self.map();
        if mode == PutMode::Create && m.contains_key(&name.path()) {
            return Err(Self::err(ErrorKind::AlreadyExists, "put", name));
        }
        m.insert(name.path(), data);
        Ok(())
    }
    async fn get(&self, name: &ObjectName) -> Result<Bytes, BackendError> {
        self.map()
            .get(&name.path())
            .cloned()
            .ok_or_else(|| Self::err(ErrorKind::NotFound, "get", name))
    }
    async fn get_range(
        &self,
        name: &ObjectName,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        let b = self.get(name).await?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
        let end = start
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            .min(b.len());
        Ok(b.slice(start..end))
    }
    async fn stat(&self, name: &ObjectName) -> Result<Stat, BackendError> {
        Ok(Stat {
            size: self.get(name).await?.len() as u64,
            modified_ns: crate::util::now_ns(),
        })
    }
    async fn get_versioned(&self, name: &ObjectName) -> Result<(Bytes, Version), BackendError> {
        let data = self.get(name).await?;
        let v = Version::of_bytes(&data);
        Ok((data, v))
    }
    async fn put_versioned(
        &self,
        name: &ObjectName,
        data: Bytes,
        expect: Expect<'_>,
    ) -> Result<Version, BackendError> {
        let mut m = self.map();
        match (expect, m.get(&name.path())) {
            (Expect::Absent, Some(_)) => {
                return Err(Self::err(ErrorKind::AlreadyExists, "put", name))
            }
            (Expect::Version(_), None) => return Err(Self::err(ErrorKind::NotFound, "put", name)),
            (Expect::Version(v), Some(now)) if Version::of_bytes(now) != *v => {
                return Err(Self::err(ErrorKind::Changed, "put", name))
            }
            _ => {}
        }
        let v = Version::of_bytes(&data);
        m.insert(name.path(), data);
        Ok(v)
    }
    async fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectName>, BackendError> {
        Ok(self
            .map()
            .keys()
            .filter_map(|k| ObjectName::parse(k))
            .filter(|n| n.kind() == kind)
            .collect())
    }
    async fn delete(&self, name: &ObjectName, _: &Deletion) -> Result<(), BackendError> {
        self.map()
            .remove(&name.path())
            .map(|_| ())
            .ok_or_else(|| Self::err(ErrorKind::NotFound, "delete", name))
    }
}
