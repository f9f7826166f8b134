//! `cairn check`: clean repositories pass, and each kind of damage is named
//! with the object and the snapshots it damages, with exit status 1.

use cairn_e2e::{files_under, random_bytes, Repo};
use serde_json::Value;

fn check_json(r: &Repo, args: &[&str]) -> (Option<i32>, Value) {
    let mut a = vec!["check", "--json"];
    a.extend_from_slice(args);
    let out = r.run(&a);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

/// Three snapshots: two of their own data, one sharing nothing.
fn three(r: &Repo) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..3 {
        let s = r.backup_json(
            &["--stdin", "--name", &format!("s{i}")],
            &random_bytes(2 << 20, i),
        );
        ids.push(s["snapshot_id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The session that wrote a snapshot.
fn session_of(r: &Repo, snapshot: &str) -> String {
    let snaps = r.snapshots();
    let s = snaps.iter().find(|s| s["id"] == snapshot).unwrap();
    s["session"].as_str().unwrap().to_owned()
}

/// The packs a snapshot's session wrote (its session is in their names).
fn packs_of(r: &Repo, snapshot: &str) -> Vec<std::path::PathBuf> {
    files_under(&r.path.join("packs").join(session_of(r, snapshot)))
}

#[test]
fn a_whole_repository_checks_clean() {
    let r = Repo::init();
    let ids = three(&r);
    let (code, v) = check_json(&r, &["--read-data"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    assert_eq!(v["snapshots"], 3);
    assert_eq!(v["packs_read"], v["packs"]);
    assert!(v["bytes_read"].as_u64().unwrap() >= 6 << 20);
    // Forgotten data is reported for prune, not as damage.
    r.ok(&["forget", &ids[0]]);
    let (code, v) = check_json(&r, &[]);
    assert_eq!(code, Some(0), "{v}");
    let text = String::from_utf8(r.ok(&["check"])).unwrap();
    assert!(text.contains("no damage found"), "{text}");
    r.ok(&["prune"]);
    let (code, v) = check_json(&r, &["--read-data"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["unreferenced_packs"], 0, "{v}");
}

#[test]
fn subsets_cover_every_pack_in_turn() {
    let r = Repo::init();
    three(&r);
    let mut read = 0;
    for _ in 0..3 {
        let (code, v) = check_json(&r, &["--read-data-subset", "next/3"]);
        assert_eq!(code, Some(0), "{v}");
        read += v["packs_read"].as_u64().unwrap();
    }
    let (_, all) = check_json(&r, &[]);
    assert_eq!(read, all["packs"].as_u64().unwrap());
    for bad in ["0/3", "4/3", "x", "0%", "next/0"] {
        let o = r.run(&["check", "--read-data-subset", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }
}

#[test]
fn a_flipped_byte_is_found_by_read_data_and_named() {
    let r = Repo::init();
    let ids = three(&r);
    let packs = packs_of(&r, &ids[1]);
    let pack = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut data = std::fs::read(pack).unwrap();
    data[100] ^= 1;
    std::fs::write(pack, &data).unwrap();
    // The structure is intact: lengths match.
    let (code, _) = check_json(&r, &[]);
    assert_eq!(code, Some(0));
    let (code, v) = check_json(&r, &["--read-data"]);
    assert_eq!(code, Some(1), "{v}");
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(
        problems[0]["object"].as_str().unwrap().contains(name),
        "{v}"
    );
    assert_eq!(problems[0]["snapshots"], serde_json::json!([ids[1]]), "{v}");
    let o = r.run(&["check", "--read-data"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&ids[1][..8]) && text.contains("damaged"),
        "{text}"
    );
}

#[test]
fn a_missing_pack_is_named_with_its_snapshots() {
    let r = Repo::init();
    let ids = three(&r);
    let packs = packs_of(&r, &ids[2]);
    std::fs::remove_file(&packs[0]).unwrap();
    let (code, v) = check_json(&r, &[]);
    assert_eq!(code, Some(1), "{v}");
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["what"].as_str().unwrap().contains("missing")
                && p["snapshots"] == serde_json::json!([ids[2]])),
        "{v}"
    );
}

#[test]
fn a_truncated_index_file_is_named_with_its_snapshots() {
    let r = Repo::init();
    let ids = three(&r);
    let session = session_of(&r, &ids[0]);
    let index = files_under(&r.path.join("index").join(&session));
    let data = std::fs::read(&index[0]).unwrap();
    std::fs::write(&index[0], &data[..data.len() / 2]).unwrap();
    let (code, v) = check_json(&r, &[]);
    assert_eq!(code, Some(1), "{v}");
    let text = v.to_string();
    assert!(text.contains(&session[..8]), "{v}");
    assert!(text.contains(&ids[0]), "the damaged snapshot is named: {v}");
}

#[test]
fn check_read_data_on_s3() {
    let r = Repo::new_s3();
    r.ok(&["init"]);
    three(&r);
    let (code, v) = check_json(&r, &["--read-data"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["packs_read"], v["packs"]);
}
