//! `prune`: the collector of format §10, the only code that deletes data.
//!
//! It runs while any number of writers back up, and takes no lock. Its
//! phases are recorded in `gc/state`, changed only by compare-and-swap:
//! `marking` (compute the condemned packs), `marked` (a plan published;
//! sessions older than it are settled), `deleting` (the deletion set
//! committed; index files replaced, packs deleted), `idle`. A prune that
//! was killed leaves the state where it was, and the next one resumes it
//! (taking it over once the dead one's lease has expired). Time only
//! decides how long it waits for a session that still renews its lease.
//!
//! The collector reads the repository into a private catalog of its own
//! (a temporary file): what it deletes never depends on a cache another
//! process could have written.

use crate::backend::counted::{Counted, Requests};
use crate::cancel::Cancel;
use crate::catalog::{self, Catalog};
use crate::error::{input, Context, Error, Result};
use crate::gc::{self, Observed};
use crate::repo::Repository;
use crate::session::Session;
use crate::sync::{self, Trees};
use crate::util;
use cairn_repo_format::{GcState, ObjectKind, ObjectName, PackSet, Phase, PlanId, SessionId};
use std::sync::Arc;
use std::time::Instant;

mod mark;
mod repack;
mod sweep;
#[cfg(test)]
mod tests;

/// How a prune runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneOptions {
    /// How long to wait for a session that started before the plan and
    /// still renews its lease before fencing it anyway (its backup then
    /// fails and runs again).
    #[serde(default = "default_max_wait_s")]
    pub max_wait_s: u64,
    /// Partly used packs whose unused share exceeds this many percent are
    /// repacked (their live blobs copied, the packs deleted).
    #[serde(default = "default_max_unused")]
    pub max_unused_percent: f64,
    /// At most this many bytes of live data are copied by one prune.
    #[serde(default)]
    pub max_repack_bytes: Option<u64>,
    /// Decide and report; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// restic's default: a pack more than 5 % unused is repacked.
pub const DEFAULT_MAX_UNUSED_PERCENT: f64 = 5.0;

fn default_max_unused() -> f64 {
    DEFAULT_MAX_UNUSED_PERCENT
}

/// A day: a backup that runs longer than this while a prune waits is
/// fenced (GC-DESIGN.md's `max_wait`).
pub const DEFAULT_MAX_WAIT_S: u64 = 86_400;

fn default_max_wait_s() -> u64 {
    DEFAULT_MAX_WAIT_S
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_wait_s: DEFAULT_MAX_WAIT_S,
            max_unused_percent: DEFAULT_MAX_UNUSED_PERCENT,
            max_repack_bytes: None,
            dry_run: false,
        }
    }
}

/// What a prune found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The plan it carried out.
    pub plan: Option<PlanId>,
    /// Whether it took over a collection another prune had left.
    pub took_over: bool,
    /// Packs the index lists.
    pub packs: u64,
    /// Packs no snapshot that counts uses, or that no index lists and no
    /// live session owns.
    pub condemned_packs: u64,
    /// Of them, bytes.
    pub condemned_bytes: u64,
    /// Condemned packs kept because a session that committed meanwhile
    /// uses them.
    pub rescued_packs: u64,
    /// Packs deleted.
    pub deleted_packs: u64,
    /// Bytes deleted (packs).
    pub deleted_bytes: u64,
    /// Packs partly used.
    pub partly_used_packs: u64,
    /// Unused bytes in them.
    pub partly_unused_bytes: u64,
    /// Partly used packs repacked (then deleted with the unused ones).
    pub repacked_packs: u64,
    /// Live bytes copied to new packs.
    pub repacked_bytes: u64,
    /// Sessions fenced (unfinished, silent past their lease).
    pub fenced_sessions: u64,
    /// Sessions whose index files were replaced by consolidated ones.
    pub superseded_sessions: u64,
    /// Other objects removed: index files and snapshots that no longer
    /// count, leases of finished sessions, old plans.
    pub removed_objects: u64,
    /// Storage requests made (a dry run: that it would make, about).
    pub requests: u64,
    /// Wall time (`duration_seconds` in JSON, as every report has it).
    #[serde(rename = "duration_seconds")]
    pub seconds: f64,
}

/// Runs a collection: resumes one left unfinished, or starts one.
///
/// # Errors
/// Another prune running ([`Error::Input`]); this one taken over
/// ([`Error::TakenOver`]); storage failures (the next prune resumes).
pub async fn prune(
    repo: &Repository,
    cat: &Arc<Catalog>,
    opts: &PruneOptions,
    cancel: &Cancel,
) -> Result<PruneReport> {
    let started = Instant::now();
    let requests = Arc::new(Requests::default());
    let counted = repo.with_backend(Arc::new(Counted::new(
        repo.backend.clone(),
        requests.clone(),
    )));
    let dir = tempfile::tempdir_in(cat.path().parent().unwrap_or(std::path::Path::new(".")))
        .context("creating the prune's temporary catalog next to the catalog")?;
    let private = Arc::new(Catalog::private(
        dir.path(),
        &repo.config.repository_id,
        catalog::Auth::of(&repo.keys),
    )?);
    let mut report = cancel
        .or_cancel(async {
            if opts.dry_run {
                dry_run(&counted, &private, opts).await
            } else {
                Collector::start(&counted, private.clone(), opts)
                    .await?
                    .run()
                    .await
            }
        })
        .await?;
    if !opts.dry_run {
        crate::audit::record(
            repo,
            "prune",
            &[],
            format!(
                "deleted {} pack(s) ({}), {} of them repacked ({} still used copied to new packs)",
                report.deleted_packs,
                crate::util::human_bytes(report.deleted_bytes),
                report.repacked_packs,
                crate::util::human_bytes(report.repacked_bytes)
            ),
        )
        .await;
        // This machine's catalog learns what went (others on their next sync).
        if let Err(e) = sync::sync(cat, repo).await {
            tracing::warn!(
                "the catalog could not catch up with the prune ({e}); the next command does"
            );
        }
    }
    report.requests = requests.total();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// What a prune would do now: the mark alone, writing nothing.
async fn dry_run(
    repo: &Repository,
    private: &Arc<Catalog>,
    opts: &PruneOptions,
) -> Result<PruneReport> {
    let marked = mark::mark(repo, private, None).await?;
    let repack = repack::choose(
        &marked.usage,
        opts.max_unused_percent / 100.0,
        opts.max_repack_bytes,
    );
    let mut report = PruneReport {
        dry_run: true,
        ..marked.report()
    };
    report.repacked_packs = repack.len() as u64;
    report.repacked_bytes = repack.iter().map(|u| u.live_bytes).sum();
    report.deleted_packs = marked.condemned.len() as u64 + report.repacked_packs;
    report.deleted_bytes =
        marked.condemned_bytes + repack.iter().map(|u| u.pack.length).sum::<u64>();
    // Besides the reads made: the lease, state changes, plan and deletion
    // set, a read and about one write per repacked pack, a delete per pack.
    report.requests = 8 + 2 * report.repacked_packs + report.deleted_packs;
    Ok(report)
}

/// A running collection: its own session (the lease that shows it is
/// alive), the state as it last wrote it, and the private catalog.
struct Collector<'a> {
    repo: &'a Repository,
    private: Arc<Catalog>,
    opts: &'a PruneOptions,
    session: Session,
    observed: Observed,
    report: PruneReport,
}

impl<'a> Collector<'a> {
    /// Opens the collector's session and claims `gc/state`: from `idle`, or
    /// by taking over a collection whose prune is no longer alive.
    async fn start(
        repo: &'a Repository,
        private: Arc<Catalog>,
        opts: &'a PruneOptions,
    ) -> Result<Collector<'a>> {
        let session = Session::start(repo).await?;
        let mut c = Collector {
            repo,
            private,
            opts,
            session,
            observed: gc::read_state(repo).await?,
            report: PruneReport::default(),
        };
        match c.claim().await {
            Ok(()) => Ok(c),
            Err(e) => Err(c.session.abandon(repo, e).await),
        }
    }

    async fn claim(&mut self) -> Result<()> {
        let state = self.observed.state.clone();
        let me = self.session.id;
        if state.phase == Phase::Idle {
            self.observed = gc::swap_state(
                self.repo,
                &self.observed,
                GcState {
                    phase: Phase::Marking,
                    pruner: Some(me),
                    ..state
                },
            )
            .await?;
            return Ok(());
        }
        let Some(other) = state.pruner else {
            return Err(Error::Corrupt(
                "gc/state names a collection but no prune".into(),
            ));
        };
        if let Some(age) = self.live_lease_age(other).await? {
            input!(
                "another prune is running (session {}, on {}, phase {}, its lease renewed {age} s ago); nothing was done. Run one prune per repository at a time",
                other.short(),
                state.hostname,
                state.phase.name()
            );
        }
        tracing::warn!(
            "taking over the {} collection of prune session {} (on {}), whose lease has expired",
            state.phase.name(),
            other.short(),
            state.hostname
        );
        // A plan taken over in `marked` is published again under a new
        // id: the deletion set is named by the plan, and the old prune may
        // still write one for its plan; ours must be a name only we write.
        let plan = match (state.phase, state.plan) {
            (Phase::Marked, Some(old)) => {
                let condemned = gc::read_plan(self.repo, ObjectName::Plan(old)).await?;
                let plan = PlanId::random();
                let name = ObjectName::Plan(plan);
                self.repo
                    .put_new(&name, condemned.seal(&self.repo.keys.enc, &name))
                    .await?;
                Some(plan)
            }
            (_, plan) => plan,
        };
        self.observed = gc::swap_state(
            self.repo,
            &self.observed,
            GcState {
                pruner: Some(me),
                plan,
                ..state
            },
        )
        .await?;
        // Whatever the old prune still had in flight cannot commit now.
        self.fence(other).await?;
        self.report.took_over = true;
        Ok(())
    }

    /// The seconds since `session`'s lease was last written, by the
    /// storage's clock, if it is still live; `None` if it is gone or has
    /// expired.
    async fn live_lease_age(&self, session: SessionId) -> Result<Option<i64>> {
        let now = self.session.storage_now(self.repo).await?;
        mark::lease_age(self.repo, session, now).await
    }

    /// Fences `session`: its commit, created by us as a tombstone. If it
    /// has one already, it committed (or was fenced): either is final.
    async fn fence(&mut self, session: SessionId) -> Result<bool> {
        let tomb = cairn_repo_format::Commit {
            fenced_by: Some(self.session.id),
            ..cairn_repo_format::Commit::empty(
                session,
                util::hostname(),
                util::now_ns(),
                util::now_ns(),
            )
        };
        match self
            .repo
            .backend
            .put(
                &ObjectName::Commit(session),
                tomb.seal(&self.repo.keys.enc).into(),
                crate::backend::PutMode::Create,
            )
            .await
        {
            Ok(()) => {
                tracing::info!(session = %session.short(), "fenced a session that did not finish");
                self.report.fenced_sessions += 1;
                Ok(true)
            }
            Err(e) if e.kind == crate::backend::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).context("fencing a session"),
        }
    }

    /// Moves `gc/state` to `phase` with `plan`, from the version we wrote.
    async fn advance(&mut self, phase: Phase, plan: Option<PlanId>) -> Result<()> {
        let to = GcState {
            phase,
            plan,
            pruner: (phase != Phase::Idle).then_some(self.session.id),
            ..self.observed.state.clone()
        };
        self.observed = gc::swap_state(self.repo, &self.observed, to).await?;
        tracing::debug!(
            phase = phase.name(),
            generation = self.observed.state.generation,
            "gc/state"
        );
        Ok(())
    }

    /// Runs the phases from where the state is, to `idle`. It stops at
    /// once if its session is found fenced (another prune took over).
    async fn run(mut self) -> Result<PruneReport> {
        let fence = self.session.fence.clone();
        let generation = self.observed.state.generation;
        let mut result = fence.or_cancel(self.phases()).await;
        if let Err(e) = result {
            // A collection taken over shows in how it fails (its plan gone,
            // its lease gone) before its own fence fires: gc/state says.
            let me = Some(self.session.id);
            let moved_on = self.session.fenced()
                || matches!(gc::read_state(self.repo).await, Ok(o) if o.state.pruner != me);
            result = Err(if moved_on {
                Error::TakenOver { generation }
            } else {
                e
            });
        }
        let Collector {
            repo,
            session,
            report,
            ..
        } = self;
        match result {
            Ok(()) => {
                session.end(repo).await;
                Ok(report)
            }
            Err(e) => {
                session.end(repo).await;
                Err(e)
            }
        }
    }

    async fn phases(&mut self) -> Result<()> {
        // Old plans: every collection before this one has ended.
        let old_plans = self.old_plans().await?;
        loop {
            match self.observed.state.phase {
                Phase::Idle => break,
                Phase::Marking => {
                    let now = self.session.storage_now(self.repo).await?;
                    let marked = mark::mark(self.repo, &self.private, Some(now)).await?;
                    let r = marked.report();
                    self.report.packs = r.packs;
                    self.report.partly_used_packs = r.partly_used_packs;
                    self.report.partly_unused_bytes = r.partly_unused_bytes;
                    let chosen = repack::choose(
                        &marked.usage,
                        self.opts.max_unused_percent / 100.0,
                        self.opts.max_repack_bytes,
                    );
                    let (repacked, copied) =
                        repack::repack(self.repo, &self.private, &chosen).await?;
                    self.report.repacked_packs = repacked.len() as u64;
                    self.report.repacked_bytes = copied;
                    let mut condemned = marked.condemned.clone();
                    condemned.extend(repacked);
                    self.report.condemned_packs = condemned.len() as u64;
                    self.report.condemned_bytes =
                        r.condemned_bytes + chosen.iter().map(|u| u.pack.length).sum::<u64>();
                    let plan = PlanId::random();
                    let set = PackSet::new(condemned);
                    let name = ObjectName::Plan(plan);
                    self.repo
                        .put_new(&name, set.seal(&self.repo.keys.enc, &name))
                        .await?;
                    self.advance(Phase::Marked, Some(plan)).await?;
                    self.report.plan = Some(plan);
                }
                Phase::Marked => {
                    let plan = self.plan()?;
                    let condemned = gc::read_plan(self.repo, ObjectName::Plan(plan)).await?;
                    sweep::settle(self, &condemned).await?;
                    let deletions = sweep::rescue(self, &condemned).await?;
                    let name = ObjectName::Deletions(plan);
                    self.repo
                        .put_new(&name, deletions.seal(&self.repo.keys.enc, &name))
                        .await?;
                    self.advance(Phase::Deleting, Some(plan)).await?;
                }
                Phase::Deleting => {
                    let plan = self.plan()?;
                    self.report.plan = Some(plan);
                    let deletions = gc::read_plan(self.repo, ObjectName::Deletions(plan)).await?;
                    sweep::replace_index(self, &deletions).await?;
                    sweep::delete_packs(self, &deletions).await?;
                    sweep::clean_up(self, &old_plans).await?;
                    self.advance(Phase::Idle, None).await?;
                }
            }
        }
        Ok(())
    }

    fn plan(&self) -> Result<PlanId> {
        self.observed.state.plan.ok_or_else(|| {
            Error::Corrupt(format!(
                "gc/state is {} but names no plan",
                self.observed.state.phase.name()
            ))
        })
    }

    /// Plans and deletion sets of collections that ended: all there are
    /// once this collection holds the state, except its own.
    async fn old_plans(&self) -> Result<Vec<ObjectName>> {
        let current = self.observed.state.plan;
        let mut out = Vec::new();
        for kind in [ObjectKind::Plan, ObjectKind::Deletions] {
            for name in self.repo.backend.list(kind).await? {
                let id = match name {
                    ObjectName::Plan(id) | ObjectName::Deletions(id) => id,
                    _ => continue,
                };
                if Some(id) != current {
                    out.push(name);
                }
            }
        }
        Ok(out)
    }
}

/// Brings the private catalog up to date with every commit, index file
/// and tree, and fails if any could not be read: a prune that does not
/// know everything a snapshot uses must not delete anything.
async fn read_all(repo: &Repository, private: &Arc<Catalog>) -> Result<()> {
    let unreadable = sync::sync(private, repo).await?.unreadable;
    if unreadable > 0 {
        return Err(Error::Corrupt(format!(
            "{unreadable} session(s) of the repository could not be read (see the warnings above); prune must know every index file and snapshot, so nothing was deleted. Run `cairn check` to see what is damaged"
        )));
    }
    sync::fetch_trees(private, repo, Trees::All).await?;
    let incomplete = private.incomplete()?;
    if let Some((id, _)) = incomplete.first() {
        return Err(Error::Corrupt(format!(
            "the trees of {} snapshot(s) could not be read (snapshot {} first; see the warnings above); prune must know every blob a snapshot uses, so nothing was deleted. Run `cairn check`",
            incomplete.len(),
            id.short()
        )));
    }
    Ok(())
}
