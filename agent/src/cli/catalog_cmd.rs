//! `cairn catalog`: the local cache of the repository.

use super::{Ctx, Status};
use crate::catalog::Catalog;
use crate::ops::{self, Trees};
use anyhow::{bail, Result};
use cairn_repo_format::ObjectName;
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

/// `catalog info --json` (and `rebuild`).
#[derive(serde::Serialize)]
struct InfoJson {
    path: String,
    sessions: i64,
    snapshots: i64,
    packs: i64,
    blobs: i64,
    trees: i64,
    size_bytes: u64,
    /// Packs found missing from the repository (`packs/SESSION/PACK`).
    missing_packs: Vec<String>,
}

/// `catalog check --json`.
#[derive(serde::Serialize)]
struct CheckJson {
    ok: bool,
    sessions: usize,
    packs: usize,
    /// Packs found missing before that are back.
    found_again: Vec<String>,
    missing_packs: Vec<String>,
    damaged_sessions: Vec<DamagedSession>,
}

#[derive(serde::Serialize)]
struct DamagedSession {
    session: String,
    reason: String,
}

fn print_info(cat: &Catalog, json: bool) -> Result<()> {
    let i = ops::catalog::info(cat)?;
    if json {
        return super::json::print(&InfoJson {
            path: i.path.display().to_string(),
            sessions: i.sessions,
            snapshots: i.snapshots,
            packs: i.packs,
            blobs: i.blobs,
            trees: i.trees,
            size_bytes: i.size,
            missing_packs: i
                .missing
                .iter()
                .map(|p| ObjectName::Pack(p.session, p.id).to_string())
                .collect(),
        });
    }
    println!("catalog {}", i.path.display());
    println!(
        "{} sessions, {} snapshots, {} packs, {} blobs, {} trees, {}",
        i.sessions,
        i.snapshots,
        i.packs,
        i.blobs,
        i.trees,
        crate::util::human_bytes(i.size)
    );
    if !i.missing.is_empty() {
        println!(
            "{} pack(s) found missing from the repository (not used): {}",
            i.missing.len(),
            i.missing
                .iter()
                .map(|p| format!("{}/{}", p.session.short(), p.id.short()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, command: Command) -> Result<Status> {
    let (repo, cat) = ctx.open_with_catalog().await?;
    match command {
        Command::Rebuild => {
            let started = Instant::now();
            let r = ops::catalog::rebuild(&repo, &cat, &ctx.cancel).await?;
            eprintln!(
                "rebuilt from {} session(s) in {:.2} s",
                r.sessions,
                started.elapsed().as_secs_f64()
            );
            print_info(&cat, ctx.json)?;
        }
        Command::Info => {
            ops::sync(&repo, &cat, Trees::Of(&[]), &ctx.cancel).await?;
            print_info(&cat, ctx.json)?;
        }
        Command::Check => {
            let c = ops::catalog::check(&repo, &cat, &ctx.cancel).await?;
            if ctx.json {
                let name =
                    |p: &crate::catalog::PackRef| ObjectName::Pack(p.session, p.id).to_string();
                let ok = c.missing.is_empty() && c.damaged.is_empty();
                super::json::print(&CheckJson {
                    ok,
                    sessions: c.sessions,
                    packs: c.packs,
                    found_again: c.found.iter().map(name).collect(),
                    missing_packs: c.missing.iter().map(name).collect(),
                    damaged_sessions: c
                        .damaged
                        .iter()
                        .map(|(sid, why)| DamagedSession {
                            session: sid.to_hex(),
                            reason: why.clone(),
                        })
                        .collect(),
                })?;
                if !ok {
                    return Err(anyhow::Error::new(super::Reported(
                        "the catalog check found missing packs or damaged sessions (in the report)"
                            .into(),
                    )));
                }
                return Ok(Status::Success);
            }
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
