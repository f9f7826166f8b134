//! The agent's repositories: opened from `[repository]` and
//! `[repositories.NAME]`, each with its catalog, and when each was last
//! reached (for `/readyz`).

use super::config::RepoSettings;
use crate::backend;
use crate::catalog::{self, Catalog};
use crate::error::{Error, Result};
use crate::ops;
use crate::repo::Repository;
use crate::util;
use cairn_repo_format::Passphrase;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The name the default `[repository]` goes by in metrics and logs.
pub const DEFAULT: &str = "default";

/// An open repository.
#[derive(Debug)]
pub struct Repo {
    /// Its name (`default` for `[repository]`).
    pub name: String,
    /// The repository.
    pub repo: Repository,
    /// Its catalog.
    pub cat: Arc<Catalog>,
    /// When its storage last answered (Unix seconds).
    last_contact: AtomicI64,
}

impl Repo {
    /// Notes that the storage answered now.
    pub fn reached(&self) {
        self.last_contact
            .store(jiff::Timestamp::now().as_second(), Ordering::Relaxed);
    }

    /// When the storage last answered (Unix seconds).
    pub fn last_contact(&self) -> i64 {
        self.last_contact.load(Ordering::Relaxed)
    }
}

/// The passphrase `settings` name: its file, its variable, else (as for
/// the command line) `CAIRN_PASSWORD_FILE` or `CAIRN_PASSWORD`.
///
/// # Errors
/// [`Error::Input`] naming what is missing or unreadable.
pub fn passphrase(settings: &RepoSettings) -> Result<Passphrase> {
    let from_file = |path: &Path, what: &str| {
        util::read_passphrase_file(path).map_err(|e| {
            Error::Input(format!(
                "cannot read the passphrase file {} ({what}): {e}",
                path.display()
            ))
        })
    };
    let bytes = if let Some(f) = &settings.password_file {
        from_file(f.get_ref(), "password-file")?
    } else if let Some(var) = &settings.password_env {
        std::env::var_os(var.get_ref())
            .map(std::os::unix::ffi::OsStringExt::into_vec)
            .ok_or_else(|| {
                Error::Input(format!(
                    "the environment variable {} (password-env) is not set",
                    var.get_ref()
                ))
            })?
    } else if let Some(f) = util::env_set("CAIRN_PASSWORD_FILE") {
        from_file(Path::new(&f), "CAIRN_PASSWORD_FILE")?
    } else if let Some(p) = util::env_set("CAIRN_PASSWORD") {
        std::os::unix::ffi::OsStringExt::into_vec(p)
    } else {
        return Err(Error::Input(
            "no passphrase for the repository: set password-file or password-env in its section (or CAIRN_PASSWORD_FILE)".into(),
        ));
    };
    let pass = Passphrase::new(bytes);
    if pass.is_empty() {
        return Err(Error::Input("the repository passphrase is empty".into()));
    }
    Ok(pass)
}

/// Opens the repository `settings` describe and its catalog (in
/// `catalog_dir`, else the default place), and brings the catalog up to
/// date.
///
/// # Errors
/// A malformed address, a wrong passphrase, storage that cannot be
/// reached.
pub async fn open(
    name: &str,
    settings: &RepoSettings,
    catalog_dir: Option<&Path>,
    cancel: &crate::cancel::Cancel,
) -> Result<Repo> {
    let opts = backend::Options {
        s3: backend::S3Options {
            endpoint: settings.s3.endpoint.clone(),
            region: settings.s3.region.clone(),
            virtual_hosted: settings.s3.virtual_hosted,
            multipart_threshold: backend::DEFAULT_MULTIPART_THRESHOLD,
            part_size: 0,
            read_timeout: backend::DEFAULT_READ_TIMEOUT,
        },
        retries: backend::DEFAULT_RETRIES,
        log_requests: false,
    };
    let pass = passphrase(settings)?;
    let place = ops::Place::connect(&settings.url, &opts).await?;
    let repo = cancel.or_cancel(ops::open_repository(place, &pass)).await?;
    drop(pass);
    let path = match catalog_dir {
        Some(dir) => catalog::path_in(dir, &repo.config.repository_id),
        None => catalog::default_path(&repo.config.repository_id)?,
    };
    let cat = ops::open_catalog(&repo, Some(&path))?;
    ops::sync(&repo, &cat, ops::Trees::Of(&[]), cancel).await?;
    let r = Repo {
        name: name.to_owned(),
        repo,
        cat,
        last_contact: AtomicI64::new(0),
    };
    r.reached();
    Ok(r)
}
