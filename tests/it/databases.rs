//! PostgreSQL and Redis sources against real servers from Debian's packages,
//! started by the harness on 127.0.0.1: back up, drop or flush, restore,
//! compare every table and every key; and every way a dump can fail.

use cairn_e2e::{PgServer, RedisServer, Repo};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn repo_for(pg: &PgServer) -> Repo {
    let mut r = Repo::init();
    r.env.extend(pg.env());
    r
}

fn args<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(tail.iter().map(String::as_str))
        .collect()
}

/// Every table's row count and a checksum of its rows.
pub(crate) fn table_sums(pg: &PgServer, db: &str) -> Vec<String> {
    let tables = pg.sql(
        db,
        "select tablename from pg_tables where schemaname = 'public' order by 1",
    );
    tables
        .lines()
        .map(|t| {
            let q = format!("select count(*) || ':' || coalesce(md5(string_agg(x::text, ',' order by x::text)), '') from public.{t} x");
            format!("{t} {}", pg.sql(db, &q))
        })
        .collect()
}

pub(crate) fn make_database(pg: &PgServer, db: &str) {
    pg.sql("postgres", &format!("create database {db}"));
    let st = Command::new("pgbench")
        .args(["-i", "-s", "1", "-q", "-h"])
        .arg(&pg.socket_dir)
        .args(["-p", &pg.port.to_string(), "-U", &pg.user, db])
        .output()
        .unwrap();
    assert!(st.status.success(), "pgbench -i: {}", stderr(&st));
    pg.sql(
        db,
        "create table notes (id serial primary key, title text, body text, tags text[]);
         insert into notes (title, body, tags) select 'note ' || g, repeat(md5(g::text), 20), array['a', 'b' || g] from generate_series(1, 5000) g;",
    );
}

#[test]
fn postgres_round_trip_with_globals() {
    let pg = PgServer::start();
    make_database(&pg, "shop");
    pg.sql("postgres", "create role reporter login password 'r'");
    let before = table_sums(&pg, "shop");
    assert!(before.len() >= 5, "{before:?}");
    let r = repo_for(&pg);
    let conn = pg.args();
    let s = r.backup_json(
        &args(&["pg", "--dbname", "shop", "--globals"], &conn)[..],
        b"",
    );
    assert_eq!(s["files"], 2);
    let snap = &r.snapshots()[0];
    assert_eq!(snap["source"]["type"], "postgres");
    assert_eq!(snap["source"]["dbname"], "shop");
    assert_eq!(snap["source"]["format"], "custom");
    assert!(snap["source"]["server_version"]
        .as_str()
        .unwrap()
        .starts_with("15"));
    assert!(
        !serde_json::to_string(snap).unwrap().contains(&pg.password),
        "the password reached the snapshot"
    );

    pg.sql("postgres", "drop database shop");
    pg.sql("postgres", "drop role reporter");
    let o = r
        .cairn()
        .args(args(
            &[
                "restore", "latest", "--pg", "--create", "--dbname", "postgres",
            ],
            &conn,
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(table_sums(&pg, "shop"), before);
    assert_eq!(
        pg.sql(
            "postgres",
            "select count(*) from pg_roles where rolname = 'reporter'"
        ),
        "1"
    );

    // Restoring again over the live database with --clean works too.
    let o = r
        .cairn()
        .args(args(
            &[
                "restore", "latest", "--pg", "--clean", "--dbname", "shop", "--jobs", "2",
            ],
            &conn,
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(table_sums(&pg, "shop"), before);
}

#[test]
fn postgres_plain_format() {
    let pg = PgServer::start();
    make_database(&pg, "plain_db");
    let before = table_sums(&pg, "plain_db");
    let r = repo_for(&pg);
    let conn = pg.args();
    r.backup_json(
        &args(&["pg", "--dbname", "plain_db", "--plain"], &conn)[..],
        b"",
    );
    let sql =
        String::from_utf8(r.ok(&["restore", "latest", "--stdout", "--include", "database.sql"]))
            .unwrap();
    assert!(sql.contains("PostgreSQL database dump"));
    pg.sql("postgres", "create database plain_copy");
    let o = r
        .cairn()
        .args(args(
            &["restore", "latest", "--pg", "--dbname", "plain_copy"],
            &conn,
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(table_sums(&pg, "plain_copy"), before);
}

fn assert_failed_without_snapshot(r: &Repo, o: &std::process::Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "stderr lacks {needle:?}: {}",
        stderr(o)
    );
    assert!(r.snapshots().is_empty(), "a failed dump left a snapshot");
}

/// Holds an exclusive lock on `table` so that pg_dump waits on it.
pub(crate) fn lock_table(pg: &PgServer, db: &str, table: &str) -> std::process::Child {
    let sql = format!("begin; lock table {table} in access exclusive mode; select pg_sleep(120);");
    let child = pg
        .psql(db)
        .args(["-c", &sql])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let q = format!("select count(*) from pg_locks where relation = '{table}'::regclass and mode = 'AccessExclusiveLock' and granted");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.sql(db, &q) != "1" {
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Waits until pg_dump for `db` is blocked on a lock; returns its pid (a
/// child of the `cairn` process `parent`).
pub(crate) fn blocked_pg_dump(pg: &PgServer, db: &str, parent: u32) -> String {
    let q = format!("select count(*) from pg_stat_activity where datname = '{db}' and application_name = 'pg_dump' and wait_event_type = 'Lock'");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.sql("postgres", &q) != "1" {
        assert!(Instant::now() < deadline, "pg_dump never blocked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("pgrep")
        .args(["-P", &parent.to_string(), "pg_dump"])
        .output()
        .unwrap();
    match String::from_utf8_lossy(&out.stdout).lines().next() {
        Some(pid) => pid.to_owned(),
        None => {
            let tree = Command::new("ps")
                .args(["-ef", "--forest"])
                .output()
                .unwrap();
            panic!(
                "no pg_dump child of cairn {parent}:\n{}",
                String::from_utf8_lossy(&tree.stdout)
            );
        }
    }
}

#[test]
fn failed_dumps_never_become_snapshots() {
    let pg = PgServer::start();
    let conn = pg.args();

    // Unknown database.
    let r = repo_for(&pg);
    let o = r
        .cairn()
        .args(args(&["backup", "pg", "--dbname", "no_such_db"], &conn))
        .output()
        .unwrap();
    assert_failed_without_snapshot(&r, &o, "does not exist");

    // Wrong password.
    let r = repo_for(&pg);
    let o = r
        .cairn()
        .env("PGPASSWORD", "wrong")
        .args(args(&["backup", "pg", "--dbname", "postgres"], &conn))
        .output()
        .unwrap();
    assert_failed_without_snapshot(&r, &o, "password authentication failed");
    assert!(!stderr(&o).contains(&pg.password));

    // pg_dump killed by a signal while it dumps.
    make_database(&pg, "victim");
    let r = repo_for(&pg);
    let o = break_a_blocked_dump(&pg, &r, |pid| {
        assert!(Command::new("kill")
            .args(["-9", pid])
            .status()
            .unwrap()
            .success());
    });
    assert_failed_without_snapshot(&r, &o, "signal 9");

    // The server stops in the middle of the dump.
    let r = repo_for(&pg);
    let o = break_a_blocked_dump(&pg, &r, |_| pg.stop_now());
    assert_failed_without_snapshot(&r, &o, "pg_dump");
}

/// Starts `cairn backup pg` of `victim` while its `notes` table is locked,
/// so pg_dump waits; then calls `breaker` with pg_dump's pid and returns
/// cairn's output. Leaves no session behind on a server that still runs.
fn break_a_blocked_dump(
    pg: &PgServer,
    r: &Repo,
    breaker: impl FnOnce(&str),
) -> std::process::Output {
    let conn = pg.args();
    let mut locker = lock_table(pg, "victim", "notes");
    let backup = r
        .cairn()
        .args(args(&["backup", "pg", "--dbname", "victim"], &conn))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = blocked_pg_dump(pg, "victim", backup.id());
    breaker(&pid);
    let o = backup.wait_with_output().unwrap();
    let _ = locker.kill();
    let _ = locker.wait();
    // The killed clients' server sessions (the lock, the waiting dump) live on: end them.
    let end =
        "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = 'victim'";
    // (Not pg.sql: after the server-stop case there is no server to answer.)
    let _ = pg.psql("postgres").args(["-c", end]).output();
    o
}

/// Every key's type, value and whether it has a TTL, sorted.
pub(crate) fn redis_state(r: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = r
        .cli(&["KEYS", "*"])
        .unwrap_or_default()
        .lines()
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    keys.sort();
    // One redis-cli per question for all keys, not one per key and question.
    let ask = |cmd: &str, keys: &[&String]| -> Vec<String> {
        let script: Vec<String> = keys.iter().map(|k| format!("{cmd} {k}")).collect();
        cli_lines(r, &script)
    };
    let all: Vec<&String> = keys.iter().collect();
    let types = ask("TYPE", &all);
    let ttls = ask("TTL", &all);
    let strings: Vec<&String> = keys
        .iter()
        .zip(&types)
        .filter(|(_, t)| *t == "string")
        .map(|(k, _)| k)
        .collect();
    let mut string_values = ask("GET", &strings).into_iter();
    keys.iter()
        .zip(types.iter().zip(&ttls))
        .map(|(k, (t, ttl))| {
            let mut value: Vec<String> = match t.as_str() {
                "string" => vec![string_values.next().unwrap_or_default()],
                "list" => vec![r.cli(&["LRANGE", k, "0", "-1"]).unwrap_or_default()],
                "hash" => r
                    .cli(&["HGETALL", k])
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect(),
                "set" => r
                    .cli(&["SMEMBERS", k])
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect(),
                "zset" => vec![r
                    .cli(&["ZRANGE", k, "0", "-1", "WITHSCORES"])
                    .unwrap_or_default()],
                other => vec![format!("unexpected type {other}")],
            };
            if t == "hash" || t == "set" {
                value.sort();
            }
            let ttl: i64 = ttl.parse().unwrap_or(-3);
            format!("{k} {t} {:?} ttl={}", value, ttl > 0)
        })
        .collect()
}

/// Runs `commands` (each answered by one line) in one redis-cli session.
fn cli_lines(r: &RedisServer, commands: &[String]) -> Vec<String> {
    let mut child = r
        .cli_command()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let script = commands
        .iter()
        .map(|c| format!("{c}\n"))
        .collect::<String>();
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), commands.len(), "one answer per command");
    lines
}

pub(crate) fn fill_redis(r: &RedisServer) {
    let mut script: Vec<String> = (0..3000)
        .map(|i| format!("SET str:{i} value-{i}-{}", "x".repeat(80)))
        .collect();
    script.extend(
        [
            "RPUSH list a b c d",
            "HSET hash f1 v1 f2 v2",
            "SADD set m1 m2 m3",
            "ZADD zset 1 one 2 two 3.5 three",
            "EXPIRE str:7 5000",
            "EXPIRE hash 7000",
        ]
        .map(str::to_owned),
    );
    cli_lines(r, &script);
}

/// Restores a snapshot's RDB (`latest`, or an id) into a fresh server and
/// returns it.
pub(crate) fn restore_into_new_server(repo: &Repo, snapshot: &str) -> RedisServer {
    let dir = repo.tmp(&format!("rdb-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let rdb = dir.join("dump.rdb");
    repo.ok(&["restore", snapshot, "--redis-rdb", rdb.to_str().unwrap()]);
    // The server loads it from the repository's scratch directory, which
    // goes with the test's repository (the server saves nothing: --save '').
    RedisServer::start(&format!("--dir {} --dbfilename dump.rdb", dir.display()))
}

#[test]
fn redis_round_trip_diskless_and_disk_based() {
    let server = RedisServer::start("");
    fill_redis(&server);
    let before = redis_state(&server);
    assert!(before.len() > 3000);
    let r = Repo::init();
    let s = r.backup_json(&["redis", "--url", &server.url()], b"");
    assert!(s["bytes_read"].as_u64().unwrap() > 50_000, "{s}");
    let snap = &r.snapshots()[0];
    assert_eq!(snap["source"]["type"], "redis");
    assert!(snap["source"]["redis_version"]
        .as_str()
        .unwrap()
        .starts_with('7'));
    assert!(snap["source"]["rdb_version"].as_u64().unwrap() >= 9);

    server.cli(&["FLUSHALL"]).unwrap();
    let restored = restore_into_new_server(&r, "latest");
    assert_eq!(redis_state(&restored), before);

    // The disk-based form ($<length>) as well.
    server
        .cli(&["CONFIG", "SET", "repl-diskless-sync", "no"])
        .unwrap();
    fill_redis(&server);
    r.backup_json(&["redis", "--url", &server.url()], b"");
    let restored = restore_into_new_server(&r, "latest");
    assert_eq!(redis_state(&restored), redis_state(&server));
}

/// Loads `keys` keys of 200 random bytes each through redis-cli's mass
/// insertion, so that the server's snapshot takes a while.
fn fill_redis_large(r: &RedisServer, keys: usize) {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(keys as u64);
    let mut resp = Vec::with_capacity(keys * 240);
    let mut value = [0u8; 200];
    for i in 0..keys {
        rng.fill_bytes(&mut value);
        let key = format!("big:{i}");
        resp.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$200\r\n", key.len()).as_bytes(),
        );
        resp.extend_from_slice(&value);
        resp.extend_from_slice(b"\r\n");
    }
    let mut child = r
        .cli_command()
        .arg("--pipe")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&resp));
    assert!(child.wait().unwrap().success());
    writer.join().unwrap().unwrap();
    assert_eq!(r.cli(&["DBSIZE"]).unwrap(), keys.to_string());
}

/// The same keys hold the same values in both servers (a sample of them).
fn assert_same_sample(a: &RedisServer, b: &RedisServer, keys: usize) {
    assert_eq!(a.cli(&["DBSIZE"]), b.cli(&["DBSIZE"]));
    let script: Vec<String> = (0..keys)
        .step_by(keys / 500)
        .map(|i| format!("STRLEN big:{i}"))
        .collect();
    assert_eq!(cli_lines(a, &script), cli_lines(b, &script));
    let hashes = |r: &RedisServer| -> Vec<String> {
        (0..keys)
            .step_by(keys / 50)
            .map(|i| {
                let out = r
                    .cli_command()
                    .args(["--no-raw", "GET", &format!("big:{i}")])
                    .output()
                    .unwrap();
                blake3::hash(&out.stdout).to_hex().to_string()
            })
            .collect()
    };
    assert_eq!(hashes(a), hashes(b));
}

/// Issue 16: a server with Debian's defaults (diskless replication after a
/// 5 s delay) refused cairn ("the server refused a full resynchronisation").
/// Both transfer forms, with a dataset whose snapshot takes a while.
#[test]
fn redis_with_its_default_settings_and_a_large_dataset() {
    let server = RedisServer::start("");
    let keys = 600_000;
    fill_redis_large(&server, keys);
    assert_eq!(
        server
            .cli(&["CONFIG", "GET", "repl-diskless-sync"])
            .unwrap(),
        "repl-diskless-sync\nyes"
    );
    let r = Repo::init();
    for mode in ["yes", "no"] {
        server
            .cli(&["CONFIG", "SET", "repl-diskless-sync", mode])
            .unwrap();
        let s = r.backup_json(&["redis", "--url", &server.url()], b"");
        assert!(s["bytes_read"].as_u64().unwrap() > 100 << 20, "{mode}: {s}");
        let restored = restore_into_new_server(&r, "latest");
        assert_same_sample(&server, &restored, keys);
    }
}

/// Issue 16: IPv6 literals, TLS (`rediss://`, as managed services require)
/// and passwords with any characters, in the URL or in REDISCLI_AUTH.
#[test]
fn redis_over_ipv6_tls_and_odd_passwords() {
    let pass = "p@ss:w/rd%é#?&x";
    let encoded = "p%40ss%3Aw%2Frd%25%C3%A9%23%3F%26x";
    let server = RedisServer::start(&format!("--bind '127.0.0.1 ::1' --requirepass '{pass}'"));
    let r = Repo::init();
    let url = format!("redis://:{encoded}@[::1]:{}", server.port);
    r.backup_json(&["redis", "--url", &url], b"");
    let o = r
        .cairn()
        .env("REDISCLI_AUTH", pass)
        .args([
            "backup",
            "redis",
            "--url",
            &format!("redis://[::1]:{}", server.port),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        r.snapshots()[0]["source"]["address"],
        format!("[::1]:{}", server.port)
    );
    assert!(!serde_json::to_string(&r.snapshots())
        .unwrap()
        .contains("p@ss"));

    let tls = RedisServer::start_tls("");
    fill_redis(&tls);
    let before = tls.cli(&["DBSIZE"]).unwrap();
    let ca = tls.tls_ca.clone().unwrap();
    let s = r.backup_json(
        &[
            "redis",
            "--url",
            &tls.url(),
            "--tls-ca-file",
            ca.to_str().unwrap(),
        ],
        b"",
    );
    assert!(s["bytes_read"].as_u64().unwrap() > 50_000, "{s}");
    let restored = restore_into_new_server(&r, "latest");
    assert_eq!(restored.cli(&["DBSIZE"]).unwrap(), before);
    // Without the CA the server is not trusted; plain text to a TLS port fails.
    let o = r.run(&["backup", "redis", "--url", &tls.url()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("TLS"), "{}", stderr(&o));
    let o = r.run(&[
        "backup",
        "redis",
        "--url",
        &format!("redis://127.0.0.1:{}", tls.port),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(r.snapshots().len(), 3);
}

#[test]
fn redis_authentication() {
    let server = RedisServer::start("--requirepass s3cret-pass");
    let r = Repo::init();
    let url = format!("redis://:s3cret-pass@127.0.0.1:{}", server.port);
    r.backup_json(&["redis", "--url", &url], b"");
    let o = r.run(&[
        "backup",
        "redis",
        "--url",
        &format!("redis://:wrong@127.0.0.1:{}", server.port),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("authentication failed"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("wrong") || !stderr(&o).contains(":wrong@"),
        "the password reached the error"
    );
    assert!(!serde_json::to_string(&r.snapshots())
        .unwrap()
        .contains("s3cret"));
}

/// A TCP proxy in front of a real server that damages the server's answer at
/// byte `at`: flips it, or closes the connection there.
fn damaging_proxy(upstream: u16, at: usize, cut: bool) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else {
            return;
        };
        let mut server = std::net::TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
        });
        let mut seen = 0usize;
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if (seen..seen + n).contains(&at) {
                if cut {
                    let _ = client.write_all(&buf[..at - seen]);
                    break;
                }
                buf[at - seen] ^= 0x20;
            }
            seen += n;
            if client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.shutdown(std::net::Shutdown::Both);
    });
    port
}

#[test]
fn damaged_redis_transfers_never_become_snapshots() {
    let server = RedisServer::start("");
    fill_redis(&server);
    for (cut, needle) in [(false, "checksum"), (true, "closed")] {
        let r = Repo::init();
        // Past the handshake (a few KiB), inside the RDB payload.
        let port = damaging_proxy(server.port, 40_000, cut);
        let o = r.run(&[
            "backup",
            "redis",
            "--url",
            &format!("redis://127.0.0.1:{port}"),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
        assert!(r.snapshots().is_empty());
    }
    // Nothing listening.
    let r = Repo::init();
    let o = r.run(&[
        "backup",
        "redis",
        "--url",
        &format!("redis://127.0.0.1:{}", cairn_e2e::free_port()),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}

#[test]
fn mysqldump_through_command() {
    let db = cairn_e2e::MariaDbServer::start();
    db.sql(
        "create database app; create table app.orders (id int primary key, customer varchar(40), amount decimal(10,2), note text);
         use app; insert into app.orders select seq, concat('customer-', seq % 97), seq * 1.25, repeat(md5(seq), 3) from seq_1_to_20000;",
    );
    let before = db.sql(
        "select count(*), sum(crc32(concat_ws('|', id, customer, amount, note))) from app.orders",
    );
    let r = Repo::init();
    let sock = db.socket_arg();
    let s = r.backup_json(
        &[
            "--name",
            "app.sql",
            "--command",
            "--",
            "mysqldump",
            "--no-defaults",
            "-uroot",
            &sock,
            "--single-transaction",
            "--routines",
            "--triggers",
            "app",
        ],
        b"",
    );
    assert!(s["bytes_read"].as_u64().unwrap() > 1_000_000, "{s}");
    db.sql("drop database app; create database app;");
    let dump = r.ok(&["restore", "latest", "--stdout"]);
    let mut mysql = Command::new("mariadb")
        .args(["--no-defaults", "-uroot", &sock, "app"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    mysql.stdin.take().unwrap().write_all(&dump).unwrap();
    assert!(mysql.wait().unwrap().success());
    assert_eq!(db.sql("select count(*), sum(crc32(concat_ws('|', id, customer, amount, note))) from app.orders"), before);

    // A mysqldump that fails (unknown database) leaves no snapshot.
    let o = r.run(&[
        "backup",
        "--name",
        "x.sql",
        "--command",
        "--",
        "mysqldump",
        "--no-defaults",
        "-uroot",
        &sock,
        "no_such_db",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no_such_db"), "{}", stderr(&o));
    assert_eq!(r.snapshots().len(), 1);
}

/// Issue 16: `restore --pg --jobs` staged the plaintext dump in TMPDIR at
/// mode 0644. It is now a 0600 file in a 0700 directory of its own, gone once
/// pg_restore is done. A shim in front of the real pg_restore records what
/// it is given.
#[test]
fn restore_jobs_stages_the_dump_privately() {
    let pg = PgServer::start();
    make_database(&pg, "staged");
    let before = table_sums(&pg, "staged");
    let mut r = repo_for(&pg);
    let conn = pg.args();
    r.backup_json(&args(&["pg", "--dbname", "staged"], &conn)[..], b"");
    let real = String::from_utf8(
        Command::new("which")
            .arg("pg_restore")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = r.tmp("shim");
    std::fs::create_dir(&bin).unwrap();
    let record = r.tmp("staged.modes");
    std::fs::write(
        bin.join("pg_restore"),
        format!(
            "#!/bin/sh\nfor a; do last=$a; done\nstat -c %a \"$last\" \"$(dirname \"$last\")\" > {}\nexec {} \"$@\"\n",
            record.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("pg_restore"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tmpdir = r.tmp("tmpdir");
    std::fs::create_dir(&tmpdir).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    r.env.push(("PATH".into(), path));
    r.env.push(("TMPDIR".into(), tmpdir.display().to_string()));
    let o = r.run(&args(
        &[
            "restore", "latest", "--pg", "--clean", "--dbname", "staged", "--jobs", "2",
        ],
        &conn,
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(table_sums(&pg, "staged"), before);
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "600\n700\n");
    assert_eq!(
        std::fs::read_dir(&tmpdir).unwrap().count(),
        0,
        "the staged dump stayed"
    );
}
