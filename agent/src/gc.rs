//! The collector's shared objects (format §10.1) as writers and the
//! collector see them: `gc/state`, read with its version and changed only
//! by compare-and-swap, and the packs a published plan condemns.

use crate::backend::{ErrorKind, Expect, Version};
use crate::error::{Context, Error, Result};
use crate::repo::Repository;
use crate::util;
use bytes::Bytes;
use cairn_repo_format::{GcState, ObjectName, PackSet, Phase};
use std::sync::Arc;

/// `gc/state` as read, with the version a compare-and-swap must name.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The state (idle at generation 0 when there is no object yet).
    pub state: GcState,
    /// Its version; `None` when the object does not exist yet.
    pub version: Option<Version>,
}

/// Reads `gc/state`.
///
/// # Errors
/// If it cannot be read, or fails authentication.
pub async fn read_state(repo: &Repository) -> Result<Observed> {
    match repo.backend.get_versioned(&ObjectName::GcState).await {
        Ok((data, version)) => {
            let state = GcState::open(&repo.keys.enc, &data).context("reading gc/state")?;
            Ok(Observed {
                state,
                version: Some(version),
            })
        }
        Err(e) if e.kind == ErrorKind::NotFound => Ok(Observed {
            state: GcState::initial(util::hostname(), 0),
            version: None,
        }),
        Err(e) => Err(e).context("reading gc/state"),
    }
}

/// Replaces `from` by `to` (its generation one more), by compare-and-swap;
/// creates the object if `from` had none.
///
/// # Errors
/// [`Error::TakenOver`] if the state changed since `from` was read;
/// storage failures.
pub async fn swap_state(repo: &Repository, from: &Observed, mut to: GcState) -> Result<Observed> {
    to.generation = from.state.generation + 1;
    to.hostname = util::hostname();
    to.updated_ns = util::now_ns();
    let data = Bytes::from(to.seal(&repo.keys.enc));
    let expect = match &from.version {
        Some(v) => Expect::Version(v),
        None => Expect::Absent,
    };
    match repo
        .backend
        .put_versioned(&ObjectName::GcState, data, expect)
        .await
    {
        Ok(version) => Ok(Observed {
            state: to,
            version: Some(version),
        }),
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::Changed | ErrorKind::AlreadyExists | ErrorKind::NotFound
            ) =>
        {
            Err(Error::TakenOver {
                generation: from.state.generation,
            })
        }
        Err(e) => Err(e).context("changing gc/state"),
    }
}

/// Reads a plan's condemned packs.
///
/// # Errors
/// If the plan cannot be read or fails authentication.
pub async fn read_plan(repo: &Repository, name: ObjectName) -> Result<PackSet> {
    let data = repo
        .backend
        .get(&name)
        .await
        .with_context(|| format!("reading {name}"))?;
    let enc = repo.keys.enc.clone();
    tokio::task::spawn_blocking(move || PackSet::open(&enc, &name, &data))
        .await?
        .with_context(|| format!("reading {name}"))
}

/// What a writer must not reuse blobs from (format §8.1 step 2): the packs
/// condemned by the plan of a collection in `marked` or `deleting`, if any.
/// Read after the session's lease exists and before the index.
///
/// # Errors
/// If `gc/state` or the plan cannot be read.
pub async fn writer_view(repo: &Repository) -> Result<Option<Arc<PackSet>>> {
    // A plan is removed only after its collection ended: a plan gone
    // between reading the state and reading it means the state moved on.
    for _ in 0..3 {
        let observed = read_state(repo).await?;
        match condemned(repo, &observed.state).await {
            Err(e) if matches!(e.root(), Error::Backend(b) if b.kind == ErrorKind::NotFound) => {}
            other => return other,
        }
    }
    let observed = read_state(repo).await?;
    condemned(repo, &observed.state).await
}

/// The packs `state`'s plan condemns, when it has a published plan.
///
/// # Errors
/// If the plan cannot be read.
pub async fn condemned(repo: &Repository, state: &GcState) -> Result<Option<Arc<PackSet>>> {
    match (state.phase, state.plan) {
        (Phase::Marked | Phase::Deleting, Some(plan)) => {
            let set = read_plan(repo, ObjectName::Plan(plan)).await?;
            tracing::debug!(
                plan = %plan.short(),
                packs = set.len(),
                "a prune is under way: blobs only in its condemned packs are stored again"
            );
            Ok(Some(Arc::new(set)))
        }
        _ => Ok(None),
    }
}
