//! The agent's configuration file (`docs/agent.md`): TOML read through
//! serde into typed settings, then checked as a whole. Every error names
//! the file, the line and the key; a file with any error is refused whole.
//!
//! Secrets are never in the file: a repository's passphrase, PostgreSQL's
//! password and Redis's are named by a file (or, for the passphrase, an
//! environment variable), and S3 credentials come from the AWS chain.

use crate::retention::Rules;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use toml::Spanned;

/// The default address of the HTTP endpoint (metrics and health).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9464";

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    /// How the agent itself runs.
    #[serde(default)]
    pub agent: Settings,
    /// The repository jobs back up to unless they name another.
    pub repository: Option<Spanned<RepoSettings>>,
    /// More repositories, by name.
    #[serde(default)]
    pub repositories: BTreeMap<String, Spanned<RepoSettings>>,
    /// Pruning (only on agents that may delete).
    pub prune: Option<Spanned<PruneSettings>>,
    /// Checking the repository (`cairn check`), with some of its data.
    pub check: Option<Spanned<CheckSettings>>,
    /// The jobs, by name (`[jobs.orders-db]`; TOML refuses a name given
    /// twice).
    #[serde(default)]
    pub jobs: BTreeMap<String, Spanned<JobSettings>>,
}

/// `[agent]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[serde(default = "default_listen")]
    pub listen: Spanned<String>,
    /// Jobs running at once on this node.
    #[serde(default = "one")]
    pub max_concurrent_jobs: Spanned<usize>,
    /// On SIGTERM, how long running jobs may take to finish before they
    /// are aborted.
    #[serde(default = "five_minutes")]
    pub shutdown_grace: Duration,
    /// The catalog's directory (default: the CLI's).
    #[serde(default)]
    pub catalog: Option<PathBuf>,
    /// The host name recorded in snapshots (default: `CAIRN_HOST`, else
    /// the system's). On Kubernetes, the node's name: a pod's changes with
    /// each restart, and a job's retention and last success are per host.
    #[serde(default)]
    pub host: Option<Spanned<String>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_concurrent_jobs: one(),
            shutdown_grace: five_minutes(),
            catalog: None,
            host: None,
        }
    }
}

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_LISTEN.into())
}

fn one() -> Spanned<usize> {
    Spanned::new(0..0, 1)
}

fn five_minutes() -> Duration {
    Duration(std::time::Duration::from_secs(300))
}

/// `[repository]` or `[repositories.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RepoSettings {
    /// A directory, or `s3:BUCKET/PREFIX`.
    pub url: String,
    /// A file holding the passphrase.
    #[serde(default)]
    pub password_file: Option<Spanned<PathBuf>>,
    /// An environment variable holding the passphrase.
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    /// S3 settings (credentials come from the AWS chain).
    #[serde(default)]
    pub s3: S3Settings,
}

/// `[repository.s3]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct S3Settings {
    /// Endpoint URL of an S3-compatible store.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// Virtual-hosted addressing even with a custom endpoint.
    #[serde(default)]
    pub virtual_hosted: bool,
}

/// `[prune]`. Its schedule keys are those of a job, written out in both
/// rather than shared through `#[serde(flatten)]`: serde reads a flattened
/// struct through a buffer, which loses toml's spans (so errors could not
/// name their line) and does not honour `deny_unknown_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PruneSettings {
    /// A cron expression: five fields, or six with seconds first.
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// Or an interval (`6h`, `30m`).
    #[serde(default)]
    pub every: Option<Spanned<Duration>>,
    /// The time zone of `schedule` (default: the system's).
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    /// Each run starts up to this much later, at random.
    #[serde(default)]
    pub jitter: Option<Duration>,
    /// The repository (default: `[repository]`).
    #[serde(default)]
    pub repository: Option<Spanned<String>>,
    /// Repack packs more than this share unused (percent).
    #[serde(default)]
    pub max_unused: Option<Spanned<f64>>,
    /// How long to wait for live backups before fencing them.
    #[serde(default)]
    pub max_wait: Option<Duration>,
}

/// `[check]`: its schedule keys are a job's, as for `[prune]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckSettings {
    /// A cron expression: five fields, or six with seconds first.
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// Or an interval (`24h`).
    #[serde(default)]
    pub every: Option<Spanned<Duration>>,
    /// The time zone of `schedule` (default: the system's).
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    /// Each run starts up to this much later, at random.
    #[serde(default)]
    pub jitter: Option<Duration>,
    /// The repository (default: `[repository]`).
    #[serde(default)]
    pub repository: Option<Spanned<String>>,
    /// Also read and verify this part of the data: `all`, `10%`, `2/7`,
    /// or `next/7` (a seventh each run, the next one each time).
    #[serde(default)]
    pub read_data: Option<Spanned<String>>,
}

/// The name of the repository a job, the prune or the check uses (its
/// `repository` key, else [`super::repos::DEFAULT`]).
pub fn repository_name(named: Option<&Spanned<String>>) -> String {
    named.map_or_else(|| super::repos::DEFAULT.to_owned(), |n| n.get_ref().clone())
}

/// What `read-data` asks for: `all`, or a subset as `cairn check
/// --read-data-subset` takes it.
///
/// # Errors
/// What is wrong with it.
pub fn read_data(text: &str) -> Result<crate::ops::Subset, String> {
    if text.trim() == "all" {
        return Ok(crate::ops::Subset::All);
    }
    text.parse::<crate::ops::Subset>()
        .map_err(|e| format!("{e}, or all"))
}

/// When a job, the prune or the check runs (the keys they have).
#[derive(Debug, Clone, Copy)]
pub struct When<'a> {
    /// `schedule`.
    pub schedule: Option<&'a Spanned<String>>,
    /// `every`.
    pub every: Option<&'a Spanned<Duration>>,
    /// `time-zone`.
    pub time_zone: Option<&'a Spanned<String>>,
}

/// `.when()` for the sections with schedule keys (written out in each: see
/// [`PruneSettings`]).
macro_rules! when_of {
    ($($t:ty),*) => {$(
        impl $t {
            /// When it runs.
            pub fn when(&self) -> When<'_> {
                When {
                    schedule: self.schedule.as_ref(),
                    every: self.every.as_ref(),
                    time_zone: self.time_zone.as_ref(),
                }
            }
        }
    )*};
}
when_of!(JobSettings, PruneSettings, CheckSettings);

/// `[jobs.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobSettings {
    /// What to back up.
    pub source: Spanned<JobSource>,
    /// A cron expression: five fields, or six with seconds first. A job
    /// with neither this nor `every` runs only when asked (`--run`).
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// Or an interval (`6h`, `30m`).
    #[serde(default)]
    pub every: Option<Spanned<Duration>>,
    /// The time zone of `schedule` (default: the system's).
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    /// Each run starts up to this much later, at random.
    #[serde(default)]
    pub jitter: Option<Duration>,
    /// A run missed while the agent was down runs once at start if it is
    /// no older than this.
    #[serde(default)]
    pub starting_deadline: Option<Duration>,
    /// The repository (default: `[repository]`).
    #[serde(default)]
    pub repository: Option<Spanned<String>>,
    /// A run taking longer is aborted (nothing is committed).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Runs that fail are tried again this many times.
    #[serde(default)]
    pub retries: u32,
    /// The wait before the first retry; it doubles for each next one.
    #[serde(default)]
    pub retry_backoff: Option<Duration>,
    /// Tags on every snapshot of the job.
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    /// What to keep (the rules of `cairn forget`); forgetting runs after
    /// each successful backup.
    #[serde(default)]
    pub retention: Option<Spanned<Rules>>,
    /// Commands run before the backup.
    #[serde(default)]
    pub pre: Vec<Spanned<Hook>>,
    /// Commands run after the backup.
    #[serde(default)]
    pub post: Vec<Spanned<Hook>>,
}

/// A hook command (`[[jobs.NAME.pre]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hook {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// It is killed after this long (default 5 minutes).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// What its failure does to the run.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// What a failing hook does.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// The run fails (a pre hook: before anything is backed up).
    #[default]
    Fail,
    /// It is logged and the run goes on.
    Continue,
}

/// `[jobs.NAME.source]`. (Serde reads an internally tagged enum through a
/// buffer, so nothing inside it can carry its own span: errors point at
/// the source table and name the key.)
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum JobSource {
    /// A PostgreSQL database through pg_dump.
    #[serde(alias = "pg")]
    Postgres(PgSource),
    /// A Redis server's RDB snapshot.
    Redis(RedisSource),
    /// File trees.
    /// `type = "files"`: the settings `cairn backup` builds from its
    /// options, under the same names.
    Files(crate::source::files::FilesSettings),
    /// A command's standard output.
    Command(CommandSource),
    /// The claims of the pods on this node (the DaemonSet's job).
    Kubernetes(super::kubernetes::KubernetesSource),
    /// Snapshots of another configured repository, copied into the job's
    /// (`cairn copy`).
    Copy(CopySource),
    /// Restore drills of the job's repository's newest snapshots
    /// (`cairn drill`).
    Drill(DrillSource),
}

/// `type = "drill"`: what `cairn drill` takes. It drills the newest
/// snapshot of each host and source the filters choose, and writes
/// nothing to the repository.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DrillSource {
    /// Only snapshots taken on these hosts.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Only snapshots with all of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only snapshots of these source kinds.
    #[serde(default)]
    pub source_kinds: Vec<String>,
    /// Only snapshots of these Kubernetes claims.
    #[serde(default)]
    pub claims: Vec<String>,
    /// How far back the RPO's largest gap is looked for (default 7 days;
    /// `168h`).
    #[serde(default)]
    pub window: Option<Duration>,
    /// Where scratch directories go (default: TMPDIR).
    #[serde(default)]
    pub scratch: Option<PathBuf>,
    /// A shell command run after each restore, before the comparison.
    #[serde(default)]
    pub check_command: Option<String>,
    /// Restore PostgreSQL snapshots into a new database on this server
    /// instead of a temporary one.
    #[serde(default)]
    pub pg_host: Option<String>,
    /// Its port.
    #[serde(default)]
    pub pg_port: Option<u16>,
    /// The user to connect as.
    #[serde(default)]
    pub pg_user: Option<String>,
    /// The database to connect to (default `postgres`).
    #[serde(default)]
    pub pg_dbname: Option<String>,
    /// initdb and postgres for the temporary server.
    #[serde(default)]
    pub pg_bindir: Option<PathBuf>,
    /// The redis-server that loads RDB files.
    #[serde(default)]
    pub redis_server: Option<PathBuf>,
}

impl DrillSource {
    /// The snapshots it chooses.
    pub fn filter(&self) -> crate::filter::SnapshotFilter {
        filter(&self.hosts, &self.tags, &self.source_kinds, &self.claims)
    }

    /// What `cairn drill` would be given.
    pub fn options(&self) -> crate::ops::drill::DrillOptions {
        use crate::ops::drill::{DrillOptions, PgScratch};
        let postgres = match &self.pg_host {
            Some(host) => PgScratch::Server(crate::source::postgres::PgConn {
                dbname: self.pg_dbname.clone(),
                host: Some(host.clone()),
                port: self.pg_port,
                username: self.pg_user.clone(),
            }),
            None => PgScratch::Temporary {
                bindir: self.pg_bindir.clone(),
            },
        };
        DrillOptions {
            snapshots: Vec::new(),
            filter: self.filter(),
            window_seconds: self.window.map(|w| w.0.as_secs()),
            scratch: self.scratch.clone(),
            postgres,
            redis_server: self.redis_server.clone(),
            check_command: self.check_command.clone(),
        }
    }
}

/// `type = "copy"`: what `cairn copy` takes, from a repository of this
/// file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CopySource {
    /// The repository to copy from: `default` (`[repository]`) or a name
    /// of `[repositories]`.
    pub from: String,
    /// Only the newest snapshot of each host and source.
    #[serde(default)]
    pub latest: bool,
    /// Only snapshots taken on these hosts.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Only snapshots with all of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only snapshots of these source kinds.
    #[serde(default)]
    pub source_kinds: Vec<String>,
    /// Only snapshots of these Kubernetes claims.
    #[serde(default)]
    pub claims: Vec<String>,
}

impl CopySource {
    /// The source snapshots it chooses.
    pub fn filter(&self) -> crate::filter::SnapshotFilter {
        filter(&self.hosts, &self.tags, &self.source_kinds, &self.claims)
    }
}

/// The snapshots a copy or drill job's `hosts`, `tags`, `source-kinds` and
/// `claims` choose.
fn filter(
    hosts: &[String],
    tags: &[String],
    kinds: &[String],
    claims: &[String],
) -> crate::filter::SnapshotFilter {
    crate::filter::SnapshotFilter {
        hosts: hosts.to_vec(),
        tags: tags.to_vec(),
        paths: Vec::new(),
        kinds: kinds.to_vec(),
        claims: claims.to_vec(),
    }
}

/// `type = "postgres"`. The connection keys are those of
/// [`crate::source::postgres::PgConn`], with the agent's own additions
/// (`passfile`); `deny_unknown_fields` rules out flattening that in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PgSource {
    /// Database name or connection string.
    #[serde(default)]
    pub dbname: Option<String>,
    /// Host or socket directory.
    #[serde(default)]
    pub host: Option<String>,
    /// Port.
    #[serde(default)]
    pub port: Option<u16>,
    /// User.
    #[serde(default)]
    pub username: Option<String>,
    /// A password file in libpq's format (`PGPASSFILE`).
    #[serde(default)]
    pub passfile: Option<PathBuf>,
    /// Also store `pg_dumpall --globals-only`.
    #[serde(default)]
    pub globals: bool,
    /// Plain SQL instead of the custom format.
    #[serde(default)]
    pub plain: bool,
    /// More pg_dump arguments.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Count every table's rows beside the dump, for drills (reads the
    /// tables once more).
    #[serde(default = "crate::util::yes")]
    pub row_counts: bool,
}

/// `type = "redis"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisSource {
    /// `redis://[user@]host:port` or `rediss://…`, without a password.
    pub url: String,
    /// A file holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) for `rediss://`.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

/// `type = "command"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CommandSource {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The file's name in the snapshot.
    #[serde(default)]
    pub name: Option<String>,
}

/// A duration written as `30s`, `5m`, `1h 30m` or ISO 8601 (`PT5M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = jiff::SignedDuration::from_str(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write for example \"30s\", \"5m\" or \"1h 30m\""
            ))
        })?;
        std::time::Duration::try_from(parsed)
            .map(Self)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is negative")))
    }
}

/// One mistake in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column (0 when the whole file is meant).
    pub line: usize,
    /// Column.
    pub column: usize,
    /// The key, as a dotted path (`jobs.orders.schedule`).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Why a file was refused.
#[derive(Debug)]
pub struct Invalid {
    /// The file.
    pub path: PathBuf,
    /// Every mistake found (parse errors stop at the first).
    pub problems: Vec<Problem>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} error{} in the agent configuration",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", self.path.display())?;
            if p.line > 0 {
                write!(f, ":{}:{}", p.line, p.column)?;
            }
            write!(f, ": ")?;
            if !p.key.is_empty() {
                write!(f, "{}: ", p.key)?;
            }
            write!(f, "{}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// A file read and checked.
#[derive(Debug)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its settings.
    pub file: AgentFile,
}

impl Config {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`Invalid`] naming every mistake, or the file cannot be read.
    pub fn load(path: &Path) -> Result<Self, Invalid> {
        let invalid = |problems| Invalid {
            path: path.to_owned(),
            problems,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(vec![Problem {
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read it: {e}"),
            }])
        })?;
        let file = parse(&text).map_err(invalid)?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// The host name snapshots record: `[agent] host`, else `CAIRN_HOST`,
    /// else the system's.
    pub fn host(&self) -> String {
        self.file
            .agent
            .host
            .as_ref()
            .map_or_else(crate::util::host, |h| h.get_ref().clone())
    }

    /// The repositories it names, by name (`[repository]` as
    /// [`super::repos::DEFAULT`]).
    pub fn repositories(&self) -> BTreeMap<String, &RepoSettings> {
        let f = &self.file;
        let mut out: BTreeMap<String, &RepoSettings> = f
            .repositories
            .iter()
            .map(|(n, r)| (n.clone(), r.get_ref()))
            .collect();
        if let Some(r) = &f.repository {
            out.insert(super::repos::DEFAULT.to_owned(), r.get_ref());
        }
        out
    }

    /// The job names, in order.
    pub fn job_names(&self) -> impl Iterator<Item = &str> {
        self.file.jobs.keys().map(String::as_str)
    }
}

/// Parses and checks a file's text.
///
/// # Errors
/// Every mistake found, each with its line, column and key.
pub fn parse(text: &str) -> Result<AgentFile, Vec<Problem>> {
    let lines = Lines::new(text);
    let file: AgentFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |s| lines.at(s.start));
        vec![Problem {
            line,
            column,
            key: key_at(text, line),
            message: e.message().trim_end().to_owned(),
        }]
    })?;
    let mut check = Check {
        lines: &lines,
        problems: Vec::new(),
    };
    check.file(&file);
    if check.problems.is_empty() {
        Ok(file)
    } else {
        check.problems.sort_by_key(|p| (p.line, p.column));
        Err(check.problems)
    }
}

/// The dotted key a line of `text` sets (`jobs.orders.schedule`), or the
/// table its header opens, as far as a line shows it: for the messages of
/// errors the TOML reader finds, which name a key only sometimes.
fn key_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| {
        let l = l.trim();
        l.strip_prefix("[[")
            .and_then(|r| r.split("]]").next())
            .or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))
            .map(|h| h.replace(['"', ' '], ""))
    };
    let Some(this) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
        return String::new();
    };
    if let Some(h) = header(this) {
        return h;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| header(l));
    let key = this
        .split_once('=')
        .map(|(k, _)| k.trim().replace(['"', ' '], ""));
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (None, Some(k)) => k,
        (Some(t), None) => t,
        (None, None) => String::new(),
    }
}

mod validate;

pub use validate::cron;
use validate::{Check, Lines};

#[cfg(test)]
mod tests;
