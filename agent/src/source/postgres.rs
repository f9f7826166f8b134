//! PostgreSQL through its own clients: `pg_dump` (custom format with its
//! compression off, so that consecutive dumps deduplicate, or plain on
//! request), `pg_dumpall --globals-only` for roles and tablespaces, and
//! `pg_restore` / `psql` to restore.
//!
//! Passwords come from `PGPASSWORD`, `PGPASSFILE` or `~/.pgpass`, which the
//! clients read themselves; Cairn passes the connection options through and
//! records only the database's own name and versions, never a connection
//! string (which may hold a password).
//!
//! A snapshot holds [`DUMP_CUSTOM`] or [`DUMP_PLAIN`], and [`GLOBALS`] when
//! asked for (format §7.1); [`restore`] feeds them back.

pub(crate) mod rows;

use super::stream::StreamSpec;
use super::{Recorded, SourceError, StreamPlan};
use crate::catalog::Catalog;
use crate::error::{input, Context, Error, Result};
use crate::repo::Repository;
use crate::restore::{client_failed, pipe_into, root_file, write_new_file};
use cairn_repo_format::{Counts, Snapshot, Source};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

/// The dump in pg_dump's custom format.
pub const DUMP_CUSTOM: &str = "database.dump";
/// The dump as plain SQL.
pub const DUMP_PLAIN: &str = "database.sql";
/// Roles and tablespaces (`pg_dumpall --globals-only`).
pub const GLOBALS: &str = "globals.sql";

/// Connection options shared by every PostgreSQL client.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgConn {
    /// Database name or connection URI/string (as for pg_dump --dbname).
    #[serde(default)]
    pub dbname: Option<String>,
    /// Server host or socket directory.
    #[serde(default)]
    pub host: Option<String>,
    /// Server port.
    #[serde(default)]
    pub port: Option<u16>,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
}

impl PgConn {
    /// The options as client arguments, with `dbname` as given.
    pub fn args(&self, dbname: Option<&str>) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(d) = dbname {
            a.push(format!("--dbname={d}"));
        }
        if let Some(h) = &self.host {
            a.push(format!("--host={h}"));
        }
        if let Some(p) = self.port {
            a.push(format!("--port={p}"));
        }
        if let Some(u) = &self.username {
            a.push(format!("--username={u}"));
        }
        a
    }
}

/// A database to back up.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSettings {
    /// How to connect.
    #[serde(default)]
    pub conn: PgConn,
    /// Plain SQL instead of the custom format.
    #[serde(default)]
    pub plain: bool,
    /// Also store `pg_dumpall --globals-only`.
    #[serde(default)]
    pub globals: bool,
    /// Extra pg_dump arguments.
    #[serde(default)]
    pub extra: Vec<String>,
    /// A password file in libpq's format, given to the clients as
    /// `PGPASSFILE` (default: libpq's own choice, `~/.pgpass` or the
    /// environment's `PGPASSFILE`).
    #[serde(default)]
    pub passfile: Option<PathBuf>,
    /// Do not count every table's rows beside the dump (format §7.1
    /// `counts`, for drills). Counting reads the tables once more.
    #[serde(default)]
    pub no_row_counts: bool,
}

/// What the server said about itself.
#[derive(Debug, Clone)]
pub struct PgProbe {
    /// `current_database()`.
    pub dbname: String,
    /// `server_version`.
    pub server_version: String,
    /// pg_dump's version.
    pub pg_dump_version: String,
    /// `pg_database_size`: bytes on disk (an estimate of the dump's size).
    pub size: Option<u64>,
}

/// Runs a client to completion, with `env` added to its environment; its
/// stdout, or an error with its stderr tail.
pub(crate) async fn capture(
    argv: &[String],
    env: &[(String, OsString)],
) -> Result<String, SourceError> {
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|cause| SourceError::Spawn {
            program: argv[0].clone(),
            cause,
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(SourceError::Postgres {
            detail: format!("{} failed ({}): {}", argv[0], out.status, tail.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl PgSettings {
    /// `custom` or `plain`.
    pub fn format_name(&self) -> &'static str {
        if self.plain {
            "plain"
        } else {
            "custom"
        }
    }

    /// The dump's file name in the snapshot.
    pub fn file_name(&self) -> &'static str {
        if self.plain {
            DUMP_PLAIN
        } else {
            DUMP_CUSTOM
        }
    }

    /// Probes the server, then plans the streams: the globals (if asked
    /// for), then the dump.
    ///
    /// # Errors
    /// [`SourceError::Postgres`] if the server cannot be reached or described.
    pub async fn plan(&self) -> Result<StreamPlan> {
        let probe = self.probe().await?;
        let counter = self.counter().await;
        let mut streams = Vec::new();
        if self.globals {
            streams.push((
                GLOBALS.to_owned(),
                StreamSpec::Command {
                    argv: self.dumpall_argv(),
                    env: self.env(),
                },
            ));
        }
        let mut dump = self.dump_argv();
        if let Some(c) = &counter {
            dump.push(format!("--snapshot={}", c.snapshot));
        }
        streams.push((
            self.file_name().to_owned(),
            StreamSpec::Command {
                argv: dump,
                env: self.env(),
            },
        ));
        let source = Source::Postgres {
            dbname: probe.dbname,
            server_version: probe.server_version,
            pg_dump_version: probe.pg_dump_version,
            format: self.format_name().to_owned(),
            globals: self.globals,
        };
        Ok(StreamPlan {
            streams,
            // The database's size on disk: indexes and free space are not
            // dumped, so the dump is usually smaller; an estimate for the
            // progress display only.
            expected_bytes: probe.size,
            record: Box::pin(async move {
                let counts = match counter {
                    Some(c) => Some(Counts {
                        tables: Some(c.finish().await?),
                        keys: None,
                    }),
                    None => None,
                };
                Ok(Recorded { source, counts })
            }),
        })
    }

    /// The session that counts rows beside the dump, unless counting is
    /// off or cannot match the dump (said as a warning, once).
    async fn counter(&self) -> Option<rows::Counter> {
        if self.no_row_counts {
            return None;
        }
        if let Some(option) = rows::selection(&self.extra) {
            tracing::warn!("row counts are not recorded: pg_dump's {option} leaves rows out of the dump, so a drill could not compare them (--no-row-counts says this is meant)");
            return None;
        }
        let mut argv = vec!["psql".to_owned()];
        argv.extend(self.conn.args(self.conn.dbname.as_deref()));
        match rows::Counter::start(&argv, &self.env()).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("row counts are not recorded (the dump goes on without them): {e}");
                None
            }
        }
    }

    /// What the clients get in their environment on top of cairn's.
    pub fn env(&self) -> Vec<(String, OsString)> {
        self.passfile
            .iter()
            .map(|f| ("PGPASSFILE".to_owned(), f.clone().into_os_string()))
            .collect()
    }

    /// The pg_dump command line.
    pub fn dump_argv(&self) -> Vec<String> {
        let mut a = vec![
            "pg_dump".to_owned(),
            format!("--format={}", self.format_name()),
            "--compress=0".to_owned(),
        ];
        a.extend(self.conn.args(self.conn.dbname.as_deref()));
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The pg_dumpall command line for roles and tablespaces.
    pub fn dumpall_argv(&self) -> Vec<String> {
        let mut a = vec!["pg_dumpall".to_owned(), "--globals-only".to_owned()];
        // pg_dumpall's --dbname takes only a connection string; a plain
        // database name goes to --database.
        match self.conn.dbname.as_deref() {
            Some(d)
                if d.contains('=')
                    || d.starts_with("postgres://")
                    || d.starts_with("postgresql://") =>
            {
                a.extend(self.conn.args(Some(d)));
            }
            Some(d) => {
                a.push(format!("--database={d}"));
                a.extend(self.conn.args(None));
            }
            None => a.extend(self.conn.args(None)),
        }
        a
    }

    /// Asks the server for its database name and version, and pg_dump for its own.
    ///
    /// # Errors
    /// [`SourceError::Postgres`] with the client's error (unknown database,
    /// authentication failure, server down).
    pub async fn probe(&self) -> Result<PgProbe, SourceError> {
        let mut q = vec![
            "psql".to_owned(),
            "--no-psqlrc".to_owned(),
            "--no-align".to_owned(),
            "--tuples-only".to_owned(),
        ];
        q.extend(self.conn.args(self.conn.dbname.as_deref()));
        q.push(
            "--command=select current_database() || '|' || current_setting('server_version') || '|' || pg_database_size(current_database())"
                .to_owned(),
        );
        let out = capture(&q, &self.env()).await?;
        let mut fields = out.trim().splitn(3, '|');
        let (Some(dbname), Some(server_version), Some(size)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(SourceError::Postgres {
                detail: format!("unexpected answer from psql: {:?}", out.trim()),
            });
        };
        let (dbname, server_version) = (dbname.to_owned(), server_version.to_owned());
        let version = capture(&["pg_dump".to_owned(), "--version".to_owned()], &[]).await?;
        let pg_dump_version = version
            .split_whitespace()
            .nth(2)
            .unwrap_or("unknown")
            .to_owned();
        Ok(PgProbe {
            dbname,
            server_version,
            pg_dump_version,
            size: size.parse().ok(),
        })
    }
}

/// A PostgreSQL snapshot's listing.
pub fn describe(record: &Source) -> Option<String> {
    let Source::Postgres {
        dbname,
        server_version,
        format,
        globals,
        ..
    } = record
    else {
        return None;
    };
    Some(format!(
        "postgres:{dbname} ({format}{}, server {server_version})",
        if *globals { " + globals" } else { "" }
    ))
}

/// How to restore a PostgreSQL snapshot.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgRestore {
    /// How to connect (`dbname`: the database to restore into, or to
    /// connect to when `create`; default: the snapshot's database, or
    /// `postgres` when `create`).
    #[serde(default)]
    pub conn: PgConn,
    /// Create the database (`pg_restore --create`).
    #[serde(default)]
    pub create: bool,
    /// Drop objects before recreating them (`--clean --if-exists`).
    #[serde(default)]
    pub clean: bool,
    /// Parallel restore jobs (custom format; the dump is staged in a
    /// private temporary file).
    #[serde(default)]
    pub jobs: Option<u32>,
}

/// Restores a PostgreSQL snapshot: globals with psql, then the dump with
/// pg_restore (custom) or psql (plain).
///
/// # Errors
/// [`Error::Input`] for a snapshot of another kind or options that do not
/// apply; a client that fails, with its exit status (its messages went to
/// standard error).
pub async fn restore(
    repo: &Repository,
    cat: &Catalog,
    snap: &Snapshot,
    how: &PgRestore,
) -> Result<()> {
    let Source::Postgres { format, dbname, .. } = &snap.source else {
        input!("this snapshot is not a PostgreSQL backup; use --stdout or --target");
    };
    let conn = &how.conn;
    let target = conn.dbname.clone().unwrap_or_else(|| {
        if how.create {
            "postgres".into()
        } else {
            dbname.clone()
        }
    });
    let psql = |extra: &[&str]| {
        let mut a = vec![
            "psql".to_owned(),
            "--no-psqlrc".to_owned(),
            "--quiet".to_owned(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a.extend(conn.args(Some(&target)));
        a
    };
    if let Some(globals) = root_file(cat, snap, GLOBALS)? {
        // Roles that already exist are reported by psql and skipped.
        pipe_into(repo, cat, &globals, &psql(&[]))
            .await
            .context("restoring globals")?;
    }
    if format == "plain" {
        if how.create || how.clean {
            input!("--create and --clean apply to custom-format dumps; this snapshot is plain SQL (use pg_dump's own options at backup time)");
        }
        let dump = root_file(cat, snap, DUMP_PLAIN)?
            .ok_or_else(|| Error::Corrupt(format!("the snapshot has no {DUMP_PLAIN}")))?;
        return pipe_into(repo, cat, &dump, &psql(&["--set=ON_ERROR_STOP=1"])).await;
    }
    let dump = root_file(cat, snap, DUMP_CUSTOM)?
        .ok_or_else(|| Error::Corrupt(format!("the snapshot has no {DUMP_CUSTOM}")))?;
    let mut argv = vec!["pg_restore".to_owned()];
    if how.clean {
        argv.extend(["--clean".to_owned(), "--if-exists".to_owned()]);
    }
    if how.create {
        argv.push("--create".to_owned());
    }
    argv.extend(conn.args(Some(&target)));
    let Some(jobs) = how.jobs.filter(|j| *j > 1) else {
        return pipe_into(repo, cat, &dump, &argv).await;
    };
    // pg_restore runs parallel jobs only from a file: staged in a directory
    // of our own (0700) as a 0600 file, removed when pg_restore ends, fails
    // or cairn is stopped (the directory goes when `staging` is dropped).
    let staging = tempfile::Builder::new()
        .prefix("cairn-restore-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("creating a private staging directory in TMPDIR")?;
    let path = staging.path().join(DUMP_CUSTOM);
    let result = async {
        let (_, file) = write_new_file(repo, cat, &dump, &path).await?;
        drop(file);
        argv.push(format!("--jobs={jobs}"));
        argv.push(path.display().to_string());
        let status = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .kill_on_drop(true)
            .status()
            .await
            .with_context(|| format!("cannot start {}", argv[0]))?;
        if !status.success() {
            return Err(client_failed("pg_restore", status));
        }
        Ok(())
    }
    .await;
    // Also when pg_restore could not start: the staged dump never stays.
    drop(staging);
    result
}
