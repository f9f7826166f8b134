//! The passphrases that open a repository: one key file each (format §3).

use crate::backend::delete;
use crate::backend::ErrorKind;
use crate::error::{input, Error, Result};
use crate::repo::Repository;
use cairn_repo_format::{KdfParams, KeyId, KeyMeta, Passphrase};

/// A key file of the repository.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Its id.
    pub id: KeyId,
    /// When, where and by whom it was made; `None` for a key file that is
    /// not this repository's (left by an interrupted `init`, or damaged).
    pub meta: Option<KeyMeta>,
    /// Whether it is the one that opened the repository.
    pub current: bool,
}

/// Adds a key file for another passphrase.
///
/// # Errors
/// If the key file cannot be written.
pub async fn add(repo: &Repository, pass: &Passphrase) -> Result<KeyId> {
    let id = repo.add_key(pass, KdfParams::DEFAULT).await?;
    crate::audit::record(repo, "key-add", &[], format!("added key {}", id.short())).await;
    Ok(id)
}

/// Every key file, oldest first.
///
/// # Errors
/// If the key files cannot be listed or read.
pub async fn list(repo: &Repository) -> Result<Vec<KeyInfo>> {
    Ok(repo
        .keys_list()
        .await?
        .into_iter()
        .map(|(id, meta)| KeyInfo {
            id,
            meta,
            current: id == repo.key_id,
        })
        .collect())
}

/// Removes the key file whose id starts with `prefix`. The key that opened
/// the repository and the last key of the repository are never removed.
///
/// # Errors
/// [`Error::Input`] for a prefix that matches no key or several, the key
/// in use, or the last key.
pub async fn remove(repo: &Repository, prefix: &str) -> Result<KeyId> {
    let keys = repo.keys_list().await?;
    let lower = prefix.to_ascii_lowercase();
    let matching: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k.to_hex().starts_with(&lower))
        .collect();
    let key = match matching.as_slice() {
        [one] => one.0,
        [] => input!("no key matches {prefix:?}; `cairn key list` lists them"),
        _ => input!("key prefix {prefix:?} is ambiguous; give more digits"),
    };
    if key == repo.key_id {
        input!("key {} is the one that opened the repository; open it with another passphrase to remove this one", key.short());
    }
    let own = keys.iter().filter(|(_, m)| m.is_some()).count();
    let removing_own = matching.iter().any(|(_, m)| m.is_some());
    if removing_own && own < 2 {
        input!(
            "key {} is the last key; removing it would make the repository unreadable",
            key.short()
        );
    }
    match delete::key_file(&repo.backend, key).await {
        Err(e) if e.kind == ErrorKind::NotFound => {
            Err(Error::Input(format!("key {} is already gone", key.short())))
        }
        Err(e) => Err(Error::from(e)),
        Ok(()) => {
            crate::audit::record(
                repo,
                "key-remove",
                &[],
                format!("removed key {}", key.short()),
            )
            .await;
            Ok(key)
        }
    }
}
