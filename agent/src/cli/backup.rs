//! `cairn backup`

use super::{usage, Status};
use crate::backup::{self, What};
use crate::catalog::{Catalog, Listed};
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::repo::{resolve_snapshot, Repository};
use crate::source::files::absolute;
use crate::source::postgres::{PgConn, PgSource};
use crate::source::redis::RedisTarget;
use crate::stats::Stats;
use crate::util::human_bytes;
use anyhow::{bail, Result};
use cairn_repo_format::{valid_stream_name, ChunkId, Source};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    source: Option<Kind>,
    /// Back up the standard output of the command given after `--`; its
    /// exit status decides whether the snapshot is committed (prefer this
    /// to --stdin).
    #[arg(long)]
    command: bool,
    /// Back up standard input. cairn cannot see whether the program writing
    /// into it failed: a failed producer looks like a short stream. Use
    /// --command where you can, or --expect-min-bytes.
    #[arg(long, conflicts_with = "command")]
    stdin: bool,
    /// File name of the stream in the snapshot (for --stdin and --command).
    #[arg(long)]
    name: Option<String>,
    /// Fail, committing nothing, if the source gives fewer bytes than this
    /// (a producer that failed before writing everything).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    expect_min_bytes: u64,
    /// Print a JSON summary on standard output.
    #[arg(long, global = true)]
    json: bool,
    /// Pack uploads in flight (each a spool file of about a pack, on disk).
    #[arg(long, env = "CAIRN_UPLOADS", default_value_t = 2, global = true)]
    uploads: usize,
    /// Compare files with this snapshot (id prefix or `latest`) instead of
    /// the latest snapshot of the same paths from this host.
    #[arg(long, conflicts_with = "force")]
    parent: Option<String>,
    /// Read every file, even those unchanged since the parent snapshot.
    #[arg(long)]
    force: bool,
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// The command and its arguments (after `--`).
    #[arg(last = true)]
    argv: Vec<String>,
}

/// Database sources.
#[derive(Debug, clap::Subcommand)]
enum Kind {
    /// A PostgreSQL database, with pg_dump (custom format, its compression off).
    Pg(PgArgs),
    /// A Redis server's RDB snapshot, over the replication protocol.
    Redis(RedisArgs),
}

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
struct PgArgs {
    /// Print help (-h is the server host, as in pg_dump).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    conn: PgConn,
    /// Plain SQL instead of the custom format.
    #[arg(long)]
    plain: bool,
    /// Also store roles and tablespaces (pg_dumpall --globals-only).
    #[arg(long)]
    globals: bool,
    /// Extra pg_dump arguments (after `--`).
    #[arg(last = true)]
    extra: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct RedisArgs {
    /// `redis://[user:password@]host:port`, or `rediss://` for TLS; an IPv6
    /// host in brackets (`redis://[::1]:6379`); special characters in the
    /// user or password percent-encoded. A password can also come from
    /// REDISCLI_AUTH, as is.
    #[arg(long)]
    url: String,
    /// With rediss://: trust the CA certificates in this PEM file instead
    /// of the system's.
    #[arg(long, value_name = "PEM")]
    tls_ca_file: Option<PathBuf>,
}

fn what(args: &Args) -> Result<What> {
    match &args.source {
        Some(Kind::Pg(pg)) => {
            return Ok(What::Postgres(PgSource {
                conn: pg.conn.clone(),
                plain: pg.plain,
                globals: pg.globals,
                extra: pg.extra.clone(),
            }));
        }
        Some(Kind::Redis(r)) => {
            let auth = std::env::var_os("REDISCLI_AUTH")
                .filter(|p| !p.is_empty())
                .map(std::os::unix::ffi::OsStringExt::into_vec);
            let target = RedisTarget::parse(&r.url)?
                .with_default_password(auth)
                .with_ca_file(r.tls_ca_file.clone());
            return Ok(What::Redis(target));
        }
        None => {}
    }
    let check_name = |n: &str| {
        if valid_stream_name(n) {
            Ok(n.to_owned())
        } else {
            usage!("--name {n:?} is not a valid file name (no '/', not empty)")
        }
    };
    if args.stdin || args.command {
        if !args.paths.is_empty() {
            usage!("give either paths or --stdin/--command, not both");
        }
        if args.stdin {
            if !args.argv.is_empty() {
                usage!("--stdin takes no command; did you mean --command?");
            }
            return Ok(What::Stdin {
                name: check_name(args.name.as_deref().unwrap_or("stdin"))?,
            });
        }
        let Some(program) = args.argv.first() else {
            usage!("--command needs the command after `--`, e.g. cairn backup --name db.dump --command -- pg_dump -Fc app");
        };
        let default = std::path::Path::new(program)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        return Ok(What::Command {
            name: check_name(args.name.as_deref().unwrap_or(&default))?,
            argv: args.argv.clone(),
        });
    }
    if !args.argv.is_empty() {
        usage!("arguments after `--` need --command");
    }
    if args.paths.is_empty() {
        usage!("nothing to back up: give paths, --stdin, or --command -- CMD");
    }
    if args.name.is_some() {
        usage!("--name is for --stdin and --command");
    }
    let paths = args
        .paths
        .iter()
        .map(|p| absolute(p))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(What::Files {
        paths,
        parent: None,
    })
}

/// The parent snapshot's root tree: `--parent`, else the latest snapshot of
/// the same paths from this host whose trees the catalog holds.
fn parent(
    cat: &Catalog,
    args: &Args,
    snapshots: &[Listed],
    paths: &[PathBuf],
) -> Result<Option<ChunkId>> {
    if args.force {
        return Ok(None);
    }
    if let Some(p) = &args.parent {
        let (id, snap) = resolve_snapshot(snapshots, p)?;
        if !matches!(snap.source, Source::Files { .. }) {
            bail!(
                "--parent {p}: snapshot {} is not a file-tree backup",
                id.short()
            );
        }
        return Ok(Some(snap.tree));
    }
    let paths: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let host = crate::util::hostname();
    for (id, snap) in snapshots.iter().rev() {
        if matches!(&snap.source, Source::Files { paths: p } if *p == paths)
            && snap.hostname == host
        {
            return Ok(cat.has_tree(&snap.tree)?.then(|| {
                eprintln!("using parent snapshot {}", id.short());
                snap.tree
            }));
        }
    }
    Ok(None)
}

pub async fn run(
    repo: Repository,
    cat: Arc<Catalog>,
    args: Args,
    interrupt: Interrupt,
) -> Result<Status> {
    let mut what = what(&args)?;
    if let What::Files { paths, parent: p } = &mut what {
        *p = parent(&cat, &args, &cat.snapshots()?, paths)?;
    } else if args.parent.is_some() || args.force {
        usage!("--parent and --force apply to file backups");
    }
    let settings = backup::Settings {
        uploads: args.uploads,
        expect_min_bytes: args.expect_min_bytes,
    };
    let stats = Arc::new(Stats::default());
    let progress = Progress::start(stats.clone());
    let out = backup::run(&repo, &cat, what, &settings, interrupt, stats).await;
    drop(progress);
    let out = out?;
    let s = &out.snapshot.summary;
    if args.json {
        let json = serde_json::json!({
            "snapshot_id": out.id.to_hex(),
            "bytes_read": s.bytes_read,
            "new_bytes": s.new_bytes,
            "stored_bytes": s.stored_bytes,
            "new_chunks": s.new_chunks,
            "total_chunks": s.total_chunks,
            "packs_written": s.packs,
            "files": s.files,
            "unchanged_files": out.unchanged_files,
            "dirs": s.dirs,
            "errors": s.errors,
            "partial": out.snapshot.partial,
            "duration_seconds": out.seconds,
        });
        println!("{json}");
    } else {
        let unchanged = if out.unchanged_files > 0 {
            format!(" ({} unchanged files not read)", out.unchanged_files)
        } else {
            String::new()
        };
        println!(
            "snapshot {} saved: {} read{unchanged}, {} new ({} chunks), {} stored in {} packs, {:.1} s",
            out.id.short(),
            human_bytes(s.bytes_read),
            human_bytes(s.new_bytes),
            s.new_chunks,
            human_bytes(s.stored_bytes),
            s.packs,
            out.seconds
        );
    }
    if out.snapshot.partial {
        eprintln!("warning: {} entries could not be read; the snapshot holds everything else (exit status 3)", s.errors);
        return Ok(Status::Partial);
    }
    Ok(Status::Success)
}
