//! The agent's Prometheus metrics (`docs/agent.md` lists them). A job's
//! label is `job_name`: Prometheus puts its own `job` label (the scrape
//! job) on every series.

use super::job::{Outcome, RunReport};
use prometheus::{
    exponential_buckets, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Every metric the agent exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    last_success: GaugeVec,
    last_attempt: GaugeVec,
    last_result: IntGaugeVec,
    runs: IntCounterVec,
    retries: IntCounterVec,
    duration: HistogramVec,
    read_bytes: IntCounterVec,
    new_bytes: IntCounterVec,
    stored_bytes: IntCounterVec,
    kept: IntGaugeVec,
    forgotten: IntCounterVec,
    running: IntGaugeVec,
    period: GaugeVec,
    next_run: GaugeVec,
    prune: Task,
    check: Task,
    prune_deleted_bytes: IntCounterVec,
    prune_deleted_packs: IntCounterVec,
    prune_repacked_bytes: IntCounterVec,
    check_problems: IntGaugeVec,
    check_read_bytes: IntCounterVec,
    config_reload_success: IntGauge,
    config_reload_time: Gauge,
    repository_up: IntGaugeVec,
    repository_contact: GaugeVec,
    drill_passed: IntGaugeVec,
    drill_group_passed: IntGaugeVec,
    drill_rto: GaugeVec,
    drill_newest: GaugeVec,
    drill_gap: GaugeVec,
}

/// The repository-wide tasks an agent schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// `[prune]`.
    Prune,
    /// `[check]`.
    Check,
}

impl TaskKind {
    /// Its name (`prune`, `check`).
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Prune => "prune",
            TaskKind::Check => "check",
        }
    }
}

/// The series of a scheduled task (prune or check), by repository.
#[derive(Debug, Clone)]
struct Task {
    last_success: GaugeVec,
    last_attempt: GaugeVec,
    runs: IntCounterVec,
    duration: GaugeVec,
    period: GaugeVec,
}

const RESULTS: [Outcome; 3] = [Outcome::Success, Outcome::Partial, Outcome::Failure];

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// The metrics, registered, with the agent's version in `cairn_agent_info`.
    ///
    /// # Panics
    /// Never: the names and labels are fixed and valid.
    pub fn new() -> Self {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("a valid metric");
                registry
                    .register(Box::new(m.clone()))
                    .expect("registered once");
                m
            }};
        }
        let job = &["job_name"];
        let repo = &["repository"];
        let start = reg!(Gauge::new(
            "cairn_agent_start_time_seconds",
            "When the agent started (Unix time)."
        ));
        start.set(seconds(jiff::Timestamp::now()));
        let job_result = &["job_name", "result"];
        let drill_group = &["job_name", "host", "source"];
        let info = reg!(IntGaugeVec::new(
            opts("cairn_agent_info", "The agent's version (always 1)."),
            &["version"]
        ));
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Self {
            last_success: reg!(GaugeVec::new(
                opts(
                    "cairn_job_last_success_timestamp_seconds",
                    "When the job's newest complete snapshot from this host ended (from the repository: it survives restarts)."
                ),
                job
            )),
            last_attempt: reg!(GaugeVec::new(
                opts(
                    "cairn_job_last_attempt_timestamp_seconds",
                    "When the job's last run on this agent ended, whatever its result."
                ),
                job
            )),
            last_result: reg!(IntGaugeVec::new(
                opts(
                    "cairn_job_last_result",
                    "1 for the result of the job's last run on this agent (success, partial, failure), 0 for the others."
                ),
                job_result
            )),
            runs: reg!(IntCounterVec::new(
                opts("cairn_job_runs_total", "Runs of the job by result."),
                job_result
            )),
            retries: reg!(IntCounterVec::new(
                opts(
                    "cairn_job_retries_total",
                    "Attempts of the job tried again after a failure."
                ),
                job
            )),
            duration: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "cairn_job_duration_seconds",
                    "Wall time of the job's runs, hooks and retries included."
                )
                .buckets(exponential_buckets(1.0, 2.0, 16).expect("buckets")),
                job
            )),
            read_bytes: reg!(IntCounterVec::new(
                opts(
                    "cairn_job_read_bytes_total",
                    "Bytes read from the job's source by committed backups."
                ),
                job
            )),
            new_bytes: reg!(IntCounterVec::new(
                opts(
                    "cairn_job_new_bytes_total",
                    "Bytes of content (file and stream data, not trees) new to the repository, before compression."
                ),
                job
            )),
            stored_bytes: reg!(IntCounterVec::new(
                opts(
                    "cairn_job_stored_bytes_total",
                    "Bytes of packs written (compressed, encrypted)."
                ),
                job
            )),
            kept: reg!(IntGaugeVec::new(
                opts(
                    "cairn_job_snapshots_kept",
                    "The job's snapshots from this host its retention kept at its last run."
                ),
                job
            )),
            forgotten: reg!(IntCounterVec::new(
                opts(
                    "cairn_job_snapshots_forgotten_total",
                    "The job's snapshots its retention forgot."
                ),
                job
            )),
            running: reg!(IntGaugeVec::new(
                opts(
                    "cairn_job_running",
                    "1 while a run of the job is in progress (its hooks included)."
                ),
                job
            )),
            period: reg!(GaugeVec::new(
                opts(
                    "cairn_job_period_seconds",
                    "The time between two scheduled runs of the job."
                ),
                job
            )),
            next_run: reg!(GaugeVec::new(
                opts(
                    "cairn_job_next_run_timestamp_seconds",
                    "When the job runs next."
                ),
                job
            )),
            prune: task(&registry, "prune", "prunes"),
            check: task(&registry, "check", "checks"),
            prune_deleted_bytes: reg!(IntCounterVec::new(
                opts(
                    "cairn_prune_deleted_bytes_total",
                    "Bytes of packs prune deleted (unused ones, and those it repacked)."
                ),
                repo
            )),
            prune_deleted_packs: reg!(IntCounterVec::new(
                opts("cairn_prune_deleted_packs_total", "Packs prune deleted."),
                repo
            )),
            prune_repacked_bytes: reg!(IntCounterVec::new(
                opts(
                    "cairn_prune_repacked_bytes_total",
                    "Bytes still used that prune copied out of partly used packs."
                ),
                repo
            )),
            check_problems: reg!(IntGaugeVec::new(
                opts(
                    "cairn_check_problems",
                    "Damage the last check found (0: the repository is whole)."
                ),
                repo
            )),
            check_read_bytes: reg!(IntCounterVec::new(
                opts(
                    "cairn_check_read_bytes_total",
                    "Bytes of pack data checks downloaded and verified."
                ),
                repo
            )),
            config_reload_success: reg!(IntGauge::new(
                "cairn_agent_config_last_reload_successful",
                "1 if the last configuration load (start or SIGHUP) succeeded."
            )),
            config_reload_time: reg!(Gauge::new(
                "cairn_agent_config_last_reload_timestamp_seconds",
                "When the configuration was last loaded (start or SIGHUP), successfully or not."
            )),
            repository_up: reg!(IntGaugeVec::new(
                opts(
                    "cairn_repository_up",
                    "1 if the repository is open (reached and its passphrase accepted)."
                ),
                &["repository"]
            )),
            repository_contact: reg!(GaugeVec::new(
                opts(
                    "cairn_repository_last_contact_timestamp_seconds",
                    "When the repository's storage last answered."
                ),
                &["repository"]
            )),
            drill_passed: reg!(IntGaugeVec::new(
                opts(
                    "cairn_drill_passed",
                    "1 if every drill of the drill job's last run passed, 0 if one failed."
                ),
                job
            )),
            drill_group_passed: reg!(IntGaugeVec::new(
                opts(
                    "cairn_drill_snapshot_passed",
                    "1 if the last drill of the newest snapshot of this host and source passed."
                ),
                drill_group
            )),
            drill_rto: reg!(GaugeVec::new(
                opts(
                    "cairn_drill_rto_seconds",
                    "Wall time of the last drill's restore of this host and source: the recovery time."
                ),
                drill_group
            )),
            drill_newest: reg!(GaugeVec::new(
                opts(
                    "cairn_drill_newest_snapshot_timestamp_seconds",
                    "When the newest snapshot of this host and source was taken, at the last drill (its age is the recovery point)."
                ),
                drill_group
            )),
            drill_gap: reg!(GaugeVec::new(
                opts(
                    "cairn_drill_largest_gap_seconds",
                    "The largest time between consecutive snapshots of this host and source over the drill's window."
                ),
                drill_group
            )),
            registry,
        }
    }

    /// The exposition, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Only an invalid metric fails to encode; ours are fixed.
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            tracing::error!("cannot encode the metrics: {e}");
        }
        out
    }

    /// A job is configured: its series exist from the start (at 0).
    pub fn job_configured(&self, job: &str, period: Option<std::time::Duration>) {
        for r in RESULTS {
            self.runs.with_label_values(&[job, r.name()]);
        }
        self.running.with_label_values(&[job]).set(0);
        self.retries.with_label_values(&[job]);
        for c in [
            &self.read_bytes,
            &self.new_bytes,
            &self.stored_bytes,
            &self.forgotten,
        ] {
            c.with_label_values(&[job]);
        }
        if let Some(p) = period {
            self.period.with_label_values(&[job]).set(p.as_secs_f64());
        }
    }

    /// A job is no longer configured (after a reload): its series go.
    pub fn job_removed(&self, job: &str) {
        for v in [
            &self.last_success,
            &self.last_attempt,
            &self.period,
            &self.next_run,
        ] {
            let _ = v.remove_label_values(&[job]);
        }
        for v in [&self.kept, &self.running, &self.drill_passed] {
            let _ = v.remove_label_values(&[job]);
        }
        for c in [
            &self.read_bytes,
            &self.new_bytes,
            &self.stored_bytes,
            &self.forgotten,
            &self.retries,
        ] {
            let _ = c.remove_label_values(&[job]);
        }
        let _ = self.duration.remove_label_values(&[job]);
        for r in RESULTS {
            let _ = self.runs.remove_label_values(&[job, r.name()]);
            let _ = self.last_result.remove_label_values(&[job, r.name()]);
        }
    }

    /// When the job last succeeded (from the repository).
    pub fn last_success(&self, job: &str, at: jiff::Timestamp) {
        self.last_success.with_label_values(&[job]).set(seconds(at));
    }

    /// When the job runs next.
    pub fn next_run(&self, job: &str, at: Option<jiff::Timestamp>) {
        match at {
            Some(t) => self.next_run.with_label_values(&[job]).set(seconds(t)),
            None => {
                let _ = self.next_run.remove_label_values(&[job]);
            }
        }
    }

    /// A run of the job started (`true`) or ended.
    pub fn running(&self, job: &str, on: bool) {
        self.running.with_label_values(&[job]).set(i64::from(on));
    }

    /// A run of the job ended.
    pub fn run_ended(&self, job: &str, report: &RunReport) {
        let now = seconds(jiff::Timestamp::now());
        let outcome = report.outcome;
        self.last_attempt.with_label_values(&[job]).set(now);
        for r in RESULTS {
            self.last_result
                .with_label_values(&[job, r.name()])
                .set(i64::from(r == outcome));
        }
        self.runs.with_label_values(&[job, outcome.name()]).inc();
        self.retries
            .with_label_values(&[job])
            .inc_by(u64::from(report.attempts.saturating_sub(1)));
        self.duration
            .with_label_values(&[job])
            .observe(report.seconds);
        // Bytes read, new and stored: of each backup, and of each copy
        // (read from the source repository).
        let backups = report.backups.iter().map(|b| {
            let s = &b.snapshot.summary;
            (s.bytes_read, s.new_bytes, s.stored_bytes)
        });
        let copies = report
            .copied
            .iter()
            .map(|c| (c.read_bytes, c.new_bytes, c.stored_bytes));
        for (read, new, stored) in backups.chain(copies) {
            self.read_bytes.with_label_values(&[job]).inc_by(read);
            self.new_bytes.with_label_values(&[job]).inc_by(new);
            self.stored_bytes.with_label_values(&[job]).inc_by(stored);
        }
        // A copy job's success is its run's end (its copies keep their
        // originals' times).
        let newest = report
            .backups
            .iter()
            .map(|b| b.snapshot.finished_ns)
            .max()
            .or_else(|| {
                (report.backups.is_empty() && report.skipped.is_empty()).then(crate::util::now_ns)
            });
        if let (Some(ns), Outcome::Success) = (newest, outcome) {
            if let Ok(t) = jiff::Timestamp::from_nanosecond(i128::from(ns)) {
                self.last_success(job, t);
            }
        }
        if !report.drills.is_empty() {
            self.drill_passed
                .with_label_values(&[job])
                .set(i64::from(report.drills.iter().all(|d| d.passed)));
        }
        for d in &report.drills {
            let source = crate::retention::source_key(&d.snapshot.source);
            let labels = [job, d.snapshot.hostname.as_str(), source.as_str()];
            self.drill_group_passed
                .with_label_values(&labels)
                .set(i64::from(d.passed));
            self.drill_rto.with_label_values(&labels).set(d.rto_seconds);
            let newest = jiff::Timestamp::now().as_second() as f64 - d.rpo.newest_age_seconds;
            self.drill_newest.with_label_values(&labels).set(newest);
            match d.rpo.largest_gap_seconds {
                Some(g) => self.drill_gap.with_label_values(&labels).set(g),
                None => {
                    let _ = self.drill_gap.remove_label_values(&labels);
                }
            }
        }
        if let Some((kept, forgotten)) = report.retention {
            self.kept
                .with_label_values(&[job])
                .set(i64::try_from(kept).unwrap_or(i64::MAX));
            self.forgotten
                .with_label_values(&[job])
                .inc_by(u64::try_from(forgotten).unwrap_or(u64::MAX));
        }
    }

    /// A prune or check is scheduled for `repo`.
    pub fn task_configured(&self, kind: TaskKind, repo: &str, period: Option<std::time::Duration>) {
        let t = self.task(kind);
        for r in ["success", "failure"] {
            t.runs.with_label_values(&[repo, r]);
        }
        if let Some(p) = period {
            t.period.with_label_values(&[repo]).set(p.as_secs_f64());
        }
        match kind {
            TaskKind::Prune => {
                for c in [
                    &self.prune_deleted_bytes,
                    &self.prune_deleted_packs,
                    &self.prune_repacked_bytes,
                ] {
                    c.with_label_values(&[repo]);
                }
            }
            TaskKind::Check => {
                self.check_read_bytes.with_label_values(&[repo]);
            }
        }
    }

    /// A prune or check of `repo` ended.
    pub fn task_ended(&self, kind: TaskKind, repo: &str, ok: bool, seconds_taken: f64) {
        let t = self.task(kind);
        let now = seconds(jiff::Timestamp::now());
        t.last_attempt.with_label_values(&[repo]).set(now);
        t.duration.with_label_values(&[repo]).set(seconds_taken);
        t.runs
            .with_label_values(&[repo, if ok { "success" } else { "failure" }])
            .inc();
        if ok {
            t.last_success.with_label_values(&[repo]).set(now);
        }
    }

    /// What a prune of `repo` did.
    pub fn pruned(&self, repo: &str, r: &crate::ops::PruneReport) {
        self.prune_deleted_bytes
            .with_label_values(&[repo])
            .inc_by(r.deleted_bytes);
        self.prune_deleted_packs
            .with_label_values(&[repo])
            .inc_by(r.deleted_packs);
        self.prune_repacked_bytes
            .with_label_values(&[repo])
            .inc_by(r.repacked_bytes);
    }

    /// What a check of `repo` found.
    pub fn checked(&self, repo: &str, r: &crate::ops::CheckReport) {
        self.check_problems
            .with_label_values(&[repo])
            .set(i64::try_from(r.problems.len()).unwrap_or(i64::MAX));
        self.check_read_bytes
            .with_label_values(&[repo])
            .inc_by(r.bytes_read);
    }

    fn task(&self, kind: TaskKind) -> &Task {
        match kind {
            TaskKind::Prune => &self.prune,
            TaskKind::Check => &self.check,
        }
    }

    /// A configuration load ended.
    pub fn config_loaded(&self, ok: bool) {
        self.config_reload_success.set(i64::from(ok));
        self.config_reload_time.set(seconds(jiff::Timestamp::now()));
    }

    /// A repository was opened (or could not be).
    pub fn repository_up(&self, name: &str, up: bool) {
        self.repository_up
            .with_label_values(&[name])
            .set(i64::from(up));
    }

    /// A repository's storage answered at `unix_seconds`.
    pub fn repository_contact(&self, name: &str, unix_seconds: i64) {
        #[allow(clippy::cast_precision_loss)]
        self.repository_contact
            .with_label_values(&[name])
            .set(unix_seconds as f64);
    }
}

/// The series of task `name` (`prune`), registered in `registry`.
fn task(registry: &Registry, name: &str, plural: &str) -> Task {
    let repo = &["repository"];
    let gauge = |suffix: &str, help: String, labels: &[&str]| {
        let g = GaugeVec::new(opts(&format!("cairn_{name}_{suffix}"), &help), labels)
            .expect("a valid metric");
        registry
            .register(Box::new(g.clone()))
            .expect("registered once");
        g
    };
    let runs = IntCounterVec::new(
        opts(
            &format!("cairn_{name}_runs_total"),
            &format!("The agent's {plural} by result."),
        ),
        &["repository", "result"],
    )
    .expect("a valid metric");
    registry
        .register(Box::new(runs.clone()))
        .expect("registered once");
    Task {
        last_success: gauge(
            "last_success_timestamp_seconds",
            format!("When this agent's last successful {name} ended."),
            repo,
        ),
        last_attempt: gauge(
            "last_attempt_timestamp_seconds",
            format!("When this agent's last {name} ended, whatever its result."),
            repo,
        ),
        runs,
        duration: gauge(
            "duration_seconds",
            format!("Wall time of the last {name}."),
            repo,
        ),
        period: gauge(
            "period_seconds",
            format!("The time between two scheduled {plural}."),
            repo,
        ),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(clippy::cast_precision_loss)]
fn seconds(t: jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}
