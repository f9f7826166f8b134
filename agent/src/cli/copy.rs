//! `cairn copy`, and how a command reaches a second repository (the
//! source of a copy, or the repository `init --copy-chunker-params-from`
//! takes its chunking from).

use super::json::SnapshotJson;
use super::{passphrase, Ctx, Status};
use crate::ops::{self, CopyOptions, CopyReport};
use crate::repo::Repository;
use crate::source::describe;
use crate::util::{format_time, human_bytes};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

/// How to reach the other repository: its storage options default to the
/// target's (`--s3-endpoint`, `--s3-region`); credentials come from the
/// same AWS chain.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Source repository")]
pub struct FromOptions {
    /// Endpoint of the source's S3-compatible store (default: --s3-endpoint).
    #[arg(long, env = "CAIRN_FROM_S3_ENDPOINT", value_name = "URL")]
    from_s3_endpoint: Option<String>,
    /// The source's S3 region (default: --s3-region).
    #[arg(long, env = "CAIRN_FROM_S3_REGION", value_name = "REGION")]
    from_s3_region: Option<String>,
}

impl Ctx {
    /// Opens the repository at `address` with the passphrase from
    /// `CAIRN_FROM_PASSWORD_FILE` or `CAIRN_FROM_PASSWORD` (or the terminal).
    pub(super) async fn open_from(&self, address: &str, from: &FromOptions) -> Result<Repository> {
        let mut opts = self.storage.clone();
        if let Some(e) = from.from_s3_endpoint.as_ref().filter(|e| !e.is_empty()) {
            opts.s3.endpoint = Some(e.clone());
        }
        if let Some(r) = from.from_s3_region.as_ref().filter(|r| !r.is_empty()) {
            opts.s3.region = Some(r.clone());
        }
        let place = ops::Place::connect(address, &opts).await?;
        let pass = passphrase(
            "CAIRN_FROM_PASSWORD",
            "CAIRN_FROM_PASSWORD_FILE",
            "Source repository passphrase: ",
            false,
        )?;
        let mut repo = self
            .cancel
            .or_cancel(ops::open_repository(place, &pass))
            .await?;
        repo.set_audit(self.audit);
        Ok(repo)
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots of the source to copy (id prefixes or `latest`); none:
    /// every one the filters let through.
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// The repository to copy from (the target is --repo).
    #[arg(long, env = "CAIRN_FROM_REPOSITORY", value_name = "REPO")]
    from_repo: String,
    /// The source's local catalog (default: one per repository in
    /// ~/.cache/cairn).
    #[arg(long, env = "CAIRN_FROM_CATALOG", value_name = "PATH")]
    from_catalog: Option<PathBuf>,
    /// Only the newest snapshot of each host and source.
    #[arg(long)]
    latest: bool,
    /// Print what would be copied; write nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Pack uploads in flight.
    #[arg(long, default_value_t = 2)]
    uploads: usize,
    #[command(flatten)]
    from: FromOptions,
    #[command(flatten)]
    filter: super::filter::FilterArgs,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let from = ctx.open_from(&args.from_repo, &args.from).await?;
    let from_cat = ops::open_catalog(&from, args.from_catalog.as_deref())?;
    let (to, to_cat) = ctx.open_with_catalog().await?;
    let opts = CopyOptions {
        filter: args.filter.filter(),
        snapshots: args.snapshots,
        latest: args.latest,
        uploads: args.uploads,
        dry_run: args.dry_run,
        keep: None,
    };
    let report = ops::copy(&from, &from_cat, &to, &to_cat, &opts, &ctx.cancel).await?;
    if ctx.json {
        super::json::print(&CopyJson::new(&report))?;
    } else {
        print(&report, &from.location(), &to.location())?;
    }
    Ok(Status::Success)
}

fn print(r: &CopyReport, from: &str, to: &str) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (id, s) in &r.would_copy {
        writeln!(
            out,
            "would copy {} {} {} {}",
            id.short(),
            format_time(s.time_ns),
            s.hostname,
            describe(&s.source)
        )?;
    }
    for c in &r.copied {
        writeln!(
            out,
            "copied {} as {}: {} {} {}; read {}, {} new, {} stored",
            c.from.short(),
            c.to.short(),
            format_time(c.snapshot.time_ns),
            c.snapshot.hostname,
            describe(&c.snapshot.source),
            human_bytes(c.read_bytes),
            human_bytes(c.new_bytes),
            human_bytes(c.stored_bytes)
        )?;
    }
    if !r.dry_run {
        writeln!(
            out,
            "copied {} snapshot(s) from {from} to {to} in {:.1} s; {} already there",
            r.copied.len(),
            r.seconds,
            r.already.len()
        )?;
    } else {
        writeln!(
            out,
            "would copy {} snapshot(s); {} already there; nothing was written",
            r.would_copy.len(),
            r.already.len()
        )?;
    }
    let wrote = !(r.copied.is_empty() && r.would_copy.is_empty());
    if wrote && !r.same_chunking {
        writeln!(out, "note: the target cuts data differently from the source, so the copies do not deduplicate with its own backups (`cairn init --copy-chunker-params-from` makes a target that does)")?;
    }
    out.flush()
}

/// `copy --json`.
#[derive(Debug, Serialize)]
struct CopyJson {
    copied: Vec<CopiedJson>,
    would_copy: Vec<SnapshotJson>,
    already: Vec<String>,
    dry_run: bool,
    same_ids: bool,
    same_chunking: bool,
    duration_seconds: f64,
}

#[derive(Debug, Serialize)]
struct CopiedJson {
    from: String,
    snapshot: SnapshotJson,
    read_bytes: u64,
    new_bytes: u64,
    stored_bytes: u64,
    duration_seconds: f64,
}

impl CopyJson {
    fn new(r: &CopyReport) -> Self {
        Self {
            copied: r
                .copied
                .iter()
                .map(|c| CopiedJson {
                    from: c.from.to_hex(),
                    snapshot: SnapshotJson::new(&c.to, &c.snapshot),
                    read_bytes: c.read_bytes,
                    new_bytes: c.new_bytes,
                    stored_bytes: c.stored_bytes,
                    duration_seconds: c.seconds,
                })
                .collect(),
            would_copy: r
                .would_copy
                .iter()
                .map(|(id, s)| SnapshotJson::new(id, s))
                .collect(),
            already: r.already.iter().map(|id| id.to_hex()).collect(),
            dry_run: r.dry_run,
            same_ids: r.same_ids,
            same_chunking: r.same_chunking,
            duration_seconds: r.seconds,
        }
    }
}
