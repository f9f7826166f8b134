//! An opened repository: backend, keys and config. What its committed
//! sessions say is read into the catalog ([`crate::catalog`]).

use crate::backend::{DynBackend, ErrorKind, PutMode};
use crate::error::{input, Context, Error, Result};
use crate::stats::Stats;
use crate::util;
use bytes::Bytes;
use cairn_repo_format::{
    keyfile, sealed, Config, KdfParams, KeyError, KeyId, KeyMeta, MasterKey, ObjectKind,
    ObjectName, Passphrase, RepoKeys,
};
use std::sync::Arc;

pub mod read;

/// An opened repository.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Where its objects are: reachable only inside the library, so that
    /// no front end writes or deletes objects but through an operation.
    pub(crate) backend: DynBackend,
    /// Its working keys.
    pub(crate) keys: Arc<RepoKeys>,
    /// Its parameters.
    pub config: Config,
    /// The key file that opened it.
    pub key_id: KeyId,
    master: Arc<MasterKey>,
    /// What its reads have verified so far (`bytes_read`: plaintext of
    /// data blobs), and what a restore expects to read, for progress.
    reads: Arc<Stats>,
    /// Whether operations write audit records (format §7.3).
    audit: bool,
}

fn key_meta() -> KeyMeta {
    KeyMeta {
        created_ns: util::now_ns(),
        hostname: util::hostname(),
        username: util::username(),
    }
}

impl Repository {
    fn with_keys(backend: DynBackend, master: MasterKey, key_id: KeyId, config: Config) -> Self {
        let keys = Arc::new(config.keys(&master));
        Self {
            backend,
            keys,
            config,
            key_id,
            master: Arc::new(master),
            reads: Arc::new(Stats::default()),
            audit: true,
        }
    }

    /// Whether operations write audit records.
    pub fn audits(&self) -> bool {
        self.audit
    }

    /// Turns the audit trail off for this handle (`--no-audit`: credentials
    /// that may only read), or on.
    pub fn set_audit(&mut self, on: bool) {
        self.audit = on;
    }

    /// The counters of what reads from this handle have verified, for a
    /// progress display.
    pub fn read_stats(&self) -> Arc<Stats> {
        self.reads.clone()
    }

    /// Creates a repository: a key file, then the config (create-only: an
    /// existing repository is never touched). The place must be empty. Of
    /// two `init`s racing on one place exactly one wins; the other removes
    /// its key file and fails.
    pub async fn init(
        backend: DynBackend,
        pass: &Passphrase,
        config: Config,
        kdf: KdfParams,
    ) -> Result<Self> {
        let location = backend.location();
        match backend.head(&ObjectName::Config).await {
            Ok(_) => input!("a repository already exists at {location}; nothing was changed"),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("checking for an existing repository"),
        }
        if backend
            .holds_anything()
            .await
            .context("checking that the place for the repository is empty")?
        {
            input!("{location} is not empty and holds no Cairn repository (no config object): nothing was changed. Give an empty (or new) directory or prefix; if another `cairn init` is creating a repository there right now, use that one");
        }
        let master = MasterKey::generate();
        let keys = config.keys(&master);
        let key_id = KeyId::random();
        let file = keyfile::create(&master, &keys.enc, key_id, pass, kdf, key_meta())?;
        backend
            .put(&ObjectName::Key(key_id), file.into(), PutMode::Create)
            .await?;
        let sealed = config.seal(&keys.enc);
        if let Err(e) = backend
            .put(&ObjectName::Config, sealed.into(), PutMode::Create)
            .await
        {
            // Our key file would wrap a master key of no repository.
            let _ = crate::backend::delete::key_file(&backend, key_id).await;
            if e.kind == ErrorKind::AlreadyExists {
                input!("another `cairn init` created a repository at {location} at the same time; use that one (nothing of this attempt was left)");
            }
            return Err(Error::from(e).context("writing the repository config"));
        }
        Ok(Self::with_keys(backend, master, key_id, config))
    }

    /// Opens a repository with a passphrase, trying every key file. A key
    /// file the passphrase opens but whose master key does not open the
    /// config (left by an `init` that lost a race or was killed) is skipped.
    pub async fn open(backend: DynBackend, pass: &Passphrase) -> Result<Self> {
        let location = backend.location();
        let config_bytes = match backend.get(&ObjectName::Config).await {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => {
                input!("there is no repository at {location} (no config object); create one with `cairn init` or check --repo")
            }
            Err(e) => return Err(e).context("reading the repository config"),
        };
        let version = sealed::peek_version(sealed::CONFIG, &config_bytes)
            .map_err(|e| Error::Input(format!("{location} is not a Cairn repository: {e}")))?;
        if version != sealed::CONFIG.version {
            input!(
                "the repository at {location} has format version {version}; this cairn reads version {}. Use a matching cairn release.",
                sealed::CONFIG.version
            );
        }
        let key_names = backend
            .list(ObjectKind::Key)
            .await
            .context("listing key files")?;
        if key_names.is_empty() {
            return Err(Error::Corrupt(format!(
                "the repository at {location} has no key files; it cannot be opened"
            )));
        }
        let mut opened = None;
        let mut broken = Vec::new();
        let mut foreign = Vec::new();
        for name in &key_names {
            let ObjectName::Key(id) = *name else { continue };
            let data = backend.get(name).await?;
            let pass = pass.clone();
            match tokio::task::spawn_blocking(move || file_unwrap(&data, id, &pass)).await? {
                Ok(m) => match Config::open(&m.derive().enc, &config_bytes) {
                    Ok(config) => {
                        opened = Some((id, m, config));
                        break;
                    }
                    Err(_) => foreign.push(id),
                },
                Err(KeyError::WrongPassphrase { .. }) => {}
                Err(e) => broken.push(format!("{name}: {e}")),
            }
        }
        for b in &broken {
            tracing::warn!("skipped unreadable key file {b}");
        }
        for id in &foreign {
            tracing::warn!("the passphrase opens key file {}, but its master key is not this repository's (left by an `init` that lost a race or was killed); `cairn key remove {}` removes it", ObjectName::Key(*id), id.short());
        }
        let Some((key_id, master, config)) = opened else {
            input!(
                "wrong passphrase: it opens none of the {} key file(s) of {location}",
                key_names.len()
            );
        };
        Ok(Self::with_keys(backend, master, key_id, config))
    }

    /// The same repository reached through `backend` (a wrapper of its own,
    /// counting requests, say).
    pub(crate) fn with_backend(&self, backend: DynBackend) -> Self {
        Self {
            backend,
            ..self.clone()
        }
    }

    /// Where it is, for messages (`/srv/repo`, `s3:bucket/prefix`).
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Adds a key file for another passphrase.
    pub async fn add_key(&self, pass: &Passphrase, kdf: KdfParams) -> Result<KeyId> {
        let id = KeyId::random();
        let (master, keys) = (self.master.clone(), self.keys.clone());
        let pass = pass.clone();
        let file = tokio::task::spawn_blocking(move || {
            keyfile::create(&master, &keys.enc, id, &pass, kdf, key_meta())
        })
        .await??;
        self.backend
            .put(&ObjectName::Key(id), file.into(), PutMode::Create)
            .await?;
        Ok(id)
    }

    /// All key files with their metadata; `None` for a key file that is
    /// not this repository's (its metadata does not open with our key: left
    /// by an `init` that lost a race or was killed, or damaged).
    pub async fn keys_list(&self) -> Result<Vec<(KeyId, Option<KeyMeta>)>> {
        let mut out = Vec::new();
        for name in self.backend.list(ObjectKind::Key).await? {
            let ObjectName::Key(id) = name else { continue };
            let data = self.backend.get(&name).await?;
            let meta = keyfile::parse(&data)
                .and_then(|f| f.meta(&self.keys.enc, id))
                .ok();
            out.push((id, meta));
        }
        out.sort_by_key(|(_, m)| m.as_ref().map_or(i64::MAX, |m| m.created_ns));
        Ok(out)
    }

    /// Puts a new object, create-only.
    pub async fn put_new(&self, name: &ObjectName, data: Vec<u8>) -> Result<()> {
        self.backend
            .put(name, Bytes::from(data), PutMode::Create)
            .await
            .with_context(|| format!("writing {name}"))
    }
}

fn file_unwrap(data: &[u8], id: KeyId, pass: &Passphrase) -> Result<MasterKey, KeyError> {
    keyfile::parse(data)?.unwrap(id, pass)
}
