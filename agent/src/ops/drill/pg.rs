//! PostgreSQL drills: the dump restored into a scratch database (on a
//! temporary server, or a new database on a server the user names), then
//! every table's rows counted and compared with the backup's counts.

use super::{check_command, tail, DrillOptions, Outcome, PgScratch};
use crate::catalog::Catalog;
use crate::error::{input, Context, Error, Result};
use crate::repo::Repository;
use crate::restore::{feed, root_file};
use crate::source::postgres::{capture, rows, PgConn, DUMP_CUSTOM, DUMP_PLAIN, GLOBALS};
use cairn_repo_format::{Snapshot, Source, TableRows};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The temporary server's port (it listens on its private socket only).
const PORT: u16 = 5432;
/// How long a temporary server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Drills a PostgreSQL snapshot.
pub(super) async fn drill(
    repo: &Repository,
    cat: &Catalog,
    snap: &Snapshot,
    opts: &DrillOptions,
    dir: &Path,
) -> Result<Outcome> {
    let Source::Postgres { server_version, .. } = &snap.source else {
        return Err(Error::Internal(
            "a PostgreSQL drill of another source".into(),
        ));
    };
    let mut out = Outcome::default();
    let setup = Instant::now();
    let (mut server, admin, db) = match &opts.postgres {
        PgScratch::Temporary { bindir } => {
            let server = TempServer::start(dir, bindir.as_deref(), major(server_version)).await?;
            out.target = format!(
                "a temporary PostgreSQL {} server ({})",
                server.version,
                server.bindir.display()
            );
            let admin = server.conn();
            (Some(server), admin, "drill".to_owned())
        }
        PgScratch::Server(conn) => {
            let db = format!("cairn_drill_{}", hex::encode(rand::random::<[u8; 6]>()));
            out.target = format!("database {db} on {}", describe(conn));
            (None, conn.clone(), db)
        }
    };
    let clients = Clients::new(server.as_ref().map(|s| s.bindir.as_path()));
    let admin_db = admin.dbname.clone().unwrap_or_else(|| "postgres".into());
    let sql = |text: &str| {
        let mut a = vec![
            clients.psql.clone(),
            "--no-psqlrc".into(),
            "--quiet".into(),
            "--set=ON_ERROR_STOP=1".into(),
        ];
        a.extend(admin.args(Some(&admin_db)));
        a.push(format!("--command={text}"));
        a
    };
    let created = capture(&sql(&format!("create database \"{db}\"")), &[]).await;
    if let Err(e) = created {
        if let Some(s) = server.take() {
            s.stop().await;
        }
        return Err(Error::Source(e)).context("creating the drill's database");
    }
    out.setup_seconds = setup.elapsed().as_secs_f64();
    let conn = PgConn {
        dbname: Some(db.clone()),
        ..admin.clone()
    };
    let result = restore_and_compare(
        repo,
        cat,
        snap,
        opts,
        &clients,
        &conn,
        server.is_some(),
        &mut out,
    )
    .await;
    // The scratch database goes in every case.
    match server.take() {
        Some(s) => s.stop().await,
        None => {
            // `with (force)` (PostgreSQL 13 and later) ends sessions a
            // check command left open.
            let mut dropped = capture(
                &sql(&format!("drop database if exists \"{db}\" with (force)")),
                &[],
            )
            .await;
            if dropped.is_err() {
                dropped = capture(&sql(&format!("drop database if exists \"{db}\"")), &[]).await;
            }
            if let Err(e) = dropped {
                out.notes.push(format!(
                    "the drill's database {db} could not be dropped ({e}); drop it by hand"
                ));
            }
        }
    }
    result.map(|()| out)
}

#[allow(clippy::too_many_arguments)]
async fn restore_and_compare(
    repo: &Repository,
    cat: &Catalog,
    snap: &Snapshot,
    opts: &DrillOptions,
    clients: &Clients,
    conn: &PgConn,
    own_server: bool,
    out: &mut Outcome,
) -> Result<()> {
    let started = Instant::now();
    let psql = |db: &str| {
        let mut a = vec![clients.psql.clone(), "--no-psqlrc".into(), "--quiet".into()];
        a.extend(conn.args(Some(db)));
        a
    };
    let db = conn.dbname.clone().unwrap_or_default();
    // Roles only into a server of our own; on the user's server they would
    // change more than the scratch database.
    let mut with_owners = false;
    if own_server {
        if let Some(globals) = root_file(cat, snap, GLOBALS)? {
            let (_, said) = feed(repo, cat, &globals, &psql("postgres"), true).await?;
            let errors = said
                .lines()
                .filter(|l| l.contains("ERROR:") && !l.contains("already exists"))
                .count();
            if errors > 0 {
                out.notes.push(format!(
                    "{errors} statement(s) of globals.sql failed: {}",
                    tail(&said, 2)
                ));
            }
            with_owners = true;
        }
    }
    let (tool, status, said) = if let Some(dump) = root_file(cat, snap, DUMP_CUSTOM)? {
        let mut argv = vec![clients.pg_restore.clone()];
        if !with_owners {
            argv.extend(["--no-owner".into(), "--no-privileges".into()]);
        }
        argv.extend(conn.args(Some(&db)));
        let (status, said) = feed(repo, cat, &dump, &argv, true).await?;
        ("pg_restore", status, said)
    } else if let Some(dump) = root_file(cat, snap, DUMP_PLAIN)? {
        let (status, said) = feed(repo, cat, &dump, &psql(&db), true).await?;
        ("psql", status, said)
    } else {
        return Err(Error::Corrupt("the snapshot holds no dump".into()));
    };
    out.rto_seconds = started.elapsed().as_secs_f64();
    judge_restore(tool, status, &said, out);
    let verifying = Instant::now();
    let env = [
        ("PGHOST", conn.host.clone().unwrap_or_default()),
        (
            "PGPORT",
            conn.port.map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("PGUSER", conn.username.clone().unwrap_or_default()),
        ("PGDATABASE", db.clone()),
    ];
    let env: Vec<(&str, String)> = env.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if let Some(problem) = check_command(opts, &env).await {
        out.problems.push(problem);
    }
    let mut count = vec![
        clients.psql.clone(),
        "--no-psqlrc".into(),
        "--no-align".into(),
        "--tuples-only".into(),
    ];
    count.extend(conn.args(Some(&db)));
    count.push(format!("--command={}", rows::COUNT_SQL));
    let restored = rows::parse(&capture(&count, &[]).await?)?;
    match snap.counts.as_ref().and_then(|c| c.tables.as_ref()) {
        Some(recorded) => compare(recorded, &restored, out),
        None => out.notes.push("the backup recorded no row counts (made with --no-row-counts, with pg_dump options that select tables, or before Cairn counted rows): the restore was checked, the rows were not compared".into()),
    }
    out.checked.tables = Some(restored.len() as u64);
    out.checked.rows = Some(restored.iter().map(|t| t.rows).sum());
    out.verify_seconds = verifying.elapsed().as_secs_f64();
    Ok(())
}

/// A restore client's errors become problems, except those about roles the
/// scratch server lacks (owners and grants not set), which are noted.
fn judge_restore(tool: &str, status: std::process::ExitStatus, said: &str, out: &mut Outcome) {
    let errors: Vec<&str> = said.lines().filter(|l| l.contains("ERROR:")).collect();
    let (roles, others): (Vec<&str>, Vec<&str>) = errors
        .into_iter()
        .partition(|l| l.contains("role \"") && l.contains("does not exist"));
    if !roles.is_empty() {
        out.notes.push(format!(
            "{} statement(s) named roles the scratch server lacks (owners and grants not set; back up with --globals to restore roles)",
            roles.len()
        ));
    }
    for e in others.iter().take(5) {
        out.problems.push(format!("{tool}: {}", e.trim()));
    }
    if others.len() > 5 {
        out.problems
            .push(format!("{tool}: and {} more errors", others.len() - 5));
    }
    if !status.success() && others.is_empty() && roles.is_empty() {
        out.problems
            .push(format!("{tool} failed ({status}): {}", tail(said, 4)));
    }
}

/// Every table counted at backup against the restore.
fn compare(recorded: &[TableRows], restored: &[TableRows], out: &mut Outcome) {
    let name = |t: &TableRows| format!("{}.{}", t.schema, t.table);
    let found: std::collections::HashMap<(&str, &str), u64> = restored
        .iter()
        .map(|t| ((t.schema.as_str(), t.table.as_str()), t.rows))
        .collect();
    for t in recorded {
        match found.get(&(t.schema.as_str(), t.table.as_str())) {
            None => out.problems.push(format!(
                "table {}: {} rows at backup, missing after the restore",
                name(t),
                t.rows
            )),
            Some(n) if *n != t.rows => out.problems.push(format!(
                "table {}: {} rows at backup, {n} after the restore",
                name(t),
                t.rows
            )),
            Some(_) => {}
        }
    }
    let extra: Vec<String> = restored
        .iter()
        .filter(|t| {
            !recorded
                .iter()
                .any(|r| r.schema == t.schema && r.table == t.table)
        })
        .map(name)
        .collect();
    if !extra.is_empty() {
        out.notes.push(format!(
            "not counted at backup, so not compared: {}",
            extra.join(", ")
        ));
    }
}

/// `host:port` of a connection, for messages.
fn describe(conn: &PgConn) -> String {
    format!(
        "{}:{}",
        conn.host.as_deref().unwrap_or("the default host"),
        conn.port.unwrap_or(PORT)
    )
}

/// The major version in `15.4` or `9.6.24` (for 9.x, 9).
fn major(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
}

/// The client programs: the temporary server's own, or those on `PATH`.
struct Clients {
    psql: String,
    pg_restore: String,
}

impl Clients {
    fn new(bindir: Option<&Path>) -> Self {
        let pick = |name: &str| {
            bindir
                .map(|d| d.join(name))
                .filter(|p| p.exists())
                .map_or_else(|| name.to_owned(), |p| p.display().to_string())
        };
        Clients {
            psql: pick("psql"),
            pg_restore: pick("pg_restore"),
        }
    }
}

/// Where `initdb` and `postgres` are: `given`, else the newest of the
/// packaged versions at least `want` (the dump's server), else the newest
/// there is, else the directory of `initdb` on `PATH`.
fn find_bindir(given: Option<&Path>, want: Option<u32>) -> Result<PathBuf> {
    if let Some(dir) = given {
        if !dir.join("initdb").exists() || !dir.join("postgres").exists() {
            input!(
                "{} holds no initdb and postgres: pass the bin directory of a PostgreSQL server installation (--pg-bindir)",
                dir.display()
            );
        }
        return Ok(dir.to_owned());
    }
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for (parent, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(version) = name.strip_prefix(prefix).and_then(major) else {
                continue;
            };
            let bin = e.path().join("bin");
            if bin.join("initdb").exists() && bin.join("postgres").exists() {
                found.push((version, bin));
            }
        }
    }
    found.sort();
    let fits = found
        .iter()
        .find(|(v, _)| want.is_none_or(|w| *v >= w))
        .or(found.last());
    if let Some((_, bin)) = fits {
        return Ok(bin.clone());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
    });
    on_path.ok_or_else(|| {
        Error::Input("no PostgreSQL server programs (initdb, postgres) in /usr/lib/postgresql/*/bin or on PATH: install the server package (Debian: postgresql), pass --pg-bindir, or drill into a server you name with --pg-host".into())
    })
}

/// A PostgreSQL server of the drill's own, in its scratch directory,
/// listening only on a socket there.
struct TempServer {
    child: tokio::process::Child,
    dir: PathBuf,
    bindir: PathBuf,
    version: String,
}

impl TempServer {
    async fn start(dir: &Path, bindir: Option<&Path>, want: Option<u32>) -> Result<Self> {
        let bindir = find_bindir(bindir, want)?;
        // initdb and postgres refuse to run as root: then as `postgres`.
        let owner = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or_else(|| Error::Input("run as root, a drill starts PostgreSQL as the user `postgres`, and there is none: create it, run the drill as another user, or name a server with --pg-host".into()))?;
            std::os::unix::fs::chown(dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .with_context(|| format!("giving {} to the postgres user", dir.display()))?;
            Some((user.uid.as_raw(), user.gid.as_raw()))
        } else {
            None
        };
        let command = |program: &str| {
            let mut c = tokio::process::Command::new(bindir.join(program));
            if let Some((uid, gid)) = owner {
                c.uid(uid).gid(gid);
            }
            c.current_dir(dir)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            c
        };
        let version = command("postgres")
            .arg("--version")
            .output()
            .await
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .nth(2)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "?".into());
        let data = dir.join("data");
        let init = command("initdb")
            .arg("--pgdata")
            .arg(&data)
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .await
            .with_context(|| format!("cannot start {}", bindir.join("initdb").display()))?;
        if !init.status.success() {
            input!(
                "initdb failed ({}): {}",
                init.status,
                tail(&String::from_utf8_lossy(&init.stderr), 4)
            );
        }
        let log =
            std::fs::File::create(dir.join("server.log")).context("creating the server's log")?;
        let child = command("postgres")
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir)
            .args(["-c", "listen_addresses=", "-p", &PORT.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bindir.join("postgres").display()))?;
        let mut server = TempServer {
            child,
            dir: dir.to_owned(),
            bindir,
            version,
        };
        let psql = Clients::new(Some(&server.bindir)).psql;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut probe = vec![
                psql.clone(),
                "--no-psqlrc".into(),
                "--command=select 1".into(),
            ];
            probe.extend(server.conn().args(Some("postgres")));
            if capture(&probe, &[]).await.is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log =
                    std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                input!(
                    "the temporary PostgreSQL server exited ({status}): {}",
                    tail(&log, 4)
                );
            }
            if Instant::now() > deadline {
                server.stop().await;
                input!(
                    "the temporary PostgreSQL server did not accept connections within {} s",
                    START_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How clients reach it: its socket, as `postgres`.
    fn conn(&self) -> PgConn {
        PgConn {
            dbname: None,
            host: Some(self.dir.display().to_string()),
            port: Some(PORT),
            username: Some("postgres".into()),
        }
    }

    /// A fast shutdown (killed if it takes more than half a minute).
    async fn stop(mut self) {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_give_their_major() {
        assert_eq!(major("15.4"), Some(15));
        assert_eq!(major("16.1 (Debian 16.1-1)"), Some(16));
        assert_eq!(major("9.6.24"), Some(9));
        assert_eq!(major("x"), None);
    }

    #[test]
    fn counts_that_differ_name_the_table_and_both_counts() {
        let t = |table: &str, rows| TableRows {
            schema: "public".into(),
            table: table.into(),
            rows,
        };
        let mut out = Outcome::default();
        compare(
            &[t("a", 10), t("b", 5), t("c", 1)],
            &[t("a", 10), t("b", 0), t("d", 2)],
            &mut out,
        );
        assert_eq!(
            out.problems,
            [
                "table public.b: 5 rows at backup, 0 after the restore",
                "table public.c: 1 rows at backup, missing after the restore"
            ]
        );
        assert_eq!(
            out.notes,
            ["not counted at backup, so not compared: public.d"]
        );
    }
}
