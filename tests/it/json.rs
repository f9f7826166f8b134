//! `--json` (#22): every command's document validates against the schema
//! in docs/json.md (with python3-jsonschema, JSON Schema 2020-12), and a
//! failure is a JSON error object.

use cairn_e2e::{run_cmd, Repo};
use std::path::Path;

/// The schema of docs/json.md.
fn schema() -> serde_json::Value {
    let doc = include_str!("../../docs/json.md");
    let start = doc
        .find("<!-- schema -->\n```json\n")
        .expect("docs/json.md has the schema");
    let rest = &doc[start..];
    let body = &rest[rest.find('{').unwrap()..];
    let body = &body[..body.find("\n```").unwrap()];
    serde_json::from_str(body).expect("the schema is JSON")
}

/// Asserts that `out` is one JSON document valid as `$defs/{def}`.
pub(crate) fn valid(dir: &Path, def: &str, out: &[u8]) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "{def}: not one JSON document ({e}): {}",
            String::from_utf8_lossy(out)
        )
    });
    let mut schema = schema();
    assert!(
        schema["$defs"].get(def).is_some(),
        "the schema has no {def}"
    );
    schema["$ref"] = format!("#/$defs/{def}").into();
    let (s, d) = (dir.join("schema.json"), dir.join("doc.json"));
    std::fs::write(&s, schema.to_string()).unwrap();
    std::fs::write(&d, doc.to_string()).unwrap();
    let check = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             s = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))\n\
             jsonschema.Draft202012Validator.check_schema(s)\n\
             errors = list(jsonschema.Draft202012Validator(s).iter_errors(d))\n\
             for e in errors: print(list(e.absolute_path), e.message)\n\
             sys.exit(1 if errors else 0)",
        ])
        .arg(&s)
        .arg(&d)
        .output()
        .expect("python3 runs (bash .ci/run installs python3-jsonschema)");
    assert!(
        check.status.success(),
        "{def} does not match docs/json.md:\n{}{}\n{doc:#}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    doc
}

#[test]
fn every_document_matches_the_schema() {
    let r = Repo::init();
    let dir = r.dir.path();
    let src = r.tmp("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    std::fs::write(src.join("sub/b.conf"), b"beta").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let s = src.to_str().unwrap();
    let backup = valid(
        dir,
        "backup",
        &r.ok(&["--json", "backup", "--tag", "t1", s]),
    );
    assert_eq!(backup["snapshot"]["tags"][0], "t1");
    std::fs::write(src.join("a.txt"), b"alpha, changed").unwrap();
    let second = valid(dir, "backup", &r.ok(&["backup", "--json", s]));
    assert_eq!(second["parent_id"], backup["snapshot_id"]);
    valid(
        dir,
        "backup",
        &r.ok_with(&["backup", "--json", "--stdin", "--name", "s"], b"stream"),
    );

    let list = valid(dir, "snapshots", &r.ok(&["snapshots", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(list[0]["time"].as_str().unwrap().ends_with('Z'));
    let ls = valid(
        dir,
        "ls",
        &r.ok(&["ls", "--json", "latest", "--source-kind", "files"]),
    );
    let link = ls["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "link")
        .unwrap();
    assert_eq!(
        (link["type"].as_str(), link["link_target"].as_str()),
        (Some("symlink"), Some("a.txt"))
    );
    let found = valid(dir, "find", &r.ok(&["find", "--json", "*.conf"]));
    assert_eq!(found.as_array().unwrap().len(), 2);
    let first = backup["snapshot_id"].as_str().unwrap();
    let diff = valid(
        dir,
        "diff",
        &r.ok(&[
            "diff",
            "--json",
            first,
            second["snapshot_id"].as_str().unwrap(),
        ]),
    );
    assert!(
        diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["change"] == "modified" && c["path"].as_str().unwrap().ends_with("/a.txt")),
        "{diff}"
    );
    let out = r.tmp("out");
    let restored = valid(
        dir,
        "restore",
        &r.ok(&[
            "restore",
            "--json",
            first,
            "--target",
            out.to_str().unwrap(),
        ]),
    );
    assert_eq!(restored["files"], 2);

    valid(
        dir,
        "forget",
        &r.ok(&["forget", "--json", "--keep-last", "1", "--dry-run"]),
    );
    let forgot = valid(
        dir,
        "forget",
        &r.ok(&[
            "forget",
            "--json",
            "--keep-last",
            "1",
            "--source-kind",
            "files",
            "--prune",
        ]),
    );
    assert_eq!(forgot["forget"]["forgotten"].as_array().unwrap().len(), 1);
    assert!(forgot["prune"].is_object());
    valid(dir, "prune", &r.ok(&["prune", "--json", "--dry-run"]));
    valid(dir, "check", &r.ok(&["check", "--json", "--read-data"]));

    let added = run_cmd(
        r.cairn()
            .env("CAIRN_NEW_PASSWORD", "second")
            .args(["key", "add", "--json"]),
        b"",
    );
    assert!(added.status.success());
    valid(dir, "key_changed", &added.stdout);
    let keys = valid(dir, "key_list", &r.ok(&["key", "list", "--json"]));
    assert_eq!(keys.as_array().unwrap().len(), 2);
    valid(dir, "catalog_info", &r.ok(&["catalog", "info", "--json"]));
    valid(
        dir,
        "catalog_info",
        &r.ok(&["catalog", "rebuild", "--json"]),
    );
    valid(dir, "catalog_check", &r.ok(&["catalog", "check", "--json"]));

    // Failures: one error document, and the exit status it names.
    for (args, code) in [
        (
            vec!["restore", "--json", "0123abcd", "--target", "/tmp/x"],
            1,
        ),
        (vec!["backup", "--json", "/nonexistent/path"], 1),
        (vec!["restore", "--json", "latest", "--stdout"], 2),
    ] {
        let o = r.run(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        let e = valid(dir, "error", &o.stdout);
        assert_eq!(e["error"]["exit_code"], code);
    }
    let o = r.run(&["backup", "--json", "/nonexistent/path"]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/path"),
        "{e}"
    );
}
