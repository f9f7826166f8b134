//! Regression tests for the defects found trying cairn as an operator would
//! (issue 16): each test is named after the defect it guards against.

use cairn_e2e::{random_bytes, run_cmd, Repo};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every entry below `dir`, files and directories, with its metadata.
fn entries(dir: &Path) -> Vec<(std::path::PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m));
        }
    }
    out
}

/// Entries below `dir` whose names start with `prefix` (temporary names
/// that must not be left behind).
fn leftovers(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    entries(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

#[test]
fn restore_never_follows_symlinks_planted_in_the_target() {
    let r = Repo::init();
    let src = r.tmp("src");
    for d in ["d01", "d02"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        for i in 0..25 {
            std::fs::write(src.join(d).join(format!("f{i}")), format!("{d} {i}")).unwrap();
        }
    }
    std::fs::write(src.join("top"), b"top").unwrap();
    std::fs::set_permissions(src.join("d01"), std::fs::Permissions::from_mode(0o777)).unwrap();
    r.ok(&["backup", src.to_str().unwrap()]);

    // Someone who can write into the target plants links to elsewhere.
    let elsewhere = r.tmp("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("top"), b"precious").unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    let t = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_times(&elsewhere, t, t).unwrap();
    let before = std::fs::metadata(&elsewhere).unwrap();

    let target = r.tmp("target");
    let inner = target.join(src.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inner).unwrap();
    std::os::unix::fs::symlink(&elsewhere, inner.join("d01")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("top"), inner.join("top")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, inner.join("d02")).unwrap();

    r.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);

    // Nothing outside the target changed.
    let names: Vec<_> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("top")]);
    assert_eq!(std::fs::read(elsewhere.join("top")).unwrap(), b"precious");
    let after = std::fs::metadata(&elsewhere).unwrap();
    assert_eq!(after.mode(), before.mode(), "the mode outside changed");
    assert_eq!(after.mtime(), before.mtime(), "the mtime outside changed");
    // The target holds the snapshot, with real directories and files.
    for d in ["d01", "d02"] {
        let m = std::fs::symlink_metadata(inner.join(d)).unwrap();
        assert!(m.is_dir(), "{d} is still a symlink");
        assert_eq!(
            std::fs::read(inner.join(d).join("f3")).unwrap(),
            format!("{d} 3").as_bytes()
        );
    }
    assert_eq!(
        std::fs::symlink_metadata(inner.join("d01")).unwrap().mode() & 0o777,
        0o777
    );
    assert!(!std::fs::symlink_metadata(inner.join("top"))
        .unwrap()
        .is_symlink());
    assert_eq!(std::fs::read(inner.join("top")).unwrap(), b"top");
}

#[test]
fn one_damaged_blob_loses_only_the_files_that_need_it() {
    let r = Repo::new();
    r.ok(&["init", "--pack-size-mib", "1"]);
    let src = r.tmp("src");
    std::fs::create_dir(&src).unwrap();
    let files = 400;
    for i in 0..files {
        std::fs::write(src.join(format!("f{i:03}")), random_bytes(20_000, i)).unwrap();
    }
    r.ok(&["backup", src.to_str().unwrap()]);
    // Damage one data pack (the largest packs hold data, not trees).
    let mut packs = r.packs();
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let pack = packs.last().unwrap().clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[5000] ^= 0x20;
    std::fs::write(&pack, &bytes).unwrap();

    let target = r.tmp("target");
    let o = r.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let pack_id = pack.file_name().unwrap().to_str().unwrap();
    let damaged: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("not restored: "))
        .collect();
    assert!(!damaged.is_empty(), "{err}");
    assert!(
        damaged.len() < 10,
        "one blob should damage a file or two: {err}"
    );
    assert!(damaged.iter().all(|l| l.contains(pack_id)), "{err}");
    let restored = target.join(src.strip_prefix("/").unwrap());
    let mut intact = 0;
    for i in 0..files {
        let name = format!("f{i:03}");
        let path = restored.join(&name);
        let named = damaged.iter().any(|l| l.contains(&format!("/{name}:")));
        if named {
            assert!(!path.exists(), "damaged {name} was left at its name");
        } else {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                random_bytes(20_000, i),
                "{name}"
            );
            intact += 1;
        }
    }
    assert_eq!(intact + damaged.len() as u64, files);
    // Nothing half-written is left under any name.
    let left = leftovers(&target, ".cairn-partial");
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn concurrent_inits_leave_exactly_one_repository() {
    for round in 0..10 {
        let r = Repo::new();
        let passes = ["first pass", "second pass", "third pass"];
        let children: Vec<_> = passes
            .iter()
            .map(|p| {
                r.cairn()
                    .env("CAIRN_PASSWORD", p)
                    .arg("init")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let winners: Vec<usize> = (0..passes.len())
            .filter(|i| outs[*i].status.success())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outs:?}");
        for (i, o) in outs.iter().enumerate() {
            if i != winners[0] {
                assert_eq!(o.status.code(), Some(1), "round {round}");
            }
        }
        assert_eq!(
            cairn_e2e::files_under(&r.path.join("keys")).len(),
            1,
            "round {round}: a losing init left its key file"
        );
        let win = passes[winners[0]];
        let list = r
            .cairn()
            .env("CAIRN_PASSWORD", win)
            .args(["key", "list"])
            .output()
            .unwrap();
        assert!(list.status.success(), "{}", stderr(&list));
        assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 2);
        for p in passes.iter().filter(|p| **p != win) {
            let o = r
                .cairn()
                .env("CAIRN_PASSWORD", p)
                .arg("snapshots")
                .output()
                .unwrap();
            assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
        }
    }
}

#[test]
fn init_refuses_a_place_that_holds_something_else() {
    let r = Repo::new();
    std::fs::create_dir_all(&r.path).unwrap();
    std::fs::write(r.path.join("notes.txt"), b"mine").unwrap();
    let o = r.run(&["init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    let names: Vec<_> = std::fs::read_dir(&r.path).unwrap().collect();
    assert_eq!(names.len(), 1, "init wrote into a foreign directory");
    // An empty directory (a fresh volume's lost+found too) is fine.
    std::fs::remove_file(r.path.join("notes.txt")).unwrap();
    std::fs::create_dir(r.path.join("lost+found")).unwrap();
    r.ok(&["init"]);
}

#[test]
fn a_key_file_left_by_a_killed_init_does_not_break_the_repository() {
    let r = Repo::init();
    // What an init killed between its key file and its config leaves: a
    // key file of another master key.
    let other = Repo::new();
    let o = other
        .cairn()
        .env("CAIRN_PASSWORD", "lost race")
        .arg("init")
        .output()
        .unwrap();
    assert!(o.status.success());
    let stray = cairn_e2e::files_under(&other.path.join("keys"))
        .pop()
        .unwrap();
    std::fs::copy(&stray, r.path.join("keys").join(stray.file_name().unwrap())).unwrap();

    r.ok_with(&["backup", "--stdin"], b"still fine");
    let list = String::from_utf8(r.ok(&["key", "list"])).unwrap();
    assert!(list.contains("not a key of this repository"), "{list}");
    let o = r
        .cairn()
        .env("CAIRN_PASSWORD", "lost race")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not this repository's"),
        "{}",
        stderr(&o)
    );
    let id = stray.file_name().unwrap().to_str().unwrap()[..8].to_owned();
    r.ok(&["key", "remove", &id]);
    assert_eq!(cairn_e2e::files_under(&r.path.join("keys")).len(), 1);
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), b"still fine");
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// `cairn` as `like` runs it, started through `wrapper` (a program that
/// ends by running its arguments), with the same environment.
fn cairn_through(like: &Command, wrapper: &[&str]) -> Command {
    let mut c = Command::new(wrapper[0]);
    for (k, v) in like.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.args(&wrapper[1..]).arg(cairn_e2e::cairn_bin());
    c
}

#[test]
fn a_signal_stops_a_backup_kills_its_command_and_commits_nothing() {
    for (signal, status) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let r = Repo::init();
        let pidfile = r.tmp("child.pid");
        // The command writes some output, then hangs like a stuck pg_dump.
        // Cairn keeps a signal it was started ignoring ignored (the test
        // below), and a suite run in the background ignores SIGINT (under
        // nohup, SIGHUP): `env` gives cairn the default handling of each.
        let child = cairn_through(&r.cairn(), &["env", "--default-signal=TERM,INT,HUP"])
            .args(["backup", "--name", "x", "--command", "--", "sh", "-c"])
            .arg("echo \"$$\" > \"$0\"; head -c 3000000 /dev/urandom; exec sleep 600")
            .arg(&pidfile)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid: u32 = loop {
            if let Some(p) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "the command never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let cairn read what there is and start its session.
        std::thread::sleep(Duration::from_millis(700));
        let started = Instant::now();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{signal}: slow to stop"
        );
        assert_eq!(
            out.status.code(),
            Some(status),
            "{signal}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&format!("SIG{signal}")),
            "{}",
            stderr(&out)
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(pid) {
            assert!(
                Instant::now() < deadline,
                "{signal}: the command was left running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            r.snapshots().is_empty(),
            "{signal}: a snapshot was committed"
        );
        assert!(
            cairn_e2e::files_under(&r.path.join("leases")).is_empty(),
            "{signal}: the lease was left behind"
        );
        assert!(cairn_e2e::files_under(&r.path.join("commits")).is_empty());
        let left = leftovers(&r.path, ".tmp-");
        assert!(left.is_empty(), "{signal}: spool left: {left:?}");
    }
}

#[test]
fn dash_h_is_the_postgres_host_and_usage_errors_exit_2() {
    let r = Repo::init();
    // Nothing listens there: the backup fails trying, it does not print help.
    let port = cairn_e2e::free_port().to_string();
    for args in [
        &[
            "backup",
            "pg",
            "--dbname",
            "app",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
        ][..],
        &[
            "restore",
            "latest",
            "--pg",
            "--dbname",
            "app",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
        ],
    ] {
        let o = r.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{args:?}"
        );
    }
    let o = r.run(&[
        "backup",
        "pg",
        "--dbname",
        "app",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
    ]);
    assert!(stderr(&o).contains("127.0.0.1"), "{}", stderr(&o));
    // --help still helps.
    let o = r.run(&["backup", "pg", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--host"));
    // Usage errors, from clap or from cairn, exit 2 and change nothing.
    for args in [
        &["backup"][..],
        &["backup", "--stdin", "/etc"],
        &["backup", "--name", "x", "/etc"],
        &["backup", "--bogus"],
        &[
            "restore",
            "latest",
            "--stdout",
            "--include",
            "a",
            "--include",
            "b",
        ],
    ] {
        let o = r.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    assert!(r.snapshots().is_empty());
}

#[test]
fn a_file_changing_while_it_is_read_makes_a_partial_snapshot() {
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("steady"), b"steady").unwrap();
    let growing = src.join("growing.log");
    std::fs::write(&growing, random_bytes(8 << 20, 1)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, growing) = (stop.clone(), growing.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(growing)
                .unwrap();
            let block = random_bytes(64 << 10, 2);
            // At most 256 MiB, whatever happens to the backup.
            for _ in 0..4096 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                f.write_all(&block).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let o = r.run(&["backup", "--json", src.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed while it was read"),
        "{}",
        stderr(&o)
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["partial"], true);
    // What was stored is what was read, up to the length it was listed
    // with: a prefix of the file as it is now.
    let stored = r.ok(&[
        "restore",
        "latest",
        "--stdout",
        "--include",
        growing.to_str().unwrap(),
    ]);
    let now = std::fs::read(&growing).unwrap();
    assert!(stored.len() >= 8 << 20 && now.starts_with(&stored));
    assert!(stored.len() < now.len());
}

fn assert_modes(root: &Path, file: u32, dir: u32) {
    for (p, m) in entries(root) {
        let want = if m.is_dir() { dir } else { file };
        assert_eq!(m.mode() & 0o777, want, "{}", p.display());
    }
}

#[test]
fn repository_files_are_private_unless_the_directory_is_shared() {
    let r = Repo::init();
    r.ok_with(&["backup", "--stdin"], &random_bytes(1 << 20, 4));
    assert_eq!(std::fs::metadata(&r.path).unwrap().mode() & 0o777, 0o700);
    assert_modes(&r.path, 0o600, 0o700);
    // A directory made group-readable first gets group-readable contents.
    let shared = Repo::new();
    std::fs::create_dir(&shared.path).unwrap();
    std::fs::set_permissions(&shared.path, std::fs::Permissions::from_mode(0o750)).unwrap();
    shared.ok(&["init"]);
    shared.ok_with(&["backup", "--stdin"], &random_bytes(1 << 20, 5));
    assert_modes(&shared.path, 0o640, 0o750);
}

#[test]
fn command_arguments_are_not_stored() {
    let r = Repo::init();
    let secret = "s3cr3t-pa55w0rd-in-argv";
    r.ok(&["backup", "--name", "out", "--command", "--", "echo", secret]);
    let listing = r.ok(&["snapshots", "--json"]);
    assert!(!String::from_utf8_lossy(&listing).contains(secret));
    let table = r.ok(&["snapshots"]);
    assert!(!String::from_utf8_lossy(&table).contains(secret));
    assert!(String::from_utf8_lossy(&table).contains("echo"));
    let catalog = std::fs::read(&r.catalog).unwrap();
    assert!(!catalog
        .windows(secret.len())
        .any(|w| w == secret.as_bytes()));
    assert_eq!(
        r.ok(&["restore", "latest", "--stdout"]),
        format!("{secret}\n").as_bytes()
    );
}

#[test]
fn an_empty_stream_is_flagged_and_expect_min_bytes_refuses_a_short_one() {
    let r = Repo::init();
    let o = r.run_with(&["backup", "--stdin"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    let o = r.run_with(
        &["backup", "--stdin", "--expect-min-bytes", "100"],
        b"short",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--expect-min-bytes"), "{}", stderr(&o));
    assert_eq!(r.snapshots().len(), 1, "a short stream was committed");
    assert!(cairn_e2e::files_under(&r.path.join("leases")).is_empty());
    let o = r.run_with(&["backup", "--stdin", "--expect-min-bytes", "5"], b"short");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn holes_come_back_at_the_granularity_they_had() {
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir(&src).unwrap();
    let f = std::fs::File::create(src.join("sparse")).unwrap();
    f.set_len(16 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[7u8; 4096], 8 << 20).unwrap();
    drop(f);
    r.ok(&["backup", src.to_str().unwrap()]);
    let target = r.tmp("target");
    r.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let back = target.join(src.strip_prefix("/").unwrap()).join("sparse");
    let m = std::fs::metadata(&back).unwrap();
    assert_eq!(m.len(), 16 << 20);
    assert!(
        m.blocks() * 512 <= 8192,
        "{} bytes allocated for 4 KiB of data",
        m.blocks() * 512
    );
}

#[test]
fn usage_through_a_pipe_and_exit_codes_are_documented() {
    // The README shows --command before --stdin, and no process substitution
    // that hides a failing producer.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        !readme.contains("< <("),
        "the README still hides a producer's failure"
    );
    let o = run_cmd(
        Command::new(cairn_e2e::cairn_bin()).args(["backup", "--help"]),
        b"",
    );
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        help.find("--command").unwrap() < help.find("--stdin").unwrap(),
        "{help}"
    );
}

/// Rewrites the catalog's copy of the tree holding `name`: `edit` changes
/// its nodes, and the row is saved back, still a valid tree (as another
/// local user with write access to the catalog could).
fn tamper_tree(catalog: &Path, name: &str, edit: impl Fn(&mut Vec<cairn_repo_format::Node>)) {
    use cairn_repo_format::Tree;
    let db = rusqlite::Connection::open(catalog).unwrap();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = db
        .prepare("SELECT id, data FROM trees")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let (id, data) = rows
        .into_iter()
        .find(|(_, d)| Tree::decode(d).unwrap().get(name.as_bytes()).is_some())
        .expect("a tree holding the file");
    let mut nodes = Tree::decode(&data).unwrap().nodes().to_vec();
    edit(&mut nodes);
    let forged = Tree::new(nodes).unwrap().encode();
    db.execute(
        "UPDATE trees SET data = ?1 WHERE id = ?2",
        rusqlite::params![forged, id],
    )
    .unwrap();
}

#[test]
fn an_altered_catalog_never_puts_wrong_data_or_metadata_anywhere() {
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"the content of a").unwrap();
    std::fs::write(src.join("b.txt"), b"the content of b, which differs").unwrap();
    std::fs::set_permissions(src.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    r.ok(&["backup", src.to_str().unwrap()]);

    // Wrong mode and owner for a restore.
    tamper_tree(&r.catalog, "a.txt", |nodes| {
        for n in nodes.iter_mut().filter(|n| n.name == b"a.txt") {
            n.meta.mode = 0o4777;
            n.meta.uid = 4242;
        }
    });
    let target = r.tmp("target");
    let o = r.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("altered"), "{}", stderr(&o));
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert!(
        !restored.join("a.txt").exists(),
        "a restore used an altered row"
    );
    // The next command rebuilds the catalog, and the restore is right.
    let o = r.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("altered"),
        "the rebuild says why: {}",
        stderr(&o)
    );
    let m = std::fs::metadata(restored.join("a.txt")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o640);

    // Swapped content ids: the next backup must not carry them into a new
    // snapshot (its files are read again instead).
    tamper_tree(&r.catalog, "a.txt", |nodes| {
        let b = nodes
            .iter()
            .find(|n| n.name == b"b.txt")
            .unwrap()
            .kind
            .clone();
        for n in nodes.iter_mut().filter(|n| n.name == b"a.txt") {
            n.kind = b.clone();
        }
    });
    let _ = r.run(&["backup", src.to_str().unwrap()]);
    r.ok(&["backup", src.to_str().unwrap()]);
    let a = format!("{}/a.txt", src.display());
    assert_eq!(
        r.ok(&["restore", "latest", "--stdout", "--include", &a]),
        b"the content of a"
    );

    // A snapshot row that says something else.
    {
        let db = rusqlite::Connection::open(&r.catalog).unwrap();
        db.execute(
            "UPDATE snapshots SET json = replace(json, 'a.txt', 'x.txt')",
            [],
        )
        .unwrap();
        db.execute(
            "UPDATE snapshots SET json = replace(json, '\"hostname\":\"', '\"hostname\":\"evil-')",
            [],
        )
        .unwrap();
    }
    let o = r.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("fails its authentication"),
        "{}",
        stderr(&o)
    );
    let o = r.run(&["snapshots"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("evil-"));
}

#[test]
fn catalog_check_rechecks_missing_packs_and_reads_every_object() {
    let r = Repo::init();
    r.ok_with(&["backup", "--stdin"], &random_bytes(3 << 20, 8));
    let pack = r.packs().pop().unwrap();
    let aside = r.tmp("aside");
    std::fs::rename(&pack, &aside).unwrap();
    let o = r.run(&["catalog", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    // Still missing: reported again, not forgotten.
    let o = r.run(&["catalog", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Back: used again.
    std::fs::rename(&aside, &pack).unwrap();
    let o = r.run(&["catalog", "check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("again"), "{}", stderr(&o));
    assert_eq!(
        r.ok(&["restore", "latest", "--stdout"]),
        random_bytes(3 << 20, 8)
    );
    // A damaged snapshot object is reported although the catalog holds it.
    let snap = cairn_e2e::files_under(&r.path.join("snapshots"))
        .pop()
        .unwrap();
    let mut b = std::fs::read(&snap).unwrap();
    let n = b.len();
    b[n - 5] ^= 1;
    std::fs::write(&snap, b).unwrap();
    let o = r.run(&["catalog", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("damaged: session"), "{}", stderr(&o));
}

#[test]
fn sparse_files_are_read_by_their_data_and_back_up_the_same_way_twice() {
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir(&src).unwrap();
    let path = src.join("disk.img");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(2 << 30).unwrap();
    let islands = [
        (1u64 << 20, random_bytes(100_000, 1)),
        // A small hole (below a megabyte) between two islands is read.
        (1 << 20 | 300_000, random_bytes(50_000, 2)),
        (1536 << 20, random_bytes(3 << 20, 3)),
        ((2 << 30) - 10, vec![9u8; 10]),
    ];
    for (at, data) in &islands {
        std::os::unix::fs::FileExt::write_all_at(&f, data, *at).unwrap();
    }
    drop(f);
    let first = r.backup_json(&[src.to_str().unwrap()], b"");
    assert_eq!(first["bytes_read"], 2u64 << 30);
    assert!(first["stored_bytes"].as_u64().unwrap() < 8 << 20, "{first}");
    let second = r.backup_json(&["--force", src.to_str().unwrap()], b"");
    // Read again, the file gives the same chunks: only the trees of the
    // directories above it (whose times changed) are new.
    assert!(second["new_bytes"].as_u64().unwrap() < 100_000, "{second}");

    let target = r.tmp("target");
    r.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let back = target.join(path.strip_prefix("/").unwrap());
    let b = std::fs::File::open(&back).unwrap();
    assert_eq!(b.metadata().unwrap().len(), 2 << 30);
    for (at, data) in &islands {
        let mut got = vec![0u8; data.len()];
        std::os::unix::fs::FileExt::read_exact_at(&b, &mut got, *at).unwrap();
        assert_eq!(&got, data, "island at {at}");
    }
    let mut gap = vec![1u8; 1 << 20];
    std::os::unix::fs::FileExt::read_exact_at(&b, &mut gap, 1 << 30).unwrap();
    assert!(gap.iter().all(|x| *x == 0));
    assert!(
        b.metadata().unwrap().blocks() * 512 < 16 << 20,
        "holes were filled"
    );
}

#[test]
fn a_restore_stopped_by_a_signal_leaves_no_partial_file() {
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("big"), random_bytes(400 << 20, 7)).unwrap();
    r.ok(&["backup", src.to_str().unwrap()]);
    let target = r.tmp("target");
    let inner = target.join(src.strip_prefix("/").unwrap());
    let child = r
        .cairn()
        .args(["restore", "latest", "--target", target.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let partial = || {
        std::fs::read_dir(&inner)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".cairn-partial")
            })
    };
    while !partial() {
        assert!(Instant::now() < deadline, "no partial file showed up");
        std::thread::sleep(Duration::from_millis(1));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(!partial(), "a partial file was left behind");
    assert!(!inner.join("big").exists());
}

#[test]
fn a_signal_cairn_was_started_ignoring_stays_ignored() {
    // `nohup cairn backup …`: a hangup must not stop the backup.
    let r = Repo::init();
    let child = cairn_through(&r.cairn(), &["sh", "-c", "trap '' HUP; exec \"$0\" \"$@\""])
        .args([
            "backup",
            "--name",
            "slow",
            "--command",
            "--",
            "sh",
            "-c",
            "sleep 2; echo done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let kill = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert_eq!(r.snapshots().len(), 1);
}
