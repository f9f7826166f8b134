//! `cairn audit`: the repository's audit trail (format §7.3), oldest first.

use super::{Ctx, Status};
use crate::util::{format_time, rfc3339};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only events of these kinds (backup, forget, prune, key-add,
    /// key-remove, copy, restore, drill).
    #[arg(long = "event", value_name = "EVENT")]
    events: Vec<String>,
}

/// One record, as `--json` prints it (docs/json.md `audit`).
#[derive(Debug, Serialize)]
struct RecordJson {
    id: String,
    time: String,
    event: String,
    host: String,
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod: Option<String>,
    snapshots: Vec<String>,
    text: String,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let repo = ctx.open().await?;
    let records = ctx
        .cancel
        .or_cancel(cairn_agent::audit::list(&repo))
        .await?;
    let chosen = records
        .iter()
        .filter(|(_, r)| args.events.is_empty() || args.events.contains(&r.event));
    if ctx.json {
        let out: Vec<RecordJson> = chosen
            .map(|(id, r)| RecordJson {
                id: id.to_hex(),
                time: rfc3339(r.time_ns),
                event: r.event.clone(),
                host: r.hostname.clone(),
                user: r.username.clone(),
                pod: r.pod.clone(),
                snapshots: r.snapshots.iter().map(|s| s.to_hex()).collect(),
                text: r.text.clone(),
            })
            .collect();
        super::json::print(&out)?;
        return Ok(Status::Success);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(
        out,
        "{:<19}  {:<10}  {:<16}  {:<16}  WHAT",
        "TIME (UTC)", "EVENT", "HOST", "BY"
    )?;
    for (_, r) in chosen {
        let by = r.pod.clone().unwrap_or_else(|| r.username.clone());
        writeln!(
            out,
            "{:<19}  {:<10}  {:<16}  {:<16}  {}",
            format_time(r.time_ns),
            r.event,
            r.hostname,
            by,
            r.text
        )?;
    }
    out.flush()?;
    Ok(Status::Success)
}
