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

fn print_info(cat: &Catalog) -> Result<()> {
    let i = ops::catalog::info(cat)?;
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
            print_info(&cat)?;
        }
        Command::Info => {
            ops::sync(&repo, &cat, Trees::Of(&[]), &ctx.cancel).await?;
            print_info(&cat)?;
        }
        Command::Check => {
            let c = ops::catalog::check(&repo, &cat, &ctx.cancel).await?;
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
