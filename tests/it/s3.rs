//! S3 repositories against the real S3 test server (SeaweedFS on 127.0.0.1,
//! started by the harness): every command, and faults injected in front of it.

use cairn_e2e::{kill_while_spooling, random_bytes, Repo};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_command_works_on_s3() {
    let r = Repo::new_s3();
    r.ok(&["init"]);
    assert_eq!(
        r.run(&["init"]).status.code(),
        Some(1),
        "init twice must fail"
    );

    let data = random_bytes(7 << 20, 21);
    let s = r.backup_json(&["--stdin", "--name", "blob"], &data);
    assert!(s["packs_written"].as_u64().unwrap() >= 1);
    let again = r.backup_json(&["--stdin", "--name", "blob"], &data);
    assert!(
        again["new_bytes"].as_u64().unwrap() < 1 << 20,
        "dedup on S3: {again}"
    );
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), data);

    let o = r.run(&[
        "backup",
        "--command",
        "--",
        "sh",
        "-c",
        "echo half; echo 'boom' >&2; exit 2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("boom"));
    assert_eq!(r.snapshots().len(), 2);

    let src = r.tmp("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/file"), b"on s3").unwrap();
    std::os::unix::fs::symlink("d/file", src.join("link")).unwrap();
    r.ok(&["backup", src.to_str().unwrap()]);
    let listing = String::from_utf8(r.ok(&["ls", "latest"])).unwrap();
    assert!(
        listing.contains("/d/file") && listing.contains("-> d/file"),
        "{listing}"
    );
    let out = r.tmp("out");
    r.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored.join("d/file")).unwrap(), b"on s3");

    // A machine that never saw the bucket: address and passphrase suffice.
    let mut laptop = Repo::new_s3();
    laptop.path = r.path.clone();
    laptop.pass = r.pass.clone();
    assert_eq!(laptop.snapshots().len(), 3);
    assert!(String::from_utf8(laptop.ok(&["find", "file"]))
        .unwrap()
        .contains("/d/file"));
    assert_eq!(
        laptop.ok(&[
            "restore",
            "latest",
            "--stdout",
            "--include",
            &format!("{}/d/file", src.display())
        ]),
        b"on s3"
    );

    let o = r
        .cairn()
        .env("CAIRN_NEW_PASSWORD", "second")
        .args(["key", "add"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(r.ok(&["key", "list"]))
            .unwrap()
            .lines()
            .count(),
        3
    );
    let o = r
        .cairn()
        .env("CAIRN_PASSWORD", "nope")
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));

    // No secret reaches the output.
    for o in [
        r.run(&["snapshots", "--json"]),
        r.run(&["backup", "--stdin"]),
    ] {
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        assert!(
            !all.contains(&cairn_e2e::s3_server().secret_key),
            "secret key in output"
        );
    }
}

/// Transient faults are tested at the network level (`s3_network`); this is
/// a permanent one: credentials that may read but not write. It is not
/// retried, names its cause, and leaves no snapshot; reading still works.
#[test]
fn a_refused_write_is_permanent_and_leaves_no_snapshot() {
    let mut r = Repo::new_s3();
    r.ok(&["init", "--pack-size-mib", "1"]);
    let first = random_bytes(3 << 20, 41);
    r.ok_with(&["backup", "--stdin", "--name", "first"], &first);
    let s3 = cairn_e2e::s3_server();
    for (k, v) in r.env.iter_mut() {
        match k.as_str() {
            "AWS_ACCESS_KEY_ID" => *v = format!("{}-ro", s3.access_key),
            "AWS_SECRET_ACCESS_KEY" => *v = format!("{}-ro", s3.secret_key),
            _ => {}
        }
    }
    let o = r
        .cairn()
        .args(["backup", "--stdin"])
        .output_with(&random_bytes(16 << 20, 42));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("PermissionDenied") || stderr(&o).contains("refused"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("credentials"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("retrying"),
        "permanent errors must not be retried: {}",
        stderr(&o)
    );
    assert_eq!(r.snapshots().len(), 1);
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), first);
}

/// S3 backups spool packs in TMPDIR: the files go when the backup ends or is
/// killed, and a TMPDIR that cannot hold them is a clear error with no
/// snapshot.
#[test]
fn packs_spool_in_tmpdir_and_an_unusable_one_is_a_clear_error() {
    let r = Repo::new_s3();
    r.ok(&["init", "--pack-size-mib", "1"]);
    let spool = r.tmp("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let first = random_bytes(5 << 20, 51);
    let o = r
        .cairn()
        .env("TMPDIR", &spool)
        .args(["backup", "--stdin", "--json"])
        .output_with(&first);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(s["packs_written"].as_u64().unwrap() >= 4, "{s}");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool files left"
    );
    // Killed while spooling, it leaves none behind either.
    kill_while_spooling(
        r.cairn().env("TMPDIR", &spool),
        &random_bytes(10 << 20, 53),
        &spool,
    );
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool files left by a killed backup"
    );

    let not_a_dir = r.tmp("a-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let o = r
        .cairn()
        .env("TMPDIR", &not_a_dir)
        .args(["backup", "--stdin"])
        .output_with(&random_bytes(3 << 20, 52));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("spool file") && stderr(&o).contains("TMPDIR"),
        "{}",
        stderr(&o)
    );
    assert_eq!(r.snapshots().len(), 1);
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), first);
}

/// Pipes `stdin` into a prepared command.
trait OutputWith {
    fn output_with(&mut self, stdin: &[u8]) -> std::process::Output;
}

impl OutputWith for std::process::Command {
    fn output_with(&mut self, stdin: &[u8]) -> std::process::Output {
        cairn_e2e::run_cmd(self, stdin)
    }
}
