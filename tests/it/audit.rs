//! The audit trail (format §7.3): a scripted day of backups, a forget, a
//! prune, a key rotation, a copy, a restore and a drill, listed from the
//! repository alone, each event once, in order, with its actor.

use cairn_e2e::{files_under, Repo};
use serde_json::Value;

fn trail(r: &Repo, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--json", "audit"];
    args.extend(extra);
    let out = r.ok(&args);
    let doc = crate::json::valid(r.dir.path(), "audit", &out);
    doc.as_array().unwrap().clone()
}

fn audit_objects(r: &Repo) -> usize {
    files_under(&r.path)
        .iter()
        .filter(|p| p.starts_with(r.path.join("audit")))
        .count()
}

#[test]
fn a_scripted_day_is_listed_once_in_order_with_its_actors() {
    let mut r = Repo::init();
    // The first backup from a pod (the chart's downward API variables).
    let out = r
        .cairn()
        .args(["--json", "backup", "--stdin", "--name", "orders.sql"])
        .env("POD_NAME", "cairn-agent-x2k9p")
        .env("POD_NAMESPACE", "shop")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"day one")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = first["snapshot"]["id"].as_str().unwrap().to_owned();
    r.ok_with(&["backup", "--stdin", "--name", "orders.sql"], b"day two");
    let src = r.tmp("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"files").unwrap();
    r.ok(&["backup", src.to_str().unwrap()]);
    r.ok(&["forget", "--keep-last", "1"]);
    r.ok(&["prune"]);
    // A key rotation: a new passphrase, then the old one removed with it.
    let old_key = {
        let keys: Value = serde_json::from_slice(&r.ok(&["--json", "key", "list"])).unwrap();
        keys[0]["id"].as_str().unwrap().to_owned()
    };
    let out = r
        .cairn()
        .args(["key", "add"])
        .env("CAIRN_NEW_PASSWORD", "rotated")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.pass = "rotated".into();
    r.ok(&["key", "remove", &old_key[..8]]);
    // A copy to a second repository: in both trails.
    let dr = Repo::init();
    let out = dr
        .cairn()
        .args(["copy", "--from-repo"])
        .arg(&r.path)
        .env("CAIRN_FROM_PASSWORD", &r.pass)
        .env("CAIRN_FROM_CATALOG", &r.catalog)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = r.tmp("restored");
    let out = r
        .cairn()
        .args(["restore", "latest", "--source-kind", "files", "--target"])
        .arg(&target)
        .env("CAIRN_HOST", "node-a")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Read-only credentials: nothing is written.
    let before = audit_objects(&r);
    r.ok(&[
        "--no-audit",
        "restore",
        "latest",
        "--stdout",
        "--source-kind",
        "stdin",
    ]);
    assert_eq!(audit_objects(&r), before);

    let events = trail(&r, &[]);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "backup",
            "backup",
            "backup",
            "forget",
            "prune",
            "key-add",
            "key-remove",
            "copy",
            "restore"
        ]
    );
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted);
    assert_eq!(events[0]["pod"], "shop/cairn-agent-x2k9p");
    // The host as snapshots record it: CAIRN_HOST (the node, in the chart).
    assert_eq!(events[8]["host"], "node-a");
    assert_eq!(events[0]["snapshots"][0], first.as_str());
    assert!(events[1].get("pod").is_none());
    let user = events[1]["user"].as_str().unwrap();
    assert!(!user.is_empty() && events.iter().all(|e| e["user"] == user && e["host"] != ""));
    // The forget names the snapshot it forgot: the first day's.
    assert_eq!(events[3]["snapshots"], serde_json::json!([first]));
    assert_eq!(events[3]["text"], "forgot 1 snapshot(s), kept 2");
    assert!(events[4]["text"].as_str().unwrap().starts_with("deleted "));
    assert!(events[6]["text"].as_str().unwrap().contains(&old_key[..8]));
    assert!(events[7]["text"]
        .as_str()
        .unwrap()
        .starts_with("copied 2 snapshot(s) from here to "));
    assert!(events[8]["text"]
        .as_str()
        .unwrap()
        .contains(target.to_str().unwrap()));
    let copied = trail(&dr, &["--event", "copy"]);
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0]["snapshots"].as_array().unwrap().len(), 2);

    // Prune keeps the trail; check finds nothing wrong with it; a drill is
    // recorded too.
    let count = audit_objects(&r);
    r.ok(&["prune"]);
    assert_eq!(audit_objects(&r), count + 1);
    r.ok(&["check", "--read-data"]);
    r.ok(&["drill", "--source-kind", "files"]);
    let last = trail(&r, &["--event", "drill"]);
    assert_eq!(last[0]["text"], "1 of 1 drill(s) passed");

    // A record changed on disk fails authentication, naming it.
    let path = files_under(&r.path.join("audit")).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let out = r.run(&["audit"]);
    assert_eq!(out.status.code(), Some(1));
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains(name));
}
