//! `cairn snapshots`

use super::json::SnapshotJson;
use super::Status;
use crate::catalog::Catalog;
use crate::source::describe;
use crate::util::{format_time, human_bytes};
use anyhow::Result;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    filter: super::filter::FilterArgs,
}

pub fn run(cat: &Catalog, args: Args, json: bool) -> Result<Status> {
    let snapshots = args.filter.filter().apply(cat.snapshots()?)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let list: Vec<_> = snapshots
            .iter()
            .map(|(id, s)| SnapshotJson::new(id, s))
            .collect();
        super::json::print(&list)?;
        return Ok(Status::Success);
    }
    writeln!(
        out,
        "{:<9} {:<19} {:<16} {:>10}  SOURCE",
        "ID", "TIME (UTC)", "HOST", "READ"
    )?;
    for (id, s) in &snapshots {
        let partial = if s.partial { " (partial)" } else { "" };
        let tags = if s.tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", s.tags.join(","))
        };
        writeln!(
            out,
            "{:<9} {:<19} {:<16} {:>10}  {}{partial}{tags}",
            id.short(),
            format_time(s.time_ns),
            s.hostname,
            human_bytes(s.summary.bytes_read),
            describe(&s.source)
        )?;
    }
    writeln!(out, "{} snapshots", snapshots.len())?;
    out.flush()?;
    Ok(Status::Success)
}
