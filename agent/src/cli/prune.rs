//! `cairn prune`

use super::{Ctx, Status};
use crate::ops::{self, PruneOptions, PruneReport};
use crate::util::human_bytes;
use anyhow::Result;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print what would be deleted (packs, bytes, requests); change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// How long to wait for a backup that started before this prune and is
    /// still running (its lease renewed) before fencing it anyway, in
    /// seconds; a fenced backup fails and runs again.
    #[arg(long, value_name = "SECONDS", default_value_t = ops::prune::DEFAULT_MAX_WAIT_S)]
    max_wait: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl Args {
    /// The options these arguments give.
    pub fn options(&self) -> PruneOptions {
        PruneOptions {
            max_wait_s: self.max_wait,
            dry_run: self.dry_run,
        }
    }
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let (repo, cat) = ctx.open_with_catalog().await?;
    let report = ops::prune(&repo, &cat, &args.options(), &ctx.cancel).await?;
    print(&report, args.json)?;
    Ok(Status::Success)
}

/// Prints a prune's report.
pub fn print(report: &PruneReport, json: bool) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
        out.flush()?;
        return Ok(());
    }
    let r = report;
    if r.dry_run {
        writeln!(
            out,
            "would delete {} pack(s), {} (of {} pack(s) indexed); about {} storage request(s); nothing was changed",
            r.deleted_packs,
            human_bytes(r.deleted_bytes),
            r.packs,
            r.requests
        )?;
    } else {
        if r.took_over {
            writeln!(out, "took over a prune that had stopped")?;
        }
        writeln!(
            out,
            "deleted {} pack(s), {}; {} kept for backups that committed meanwhile",
            r.deleted_packs,
            human_bytes(r.deleted_bytes),
            r.rescued_packs
        )?;
        if r.fenced_sessions > 0 {
            writeln!(out, "fenced {} unfinished session(s)", r.fenced_sessions)?;
        }
        if r.superseded_sessions > 0 {
            writeln!(
                out,
                "replaced the index files of {} session(s)",
                r.superseded_sessions
            )?;
        }
        writeln!(
            out,
            "removed {} other object(s); {} storage request(s) in {:.1} s",
            r.removed_objects, r.requests, r.seconds
        )?;
    }
    if r.partly_used_packs > 0 {
        writeln!(
            out,
            "{} pack(s) are partly used and stay whole ({} unused in them)",
            r.partly_used_packs,
            human_bytes(r.partly_unused_bytes)
        )?;
    }
    out.flush()?;
    Ok(())
}
