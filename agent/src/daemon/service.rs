//! The agent daemon: schedules the jobs and the prune of one configuration
//! file, serves `/metrics`, `/healthz` and `/readyz`, reloads on SIGHUP and
//! stops cleanly on SIGTERM or SIGINT.
//!
//! - Each job has a scheduler task. A job never overlaps itself (a lock
//!   per job name, kept across reloads), and at most
//!   `max-concurrent-jobs` runs (the prune included) go at once on the
//!   node (a semaphore).
//! - SIGHUP reads the file again; a file with a mistake is refused and the
//!   running configuration stays. A valid one replaces the schedulers; a
//!   run in progress finishes first.
//! - SIGTERM or SIGINT: no run starts any more; runs in progress get
//!   `shutdown-grace` to finish, then are aborted (their commands killed,
//!   nothing committed, their leases removed). A second signal aborts at
//!   once. The process then ends with status 0.

use super::config::{Config, Invalid, RepoSettings};
use super::http::{self, Endpoints};
use super::metrics::Metrics;
use super::repos::{self, Repo};
use super::schedule::Schedule;
use crate::cancel::{Cancel, Reason};
use crate::ops::{self, PruneOptions};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How often an open repository is synced (its catalog caught up, its
/// storage reached).
const REFRESH: Duration = Duration::from_secs(300);
/// `/readyz` fails when a repository was not reached for this long.
const READY_WINDOW: Duration = Duration::from_secs(900);
/// After the grace period, how long aborted runs get to clean up.
const ABORT_WAIT: Duration = Duration::from_secs(10);

mod scheduler;
use scheduler::{schedule_job, sleep_or_stop, spawn_task, Task};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration file has mistakes.
    #[error(transparent)]
    Config(#[from] Invalid),
    /// The HTTP endpoint's address cannot be bound.
    #[error("cannot listen on {address} (agent.listen): {cause}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        cause: std::io::Error,
    },
    /// A signal handler cannot be installed.
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

/// A repository the configuration names: open, or why not yet.
enum Slot {
    Opening(String),
    Open(Arc<Repo>),
}

/// A configured repository: the key of the settings it was opened with,
/// and its slot.
type RepoEntry = (String, Arc<RwLock<Slot>>);

/// What every task of the agent shares.
struct Shared {
    metrics: Metrics,
    /// Runs at once on this node.
    slots: Arc<Semaphore>,
    /// Fires to abort every run (after the grace period, or a second
    /// signal).
    abort: Cancel,
    /// One lock per job name: a job never overlaps itself, across reloads.
    job_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The repositories, by name, with the settings they were opened
    /// with.
    repos: RwLock<BTreeMap<String, RepoEntry>>,
    /// The configuration running.
    config: RwLock<Arc<Config>>,
}

impl Shared {
    fn job_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.job_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    fn repo(&self, name: &str) -> Result<Arc<Repo>, String> {
        let repos = self
            .repos
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((_, slot)) = repos.get(name) else {
            return Err(format!("repository {name} is not configured"));
        };
        let slot = slot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*slot {
            Slot::Open(r) => Ok(r.clone()),
            Slot::Opening(why) => Err(format!("repository {name} is not open yet: {why}")),
        }
    }

    fn ready(&self) -> Result<(), String> {
        let repos = self
            .repos
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Timestamp::now().as_second();
        let window = i64::try_from(READY_WINDOW.as_secs()).unwrap_or(i64::MAX);
        for (name, (_, slot)) in repos.iter() {
            match &*slot
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                Slot::Opening(why) => return Err(format!("repository {name} is not open: {why}")),
                Slot::Open(r) if now - r.last_contact() > window => {
                    return Err(format!(
                        "repository {name} was last reached {}s ago",
                        now - r.last_contact()
                    ))
                }
                Slot::Open(_) => {}
            }
        }
        Ok(())
    }
}

/// A key that changes when a repository's settings do (spans aside).
fn repo_key(s: &RepoSettings) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{}",
        s.url,
        s.password_file.as_ref().map(|f| f.get_ref()),
        s.password_env.as_ref().map(|v| v.get_ref()),
        s.s3.endpoint,
        s.s3.region,
        s.s3.virtual_hosted
    )
}

/// Runs the agent with the configuration at `path` until SIGTERM or
/// SIGINT.
///
/// # Errors
/// An invalid configuration, an address that cannot be bound, signal
/// handlers that cannot be installed. Failing jobs are not errors of the
/// daemon: they are logged and counted.
pub async fn serve(path: &Path) -> Result<(), DaemonError> {
    let metrics = Metrics::new();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            metrics.config_loaded(false);
            return Err(e.into());
        }
    };
    metrics.config_loaded(true);
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let address = config.file.agent.listen.get_ref().clone();
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|cause| DaemonError::Listen {
            address: address.clone(),
            cause,
        })?;
    let shared = Arc::new(Shared {
        metrics: metrics.clone(),
        slots: Arc::new(Semaphore::new(
            *config.file.agent.max_concurrent_jobs.get_ref(),
        )),
        abort: Cancel::new(),
        job_locks: Mutex::default(),
        repos: RwLock::default(),
        config: RwLock::new(Arc::new(config)),
    });
    let ready = shared.clone();
    let endpoint = tokio::spawn(http::serve(
        listener,
        Endpoints {
            metrics,
            ready: Arc::new(move || ready.ready()),
        },
    ));
    tracing::info!(
        listen = %address,
        config = %path.display(),
        "agent started: /metrics, /healthz and /readyz on {address}"
    );
    let mut tasks = JoinSet::new();
    let mut generation = start(&shared, &mut tasks);
    let stop = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                match Config::load(path) {
                    Err(e) => {
                        shared.metrics.config_loaded(false);
                        tracing::error!("SIGHUP: {e}\nthe configuration running stays");
                    }
                    Ok(new) => {
                        shared.metrics.config_loaded(true);
                        tracing::info!(config = %path.display(), "SIGHUP: configuration reloaded");
                        // Runs in progress finish; the new schedulers
                        // wait for them (a job's lock outlives reloads).
                        generation.cancel(Reason::Requested("a configuration change"));
                        while tasks.try_join_next().is_some() {}
                        *shared.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(new);
                        generation = start(&shared, &mut tasks);
                    }
                }
            }
        }
    };
    let grace = shared
        .config
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .file
        .agent
        .shutdown_grace
        .0;
    tracing::info!(
        signal = stop,
        "{stop}: no run starts any more; runs in progress have {}s to finish (a second signal aborts them)",
        grace.as_secs()
    );
    generation.cancel(Reason::Requested("the agent's shutdown"));
    let finished = tokio::select! {
        () = join_all(&mut tasks) => true,
        () = tokio::time::sleep(grace) => false,
        _ = term.recv() => false,
        _ = int.recv() => false,
    };
    if !finished {
        tracing::warn!("aborting the runs in progress: nothing of them is committed");
        shared
            .abort
            .cancel(Reason::Requested("the agent's shutdown"));
        if tokio::time::timeout(ABORT_WAIT, join_all(&mut tasks))
            .await
            .is_err()
        {
            tracing::error!(
                "runs did not stop within {}s of the abort; exiting",
                ABORT_WAIT.as_secs()
            );
        }
    }
    endpoint.abort();
    tracing::info!("agent stopped");
    Ok(())
}

/// Starts the configuration's tasks in `tasks`: opens its repositories
/// (keeping those whose settings did not change) and schedules its jobs
/// and prune. The token returned stops them (runs in progress go on).
fn start(shared: &Arc<Shared>, tasks: &mut JoinSet<()>) -> Cancel {
    let config = shared
        .config
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let stop = Cancel::new();
    let wanted = config.repositories();
    {
        let mut repos = shared
            .repos
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        repos.retain(|name, (key, _)| wanted.get(name).is_some_and(|s| repo_key(s) == *key));
        for (name, settings) in &wanted {
            let slot = match repos.get(name) {
                Some((_, slot)) => slot.clone(),
                None => {
                    let slot = Arc::new(RwLock::new(Slot::Opening("starting".into())));
                    repos.insert(name.clone(), (repo_key(settings), slot.clone()));
                    shared.metrics.repository_up(name, false);
                    slot
                }
            };
            tasks.spawn(open_repo(
                shared.clone(),
                config.clone(),
                name.clone(),
                slot,
                stop.clone(),
            ));
        }
    }
    // Metrics of jobs no longer configured go.
    let known: Vec<String> = shared
        .job_locks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .keys()
        .cloned()
        .collect();
    for name in known.iter().filter(|n| !config.file.jobs.contains_key(*n)) {
        shared.metrics.job_removed(name);
    }
    let now = Timestamp::now();
    for (name, job) in &config.file.jobs {
        let schedule = match Schedule::of(job.get_ref().when()) {
            Ok(s) => s,
            Err(e) => {
                // The configuration check refused such files already.
                tracing::error!(job = %name, "{e}");
                continue;
            }
        };
        shared.job_lock(name);
        shared.metrics.job_configured(name, schedule.period(now));
        if matches!(schedule, Schedule::Manual) {
            continue;
        }
        tasks.spawn(schedule_job(
            shared.clone(),
            config.clone(),
            name.clone(),
            schedule,
            stop.clone(),
        ));
    }
    if let Some(prune) = &config.file.prune {
        let p = prune.get_ref();
        let opts = PruneOptions {
            max_unused_percent: p
                .max_unused
                .as_ref()
                .map_or(ops::prune::DEFAULT_MAX_UNUSED_PERCENT, |m| *m.get_ref()),
            max_wait_s: p
                .max_wait
                .map_or(ops::prune::DEFAULT_MAX_WAIT_S, |d| d.0.as_secs()),
            max_repack_bytes: None,
            dry_run: false,
        };
        spawn_task(
            shared,
            tasks,
            &stop,
            Task::Prune(opts),
            p.when(),
            p.repository.as_ref(),
            p.jitter,
        );
    }
    if let Some(check) = &config.file.check {
        let c = check.get_ref();
        let read_data = c
            .read_data
            .as_ref()
            .and_then(|r| super::config::read_data(r.get_ref()).ok());
        spawn_task(
            shared,
            tasks,
            &stop,
            Task::Check(ops::CheckOptions { read_data }),
            c.when(),
            c.repository.as_ref(),
            c.jitter,
        );
    }
    stop
}

/// Opens a repository (unless a configuration before this one did),
/// trying again with backoff until it opens or the configuration is
/// replaced; then keeps its catalog caught up.
async fn open_repo(
    shared: Arc<Shared>,
    config: Arc<Config>,
    name: String,
    slot: Arc<RwLock<Slot>>,
    stop: Cancel,
) {
    let Some(settings) = config.repositories().get(&name).copied() else {
        return;
    };
    let catalog = config.file.agent.catalog.clone();
    let mut wait = Duration::from_secs(2);
    let open = match &*slot
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Slot::Open(r) => Some(r.clone()),
        Slot::Opening(_) => None,
    };
    let repo = if let Some(r) = &open {
        r.clone()
    } else {
        loop {
            match repos::open(&name, settings, catalog.as_deref(), &stop).await {
                Ok(r) => break Arc::new(r),
                Err(e) if stop.reason().is_some() => {
                    tracing::debug!(repository = %name, "opening stopped: {e}");
                    return;
                }
                Err(e) => {
                    tracing::error!(
                        repository = %name,
                        "cannot open repository {name} ({}): {e}; trying again in {}s",
                        settings.url,
                        wait.as_secs()
                    );
                    *slot
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Slot::Opening(e.to_string());
                    if sleep_or_stop(wait, &stop).await {
                        return;
                    }
                    wait = (wait * 2).min(Duration::from_secs(300));
                }
            }
        }
    };
    if open.is_none() {
        tracing::info!(repository = %name, url = %settings.url, "repository {name} open");
    }
    *slot
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Slot::Open(repo.clone());
    shared.metrics.repository_up(&name, true);
    shared
        .metrics
        .repository_contact(&name, repo.last_contact());
    loop {
        if sleep_or_stop(REFRESH, &stop).await {
            return;
        }
        match ops::sync(&repo.repo, &repo.cat, ops::Trees::Of(&[]), &stop).await {
            Ok(_) => {
                repo.reached();
                shared
                    .metrics
                    .repository_contact(&name, repo.last_contact());
            }
            Err(e) => tracing::warn!(repository = %name, "cannot reach repository {name}: {e}"),
        }
    }
}

/// Waits for every task to end.
async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}
