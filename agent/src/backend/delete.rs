//! The one module that deletes objects from a repository. Every deletion
//! needs a [`Deletion`], which only this module makes, so the compiler
//! holds every other module (and every front end) to writing only.
//!
//! It removes a session's lease when the session ends, a key file (`key
//! remove`, or the key file of an `init` that lost a race), and what the
//! collector (`prune`, format §10.4) deletes.

use super::{BackendError, DynBackend};
use cairn_repo_format::{KeyId, ObjectName, SessionId};

/// Permission to delete, made only here.
#[derive(Debug)]
pub struct Deletion(());

impl Deletion {
    /// For the backends' own tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self(())
    }
}

/// Removes a session's lease (the session ended, committed or not).
///
/// # Errors
/// The backend's failure; a missing lease is [`super::ErrorKind::NotFound`].
pub(crate) async fn lease(backend: &DynBackend, session: SessionId) -> Result<(), BackendError> {
    backend
        .delete(&ObjectName::Lease(session), &Deletion(()))
        .await
}

/// Removes an object the collector deletes (format §10.4): a pack of a
/// committed deletion set, an index file or snapshot that no longer
/// counts, a finished session's lease, an old plan. The caller (`prune`)
/// answers for the protocol; this refuses every other kind.
///
/// # Errors
/// The backend's failure; a missing object is
/// [`super::ErrorKind::NotFound`].
pub(crate) async fn collected(backend: &DynBackend, name: &ObjectName) -> Result<(), BackendError> {
    match name {
        ObjectName::Pack(..)
        | ObjectName::Index(..)
        | ObjectName::Snapshot(_)
        | ObjectName::Lease(_)
        | ObjectName::Plan(_)
        | ObjectName::Deletions(_) => backend.delete(name, &Deletion(())).await,
        other => Err(BackendError {
            kind: super::ErrorKind::Other,
            op: "delete",
            object: other.path(),
            location: backend.location(),
            detail: "the collector never deletes this kind of object".into(),
        }),
    }
}

/// Removes a key file.
///
/// # Errors
/// The backend's failure; a missing key file is
/// [`super::ErrorKind::NotFound`].
pub(crate) async fn key_file(backend: &DynBackend, key: KeyId) -> Result<(), BackendError> {
    backend.delete(&ObjectName::Key(key), &Deletion(())).await
}
