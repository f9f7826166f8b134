//! `cairn drill`: restore snapshots into scratch targets and prove they
//! hold what was backed up; the recovery time and point of each.

use super::json::SnapshotJson;
use super::{Ctx, Reported, Status};
use crate::ops::drill::{Drill, DrillOptions, DrillReport, PgScratch};
use crate::source::describe;
use crate::source::postgres::PgConn;
use crate::util::{format_time, human_bytes};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to drill (id prefixes or `latest`); none: the newest of
    /// each host and source the filters let through.
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// How far back to look for the largest gap between snapshots (the
    /// RPO): `7d` (the default), `36h`, `2w`.
    #[arg(long, value_name = "SPAN", value_parser = parse_window)]
    window: Option<u64>,
    /// Where scratch directories go (default: TMPDIR).
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    /// A shell command run after each restore and before the comparison,
    /// told where the restore is (PGHOST, PGPORT, PGUSER, PGDATABASE;
    /// CAIRN_DRILL_REDIS_SOCKET; CAIRN_DRILL_DIR); a non-zero exit fails
    /// the drill.
    #[arg(long, value_name = "COMMAND")]
    check_command: Option<String>,
    #[command(flatten)]
    pg: PgDrillArgs,
    /// The redis-server to load RDB files with (default: on PATH).
    #[arg(long, value_name = "PATH")]
    redis_server: Option<PathBuf>,
    #[command(flatten)]
    filter: super::filter::FilterArgs,
}

/// Where PostgreSQL snapshots are restored: by default a temporary server
/// Cairn starts from the local binaries; with --pg-host, a new database on
/// that server, dropped afterwards.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "PostgreSQL drills")]
struct PgDrillArgs {
    /// Restore into a new database on this server (host or socket
    /// directory) instead of a temporary server.
    #[arg(long, value_name = "HOST")]
    pg_host: Option<String>,
    /// Its port.
    #[arg(long, value_name = "PORT", requires = "pg_host")]
    pg_port: Option<u16>,
    /// The user to connect as (it needs CREATEDB).
    #[arg(long, value_name = "USER", requires = "pg_host")]
    pg_user: Option<String>,
    /// The database to connect to for creating and dropping the drill's
    /// own (default: postgres).
    #[arg(long, value_name = "DBNAME", requires = "pg_host")]
    pg_dbname: Option<String>,
    /// The directory of initdb and postgres for the temporary server
    /// (default: the newest of /usr/lib/postgresql/*/bin not older than the
    /// dump's server).
    #[arg(long, value_name = "DIR", conflicts_with = "pg_host")]
    pg_bindir: Option<PathBuf>,
}

/// `7d`, `36h`, `90m`, `2w` as seconds (days of 24 hours).
fn parse_window(text: &str) -> Result<u64, String> {
    let span: jiff::Span = text.trim().parse().map_err(|e| {
        format!("{text:?} is not a span of time ({e}); write for example 7d, 36h or 2w")
    })?;
    let seconds = span
        .total((
            jiff::Unit::Second,
            jiff::SpanRelativeTo::days_are_24_hours(),
        ))
        .map_err(|e| format!("{text:?}: {e}"))?;
    if seconds <= 0.0 {
        return Err(format!("{text:?} is not a positive span of time"));
    }
    Ok(seconds as u64)
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let postgres = match args.pg.pg_host {
        Some(host) => PgScratch::Server(PgConn {
            dbname: args.pg.pg_dbname,
            host: Some(host),
            port: args.pg.pg_port,
            username: args.pg.pg_user,
        }),
        None => PgScratch::Temporary {
            bindir: args.pg.pg_bindir,
        },
    };
    let opts = DrillOptions {
        snapshots: args.snapshots,
        filter: args.filter.filter(),
        window_seconds: args.window,
        scratch: args.scratch,
        postgres,
        redis_server: args.redis_server,
        check_command: args.check_command,
    };
    let (repo, cat) = ctx.open_with_catalog().await?;
    let report = crate::ops::drill::drill(&repo, &cat, &opts, &ctx.cancel).await?;
    if ctx.json {
        super::json::print(&DrillJson::new(&report))?;
    } else {
        print(&report)?;
    }
    if report.passed() {
        Ok(Status::Success)
    } else {
        let failed = report.drills.iter().filter(|d| !d.passed).count();
        Err(anyhow::Error::new(Reported(format!(
            "{failed} of {} drill(s) failed (above): the snapshot does not restore to what was backed up; back up again, and run `cairn check --read-data` to see whether the repository is damaged",
            report.drills.len()
        ))))
    }
}

/// A duration for people: `45 s`, `12 min`, `3.5 h`, `2.0 d`.
fn human_seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86400.0)
    }
}

fn print(r: &DrillReport) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for d in &r.drills {
        writeln!(
            out,
            "drill {} {} {} {}: {}",
            d.id.short(),
            format_time(d.snapshot.time_ns),
            d.snapshot.hostname,
            describe(&d.snapshot.source),
            if d.passed { "passed" } else { "FAILED" }
        )?;
        if !d.target.is_empty() {
            writeln!(out, "  restored into {}", d.target)?;
        }
        writeln!(
            out,
            "  RTO {} (restore), then {} checking; {}",
            human_seconds(d.rto_seconds),
            human_seconds(d.verify_seconds),
            checked(d)
        )?;
        let gap = d.rpo.largest_gap_seconds.map_or_else(
            || "no gap (fewer than two snapshots)".to_owned(),
            |g| format!("largest gap {}", human_seconds(g)),
        );
        writeln!(
            out,
            "  RPO: newest snapshot {} old; {gap} over the last {} ({} snapshot(s))",
            human_seconds(d.rpo.newest_age_seconds),
            human_seconds(d.rpo.window_seconds as f64),
            d.rpo.snapshots_in_window
        )?;
        for p in &d.problems {
            writeln!(out, "  problem: {p}")?;
        }
        for n in &d.notes {
            writeln!(out, "  note: {n}")?;
        }
    }
    let passed = r.drills.iter().filter(|d| d.passed).count();
    writeln!(
        out,
        "{passed} of {} drill(s) passed in {}",
        r.drills.len(),
        human_seconds(r.seconds)
    )?;
    out.flush()
}

/// What a drill compared, in words.
fn checked(d: &Drill) -> String {
    let c = &d.checked;
    let mut parts = Vec::new();
    if let (Some(t), Some(n)) = (c.tables, c.rows) {
        parts.push(format!("{t} table(s), {n} row(s)"));
    }
    if let Some(keys) = &c.keys {
        let total: u64 = keys.values().sum();
        parts.push(format!("{total} key(s) in {} database(s)", keys.len()));
    }
    if let Some(f) = c.files {
        parts.push(format!(
            "{f} file(s) and {} other entr(ies), {} read back",
            c.other_entries.unwrap_or(0),
            human_bytes(c.bytes.unwrap_or(0))
        ));
    }
    if parts.is_empty() {
        "nothing compared".into()
    } else {
        parts.join(", ")
    }
}

/// `drill` in docs/json.md.
#[derive(Debug, Serialize)]
pub struct DrillJson {
    passed: bool,
    drills: Vec<DrillEntry>,
    duration_seconds: f64,
}

#[derive(Debug, Serialize)]
struct DrillEntry {
    snapshot: SnapshotJson,
    #[serde(flatten)]
    drill: Drill,
}

impl DrillJson {
    fn new(r: &DrillReport) -> Self {
        DrillJson {
            passed: r.passed(),
            drills: r
                .drills
                .iter()
                .map(|d| DrillEntry {
                    snapshot: SnapshotJson::new(&d.id, &d.snapshot),
                    drill: d.clone(),
                })
                .collect(),
            duration_seconds: r.seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_spans_of_time() {
        assert_eq!(parse_window("7d"), Ok(7 * 86400));
        assert_eq!(parse_window("36h"), Ok(36 * 3600));
        assert_eq!(parse_window("2w"), Ok(14 * 86400));
        assert!(parse_window("soon").is_err());
        assert!(parse_window("0h").is_err());
    }
}
