//! `forget`: snapshots stop counting, chosen by retention rules
//! ([`crate::retention`]) or by id. What is forgotten is recorded in a
//! create-only forget record (format §8: a commit that only `forgets`), so
//! it is safe while backups run and never rewrites an object; the data goes
//! when `prune` finds it used by no snapshot that counts.

use crate::cancel::Cancel;
use crate::catalog::Catalog;
use crate::error::{input, Result};
use crate::filter::{self, SnapshotFilter};
use crate::repo::Repository;
use crate::retention::{self, Decision, Group, GroupBy, GroupKey, Rules};
use crate::util;
use cairn_repo_format::{Commit, ObjectName, SessionId, SnapshotId};
use std::sync::Arc;

/// What to forget.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetOptions {
    /// Retention rules: every snapshot no rule keeps is forgotten.
    #[serde(default)]
    pub rules: Rules,
    /// How snapshots are grouped before the rules apply.
    #[serde(default)]
    pub group_by: GroupBy,
    /// Only the snapshots that pass it are considered.
    #[serde(default)]
    pub filter: SnapshotFilter,
    /// These snapshots (id prefixes, or `latest`) instead of rules.
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// Calendar buckets in UTC instead of the local time zone.
    #[serde(default)]
    pub utc: bool,
    /// Decide and report, but record nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What `forget` decided and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForgetReport {
    /// Each group's decisions, newest first (one group of the named
    /// snapshots when forgetting by id).
    pub groups: Vec<Group>,
    /// The snapshots forgotten (or, on a dry run, that would be).
    pub forgotten: Vec<SnapshotId>,
    /// The forget record written (none on a dry run or when nothing goes).
    pub record: Option<SessionId>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Decides which snapshots to forget and, unless it is a dry run, records
/// it and brings the catalog up to date.
///
/// # Errors
/// No rule and no snapshot given, both given, a snapshot argument that
/// names none ([`crate::Error::Input`]); storage failures.
pub async fn forget(
    repo: &Repository,
    cat: &Arc<Catalog>,
    opts: &ForgetOptions,
    cancel: &Cancel,
) -> Result<ForgetReport> {
    cancel
        .or_cancel(async {
            crate::sync::sync(cat, repo).await?;
            let report = decide(cat, opts)?;
            if opts.dry_run || report.forgotten.is_empty() {
                return Ok(report);
            }
            let record = write_record(repo, &report.forgotten).await?;
            let total: usize = report.groups.iter().map(|g| g.snapshots.len()).sum();
            crate::audit::record(
                repo,
                "forget",
                &report.forgotten,
                format!(
                    "forgot {} snapshot(s), kept {}",
                    report.forgotten.len(),
                    total - report.forgotten.len()
                ),
            )
            .await;
            crate::sync::sync(cat, repo).await?;
            Ok(ForgetReport {
                record: Some(record),
                ..report
            })
        })
        .await
}

/// The decisions, from the catalog's snapshots.
fn decide(cat: &Catalog, opts: &ForgetOptions) -> Result<ForgetReport> {
    let snapshots = opts.filter.apply(cat.snapshots()?)?;
    let groups = match (opts.snapshots.is_empty(), opts.rules.is_empty()) {
        (true, true) => input!(
            "no retention rule and no snapshot given: nothing was forgotten. Give rules (--keep-last, --keep-daily, --keep-within, …) or snapshot ids"
        ),
        (false, false) => input!(
            "give either retention rules or snapshot ids, not both: nothing was forgotten"
        ),
        (false, true) => {
            let mut named = Vec::new();
            for arg in &opts.snapshots {
                let (id, s) = filter::resolve(&snapshots, arg, &opts.filter)?;
                if !named.iter().any(|d: &Decision| d.id == *id) {
                    named.push(Decision {
                        id: *id,
                        time_ns: s.time_ns,
                        keep: false,
                        reasons: Vec::new(),
                    });
                }
            }
            vec![Group {
                key: GroupKey::default(),
                snapshots: named,
            }]
        }
        (true, false) => {
            let tz = if opts.utc {
                jiff::tz::TimeZone::UTC
            } else {
                jiff::tz::TimeZone::system()
            };
            retention::apply(&snapshots, &opts.rules, opts.group_by, &tz)
        }
    };
    let forgotten = groups
        .iter()
        .flat_map(|g| g.snapshots.iter().filter(|d| !d.keep).map(|d| d.id))
        .collect();
    Ok(ForgetReport {
        groups,
        forgotten,
        record: None,
        dry_run: opts.dry_run,
    })
}

/// Writes a forget record: a commit of a fresh session that only forgets
/// (format §8, create-only; it needs no lease: it adds no data).
async fn write_record(repo: &Repository, forgotten: &[SnapshotId]) -> Result<SessionId> {
    let sid = SessionId::random();
    let now = util::now_ns();
    let commit = Commit {
        forgets: forgotten.to_vec(),
        ..Commit::empty(sid, util::hostname(), now, now)
    };
    repo.put_new(&ObjectName::Commit(sid), commit.seal(&repo.keys.enc))
        .await?;
    tracing::debug!(
        record = %sid.short(),
        "forgot {} snapshot(s); `cairn prune` frees the data no other snapshot uses",
        forgotten.len()
    );
    Ok(sid)
}
