//! `cairn restore`

use super::{usage, Status};
use crate::catalog::Catalog;
use crate::repo::{resolve_snapshot, Repository};
use crate::restore;
use crate::source::postgres::PgConn;
use crate::util::{self, human_bytes};
use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["target", "stdout", "pg", "redis_rdb"])))]
#[command(disable_help_flag = true)]
pub struct Args {
    /// Print help (-h is the PostgreSQL server host, as in pg_restore).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Snapshot id prefix, or `latest`.
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
    /// Restore a PostgreSQL snapshot with pg_restore (custom format) or psql (plain); globals first.
    #[arg(long)]
    pg: bool,
    #[command(flatten)]
    conn: PgConn,
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
}

pub async fn run(repo: Repository, cat: Arc<Catalog>, args: Args) -> Result<Status> {
    if args.stdout && args.include.len() > 1 {
        usage!("--stdout writes one file: give at most one --include");
    }
    let snapshots = cat.snapshots()?;
    let (id, snap) = resolve_snapshot(&snapshots, &args.snapshot)?;
    let cat = cat.as_ref();
    if args.pg {
        restore::to_postgres(
            &repo,
            cat,
            snap,
            &args.conn,
            args.create,
            args.clean,
            args.jobs,
        )
        .await?;
        eprintln!("restored snapshot {} into PostgreSQL", id.short());
        return Ok(Status::Success);
    }
    if let Some(path) = &args.redis_rdb {
        let n = restore::to_redis_rdb(&repo, cat, snap, path).await?;
        eprintln!(
            "wrote {} ({}) from snapshot {}; see docs/databases.md to load it",
            path.display(),
            human_bytes(n),
            id.short()
        );
        return Ok(Status::Success);
    }
    if args.stdout {
        let include = args.include.first().map(String::as_str);
        util::stdout_closed(restore::to_stdout(&repo, cat, snap, include).await)?;
        return Ok(Status::Success);
    }
    let target = args.target.unwrap_or_default();
    let r = restore::to_dir(&repo, cat, snap, &target, &args.include).await?;
    eprintln!(
        "restored snapshot {} to {}: {} files ({}), {} dirs, {} symlinks, {} hard links",
        id.short(),
        target.display(),
        r.files,
        human_bytes(r.bytes),
        r.dirs,
        r.symlinks,
        r.hardlinks
    );
    if r.damaged.is_empty() {
        return Ok(Status::Success);
    }
    for (path, why) in &r.damaged {
        eprintln!("not restored: {}: {why}", path.display());
    }
    anyhow::bail!(
        "{} file(s) were not restored because their data is damaged or missing in the repository (listed above); everything else was restored. `cairn catalog check` lists missing packs",
        r.damaged.len()
    )
}
