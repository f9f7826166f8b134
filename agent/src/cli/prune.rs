//! `cairn prune`

use super::{Ctx, Status};
use crate::ops::{self, PruneOptions, PruneReport};
use crate::util::human_bytes;
use anyhow::Result;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print what would be deleted and repacked (packs, bytes, requests);
    /// change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    #[command(flatten)]
    tuning: Tuning,
}

/// How a prune runs (also for `forget --prune`).
#[derive(Debug, clap::Args)]
pub struct Tuning {
    /// How long to wait for a backup that started before this prune and is
    /// still running (its lease renewed) before fencing it anyway, in
    /// seconds; a fenced backup fails and runs again.
    #[arg(long, value_name = "SECONDS", default_value_t = ops::prune::DEFAULT_MAX_WAIT_S)]
    max_wait: u64,
    /// Repack packs more than this many percent unused (copy their live
    /// blobs, delete them); 100 never repacks.
    #[arg(long, value_name = "PERCENT", default_value_t = ops::prune::DEFAULT_MAX_UNUSED_PERCENT)]
    max_unused: f64,
    /// Copy at most this many MiB of live data when repacking.
    #[arg(long, value_name = "MIB")]
    max_repack_mib: Option<u64>,
}

impl Tuning {
    /// The options these arguments give.
    pub fn options(&self, dry_run: bool) -> PruneOptions {
        PruneOptions {
            max_wait_s: self.max_wait,
            max_unused_percent: self.max_unused.clamp(0.0, 100.0),
            max_repack_bytes: self.max_repack_mib.map(|m| m.saturating_mul(1 << 20)),
            dry_run,
        }
    }
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let (repo, cat) = ctx.open_with_catalog().await?;
    let opts = args.tuning.options(args.dry_run);
    let report = ops::prune(&repo, &cat, &opts, &ctx.cancel).await?;
    print(&report, ctx.json)?;
    Ok(Status::Success)
}

/// Prints a prune's report.
pub fn print(report: &PruneReport, json: bool) -> Result<()> {
    if json {
        return super::json::print(report);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let r = report;
    if r.dry_run {
        writeln!(
            out,
            "would delete {} pack(s), {} (of {} pack(s) indexed), repacking {} of them ({} of live data copied); about {} storage request(s); nothing was changed",
            r.deleted_packs,
            human_bytes(r.deleted_bytes),
            r.packs,
            r.repacked_packs,
            human_bytes(r.repacked_bytes),
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
        if r.repacked_packs > 0 {
            writeln!(
                out,
                "repacked {} partly used pack(s) ({} of live data copied)",
                r.repacked_packs,
                human_bytes(r.repacked_bytes)
            )?;
        }
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
    let kept = r.partly_used_packs.saturating_sub(r.repacked_packs);
    if kept > 0 {
        writeln!(
            out,
            "{kept} pack(s) are partly used and stay whole (below --max-unused)"
        )?;
    }
    out.flush()?;
    Ok(())
}
