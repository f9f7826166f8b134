//! `cairn agent` as a daemon and as a one-shot job, against real servers:
//! PostgreSQL, a stock Redis, SeaweedFS for S3, file trees and commands.

use crate::databases::{
    blocked_pg_dump, fill_redis, lock_table, make_database, redis_state, restore_into_new_server,
    table_sums,
};
use cairn_e2e::{
    files_under, listing, random_bytes, s3_server, Agent, PgServer, RedisServer, Repo,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The snapshots of `r` with the tag `job=JOB`, oldest first.
fn of_job(r: &Repo, job: &str) -> Vec<serde_json::Value> {
    let tag = format!("job={job}");
    r.snapshots()
        .into_iter()
        .filter(|s| {
            s["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == tag.as_str()))
        })
        .collect()
}

fn id(s: &serde_json::Value) -> String {
    s["id"].as_str().unwrap_or_default().to_owned()
}

/// The S3 credentials of `r` for the agent's environment (the AWS chain);
/// the endpoint and region are in its configuration file.
fn credentials(r: &Repo) -> Vec<(String, String)> {
    r.env
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_ACCESS") || k.starts_with("AWS_SECRET"))
        .cloned()
        .collect()
}

/// A password file for the agent's repository.
fn pass_file(r: &Repo) -> std::path::PathBuf {
    let p = r.tmp("repo-pass");
    std::fs::write(&p, format!("{}\n", r.pass)).unwrap();
    p
}

/// The runs of `job` by result, from `/metrics`.
fn runs(a: &Agent, job: &str, result: &str) -> f64 {
    a.metric(&format!(
        "cairn_job_runs_total{{job_name=\"{job}\",result=\"{result}\"}}"
    ))
    .unwrap_or(0.0)
}

/// Jobs of every source kind on second-level schedules write into S3;
/// each snapshot restores byte-exact (the database into a fresh one), the
/// retention of two jobs leaves exactly what its rules say, and the
/// snapshots are exactly those the agent logged.
#[test]
fn daemon_backs_up_every_source_kind_into_s3_on_schedule() {
    let s3 = s3_server();
    let r = Repo::new_s3();
    r.ok(&["init"]);
    let pg = PgServer::start();
    make_database(&pg, "shop");
    let before = table_sums(&pg, "shop");
    let passfile = r.tmp("pgpass");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:*:postgres:{}\n", pg.port, pg.password),
    )
    .unwrap();
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // Redis as Debian ships it: diskless replication after a 5 s delay.
    let redis = RedisServer::start("");
    fill_redis(&redis);
    let redis_before = redis_state(&redis);
    let tree = r.tmp("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.bin"), random_bytes(300_000, 1)).unwrap();
    std::fs::write(tree.join("sub/b.txt"), b"hello from the agent\n").unwrap();
    std::fs::write(tree.join("sub/scratch.tmp"), b"not this").unwrap();
    let blob = r.tmp("blob.bin");
    std::fs::write(&blob, random_bytes(500_000, 2)).unwrap();
    let config = format!(
        r#"
[agent]
listen = "{{listen}}"
catalog = "{cat}"
max-concurrent-jobs = 4
host = "node-a"

[repository]
url = "{url}"
password-file = "{pass}"
[repository.s3]
endpoint = "{endpoint}"
region = "us-east-1"

[jobs.db]
source = {{ type = "pg", dbname = "shop", host = "127.0.0.1", port = {port}, username = "postgres", passfile = "{passfile}", globals = true }}
schedule = "*/4 * * * * *"
retention = {{ keep-last = 2 }}

[jobs.cache]
source = {{ type = "redis", url = "{redis}" }}
every = "3s"

[jobs.tree]
source = {{ type = "files", paths = ["{tree}"], excludes = ["*.tmp"] }}
schedule = "*/2 * * * * *"
retention = {{ keep-last = 3 }}
tags = ["pvc"]

[jobs.out]
source = {{ type = "command", command = ["cat", "{blob}"], name = "blob.bin" }}
every = "2s"
"#,
        cat = r.tmp("agent-catalog").display(),
        url = r.path.display(),
        pass = pass_file(&r).display(),
        endpoint = s3.endpoint,
        port = pg.port,
        passfile = passfile.display(),
        redis = redis.url(),
        tree = tree.display(),
        blob = blob.display(),
    );
    let env = credentials(&r);
    let mut agent = Agent::start(&r.dir.path().join("a"), &config, &env);
    let jobs = ["db", "cache", "tree", "out"];
    agent.wait_until(
        "every job succeeded 3 times",
        Duration::from_secs(120),
        |a| jobs.iter().all(|j| runs(a, j, "success") >= 3.0),
    );
    for j in jobs {
        assert_eq!(
            runs(&agent, j, "failure"),
            0.0,
            "{j}:\n{}",
            agent.log_text()
        );
    }
    assert_eq!(agent.get("/readyz").0, 200);
    agent.signal("-TERM");
    let (st, _) = agent.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "{st:?}\n{}", agent.log_text());

    // What the log says was saved is in the repository; retention kept
    // exactly its rule's count of the jobs that have one.
    for (job, keep) in [
        ("db", Some(2)),
        ("cache", None),
        ("tree", Some(3)),
        ("out", None),
    ] {
        let saved = agent.saved(job);
        let snaps = of_job(&r, job);
        assert!(saved.len() >= 3, "{job}: {saved:?}");
        match keep {
            Some(n) => assert_eq!(snaps.len(), n, "{job}"),
            None => assert_eq!(snaps.len(), saved.len(), "{job}"),
        }
        for s in &snaps {
            assert!(
                saved.contains(&s["short_id"].as_str().unwrap().to_owned()),
                "{job}: {s}"
            );
            assert_eq!(s["host"], "node-a");
        }
    }
    let newest = |job: &str| id(of_job(&r, job).last().unwrap());

    // Byte-exact restores: the tree, the command's output, the RDB, and
    // the database into a fresh cluster state.
    let target = r.tmp("restored-tree");
    r.ok(&[
        "restore",
        &newest("tree"),
        "--target",
        target.to_str().unwrap(),
    ]);
    let mut want = listing(&tree);
    want.retain(|(p, _)| p.extension().is_none_or(|e| e != "tmp"));
    assert_eq!(listing(&target.join(tree.strip_prefix("/").unwrap())), want);
    let out = r.ok(&["restore", &newest("out"), "--stdout"]);
    assert_eq!(out, std::fs::read(&blob).unwrap());
    let restored = restore_into_new_server(&r, &newest("cache"));
    assert_eq!(redis_state(&restored), redis_before);
    pg.sql("postgres", "drop database shop");
    let o = r
        .cairn()
        .args([
            "restore",
            &newest("db"),
            "--pg",
            "--create",
            "--dbname",
            "postgres",
        ])
        .args(pg.args())
        .envs(pg.env())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(table_sums(&pg, "shop"), before);
}

/// The repository of a test on the local disk, and a PostgreSQL database
/// whose table `notes` can be locked to hold pg_dump.
fn local_pg_config(r: &Repo, pg: &PgServer, grace: &str) -> String {
    format!(
        r#"
[agent]
listen = "{{listen}}"
catalog = "{cat}"
shutdown-grace = "{grace}"

[repository]
url = "{url}"
password-file = "{pass}"

[jobs.db]
source = {{ type = "pg", dbname = "shop", host = "127.0.0.1", port = {port}, username = "postgres" }}
every = "1h"
"#,
        cat = r.tmp("agent-catalog").display(),
        url = r.path.display(),
        pass = pass_file(r).display(),
        port = pg.port,
    )
}

fn no_pg_dump_left(pid: &str) {
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "pg_dump {pid} was left running");
}

/// SIGTERM during a long backup: the run gets the grace period, is then
/// aborted (pg_dump killed, its lease removed, nothing committed) and the
/// agent exits 0 within the grace period and a few seconds. A second
/// SIGTERM aborts at once.
#[test]
fn sigterm_during_a_long_backup_aborts_it_cleanly() {
    let pg = PgServer::start();
    make_database(&pg, "shop");
    for (grace, second) in [("3s", false), ("5m", true)] {
        let r = Repo::init();
        let mut lock = lock_table(&pg, "shop", "notes");
        let mut agent = Agent::start(
            &r.dir.path().join("a"),
            &local_pg_config(&r, &pg, grace),
            &pg.env(),
        );
        // An interval job that never succeeded runs at start.
        let dump = blocked_pg_dump(&pg, "shop", agent.pid());
        assert_eq!(
            agent.metric("cairn_job_running{job_name=\"db\"}"),
            Some(1.0)
        );
        agent.signal("-TERM");
        if second {
            std::thread::sleep(Duration::from_millis(500));
            agent.signal("-TERM");
        }
        let (st, took) = agent.wait_exit(Duration::from_secs(30));
        assert!(st.success(), "{st:?}\n{}", agent.log_text());
        let limit = if second { 5 } else { 3 + 5 };
        assert!(
            took < Duration::from_secs(limit),
            "{grace}: exit took {took:?}"
        );
        if !second {
            assert!(
                took >= Duration::from_secs(3),
                "the grace period was not given: {took:?}"
            );
        }
        no_pg_dump_left(&dump);
        assert!(
            r.snapshots().is_empty(),
            "{grace}: a snapshot was committed"
        );
        assert!(
            files_under(&r.path.join("leases")).is_empty(),
            "{grace}: the lease was left behind"
        );
        let _ = lock.kill();
        let _ = lock.wait();
        // The killed clients' server sessions (the lock, the dump's wait)
        // would outlive them.
        pg.sql(
            "postgres",
            "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = 'shop'",
        );
    }
}

/// SIGHUP with a broken file keeps the running configuration (its jobs go
/// on, the reload metric says 0); a valid file replaces it.
#[test]
fn sighup_reloads_only_a_valid_file() {
    let r = Repo::init();
    let base = format!(
        "[agent]\nlisten = \"{{listen}}\"\ncatalog = \"{}\"\n\n[repository]\nurl = \"{}\"\npassword-file = \"{}\"\n\n[jobs.first]\nsource = {{ type = \"command\", command = [\"echo\", \"one\"] }}\nevery = \"1s\"\n",
        r.tmp("cat").display(),
        r.path.display(),
        pass_file(&r).display()
    );
    let agent = Agent::start(&r.dir.path().join("a"), &base, &[]);
    agent.wait_until("first ran", Duration::from_secs(30), |a| {
        runs(a, "first", "success") >= 1.0
    });
    let text = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(
        &agent.config,
        format!("{text}\n[jobs.second]\nsource = {{ type = \"tape\" }}\n"),
    )
    .unwrap();
    agent.signal("-HUP");
    agent.wait_until("the reload failed", Duration::from_secs(10), |a| {
        a.metric("cairn_agent_config_last_reload_successful") == Some(0.0)
    });
    let n = runs(&agent, "first", "success");
    agent.wait_until("first still runs", Duration::from_secs(30), |a| {
        runs(a, "first", "success") >= n + 2.0
    });
    let log = agent.log_text();
    assert!(log.contains("the configuration running stays"), "{log}");
    assert!(log.contains("unknown variant `tape`"), "{log}");
    assert!(agent
        .metric("cairn_job_runs_total{job_name=\"second\",result=\"success\"}")
        .is_none());

    std::fs::write(
        &agent.config,
        format!("{text}\n[jobs.second]\nsource = {{ type = \"command\", command = [\"echo\", \"two\"] }}\nevery = \"1s\"\n")
            .replace("[jobs.first]", "[jobs.renamed]"),
    )
    .unwrap();
    agent.signal("-HUP");
    agent.wait_until("the new jobs ran", Duration::from_secs(30), |a| {
        runs(a, "second", "success") >= 1.0 && runs(a, "renamed", "success") >= 1.0
    });
    assert_eq!(
        agent.metric("cairn_agent_config_last_reload_successful"),
        Some(1.0)
    );
    // A job no longer configured has no series left.
    assert!(agent
        .metric("cairn_job_runs_total{job_name=\"first\",result=\"success\"}")
        .is_none());
}

fn run_job(config: &Path, job: &str) -> std::process::Output {
    let mut c = Command::new(cairn_e2e::cairn_bin());
    c.args(["agent", "--config"])
        .arg(config)
        .args(["--run", job])
        .env_remove("CAIRN_PASSWORD")
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_REPOSITORY");
    cairn_e2e::run_cmd(&mut c, b"")
}

/// `--run JOB` (a Kubernetes CronJob's command): hooks around the backup,
/// the backup's exit status, and retention that touches only the job's own
/// snapshots from its own host.
#[test]
fn run_once_with_hooks_retention_and_exit_status() {
    let r = Repo::init();
    // Someone else's snapshots: another job's tag, another host.
    r.ok_with(
        &[
            "backup",
            "--stdin",
            "--tag",
            "job=nightly",
            "--host",
            "node-b",
        ],
        b"b",
    );
    r.ok_with(&["backup", "--stdin", "--tag", "other"], b"x");
    let hooks = r.tmp("hooks.log");
    let config = r.tmp("agent.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                r#"[agent]
catalog = "{cat}"
host = "node-a"
[repository]
url = "{url}"
password-file = "{pass}"

[jobs.nightly]
source = {{ type = "command", command = ["sh", "-c", "echo dump; date +%s%N"] }}
retention = {{ keep-last = 2 }}
[[jobs.nightly.pre]]
command = ["sh", "-c", "echo pre $CAIRN_JOB >> {hooks}"]
[[jobs.nightly.post]]
command = ["sh", "-c", "echo post $CAIRN_RESULT $CAIRN_SNAPSHOT >> {hooks}"]

[jobs.broken]
source = {{ type = "command", command = ["sh", "-c", "echo partial; exit 3"] }}
[[jobs.broken.post]]
command = ["sh", "-c", "echo post $CAIRN_RESULT >> {hooks}"]
{extra}"#,
                cat = r.tmp("cat").display(),
                url = r.path.display(),
                pass = pass_file(&r).display(),
                hooks = hooks.display(),
            ),
        )
        .unwrap();
    };
    write("");
    for _ in 0..3 {
        let o = run_job(&config, "nightly");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("job nightly: snapshot"));
    }
    let mine: Vec<_> = of_job(&r, "nightly")
        .into_iter()
        .filter(|s| s["host"] == "node-a")
        .collect();
    assert_eq!(mine.len(), 2, "keep-last 2 on the job's own snapshots");
    assert_eq!(of_job(&r, "nightly").len(), 3, "node-b's snapshot stays");
    assert_eq!(r.snapshots().len(), 4, "the untagged snapshot stays");
    let log = std::fs::read_to_string(&hooks).unwrap();
    assert_eq!(log.matches("pre nightly").count(), 3, "{log}");
    assert!(
        log.contains(&format!("post success {}", id(&mine[1]))),
        "{log}"
    );

    // A failing source: exit 1, no snapshot, the post hook told "failure".
    let o = run_job(&config, "broken");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("job broken failed"));
    assert!(of_job(&r, "broken").is_empty());
    assert!(std::fs::read_to_string(&hooks)
        .unwrap()
        .contains("post failure"));

    // A pre hook that fails stops the run before the backup; one with
    // on-failure = "continue" does not; a hook past its timeout is killed
    // with what it started.
    write(
        r#"
[jobs.guarded]
source = { type = "command", command = ["echo", "guarded"] }
[[jobs.guarded.pre]]
command = ["false"]

[jobs.lenient]
source = { type = "command", command = ["echo", "lenient"] }
[[jobs.lenient.pre]]
command = ["false"]
on-failure = "continue"

[jobs.stuck]
source = { type = "command", command = ["echo", "stuck"] }
[[jobs.stuck.pre]]
command = ["sh", "-c", "sleep 300 & sleep 301"]
timeout = "1s"
"#,
    );
    let o = run_job(&config, "guarded");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hook false failed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(of_job(&r, "guarded").is_empty());
    let o = run_job(&config, "lenient");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(of_job(&r, "lenient").len(), 1);
    let o = run_job(&config, "stuck");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ran longer than 1s"));
    // SIGKILLed processes take a moment to be gone from /proc.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = Command::new("pgrep")
            .args(["-af", "sleep 30[01]"])
            .output()
            .unwrap();
        if left.stdout.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hook's children were left: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // An unknown job is a usage error naming the jobs.
    let o = run_job(&config, "nope");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the jobs are: broken, guarded"));
}

/// Two agents (two nodes) back up into one S3 repository on overlapping
/// schedules while one of them prunes every few seconds: no run fails,
/// the prunes delete data, every job keeps exactly its rule's snapshots,
/// and afterwards `check --read-data` finds the repository whole and every
/// snapshot restores.
#[test]
fn two_agents_share_a_repository_while_one_prunes() {
    let s3 = s3_server();
    let r = Repo::new_s3();
    r.ok(&["init"]);
    let pass = pass_file(&r);
    let base = r.tmp("base.bin");
    std::fs::write(&base, random_bytes(200_000, 3)).unwrap();
    let node = |host: &str, extra: &str| {
        format!(
            r#"
[agent]
listen = "{{listen}}"
catalog = "{cat}"
host = "{host}"

[repository]
url = "{url}"
password-file = "{pass}"
[repository.s3]
endpoint = "{endpoint}"
region = "us-east-1"

[jobs.dump]
source = {{ type = "command", command = ["sh", "-c", "cat {base}; date +%s%N"], name = "dump.bin" }}
every = "1s"
retention = {{ keep-last = 3 }}
{extra}"#,
            cat = r.tmp(&format!("cat-{host}")).display(),
            url = r.path.display(),
            pass = pass.display(),
            endpoint = s3.endpoint,
            base = base.display(),
        )
    };
    let env = credentials(&r);
    let a = Agent::start(
        &r.dir.path().join("a"),
        &node("node-a", "[prune]\nevery = \"3s\"\nmax-unused = 0.0\n"),
        &env,
    );
    let b = Agent::start(&r.dir.path().join("b"), &node("node-b", ""), &env);
    let pruned = |a: &Agent| {
        a.metric("cairn_prune_runs_total{repository=\"default\",result=\"success\"}")
            .unwrap_or(0.0)
    };
    a.wait_until(
        "3 prunes that deleted packs",
        Duration::from_secs(180),
        |a| {
            pruned(a) >= 3.0
                && a.metric("cairn_prune_deleted_packs_total{repository=\"default\"}")
                    .unwrap_or(0.0)
                    > 0.0
        },
    );
    b.wait_until("node-b kept backing up", Duration::from_secs(60), |b| {
        runs(b, "dump", "success") >= 5.0
    });
    for (mut agent, name) in [(a, "node-a"), (b, "node-b")] {
        assert_eq!(
            runs(&agent, "dump", "failure"),
            0.0,
            "{name}:\n{}",
            agent.log_text()
        );
        if name == "node-a" {
            assert_eq!(
                agent.metric("cairn_prune_runs_total{repository=\"default\",result=\"failure\"}"),
                Some(0.0),
                "{}",
                agent.log_text()
            );
        }
        agent.signal("-TERM");
        let (st, _) = agent.wait_exit(Duration::from_secs(60));
        assert!(st.success(), "{name}: {st:?}");
    }
    let o = r.run(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snaps = of_job(&r, "dump");
    for host in ["node-a", "node-b"] {
        let mine = snaps.iter().filter(|s| s["host"] == host).count();
        assert_eq!(mine, 3, "{host}: keep-last 3");
    }
    let want = std::fs::read(&base).unwrap();
    for s in &snaps {
        let out = r.ok(&["restore", &id(s), "--stdout"]);
        assert!(
            out.starts_with(&want) && out.len() > want.len(),
            "{}",
            id(s)
        );
    }
}

/// The daemon refuses a file with a mistake; a fresh agent (a new pod, an
/// empty catalog) learns from the repository when its job last succeeded
/// and runs the run it missed while no agent was up.
#[test]
fn a_fresh_agent_learns_its_last_success_from_the_repository() {
    let r = Repo::init();
    let bad = r.tmp("bad.toml");
    std::fs::write(
        &bad,
        "[agent]\nlisten = \"127.0.0.1:1\"\nmax-concurent-jobs = 2\n",
    )
    .unwrap();
    let o = cairn_e2e::run_cmd(
        Command::new(cairn_e2e::cairn_bin())
            .args(["agent", "--config"])
            .arg(&bad),
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:3:1: agent.max-concurent-jobs", bad.display())),
        "{err}"
    );

    let config = |catalog: &str| {
        format!(
            "[agent]\nlisten = \"{{listen}}\"\ncatalog = \"{}\"\nhost = \"pod-survivor\"\n\n[repository]\nurl = \"{}\"\npassword-file = \"{}\"\n\n[jobs.tick]\nsource = {{ type = \"command\", command = [\"echo\", \"tick\"] }}\nschedule = \"*/3 * * * * *\"\nstarting-deadline = \"1m\"\n",
            r.tmp(catalog).display(),
            r.path.display(),
            pass_file(&r).display()
        )
    };
    let mut first = Agent::start(&r.dir.path().join("a"), &config("cat-a"), &[]);
    first.wait_until("tick ran", Duration::from_secs(30), |a| {
        runs(a, "tick", "success") >= 1.0
    });
    first.signal("-TERM");
    first.wait_exit(Duration::from_secs(30));
    let last: jiff::Timestamp = of_job(&r, "tick").last().unwrap()["time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last = last.as_nanosecond();
    // A scheduled time passes with no agent up.
    std::thread::sleep(Duration::from_secs(4));
    let second = Agent::start(&r.dir.path().join("b"), &config("cat-b"), &[]);
    second.wait_until("the missed run ran", Duration::from_secs(30), |a| {
        a.log_text().contains("was missed while the agent was down")
    });
    let learnt = second
        .metric("cairn_job_last_success_timestamp_seconds{job_name=\"tick\"}")
        .unwrap();
    assert!(learnt * 1e9 >= last as f64, "{learnt} vs {last}");
}

/// `--run` of a files job that cannot read everything exits 3 and tells
/// the post hook `partial`; a partial snapshot is not a success.
#[test]
fn run_once_exits_3_for_a_partial_snapshot() {
    let r = Repo::new();
    std::fs::set_permissions(
        r.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let pass = pass_file(&r);
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let src = r.tmp("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("readable.txt"), b"fine").unwrap();
    std::fs::write(src.join("secret.txt"), b"no").unwrap();
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let hooks = r.tmp("hooks.log");
    let config = r.tmp("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\ncatalog = \"{}\"\n[repository]\nurl = \"{}\"\npassword-file = \"{}\"\n[jobs.tree]\nsource = {{ type = \"files\", paths = [\"{}\"] }}\n[[jobs.tree.post]]\ncommand = [\"sh\", \"-c\", \"echo $CAIRN_RESULT > {}\"]\n",
            r.tmp("cat").display(),
            r.path.display(),
            pass.display(),
            src.display(),
            hooks.display()
        ),
    )
    .unwrap();
    // As root everything is readable: run as nobody, as files.rs does.
    let as_user = |args: &[&str]| {
        let mut c = if cairn_e2e::is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(cairn_e2e::cairn_bin());
            c
        } else {
            Command::new(cairn_e2e::cairn_bin())
        };
        c.args(args)
            .env("HOME", "/tmp")
            .env("CAIRN_PASSWORD", &r.pass)
            .env("CAIRN_REPOSITORY", &r.path)
            .env_remove("CAIRN_PASSWORD_FILE");
        cairn_e2e::run_cmd(&mut c, b"")
    };
    let o = as_user(&["init"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = as_user(&[
        "agent",
        "--config",
        config.to_str().unwrap(),
        "--run",
        "tree",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read_to_string(&hooks).unwrap().trim(), "partial");
    let snaps = of_job(&r, "tree");
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["partial"], true);
}

/// A failed attempt is tried again after its backoff; an attempt past the
/// job's timeout is stopped (its command killed, nothing committed).
#[test]
fn retries_and_timeouts() {
    let r = Repo::init();
    let flag = r.tmp("flag");
    let config = r.tmp("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"[agent]
catalog = "{cat}"
[repository]
url = "{url}"
password-file = "{pass}"

[jobs.flaky]
source = {{ type = "command", command = ["sh", "-c", "if [ -f {flag} ]; then echo ok; else touch {flag}; exit 1; fi"] }}
retries = 2
retry-backoff = "1s"

[jobs.slow]
source = {{ type = "command", command = ["sh", "-c", "echo start; sleep 30; echo never"] }}
timeout = "2s"
"#,
            cat = r.tmp("cat").display(),
            url = r.path.display(),
            pass = pass_file(&r).display(),
            flag = flag.display(),
        ),
    )
    .unwrap();
    let o = run_job(&config, "flaky");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("job flaky: attempt 1 failed"), "{err}");
    assert_eq!(of_job(&r, "flaky").len(), 1);

    let started = std::time::Instant::now();
    let o = run_job(&config, "slow");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("timeout"), "{err}");
    assert!(of_job(&r, "slow").is_empty());
    assert!(files_under(&r.path.join("leases")).is_empty());
}

/// Two jobs due every second whose runs take longer than that, on a node
/// limited to one run at a time: no run of a job overlaps another run of
/// it, and no two runs overlap at all.
#[test]
fn runs_never_overlap_and_the_node_limit_holds() {
    let r = Repo::init();
    let log = r.tmp("runs.log");
    let job = |name: &str| {
        format!(
            "[jobs.{name}]\nsource = {{ type = \"command\", command = [\"sh\", \"-c\", \"echo start {name} >> {log}; sleep 1.5; echo end {name} >> {log}; echo {name}\"] }}\nevery = \"1s\"\n",
            log = log.display()
        )
    };
    let config = format!(
        "[agent]\nlisten = \"{{listen}}\"\ncatalog = \"{}\"\nmax-concurrent-jobs = 1\n\n[repository]\nurl = \"{}\"\npassword-file = \"{}\"\n\n{}\n{}",
        r.tmp("cat").display(),
        r.path.display(),
        pass_file(&r).display(),
        job("left"),
        job("right")
    );
    let mut agent = Agent::start(&r.dir.path().join("a"), &config, &[]);
    agent.wait_until("both jobs ran twice", Duration::from_secs(60), |a| {
        runs(a, "left", "success") >= 2.0 && runs(a, "right", "success") >= 2.0
    });
    agent.signal("-TERM");
    agent.wait_exit(Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 8, "{text}");
    // With one slot, every start is followed by its own end.
    for pair in lines.chunks(2) {
        let [start, end] = pair else {
            panic!("a run did not end:\n{text}");
        };
        let name = start.strip_prefix("start ").expect(start);
        assert_eq!(*end, format!("end {name}"), "runs overlapped:\n{text}");
    }
}
