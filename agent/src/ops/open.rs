//! Reaching, creating and opening a repository and its catalog.

use crate::backend::{self, DynBackend};
use crate::catalog::{self, Catalog};
use crate::error::{Error, Result};
use crate::repo::Repository;
use cairn_chunker::ChunkerParams;
use cairn_repo_format::{
    ChunkingKeys, Config, KdfParams, Passphrase, DEFAULT_PACK_SIZE, DEFAULT_ZSTD_LEVEL,
};
use std::path::Path;
use std::sync::Arc;

/// Where a repository is, or is to be: an opened backend, not yet a
/// repository. Its objects are reachable only through the operations.
#[derive(Debug, Clone)]
pub struct Place(DynBackend);

impl Place {
    /// Reaches `address`: a local directory (or `local:PATH`), or
    /// `s3:BUCKET/PREFIX` (also `s3://BUCKET/PREFIX`).
    ///
    /// # Errors
    /// [`Error::Input`] for a malformed address.
    pub async fn connect(address: &str, opts: &backend::Options) -> Result<Self> {
        match backend::open(address, opts).await {
            Ok(b) => Ok(Self(b)),
            // Nothing was asked of the store yet: the address is malformed.
            Err(e) if e.op == "open" => Err(Error::Input(e.detail)),
            Err(e) => Err(e.into()),
        }
    }

    /// The location, for messages (`/srv/repo`, `s3:bucket/prefix`).
    pub fn location(&self) -> String {
        self.0.location()
    }
}

/// The parameters of a new repository.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitOptions {
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for new data.
    pub zstd_level: i32,
    /// Average chunk size in bytes (a power of two); the least is a
    /// quarter of it, the most four times.
    pub chunk_avg: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            pack_size: DEFAULT_PACK_SIZE,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            chunk_avg: ChunkerParams::DEFAULT.avg_size(),
        }
    }
}

/// Creates a repository at `place` (which must be empty), with one key file
/// for `pass`. With `like`, it chunks and identifies blobs as that
/// repository does (its chunker parameters and chunking keys, format §4;
/// `opts.chunk_avg` is then not used), so that copies between them keep
/// their ids and deduplicate with what either stores.
///
/// # Errors
/// [`Error::Input`] for parameters out of range, a place that is not empty
/// or already holds a repository.
pub async fn init(
    place: Place,
    pass: &Passphrase,
    opts: &InitOptions,
    like: Option<&Repository>,
) -> Result<Repository> {
    let mut config = opts.config()?;
    if let Some(like) = like {
        config.chunker = like.config.chunker;
        config.chunking_keys = Some(ChunkingKeys::of(
            like.config.repository_id,
            &like.config,
            &like.keys,
        ));
    }
    Repository::init(place.0, pass, config, KdfParams::DEFAULT).await
}

impl InitOptions {
    /// The repository config these options make (a new repository id).
    ///
    /// # Errors
    /// [`Error::Input`] for a parameter out of range.
    pub fn config(&self) -> Result<Config> {
        let avg = self.chunk_avg;
        let chunker = ChunkerParams::new(avg / 4, avg, avg.saturating_mul(4), 1)
            .map_err(|e| Error::Input(format!("invalid average chunk size: {e}")))?;
        Config::new(chunker, self.zstd_level, self.pack_size)
            .map_err(|e| Error::Input(format!("invalid repository settings: {e}")))
    }
}

/// Opens the repository at `place` with a passphrase (any of its key
/// files').
///
/// # Errors
/// [`Error::Input`] for a wrong passphrase or a place without a repository.
pub async fn open_repository(place: Place, pass: &Passphrase) -> Result<Repository> {
    Repository::open(place.0, pass).await
}

/// Opens the repository's catalog at `path`, or at its default place (one
/// per repository in `~/.cache/cairn`); it is synced by the operations that
/// use it.
///
/// # Errors
/// If the file cannot be created or opened.
pub fn open_catalog(repo: &Repository, path: Option<&Path>) -> Result<Arc<Catalog>> {
    let path = match path {
        Some(p) => p.to_owned(),
        None => catalog::default_path(&repo.config.repository_id)?,
    };
    Ok(Arc::new(Catalog::open(
        &path,
        &repo.config.repository_id,
        catalog::Auth::of(&repo.keys),
    )?))
}
