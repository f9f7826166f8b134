//! `cairn restore`

use super::{stdout_closed, usage, Ctx, PgConnArgs, Status};
use crate::ops::{self, Destination, RestoreOptions};
use crate::progress::{Progress, Work};
use crate::source::postgres::PgRestore;
use crate::util::human_bytes;
use anyhow::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["target", "stdout", "pg", "redis_rdb"])))]
#[command(disable_help_flag = true)]
pub struct Args {
    /// Print help (-h is the PostgreSQL server host, as in pg_restore).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Snapshot id prefix, or `latest` (the newest that passes the filters,
    /// and of the source kind --pg or --redis-rdb restores).
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
    /// Do not set extended attributes (ACLs, capabilities, SELinux labels,
    /// user attributes) on restored entries.
    #[arg(long)]
    no_xattrs: bool,
    /// Restore a PostgreSQL snapshot with pg_restore (custom format) or psql (plain); globals first.
    #[arg(long)]
    pg: bool,
    #[command(flatten)]
    conn: PgConnArgs,
    /// With --pg: create the database (connect to --dbname, e.g. postgres, to create it).
    #[arg(long, requires = "pg")]
    create: bool,
    /// With --pg: drop objects before recreating them.
    #[arg(long, requires = "pg")]
    clean: bool,
    /// With --pg: parallel restore jobs (custom format; the dump is staged in a temp file).
    #[arg(long, requires = "pg")]
    jobs: Option<u32>,
    /// Write the RDB file of a Redis snapshot to this path (e.g. /var/lib/redis/dump.rdb).
    #[arg(long)]
    redis_rdb: Option<PathBuf>,
    /// Only snapshots taken on this host (repeat for several; --host is
    /// the PostgreSQL server).
    #[arg(
        long = "snapshot-host",
        value_name = "HOST",
        help_heading = "Snapshot filters"
    )]
    snapshot_hosts: Vec<String>,
    #[command(flatten)]
    filter: super::filter::FilterRest,
}

/// `restore --json`.
#[derive(serde::Serialize)]
struct RestoreJson {
    snapshot_id: String,
    short_id: String,
    /// `dir`, `postgres` or `redis_rdb`.
    destination: &'static str,
    /// The directory or RDB file written.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    bytes: u64,
    files: u64,
    dirs: u64,
    symlinks: u64,
    hardlinks: u64,
    specials: u64,
    damaged: Vec<Damaged>,
    warnings: Vec<String>,
    warning_count: u64,
    duration_seconds: f64,
}

#[derive(serde::Serialize)]
struct Damaged {
    path: String,
    reason: String,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    if args.stdout && args.include.len() > 1 {
        usage!("--stdout writes one file: give at most one --include");
    }
    if args.stdout && ctx.json {
        usage!("--json cannot go with --stdout: standard output carries the restored data");
    }
    let started = std::time::Instant::now();
    let to = if args.pg {
        Destination::Postgres(PgRestore {
            conn: args.conn.settings(),
            create: args.create,
            clean: args.clean,
            jobs: args.jobs,
        })
    } else if let Some(path) = &args.redis_rdb {
        Destination::RedisRdb { path: path.clone() }
    } else if args.stdout {
        Destination::Stdout {
            include: args.include.first().cloned(),
        }
    } else {
        Destination::Dir {
            path: args.target.clone().unwrap_or_default(),
            include: args.include.clone(),
            xattrs: !args.no_xattrs,
        }
    };
    let opts = RestoreOptions {
        snapshot: args.snapshot.clone(),
        filter: args.filter.filter(args.snapshot_hosts.clone()),
        estimate: ctx.progress.draws_bar(),
        to,
    };
    let (repo, cat) = ctx.open_with_catalog().await?;
    let progress = Progress::start(repo.read_stats(), Work::Restore, ctx.progress);
    let restored = ops::restore(&repo, &cat, &opts, &ctx.cancel).await;
    drop(progress);
    let r = if args.stdout {
        stdout_closed(restored.map_err(anyhow::Error::from))?
    } else {
        restored?
    };
    if ctx.json {
        let t = r.tree.as_ref();
        let count = |f: fn(&crate::restore::tree::Report) -> u64| t.map_or(0, f);
        let (destination, target) = match &opts.to {
            Destination::Postgres(_) => ("postgres", None),
            Destination::RedisRdb { path } => ("redis_rdb", Some(path)),
            Destination::Stdout { .. } => ("stdout", None),
            Destination::Dir { path, .. } => ("dir", Some(path)),
        };
        let damaged: Vec<Damaged> = t.map_or_else(Vec::new, |t| {
            t.damaged
                .iter()
                .map(|(p, why)| Damaged {
                    path: p.display().to_string(),
                    reason: why.clone(),
                })
                .collect()
        });
        let failed = !damaged.is_empty();
        super::json::print(&RestoreJson {
            snapshot_id: r.id.to_hex(),
            short_id: r.id.short(),
            destination,
            target: target.map(|p| p.display().to_string()),
            bytes: t.map_or(r.bytes, |t| t.bytes),
            files: count(|t| t.files),
            dirs: count(|t| t.dirs),
            symlinks: count(|t| t.symlinks),
            hardlinks: count(|t| t.hardlinks),
            specials: count(|t| t.specials),
            damaged,
            warnings: t.map_or_else(Vec::new, |t| t.warnings.clone()),
            warning_count: count(|t| t.warning_count),
            duration_seconds: started.elapsed().as_secs_f64(),
        })?;
        if failed {
            return Err(anyhow::Error::new(super::Reported(
                "some files were not restored because their data is damaged or missing in the repository (listed in the report); everything else was restored".into(),
            )));
        }
        return Ok(Status::Success);
    }
    let id = r.id.short();
    match &opts.to {
        Destination::Postgres(_) => eprintln!("restored snapshot {id} into PostgreSQL"),
        Destination::RedisRdb { path } => eprintln!(
            "wrote {} ({}) from snapshot {id}; see docs/databases.md to load it",
            path.display(),
            human_bytes(r.bytes),
        ),
        Destination::Stdout { .. } => {}
        Destination::Dir { path, .. } => {
            let Some(t) = &r.tree else {
                return Ok(Status::Success);
            };
            let specials = if t.specials > 0 {
                format!(", {} special files", t.specials)
            } else {
                String::new()
            };
            eprintln!(
                "restored snapshot {id} to {}: {} files ({}), {} dirs, {} symlinks, {} hard links{specials}",
                path.display(),
                t.files,
                human_bytes(t.bytes),
                t.dirs,
                t.symlinks,
                t.hardlinks
            );
            for w in &t.warnings {
                tracing::warn!("{w}");
            }
            if t.warning_count > t.warnings.len() as u64 {
                tracing::warn!(
                    "{} more entries were restored without some of their metadata",
                    t.warning_count - t.warnings.len() as u64
                );
            }
            if !t.damaged.is_empty() {
                for (path, why) in &t.damaged {
                    eprintln!("not restored: {}: {why}", path.display());
                }
                anyhow::bail!(
                    "{} file(s) were not restored because their data is damaged or missing in the repository (listed above); everything else was restored. `cairn catalog check` lists missing packs",
                    t.damaged.len()
                )
            }
        }
    }
    Ok(Status::Success)
}
