//! Choosing snapshots (#22): the parent of a files backup found by host
//! and the set of its paths, and `latest` within filters and within the
//! source kind a restore mode implies.

use cairn_e2e::{run_cmd, RedisServer, Repo};

fn stdout(b: Vec<u8>) -> String {
    String::from_utf8(b).expect("utf-8 output")
}

fn ids(r: &Repo, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["snapshots", "--json"];
    args.extend_from_slice(filters);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&r.ok(&args)).expect("JSON");
    list.iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn the_parent_is_found_by_host_and_set_of_paths() {
    let r = Repo::init();
    let (a, b) = (r.tmp("a"), r.tmp("b"));
    for (dir, n) in [(&a, 3), (&b, 4)] {
        std::fs::create_dir_all(dir).unwrap();
        for i in 0..n {
            std::fs::write(dir.join(format!("f{i}")), vec![b'x'; 1000 + i]).unwrap();
        }
    }
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let first = r.backup_json(&["--host", "pod-7f9c", a, b], b"");
    assert!(first["bytes_read"].as_u64().unwrap() > 7000, "{first}");

    // The same paths in another order, under the same host override (a pod
    // whose own host name changes on every run): nothing is read again.
    let again = r.backup_json(&["--host", "pod-7f9c", b, a], b"");
    assert_eq!(again["bytes_read"].as_u64(), Some(0), "{again}");
    assert_eq!(again["unchanged_files"].as_u64(), Some(7), "{again}");

    // The machine's own name changes (a pod scheduled anew): the same
    // --host still finds the parent. (A UTS namespace of its own gives the
    // backup another host name.)
    let renamed = std::process::Command::new("unshare")
        .args(["--uts", "sh", "-c"])
        .arg(format!(
            "hostname renamed-pod-x1 && {} backup --json --host pod-7f9c {a} {b} && {} backup --json {a} {b}",
            cairn_e2e::cairn_bin().display(),
            cairn_e2e::cairn_bin().display()
        ))
        .env("CAIRN_REPOSITORY", &r.path)
        .env("CAIRN_PASSWORD", &r.pass)
        .env("CAIRN_CATALOG", &r.catalog)
        .output()
        .expect("unshare runs (util-linux; as root)");
    assert!(
        renamed.status.success(),
        "{}",
        String::from_utf8_lossy(&renamed.stderr)
    );
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&renamed.stdout)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(docs[0]["bytes_read"].as_u64(), Some(0), "{}", docs[0]);
    assert_eq!(
        docs[1]["snapshot"]["host"], "renamed-pod-x1",
        "the namespace took"
    );
    assert_eq!(docs[1]["unchanged_files"].as_u64(), Some(0), "{}", docs[1]);

    // Another host has no parent of its own yet; CAIRN_HOST names it too.
    let other = r.backup_json(&["--host", "elsewhere", a, b], b"");
    assert_eq!(other["unchanged_files"].as_u64(), Some(0), "{other}");
    let out = run_cmd(
        r.cairn()
            .env("CAIRN_HOST", "elsewhere")
            .args(["backup", "--json", b, a]),
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let via_env: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via_env["bytes_read"].as_u64(), Some(0), "{via_env}");

    // A subset of the paths is another set: no parent.
    let subset = r.backup_json(&["--host", "pod-7f9c", a], b"");
    assert_eq!(subset["unchanged_files"].as_u64(), Some(0), "{subset}");

    // The host filter sees them apart.
    assert_eq!(ids(&r, &["--host", "pod-7f9c"]).len(), 4);
    assert_eq!(
        ids(&r, &["--host", "elsewhere", "--host", "pod-7f9c"]).len(),
        6
    );
    assert_eq!(ids(&r, &["--path", b]).len(), 6);
    assert_eq!(
        ids(&r, &["--path", a, "--path", b, "--host", "elsewhere"]).len(),
        2
    );
}

#[test]
fn latest_resolves_within_the_filters_and_the_restore_kind() {
    let redis = RedisServer::start("");
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("file"), b"tree content").unwrap();
    let src = src.to_str().unwrap();

    redis.cli(&["SET", "k", "v"]).expect("SET");
    let rdb_snap = r.backup_json(&["redis", "--url", &redis.url()], b"");
    let stream = r.backup_json(
        &["--stdin", "--name", "s.txt", "--tag", "nightly"],
        b"stream bytes",
    );
    let files = r.backup_json(&["--tag", "nightly", "--tag", "tree", src], b"");

    // The README's own line: `restore latest --redis-rdb` after a files
    // backup restores the newest Redis snapshot, not the files.
    let rdb = r.tmp("dump.rdb");
    r.ok(&["restore", "latest", "--redis-rdb", rdb.to_str().unwrap()]);
    assert_eq!(&std::fs::read(&rdb).unwrap()[..5], b"REDIS");
    // An id of another kind is refused, naming what it is.
    let files_id = files["snapshot_id"].as_str().unwrap();
    let out = r.run(&[
        "restore",
        &files_id[..10],
        "--redis-rdb",
        rdb.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is a files backup"),
        "{err}"
    );

    // Filters choose what `latest` is.
    let got = r.ok(&["restore", "latest", "--stdout", "--source-kind", "stdin"]);
    assert_eq!(got, b"stream bytes");
    let listing = stdout(r.ok(&["ls", "latest", "--tag", "tree"]));
    assert!(listing.contains("/file"), "{listing}");
    let out = r.run(&["ls", "latest", "--source-kind", "postgres"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no snapshot matches --source-kind postgres"),
        "{err}"
    );

    assert_eq!(ids(&r, &["--tag", "nightly"]).len(), 2);
    assert_eq!(
        ids(&r, &["--source-kind", "redis"]),
        [rdb_snap["snapshot_id"].as_str().unwrap()]
    );
    let out = r.run(&["snapshots", "--source-kind", "mysql"]);
    assert_eq!(out.status.code(), Some(1), "an unknown kind fails");

    // forget within a filter leaves the rest alone.
    r.ok(&["forget", "latest", "--source-kind", "stdin"]);
    let left = ids(&r, &[]);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&stream["snapshot_id"].as_str().unwrap().to_owned()));
    // find searches only the filtered snapshots.
    let found = stdout(r.ok(&["find", "file", "--source-kind", "files"]));
    assert!(found.contains("/file"), "{found}");
    let none = r.run(&["find", "file", "--source-kind", "redis"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("no entry matches"));
}

/// The paths `cairn ls latest` lists below `dir`, relative to it.
fn listed(r: &Repo, dir: &std::path::Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    stdout(r.ok(&["ls", "latest"]))
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rel)| rel.to_owned()))
        .collect()
}

/// Unmounts a file system mounted for a test, whatever happens.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn what_a_files_backup_leaves_out() {
    let r = Repo::init();
    let src = r.tmp("src");
    let files = [
        "keep.txt",
        "a.tmp",
        "B.TMP",
        "Thumbs.db",
        "app/node_modules/x.js",
        "cache/CACHEDIR.TAG",
        "cache/blob",
        "notacache/CACHEDIR.TAG",
        "private/.nobackup",
        "private/secret",
        "logs/x.log",
        "logs/keep.log",
        "src/main.c",
        "src/main.o",
    ];
    for f in files {
        let p = src.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, f.as_bytes()).unwrap();
    }
    std::fs::write(
        src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag.\n",
    )
    .unwrap();
    let excludes = r.tmp("excludes.txt");
    std::fs::write(
        &excludes,
        format!(
            "# logs, but the one to keep\n\n  {}/logs/*  \n!keep.log\n",
            src.display()
        ),
    )
    .unwrap();
    let s = src.to_str().unwrap();
    let out = r.backup_json(
        &[
            "--exclude",
            "*.tmp",
            "--exclude",
            "node_modules",
            "--exclude",
            "*.[oa]",
            "--iexclude",
            "thumbs.DB",
            "--exclude-file",
            excludes.to_str().unwrap(),
            "--exclude-if-present",
            ".nobackup",
            "--exclude-caches",
            s,
        ],
        b"",
    );
    assert_eq!(out["partial"], false, "{out}");
    let mut got = listed(&r, &src);
    got.sort();
    assert_eq!(
        got,
        [
            "B.TMP",
            "app",
            "keep.txt",
            "logs",
            "logs/keep.log",
            "notacache",
            "notacache/CACHEDIR.TAG",
            "src",
            "src/main.c"
        ],
        "--exclude is case-sensitive, --iexclude is not; `!` takes back"
    );

    // --files-from, with comments and blank lines, instead of paths.
    let list = r.tmp("paths.txt");
    std::fs::write(&list, format!("# what to keep\n{s}/keep.txt\n\n{s}/src\n")).unwrap();
    r.backup_json(&["--files-from", list.to_str().unwrap()], b"");
    let mut got = listed(&r, &src);
    got.sort();
    assert_eq!(got, ["keep.txt", "src", "src/main.c", "src/main.o"]);

    // Bad input: named, nothing written.
    let before = r.snapshots().len();
    for (args, says) in [
        (
            vec!["--exclude-file", "/nonexistent/list", s],
            "/nonexistent/list",
        ),
        (vec!["--exclude", "a[", s], "a["),
        (vec!["--exclude-if-present", "a/b", s], "file name"),
        (vec!["--stdin", "--exclude-caches"], "are for file backups"),
    ] {
        let mut a = vec!["backup"];
        a.extend(args);
        let o = r.run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{a:?}: {err}");
    }
    assert_eq!(r.snapshots().len(), before);

    // find uses the same patterns: classes, `**`, case folding.
    let found = stdout(r.ok(&["find", "main.[co]"]));
    assert_eq!(
        found.lines().filter(|l| l.contains("/src/main.")).count(),
        3,
        "{found}"
    );
    let found = stdout(r.ok(&["find", "-i", "KEEP.*"]));
    assert!(
        found.contains("/keep.txt") && found.contains("/logs/keep.log"),
        "{found}"
    );
    let found = stdout(r.ok(&["find", &format!("{s}/**/*.log")]));
    assert!(
        found.contains("/logs/keep.log") && !found.contains("keep.txt"),
        "{found}"
    );
    let found = stdout(r.ok(&["find", "logs/*.log"]));
    assert!(found.contains("/logs/keep.log"), "{found}");
}

#[test]
fn one_file_system_records_mount_points_empty() {
    assert!(
        cairn_e2e::is_root(),
        "this test mounts a file system: run it as root (CI does)"
    );
    let r = Repo::init();
    let src = r.tmp("src");
    let mnt = src.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::write(src.join("here.txt"), b"on the root file system").unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "cairn-test", mnt.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(ok.success(), "mount -t tmpfs");
    let _guard = Mounted(mnt.clone());
    std::fs::write(mnt.join("elsewhere.txt"), b"on another file system").unwrap();
    let s = src.to_str().unwrap();
    r.backup_json(&["--one-file-system", s], b"");
    let mut got = listed(&r, &src);
    got.sort();
    assert_eq!(got, ["here.txt", "mnt"]);
    r.backup_json(&[s], b"");
    let mut got = listed(&r, &src);
    got.sort();
    assert_eq!(got, ["here.txt", "mnt", "mnt/elsewhere.txt"]);
    // A path on the other file system, named itself, is backed up whole.
    r.backup_json(&["-x", mnt.to_str().unwrap()], b"");
    assert_eq!(listed(&r, &mnt), ["elsewhere.txt"]);
}
