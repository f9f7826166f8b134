//! File-tree backups: every kind of entry comes back as it was; unreadable
//! entries make a partial snapshot with its own exit status.

use cairn_e2e::{is_root, random_bytes, Repo};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Everything restore promises to keep, per relative path.
fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let common = format!(
                "mode={:o} uid={} gid={} mtime={}.{}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec()
            );
            let d = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {common}")
            } else if m.file_type().is_symlink() {
                format!(
                    "link -> {:?} mtime={}",
                    std::fs::read_link(&p).unwrap(),
                    m.mtime()
                )
            } else {
                let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
                let digest = blake3::hash(&std::fs::read(&p).unwrap());
                format!(
                    "file {common} size={} blake3={digest} inode-group={}",
                    m.len(),
                    first.display()
                )
            };
            out.insert(rel, d);
        }
    }
    out
}

fn build_tree(src: &Path) {
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    std::fs::create_dir_all(src.join("empty-dir")).unwrap();
    std::fs::write(src.join("small.txt"), b"hello\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("dir/big.bin"), random_bytes(3 << 20, 11)).unwrap();
    std::fs::write(src.join("dir/sub/deep.txt"), b"deep").unwrap();
    std::fs::write(
        src.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")),
        b"not utf-8 name",
    )
    .unwrap();
    // Sparse: 64 MiB with two islands of data.
    let f = std::fs::File::create(src.join("sparse.img")).unwrap();
    f.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"island one", 5 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"island two", 60 << 20).unwrap();
    drop(f);
    std::fs::hard_link(src.join("small.txt"), src.join("dir/hardlink.txt")).unwrap();
    std::os::unix::fs::symlink("../small.txt", src.join("dir/rel-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    std::fs::set_permissions(src.join("dir/sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(
        src.join("small.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("dir/big.bin"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    if is_root() {
        std::os::unix::fs::lchown(src.join("dir/sub/deep.txt"), Some(1234), Some(5678)).unwrap();
    }
    let t = filetime::FileTime::from_unix_time(981_173_106, 123_456_789);
    for p in [
        "small.txt",
        "empty",
        "dir/big.bin",
        "dir/sub/deep.txt",
        "dir/sub",
        "dir",
        "empty-dir",
    ] {
        filetime::set_file_times(src.join(p), t, t).unwrap();
    }
    filetime::set_symlink_file_times(src.join("dir/rel-link"), t, t).unwrap();
}

#[test]
fn tree_round_trip_keeps_everything() {
    let r = Repo::init();
    let src = r.tmp("src");
    build_tree(&src);
    let o = r.run(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = r.tmp("out");
    r.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(describe(&restored), describe(&src));
    // The sparse file stays sparse: far fewer blocks than its length.
    let m = std::fs::metadata(restored.join("sparse.img")).unwrap();
    assert_eq!(m.len(), 64 << 20);
    assert!(
        m.blocks() * 512 < 4 << 20,
        "sparse file restored with {} blocks",
        m.blocks()
    );
    // Hard links are links again.
    assert_eq!(
        std::fs::metadata(restored.join("small.txt")).unwrap().ino(),
        std::fs::metadata(restored.join("dir/hardlink.txt"))
            .unwrap()
            .ino()
    );
}

#[test]
fn ls_and_include() {
    let r = Repo::init();
    let src = r.tmp("src");
    build_tree(&src);
    r.ok(&["backup", src.to_str().unwrap()]);
    let listing = String::from_utf8(r.ok(&["ls", "latest"])).unwrap();
    let s = src.to_str().unwrap();
    for p in [
        "/small.txt",
        "/dir/big.bin",
        "/dir/sub/deep.txt",
        "/dir/rel-link -> ../small.txt",
        "/empty-dir",
    ] {
        assert!(
            listing.contains(&format!("{s}{p}")),
            "ls lacks {p}:\n{listing}"
        );
    }
    assert!(
        listing.contains("-rwsr-xr-x") || listing.contains("-rwxr-xr-x"),
        "{listing}"
    );
    let sub = String::from_utf8(r.ok(&["ls", "latest", &format!("{s}/dir/sub")])).unwrap();
    assert_eq!(sub.lines().count(), 2, "{sub}");
    let o = r.run(&["ls", "latest", "/no/such/path"]);
    assert_eq!(o.status.code(), Some(1));

    // --include restores only that subtree (and the directories leading to it).
    let out = r.tmp("out");
    r.ok(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--include",
        &format!("{s}/dir/sub"),
    ]);
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("dir/sub/deep.txt")).unwrap(),
        b"deep"
    );
    assert!(!restored.join("small.txt").exists());
    assert!(!restored.join("dir/big.bin").exists());
    // One file to stdout.
    assert_eq!(
        r.ok(&[
            "restore",
            "latest",
            "--stdout",
            "--include",
            &format!("{s}/small.txt")
        ]),
        b"hello\n"
    );
    // A tree snapshot without --include cannot go to stdout.
    let o = r.run(&["restore", "latest", "--stdout"]);
    assert!(stderr(&o).contains("--include"), "{}", stderr(&o));
    let o = r.run(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--include",
        "/not/there",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nothing in the snapshot matches"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_path_fails_without_snapshot() {
    let r = Repo::init();
    let o = r.run(&["backup", r.tmp("does-not-exist").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does-not-exist"), "{}", stderr(&o));
    assert!(r.snapshots().is_empty());
}

/// A command running as an unprivileged user when the tests run as root, so
/// that a mode-000 file is really unreadable.
fn unprivileged(r: &Repo) -> std::process::Command {
    if !is_root() {
        return r.cairn();
    }
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cairn_e2e::cairn_bin());
    c.env("CAIRN_REPOSITORY", &r.path)
        .env("CAIRN_PASSWORD", &r.pass)
        .env("HOME", "/tmp");
    c
}

#[test]
fn unreadable_entries_make_a_partial_snapshot() {
    let r = Repo::new();
    std::fs::set_permissions(r.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = cairn_e2e::run_cmd(unprivileged(&r).arg("init"), b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let src = r.tmp("src");
    std::fs::create_dir_all(src.join("locked-dir")).unwrap();
    std::fs::write(src.join("readable.txt"), b"fine").unwrap();
    std::fs::write(src.join("secret.txt"), b"no").unwrap();
    std::fs::write(src.join("locked-dir/inside"), b"no").unwrap();
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("locked-dir"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let o = cairn_e2e::run_cmd(
        unprivileged(&r).args(["backup", "--json", src.to_str().unwrap()]),
        b"",
    );
    std::fs::set_permissions(
        src.join("locked-dir"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "partial backups exit 3: {}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("secret.txt") && err.contains("locked-dir"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["partial"], true);
    assert_eq!(summary["errors"], 2);
    // The readable rest is there.
    let o = cairn_e2e::run_cmd(
        unprivileged(&r).args([
            "restore",
            "latest",
            "--stdout",
            "--include",
            &format!("{}/readable.txt", src.display()),
        ]),
        b"",
    );
    assert_eq!(o.stdout, b"fine", "{}", stderr(&o));
    let o = cairn_e2e::run_cmd(unprivileged(&r).args(["snapshots"]), b"");
    assert!(String::from_utf8_lossy(&o.stdout).contains("(partial)"));
}

/// `--exclude`: a name pattern matches at any depth, a pattern from `/`
/// only there, and an excluded directory goes whole; restoring gives the
/// rest. Excludes on a stream are a usage error.
#[test]
fn excludes_skip_what_they_match() {
    let r = Repo::init();
    let src = r.tmp("src");
    for f in [
        "keep.txt",
        "scratch.tmp",
        "app/node_modules/lib/x.js",
        "app/main.js",
        "app/deep/er/cache.tmp",
        "data/cache/blob",
        "other/data/cache/kept",
    ] {
        let p = src.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, f).unwrap();
    }
    let cache = src.join("data/cache");
    let o = r.run(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude",
        "node_modules",
        "--exclude",
        cache.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = r.tmp("out");
    r.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let restored = out.join(src.strip_prefix("/").unwrap());
    let mut got: Vec<String> = cairn_e2e::files_under(&restored)
        .iter()
        .map(|p| p.strip_prefix(&restored).unwrap().display().to_string())
        .collect();
    got.sort();
    assert_eq!(got, ["app/main.js", "keep.txt", "other/data/cache/kept"]);

    let o = r.run_with(&["backup", "--stdin", "--exclude", "*.tmp"], b"x");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("(--exclude, --files-from, …) are for file backups"));
    let o = r.run(&["backup", src.to_str().unwrap(), "--exclude", "a[b"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("exclude pattern \"a[b\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(r.snapshots().len(), 1);
}
