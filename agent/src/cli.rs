//! Command-line interface: argument definitions and dispatch. One file per
//! subcommand.

use crate::backend;
use crate::cancel::Cancel;
use crate::catalog::Catalog;
use crate::filter::SnapshotFilter;
use crate::ops::{self, Trees};
use crate::repo::Repository;
use anyhow::{bail, Context, Result};
use cairn_repo_format::Passphrase;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

mod agent;
mod audit;
mod backup;
mod catalog_cmd;
mod check;
mod copy;
mod diff;
mod drill;
mod filter;
mod find;
mod forget;
mod init;
pub mod json;
mod key;
mod ls;
mod prune;
mod restore;
mod snapshots;

/// The command line asks for something impossible (arguments that do not
/// go together, a missing one): `main` exits with status 2, as for the
/// errors clap finds itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Returns early with a [`UsageError`].
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::cli::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage;

/// How a successful command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything worked.
    Success,
    /// A backup stored what it could read; some entries failed.
    Partial,
}

/// `--version`: the release, the commit it was built from, and the
/// repository format it reads and writes.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (commit {}, repository format {})",
        env!("CARGO_PKG_VERSION"),
        env!("CAIRN_COMMIT"),
        cairn_repo_format::FORMAT_VERSION
    )
});

const ABOUT: &str =
    "Cairn: encrypted, deduplicated backups of PostgreSQL, Redis, file trees and any \
command's output, to S3 or a local directory";

const LONG_ABOUT: &str =
    "Cairn backs up PostgreSQL databases (pg_dump), Redis (its RDB snapshot), \
file trees and any command's standard output. Data is cut into content-defined chunks, \
deduplicated, compressed with zstd and encrypted with AES-256-GCM before it leaves the machine, \
into a repository on S3 (or an S3-compatible store) or in a local directory. Many machines can \
back up into one repository at once, and `forget`/`prune` remove old snapshots while they do. \
`cairn agent` runs backups on schedules with metrics for Prometheus.";

const AFTER_HELP: &str = "\
Environment:
  CAIRN_REPOSITORY      the repository (as --repo)
  CAIRN_PASSWORD_FILE   a file holding the passphrase (a trailing newline is ignored)
  CAIRN_PASSWORD        the passphrase itself (prefer the file); without either, cairn asks on the terminal
  CAIRN_NEW_PASSWORD_FILE, CAIRN_NEW_PASSWORD   the new passphrase for `key add`
  CAIRN_FROM_PASSWORD_FILE, CAIRN_FROM_PASSWORD the source's passphrase for `copy` and
                        `init --copy-chunker-params-from`
  CAIRN_CATALOG         the local catalog (as --catalog)
  CAIRN_HOST            the host name recorded by backups (as backup --host)
  AWS_*                 S3 credentials, region and endpoint, as the AWS CLI reads them
  RUST_LOG              log filter (e.g. cairn_agent=debug)

Exit status: 0 success, 1 failure (nothing committed), 2 usage error, 3 partial backup,
128+N stopped by signal N.

Examples:
  cairn init
  cairn backup /srv/data --exclude '*.tmp'
  cairn backup pg --dbname app --globals
  cairn snapshots --host web-1
  cairn restore latest --target /tmp/restore
  cairn forget --keep-daily 7 --keep-monthly 12 --prune

Documentation: README.md and docs/ (operations.md, agent.md, json.md, format.md).";

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version = VERSION.as_str(),
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Repository: a local directory, or s3:BUCKET/PREFIX (also s3://BUCKET/PREFIX).
    #[arg(
        long,
        short = 'r',
        env = "CAIRN_REPOSITORY",
        global = true,
        help_heading = "Repository"
    )]
    repo: Option<String>,

    /// Endpoint of an S3-compatible store, e.g. http://127.0.0.1:8333 (path-style addressing is used with it).
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL_S3",
        global = true,
        help_heading = "Repository"
    )]
    s3_endpoint: Option<String>,

    /// S3 region (default: from the AWS configuration, else us-east-1).
    #[arg(long, env = "AWS_REGION", global = true, help_heading = "Repository")]
    s3_region: Option<String>,

    /// Use virtual-hosted addressing (bucket.host) with --s3-endpoint.
    #[arg(long, global = true, help_heading = "Repository")]
    s3_virtual_hosted: bool,

    /// Objects at least this many MiB are uploaded to S3 in parts.
    #[arg(long, global = true, default_value_t = crate::backend::DEFAULT_MULTIPART_THRESHOLD >> 20, help_heading = "Repository")]
    s3_multipart_threshold_mib: usize,

    /// Seconds without a byte from S3 before a request is abandoned and
    /// tried again (a stalled connection).
    #[arg(long, env = "CAIRN_S3_READ_TIMEOUT", global = true, default_value_t = crate::backend::DEFAULT_READ_TIMEOUT.as_secs(), help_heading = "Repository")]
    s3_read_timeout: u64,

    /// Retries per storage operation after throttling, 5xx, timeouts,
    /// connections cut or reset.
    #[arg(long, env = "CAIRN_RETRIES", global = true, default_value_t = crate::backend::DEFAULT_RETRIES, help_heading = "Repository")]
    retries: u32,

    /// The local catalog (a cache of the repository) to use, instead of
    /// one per repository in ~/.cache/cairn.
    #[arg(
        long,
        env = "CAIRN_CATALOG",
        global = true,
        help_heading = "Repository"
    )]
    catalog: Option<PathBuf>,

    /// Log every request to the repository's storage on standard error.
    #[arg(
        long,
        env = "CAIRN_LOG_REQUESTS",
        global = true,
        help_heading = "Repository"
    )]
    log_requests: bool,

    /// More detail on standard error (-v debug, -vv trace). RUST_LOG, if
    /// set, chooses instead (e.g. RUST_LOG=cairn_agent=debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, help_heading = "Output")]
    verbose: u8,

    /// Only warnings and errors on standard error.
    #[arg(
        long,
        short = 'q',
        global = true,
        conflicts_with = "verbose",
        help_heading = "Output"
    )]
    quiet: bool,

    /// Print results (and errors) as JSON on standard output, as
    /// docs/json.md specifies.
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,

    /// Without a terminal, log the progress of a backup or restore this
    /// often, in seconds (0: never); on a terminal a bar shows it.
    #[arg(
        long,
        env = "CAIRN_PROGRESS_INTERVAL",
        global = true,
        default_value_t = 30,
        value_name = "SECONDS",
        help_heading = "Output"
    )]
    progress_interval: u64,

    /// How log lines look: human, or json (one object per line, for log
    /// collectors). Default: human, except for the agent daemon when
    /// standard error is not a terminal (json).
    #[arg(
        long,
        env = "CAIRN_LOG_FORMAT",
        global = true,
        value_enum,
        help_heading = "Output"
    )]
    log_format: Option<LogFormat>,

    /// Write no audit records (format §7.3): for credentials that may
    /// only read, so that a restore or drill does not try to.
    #[arg(long, global = true, env = "CAIRN_NO_AUDIT", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    no_audit: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository.
    #[command(
        after_help = "Examples:\n  cairn init --repo /srv/backups/repo\n  CAIRN_REPOSITORY=s3:my-bucket/cluster-a cairn init"
    )]
    Init(init::Args),
    /// Manage the passphrases (key files) that open the repository.
    #[command(
        after_help = "Examples:\n  CAIRN_NEW_PASSWORD_FILE=/etc/cairn/pass2 cairn key add\n  cairn key list --json\n  cairn key remove 5e6f7a8b"
    )]
    Key {
        #[command(subcommand)]
        command: key::Command,
    },
    /// Back up standard input, a command's output, or file trees.
    #[command(
        after_help = "Examples:\n  cairn backup /srv/data --exclude '*.tmp' --exclude-caches\n  cairn backup --host \"$NODE_NAME\" --tag nightly /var/lib/app\n  cairn backup pg --dbname app --globals\n  cairn backup redis --url redis://10.0.0.5:6379\n  cairn backup --name secrets.yaml --command -- kubectl get secrets -o yaml\n  pg_dumpall | cairn backup --stdin --name all.sql --expect-min-bytes 1000"
    )]
    Backup(backup::Args),
    /// List snapshots.
    #[command(
        after_help = "Examples:\n  cairn snapshots\n  cairn snapshots --host web-1 --tag nightly --source-kind files --json"
    )]
    Snapshots(snapshots::Args),
    /// List the files of a snapshot.
    #[command(after_help = "Examples:\n  cairn ls latest /srv/data\n  cairn ls 1a2b3c4d --json")]
    Ls(ls::Args),
    /// Restore a snapshot to a directory or to standard output.
    #[command(
        after_help = "Examples:\n  cairn restore latest --target /tmp/restore --include /srv/data/config\n  cairn restore latest --stdout --source-kind stdin > dump.sql\n  cairn restore latest --pg --dbname app --clean --jobs 4\n  cairn restore latest --redis-rdb /var/lib/redis/dump.rdb"
    )]
    Restore(restore::Args),
    /// Find files by name (or path) across snapshots, from the catalog.
    #[command(
        after_help = "Examples:\n  cairn find '*.conf'\n  cairn find -i '/srv/**/readme*' --host web-1"
    )]
    Find(find::Args),
    /// Show what changed between two snapshots, from the catalog.
    #[command(after_help = "Examples:\n  cairn diff 1a2b3c4d latest")]
    Diff(diff::Args),
    /// Forget snapshots by retention rules (--keep-daily 7, …) or by id;
    /// `prune` then frees the data no other snapshot uses.
    #[command(
        after_help = "Examples:\n  cairn forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run\n  cairn forget --keep-within 90d --host web-1 --prune\n  cairn forget 1a2b3c4d"
    )]
    Forget(forget::Args),
    /// Delete the data no snapshot uses any more (safe while backups run).
    #[command(after_help = "Examples:\n  cairn prune --dry-run\n  cairn prune")]
    Prune(prune::Args),
    /// Copy snapshots from another repository (--from-repo) into this
    /// one, re-encrypted, deduplicated and verified; a rerun copies only
    /// what is missing.
    #[command(
        after_help = "Examples:\n  cairn copy --repo s3:dr-bucket/cluster-a --from-repo s3:main-bucket/cluster-a\n  cairn copy --repo /mnt/offsite --from-repo s3:main/a --latest --host web-1\n  cairn init --repo s3:dr-bucket/a --copy-chunker-params-from s3:main-bucket/a\n\nThe source's passphrase comes from CAIRN_FROM_PASSWORD_FILE or CAIRN_FROM_PASSWORD."
    )]
    Copy(copy::Args),
    /// Restore snapshots into scratch targets (a temporary PostgreSQL or
    /// Redis server, a scratch directory) and prove they hold what was
    /// backed up: row counts, keys, every file's content and metadata;
    /// with the recovery time (RTO) and point (RPO) of each.
    #[command(
        after_help = "Examples:\n  cairn drill\n  cairn drill --source-kind postgres --window 14d\n  cairn drill latest --host db-1 --pg-host db-scratch.internal --pg-user drill\n\nExit status: 0 when every drill passed, 1 when one failed."
    )]
    Drill(drill::Args),
    /// The audit trail: every backup, forget, prune, key change, copy,
    /// restore and drill, with when, where and by whom, from the
    /// repository alone.
    #[command(
        after_help = "Examples:\n  cairn audit\n  cairn audit --event forget --event prune --json"
    )]
    Audit(audit::Args),
    /// Check that the repository is whole; with --read-data, read and
    /// verify every blob.
    #[command(after_help = "Examples:\n  cairn check\n  cairn check --read-data-subset next/7")]
    Check(check::Args),
    /// Manage the local catalog.
    #[command(after_help = "Examples:\n  cairn catalog info\n  cairn catalog rebuild")]
    Catalog {
        #[command(subcommand)]
        command: catalog_cmd::Command,
    },
    /// The node-side agent: scheduled jobs from one configuration file
    /// (`--config FILE`), one job once (`--run JOB`), `check-config`.
    #[command(
        after_help = "Examples:\n  cairn agent check-config --config /etc/cairn/agent.toml\n  cairn agent --config /etc/cairn/agent.toml\n  cairn agent --config /etc/cairn/agent.toml --run orders"
    )]
    Agent(agent::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell).
    #[command(
        after_help = "Examples:\n  cairn completion bash > /etc/bash_completion.d/cairn\n  cairn completion zsh > \"${fpath[1]}/_cairn\"\n  cairn completion fish > ~/.config/fish/completions/cairn.fish"
    )]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (cairn.1 and one per command) into a
    /// directory, or cairn.1 to standard output.
    #[command(
        after_help = "Example:\n  cairn man --dir /usr/local/share/man/man1 && man cairn-backup"
    )]
    Man {
        /// Where to write the pages.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Connection options shared by every PostgreSQL client.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PgConnArgs {
    /// Database name or connection URI/string (as for pg_dump --dbname).
    #[arg(long, short = 'd')]
    dbname: Option<String>,
    /// Server host or socket directory (-h as in every PostgreSQL client;
    /// --help shows this help).
    #[arg(long, short = 'h', short_alias = 'H')]
    host: Option<String>,
    /// Server port.
    #[arg(long, short = 'p')]
    port: Option<u16>,
    /// User name.
    #[arg(long, short = 'U')]
    username: Option<String>,
}

impl PgConnArgs {
    fn settings(&self) -> crate::source::postgres::PgConn {
        crate::source::postgres::PgConn {
            dbname: self.dbname.clone(),
            host: self.host.clone(),
            port: self.port,
            username: self.username.clone(),
        }
    }
}

/// Where log lines go and how they look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: `warning: …`.
    Human,
    /// One JSON object per line, with the fields of each event and its spans.
    Json,
}

/// Logging settings, read before anything else.
#[derive(Debug, Clone, Copy)]
pub struct Logging {
    /// -v (debug), -vv (trace); -q (warnings and errors only).
    pub verbosity: i8,
    /// The format.
    pub format: LogFormat,
}

impl Cli {
    /// How to log, from -v/-q and --log-format.
    pub fn logging(&self) -> Logging {
        let format = self.log_format.unwrap_or_else(|| {
            if self.is_daemon() && !std::io::stderr().is_terminal() {
                LogFormat::Json
            } else {
                LogFormat::Human
            }
        });
        Logging {
            verbosity: i8::try_from(self.verbose).unwrap_or(i8::MAX) - i8::from(self.quiet),
            format,
        }
    }

    /// Whether results and errors are printed as JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether this runs the agent daemon, which handles its own signals
    /// (SIGTERM: finish within the grace period; SIGHUP: reload).
    pub fn is_daemon(&self) -> bool {
        matches!(&self.command, Command::Agent(a) if a.is_daemon())
    }
}

/// What every command that opens the repository needs.
struct Ctx {
    place: ops::Place,
    /// How the repository's storage was reached (a second repository's
    /// default).
    storage: backend::Options,
    catalog: Option<PathBuf>,
    cancel: Cancel,
    /// `--json`.
    json: bool,
    /// Whether operations write audit records (not with `--no-audit`).
    audit: bool,
    /// How progress is shown.
    progress: crate::progress::Settings,
}

impl Ctx {
    async fn open(&self) -> Result<Repository> {
        let pass = passphrase(
            "CAIRN_PASSWORD",
            "CAIRN_PASSWORD_FILE",
            "Repository passphrase: ",
            false,
        )?;
        let mut repo = self
            .cancel
            .or_cancel(ops::open_repository(self.place.clone(), &pass))
            .await?;
        repo.set_audit(self.audit);
        Ok(repo)
    }

    async fn open_with_catalog(&self) -> Result<(Repository, Arc<Catalog>)> {
        let repo = self.open().await?;
        let cat = ops::open_catalog(&repo, self.catalog.as_deref())?;
        Ok((repo, cat))
    }

    /// The repository's catalog, synced with the trees `which` names.
    async fn synced(&self, which: Trees<'_>) -> Result<Arc<Catalog>> {
        let (repo, cat) = self.open_with_catalog().await?;
        ops::sync(&repo, &cat, which, &self.cancel).await?;
        Ok(cat)
    }
}

/// Runs the parsed command; `cancel` (fired by a signal) stops it.
pub async fn run(cli: Cli, cancel: Cancel) -> Result<Status> {
    // The agent names its repositories in its configuration file; the
    // help commands need none.
    let command = match cli.command {
        Command::Agent(args) => return agent::run(args, cancel).await,
        Command::Completion { shell } => {
            // Into a buffer first: the generator panics on a write error
            // (`| head` closing the pipe).
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "cairn", &mut script);
            stdout_closed(
                std::io::Write::write_all(&mut std::io::stdout(), &script)
                    .map_err(anyhow::Error::from),
            )?;
            return Ok(Status::Success);
        }
        Command::Man { dir } => return man(dir.as_deref()),
        other => other,
    };
    let repo = cli.repo.filter(|r| !r.is_empty());
    let Some(address) = repo else {
        usage!("no repository given: pass --repo PATH or set CAIRN_REPOSITORY");
    };
    let opts = backend::Options {
        s3: backend::S3Options {
            endpoint: cli.s3_endpoint.filter(|e| !e.is_empty()),
            region: cli.s3_region.filter(|r| !r.is_empty()),
            virtual_hosted: cli.s3_virtual_hosted,
            multipart_threshold: cli.s3_multipart_threshold_mib.saturating_mul(1 << 20),
            part_size: 0,
            read_timeout: std::time::Duration::from_secs(cli.s3_read_timeout.max(1)),
        },
        retries: cli.retries,
        log_requests: cli.log_requests,
    };
    let ctx = Ctx {
        place: ops::Place::connect(&address, &opts).await?,
        storage: opts,
        catalog: cli.catalog,
        cancel,
        json: cli.json,
        audit: !cli.no_audit,
        progress: crate::progress::Settings {
            quiet: cli.quiet,
            bar: true,
            every: Some(std::time::Duration::from_secs(cli.progress_interval)),
        },
    };
    match command {
        Command::Init(args) => init::run(&ctx, args).await,
        Command::Key { command } => {
            key::run(&ctx.open().await?, &ctx.cancel, command, ctx.json).await
        }
        Command::Catalog { command } => catalog_cmd::run(&ctx, command).await,
        Command::Agent(_) | Command::Completion { .. } | Command::Man { .. } => {
            unreachable!("dispatched before a repository is opened")
        }
        Command::Backup(args) => backup::run(&ctx, args).await,
        Command::Restore(args) => restore::run(&ctx, args).await,
        Command::Forget(args) => forget::run(&ctx, args).await,
        Command::Prune(args) => prune::run(&ctx, args).await,
        Command::Check(args) => check::run(&ctx, args).await,
        Command::Copy(args) => copy::run(&ctx, args).await,
        Command::Drill(args) => drill::run(&ctx, args).await,
        Command::Audit(args) => audit::run(&ctx, args).await,
        Command::Snapshots(args) => {
            let cat = ctx.synced(Trees::Of(&[])).await?;
            stdout_closed(snapshots::run(&cat, args, ctx.json))
        }
        Command::Ls(args) => {
            let filter = args.filter.filter();
            let cat = ctx
                .synced(Trees::Named(std::slice::from_ref(&args.snapshot), &filter))
                .await?;
            stdout_closed(ls::run(&cat, args, ctx.json))
        }
        Command::Find(args) => {
            let filter = args.filter.filter();
            let cat = ctx
                .synced(if args.snapshots.is_empty() {
                    Trees::All
                } else {
                    Trees::Named(&args.snapshots, &filter)
                })
                .await?;
            stdout_closed(find::run(&cat, args, ctx.json))
        }
        Command::Diff(args) => {
            let cat = ctx
                .synced(Trees::Named(
                    &[args.from.clone(), args.to.clone()],
                    &SnapshotFilter::default(),
                ))
                .await?;
            stdout_closed(diff::run(&cat, args, ctx.json))
        }
    }
}

/// A command failed after printing a report that says why (`check`
/// finding damage): with `--json`, no error document follows it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reported(pub String);

/// `cairn man`: every page into `dir`, or the top page to standard output.
fn man(dir: Option<&std::path::Path>) -> Result<Status> {
    let cmd = <Cli as clap::CommandFactory>::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing the manual pages into {}", dir.display()))?;
        }
        None => stdout_closed(
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(anyhow::Error::from),
        )?,
    }
    Ok(Status::Success)
}

/// Standard output was closed by its reader (`cairn ls | head`).
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed by its reader")]
pub struct StdoutClosed;

/// For a command whose only pipe is standard output: a broken pipe means
/// its reader stopped reading, so the error becomes [`StdoutClosed`], which
/// `main` turns into a quiet exit with status 141, as if killed by SIGPIPE
/// like `cat` (a pipeline with `pipefail` still sees that output was cut).
///
/// # Errors
/// `r`'s error, with a broken pipe replaced.
pub fn stdout_closed<T>(r: Result<T>) -> Result<T> {
    r.map_err(|e| {
        let broken = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                || c.downcast_ref::<cairn_agent::Error>()
                    .is_some_and(cairn_agent::Error::is_broken_pipe)
        });
        if broken {
            anyhow::Error::new(StdoutClosed)
        } else {
            e
        }
    })
}

/// Reads a passphrase from `$file_var` (a file; one trailing newline is
/// dropped), `$var`, or the terminal (asking twice when `confirm`).
pub fn passphrase(var: &str, file_var: &str, prompt: &str, confirm: bool) -> Result<Passphrase> {
    let bytes = if let Some(path) = crate::util::env_set(file_var) {
        crate::util::read_passphrase_file(std::path::Path::new(&path)).with_context(|| {
            format!(
                "reading the passphrase file {} (from {file_var})",
                path.to_string_lossy()
            )
        })?
    } else if let Some(p) = crate::util::env_set(var) {
        std::os::unix::ffi::OsStringExt::into_vec(p)
    } else {
        if !std::io::stderr().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
            bail!("no passphrase: set {file_var} (a file holding it) or {var}, or run in a terminal to be asked");
        }
        let first = rpassword::prompt_password(prompt)
            .context("reading the passphrase from the terminal")?;
        if confirm {
            let again = rpassword::prompt_password("Again, to confirm: ")
                .context("reading the passphrase from the terminal")?;
            if again != first {
                bail!("the two passphrases differ; nothing was changed");
            }
        }
        first.into_bytes()
    };
    let pass = Passphrase::new(bytes);
    if pass.is_empty() {
        bail!("the passphrase is empty; an empty passphrase is not allowed");
    }
    Ok(pass)
}
