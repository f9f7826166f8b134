//! The local catalog: a cache of the repository that syncs incrementally,
//! rebuilds itself, answers `ls`/`find`/`diff` without packs, and makes
//! file backups incremental.

use cairn_e2e::{files_under, listing, random_bytes, Repo};
use std::path::{Path, PathBuf};
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).expect("utf-8 output")
}

/// Storage requests a command made, as `--log-requests` reports them.
fn requests(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter_map(|l| l.strip_prefix("cairn: "))
        .filter(|l| l.contains(" -> "))
        .map(str::to_owned)
        .collect()
}

fn logged(r: &Repo, args: &[&str]) -> (Output, Vec<String>) {
    let mut a = vec!["--log-requests"];
    a.extend_from_slice(args);
    let o = r.run(&a);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    let reqs = requests(&o);
    (o, reqs)
}

fn snapshot_ids(r: &Repo) -> Vec<String> {
    r.snapshots()
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// A small tree: `n` files of varied sizes under `root/d{0..3}`.
fn make_tree(root: &Path, n: usize, seed: u64) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for i in 0..n {
        let dir = root.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("f{i}.dat"));
        std::fs::write(
            &p,
            random_bytes(1000 + (i * 7919) % 50_000, seed + i as u64),
        )
        .unwrap();
        files.push(p);
    }
    std::fs::write(root.join("d0/app.conf"), b"listen 8080\n").unwrap();
    files
}

/// Restores the latest snapshot into `out` and compares it with `src`.
fn assert_latest_restores(r: &Repo, src: &Path, out: &str) {
    let out = r.tmp(out);
    r.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(
        listing(src),
        listing(&out.join(src.strip_prefix("/").unwrap()))
    );
}

#[test]
fn a_missing_corrupt_foreign_or_stale_catalog_is_rebuilt() {
    let r = Repo::init();
    let data = random_bytes(300_000, 1);
    r.ok_with(&["backup", "--stdin"], &data);
    r.ok_with(&["backup", "--stdin"], b"second");
    assert!(r.catalog.exists(), "the backup created the catalog");
    let ids = snapshot_ids(&r);
    assert_eq!(ids.len(), 2);

    // Missing: read again from the repository, with a message.
    std::fs::remove_file(&r.catalog).unwrap();
    let o = r.run(&["snapshots", "--json"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("reading 2 session(s)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot_ids(&r), ids);

    // Corrupt: garbage where the database was.
    std::fs::write(&r.catalog, random_bytes(64 << 10, 9)).unwrap();
    let o = r.run(&["restore", "latest", "--stdout"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used"), "{}", stderr(&o));
    assert_eq!(o.stdout, b"second");

    // Another schema version.
    {
        let db = rusqlite::Connection::open(&r.catalog).unwrap();
        db.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    }
    let o = r.run(&["snapshots"]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("schema version 99"), "{}", stderr(&o));

    // Another repository's catalog.
    let mut other = Repo::init();
    other.catalog = r.catalog.clone();
    let o = other.run(&["snapshots"]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("another repository"), "{}", stderr(&o));
    assert!(!text(o.stdout).contains(&ids[0][..8]));
    let o = r.run(&["restore", &ids[0], "--stdout"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, data);

    // Stale: a session the catalog knows is gone from the repository (as
    // after a prune): the catalog starts again and lists only what exists.
    let commit = files_under(&r.path.join("commits")).remove(0);
    let saved = std::fs::read(&commit).unwrap();
    std::fs::remove_file(&commit).unwrap();
    let o = r.run(&["snapshots", "--json"]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("stale"), "{}", stderr(&o));
    assert_eq!(snapshot_ids(&r).len(), 1);
    // The commit comes back: it is read as a new session.
    std::fs::write(&commit, saved).unwrap();
    assert_eq!(snapshot_ids(&r), ids);

    // `catalog rebuild` starts from nothing and says what it read.
    let out = text(r.ok(&["catalog", "rebuild"]));
    assert!(out.contains("2 sessions, 2 snapshots"), "{out}");
}

#[test]
fn commands_read_only_objects_the_catalog_has_not_seen() {
    let mut r = Repo::init();
    r.ok_with(&["backup", "--stdin"], &random_bytes(200_000, 2));
    // The node that made the backup already knows everything: no object but
    // the config and key file is read to list or locate.
    let (_, reqs) = logged(&r, &["snapshots"]);
    let gets: Vec<_> = reqs.iter().filter(|l| l.starts_with("GET")).collect();
    assert!(
        gets.iter()
            .all(|l| l.starts_with("GET config") || l.starts_with("GET keys/")),
        "{gets:?}"
    );
    assert!(reqs.iter().any(|l| l.starts_with("LIST Commit")));

    // Another node backs up; this node then reads only that session's
    // commit, index and snapshot: listing needs no tree.
    let mine = r.catalog.clone();
    r.catalog = r.tmp("node-b.catalog");
    r.ok_with(&["backup", "--stdin"], &random_bytes(200_000, 3));
    r.catalog = mine;
    let reads = |args: &[&str]| -> Vec<String> {
        let (_, reqs) = logged(&r, args);
        reqs.into_iter()
            .filter(|l| {
                l.starts_with("GET") && !l.starts_with("GET config") && !l.starts_with("GET keys/")
            })
            .collect()
    };
    let read = reads(&["snapshots"]);
    let count = |read: &[String], p: &str| read.iter().filter(|l| l.starts_with(p)).count();
    assert_eq!(count(&read, "GET commits/"), 1, "{read:?}");
    assert_eq!(count(&read, "GET index/"), 1, "{read:?}");
    assert_eq!(count(&read, "GET snapshots/"), 1, "{read:?}");
    assert_eq!(count(&read, "GET packs/"), 0, "{read:?}");
    // Listing its files needs its tree: one ranged read of a pack.
    let read = reads(&["ls", "latest"]);
    assert_eq!(read.len(), 1, "{read:?}");
    assert!(
        read[0].starts_with("GET packs/") && read[0].contains("bytes="),
        "{read:?}"
    );
    // And then nothing more.
    assert_eq!(reads(&["snapshots"]), Vec::<String>::new());
    assert_eq!(reads(&["ls", "latest"]), Vec::<String>::new());
}

#[test]
fn a_stream_backup_on_a_new_machine_reads_no_tree() {
    let mut r = Repo::init();
    let src = r.tmp("src");
    make_tree(&src, 10, 20);
    r.ok(&["backup", src.to_str().unwrap()]);
    r.ok_with(&["backup", "--stdin"], &random_bytes(300_000, 5));
    // A new machine: an empty catalog. Deduplication needs the blob index,
    // not the snapshots' trees, so no pack is read.
    r.catalog = r.tmp("new-node.catalog");
    let (_, reqs) = logged(&r, &["backup", "--stdin"]);
    let packs: Vec<_> = reqs
        .iter()
        .filter(|l| l.starts_with("GET packs/"))
        .collect();
    assert!(packs.is_empty(), "{packs:?}");
    assert!(reqs.iter().any(|l| l.starts_with("GET index/")), "{reqs:?}");
    // A files backup there reads the trees of its parent only.
    let (_, reqs) = logged(&r, &["backup", src.to_str().unwrap()]);
    assert!(reqs.iter().any(|l| l.starts_with("GET packs/")), "{reqs:?}");
}

#[test]
fn a_machine_that_never_saw_the_repository_restores() {
    let mut r = Repo::init();
    let data = random_bytes(2 << 20, 4);
    for i in 0..5u8 {
        r.ok_with(
            &["backup", "--stdin", "--name", "db.dump"],
            &[&data[..], &[i]].concat(),
        );
    }
    let src = r.tmp("src");
    make_tree(&src, 30, 40);
    r.ok(&["backup", src.to_str().unwrap()]);

    r.catalog = r.tmp("laptop/cache.catalog");
    let snaps = r.snapshots();
    assert_eq!(snaps.len(), 6);
    let third = snaps[2]["id"].as_str().unwrap();
    assert_eq!(
        r.ok(&["restore", third, "--stdout"]),
        [&data[..], &[2]].concat()
    );
    assert_latest_restores(&r, &src, "out");
}

#[test]
fn ls_find_and_diff_read_no_pack() {
    let r = Repo::init();
    let src = r.tmp("src");
    let files = make_tree(&src, 40, 50);
    r.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(&files[3], b"changed").unwrap();
    std::fs::remove_file(&files[5]).unwrap();
    std::fs::write(src.join("d1/new.conf"), b"x").unwrap();
    r.ok(&["backup", src.to_str().unwrap()]);
    let ids = snapshot_ids(&r);

    // Move every pack away: whatever answers now answers from the catalog.
    let packs = r.path.join("packs");
    let away = r.tmp("packs-away");
    std::fs::rename(&packs, &away).unwrap();
    let before = files_under(&r.path);

    let (o, reqs) = logged(&r, &["ls", "latest"]);
    assert!(reqs.iter().all(|l| !l.contains("packs/")), "{reqs:?}");
    let ls = text(o.stdout);
    assert!(
        ls.contains("/d1/new.conf") && !ls.contains("/f5.dat"),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.ends_with("/d3/f3.dat") && l.contains(" 7 ")),
        "{ls}"
    );

    let (o, reqs) = logged(&r, &["find", "*.conf"]);
    assert!(reqs.iter().all(|l| !l.contains("packs/")), "{reqs:?}");
    let found = text(o.stdout);
    assert_eq!(found.matches("/d0/app.conf").count(), 2, "{found}");
    assert_eq!(found.matches("/d1/new.conf").count(), 1, "{found}");
    let (o, _) = logged(&r, &["find", &format!("{}/d3/*", src.display())]);
    assert!(text(o.stdout).contains("/d3/f3.dat"));

    let (o, reqs) = logged(&r, &["diff", &ids[0], &ids[1]]);
    assert!(reqs.iter().all(|l| !l.contains("packs/")), "{reqs:?}");
    let diff = text(o.stdout);
    assert!(
        diff.contains("+    ") && diff.contains("/d1/new.conf"),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('-') && l.ends_with("/d1/f5.dat")),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('M') && l.ends_with("/d3/f3.dat")),
        "{diff}"
    );
    assert!(diff.contains("1 added, 1 removed, 1 modified"), "{diff}");

    // A restore needs the packs: it names the inconsistency, deletes
    // nothing, and leaves no half-written file.
    let out = r.tmp("out");
    let o = r.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("inconsistency") || stderr(&o).contains("missing from the repository"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        files_under(&r.path),
        before,
        "nothing in the repository changed"
    );
    assert!(
        files_under(&out).is_empty(),
        "files left half-written: {:?}",
        files_under(&out)
    );

    // The packs come back; the catalog no longer trusts them until rebuilt.
    std::fs::rename(&away, &packs).unwrap();
    let info = text(r.ok(&["catalog", "info"]));
    assert!(info.contains("found missing"), "{info}");
    r.ok(&["catalog", "rebuild"]);
    assert_latest_restores(&r, &src, "out2");
}

#[test]
fn unchanged_files_are_not_read_again() {
    let r = Repo::init();
    let src = r.tmp("src");
    let files = make_tree(&src, 60, 60);
    let total: u64 = files_under(&src)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let path = src.to_str().unwrap();
    let first = r.backup_json(&[path], b"");
    assert_eq!(first["bytes_read"].as_u64(), Some(total));
    assert_eq!(first["unchanged_files"].as_u64(), Some(0));

    // Nothing changed: nothing is read, and nothing new is stored but the
    // trees of the directories above the source (the temp dir's mtime
    // changes with the catalog beside it).
    let again = r.backup_json(&[path], b"");
    assert_eq!(again["bytes_read"].as_u64(), Some(0), "{again}");
    assert_eq!(again["unchanged_files"].as_u64(), Some(61));
    assert!(again["new_chunks"].as_u64().unwrap() <= 3, "{again}");

    // One file appended to, one only touched, one new: those are read.
    let mut appended = std::fs::read(&files[7]).unwrap();
    appended.extend_from_slice(b"more");
    std::fs::write(&files[7], &appended).unwrap();
    filetime::set_file_mtime(&files[8], filetime::FileTime::from_unix_time(1_000_000, 0)).unwrap();
    std::fs::write(src.join("d2/new.dat"), b"new file").unwrap();
    let expect = appended.len() as u64 + std::fs::metadata(&files[8]).unwrap().len() + 8;
    let third = r.backup_json(&[path], b"");
    assert_eq!(third["bytes_read"].as_u64(), Some(expect), "{third}");
    assert_eq!(third["unchanged_files"].as_u64(), Some(59));

    // The same inode, size and mtime but new content written behind our
    // back changes ctime: read again.
    let data = std::fs::read(&files[9]).unwrap();
    let mtime =
        filetime::FileTime::from_last_modification_time(&std::fs::metadata(&files[9]).unwrap());
    let mut changed = data.clone();
    changed[0] ^= 1;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&files[9], &changed).unwrap();
    filetime::set_file_mtime(&files[9], mtime).unwrap();
    let fourth = r.backup_json(&[path], b"");
    assert_eq!(
        fourth["bytes_read"].as_u64(),
        Some(data.len() as u64),
        "{fourth}"
    );

    // --force reads everything; --parent picks the snapshot to compare with.
    let forced = r.backup_json(&["--force", path], b"");
    assert!(forced["bytes_read"].as_u64().unwrap() > total);
    let first_id = first["snapshot_id"].as_str().unwrap();
    let vs_first = r.backup_json(&["--parent", &first_id[..12], path], b"");
    assert_eq!(
        vs_first["unchanged_files"].as_u64(),
        Some(58),
        "files 7, 8, 9 changed since the first snapshot and new.dat is new: {vs_first}"
    );

    assert_latest_restores(&r, &src, "out");
}

#[test]
fn a_file_whose_chunks_were_lost_is_read_again() {
    let r = Repo::init();
    let src = r.tmp("src");
    make_tree(&src, 20, 70);
    let path = src.to_str().unwrap();
    r.ok(&["backup", path]);
    // Every pack disappears; `catalog check` finds out, names them, and
    // the catalog stops trusting them.
    let packs = r.packs();
    std::fs::remove_dir_all(r.path.join("packs")).unwrap();
    let o = r.run(&["catalog", "check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for p in &packs {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name), "{name} not named: {err}");
    }
    // The next backup reads and stores everything again, though the files
    // match the parent, and that snapshot restores.
    let again = r.backup_json(&[path], b"");
    assert_eq!(again["unchanged_files"].as_u64(), Some(0), "{again}");
    assert!(again["new_chunks"].as_u64().unwrap() > 0);
    assert_latest_restores(&r, &src, "out2");
}

#[test]
fn a_tree_restore_reads_each_pack_window_once() {
    let r = Repo::init();
    let src = r.tmp("src");
    for i in 0..400 {
        let dir = src.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("s{i}")), random_bytes(2000, 100 + i)).unwrap();
    }
    // A sparse file: one block of data in 8 MiB of hole.
    let sparse = src.join("sparse.img");
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len(8 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &random_bytes(4096, 7), 4 << 20).unwrap();
    drop(f);
    r.ok(&["backup", src.to_str().unwrap()]);
    let out = r.tmp("out");
    let (_, reqs) = logged(
        &r,
        &["restore", "latest", "--target", out.to_str().unwrap()],
    );
    let pack_reads: Vec<_> = reqs
        .iter()
        .filter(|l| l.starts_with("GET packs/"))
        .collect();
    // 400 files of 2 KB sit in two open packs: a handful of window reads,
    // not one per file.
    assert!(
        pack_reads.len() <= 6,
        "{} pack reads: {pack_reads:?}",
        pack_reads.len()
    );
    for l in &pack_reads {
        let range = l.split("bytes=").nth(1).unwrap().split(' ').next().unwrap();
        let start: u64 = range.split('-').next().unwrap().parse().unwrap();
        assert_eq!(start % (1 << 20), 0, "a read not aligned to a window: {l}");
    }
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(listing(&src), listing(&restored));
    let m = std::fs::metadata(restored.join("sparse.img")).unwrap();
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&m) * 512 < 1 << 20,
        "the sparse file takes {} blocks",
        std::os::unix::fs::MetadataExt::blocks(&m)
    );
}

#[test]
fn a_large_synthetic_index_is_synced_and_used() {
    let r = Repo::init();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-synth-index"))
        .arg(&r.path)
        .arg("150000")
        .env("CAIRN_PASSWORD", &r.pass)
        .status()
        .unwrap();
    assert!(status.success());
    let data = random_bytes(1 << 20, 11);
    r.ok_with(&["backup", "--stdin"], &data);
    let info = text(r.ok(&["catalog", "info"]));
    assert!(info.contains("4 sessions"), "{info}");
    let blobs: u64 = info
        .split(" blobs")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((150_001..150_100).contains(&blobs), "{info}");
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), data);
}

#[test]
fn backups_sharing_one_catalog_run_at_once() {
    // The catalog does not exist yet: all three create it at once.
    let r = Repo::init();
    let inputs: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(3 << 20, 200 + i)).collect();
    let children: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, _)| {
            r.cairn()
                .args(["backup", "--stdin", "--name", &format!("s{i}")])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (mut c, data) in children.into_iter().zip(&inputs) {
        use std::io::Write;
        let mut stdin = c.stdin.take().unwrap();
        let wrote = stdin.write_all(data);
        drop(stdin);
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success() && wrote.is_ok(), "{}", stderr(&o));
    }
    let snaps = r.snapshots();
    assert_eq!(snaps.len(), 3);
    for s in &snaps {
        let name = s["source"]["name"].as_str().unwrap();
        let i: usize = name[1..].parse().unwrap();
        assert_eq!(
            r.ok(&["restore", s["id"].as_str().unwrap(), "--stdout"]),
            inputs[i]
        );
    }
}
