//! `cairn backup`

use super::json::SnapshotJson;
use super::{usage, Ctx, PgConnArgs, Status};
use crate::ops::{self, BackupOptions, Parent};
use crate::progress::{Progress, Work};
use crate::source::command::{CommandSettings, StdinSettings};
use crate::source::files::FilesSettings;
use crate::source::postgres::PgSettings;
use crate::source::redis::RedisSettings;
use crate::source::SourceSettings;
use crate::stats::Stats;
use crate::util::human_bytes;
use anyhow::Result;
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
    /// Label the snapshot (repeat for several); `forget --keep-tag` keeps
    /// snapshots by their tags.
    #[arg(long = "tag", value_name = "TAG", global = true)]
    tags: Vec<String>,
    /// The host name recorded in the snapshot, instead of this machine's
    /// (retention groups by it; a files backup's parent is looked for
    /// under it).
    #[arg(long, env = "CAIRN_HOST", global = true)]
    host: Option<String>,
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
    #[command(flatten)]
    select: Selection,
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// The command and its arguments (after `--`).
    #[arg(last = true)]
    argv: Vec<String>,
}

/// What a files backup leaves out.
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "File selection")]
struct Selection {
    /// Skip entries matching this pattern (repeat for several): `*.tmp`
    /// and `node_modules` match at any depth, `/srv/data/cache` from the
    /// root; `*`, `?` and `[a-z]` stay within a name, `**` crosses
    /// directories; `!PATTERN` takes back what an earlier pattern excluded.
    /// An excluded directory is skipped whole.
    #[arg(long = "exclude", short = 'e', value_name = "PATTERN")]
    excludes: Vec<String>,
    /// As --exclude, ignoring case.
    #[arg(long = "iexclude", value_name = "PATTERN")]
    iexcludes: Vec<String>,
    /// Read exclude patterns from FILE, one per line (`#` starts a comment).
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Leave out every directory that holds a file of this name (e.g.
    /// .nobackup).
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    exclude_if_present: Vec<String>,
    /// Leave out directories holding a valid CACHEDIR.TAG (caches of
    /// browsers, build tools and package managers mark themselves so).
    #[arg(long)]
    exclude_caches: bool,
    /// Stay on the file system of each path: mount points below it are
    /// recorded as empty directories.
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Also back up the paths listed in FILE, one per line (`#` starts a
    /// comment).
    #[arg(long = "files-from", value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Do not record extended attributes (POSIX ACLs, file capabilities,
    /// SELinux labels, user attributes).
    #[arg(long)]
    no_xattrs: bool,
    /// Entries looked at and files read at once, ahead of the walk (the
    /// snapshot is the same whatever the number). More helps a cold cache
    /// and network disks; 0 reads one file at a time. [default: 32]
    #[arg(long, value_name = "N")]
    read_concurrency: Option<usize>,
}

impl Selection {
    /// Whether any option is given (they are for file backups only).
    fn any(&self) -> bool {
        !self.excludes.is_empty()
            || !self.iexcludes.is_empty()
            || !self.exclude_files.is_empty()
            || !self.exclude_if_present.is_empty()
            || self.exclude_caches
            || self.one_file_system
            || !self.files_from.is_empty()
            || self.no_xattrs
            || self.read_concurrency.is_some()
    }

    fn settings(&self, paths: &[PathBuf]) -> FilesSettings {
        FilesSettings {
            paths: paths.to_vec(),
            files_from: self.files_from.clone(),
            excludes: self.excludes.clone(),
            iexcludes: self.iexcludes.clone(),
            exclude_files: self.exclude_files.clone(),
            exclude_if_present: self.exclude_if_present.clone(),
            exclude_caches: self.exclude_caches,
            one_file_system: self.one_file_system,
            xattrs: !self.no_xattrs,
            read_concurrency: self
                .read_concurrency
                .unwrap_or(FilesSettings::default().read_concurrency),
        }
    }
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
    conn: PgConnArgs,
    /// Plain SQL instead of the custom format.
    #[arg(long)]
    plain: bool,
    /// Also store roles and tablespaces (pg_dumpall --globals-only).
    #[arg(long)]
    globals: bool,
    /// Do not count every table's rows beside the dump. The counts let
    /// `cairn drill` prove a restore holds every row; counting reads the
    /// tables once more, inside the transaction whose snapshot pg_dump uses.
    #[arg(long)]
    no_row_counts: bool,
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

/// `backup --json`: the counters first (as `snapshot.summary` has them,
/// with what only this run knows), then the snapshot written.
#[derive(serde::Serialize)]
struct BackupJson {
    snapshot_id: String,
    short_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
    bytes_read: u64,
    new_bytes: u64,
    stored_bytes: u64,
    new_chunks: u64,
    total_chunks: u64,
    packs_written: u64,
    files: u64,
    unchanged_files: u64,
    dirs: u64,
    errors: u64,
    partial: bool,
    duration_seconds: f64,
    snapshot: SnapshotJson,
}

/// The source the arguments name. Settings the library would refuse are
/// usage errors here (exit status 2).
fn source(args: &Args) -> Result<SourceSettings> {
    if args.select.any() && (args.source.is_some() || args.stdin || args.command) {
        usage!("the file selection options (--exclude, --files-from, …) are for file backups");
    }
    let settings = match &args.source {
        Some(Kind::Pg(pg)) => SourceSettings::Postgres(PgSettings {
            conn: pg.conn.settings(),
            plain: pg.plain,
            globals: pg.globals,
            extra: pg.extra.clone(),
            passfile: None,
            no_row_counts: pg.no_row_counts,
        }),
        Some(Kind::Redis(r)) => SourceSettings::Redis(RedisSettings {
            url: r.url.clone(),
            // As redis-cli: taken as is.
            password: std::env::var("REDISCLI_AUTH")
                .ok()
                .filter(|p| !p.is_empty()),
            tls_ca_file: r.tls_ca_file.clone(),
        }),
        None if args.stdin || args.command => {
            if !args.paths.is_empty() {
                usage!("give either paths or --stdin/--command, not both");
            }
            if args.stdin {
                if !args.argv.is_empty() {
                    usage!("--stdin takes no command; did you mean --command?");
                }
                SourceSettings::Stdin(StdinSettings {
                    name: args.name.clone().unwrap_or_else(|| "stdin".into()),
                })
            } else {
                SourceSettings::Command(CommandSettings {
                    argv: args.argv.clone(),
                    name: args.name.clone(),
                })
            }
        }
        None => {
            if !args.argv.is_empty() {
                usage!("arguments after `--` need --command");
            }
            if args.name.is_some() {
                usage!("--name is for --stdin and --command");
            }
            SourceSettings::Files(args.select.settings(&args.paths))
        }
    };
    if let Err(e) = settings.check() {
        usage!("{e}");
    }
    Ok(settings)
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let source = source(&args)?;
    let parent = match (&args.parent, args.force) {
        (Some(p), _) => Parent::Snapshot(p.clone()),
        (None, true) => Parent::None,
        (None, false) => Parent::Latest,
    };
    if !matches!(source, SourceSettings::Files(_)) && parent != Parent::Latest {
        usage!("--parent and --force apply to file backups");
    }
    let opts = BackupOptions {
        source,
        parent,
        uploads: args.uploads,
        expect_min_bytes: args.expect_min_bytes,
        tags: args.tags.clone(),
        host: args.host.clone(),
        // The size is worth a second walk only where a bar shows the time left.
        estimate: ctx.progress.draws_bar(),
    };
    let (repo, cat) = ctx.open_with_catalog().await?;
    let stats = Arc::new(Stats::default());
    let progress = Progress::start(stats.clone(), Work::Backup, ctx.progress);
    let out = ops::backup(&repo, &cat, &opts, &ctx.cancel, stats).await;
    drop(progress);
    let out = out?;
    let s = &out.snapshot.summary;
    if ctx.json {
        super::json::print(&BackupJson {
            snapshot_id: out.id.to_hex(),
            short_id: out.id.short(),
            parent_id: out.parent.map(|p| p.to_hex()),
            bytes_read: s.bytes_read,
            new_bytes: s.new_bytes,
            stored_bytes: s.stored_bytes,
            new_chunks: s.new_chunks,
            total_chunks: s.total_chunks,
            packs_written: s.packs,
            files: s.files,
            unchanged_files: out.unchanged_files,
            dirs: s.dirs,
            errors: s.errors,
            partial: out.snapshot.partial,
            duration_seconds: out.seconds,
            snapshot: SnapshotJson::new(&out.id, &out.snapshot),
        })?;
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
        tracing::warn!(
            "{} entries could not be read; the snapshot holds everything else (exit status 3)",
            s.errors
        );
        return Ok(Status::Partial);
    }
    Ok(Status::Success)
}
