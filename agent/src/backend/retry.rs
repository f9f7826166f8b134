//! Retries with exponential backoff and full jitter, for the errors the
//! backend classifies as retryable (throttling, 5xx, timeouts, resets).
//! Permanent errors pass through at once.

use super::delete::Deletion;
use super::{
    read_spooled, Backend, BackendError, DynBackend, ErrorKind, Expect, PutMode, ReadProfile, Stat,
    Version,
};
use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo_format::{ObjectKind, ObjectName};
use rand::Rng;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default number of retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 8;

/// [`DEFAULT_RETRIES`], for settings that leave it out.
pub fn default_retries() -> u32 {
    DEFAULT_RETRIES
}

/// A backend that retries another.
#[derive(Debug)]
pub struct Retry {
    inner: DynBackend,
    retries: u32,
    base: Duration,
    cap: Duration,
}

impl Retry {
    /// Retries `inner` up to `retries` times per operation.
    pub fn new(inner: DynBackend, retries: u32) -> Self {
        Self {
            inner,
            retries,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(20),
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1 << attempt.min(16)).min(self.cap);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    async fn run<T, F, Fut>(&self, f: F) -> Result<T, BackendError>
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let mut attempt = 0;
        loop {
            match f(attempt).await {
                Err(e) if e.is_retryable() && attempt < self.retries => {
                    let wait = self.delay(attempt);
                    attempt += 1;
                    tracing::warn!(
                        "retrying {} {} in {:.1} s ({:?}, retry {attempt} of {})",
                        e.op,
                        e.object,
                        wait.as_secs_f64(),
                        e.kind,
                        self.retries
                    );
                    tokio::time::sleep(wait).await;
                }
                r => return r,
            }
        }
    }

    /// An attempt's answer to a put. An earlier attempt may have succeeded
    /// with its answer lost: then the object counts as ours only if it holds
    /// exactly our bytes (sealed objects carry a random salt, so a fenced
    /// commit written by a pruner never matches).
    async fn put_answer<F>(
        &self,
        name: &ObjectName,
        attempt: u32,
        mode: PutMode,
        answer: Result<(), BackendError>,
        ours: impl FnOnce() -> F + Send,
    ) -> Result<(), BackendError>
    where
        F: Future<Output = Result<Bytes, BackendError>> + Send,
    {
        match answer {
            Err(e)
                if e.kind == ErrorKind::AlreadyExists && attempt > 0 && mode == PutMode::Create =>
            {
                let existing = self.inner.get(name).await?;
                if existing == ours().await? {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            r => r,
        }
    }
}

#[async_trait]
impl Backend for Retry {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, name: &ObjectName, data: Bytes, mode: PutMode) -> Result<(), BackendError> {
        self.run(|attempt| {
            let data = data.clone();
            async move {
                let answer = self.inner.put(name, data.clone(), mode).await;
                self.put_answer(name, attempt, mode, answer, || async { Ok(data) })
                    .await
            }
        })
        .await
    }

    async fn put_file(
        &self,
        name: &ObjectName,
        path: &Path,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        self.run(|attempt| async move {
            let answer = self.inner.put_file(name, path, mode).await;
            self.put_answer(name, attempt, mode, answer, || async move {
                read_spooled(path, name, &self.inner.location()).await
            })
            .await
        })
        .await
    }

    fn spool_dir(&self, name: &ObjectName) -> Option<PathBuf> {
        self.inner.spool_dir(name)
    }

    fn read_profile(&self) -> ReadProfile {
        self.inner.read_profile()
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, BackendError> {
        self.run(|_| self.inner.get(name)).await
    }

    async fn get_range(
        &self,
        name: &ObjectName,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        self.run(|_| self.inner.get_range(name, offset, len)).await
    }

    async fn head(&self, name: &ObjectName) -> Result<u64, BackendError> {
        self.run(|_| self.inner.head(name)).await
    }

    async fn stat(&self, name: &ObjectName) -> Result<Stat, BackendError> {
        self.run(|_| self.inner.stat(name)).await
    }

    async fn get_versioned(&self, name: &ObjectName) -> Result<(Bytes, Version), BackendError> {
        self.run(|_| self.inner.get_versioned(name)).await
    }

    /// As [`Retry::put_answer`]: a retry that finds the object created or
    /// changed asks whether it holds our bytes (an earlier attempt's).
    async fn put_versioned(
        &self,
        name: &ObjectName,
        data: Bytes,
        expect: Expect<'_>,
    ) -> Result<Version, BackendError> {
        self.run(|attempt| {
            let data = data.clone();
            async move {
                match self.inner.put_versioned(name, data.clone(), expect).await {
                    Err(e)
                        if attempt > 0
                            && matches!(e.kind, ErrorKind::AlreadyExists | ErrorKind::Changed) =>
                    {
                        let (now, version) = self.inner.get_versioned(name).await?;
                        if now == data {
                            Ok(version)
                        } else {
                            Err(e)
                        }
                    }
                    r => r,
                }
            }
        })
        .await
    }

    async fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectName>, BackendError> {
        self.run(|_| self.inner.list(kind)).await
    }

    async fn list_sizes(&self, kind: ObjectKind) -> Result<Vec<(ObjectName, u64)>, BackendError> {
        self.run(|_| self.inner.list_sizes(kind)).await
    }

    async fn delete(&self, name: &ObjectName, gate: &Deletion) -> Result<(), BackendError> {
        self.run(|_| self.inner.delete(name, gate)).await
    }

    async fn holds_anything(&self) -> Result<bool, BackendError> {
        self.run(|_| self.inner.holds_anything()).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::faulty::Faulty;
    use super::super::memory::MemoryBackend;
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn transient_faults_are_retried_and_lost_answers_recognised() {
        let mem: DynBackend = Arc::new(MemoryBackend::default());
        let faulty: DynBackend = Arc::new(
            Faulty::parse(mem.clone(), "transient=0.5,seed=3").unwrap_or_else(|e| panic!("{e}")),
        );
        let r = Retry {
            inner: faulty,
            retries: 40,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        for i in 0..50u8 {
            let name = ObjectName::Snapshot(cairn_repo_format::SnapshotId::random());
            r.put(&name, Bytes::from(vec![i; 10]), PutMode::Create)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.get(&name).await.ok(), Some(Bytes::from(vec![i; 10])));
        }
        // A different object under the same name is still refused.
        let name = ObjectName::Commit(cairn_repo_format::SessionId::random());
        mem.put(&name, Bytes::from_static(b"tombstone"), PutMode::Create)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let e = r
            .put(&name, Bytes::from_static(b"ours"), PutMode::Create)
            .await
            .err();
        assert_eq!(e.map(|e| e.kind), Some(ErrorKind::AlreadyExists));
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let mem: DynBackend = Arc::new(MemoryBackend::default());
        let faulty: DynBackend =
            Arc::new(Faulty::parse(mem, "permanent-after=0").unwrap_or_else(|e| panic!("{e}")));
        let r = Retry {
            inner: faulty,
            retries: 40,
            base: Duration::from_secs(60),
            cap: Duration::from_secs(60),
        };
        let name = ObjectName::Snapshot(cairn_repo_format::SnapshotId::random());
        // Would take an hour if it retried.
        let e = r
            .put(&name, Bytes::from_static(b"x"), PutMode::Create)
            .await
            .err();
        assert_eq!(e.map(|e| e.kind), Some(ErrorKind::PermissionDenied));
    }
}
