//! The one module that deletes objects from a repository. Every deletion
//! needs a [`Deletion`], which only this module makes, so the compiler
//! holds every other module (and every front end) to writing only.
//!
//! Today it removes a session's lease when the session ends and a key file
//! (`key remove`, or the key file of an `init` that lost a race); prune
//! (format §10) will delete here too.

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

/// Removes a key file.
///
/// # Errors
/// The backend's failure; a missing key file is
/// [`super::ErrorKind::NotFound`].
pub(crate) async fn key_file(backend: &DynBackend, key: KeyId) -> Result<(), BackendError> {
    backend.delete(&ObjectName::Key(key), &Deletion(())).await
}
