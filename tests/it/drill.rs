//! Restore drills against real servers: a pgbench database backed up while
//! pgbench writes to it, drilled on a temporary server and on a named one;
//! the same drill failing, naming the table and both counts, when the
//! restored database is tampered with and when the dump silently lost rows.
//! Redis at its defaults, with keys that expire before the drill. File trees
//! and streams read back entry by entry. RTO and RPO in every report.

use crate::databases::{fill_redis, make_database};
use cairn_e2e::{PgServer, RedisServer, Repo};
use serde_json::Value;
use std::process::{Command, Output};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cairn drill --json` with `extra`; the exit status and the report,
/// checked against the schema.
fn drill(r: &Repo, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["--json", "drill"];
    args.extend(extra);
    let out = r.run(&args);
    let doc = crate::json::valid(r.dir.path(), "drill", &out.stdout);
    (out.status.code(), doc)
}

fn problems(d: &Value) -> Vec<String> {
    d["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

fn table_rows(snapshot: &Value, table: &str) -> u64 {
    snapshot["counts"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["schema"] == "public" && t["table"] == table)
        .unwrap_or_else(|| panic!("no count of {table}: {snapshot}"))["rows"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_pgbench_drill_passes_and_a_tampered_one_names_the_table() {
    let pg = PgServer::start();
    make_database(&pg, "shop");
    let mut r = Repo::init();
    r.env.extend(pg.env());
    let conn = pg.args();
    let mut backup: Vec<&str> = vec!["backup", "pg", "--dbname", "shop", "--globals"];
    backup.extend(conn.iter().map(String::as_str));

    // pgbench writes (updates, and inserts into pgbench_history) through the
    // whole backup: the counts must be those of the dump's own snapshot.
    let load = Command::new("pgbench")
        .args(["-T", "6", "-c", "2", "-n", "-h"])
        .arg(&pg.socket_dir)
        .args(["-p", &pg.port.to_string(), "-U", &pg.user, "shop"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    r.ok(&backup);
    let load = load.wait_with_output().unwrap();
    assert!(load.status.success(), "pgbench: {}", stderr(&load));
    let snap = r.snapshots().remove(0);
    assert_eq!(table_rows(&snap, "pgbench_accounts"), 100_000);
    assert_eq!(table_rows(&snap, "notes"), 5000);
    let history = table_rows(&snap, "pgbench_history");
    assert!(history > 0, "pgbench wrote nothing during the backup");
    let now: u64 = pg
        .sql("shop", "select count(*) from pgbench_history")
        .parse()
        .unwrap();
    assert!(
        now > history,
        "the writes went on after the dump's snapshot"
    );

    // On a temporary server of the drill's own (roles from --globals).
    let (code, report) = drill(&r, &[]);
    assert_eq!(code, Some(0), "{report}");
    let d = &report["drills"][0];
    assert_eq!(d["kind"], "postgres");
    assert!(
        d["target"]
            .as_str()
            .unwrap()
            .contains("temporary PostgreSQL 15"),
        "{d}"
    );
    assert_eq!(d["checked"]["tables"], 5, "{d}");
    assert_eq!(
        d["checked"]["rows"].as_u64(),
        Some(100_000 + 10 + 1 + 5000 + history)
    );
    assert!(d["rto_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(report["passed"], true);

    // A table truncated in the restored database before the comparison.
    let (code, report) = drill(
        &r,
        &["--check-command", "psql -qc 'truncate pgbench_accounts'"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(report["passed"], false);
    assert_eq!(
        problems(&report["drills"][0]),
        ["table public.pgbench_accounts: 100000 rows at backup, 0 after the restore"]
    );

    // Into a new database on a server the user names; it is dropped after.
    let named = [
        "--pg-host",
        pg.socket_dir.to_str().unwrap(),
        "--pg-port",
        &pg.port.to_string(),
        "--pg-user",
        "postgres",
    ]
    .map(str::to_owned);
    let named: Vec<&str> = named.iter().map(String::as_str).collect();
    let (code, report) = drill(&r, &named);
    assert_eq!(code, Some(0), "{report}");
    assert!(report["drills"][0]["target"]
        .as_str()
        .unwrap()
        .starts_with("database cairn_drill_"));
    let left = pg.sql(
        "postgres",
        "select count(*) from pg_database where datname like 'cairn_drill_%'",
    );
    assert_eq!(left, "0");

    // A dump that silently lost rows: a pg_dump that leaves one table's
    // data out, found first on PATH.
    let wrapper = r.tmp("bin");
    std::fs::create_dir_all(&wrapper).unwrap();
    let script = wrapper.join("pg_dump");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec /usr/bin/pg_dump \"$@\" --exclude-table-data=public.notes\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let path = format!(
        "{}:{}",
        wrapper.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = r.cairn().args(&backup).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, report) = drill(&r, &["latest"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        problems(&report["drills"][0]),
        ["table public.notes: 5000 rows at backup, 0 after the restore"]
    );
    // The RPO: two snapshots of the database, the gap between them.
    let times: Vec<i64> = r
        .snapshots()
        .iter()
        .map(|s| {
            s["time"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_nanosecond() as i64
        })
        .collect();
    let gap = (times[1] - times[0]).abs() as f64 / 1e9;
    let rpo = &report["drills"][0]["rpo"];
    assert_eq!(rpo["snapshots_in_window"], 2);
    assert!(
        (rpo["largest_gap_seconds"].as_f64().unwrap() - gap).abs() < 0.01,
        "{rpo}"
    );
    assert!(rpo["newest_age_seconds"].as_f64().unwrap() < 600.0);

    // Counting off: the drill says it could not compare, and passes.
    let mut off = backup.clone();
    off.push("--no-row-counts");
    r.ok(&off);
    let (code, report) = drill(&r, &["latest"]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report["drills"][0]["notes"][0]
        .as_str()
        .unwrap()
        .contains("no row counts"));
}

#[test]
fn a_redis_drill_compares_keys_per_database() {
    // As Debian ships it: diskless replication after a 5 s delay.
    let server = RedisServer::start("");
    fill_redis(&server);
    server.cli(&["-n", "3", "SET", "other", "db"]).unwrap();
    // In the file, and expired by the time of the drill (the server forks
    // for the file 5 s after the backup asks, at its defaults): a master
    // loading the file would drop it, the drill's server keeps it.
    let set = std::time::Instant::now();
    server.cli(&["SET", "brief", "x", "PX", "7000"]).unwrap();
    let r = Repo::init();
    r.ok(&["backup", "redis", "--url", &server.url()]);
    let snap = r.snapshots().remove(0);
    let keys = &snap["counts"]["keys"];
    assert_eq!(keys[0]["db"], 0);
    assert_eq!(keys[0]["keys"], 3000 + 4 + 1, "{snap}");
    assert_eq!(keys[1], serde_json::json!({"db": 3, "keys": 1}));
    std::thread::sleep(std::time::Duration::from_millis(7500).saturating_sub(set.elapsed()));
    assert_eq!(server.cli(&["EXISTS", "brief"]).as_deref(), Some("0"));

    let (code, report) = drill(&r, &[]);
    assert_eq!(code, Some(0), "{report}");
    let d = &report["drills"][0];
    assert_eq!(d["kind"], "redis");
    assert_eq!(d["checked"]["keys"], serde_json::json!({"0": 3005, "3": 1}));

    let (code, report) = drill(
        &r,
        &[
            "--check-command",
            "redis-cli -s \"$CAIRN_DRILL_REDIS_SOCKET\" -n 3 flushdb",
        ],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        problems(&report["drills"][0]),
        ["database 3: 1 keys at backup, 0 after loading"]
    );
}

#[test]
fn file_trees_and_streams_are_read_back_entry_by_entry() {
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir_all(src.join("etc/conf.d")).unwrap();
    std::fs::write(src.join("big.bin"), cairn_e2e::random_bytes(3 << 20, 7)).unwrap();
    std::fs::write(src.join("etc/conf.d/app.conf"), b"port = 80\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("../big.bin", src.join("etc/link")).unwrap();
    std::fs::hard_link(src.join("big.bin"), src.join("etc/big.hard")).unwrap();
    Command::new("chmod")
        .args(["0750"])
        .arg(src.join("etc/conf.d/app.conf"))
        .status()
        .unwrap();
    let src_s = src.to_str().unwrap().to_owned();
    r.ok(&["backup", &src_s]);
    r.ok_with(&["backup", "--stdin", "--name", "feed.sql"], b"select 1;\n");
    let scratch = r.tmp("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let scratch_s = scratch.to_str().unwrap().to_owned();

    let (code, report) = drill(&r, &["--scratch", &scratch_s]);
    assert_eq!(code, Some(0), "{report}");
    let drills = report["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 2);
    let tree = drills
        .iter()
        .find(|d| d["snapshot"]["source"]["type"] == "files")
        .unwrap();
    assert_eq!(tree["checked"]["files"], 4, "{tree}");
    assert_eq!(tree["checked"]["bytes"], 2 * (3 << 20) + 10);
    let stream = drills
        .iter()
        .find(|d| d["snapshot"]["source"]["type"] == "stdin")
        .unwrap();
    assert_eq!(stream["checked"]["bytes"], 10);
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "the scratch directory is left empty"
    );

    // One byte changed, one mode changed after the restore: both named.
    let inner = format!("$CAIRN_DRILL_DIR{src_s}");
    let tamper = format!(
        "printf x | dd of=\"{inner}/big.bin\" bs=1 seek=2000000 conv=notrunc 2>/dev/null ; chmod 600 \"{inner}/etc/conf.d/app.conf\""
    );
    let (code, report) = drill(
        &r,
        &[
            "--source-kind",
            "files",
            "--check-command",
            &tamper,
            "--scratch",
            &scratch_s,
        ],
    );
    assert_eq!(code, Some(1), "{report}");
    let found = problems(&report["drills"][0]);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with(&format!("{src_s}/big.bin: content differs in bytes "))),
        "{found:?}"
    );
    assert!(
        found.contains(&format!(
            "{src_s}/etc/conf.d/app.conf: mode 0750 in the snapshot, 0600 restored"
        )),
        "{found:?}"
    );
    // The same restore's hard link to the changed file is changed too.
    assert!(
        found
            .iter()
            .any(|p| p.starts_with(&format!("{src_s}/etc/big.hard: content differs"))),
        "{found:?}"
    );
}

/// The value of the first series of `family` whose labels hold `labels`.
fn series(body: &str, family: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(labels))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[test]
fn the_agent_drill_job_exports_rto_and_rpo_and_a_failed_drill_fires() {
    let r = Repo::init();
    r.ok_with(&["backup", "--stdin", "--name", "feed.sql"], b"select 1;\n");
    let taken = r.snapshots()[0]["time"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second() as f64;
    let pass = r.tmp("pass");
    std::fs::write(&pass, &r.pass).unwrap();
    // The check command fails once the marker exists.
    let marker = r.tmp("tampered");
    let config = |job: &str| {
        format!(
            "[agent]\nlisten = \"{{listen}}\"\ncatalog = \"{cat}\"\n\n\
             [repository]\nurl = \"{url}\"\npassword-file = \"{pass}\"\n\n{job}",
            cat = r.tmp("cat").display(),
            url = r.path.display(),
            pass = pass.display(),
        )
    };
    let job = format!(
        "[jobs.drills]\nevery = \"2s\"\n\
         source = {{ type = \"drill\", window = \"24h\", check-command = \"test ! -e {}\" }}\n",
        marker.display()
    );
    let agent = cairn_e2e::Agent::start(&r.dir.path().join("a"), &config(&job), &[]);
    agent.wait_until("a drill passed", std::time::Duration::from_secs(60), |a| {
        a.metric("cairn_drill_passed{job_name=\"drills\"}") == Some(1.0)
    });
    let (_, body) = agent.get("/metrics");
    let group = "source=\"stdin:feed.sql\"";
    assert_eq!(
        series(&body, "cairn_drill_snapshot_passed", group),
        Some(1.0),
        "{body}"
    );
    assert!(
        series(&body, "cairn_drill_rto_seconds", group).is_some_and(|s| s > 0.0),
        "{body}"
    );
    let newest = series(
        &body,
        "cairn_drill_newest_snapshot_timestamp_seconds",
        group,
    )
    .unwrap();
    assert!((newest - taken).abs() < 2.0, "{newest} vs {taken}");
    assert!(agent
        .metric("cairn_job_last_success_timestamp_seconds{job_name=\"drills\"}")
        .is_some());

    let prom = crate::metrics::Prometheus::start(r.dir.path(), agent.port);
    std::fs::write(&marker, b"").unwrap();
    prom.wait_for_alert("CairnDrillFailed", ("source", "stdin:feed.sql"), &agent);
    assert_eq!(
        agent.metric("cairn_drill_passed{job_name=\"drills\"}"),
        Some(0.0)
    );
    assert!(
        agent.log_text().contains("check command"),
        "{}",
        agent.log_text()
    );
    drop(agent);

    // What a drill job cannot have.
    let file = r.tmp("check.toml");
    for (job, mistake) in [
        (
            "[jobs.x]\ntags = [\"t\"]\nsource = { type = \"drill\" }\n",
            "jobs.x.tags: is not for a drill job",
        ),
        (
            "[jobs.x]\nsource = { type = \"drill\" }\nretention = { keep-last = 1 }\n",
            "jobs.x.retention: is not for a drill job",
        ),
        (
            "[jobs.x]\nsource = { type = \"drill\", pg-port = 5432 }\n",
            "jobs.x.source.pg-host: is missing",
        ),
    ] {
        std::fs::write(&file, config(job).replace("listen = \"{listen}\"\n", "")).unwrap();
        let o = Command::new(cairn_e2e::cairn_bin())
            .args(["agent", "check-config", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{job}");
        assert!(stderr(&o).contains(mistake), "{}", stderr(&o));
    }
}
