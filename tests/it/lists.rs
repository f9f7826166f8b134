//! Large files keep their chunk ids in content lists (format §7.4), not in
//! their tree. Here a list holds 8 ids (`CAIRN_LIST_IDS`), so a few MiB
//! make several lists: streams and files in trees back up, deduplicate,
//! restore (also on a machine that never saw the backup), survive a prune
//! of what shared nothing with them, pass a check, and copy into a
//! repository that identifies chunks its own way.

use cairn_e2e::{assert_success, listing, random_bytes, run_cmd, Repo};
use std::path::{Path, PathBuf};

/// Distinct content lists the catalog of `r` indexes.
fn lists(r: &Repo) -> i64 {
    let db = rusqlite::Connection::open(&r.catalog).unwrap();
    db.query_row(
        "SELECT count(DISTINCT id) FROM blobs WHERE kind = 3",
        [],
        |row| row.get(0),
    )
    .unwrap()
}

/// Whether `snapshot` of `src` restores to what `want` lists.
fn restores_as(r: &Repo, snapshot: &str, src: &Path, want: &[(PathBuf, Vec<u8>)]) -> bool {
    let to = r.tmp(&format!("restored-{}", rand::random::<u64>()));
    r.ok(&["restore", snapshot, "--target", to.to_str().unwrap()]);
    listing(&to.join(src.strip_prefix("/").unwrap())) == want
}

#[test]
fn large_files_go_through_content_lists() {
    let mut r = Repo::new();
    r.ok(&["init", "--pack-size-mib", "1"]);
    r.env.push(("CAIRN_LIST_IDS".into(), "8".into()));

    // A stream of about 48 chunks: six lists.
    let a = random_bytes(6 << 20, 71);
    let first = r.backup_json(&["--stdin", "--name", "a.dump"], &a);
    let a_id = first["snapshot_id"].as_str().unwrap().to_owned();
    assert!(lists(&r) >= 5, "{} lists for 6 MiB", lists(&r));
    assert!(r.ok(&["restore", &a_id, "--stdout"]) == a);
    let again = r.backup_json(&["--stdin", "--name", "a.dump"], &a);
    assert_eq!(again["new_bytes"], 0, "the same lists: {again}");

    // A tree with a large file and a small one.
    let src = r.tmp("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(5 << 20, 72)).unwrap();
    std::fs::write(src.join("small.txt"), b"small").unwrap();
    let src_s = src.to_str().unwrap();
    let before = lists(&r);
    let t1 = r.backup_json(&[src_s], b"");
    assert!(lists(&r) >= before + 4, "the large file has lists");
    let t1_id = t1["snapshot_id"].as_str().unwrap().to_owned();
    let want = listing(&src);
    assert!(restores_as(&r, &t1_id, &src, &want));
    // Unchanged, the large file is taken from the parent, lists and all.
    std::fs::write(src.join("small.txt"), b"changed").unwrap();
    let t2 = r.backup_json(&[src_s], b"");
    assert_eq!(t2["unchanged_files"], 1, "{t2}");
    assert!(t2["new_bytes"].as_u64().unwrap() < 1000, "{t2}");
    let t2_id = t2["snapshot_id"].as_str().unwrap().to_owned();
    let want2 = listing(&src);
    assert!(restores_as(&r, &t2_id, &src, &want2));

    // Another stream, then the first one's snapshots forgotten and pruned:
    // what only lists reach stays.
    let b = random_bytes(6 << 20, 73);
    let b_id = r.backup_json(&["--stdin", "--name", "b.dump"], &b)["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again_id = again["snapshot_id"].as_str().unwrap();
    r.ok(&["forget", &a_id, again_id]);
    let pruned: serde_json::Value = serde_json::from_slice(&r.ok(&["prune", "--json"])).unwrap();
    assert!(
        pruned["deleted_bytes"].as_u64().unwrap() >= 5 << 20,
        "the first stream's packs went: {pruned}"
    );
    r.ok(&["check", "--read-data"]);
    assert!(r.ok(&["restore", &b_id, "--stdout"]) == b);
    assert!(r.ok(&["restore", "latest", "--stdout"]) == b);
    assert!(restores_as(&r, &t2_id, &src, &want2));

    // A machine that never saw the repository reads the lists from it.
    let mut other = Repo::new();
    other.path = r.path.clone();
    other.pass = r.pass.clone();
    assert!(other.ok(&["restore", &b_id, "--stdout"]) == b);
    assert!(restores_as(&other, &t2_id, &src, &want2));

    // A copy into a repository with its own chunking keys writes the
    // lists again with its own ids.
    let c = Repo::new();
    c.ok(&["init"]);
    let o = run_cmd(crate::copy::with_source(&c, &r).arg("copy"), b"");
    assert_success(&o, &["copy"]);
    assert!(lists(&c) >= 8, "{} lists in the copy", lists(&c));
    assert!(c.ok(&["restore", "latest", "--stdout"]) == b);
    c.ok(&["check", "--read-data"]);
}
