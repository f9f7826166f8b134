//! Restore drills: a snapshot restored into a scratch target and checked
//! against what was backed up, timed (the recovery time, RTO) and set
//! beside how recent its group's snapshots are (the recovery point, RPO).
//!
//! - PostgreSQL: into a throwaway database, on a temporary server Cairn
//!   starts from the local PostgreSQL binaries or on a server the user
//!   names; every table's rows are counted and compared with the counts
//!   the backup recorded (format §7.1 `counts`).
//! - Redis: the RDB file loaded by a temporary `redis-server`; its key
//!   counts per database are reported.
//! - Anything else (file trees, volumes, streams): restored into a scratch
//!   directory, then every file's content (chunk by chunk, against the
//!   snapshot's ids) and metadata read back and compared.
//!
//! A drill never writes outside its scratch directory or scratch database,
//! which it removes when it ends, passed or failed.

mod pg;
mod redis;
mod verify;

use crate::cancel::Cancel;
use crate::catalog::Catalog;
use crate::error::{input, Context, Error, Result};
use crate::filter::{self, SnapshotFilter};
use crate::repo::Repository;
use crate::retention::{group_key, newest_per_group, GroupBy};
use crate::source::postgres::PgConn;
use crate::sync::{self, Trees};
use cairn_repo_format::{Snapshot, SnapshotId, Source};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where a PostgreSQL snapshot is restored for a drill.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PgScratch {
    /// A temporary server in the scratch directory, from the binaries in
    /// `bindir` (default: the newest of `/usr/lib/postgresql/*/bin` that is
    /// at least the dump's server version, else `initdb` on `PATH`). Run as
    /// root, the server runs as the `postgres` user.
    Temporary {
        /// Where `initdb` and `postgres` are.
        #[serde(default)]
        bindir: Option<PathBuf>,
    },
    /// A new database `cairn_drill_…` on this server (`dbname`: the
    /// database to connect to for creating and dropping it, default
    /// `postgres`); roles are not restored and owners not set.
    Server(PgConn),
}

impl Default for PgScratch {
    fn default() -> Self {
        PgScratch::Temporary { bindir: None }
    }
}

/// What to drill, and where.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillOptions {
    /// Snapshot id prefixes or `latest`; none: the newest snapshot of each
    /// host and source that passes `filter`.
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// Which snapshots.
    #[serde(default)]
    pub filter: SnapshotFilter,
    /// The RPO window: the largest gap between snapshots is looked for over
    /// this many seconds back from now (default a week).
    #[serde(default)]
    pub window_seconds: Option<u64>,
    /// Where scratch directories go (default: `TMPDIR`).
    #[serde(default)]
    pub scratch: Option<PathBuf>,
    /// Where PostgreSQL snapshots are restored.
    #[serde(default)]
    pub postgres: PgScratch,
    /// The `redis-server` to load RDB files with (default: on `PATH`).
    #[serde(default)]
    pub redis_server: Option<PathBuf>,
    /// A shell command run once the restore is done and before the
    /// comparison, told where the restore is (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGDATABASE`; `CAIRN_DRILL_REDIS_SOCKET`; `CAIRN_DRILL_DIR`); a
    /// non-zero exit fails the drill.
    #[serde(default)]
    pub check_command: Option<String>,
}

/// The default RPO window: a week.
pub const DEFAULT_WINDOW_SECONDS: u64 = 7 * 24 * 3600;

/// How recent a group's snapshots are.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Rpo {
    /// Age of the group's newest snapshot, seconds.
    pub newest_age_seconds: f64,
    /// The largest time between two consecutive snapshots of the group
    /// over the window (the last one before the window counts as its
    /// start); `None` with fewer than two.
    pub largest_gap_seconds: Option<f64>,
    /// The window, seconds.
    pub window_seconds: u64,
    /// Snapshots of the group taken in the window.
    pub snapshots_in_window: usize,
}

/// What a drill compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    /// Tables whose rows were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<u64>,
    /// Rows those tables held after the restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Keys the loaded RDB file held, per database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<BTreeMap<u32, u64>>,
    /// Regular files whose content and metadata were read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Directories, symlinks and special files compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_entries: Option<u64>,
    /// Bytes of file content read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// One snapshot's drill.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drill {
    /// The snapshot.
    #[serde(skip)]
    pub id: SnapshotId,
    /// Its record.
    #[serde(skip)]
    pub snapshot: Snapshot,
    /// `postgres`, `redis` or `files`.
    pub kind: &'static str,
    /// Where it was restored.
    pub target: String,
    /// Whether the restore completed and held what was backed up.
    pub passed: bool,
    /// Wall time of the restore: the recovery time.
    pub rto_seconds: f64,
    /// Wall time of preparing the target (starting a server).
    pub setup_seconds: f64,
    /// Wall time of the checks after the restore.
    pub verify_seconds: f64,
    /// What was compared.
    pub checked: Checked,
    /// Each difference or failure, named.
    pub problems: Vec<String>,
    /// What the drill could not check, and why.
    pub notes: Vec<String>,
    /// The recovery point of the snapshot's group.
    pub rpo: Rpo,
}

/// All drills of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DrillReport {
    /// One per snapshot drilled, oldest first.
    pub drills: Vec<Drill>,
    /// Wall time of the run.
    pub seconds: f64,
}

impl DrillReport {
    /// Whether every drill passed (and there was one).
    pub fn passed(&self) -> bool {
        !self.drills.is_empty() && self.drills.iter().all(|d| d.passed)
    }
}

/// What one kind's drill found; the front of [`Drill`].
#[derive(Debug, Default)]
struct Outcome {
    target: String,
    rto_seconds: f64,
    setup_seconds: f64,
    verify_seconds: f64,
    checked: Checked,
    problems: Vec<String>,
    notes: Vec<String>,
}

/// Drills the chosen snapshots, one after the other. A drill that fails
/// (a restore that errs, a count that differs) is reported as failed and
/// the others still run; only a stop ends the run early.
///
/// # Errors
/// [`Error::Input`] for snapshots that do not exist or bad options;
/// [`Error::Cancelled`]; storage failures while listing.
#[tracing::instrument(name = "drill", skip_all)]
pub async fn drill(
    repo: &Repository,
    cat: &Arc<Catalog>,
    opts: &DrillOptions,
    cancel: &Cancel,
) -> Result<DrillReport> {
    let started = Instant::now();
    cancel.or_cancel(sync::sync(cat, repo)).await?;
    let all = cat.snapshots()?;
    let chosen = choose(&all, opts)?;
    if chosen.is_empty() {
        input!("no snapshot to drill: none matches the filters (see `cairn snapshots`)");
    }
    let ids: Vec<SnapshotId> = chosen.iter().map(|(id, _)| *id).collect();
    cancel
        .or_cancel(sync::fetch_trees(cat, repo, Trees::Of(&ids)))
        .await?;
    let scratch = opts.scratch.clone().unwrap_or_else(std::env::temp_dir);
    let window = opts.window_seconds.unwrap_or(DEFAULT_WINDOW_SECONDS);
    let now = crate::util::now_ns();
    let mut report = DrillReport::default();
    for (id, snap) in chosen {
        let begun = Instant::now();
        let outcome = cancel
            .or_cancel(one(repo, cat, id, &snap, opts, &scratch))
            .await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e @ Error::Cancelled(_)) => return Err(e),
            Err(e) => Outcome {
                target: String::new(),
                rto_seconds: begun.elapsed().as_secs_f64(),
                problems: vec![format!("{e:#}")],
                ..Outcome::default()
            },
        };
        let rpo = rpo(&all, &snap, now, window);
        let passed = outcome.problems.is_empty();
        if passed {
            tracing::debug!(snapshot = %id.short(), rto = outcome.rto_seconds, "drill passed");
        } else {
            tracing::warn!(snapshot = %id.short(), problems = outcome.problems.len(), "drill failed: {}", outcome.problems[0]);
        }
        report.drills.push(Drill {
            id,
            kind: kind_of(&snap.source),
            snapshot: snap,
            target: outcome.target,
            passed,
            rto_seconds: outcome.rto_seconds,
            setup_seconds: outcome.setup_seconds,
            verify_seconds: outcome.verify_seconds,
            checked: outcome.checked,
            problems: outcome.problems,
            notes: outcome.notes,
            rpo,
        });
    }
    report.seconds = started.elapsed().as_secs_f64();
    let ids: Vec<SnapshotId> = report.drills.iter().map(|d| d.id).collect();
    let failed: Vec<String> = report
        .drills
        .iter()
        .filter(|d| !d.passed)
        .map(|d| format!("{}: {}", d.id.short(), d.problems.join("; ")))
        .collect();
    crate::audit::record(
        repo,
        "drill",
        &ids,
        format!(
            "{} of {} drill(s) passed{}",
            ids.len() - failed.len(),
            ids.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", failed.join(" / "))
            }
        ),
    )
    .await;
    Ok(report)
}

/// How a source's snapshots are drilled.
fn kind_of(source: &Source) -> &'static str {
    match source {
        Source::Postgres { .. } => "postgres",
        Source::Redis { .. } => "redis",
        _ => "files",
    }
}

async fn one(
    repo: &Repository,
    cat: &Arc<Catalog>,
    id: SnapshotId,
    snap: &Snapshot,
    opts: &DrillOptions,
    scratch: &std::path::Path,
) -> Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-drill-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(scratch)
        .with_context(|| format!("creating a scratch directory in {}", scratch.display()))?;
    let outcome = match &snap.source {
        Source::Postgres { .. } => pg::drill(repo, cat, snap, opts, dir.path()).await,
        Source::Redis { .. } => redis::drill(repo, cat, snap, opts, dir.path()).await,
        _ => verify::drill(repo, cat, id, snap, opts, dir.path()).await,
    };
    // Removed whatever happened (a temporary server stopped first).
    let removed = tokio::task::spawn_blocking(move || dir.close()).await;
    if let Ok(Err(e)) | Err(e) = removed.map_err(std::io::Error::other) {
        tracing::warn!("the drill's scratch directory could not be removed: {e}");
    }
    outcome
}

/// Runs the check command, if any, with `env` telling it where the restore
/// is; a problem if it fails.
async fn check_command(opts: &DrillOptions, env: &[(&str, String)]) -> Option<String> {
    let cmd = opts.check_command.as_deref()?;
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "the check command {cmd:?} failed ({}): {}",
            o.status,
            tail(&String::from_utf8_lossy(&o.stderr), 4)
        )),
        Err(e) => Some(format!("the check command {cmd:?} could not start: {e}")),
    }
}

/// The last `n` non-empty lines of `text`, joined.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// The snapshots to drill, oldest first.
fn choose(
    all: &[(SnapshotId, Snapshot)],
    opts: &DrillOptions,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    let f = opts.filter.normalized()?;
    let mut chosen: Vec<(SnapshotId, Snapshot)> = Vec::new();
    if opts.snapshots.is_empty() {
        chosen = newest_per_group(all.iter().filter(|(_, s)| f.matches(s)).cloned());
    } else {
        for arg in &opts.snapshots {
            let (id, s) = filter::resolve(all, arg, &opts.filter)?;
            if !chosen.iter().any(|(c, _)| c == id) {
                chosen.push((*id, s.clone()));
            }
        }
    }
    chosen.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
    Ok(chosen)
}

/// The recovery point of `snap`'s group (host and source) at `now`.
fn rpo(all: &[(SnapshotId, Snapshot)], snap: &Snapshot, now: i64, window: u64) -> Rpo {
    let key = group_key(snap, GroupBy::default());
    let mut times: Vec<i64> = all
        .iter()
        .filter(|(_, s)| group_key(s, GroupBy::default()) == key)
        .map(|(_, s)| s.time_ns)
        .collect();
    times.sort_unstable();
    rpo_of(&times, now, window)
}

/// [`rpo`] over sorted snapshot times.
fn rpo_of(times: &[i64], now: i64, window: u64) -> Rpo {
    let secs = |ns: i64| ns as f64 / 1e9;
    let start = now.saturating_sub(
        i64::try_from(window)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1_000_000_000),
    );
    let first_in = times.partition_point(|t| *t < start);
    // The last snapshot before the window starts the first gap.
    let from = first_in.saturating_sub(1);
    let largest = times[from..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .map(secs);
    Rpo {
        newest_age_seconds: times.last().map_or(0.0, |t| secs(now - t).max(0.0)),
        largest_gap_seconds: largest,
        window_seconds: window,
        snapshots_in_window: times.len() - first_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn rpo_takes_the_newest_age_and_the_largest_gap_in_the_window() {
        let now = 1000 * H;
        // Daily, with one day missed; one snapshot long before the window.
        let times = [
            now - 500 * H,
            now - 100 * H,
            now - 76 * H,
            now - 28 * H,
            now - 4 * H,
        ];
        let r = rpo_of(&times, now, 7 * 24 * 3600);
        assert!((r.newest_age_seconds - 4.0 * 3600.0).abs() < 1e-6);
        // Four in the week; the gap from the one before the week (500 h
        // back) to the first in it (100 h back) is the largest.
        assert_eq!(r.snapshots_in_window, 4);
        assert_eq!(r.largest_gap_seconds, Some(400.0 * 3600.0));
        // A one-day window: one snapshot in it, and the 24 h gap from the
        // one before it.
        let r = rpo_of(&times, now, 24 * 3600);
        assert_eq!(r.snapshots_in_window, 1);
        assert_eq!(r.largest_gap_seconds, Some(24.0 * 3600.0));
        let r = rpo_of(&times[4..], now, 24 * 3600);
        assert_eq!(r.largest_gap_seconds, None);
        assert_eq!(rpo_of(&[], now, 60).snapshots_in_window, 0);
    }
}
