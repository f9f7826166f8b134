//! Marking (format §10.3 step 1): every snapshot that counts is walked to
//! its blobs, and the packs nothing uses are condemned.

use super::{read_all, PruneReport};
use crate::backend::ErrorKind;
use crate::catalog::{Catalog, PackUsage};
use crate::error::{Context, Result};
use crate::repo::Repository;
use crate::util;
use cairn_repo_format::{Lease, ObjectKind, ObjectName, PackName, SessionId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What marking found.
#[derive(Debug, Default)]
pub(super) struct Marked {
    /// The packs to condemn.
    pub condemned: Vec<PackName>,
    /// Their bytes.
    pub condemned_bytes: u64,
    /// Packs the index lists.
    packs: u64,
    /// Packs partly used, and their unused bytes.
    partly_used: u64,
    partly_unused_bytes: u64,
    /// How much of each indexed pack is live.
    pub usage: Vec<PackUsage>,
}

impl Marked {
    /// The report's figures.
    pub fn report(&self) -> PruneReport {
        PruneReport {
            packs: self.packs,
            condemned_packs: self.condemned.len() as u64,
            condemned_bytes: self.condemned_bytes,
            partly_used_packs: self.partly_used,
            partly_unused_bytes: self.partly_unused_bytes,
            ..PruneReport::default()
        }
    }
}

/// Marks every blob reachable from a snapshot that counts live, in
/// `private` (its trees are all there).
pub(super) async fn walk(private: &Arc<Catalog>) -> Result<()> {
    let cat = private.clone();
    tokio::task::spawn_blocking(move || cat.mark_all_live(false)).await?
}

/// How many seconds ago `session`'s lease was written, by the storage's
/// clock `now`, if it is live (written within its time-to-live); `None`
/// if it is gone or has expired, or if it was written on this host by a
/// process that no longer exists (killed: no need to wait for the lease to
/// expire). A lease that does not open is taken at the default
/// time-to-live.
pub(super) async fn lease_age(
    repo: &Repository,
    session: SessionId,
    now: i64,
) -> Result<Option<i64>> {
    let name = ObjectName::Lease(session);
    let stat = match repo.backend.stat(&name).await {
        Ok(s) => s,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading a session's lease"),
    };
    let lease = match repo.backend.get(&name).await {
        Ok(d) => Lease::open(&repo.keys.enc, session, &d).ok(),
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading a session's lease"),
    };
    if lease
        .as_ref()
        .is_some_and(|l| l.hostname == util::hostname() && !util::process_exists(l.pid))
    {
        return Ok(None);
    }
    let ttl_s = lease.map_or(Lease::V1_TTL_S, |l| l.ttl_s());
    let age = now.saturating_sub(stat.modified_ns) / 1_000_000_000;
    Ok((age <= i64::from(ttl_s)).then_some(age))
}

/// Marks, and computes the packs to condemn. `now` is the storage's
/// clock (a dry run, which has no lease, uses this machine's).
pub(super) async fn mark(
    repo: &Repository,
    private: &Arc<Catalog>,
    now: Option<i64>,
) -> Result<Marked> {
    read_all(repo, private).await?;
    walk(private).await?;
    let usage = private.pack_usage()?;
    let mut m = Marked {
        packs: usage.len() as u64,
        ..Marked::default()
    };
    m.usage = usage.clone();
    let mut indexed: HashSet<PackName> = HashSet::new();
    for u in &usage {
        indexed.insert((u.pack.session, u.pack.id));
        if u.live_blobs == 0 {
            m.condemned.push((u.pack.session, u.pack.id));
            m.condemned_bytes += u.pack.length;
        } else if u.live_blobs < u.blobs {
            m.partly_used += 1;
            m.partly_unused_bytes += u.bytes - u.live_bytes;
        }
    }
    // Packs no index lists: of sessions that have a commit (committed, or
    // fenced), or whose writer is gone (no live lease).
    let committed: HashSet<SessionId> = private.sessions()?.into_iter().collect();
    let mut orphans: HashMap<SessionId, Vec<PackName>> = HashMap::new();
    for name in repo.backend.list(ObjectKind::Pack).await? {
        if let ObjectName::Pack(s, p) = name {
            if !indexed.contains(&(s, p)) {
                orphans.entry(s).or_default().push((s, p));
            }
        }
    }
    let now = now.unwrap_or_else(util::now_ns);
    for (s, packs) in orphans {
        if committed.contains(&s) || lease_age(repo, s, now).await?.is_none() {
            for (s, p) in packs {
                m.condemned_bytes += repo
                    .backend
                    .head(&ObjectName::Pack(s, p))
                    .await
                    .unwrap_or(0);
                m.condemned.push((s, p));
            }
        }
    }
    Ok(m)
}
