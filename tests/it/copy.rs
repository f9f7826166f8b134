//! `cairn copy` between repositories: local to S3, S3 to a second bucket
//! (with shared chunking), S3 to local and back; what a second copy adds;
//! a copy killed with SIGKILL and run again.

use cairn_e2e::{assert_success, random_bytes, run_cmd, s3_server, Repo};
use std::path::Path;
use std::process::{Command, Output};

/// `cairn copy` (or `init`) on `to` with `from` as the source repository.
pub(crate) fn with_source(to: &Repo, from: &Repo) -> Command {
    let mut c = to.cairn();
    c.env("CAIRN_FROM_REPOSITORY", &from.path)
        .env("CAIRN_FROM_PASSWORD", &from.pass)
        .env("CAIRN_FROM_CATALOG", &from.catalog);
    // Both sides may be on the test S3 server (one endpoint, one set of
    // credentials).
    c.envs(from.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    c
}

fn copy(to: &Repo, from: &Repo, args: &[&str]) -> Output {
    run_cmd(with_source(to, from).arg("copy").args(args), b"")
}

fn copy_json(to: &Repo, from: &Repo, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = copy(to, from, &a);
    assert_success(&out, &a);
    crate::json::valid(to.dir.path(), "copy", &out.stdout)
}

/// The snapshots of `r` by original (`copy_of`, or the snapshot itself).
fn by_origin(r: &Repo, repo_id: &str) -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = r
        .snapshots()
        .into_iter()
        .map(|s| {
            let origin = match s.get("copy_of") {
                Some(o) => format!(
                    "{}/{}",
                    o["repository"].as_str().unwrap(),
                    o["snapshot"].as_str().unwrap()
                ),
                None => format!("{repo_id}/{}", s["id"].as_str().unwrap()),
            };
            (origin, s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every file under `dir` with its content, relative.
fn tree_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    cairn_e2e::listing(dir)
        .into_iter()
        .map(|(p, c)| (p.display().to_string(), c))
        .collect()
}

/// Asserts that every snapshot of `a` restores in `b` (its copy) to the
/// same bytes: streams to standard output, trees to a directory.
fn restores_alike(a: &Repo, b: &Repo, a_id: &str) {
    let ours = by_origin(a, a_id);
    let theirs = by_origin(b, a_id);
    for (origin, snap) in &ours {
        let (_, copy) = theirs
            .iter()
            .find(|(o, _)| o == origin)
            .unwrap_or_else(|| panic!("{origin} was not copied"));
        let (sa, sb) = (snap["id"].as_str().unwrap(), copy["id"].as_str().unwrap());
        for key in ["time", "host", "source", "tags", "summary", "partial"] {
            assert_eq!(snap[key], copy[key], "{key} of {origin}");
        }
        if snap["source"]["type"] == "stdin" {
            assert_eq!(
                a.ok(&["restore", sa, "--stdout"]),
                b.ok(&["restore", sb, "--stdout"]),
                "{origin}"
            );
        } else {
            let (da, db) = (a.tmp(&format!("ra-{sa}")), b.tmp(&format!("rb-{sb}")));
            a.ok(&["restore", sa, "--target", da.to_str().unwrap()]);
            b.ok(&["restore", sb, "--target", db.to_str().unwrap()]);
            assert_eq!(tree_of(&da), tree_of(&db), "{origin}");
        }
    }
}

#[test]
fn copies_between_local_s3_and_a_second_bucket() {
    // A local repository with a file tree twice and a stream.
    let a = Repo::init();
    let src = a.tmp("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    for i in 0..12u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(200_000, i)).unwrap();
    }
    std::fs::write(src.join("sub/deeper/small"), b"small").unwrap();
    std::os::unix::fs::symlink("f1", src.join("link")).unwrap();
    let s = src.to_str().unwrap();
    a.ok(&["backup", "--tag", "daily", s]);
    std::fs::write(src.join("f3"), random_bytes(300_000, 99)).unwrap();
    a.ok(&["backup", s]);
    let stream = random_bytes(6 << 20, 7);
    a.ok_with(&["backup", "--stdin", "--name", "db.dump"], &stream);

    // Local to S3, into a repository made to chunk as a does.
    let t0 = std::time::Instant::now();
    let b = Repo::new_s3();
    let o = run_cmd(
        with_source(&b, &a).args([
            "init",
            "--copy-chunker-params-from",
            a.path.to_str().unwrap(),
        ]),
        b"",
    );
    assert_success(&o, &["init", "--copy-chunker-params-from"]);
    let first = copy_json(&b, &a, &["--tag", "daily"]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 1, "{first}");
    let rest = copy_json(&b, &a, &[]);
    assert_eq!(rest["copied"].as_array().unwrap().len(), 2, "{rest}");
    assert_eq!(
        (rest["same_ids"].as_bool(), rest["same_chunking"].as_bool()),
        (Some(true), Some(true))
    );
    let a_id = first["copied"][0]["snapshot"]["copy_of"]["repository"]
        .as_str()
        .unwrap()
        .to_owned();
    for c in first["copied"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["copied"].as_array().unwrap())
    {
        assert_eq!(c["snapshot"]["copy_of"]["repository"], a_id.as_str());
        assert_eq!(c["from"], c["snapshot"]["copy_of"]["snapshot"]);
    }
    // The second tree shares most chunks with the first: they were not
    // read again.
    assert!(
        rest["copied"][0]["read_bytes"].as_u64().unwrap() < 1_000_000,
        "the second tree read again what the first copied: {rest}"
    );
    restores_alike(&a, &b, &a_id);
    let again = copy_json(&b, &a, &[]);
    assert!(again["copied"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(again["already"].as_array().unwrap().len(), 3);
    let o = copy(&b, &a, &["--dry-run"]);
    assert_success(&o, &["copy", "--dry-run"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("would copy 0 snapshot(s); 3 already there"),
        "{text}"
    );
    // b's own backups deduplicate with the copies.
    let own = b.backup_json(&["--stdin", "--name", "db.dump"], &stream);
    assert_eq!(own["new_bytes"], 0, "{own}");
    eprintln!("local to S3: {:.1} s", t0.elapsed().as_secs_f64());

    // S3 to a second bucket, into a repository that chunks its own way:
    // it works, and says so.
    let t0 = std::time::Instant::now();
    let s3 = s3_server();
    let mut c = Repo::new_s3();
    c.path = format!(
        "s3:{}/dr-{}",
        s3.second_bucket,
        hex::encode(rand::random::<[u8; 6]>())
    )
    .into();
    c.ok(&["init"]);
    let o = copy(&c, &b, &[]);
    assert_success(&o, &["copy"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("cuts data differently"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let to_c = copy_json(&c, &b, &[]);
    assert_eq!(to_c["copied"].as_array().unwrap().len(), 0, "{to_c}");
    assert_eq!(to_c["already"].as_array().unwrap().len(), 4, "{to_c}");
    assert_eq!(
        (to_c["same_ids"].as_bool(), to_c["same_chunking"].as_bool()),
        (Some(false), Some(false))
    );
    // A copy of a copy names the original.
    let b_own = own["snapshot_id"].as_str().unwrap();
    for s in c.snapshots() {
        let original = s["copy_of"]["snapshot"].as_str().unwrap();
        if original != b_own {
            assert_eq!(s["copy_of"]["repository"], a_id.as_str(), "{s}");
        }
    }
    restores_alike(&a, &c, &a_id);
    eprintln!("S3 to S3: {:.1} s", t0.elapsed().as_secs_f64());

    // S3 to local and back: the copies of a's snapshots are a's own, so
    // only b's own backup goes back to a.
    let t0 = std::time::Instant::now();
    let d = Repo::init();
    let to_d = copy_json(&d, &c, &["--latest"]);
    // The newest per host and source: the second tree and the stream (the
    // copy of a's, and b's own backup of it, are one group).
    assert_eq!(to_d["copied"].as_array().unwrap().len(), 2, "{to_d}");
    let back = copy_json(&a, &c, &[]);
    assert_eq!(back["copied"].as_array().unwrap().len(), 1, "{back}");
    assert_eq!(back["already"].as_array().unwrap().len(), 3, "{back}");
    assert_eq!(
        a.ok(&["restore", "latest", "--stdout", "--source-kind", "stdin"]),
        stream
    );
    eprintln!("S3 to local and back: {:.1} s", t0.elapsed().as_secs_f64());

    // Copying a repository into itself is refused, naming both.
    let o = copy(&a, &a, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("same repository"));
    for r in [&b, &c, &d] {
        r.ok(&["check", "--read-data"]);
    }
}

#[test]
fn a_copy_killed_halfway_completes_when_run_again() {
    let a = Repo::init();
    let streams: Vec<Vec<u8>> = (0..10u64)
        .map(|i| random_bytes(16 << 20, 100 + i))
        .collect();
    for (i, data) in streams.iter().enumerate() {
        a.ok_with(&["backup", "--stdin", "--name", &format!("s{i}")], data);
    }
    let b = Repo::new_s3();
    b.ok(&["init", "--pack-size-mib", "1"]);
    // Another machine watches b's snapshots (its own catalog).
    let mut watcher = Repo::new_s3();
    watcher.path = b.path.clone();
    watcher.pass = b.pass.clone();
    let mut child = with_source(&b, &a)
        .args(["copy", "--uploads", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let copied = loop {
        let n = watcher.snapshots().len();
        if n >= 1 {
            break n;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it was killed"
        );
        assert!(
            started.elapsed().as_secs() < 120,
            "no snapshot was copied in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        copied < streams.len(),
        "the copy finished before it was killed"
    );
    let at_kill = b.snapshots().len();
    assert!(at_kill < streams.len());

    let rerun = copy_json(&b, &a, &[]);
    assert_eq!(
        rerun["already"].as_array().unwrap().len(),
        at_kill,
        "{rerun}"
    );
    assert_eq!(
        rerun["copied"].as_array().unwrap().len(),
        streams.len() - at_kill,
        "{rerun}"
    );
    let check: serde_json::Value =
        serde_json::from_slice(&b.ok(&["check", "--read-data", "--json"])).unwrap();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    for (i, data) in streams.iter().enumerate() {
        let name = format!("s{i}");
        let id = b
            .snapshots()
            .into_iter()
            .find(|s| s["source"]["name"] == name.as_str())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(&b.ok(&["restore", &id, "--stdout"]), data, "{name}");
    }
}

/// The agent's `copy` job: a run copies what the source has and the
/// target's retention keeps; a second run copies nothing; the file is
/// checked for what a copy job cannot be.
#[test]
fn the_agent_copy_job_copies_what_its_retention_keeps() {
    let main = Repo::init();
    let dr = Repo::new_s3();
    dr.ok(&["init"]);
    let days: Vec<Vec<u8>> = (0..3u64).map(|i| random_bytes(1 << 20, 40 + i)).collect();
    for d in &days {
        main.ok_with(&["backup", "--stdin", "--name", "app.dump"], d);
    }
    main.ok_with(
        &[
            "backup",
            "--stdin",
            "--name",
            "other.dump",
            "--tag",
            "scratch",
        ],
        b"x",
    );
    let dir = main.dir.path();
    std::fs::write(dir.join("main.pass"), &main.pass).unwrap();
    std::fs::write(dir.join("dr.pass"), &dr.pass).unwrap();
    let s3 = s3_server();
    let config = |job: &str| {
        format!(
            "[agent]\ncatalog = \"{d}/catalogs\"\n\n\
             [repositories.main]\nurl = \"{}\"\npassword-file = \"{d}/main.pass\"\n\n\
             [repositories.dr]\nurl = \"{}\"\npassword-file = \"{d}/dr.pass\"\n\
             s3 = {{ endpoint = \"{}\" }}\n\n{job}",
            main.path.display(),
            dr.path.display(),
            s3.endpoint,
            d = dir.display(),
        )
    };
    let file = dir.join("agent.toml");
    std::fs::write(
        &file,
        config(
            "[jobs.offsite]\nrepository = \"dr\"\nevery = \"1h\"\n\
             source = { type = \"copy\", from = \"main\", source-kinds = [\"stdin\"] }\n\
             retention = { keep-last = 2 }\n",
        ),
    )
    .unwrap();
    let run = || {
        let mut c = Command::new(cairn_e2e::cairn_bin());
        c.args(["agent", "--config"])
            .arg(&file)
            .args(["--run", "offsite"])
            .env_remove("CAIRN_REPOSITORY")
            .envs(dr.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        run_cmd(&mut c, b"")
    };
    let o = run();
    assert_success(&o, &["agent", "--run", "offsite"]);
    let out = String::from_utf8_lossy(&o.stdout);
    // keep-last 2 of app.dump, and other.dump (a group of its own).
    assert_eq!(out.matches("copied snapshot").count(), 3, "{out}");
    let copies = dr.snapshots();
    assert_eq!(copies.len(), 3);
    let restored: Vec<Vec<u8>> = copies
        .iter()
        .filter(|s| s["source"]["name"] == "app.dump")
        .map(|s| dr.ok(&["restore", s["id"].as_str().unwrap(), "--stdout"]))
        .collect();
    assert_eq!(restored, days[1..].to_vec(), "the two newest, in order");
    // Nothing new: nothing copied, nothing forgotten copied again.
    let o = run();
    assert_success(&o, &["agent", "--run", "offsite"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("copied snapshot"));
    main.ok_with(&["backup", "--stdin", "--name", "app.dump"], b"day four");
    let o = run();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("copied snapshot").count(), 1, "{out}");
    assert!(out.contains("forgot 1"), "{out}");
    assert_eq!(dr.snapshots().len(), 3);

    for (job, mistake) in [
        (
            "[jobs.x]\nrepository = \"dr\"\nsource = { type = \"copy\", from = \"nowhere\" }\n",
            "jobs.x.source.from: no repository \"nowhere\"",
        ),
        (
            "[jobs.x]\nrepository = \"dr\"\nsource = { type = \"copy\", from = \"dr\" }\n",
            "jobs.x.source.from: is the job's own repository",
        ),
        (
            "[jobs.x]\nrepository = \"dr\"\ntags = [\"t\"]\nsource = { type = \"copy\", from = \"main\" }\n",
            "jobs.x.tags: is not for a copy job",
        ),
    ] {
        std::fs::write(&file, config(job)).unwrap();
        let mut c = Command::new(cairn_e2e::cairn_bin());
        c.args(["agent", "check-config", "--config"]).arg(&file);
        let o = run_cmd(&mut c, b"");
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(mistake), "{err}");
    }
}
