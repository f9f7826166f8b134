//! `cairn snapshots`

use super::Status;
use crate::catalog::Catalog;
use crate::source::describe;
use crate::util::{format_time, human_bytes};
use anyhow::Result;
use cairn_repo_format::Source;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    filter: super::filter::FilterArgs,
}

/// A source as shown: a command's program only (snapshots written before
/// 2026-12-03 recorded its arguments too, which may hold a password).
fn shown(source: &Source) -> Source {
    match source {
        Source::Command { name, argv } => Source::Command {
            name: name.clone(),
            argv: argv.iter().take(1).cloned().collect(),
        },
        other => other.clone(),
    }
}

pub fn run(cat: &Catalog, args: Args) -> Result<Status> {
    let snapshots = args.filter.filter().apply(cat.snapshots()?)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let list: Vec<_> = snapshots
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(),
                    "short_id": id.short(),
                    "session": s.session.to_hex(),
                    "time_ns": s.time_ns,
                    "time": format_time(s.time_ns),
                    "hostname": s.hostname,
                    "username": s.username,
                    "source": shown(&s.source),
                    "tree": s.tree.to_hex(),
                    "partial": s.partial,
                    "tags": s.tags,
                    "summary": s.summary,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        out.flush()?;
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
