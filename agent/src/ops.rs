//! The operations: what the front ends (the `cairn` command line, the
//! coming daemon) call. Each takes typed options (serde, no command-line
//! types), a [`Cancel`] token where it runs long, and returns a typed
//! report or an [`crate::Error`] whose [`crate::Action`] says what the
//! caller can do.
//!
//! - [`open`]: reach a repository ([`Place`]), create one ([`init`]), open
//!   one ([`open_repository`]) and its catalog ([`open_catalog`]).
//! - [`backup()`], [`restore()`], [`sync()`].
//! - [`keys`]: the passphrases that open a repository.
//! - [`catalog`]: rebuild and check the local catalog.
//! - [`forget()`]: snapshots stop counting, by retention rules or by id.
//! - [`check()`]: is the repository whole (structure, and with
//!   `read_data` every blob)?
//!
//! - [`copy()`]: snapshots into another repository.
//! - [`prune()`]: the collector, the only operation that deletes data
//!   (through [`crate::backend::delete`]).
//!
//! Restore drills come here as they are built.

use crate::cancel::Cancel;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::repo::Repository;
use std::sync::Arc;

pub mod backup;
pub mod catalog;
pub mod check;
pub mod copy;
pub mod drill;
pub mod forget;
pub mod keys;
pub mod open;
pub mod prune;
pub mod restore;

pub use crate::sync::{SyncReport, Trees};
pub use backup::{backup, BackupOptions, BackupReport, Parent};
pub use check::{check, CheckOptions, CheckReport, Subset};
pub use copy::{copy, Copied, CopyOptions, CopyReport};
pub use forget::{forget, ForgetOptions, ForgetReport};
pub use open::{init, open_catalog, open_repository, InitOptions, Place};
pub use prune::{prune, PruneOptions, PruneReport};
pub use restore::{restore, Destination, RestoreOptions, RestoreReport};

/// Brings the catalog up to date with the repository: the index and
/// snapshots of every new session, and the trees `trees` names.
///
/// # Errors
/// If the repository cannot be listed or the catalog cannot be written
/// ([`crate::Error::Cancelled`] if `cancel` fires first).
pub async fn sync(
    repo: &Repository,
    cat: &Arc<Catalog>,
    trees: Trees<'_>,
    cancel: &Cancel,
) -> Result<SyncReport> {
    cancel
        .or_cancel(async {
            let mut report = crate::sync::sync(cat, repo).await?;
            report.snapshots = crate::sync::fetch_trees(cat, repo, trees).await?;
            Ok::<_, crate::Error>(report)
        })
        .await
}
