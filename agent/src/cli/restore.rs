//! `cairn restore`

use super::Status;
use crate::repo::{resolve_snapshot, Repository};
use crate::restore;
use crate::util::human_bytes;
use anyhow::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["target", "stdout"])))]
pub struct Args {
    /// Snapshot id prefix, or `latest`.
    snapshot: String,
    /// Restore into this directory (created if missing; existing files of the
    /// same names are replaced).
    #[arg(long)]
    target: Option<PathBuf>,
    /// Write one file (the stream, or the file given with --include) to standard output.
    #[arg(long)]
    stdout: bool,
    /// Restore only this path (repeatable; one file with --stdout).
    #[arg(long)]
    include: Vec<String>,
}

pub async fn run(repo: Repository, args: Args) -> Result<Status> {
    let committed = repo.committed().await?;
    let (id, snap) = resolve_snapshot(&committed, &args.snapshot)?;
    let index = repo.load_index(&committed).await?;
    if args.stdout {
        if args.include.len() > 1 {
            anyhow::bail!("--stdout writes one file: give at most one --include");
        }
        restore::to_stdout(
            &repo,
            &index,
            snap,
            args.include.first().map(String::as_str),
        )
        .await?;
        return Ok(Status::Success);
    }
    let target = args.target.unwrap_or_default();
    let r = restore::to_dir(&repo, &index, snap, &target, &args.include).await?;
    eprintln!(
        "restored snapshot {} to {}: {} files ({}), {} dirs, {} symlinks, {} hard links",
        id.short(),
        target.display(),
        r.files,
        human_bytes(r.bytes),
        r.dirs,
        r.symlinks,
        r.hardlinks
    );
    Ok(Status::Success)
}
