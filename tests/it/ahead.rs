//! Reading ahead of the walk (issue 25): several threads look at entries
//! and read files while the walker stores the ones before them. The
//! snapshot must not depend on how many read at once, or on which read
//! finished first.

use cairn_e2e::{random_bytes, Repo};
use std::path::Path;

/// Directories of small files, files larger than what a thread reads ahead
/// (1 MiB), empty and sparse files, a symlink, nested directories.
fn build_tree(src: &Path) {
    for d in 0..12 {
        let dir = src.join(format!("d{d:02}"));
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        for f in 0..40u64 {
            let len = ((f * 977 + d * 131) % 5000) as usize;
            std::fs::write(dir.join(format!("f{f:03}")), random_bytes(len, d * 100 + f)).unwrap();
        }
        std::fs::write(dir.join("inner/note"), format!("dir {d}")).unwrap();
    }
    std::fs::write(src.join("d03/big-a"), random_bytes((1 << 20) + 1, 7)).unwrap();
    std::fs::write(src.join("d07/big-b"), random_bytes(5 << 20, 8)).unwrap();
    std::fs::write(src.join("d07/empty"), b"").unwrap();
    let f = std::fs::File::create(src.join("d09/sparse.img")).unwrap();
    f.set_len(16 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"island", 9 << 20).unwrap();
    std::os::unix::fs::symlink("../d00/f000", src.join("d01/link")).unwrap();
}

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap()
}

#[test]
fn the_snapshot_is_the_same_whatever_the_read_concurrency() {
    let r = Repo::init();
    let src = r.tmp("src");
    build_tree(&src);
    let s = src.to_str().unwrap();
    let mut ids = Vec::new();
    for (i, n) in ["0", "1", "3", "8", "64"].into_iter().enumerate() {
        let o = json(&r.ok(&["backup", "--json", "--force", "--read-concurrency", n, s]));
        assert_eq!(o["files"], 496, "--read-concurrency {n}: {o}");
        assert_eq!(o["errors"], 0, "--read-concurrency {n}: {o}");
        if i > 0 {
            // The same chunks: nothing new to store.
            assert_eq!(o["new_bytes"], 0, "--read-concurrency {n}: {o}");
        }
        ids.push(o["snapshot_id"].as_str().unwrap().to_owned());
    }
    // Every entry below the path is the same (its parents' times may move
    // as the repository beside them is written).
    for other in &ids[1..] {
        let diff = String::from_utf8(r.ok(&["diff", &ids[0], other])).unwrap();
        let last = diff.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("0 added, 0 removed, 0 modified"),
            "{ids:?}: {diff}"
        );
        for line in diff.lines() {
            if let Some(path) = line
                .split_whitespace()
                .nth(1)
                .filter(|p| p.starts_with('/'))
            {
                assert!(src.starts_with(path), "{path} differs: {diff}");
            }
        }
    }
    // Restored as it was.
    let out = r.tmp("out");
    r.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let restored = out.join(src.strip_prefix("/").unwrap());
    for rel in [
        "d03/big-a",
        "d07/big-b",
        "d07/empty",
        "d05/f017",
        "d11/inner/note",
    ] {
        assert_eq!(
            std::fs::read(restored.join(rel)).unwrap(),
            std::fs::read(src.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let m = std::fs::metadata(restored.join("d09/sparse.img")).unwrap();
    assert_eq!(m.len(), 16 << 20);
    // An unchanged re-backup reads nothing, reading ahead or not.
    for n in ["8", "0"] {
        let o = json(&r.ok(&["backup", "--json", "--read-concurrency", n, s]));
        assert_eq!(o["unchanged_files"], 496, "{o}");
        assert_eq!(o["new_bytes"], 0, "{o}");
    }
    // A file changed since is read again, ahead of the walk.
    std::fs::write(src.join("d04/f010"), b"changed").unwrap();
    let o = json(&r.ok(&["backup", "--json", s]));
    assert_eq!(o["unchanged_files"], 495, "{o}");
    let out2 = r.tmp("out2");
    r.ok(&["restore", "latest", "--target", out2.to_str().unwrap()]);
    let again = out2.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(again.join("d04/f010")).unwrap(), b"changed");
}

#[test]
fn a_read_concurrency_out_of_range_is_refused() {
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir_all(&src).unwrap();
    let o = r.run(&[
        "backup",
        "--read-concurrency",
        "100000",
        src.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("read concurrency 100000"), "{err}");
    let list = json(&r.ok(&["snapshots", "--json"]));
    assert_eq!(list.as_array().map_or(0, Vec::len), 0, "{list}");
}
