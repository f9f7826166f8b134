//! The local catalog: rebuilding it, describing it, and checking that what
//! it lists is in the repository.

use crate::cancel::Cancel;
use crate::catalog::{Catalog, PackRef};
use crate::error::Result;
use crate::repo::Repository;
use crate::sync::{self, read_commits, read_listed, Counts, SyncReport, Trees};
use cairn_repo_format::{ObjectKind, ObjectName, SessionId};
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;

/// Sessions read at once by a check.
const CHECK_SESSIONS_AT_ONCE: usize = 4;

/// What the catalog holds.
#[derive(Debug, Clone)]
pub struct CatalogInfo {
    /// Its file.
    pub path: std::path::PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Committed sessions.
    pub sessions: i64,
    /// Packs.
    pub packs: i64,
    /// Blobs.
    pub blobs: i64,
    /// Snapshots.
    pub snapshots: i64,
    /// Trees.
    pub trees: i64,
    /// Packs found missing from the repository (not used).
    pub missing: Vec<PackRef>,
}

/// Describes the catalog.
///
/// # Errors
/// If the catalog cannot be read.
pub fn info(cat: &Catalog) -> Result<CatalogInfo> {
    let [sessions, packs, blobs, snapshots, trees] = cat.counts()?;
    Ok(CatalogInfo {
        path: cat.path().to_owned(),
        size: std::fs::metadata(cat.path()).map_or(0, |m| m.len()),
        sessions,
        packs,
        blobs,
        snapshots,
        trees,
        missing: cat.missing_packs()?,
    })
}

/// Starts the catalog again from the repository, every tree included.
///
/// # Errors
/// If the repository cannot be read or the catalog written.
pub async fn rebuild(repo: &Repository, cat: &Arc<Catalog>, cancel: &Cancel) -> Result<SyncReport> {
    cat.clear()?;
    super::sync(repo, cat, Trees::All, cancel).await
}

/// What [`check`] found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Packs the catalog knows.
    pub packs: usize,
    /// Packs listed by a committed index but not in the repository (the
    /// catalog no longer uses them).
    pub missing: Vec<PackRef>,
    /// Packs found missing before that are back (used again).
    pub found: Vec<PackRef>,
    /// Sessions whose commit, index files or snapshots cannot be read or
    /// fail authentication, and why.
    pub damaged: Vec<(SessionId, String)>,
    /// Committed sessions.
    pub sessions: usize,
}

impl CheckReport {
    /// Whether everything checked is in order.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.damaged.is_empty()
    }
}

/// Syncs the catalog, then reads and authenticates every committed
/// session's objects and checks that every pack the catalog lists is in
/// the repository. Missing packs are marked in the catalog (nothing is
/// deleted), so the next backup stores their data again.
///
/// # Errors
/// If the repository cannot be listed or the catalog cannot be written.
pub async fn check(repo: &Repository, cat: &Arc<Catalog>, cancel: &Cancel) -> Result<CheckReport> {
    cancel
        .or_cancel(async {
            sync::sync(cat, repo).await?;
            check_packs_and_sessions(repo, cat).await
        })
        .await
}

async fn check_packs_and_sessions(repo: &Repository, cat: &Catalog) -> Result<CheckReport> {
    let present: HashSet<ObjectName> = repo
        .backend
        .list(ObjectKind::Pack)
        .await?
        .into_iter()
        .collect();
    let there = |p: &PackRef| present.contains(&ObjectName::Pack(p.session, p.id));
    let (mut missing, mut found) = (Vec::new(), Vec::new());
    let used = cat.packs()?;
    for p in used.iter().filter(|p| !there(p)) {
        cat.mark_missing(p)?;
        missing.push(*p);
    }
    // Packs found missing before are looked for again.
    let unused = cat.missing_packs()?;
    for p in &unused {
        if there(p) {
            cat.mark_found(p)?;
            found.push(*p);
        } else if !missing.contains(p) {
            missing.push(*p);
        }
    }
    let sessions = sync::list_sessions(repo).await?;
    let mut counts = Counts::default();
    let mut damaged = Vec::new();
    let mut commits = Vec::new();
    for (sid, read) in read_commits(repo, sessions.iter().copied(), &mut counts).await {
        match read {
            Ok(c) => commits.push(c),
            Err(e) => damaged.push((sid, e.to_string())),
        }
    }
    let counts = &counts;
    let unreadable: Vec<(SessionId, String)> = futures::stream::iter(commits)
        .map(|c| async move {
            let sid = c.session;
            read_listed(repo, c, counts)
                .await
                .err()
                .map(|e| (sid, e.to_string()))
        })
        .buffer_unordered(CHECK_SESSIONS_AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await;
    damaged.extend(unreadable);
    let packs: HashSet<&PackRef> = used.iter().chain(&unused).collect();
    Ok(CheckReport {
        packs: packs.len(),
        missing,
        found,
        damaged,
        sessions: sessions.len(),
    })
}
