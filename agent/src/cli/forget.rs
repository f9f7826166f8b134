//! `cairn forget`

use super::{Ctx, Status};
use crate::ops::{self, ForgetOptions, ForgetReport};
use crate::retention::{GroupBy, Rules, Within};
use anyhow::Result;
use jiff::tz::TimeZone;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to forget (id prefixes or `latest`), instead of rules.
    snapshots: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days that have one.
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks.
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest months.
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest years.
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
    /// Keep every snapshot taken within this of the group's newest (90d,
    /// 2w, 1y6m: y, m = months, w, d, h).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<Within>,
    /// Keep the newest snapshot of each hour within this of the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_hourly: Option<Within>,
    /// Keep the newest snapshot of each day within this of the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_daily: Option<Within>,
    /// Keep the newest snapshot of each week within this of the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_weekly: Option<Within>,
    /// Keep the newest snapshot of each month within this of the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_monthly: Option<Within>,
    /// Keep the newest snapshot of each year within this of the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_yearly: Option<Within>,
    /// Keep every snapshot with this tag (repeat for several).
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    /// Group snapshots by these before the rules apply: host, source,
    /// tags, a comma-separated list, or "" for one group. A Kubernetes
    /// claim's snapshots are not split by host (its pod moves).
    #[arg(long, value_name = "LIST", default_value = "host,source")]
    group_by: GroupBy,
    #[command(flatten)]
    filter: super::filter::FilterArgs,
    /// Hours, days, weeks, months and years by UTC instead of the local
    /// time zone (TZ).
    #[arg(long)]
    utc: bool,
    /// Print what would be forgotten, and why the rest stays; change
    /// nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Prune afterwards: delete the data no snapshot uses any more.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    tuning: super::prune::Tuning,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let opts = ForgetOptions {
        rules: Rules {
            keep_last: args.keep_last,
            keep_hourly: args.keep_hourly,
            keep_daily: args.keep_daily,
            keep_weekly: args.keep_weekly,
            keep_monthly: args.keep_monthly,
            keep_yearly: args.keep_yearly,
            keep_within: args.keep_within,
            keep_within_hourly: args.keep_within_hourly,
            keep_within_daily: args.keep_within_daily,
            keep_within_weekly: args.keep_within_weekly,
            keep_within_monthly: args.keep_within_monthly,
            keep_within_yearly: args.keep_within_yearly,
            keep_tag: args.keep_tag,
        },
        group_by: args.group_by,
        filter: args.filter.filter(),
        snapshots: args.snapshots,
        utc: args.utc,
        dry_run: args.dry_run,
    };
    let (repo, cat) = ctx.open_with_catalog().await?;
    let report = ops::forget(&repo, &cat, &opts, &ctx.cancel).await?;
    if ctx.json {
        // One document: the forget and, with --prune, the prune after it.
        let prune = if args.prune && !opts.dry_run {
            let prune = args.tuning.options(false);
            Some(ops::prune(&repo, &cat, &prune, &ctx.cancel).await?)
        } else {
            None
        };
        super::json::print(&serde_json::json!({ "forget": report, "prune": prune }))?;
        return Ok(Status::Success);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    {
        let tz = if opts.utc {
            TimeZone::UTC
        } else {
            TimeZone::system()
        };
        print(&mut out, &report, &tz)?;
    }
    out.flush()?;
    drop(out);
    if args.prune && !opts.dry_run {
        let prune = args.tuning.options(false);
        let report = ops::prune(&repo, &cat, &prune, &ctx.cancel).await?;
        super::prune::print(&report, false)?;
    }
    Ok(Status::Success)
}

/// A snapshot's time in the zone its buckets were taken in.
fn shown_time(ns: i64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_default()
}

fn print(out: &mut impl Write, report: &ForgetReport, tz: &TimeZone) -> std::io::Result<()> {
    for g in &report.groups {
        let mut key = Vec::new();
        if let Some(h) = &g.key.host {
            key.push(format!("host {h}"));
        }
        if let Some(s) = &g.key.source {
            key.push(format!("source {s}"));
        }
        if let Some(t) = &g.key.tags {
            key.push(format!("tags [{}]", t.join(",")));
        }
        let kept = g.snapshots.iter().filter(|d| d.keep).count();
        let title = if key.is_empty() {
            "snapshots".to_owned()
        } else {
            key.join(", ")
        };
        writeln!(
            out,
            "{title}: keep {kept}, forget {}",
            g.snapshots.len() - kept
        )?;
        for d in &g.snapshots {
            let (verdict, why) = if d.keep {
                ("keep", d.reasons.join(", "))
            } else {
                ("forget", String::new())
            };
            let line = format!(
                "  {verdict:<6}  {}  {}  {why}",
                d.id.short(),
                shown_time(d.time_ns, tz)
            );
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    let n = report.forgotten.len();
    if report.dry_run {
        writeln!(
            out,
            "dry run: {n} snapshot(s) would be forgotten; nothing was changed"
        )?;
    } else if let Some(record) = report.record {
        writeln!(
            out,
            "forgot {n} snapshot(s) (forget record {}); `cairn prune` frees the data no other snapshot uses",
            record.short()
        )?;
    } else {
        writeln!(out, "nothing to forget")?;
    }
    Ok(())
}
