//! The schedulers: a job's, and the repository-wide tasks' (prune and
//! check). Each waits for its next time, then for the job's lock and a
//! node slot, runs, records the result in the metrics, and waits again,
//! until its configuration's `stop` token fires.

use super::Shared;
use crate::cancel::Cancel;
use crate::daemon::config::repository_name as repo_name;
use crate::daemon::config::{Config, JobSource};
use crate::daemon::job::{self, Outcome};
use crate::daemon::metrics::TaskKind;
use crate::daemon::repos::Repo;
use crate::daemon::schedule::{First, Schedule};
use crate::ops::{self, PruneOptions};
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Schedules a prune or check.
pub(super) fn spawn_task(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    stop: &Cancel,
    task: Task,
    when: crate::daemon::config::When<'_>,
    repository: Option<&toml::Spanned<String>>,
    jitter: Option<crate::daemon::config::Duration>,
) {
    let Ok(schedule) = Schedule::of(when) else {
        return;
    };
    let repo = repo_name(repository);
    shared
        .metrics
        .task_configured(task.kind(), &repo, schedule.period(Timestamp::now()));
    tasks.spawn(schedule_task(
        shared.clone(),
        task,
        repo,
        schedule,
        jitter,
        stop.clone(),
    ));
}

/// Sleeps for `d`; `true` if `stop` fired first.
pub(super) async fn sleep_or_stop(d: Duration, stop: &Cancel) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = stop.cancelled() => true,
    }
}

/// Waits until the wall clock reads `at` (in steps, so a clock that jumps
/// or a machine that slept is noticed); `true` if `stop` fired first.
async fn until_or_stop(at: Timestamp, stop: &Cancel) -> bool {
    loop {
        let left = at.duration_since(Timestamp::now());
        let Ok(left) = Duration::try_from(left) else {
            return stop.reason().is_some();
        };
        if left.is_zero() {
            return stop.reason().is_some();
        }
        if sleep_or_stop(left.min(Duration::from_secs(30)), stop).await {
            return true;
        }
    }
}

/// A random delay up to `jitter`.
fn jittered(jitter: Option<&crate::daemon::config::Duration>) -> Duration {
    match jitter {
        Some(j) if !j.0.is_zero() => j.0.mul_f64(rand::random::<f64>()),
        _ => Duration::ZERO,
    }
}

/// Waits for the repository `name` to open; `None` if `stop` fired first.
async fn wait_for_repo(shared: &Shared, name: &str, stop: &Cancel) -> Option<Arc<Repo>> {
    loop {
        if let Ok(r) = shared.repo(name) {
            return Some(r);
        }
        if sleep_or_stop(Duration::from_millis(500), stop).await {
            return None;
        }
    }
}

/// Runs job `name` on its schedule until `stop` fires.
pub(super) async fn schedule_job(
    shared: Arc<Shared>,
    config: Arc<Config>,
    name: String,
    schedule: Schedule,
    stop: Cancel,
) {
    let job = config.file.jobs[&name].get_ref();
    let host = config.host();
    let repo_name = repo_name(job.repository.as_ref());
    let Some(repo) = wait_for_repo(&shared, &repo_name, &stop).await else {
        return;
    };
    if let JobSource::Copy(c) = job.source.get_ref() {
        if wait_for_repo(&shared, &c.from, &stop).await.is_none() {
            return;
        }
    }
    let last = match job::last_success(&repo, &name, &host) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(job = %name, "job {name}: cannot read its last success from the catalog: {e}");
            None
        }
    };
    if let Some(t) = last {
        shared.metrics.last_success(&name, t);
    }
    let deadline = job.starting_deadline.map(|d| d.0);
    let mut due = match schedule.first(Timestamp::now(), last, deadline) {
        First::Never => return,
        First::Now => {
            if last.is_some() {
                tracing::info!(job = %name, "job {name}: a scheduled run was missed while the agent was down: running it now");
            } else {
                tracing::info!(job = %name, "job {name}: no success on this host yet: running it now");
            }
            Timestamp::now()
        }
        First::At(t) => t,
    };
    loop {
        shared.metrics.next_run(&name, Some(due));
        tracing::debug!(job = %name, next = %due, "next run");
        if until_or_stop(due, &stop).await {
            return;
        }
        if sleep_or_stop(jittered(job.jitter.as_ref()), &stop).await {
            return;
        }
        let lock = shared.job_lock(&name);
        let Some(report) = run_when_free(&shared, &lock, &stop, async {
            // The repositories may have been reopened by a reload.
            let from = match job.source.get_ref() {
                JobSource::Copy(c) => shared.repo(&c.from).map(Some),
                _ => Ok(None),
            };
            match shared.repo(&repo_name).and_then(|r| Ok((r, from?))) {
                Ok((repo, from)) => {
                    shared.metrics.running(&name, true);
                    Some(job::run(&repo, from.as_deref(), &name, job, &host, &shared.abort).await)
                }
                Err(why) => {
                    tracing::error!(job = %name, "job {name}: {why}");
                    None
                }
            }
        })
        .await
        else {
            return;
        };
        shared.metrics.running(&name, false);
        // A run that outlived a reload removing its job leaves no series.
        let configured = shared
            .config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .file
            .jobs
            .contains_key(&name);
        if !configured {
            shared.metrics.job_removed(&name);
            return;
        }
        match report {
            Some(report) => {
                shared.metrics.run_ended(&name, &report);
                if report.outcome == Outcome::Failure {
                    tracing::error!(
                        job = %name,
                        attempts = report.attempts,
                        "job {name}: run failed after {} attempt(s): {}",
                        report.attempts,
                        report.error.as_deref().unwrap_or("unknown")
                    );
                }
            }
            None => shared.metrics.run_ended(
                &name,
                &job::RunReport {
                    outcome: Outcome::Failure,
                    backups: Vec::new(),
                    skipped: Vec::new(),
                    copied: Vec::new(),
                    drills: Vec::new(),
                    retention: None,
                    error: None,
                    attempts: 1,
                    seconds: 0.0,
                },
            ),
        }
        let Some(next) = schedule.after_run(due, Timestamp::now()) else {
            shared.metrics.next_run(&name, None);
            return;
        };
        due = next;
    }
}

/// Runs `work` once the job's lock and a node slot are held; `None` if
/// `stop` fired while waiting for them (the run does not start).
async fn run_when_free<T>(
    shared: &Shared,
    lock: &tokio::sync::Mutex<()>,
    stop: &Cancel,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let held = tokio::select! {
        g = lock.lock() => g,
        _ = stop.cancelled() => return None,
    };
    let slot = tokio::select! {
        s = shared.slots.clone().acquire_owned() => s.ok()?,
        _ = stop.cancelled() => return None,
    };
    let out = work.await;
    drop(slot);
    drop(held);
    Some(out)
}

/// A repository-wide task: what it runs, on which repository.
#[derive(Clone)]
pub(super) enum Task {
    /// `[prune]`.
    Prune(PruneOptions),
    /// `[check]`.
    Check(ops::CheckOptions),
}

impl Task {
    fn kind(&self) -> TaskKind {
        match self {
            Task::Prune(_) => TaskKind::Prune,
            Task::Check(_) => TaskKind::Check,
        }
    }

    /// Runs it once on `repo`; `Ok` if it succeeded (a check that found
    /// damage did not).
    async fn run(&self, shared: &Shared, repo: &Repo) -> Result<(), String> {
        let name = &repo.name;
        match self {
            Task::Prune(opts) => {
                // Boxed as a `dyn Send` future, which the task's spawn needs.
                let pruning: std::pin::Pin<
                    Box<
                        dyn std::future::Future<Output = crate::error::Result<ops::PruneReport>>
                            + Send
                            + '_,
                    >,
                > = Box::pin(ops::prune(&repo.repo, &repo.cat, opts, &shared.abort));
                let r = pruning.await.map_err(|e| e.to_string())?;
                shared.metrics.pruned(name, &r);
                tracing::info!(
                    deleted_packs = r.deleted_packs,
                    deleted_bytes = r.deleted_bytes,
                    repacked_bytes = r.repacked_bytes,
                    seconds = r.seconds,
                    "prune done"
                );
                Ok(())
            }
            Task::Check(opts) => {
                let checking: std::pin::Pin<
                    Box<
                        dyn std::future::Future<Output = crate::error::Result<ops::CheckReport>>
                            + Send
                            + '_,
                    >,
                > = Box::pin(ops::check(&repo.repo, &repo.cat, opts, &shared.abort));
                let r = checking.await.map_err(|e| e.to_string())?;
                shared.metrics.checked(name, &r);
                tracing::info!(
                    snapshots = r.snapshots,
                    packs = r.packs,
                    packs_read = r.packs_read,
                    bytes_read = r.bytes_read,
                    problems = r.problems.len(),
                    "check done"
                );
                match r.problems.first() {
                    None => Ok(()),
                    Some(p) => Err(format!(
                        "the repository is damaged: {} problem(s), the first: {}: {}",
                        r.problems.len(),
                        p.object,
                        p.what
                    )),
                }
            }
        }
    }
}

/// Runs `task` on repository `repo_name` on `schedule` until `stop`
/// fires. It is not caught up after a restart: it waits for its next
/// time.
async fn schedule_task(
    shared: Arc<Shared>,
    task: Task,
    repo_name: String,
    schedule: Schedule,
    jitter: Option<crate::daemon::config::Duration>,
    stop: Cancel,
) {
    let kind = task.kind();
    let Some(mut due) = schedule.next_after(Timestamp::now()) else {
        return;
    };
    // Never two of a kind at once on this agent; a leading space keeps
    // the lock apart from a job's.
    let lock = shared.job_lock(&format!(" {}", kind.name()));
    loop {
        if until_or_stop(due, &stop).await || sleep_or_stop(jittered(jitter.as_ref()), &stop).await
        {
            return;
        }
        let done = run_when_free(&shared, &lock, &stop, async {
            let started = std::time::Instant::now();
            let span = tracing::info_span!("task", task = kind.name(), repository = %repo_name);
            let result = match shared.repo(&repo_name) {
                Ok(repo) => {
                    let r = tracing::Instrument::instrument(task.run(&shared, &repo), span.clone())
                        .await;
                    if r.is_ok() {
                        repo.reached();
                    }
                    r
                }
                Err(why) => Err(why),
            };
            if let Err(e) = &result {
                span.in_scope(|| tracing::error!("{} failed: {e}", kind.name()));
            }
            shared.metrics.task_ended(
                kind,
                &repo_name,
                result.is_ok(),
                started.elapsed().as_secs_f64(),
            );
        })
        .await;
        if done.is_none() {
            return;
        }
        let Some(next) = schedule.after_run(due, Timestamp::now()) else {
            return;
        };
        due = next;
    }
}
