//! `cairn catalog`: the local cache of the repository.

use super::Status;
use crate::catalog::{Catalog, PackRef};
use crate::repo::Repository;
use crate::sync::{read_session, sync};
use anyhow::{bail, Result};
use cairn_repo_format::{ObjectKind, ObjectName, SessionId};
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Forget everything and read the repository again.
    Rebuild,
    /// Sync, then show where the catalog is and what it holds.
    Info,
    /// Read and authenticate every commit, index file and snapshot; list
    /// the repository's packs and report every pack the index lists that is
    /// not there (the catalog stops using it; nothing is deleted), and use
    /// again those found back.
    Check,
}

fn print_counts(cat: &Catalog) -> Result<()> {
    let [sessions, packs, blobs, snapshots, trees] = cat.counts()?;
    let size = std::fs::metadata(cat.path()).map_or(0, |m| m.len());
    println!("catalog {}", cat.path().display());
    println!(
        "{sessions} sessions, {snapshots} snapshots, {packs} packs, {blobs} blobs, {trees} trees, {}",
        crate::util::human_bytes(size)
    );
    let missing = cat.missing_packs()?;
    if !missing.is_empty() {
        println!(
            "{} pack(s) found missing from the repository (not used): {}",
            missing.len(),
            missing
                .iter()
                .map(|p| format!("{}/{}", p.session.short(), p.id.short()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// What `catalog check` found.
struct Checked {
    /// Packs the catalog knows.
    packs: usize,
    /// Packs listed by an index but not in the repository.
    missing: Vec<PackRef>,
    /// Packs found missing before that are there again.
    found: Vec<PackRef>,
    /// Sessions whose commit, index files or snapshots cannot be read.
    damaged: Vec<(SessionId, String)>,
    /// Sessions read.
    sessions: usize,
}

/// Compares the catalog's packs (missing ones too) with one listing of the
/// repository's and marks them; reads every committed session's objects,
/// whether or not the catalog holds the session.
async fn check(cat: &Catalog, repo: &Repository) -> Result<Checked> {
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
    let sessions: Vec<SessionId> = repo
        .backend
        .list(ObjectKind::Commit)
        .await?
        .into_iter()
        .filter_map(|n| match n {
            ObjectName::Commit(sid) => Some(sid),
            _ => None,
        })
        .collect();
    let damaged: Vec<(SessionId, String)> = futures::stream::iter(&sessions)
        .map(|sid| async move {
            read_session(repo, *sid)
                .await
                .err()
                .map(|e| (*sid, format!("{e:#}")))
        })
        .buffer_unordered(4)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let packs: HashSet<&PackRef> = used.iter().chain(&unused).collect();
    Ok(Checked {
        packs: packs.len(),
        missing,
        found,
        damaged,
        sessions: sessions.len(),
    })
}

pub async fn run(repo: Repository, cat: Arc<Catalog>, command: Command) -> Result<Status> {
    match command {
        Command::Rebuild => {
            let started = Instant::now();
            cat.clear()?;
            let r = sync(&cat, &repo).await?;
            eprintln!(
                "rebuilt from {} session(s) in {:.2} s",
                r.sessions,
                started.elapsed().as_secs_f64()
            );
            print_counts(&cat)?;
        }
        Command::Info => {
            sync(&cat, &repo).await?;
            print_counts(&cat)?;
        }
        Command::Check => {
            sync(&cat, &repo).await?;
            let c = check(&cat, &repo).await?;
            for p in &c.found {
                eprintln!(
                    "{} is in the repository again; the catalog uses it again",
                    ObjectName::Pack(p.session, p.id)
                );
            }
            for p in &c.missing {
                eprintln!(
                    "inconsistency: {} is listed by a committed index but is not in the repository",
                    ObjectName::Pack(p.session, p.id)
                );
            }
            for (sid, why) in &c.damaged {
                eprintln!("damaged: session {}: {why}", sid.short());
            }
            let mut problems = Vec::new();
            if !c.missing.is_empty() {
                problems.push(format!(
                    "{} of {} pack(s) are missing (nothing was deleted; the catalog no longer uses them, so the next backup stores their data again)",
                    c.missing.len(),
                    c.packs
                ));
            }
            if !c.damaged.is_empty() {
                problems.push(format!(
                    "{} of {} session(s) have a commit, index file or snapshot that cannot be read or fails authentication (their snapshots are not used)",
                    c.damaged.len(),
                    c.sessions
                ));
            }
            if !problems.is_empty() {
                bail!("{}", problems.join("; "));
            }
            println!(
                "all {} session(s) read and authenticated; all {} pack(s) the index lists are in the repository",
                c.sessions, c.packs
            );
        }
    }
    Ok(Status::Success)
}
