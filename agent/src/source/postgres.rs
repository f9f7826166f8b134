//! PostgreSQL through its own clients: `pg_dump` (custom format with its
//! compression off, so that consecutive dumps deduplicate, or plain on
//! request), `pg_dumpall --globals-only` for roles and tablespaces, and
//! `pg_restore` / `psql` to restore.
//!
//! Passwords come from `PGPASSWORD`, `PGPASSFILE` or `~/.pgpass`, which the
//! clients read themselves; Cairn passes the connection options through and
//! records only the database's own name and versions, never a connection
//! string (which may hold a password).

use super::SourceError;
use std::process::Stdio;

/// Connection options shared by every PostgreSQL client.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PgConn {
    /// Database name or connection URI/string (as for pg_dump --dbname).
    #[arg(long, short = 'd')]
    pub dbname: Option<String>,
    /// Server host or socket directory (-h as in every PostgreSQL client;
    /// --help shows this help).
    #[arg(long, short = 'h', short_alias = 'H')]
    pub host: Option<String>,
    /// Server port.
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// User name.
    #[arg(long, short = 'U')]
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
#[derive(Debug, Clone)]
pub struct PgSource {
    /// How to connect.
    pub conn: PgConn,
    /// Plain SQL instead of the custom format.
    pub plain: bool,
    /// Also store `pg_dumpall --globals-only`.
    pub globals: bool,
    /// Extra pg_dump arguments.
    pub extra: Vec<String>,
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
}

/// Runs a client to completion; its stdout, or an error with its stderr tail.
async fn capture(argv: &[String]) -> Result<String, SourceError> {
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
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

impl PgSource {
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
            "database.sql"
        } else {
            "database.dump"
        }
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
            "--command=select current_database() || '|' || current_setting('server_version')"
                .to_owned(),
        );
        let out = capture(&q).await?;
        let (dbname, server_version) = out
            .trim()
            .split_once('|')
            .map(|(d, v)| (d.to_owned(), v.to_owned()))
            .ok_or_else(|| SourceError::Postgres {
                detail: format!("unexpected answer from psql: {:?}", out.trim()),
            })?;
        let version = capture(&["pg_dump".to_owned(), "--version".to_owned()]).await?;
        let pg_dump_version = version
            .split_whitespace()
            .nth(2)
            .unwrap_or("unknown")
            .to_owned();
        Ok(PgProbe {
            dbname,
            server_version,
            pg_dump_version,
        })
    }
}
