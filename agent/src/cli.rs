//! Command-line interface: argument definitions and dispatch. One file per
//! subcommand.

use crate::backend;
use crate::catalog::{self, Catalog};
use crate::interrupt::Interrupt;
use crate::repo::Repository;
use crate::util;
use anyhow::{bail, Context, Result};
use cairn_repo_format::Passphrase;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

mod backup;
mod catalog_cmd;
mod diff;
mod find;
mod init;
mod key;
mod ls;
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

/// Streaming, deduplicating, encrypted backups of databases, file trees and command output.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
pub struct Cli {
    /// Repository: a local directory, or s3:BUCKET/PREFIX (also s3://BUCKET/PREFIX).
    #[arg(long, short = 'r', env = "CAIRN_REPOSITORY", global = true)]
    repo: Option<String>,

    /// Endpoint of an S3-compatible store, e.g. http://127.0.0.1:8333 (path-style addressing is used with it).
    #[arg(long, env = "AWS_ENDPOINT_URL_S3", global = true)]
    s3_endpoint: Option<String>,

    /// S3 region (default: from the AWS configuration, else us-east-1).
    #[arg(long, env = "AWS_REGION", global = true)]
    s3_region: Option<String>,

    /// Use virtual-hosted addressing (bucket.host) with --s3-endpoint.
    #[arg(long, global = true)]
    s3_virtual_hosted: bool,

    /// Objects at least this many MiB are uploaded to S3 in parts.
    #[arg(long, global = true, default_value_t = crate::backend::s3::DEFAULT_MULTIPART_THRESHOLD >> 20)]
    s3_multipart_threshold_mib: usize,

    /// Seconds without a byte from S3 before a request is abandoned and
    /// tried again (a stalled connection).
    #[arg(long, env = "CAIRN_S3_READ_TIMEOUT", global = true, default_value_t = crate::backend::s3::DEFAULT_READ_TIMEOUT.as_secs())]
    s3_read_timeout: u64,

    /// Retries per storage operation after throttling, 5xx, timeouts,
    /// connections cut or reset.
    #[arg(long, env = "CAIRN_RETRIES", global = true, default_value_t = crate::backend::retry::DEFAULT_RETRIES)]
    retries: u32,

    /// The local catalog (a cache of the repository) to use, instead of
    /// one per repository in ~/.cache/cairn.
    #[arg(long, env = "CAIRN_CATALOG", global = true)]
    catalog: Option<PathBuf>,

    /// Log every request to the repository's storage on standard error.
    #[arg(long, env = "CAIRN_LOG_REQUESTS", global = true)]
    log_requests: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository.
    Init(init::Args),
    /// Manage the passphrases (key files) that open the repository.
    Key {
        #[command(subcommand)]
        command: key::Command,
    },
    /// Back up standard input, a command's output, or file trees.
    Backup(backup::Args),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// List the files of a snapshot.
    Ls(ls::Args),
    /// Restore a snapshot to a directory or to standard output.
    Restore(restore::Args),
    /// Find files by name (or path) across snapshots, from the catalog.
    Find(find::Args),
    /// Show what changed between two snapshots, from the catalog.
    Diff(diff::Args),
    /// Manage the local catalog.
    Catalog {
        #[command(subcommand)]
        command: catalog_cmd::Command,
    },
}

/// Runs the parsed command; a signal stops it (see [`Interrupt`]).
pub async fn run(cli: Cli, interrupt: Interrupt) -> Result<Status> {
    let repo = cli.repo.filter(|r| !r.is_empty());
    let Some(address) = repo else {
        usage!("no repository given: pass --repo PATH or set CAIRN_REPOSITORY");
    };
    let opts = backend::Options {
        s3: backend::s3::S3Options {
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
    let backend = backend::open(&address, &opts).await?;
    let cat = cli.catalog.as_deref();
    let stop = &interrupt;
    match cli.command {
        Command::Init(args) => stop.or_stop(init::run(backend, args)).await,
        Command::Key { command } => {
            stop.or_stop(async { key::run(open(backend).await?, command).await })
                .await
        }
        Command::Catalog { command } => {
            stop.or_stop(async {
                let repo = open(backend).await?;
                let cat = open_catalog(&repo, cat)?;
                catalog_cmd::run(repo, cat, command).await
            })
            .await
        }
        command => {
            let (repo, cat) = stop
                .or_stop(async {
                    let repo = open(backend).await?;
                    let cat = open_catalog(&repo, cat)?;
                    crate::sync::sync(&cat, &repo).await?;
                    Ok((repo, cat))
                })
                .await?;
            if let Command::Backup(args) = command {
                // A backup stops itself, so that it can remove its lease.
                return backup::run(repo, cat, args, interrupt).await;
            }
            stop.or_stop(async move {
                match command {
                    Command::Snapshots(args) => util::stdout_closed(snapshots::run(&cat, args)),
                    Command::Ls(args) => util::stdout_closed(ls::run(&cat, args)),
                    Command::Find(args) => util::stdout_closed(find::run(&cat, args)),
                    Command::Diff(args) => util::stdout_closed(diff::run(&cat, args)),
                    Command::Restore(args) => restore::run(repo, cat, args).await,
                    Command::Backup(_)
                    | Command::Init(_)
                    | Command::Key { .. }
                    | Command::Catalog { .. } => {
                        unreachable!("handled above")
                    }
                }
            })
            .await
        }
    }
}

/// Opens the repository's catalog (it is synced by the caller).
fn open_catalog(repo: &Repository, path: Option<&std::path::Path>) -> Result<Arc<Catalog>> {
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

async fn open(backend: backend::DynBackend) -> Result<Repository> {
    let pass = passphrase(
        "CAIRN_PASSWORD",
        "CAIRN_PASSWORD_FILE",
        "Repository passphrase: ",
        false,
    )?;
    Repository::open(backend, &pass).await
}

/// Reads a passphrase from `$file_var` (a file; one trailing newline is
/// dropped), `$var`, or the terminal (asking twice when `confirm`).
pub fn passphrase(var: &str, file_var: &str, prompt: &str, confirm: bool) -> Result<Passphrase> {
    let bytes = if let Some(path) = std::env::var_os(file_var) {
        let mut b = std::fs::read(&path).with_context(|| {
            format!(
                "reading the passphrase file {} (from {file_var})",
                path.to_string_lossy()
            )
        })?;
        if b.last() == Some(&b'\n') {
            b.pop();
            if b.last() == Some(&b'\r') {
                b.pop();
            }
        }
        b
    } else if let Some(p) = std::env::var_os(var) {
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
