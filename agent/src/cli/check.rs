//! `cairn check`

use super::{Ctx, Status};
use crate::ops::{self, CheckOptions, CheckReport, Subset};
use crate::util::human_bytes;
use anyhow::Result;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also download every pack and verify every blob in it (decrypt,
    /// decompress, compare with its id).
    #[arg(long)]
    read_data: bool,
    /// Read only some packs: N/T (part N of T), next/T (the part after the
    /// one this machine read last: T runs cover everything), or P% (a
    /// random share).
    #[arg(long, value_name = "SUBSET", conflicts_with = "read_data")]
    read_data_subset: Option<Subset>,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let opts = CheckOptions {
        read_data: match (args.read_data, args.read_data_subset) {
            (_, Some(s)) => Some(s),
            (true, None) => Some(Subset::All),
            (false, None) => None,
        },
    };
    let (repo, cat) = ctx.open_with_catalog().await?;
    let report = ops::check(&repo, &cat, &opts, &ctx.cancel).await?;
    print(&report, ctx.json)?;
    if report.is_clean() {
        Ok(Status::Success)
    } else {
        Err(anyhow::Error::new(super::Reported(format!(
            "the repository is damaged: {} problem(s) found (above); restore the damaged snapshots' other data with `cairn restore`, and back up again to store what was lost",
            report.problems.len()
        ))))
    }
}

fn print(r: &CheckReport, json: bool) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        drop(out);
        return super::json::print(r);
    }
    writeln!(
        out,
        "{} session(s), {} snapshot(s), {} pack(s) checked",
        r.sessions, r.snapshots, r.packs
    )?;
    if r.packs_read > 0 {
        writeln!(
            out,
            "read {} pack(s), {} blob(s), {}",
            r.packs_read,
            r.blobs_read,
            human_bytes(r.bytes_read)
        )?;
    }
    for p in &r.problems {
        let snaps = if p.snapshots.is_empty() {
            String::new()
        } else {
            format!(
                "; damages snapshot(s) {}",
                p.snapshots
                    .iter()
                    .map(|s| s.short())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        writeln!(out, "error: {}: {}{snaps}", p.object, p.what)?;
    }
    if r.unreferenced_packs > 0 {
        writeln!(
            out,
            "{} pack(s), {}, are used by no snapshot: `cairn prune` removes them",
            r.unreferenced_packs,
            human_bytes(r.unreferenced_bytes)
        )?;
    }
    for u in &r.unfinished {
        writeln!(
            out,
            "session {} has not finished (lease written {} s ago): a backup running, or one that stopped; prune fences it once its lease expires",
            u.session.short(),
            u.age_s
        )?;
    }
    if r.is_clean() {
        writeln!(out, "no damage found")?;
    }
    out.flush()?;
    Ok(())
}
