//! One run of a job: its pre hooks, the backup, its retention, its post
//! hooks; tried again with backoff when it fails, each attempt within the
//! job's timeout, all of it stopped when the agent aborts.
//!
//! A job's snapshots carry the tag `job=NAME` and the agent's host name:
//! that is how its retention finds them (and only them), and how a fresh
//! agent learns from the repository when the job last succeeded.

use super::config::{CopySource, DrillSource, JobSettings, JobSource};
use super::hooks::{self, HookError};
use super::kubernetes;
use super::repos::Repo;
use crate::cancel::{Cancel, Reason};
use crate::error::{Action, Error};
use crate::filter::SnapshotFilter;
use crate::ops::drill::Drill;
use crate::ops::{self, BackupOptions, BackupReport, Copied, CopyOptions, ForgetOptions};
use crate::progress::{self, Progress, Work};
use crate::retention::GroupBy;
use crate::source::command::CommandSettings;
use crate::source::postgres::{PgConn, PgSettings};
use crate::source::redis::RedisSettings;
use crate::source::SourceSettings;
use crate::stats::Stats;
use crate::util;
use jiff::Timestamp;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a running backup logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// The tag on every snapshot of job `name`.
pub fn tag(name: &str) -> String {
    format!("job={name}")
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A snapshot of everything.
    Success,
    /// A snapshot of what could be read; some entries failed.
    Partial,
    /// No snapshot.
    Failure,
}

impl Outcome {
    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Failure => "failure",
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    /// How it ended.
    pub outcome: Outcome,
    /// The backups committed: one, or for a kubernetes job one per
    /// volume.
    pub backups: Vec<BackupReport>,
    /// The volumes of a kubernetes job that could not be backed up, each
    /// with why (the run is partial).
    pub skipped: Vec<String>,
    /// The snapshots a copy job copied.
    pub copied: Vec<Copied>,
    /// A drill job's drills.
    pub drills: Vec<Drill>,
    /// The job's snapshots kept and forgotten by its retention (when it
    /// has rules and they ran).
    pub retention: Option<(usize, usize)>,
    /// Why it failed (the last attempt's error).
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// Wall time of the whole run, retries included.
    pub seconds: f64,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Op(#[from] Error),
}

impl AttemptError {
    /// Whether another attempt could do better.
    fn retryable(&self) -> bool {
        match self {
            AttemptError::Hook(HookError::Cancelled { .. }) => false,
            AttemptError::Hook(_) => true,
            AttemptError::Op(e) => !matches!(
                e.action(),
                Action::FixInput | Action::FixAccess | Action::Repair | Action::GiveUp
            ),
        }
    }
}

/// The backup options of a job for `source`: its tags and this host.
fn backup_options(
    name: &str,
    job: &JobSettings,
    host: &str,
    source: SourceSettings,
) -> BackupOptions {
    let mut tags: Vec<String> = job.tags.iter().map(|t| t.get_ref().clone()).collect();
    tags.push(tag(name));
    BackupOptions {
        tags,
        host: Some(host.to_owned()),
        ..BackupOptions::new(source)
    }
}

/// The source of a job, its secrets read now (a rotated password file is
/// read at the next run); `None` for a kubernetes job, whose sources are
/// the volumes it finds, and for a copy job.
///
/// # Errors
/// [`Error::Input`] for a password file that cannot be read.
fn source_settings(name: &str, job: &JobSettings) -> Result<Option<SourceSettings>, Error> {
    Ok(Some(match job.source.get_ref() {
        JobSource::Postgres(pg) => SourceSettings::Postgres(PgSettings {
            conn: PgConn {
                dbname: pg.dbname.clone(),
                host: pg.host.clone(),
                port: pg.port,
                username: pg.username.clone(),
            },
            plain: pg.plain,
            globals: pg.globals,
            extra: pg.extra_args.clone(),
            passfile: pg.passfile.clone(),
            no_row_counts: !pg.row_counts,
        }),
        JobSource::Redis(r) => {
            let password = match &r.password_file {
                Some(f) => {
                    let bytes = util::read_passphrase_file(f).map_err(|e| {
                        Error::Input(format!(
                            "job {name}: cannot read the Redis password file {}: {e}",
                            f.display()
                        ))
                    })?;
                    Some(String::from_utf8(bytes).map_err(|_| {
                        Error::Input(format!(
                            "job {name}: the Redis password file {} is not UTF-8",
                            f.display()
                        ))
                    })?)
                }
                None => None,
            };
            SourceSettings::Redis(RedisSettings {
                url: r.url.clone(),
                password,
                tls_ca_file: r.tls_ca_file.clone(),
            })
        }
        JobSource::Files(f) => SourceSettings::Files(f.clone()),
        JobSource::Command(c) => SourceSettings::Command(CommandSettings {
            argv: c.command.clone(),
            name: c.name.clone(),
        }),
        JobSource::Kubernetes(_) | JobSource::Copy(_) | JobSource::Drill(_) => return Ok(None),
    }))
}

/// When job `name` last succeeded on `host`, from the catalog (the end of
/// its newest snapshot that is not partial).
///
/// # Errors
/// If the catalog cannot be read.
pub fn last_success(repo: &Repo, name: &str, host: &str) -> Result<Option<Timestamp>, Error> {
    let tag = tag(name);
    Ok(repo
        .cat
        .snapshots()?
        .iter()
        .filter(|(_, s)| s.hostname == host && !s.partial && s.tags.contains(&tag))
        .map(|(_, s)| s.finished_ns)
        .max()
        .and_then(|ns| Timestamp::from_nanosecond(i128::from(ns)).ok()))
}

/// Runs job `name` once, with its retries. `abort` stops it at once (its
/// commands are killed, nothing is committed). `from` is a copy job's
/// source repository.
pub async fn run(
    repo: &Repo,
    from: Option<&Repo>,
    name: &str,
    job: &JobSettings,
    host: &str,
    abort: &Cancel,
) -> RunReport {
    let started = Instant::now();
    let run_id = format!("{:08x}", rand::random::<u32>());
    let span = tracing::info_span!("job", job = name, run = %run_id);
    let mut attempts = 0;
    let mut backoff = job.retry_backoff.map_or(Duration::from_secs(60), |d| d.0);
    loop {
        attempts += 1;
        let result = {
            let cancel = Cancel::new();
            let work = attempt(repo, from, name, job, host, &run_id, &cancel);
            tracing::Instrument::instrument(
                limited(work, &cancel, abort, job.timeout.map(|t| t.0)),
                span.clone(),
            )
            .await
        };
        match result {
            Ok(done) => {
                // A failed drill is a finding, not a reason to try again.
                let failed_drill = done.drills.iter().find(|d| !d.passed).map(|d| {
                    format!(
                        "the drill of snapshot {} ({}) failed: {}",
                        d.id.short(),
                        crate::source::describe(&d.snapshot.source),
                        d.problems.join("; ")
                    )
                });
                let outcome = match (&done.post_error, &failed_drill, done.partial()) {
                    (Some(_), _, _) | (_, Some(_), _) => Outcome::Failure,
                    (None, None, true) => Outcome::Partial,
                    (None, None, false) => Outcome::Success,
                };
                let error = match (done.post_error, failed_drill) {
                    (Some(e), _) => Some(format!(
                        "the snapshot was saved, but a post hook failed: {e}"
                    )),
                    (None, drill) => drill,
                };
                return RunReport {
                    outcome,
                    error,
                    backups: done.backups,
                    skipped: done.skipped,
                    copied: done.copied,
                    drills: done.drills,
                    retention: done.retention,
                    attempts,
                    seconds: started.elapsed().as_secs_f64(),
                };
            }
            Err(e) => {
                let last = attempts > job.retries || !e.retryable() || abort.reason().is_some();
                if last {
                    // The run's error: its caller reports it.
                    return RunReport {
                        outcome: Outcome::Failure,
                        backups: Vec::new(),
                        skipped: Vec::new(),
                        copied: Vec::new(),
                        drills: Vec::new(),
                        retention: None,
                        error: Some(e.to_string()),
                        attempts,
                        seconds: started.elapsed().as_secs_f64(),
                    };
                }
                span.in_scope(|| {
                    tracing::warn!(
                        attempt = attempts,
                        "job {name}: attempt {attempts} failed: {e}; trying again in {}s",
                        backoff.as_secs()
                    );
                });
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = abort.cancelled() => {}
                }
                backoff = backoff.saturating_mul(2);
            }
        }
    }
}

/// Runs `work` (which watches `cancel`) until it ends, firing `cancel`
/// when `abort` fires or `timeout` passes; `work` then stops cleanly (its
/// lease removed, its commands killed) and ends with the cancellation.
async fn limited<T>(
    work: impl std::future::Future<Output = T>,
    cancel: &Cancel,
    abort: &Cancel,
    timeout: Option<Duration>,
) -> T {
    tokio::pin!(work);
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut fired = false;
    loop {
        tokio::select! {
            out = &mut work => return out,
            reason = abort.cancelled(), if !fired => {
                cancel.cancel(reason);
                fired = true;
            }
            () = &mut deadline, if !fired => {
                cancel.cancel(Reason::Requested("the job's timeout"));
                fired = true;
            }
        }
    }
}

/// An attempt that committed a snapshot (for a kubernetes job, at least
/// one, or none when the node has no volume to back up).
struct Attempted {
    backups: Vec<BackupReport>,
    /// Volumes of a kubernetes job not backed up, with why.
    skipped: Vec<String>,
    /// What a copy job copied.
    copied: Vec<Copied>,
    /// What a drill job found.
    drills: Vec<Drill>,
    retention: Option<(usize, usize)>,
    /// A post hook that failed with `on-failure = "fail"`: the run fails,
    /// but is not tried again (its snapshot stands).
    post_error: Option<HookError>,
}

impl Attempted {
    /// Whether something was not backed up: a volume, or entries of a
    /// snapshot.
    fn partial(&self) -> bool {
        !self.skipped.is_empty() || self.backups.iter().any(|b| b.snapshot.partial)
    }
}

/// One attempt: pre hooks, backup, retention; the post hooks always run
/// once the pre hooks started, told how the attempt ended.
async fn attempt(
    repo: &Repo,
    from: Option<&Repo>,
    name: &str,
    job: &JobSettings,
    host: &str,
    run_id: &str,
    cancel: &Cancel,
) -> Result<Attempted, AttemptError> {
    let mut env: Vec<(String, OsString)> = vec![
        ("CAIRN_JOB".into(), name.into()),
        ("CAIRN_RUN_ID".into(), run_id.into()),
    ];
    let main = async {
        hooks::run_all(&job.pre, "pre", &env, cancel).await?;
        let (mut backups, mut skipped, mut copied, mut drills) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        match (job.source.get_ref(), source_settings(name, job)?) {
            (JobSource::Copy(c), _) => copied = copy(repo, from, name, c, job, cancel).await?,
            (JobSource::Drill(d), _) => drills = drill(repo, name, d, cancel).await?,
            (_, Some(source)) => {
                let opts = backup_options(name, job, host, source);
                backups.push(backup(repo, name, &opts, cancel).await?);
            }
            (_, None) => (backups, skipped) = volumes(repo, name, job, host, cancel).await?,
        }
        let retention = match &job.retention {
            None => None,
            Some(rules) => match retain(repo, name, job, rules.get_ref(), host, cancel).await {
                Ok(r) => Some(r),
                // The backup stands; the next run forgets what this one
                // could not.
                Err(e) => {
                    tracing::error!("job {name}: retention failed: {e}");
                    None
                }
            },
        };
        Ok::<_, AttemptError>(Attempted {
            backups,
            skipped,
            copied,
            drills,
            retention,
            post_error: None,
        })
    }
    .await;
    let (result, snapshots) = match &main {
        Ok(a) => {
            let ids: Vec<String> = a.backups.iter().map(|b| b.id.to_hex()).collect();
            (if a.partial() { "partial" } else { "success" }, ids)
        }
        Err(_) => ("failure", Vec::new()),
    };
    if job.post.is_empty() {
        return main;
    }
    env.push(("CAIRN_RESULT".into(), result.into()));
    if !snapshots.is_empty() {
        // One id, or a kubernetes job's ids separated by spaces.
        env.push(("CAIRN_SNAPSHOT".into(), snapshots.join(" ").into()));
    }
    // A stopped run still thaws what its pre hooks froze: the post hooks
    // are bounded by their own timeouts only.
    let post = hooks::run_all(&job.post, "post", &env, &Cancel::new()).await;
    match (main, post) {
        (Ok(a), Err(e)) => {
            tracing::error!("job {name}: {e}");
            Ok(Attempted {
                post_error: Some(e),
                ..a
            })
        }
        (main, _) => main,
    }
}

/// One backup of a job, logged.
async fn backup(
    repo: &Repo,
    name: &str,
    opts: &BackupOptions,
    cancel: &Cancel,
) -> Result<BackupReport, Error> {
    let stats = Arc::new(Stats::default());
    // A long run shows life in the log (the agent has no terminal).
    let progress = Progress::start(
        stats.clone(),
        Work::Backup,
        progress::Settings {
            quiet: false,
            bar: false,
            every: Some(PROGRESS_EVERY),
        },
    );
    let backup = ops::backup(&repo.repo, &repo.cat, opts, cancel, stats).await;
    drop(progress);
    let backup = backup?;
    repo.reached();
    let s = &backup.snapshot.summary;
    tracing::info!(
        snapshot = %backup.id.short(),
        bytes_read = s.bytes_read,
        new_bytes = s.new_bytes,
        stored_bytes = s.stored_bytes,
        seconds = backup.seconds,
        partial = backup.snapshot.partial,
        "job {name}: snapshot {} of {} saved: {} read, {} new, {} stored, {:.1} s",
        backup.id.short(),
        crate::source::describe(&backup.snapshot.source),
        util::human_bytes(s.bytes_read),
        util::human_bytes(s.new_bytes),
        util::human_bytes(s.stored_bytes),
        backup.seconds
    );
    Ok(backup)
}

/// A drill job's run: the newest snapshot of each host and source its
/// filters choose, drilled, each logged.
async fn drill(
    repo: &Repo,
    name: &str,
    source: &DrillSource,
    cancel: &Cancel,
) -> Result<Vec<Drill>, Error> {
    let report = ops::drill::drill(&repo.repo, &repo.cat, &source.options(), cancel).await?;
    repo.reached();
    for d in &report.drills {
        let what = crate::source::describe(&d.snapshot.source);
        if d.passed {
            tracing::info!(
                snapshot = %d.id.short(),
                rto_seconds = d.rto_seconds,
                "job {name}: the drill of snapshot {} of {what} passed: restored in {:.1} s",
                d.id.short(),
                d.rto_seconds
            );
        } else {
            tracing::error!(
                snapshot = %d.id.short(),
                "job {name}: the drill of snapshot {} of {what} failed: {}",
                d.id.short(),
                d.problems.join("; ")
            );
        }
    }
    Ok(report.drills)
}

/// A copy job's run: the snapshots of `from` its source chooses, copied
/// into `to` (those its retention would keep there, when it has rules).
async fn copy(
    to: &Repo,
    from: Option<&Repo>,
    name: &str,
    source: &CopySource,
    job: &JobSettings,
    cancel: &Cancel,
) -> Result<Vec<Copied>, Error> {
    let from = from.ok_or_else(|| {
        Error::Internal(format!(
            "job {name}: repository {} is not open",
            source.from
        ))
    })?;
    let opts = CopyOptions {
        filter: source.filter(),
        latest: source.latest,
        uploads: 2,
        keep: job.retention.as_ref().map(|r| r.get_ref().clone()),
        ..CopyOptions::default()
    };
    let report = ops::copy(&from.repo, &from.cat, &to.repo, &to.cat, &opts, cancel).await?;
    from.reached();
    to.reached();
    for c in &report.copied {
        tracing::info!(
            snapshot = %c.to.short(),
            from = %c.from.short(),
            read_bytes = c.read_bytes,
            new_bytes = c.new_bytes,
            stored_bytes = c.stored_bytes,
            "job {name}: copied snapshot {} of {} from {} as {}: {} read, {} new, {} stored, {:.1} s",
            c.from.short(),
            crate::source::describe(&c.snapshot.source),
            from.name,
            c.to.short(),
            util::human_bytes(c.read_bytes),
            util::human_bytes(c.new_bytes),
            util::human_bytes(c.stored_bytes),
            c.seconds
        );
    }
    Ok(report.copied)
}

/// A kubernetes job's backups: each chosen volume on this node, one
/// snapshot each. A volume that cannot be found or read is skipped (the
/// run is partial); the attempt fails if the API cannot be asked, or if
/// every volume failed.
async fn volumes(
    repo: &Repo,
    name: &str,
    job: &JobSettings,
    host: &str,
    cancel: &Cancel,
) -> Result<(Vec<BackupReport>, Vec<String>), Error> {
    let JobSource::Kubernetes(k) = job.source.get_ref() else {
        return Err(Error::Internal("not a kubernetes job".into()));
    };
    let node = k.node_name.as_deref().unwrap_or(host);
    let found = cancel
        .or_cancel(async { Ok::<_, Error>(kubernetes::discover(k, node).await?) })
        .await?;
    if found.is_empty() {
        tracing::info!("job {name}: no pod on node {node} has a volume to back up");
    }
    let (mut backups, mut skipped) = (Vec::new(), Vec::new());
    for f in &found {
        let what = f.describe();
        let Some(settings) = f.settings(&k.select) else {
            let why = f.dir.as_ref().err().cloned().unwrap_or_default();
            tracing::warn!("job {name}: {what}: not backed up: {why}");
            skipped.push(format!("{what}: {why}"));
            continue;
        };
        let opts = backup_options(name, job, host, SourceSettings::Pvc(settings));
        match backup(repo, name, &opts, cancel).await {
            Ok(b) => backups.push(b),
            Err(e) if e.cancelled().is_some() => return Err(e),
            Err(e) => {
                tracing::warn!("job {name}: {what}: not backed up: {e}");
                skipped.push(format!("{what}: {e}"));
            }
        }
    }
    if backups.is_empty() && !skipped.is_empty() {
        return Err(crate::source::SourceError::Kubernetes {
            detail: format!(
                "no volume on node {node} could be backed up: {}",
                skipped.join("; ")
            ),
        }
        .into());
    }
    Ok((backups, skipped))
}

/// Applies the job's retention rules to its own snapshots from this host;
/// a kubernetes job's, to each claim's snapshots from any host (a pod
/// moves between nodes); a copy job's, to the snapshots its source
/// chooses, by host and source.
async fn retain(
    repo: &Repo,
    name: &str,
    job: &JobSettings,
    rules: &crate::retention::Rules,
    host: &str,
    cancel: &Cancel,
) -> Result<(usize, usize), Error> {
    let (filter, by_source) = match job.source.get_ref() {
        // What it copies, from every host, whatever its tags.
        JobSource::Copy(c) => (c.filter(), true),
        JobSource::Kubernetes(_) => (
            SnapshotFilter {
                tags: vec![tag(name)],
                ..SnapshotFilter::default()
            },
            true,
        ),
        _ => (
            SnapshotFilter {
                hosts: vec![host.to_owned()],
                tags: vec![tag(name)],
                ..SnapshotFilter::default()
            },
            false,
        ),
    };
    let opts = ForgetOptions {
        rules: rules.clone(),
        group_by: GroupBy {
            host: true,
            source: by_source,
            tags: false,
        },
        filter,
        ..ForgetOptions::default()
    };
    let report = ops::forget(&repo.repo, &repo.cat, &opts, cancel).await?;
    let total: usize = report.groups.iter().map(|g| g.snapshots.len()).sum();
    let forgotten = report.forgotten.len();
    if forgotten > 0 {
        tracing::info!(
            kept = total - forgotten,
            forgotten,
            "job {name}: retention kept {}, forgot {forgotten} snapshot(s)",
            total - forgotten
        );
    }
    Ok((total - forgotten, forgotten))
}
