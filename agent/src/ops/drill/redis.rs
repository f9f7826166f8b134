//! Redis drills: the RDB file restored into the scratch directory and
//! loaded by a temporary `redis-server` listening only on a socket there;
//! its keys per database are compared with those the backup counted.
//!
//! The server starts as a replica of a port the drill holds and never
//! answers on: a master would drop the keys whose expiry has passed while
//! loading, a replica keeps every key of the file (and, told so, accepts
//! writes from a check command).

use super::{check_command, tail, DrillOptions, Outcome};
use crate::catalog::Catalog;
use crate::error::{input, Context, Error, Result};
use crate::repo::Repository;
use crate::source::redis::{restore_rdb, RDB_FILE};
use cairn_repo_format::{DbKeys, Snapshot};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long loading the RDB file may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Drills a Redis snapshot.
pub(super) async fn drill(
    repo: &Repository,
    cat: &Catalog,
    snap: &Snapshot,
    opts: &DrillOptions,
    dir: &Path,
) -> Result<Outcome> {
    let program = opts
        .redis_server
        .clone()
        .unwrap_or_else(|| "redis-server".into());
    let mut out = Outcome {
        target: format!("a temporary {}", program.display()),
        ..Outcome::default()
    };
    let started = Instant::now();
    restore_rdb(repo, cat, snap, &dir.join(RDB_FILE)).await?;
    let socket = dir.join("redis.sock");
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a port for the drill's server to replicate from")?;
    let master_port = silent
        .local_addr()
        .context("the drill's port")?
        .port()
        .to_string();
    let mut child = tokio::process::Command::new(&program)
        .args(["--port", "0", "--unixsocket"])
        .arg(&socket)
        .args(["--unixsocketperm", "700", "--dir"])
        .arg(dir)
        .args(["--dbfilename", RDB_FILE, "--save", "", "--appendonly", "no"])
        .args(["--replicaof", "127.0.0.1", &master_port, "--replica-read-only", "no"])
        .args(["--daemonize", "no", "--logfile"])
        .arg(dir.join("redis.log"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::Input(format!(
                "cannot start {} ({e}): install Redis (Debian: redis-server) or pass --redis-server",
                program.display()
            ))
        })?;
    let result = async {
        // Loaded once it answers PING (while loading it says LOADING).
        let deadline = Instant::now() + LOAD_TIMEOUT;
        loop {
            if let Ok(reply) = ask(&socket, &["PING"]).await {
                if reply == "PONG" {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                input!(
                    "{} exited ({status}) loading the RDB file: {}",
                    program.display(),
                    tail(&log, 3)
                );
            }
            if Instant::now() > deadline {
                input!(
                    "{} did not load the RDB file within {} s",
                    program.display(),
                    LOAD_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        out.rto_seconds = started.elapsed().as_secs_f64();
        let verifying = Instant::now();
        let env = [("CAIRN_DRILL_REDIS_SOCKET", socket.display().to_string())];
        if let Some(problem) = check_command(opts, &env).await {
            out.problems.push(problem);
        }
        let keys = keyspace(&ask(&socket, &["INFO", "keyspace"]).await?);
        match snap.counts.as_ref().and_then(|c| c.keys.as_ref()) {
            Some(recorded) => compare(recorded, &keys, &mut out),
            None => out.notes.push("the backup recorded no key counts (an RDB file this Cairn could not parse, or a backup from before Cairn counted keys), so the keys loaded were counted, not compared".into()),
        }
        out.checked.keys = Some(keys);
        out.verify_seconds = verifying.elapsed().as_secs_f64();
        Ok(())
    }
    .await;
    let _ = ask(&socket, &["SHUTDOWN", "NOSAVE"]).await;
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    // Held to here: nothing else may take the port the server replicates from.
    drop(silent);
    result.map(|()| out)
}

/// Each database's keys at backup against those loaded.
fn compare(recorded: &[DbKeys], loaded: &BTreeMap<u32, u64>, out: &mut Outcome) {
    for r in recorded {
        let n = loaded.get(&r.db).copied().unwrap_or(0);
        if n != r.keys {
            out.problems.push(format!(
                "database {}: {} keys at backup, {n} after loading",
                r.db, r.keys
            ));
        }
    }
    for (db, n) in loaded {
        if !recorded.iter().any(|r| r.db == *db) {
            out.problems.push(format!(
                "database {db}: no keys at backup, {n} after loading"
            ));
        }
    }
}

/// Keys per database from `INFO keyspace` (`db0:keys=10,expires=0,…`).
fn keyspace(info: &str) -> BTreeMap<u32, u64> {
    info.lines()
        .filter_map(|l| {
            let (db, fields) = l.trim().strip_prefix("db")?.split_once(':')?;
            let keys = fields
                .split(',')
                .find_map(|f| f.strip_prefix("keys="))?
                .parse()
                .ok()?;
            Some((db.parse().ok()?, keys))
        })
        .collect()
}

/// Sends one command over the socket; its reply as text (a status, an
/// integer or a bulk string).
async fn ask(socket: &Path, args: &[&str]) -> Result<String> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let mut stream = BufReader::new(stream);
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .context("writing to the temporary redis-server")?;
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .await
        .context("reading from the temporary redis-server")?;
    let line = line.trim_end();
    match line.split_at_checked(1) {
        Some(("+" | ":", rest)) => Ok(rest.to_owned()),
        Some(("$", n)) => {
            let n: usize = n.parse().map_err(|_| {
                Error::Input(format!("unexpected reply from redis-server: {line:?}"))
            })?;
            let mut body = vec![0u8; n + 2];
            stream
                .read_exact(&mut body)
                .await
                .context("reading from the temporary redis-server")?;
            body.truncate(n);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => input!("redis-server answered {line:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyspace_is_read_per_database() {
        let info =
            "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n";
        assert_eq!(keyspace(info), BTreeMap::from([(0, 10), (3, 1)]));
        assert!(keyspace("# Keyspace\r\n").is_empty());
    }

    #[test]
    fn keys_that_differ_name_the_database_and_both_counts() {
        let mut out = Outcome::default();
        compare(
            &[DbKeys { db: 0, keys: 10 }, DbKeys { db: 1, keys: 2 }],
            &BTreeMap::from([(0, 10), (3, 1)]),
            &mut out,
        );
        assert_eq!(
            out.problems,
            [
                "database 1: 2 keys at backup, 0 after loading",
                "database 3: no keys at backup, 1 after loading"
            ]
        );
    }
}
