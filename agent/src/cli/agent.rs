//! `cairn agent`: the node-side daemon (`--config FILE`), one job run once
//! (`--run JOB`, for a Kubernetes CronJob), and `check-config`.

use crate::cancel::Cancel;
use crate::cli::{usage, Status};
use crate::daemon::config::{repository_name, Config, JobSource};
use crate::daemon::job::{self, Outcome};
use crate::daemon::{repos, service};
use crate::util::human_bytes;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// `cairn agent …`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The configuration file (TOML; docs/agent.md).
    #[arg(long, short = 'c', env = "CAIRN_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Run this job once (hooks, backup, retention) and exit with the
    /// backup's status (0, 1, or 3 for a partial snapshot), instead of
    /// running the daemon.
    #[arg(long, value_name = "JOB")]
    run: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check an agent configuration file: every mistake is named with its
    /// line and key; exit 1 if there is one.
    CheckConfig {
        /// The file (TOML; docs/agent.md).
        #[arg(long, short = 'c', env = "CAIRN_AGENT_CONFIG")]
        config: PathBuf,
    },
}

impl Args {
    /// Whether this runs the daemon (which handles its own signals).
    pub fn is_daemon(&self) -> bool {
        self.command.is_none() && self.run.is_none()
    }
}

pub async fn run(args: Args, cancel: Cancel) -> Result<Status> {
    if let Some(Command::CheckConfig { config }) = args.command {
        let loaded = Config::load(&config)?;
        let jobs: Vec<&str> = loaded.job_names().collect();
        println!(
            "{}: valid; {} job(s){}{}",
            config.display(),
            jobs.len(),
            if jobs.is_empty() { "" } else { ": " },
            jobs.join(", ")
        );
        return Ok(Status::Success);
    }
    let Some(path) = args.config else {
        usage!("no configuration file: pass --config FILE or set CAIRN_AGENT_CONFIG");
    };
    match args.run {
        None => {
            service::serve(&path).await?;
            Ok(Status::Success)
        }
        Some(name) => run_once(&path, &name, &cancel).await,
    }
}

/// `--run JOB`: the job once, with its retries; stopped by a signal.
async fn run_once(path: &std::path::Path, name: &str, cancel: &Cancel) -> Result<Status> {
    let config = Config::load(path)?;
    let Some(job) = config.file.jobs.get(name).map(toml::Spanned::get_ref) else {
        let known: Vec<&str> = config.job_names().collect();
        usage!(
            "{}: no job {name:?}; the jobs are: {}",
            path.display(),
            if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.join(", ")
            }
        );
    };
    let repo_name = repository_name(job.repository.as_ref());
    let repositories = config.repositories();
    let settings = repositories
        .get(&repo_name)
        .copied()
        .context("the job's repository is not configured")?;
    let repo = repos::open(
        &repo_name,
        settings,
        config.file.agent.catalog.as_deref(),
        cancel,
    )
    .await
    .with_context(|| format!("opening repository {repo_name} ({})", settings.url))?;
    let from = match job.source.get_ref() {
        JobSource::Copy(c) => {
            let settings = repositories
                .get(&c.from)
                .copied()
                .context("the copy job's source repository is not configured")?;
            Some(
                repos::open(
                    &c.from,
                    settings,
                    config.file.agent.catalog.as_deref(),
                    cancel,
                )
                .await
                .with_context(|| format!("opening repository {} ({})", c.from, settings.url))?,
            )
        }
        _ => None,
    };
    let report = job::run(&repo, from.as_ref(), name, job, &config.host(), cancel).await;
    for c in &report.copied {
        println!(
            "job {name}: copied snapshot {} of {} as {}: {} read, {} new, {} stored, {:.1} s",
            c.from.short(),
            crate::source::describe(&c.snapshot.source),
            c.to.short(),
            human_bytes(c.read_bytes),
            human_bytes(c.new_bytes),
            human_bytes(c.stored_bytes),
            c.seconds
        );
    }
    for b in &report.backups {
        let s = &b.snapshot.summary;
        println!(
            "job {name}: snapshot {} of {} saved: {} read, {} new, {} stored, {:.1} s",
            b.id.short(),
            crate::source::describe(&b.snapshot.source),
            human_bytes(s.bytes_read),
            human_bytes(s.new_bytes),
            human_bytes(s.stored_bytes),
            b.seconds
        );
    }
    for why in &report.skipped {
        eprintln!("job {name}: not backed up: {why}");
    }
    for d in &report.drills {
        println!(
            "job {name}: drill of snapshot {} of {}: {}, restored in {:.1} s{}",
            d.id.short(),
            crate::source::describe(&d.snapshot.source),
            if d.passed { "passed" } else { "FAILED" },
            d.rto_seconds,
            if d.problems.is_empty() {
                String::new()
            } else {
                format!(": {}", d.problems.join("; "))
            }
        );
    }
    if let Some((kept, forgotten)) = report.retention {
        println!("job {name}: retention kept {kept} snapshot(s), forgot {forgotten}");
    }
    match report.outcome {
        Outcome::Success => Ok(Status::Success),
        Outcome::Partial => Ok(Status::Partial),
        Outcome::Failure => {
            // Stopped by a signal: the conventional status.
            if let Some(reason) = cancel.reason() {
                return Err(cairn_agent::Error::Cancelled(reason).into());
            }
            anyhow::bail!(
                "job {name} failed after {} attempt(s): {}",
                report.attempts,
                report.error.as_deref().unwrap_or("unknown error")
            )
        }
    }
}
