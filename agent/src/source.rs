//! Sources: where backup data comes from. One module per kind owns its
//! settings (shared by the command line and configuration files), its
//! streams or walk, its snapshot record and its restore path; this module
//! registers them ([`SourceSettings`], [`describe`]). Adding a kind means
//! its module, a variant here, and its section of `docs/format.md` §7.1.
//!
//! A kind is either a set of streams read one after the other into files
//! of the snapshot's root tree ([`StreamPlan`]: standard input, a command,
//! PostgreSQL, Redis) or file trees walked from disk ([`files`]).

use crate::error::Result;
pub use crate::error::SourceError;
use cairn_repo_format::Source;

pub mod command;
pub mod files;
pub mod postgres;
pub mod pvc;
pub mod rdb;
pub mod redis;
pub mod stream;

/// What to back up: the settings of one source kind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceSettings {
    /// Standard input.
    Stdin(command::StdinSettings),
    /// A command's standard output.
    Command(command::CommandSettings),
    /// File trees.
    Files(files::FilesSettings),
    /// A PostgreSQL database.
    Postgres(postgres::PgSettings),
    /// A Redis server.
    Redis(redis::RedisSettings),
    /// A Kubernetes claim's volume.
    Pvc(pvc::PvcSettings),
}

/// How a backup reads its source.
#[derive(Debug)]
pub enum Plan {
    /// Streams, each a file of the root tree.
    Streams(StreamPlan),
    /// File trees.
    Files(files::FilesPlan),
}

/// How a stream source is read.
pub struct StreamPlan {
    /// Its streams, in order: a file name in the snapshot, how to start it.
    pub streams: Vec<(String, stream::StreamSpec)>,
    /// Bytes the streams will give, when known (for an estimate of the
    /// time left).
    pub expected_bytes: Option<u64>,
    /// Makes the snapshot's source record, and what the source held, once
    /// every stream has been read (a Redis server's versions are learnt
    /// while reading; a database's row counts are read beside its dump).
    pub record: futures::future::BoxFuture<'static, Result<Recorded>>,
}

/// What a stream source recorded of itself.
#[derive(Debug)]
pub struct Recorded {
    /// The snapshot's source record.
    pub source: Source,
    /// What the source held (format §7.1), when it was counted.
    pub counts: Option<cairn_repo_format::Counts>,
}

impl Recorded {
    /// A record without counts, ready at once.
    pub fn ready(source: Source) -> futures::future::BoxFuture<'static, Result<Recorded>> {
        Box::pin(std::future::ready(Ok(Recorded {
            source,
            counts: None,
        })))
    }
}

impl std::fmt::Debug for StreamPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamPlan")
            .field("streams", &self.streams)
            .field("expected_bytes", &self.expected_bytes)
            .finish_non_exhaustive()
    }
}

impl SourceSettings {
    /// The kind's name, as in snapshot records.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSettings::Stdin(_) => "stdin",
            SourceSettings::Command(_) => "command",
            SourceSettings::Files(_) => "files",
            SourceSettings::Postgres(_) => "postgres",
            SourceSettings::Redis(_) => "redis",
            SourceSettings::Pvc(_) => "pvc",
        }
    }

    /// Checks the settings without touching the source.
    ///
    /// # Errors
    /// [`crate::Error::Input`] naming the setting.
    pub fn check(&self) -> Result<()> {
        match self {
            SourceSettings::Stdin(s) => s.check(),
            SourceSettings::Command(s) => s.check(),
            SourceSettings::Files(s) => s.check(),
            SourceSettings::Postgres(_) => Ok(()),
            SourceSettings::Redis(s) => s.target().map(drop),
            SourceSettings::Pvc(s) => s.check(),
        }
    }

    /// Prepares the backup: checks the settings, probes a database server
    /// for what the snapshot records. Nothing is read yet.
    ///
    /// # Errors
    /// Bad settings ([`crate::Error::Input`]) or a source that cannot be
    /// reached ([`crate::Error::Source`]).
    pub async fn plan(&self) -> Result<Plan> {
        self.check()?;
        Ok(match self {
            SourceSettings::Stdin(s) => Plan::Streams(s.plan()),
            SourceSettings::Command(s) => Plan::Streams(s.plan()),
            SourceSettings::Files(s) => Plan::Files(s.plan()?),
            SourceSettings::Postgres(s) => Plan::Streams(s.plan().await?),
            SourceSettings::Redis(s) => Plan::Streams(s.plan()?),
            SourceSettings::Pvc(s) => Plan::Files(s.plan()?),
        })
    }
}

/// One line describing a snapshot's source, for listings.
pub fn describe(record: &Source) -> String {
    let kinds: [fn(&Source) -> Option<String>; 4] = [
        command::describe,
        files::describe,
        postgres::describe,
        redis::describe,
    ];
    kinds.iter().find_map(|d| d(record)).unwrap_or_else(|| {
        format!(
            "{} (a source kind this cairn does not know; its files restore with --target or --stdout)",
            record.kind()
        )
    })
}
