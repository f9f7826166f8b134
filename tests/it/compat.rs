//! Compatibility: a repository written by format v1 (committed under
//! `tests/fixtures/repo-v1`) must keep restoring byte for byte. Broken copies
//! of it (a pack, an index file, a snapshot missing) must fail clearly,
//! naming what is missing, and never restore wrong data.

use cairn_e2e::{files_under, Repo};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/repo-v1");
const SRC: &str = "/tmp/cairn-fixture-src";

fn copy_dir(from: &Path, to: &Path) {
    for f in files_under(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

fn fixture() -> Repo {
    let mut r = Repo::new();
    r.pass = "cairn-fixture-v1".into();
    copy_dir(Path::new(FIXTURE), &r.path);
    r
}

fn numbers() -> Vec<u8> {
    (1..=30_000)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Same bytes as `cairn-gen random 40K 5`, which made the fixture's file.
fn random_file() -> Vec<u8> {
    cairn_e2e::random_bytes(40 << 10, 5u64.wrapping_mul(1_000_003))
}

fn ids(r: &Repo) -> (String, String) {
    let snaps = r.snapshots();
    assert_eq!(snaps.len(), 2);
    let by = |t: &str| {
        snaps.iter().find(|s| s["source"]["type"] == t).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    (by("stdin"), by("files"))
}

#[test]
fn format_v1_fixture_restores_exactly() {
    let r = fixture();
    let (stream, tree) = ids(&r);
    assert_eq!(r.ok(&["restore", &stream, "--stdout"]), numbers());
    let out = r.tmp("out");
    r.ok(&["restore", &tree, "--target", out.to_str().unwrap()]);
    let root = out.join(SRC.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(root.join("hello.txt")).unwrap(),
        b"hello fixture\n"
    );
    let m = std::fs::metadata(root.join("hello.txt")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!(m.mtime(), 1_577_934_245, "2020-01-02 03:04:05 UTC");
    assert_eq!(
        std::fs::read_link(root.join("link")).unwrap(),
        Path::new("hello.txt")
    );
    assert_eq!(
        std::fs::read(root.join("dir/random.bin")).unwrap(),
        random_file()
    );
    // A new backup into a copy of the old repository deduplicates against it.
    let before = r.size();
    r.ok_with(&["backup", "--stdin", "--name", "numbers.txt"], &numbers());
    assert!(
        r.size() - before < 16 << 10,
        "re-backup of fixture data added {} bytes",
        r.size() - before
    );
}

fn assert_fails_naming(r: &Repo, args: &[&str], name: &str, good: &[u8]) {
    let o = r.run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        // The damage did not touch this snapshot: then its data must be right.
        assert_eq!(o.stdout, good, "{args:?} succeeded with wrong data");
    } else {
        assert_eq!(o.status.code(), Some(1));
        assert!(
            err.contains(name),
            "error for {args:?} does not name {name}: {err}"
        );
    }
}

#[test]
fn missing_objects_are_named() {
    // Each pack removed in turn: whatever needs it fails, naming it.
    let packs = files_under(&Path::new(FIXTURE).join("packs"));
    assert!(packs.len() >= 2);
    let mut failures = 0;
    for p in &packs {
        let r = fixture();
        let rel = p.strip_prefix(FIXTURE).unwrap();
        std::fs::remove_file(r.path.join(rel)).unwrap();
        let name = rel.file_name().unwrap().to_str().unwrap();
        let (stream, _) = ids(&r);
        let o = r.run(&["restore", &stream, "--stdout"]);
        if !o.status.success() {
            failures += 1;
        }
        assert_fails_naming(&r, &["restore", &stream, "--stdout"], name, &numbers());
    }
    assert!(
        failures >= 1,
        "removing packs never broke the stream restore"
    );

    // An index file listed by a commit is gone: that session is left out,
    // with a warning naming the file, and its snapshot cannot be restored.
    let (stream, _) = ids(&fixture());
    let r = fixture();
    let idx = files_under(&r.path.join("index")).remove(0);
    std::fs::remove_file(&idx).unwrap();
    let o = r.run(&["restore", &stream, "--stdout"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(idx.file_name().unwrap().to_str().unwrap()) && err.contains("cannot be read"),
        "{err}"
    );
    if o.status.success() {
        // The index belonged to the other session.
        assert_eq!(o.stdout, numbers());
    }
    assert_eq!(r.snapshots().len(), 1);

    // A snapshot listed by a commit is gone: the same.
    let r = fixture();
    let snap = files_under(&r.path.join("snapshots")).remove(0);
    std::fs::remove_file(&snap).unwrap();
    let o = r.run(&["snapshots"]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(snap.file_name().unwrap().to_str().unwrap())
    );
    let o = r.run(&[
        "restore",
        snap.file_name().unwrap().to_str().unwrap(),
        "--stdout",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn an_uncommitted_session_is_invisible() {
    // Remove one commit: its snapshot and index are no longer trusted.
    let r = fixture();
    let commit = files_under(&r.path.join("commits")).remove(0);
    std::fs::remove_file(&commit).unwrap();
    assert_eq!(r.snapshots().len(), 1);
}

/// A repository written before retention existed (format v1 as of
/// 2026-11-21) is forgotten in, pruned and checked by this release: the
/// old objects read as before, new commits of payload version 2 go next to
/// them, and what is kept restores exactly.
#[test]
fn a_v1_repository_written_before_retention_is_pruned_and_checked() {
    let r = fixture();
    let (stream, tree) = ids(&r);
    let o = r.run(&["check", "--read-data"]);
    assert!(
        o.status.success(),
        "the old repository checks clean: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // New data into the old repository, then the old stream forgotten.
    r.ok_with(&["backup", "--stdin", "--name", "new.bin"], &random_file());
    r.ok(&["forget", &stream]);
    let out = r.ok(&["prune", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v["deleted_packs"].as_u64().unwrap() >= 1, "{v}");
    let o = r.run(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // The old tree snapshot and the new one restore exactly.
    let out = r.tmp("out-after-prune");
    r.ok(&["restore", &tree, "--target", out.to_str().unwrap()]);
    let root = out.join(SRC.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(root.join("dir/random.bin")).unwrap(),
        random_file()
    );
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), random_file());
    assert_eq!(r.snapshots().len(), 2);
    // A machine that never saw the repository reads it from scratch.
    let mut other = fixture();
    other.path = r.path.clone();
    assert_eq!(other.snapshots().len(), 2);
}
