//! `cairn catalog`: the local cache of the repository.

use super::Status;
use crate::catalog::{sync::sync, Catalog};
use crate::repo::Repository;
use anyhow::{bail, Result};
use cairn_repo_format::{ObjectKind, ObjectName};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Forget everything and read the repository again.
    Rebuild,
    /// Sync, then show where the catalog is and what it holds.
    Info,
    /// List the repository's packs and report every pack the index lists
    /// that is not there (the catalog stops using it; nothing is deleted).
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

/// Compares the catalog's packs with one listing of the repository's;
/// marks the absent ones missing. Returns (packs checked, missing).
async fn check(cat: &Catalog, repo: &Repository) -> Result<(usize, Vec<crate::catalog::PackRef>)> {
    let present: HashSet<ObjectName> = repo
        .backend
        .list(ObjectKind::Pack)
        .await?
        .into_iter()
        .collect();
    let packs = cat.packs()?;
    let mut missing = Vec::new();
    for p in &packs {
        if !present.contains(&ObjectName::Pack(p.session, p.id)) {
            cat.mark_missing(p)?;
            missing.push(*p);
        }
    }
    Ok((packs.len(), missing))
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
            let (checked, missing) = check(&cat, &repo).await?;
            if !missing.is_empty() {
                for p in &missing {
                    eprintln!(
                        "inconsistency: {} is listed by a committed index but is not in the repository",
                        ObjectName::Pack(p.session, p.id)
                    );
                }
                bail!(
                    "{} of {checked} pack(s) are missing. Nothing was deleted; the catalog no longer uses them, so the next backup stores their data again",
                    missing.len()
                );
            }
            println!("all {checked} pack(s) the index lists are in the repository");
        }
    }
    Ok(Status::Success)
}
