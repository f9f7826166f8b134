//! Retention: `forget` by rules and by id, as users run it, on the local
//! backend and on S3. What it forgets leaves the listing at once, on this
//! machine and on one whose catalog saw the snapshots before; a dry run
//! changes nothing; and no object is ever rewritten or deleted by it.

use cairn_e2e::{files_under, listing, Repo};
use serde_json::Value;

fn ids(r: &Repo) -> Vec<String> {
    r.snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn forget_json(r: &Repo, args: &[&str]) -> Value {
    let mut a = vec!["forget", "--json"];
    a.extend_from_slice(args);
    let v: Value = serde_json::from_slice(&r.ok(&a)).expect("forget --json prints JSON");
    v["forget"].clone()
}

/// Backs up five streams of two sources, tagging the first one.
fn five(r: &Repo) -> Vec<String> {
    for i in 0..5 {
        let name = if i % 2 == 0 { "db.dump" } else { "other" };
        let data = format!("stream {i}\n").repeat(1000);
        let mut args = vec!["backup", "--stdin", "--name", name];
        if i == 0 {
            args.extend(["--tag", "release"]);
        }
        r.ok_with(&args, data.as_bytes());
    }
    ids(r)
}

fn forgets_by_rules(r: &Repo) {
    let all = five(r);
    assert_eq!(all.len(), 5);
    // On S3 the listing is empty: what S3 holds is checked by the listing.
    let objects = listing(&r.path);

    // A dry run decides, prints, and changes nothing.
    let plan = forget_json(r, &["--keep-last", "1", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["record"], Value::Null);
    let would: Vec<&str> = plan["forgotten"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(would.len(), 3, "one kept of each source: {plan}");
    assert_eq!(ids(r), all);
    assert_eq!(listing(&r.path), objects, "a dry run wrote");
    let text = String::from_utf8(r.ok(&["forget", "--keep-last", "1", "--dry-run"])).unwrap();
    assert!(
        text.contains("keep") && text.contains("last") && text.contains("dry run"),
        "{text}"
    );

    // The rules, with the tag: the tagged snapshot stays for its tag.
    let done = forget_json(r, &["--keep-last", "1", "--keep-tag", "release"]);
    let forgotten: Vec<String> = done["forgotten"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    assert_eq!(forgotten.len(), 2, "{done}");
    assert!(done["record"].is_string());
    let reasons: Vec<String> = done["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["snapshots"].as_array().unwrap().iter())
        .filter(|d| d["keep"] == true)
        .flat_map(|d| d["reasons"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    assert!(reasons.contains(&"tag release".to_owned()), "{reasons:?}");
    let left = ids(r);
    assert_eq!(left.len(), 3);
    assert!(forgotten.iter().all(|f| !left.contains(f)));
    // Every object written before is still there, unchanged: forgetting
    // only adds a record.
    let after = listing(&r.path);
    for object in &objects {
        assert!(after.contains(object), "{:?} changed", object.0);
    }
    // What is left restores.
    for id in &left {
        assert!(!r.ok(&["restore", id, "--stdout"]).is_empty());
    }
    // Forgetting by id; nothing given is refused.
    r.ok(&["forget", &left[0][..12]]);
    assert_eq!(ids(r).len(), 2);
    let o = r.run(&["forget"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no retention rule"));
    let o = r.run(&["forget", "--keep-last", "1", &left[1][..12]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not both"));
}

#[test]
fn forget_by_rules_and_ids_locally() {
    forgets_by_rules(&Repo::init());
}

#[test]
fn forget_by_rules_and_ids_on_s3() {
    let r = Repo::new_s3();
    r.ok(&["init"]);
    forgets_by_rules(&r);
}

#[test]
fn another_machine_catches_up_with_what_was_forgotten() {
    let mut r = Repo::init();
    let all = five(&r);
    // Machine B has seen every snapshot.
    let a = r.catalog.clone();
    r.catalog = r.tmp("b.catalog");
    assert_eq!(ids(&r).len(), 5);
    // Machine A forgets two.
    r.catalog = a;
    r.ok(&["forget", &all[0][..12], &all[1][..12]]);
    // B catches up incrementally (no rebuild), and a machine that never
    // saw the repository reads it right from scratch.
    r.catalog = r.tmp("b.catalog");
    let out = r.run(&["snapshots", "--json"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("rebuilding"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(b.len(), 3);
    r.catalog = r.tmp("c.catalog");
    assert_eq!(ids(&r), all[2..].to_vec());
    // A catalog rebuilt from the repository agrees.
    r.ok(&["catalog", "rebuild"]);
    assert_eq!(ids(&r), all[2..].to_vec());
    assert!(files_under(&r.path.join("commits")).len() >= 6);
}
