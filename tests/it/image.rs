//! The OCI image (#20): built by deploy/image/build.sh with podman, no
//! daemon and no registry; it runs cairn as a user of its own, carries the
//! PostgreSQL client tools, and backs up and restores a mounted directory.

use cairn_e2e::cairn_bin;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

/// podman with the runtime these machines need (crun fails on hybrid
/// cgroups).
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
}

fn ok(o: Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn the_image_runs_cairn_and_backs_up_a_mounted_directory() {
    assert!(
        Command::new("podman").arg("--version").output().is_ok(),
        "podman is missing: run `bash .ci/run` (it installs podman and debootstrap)"
    );
    let tag = "localhost/cairn:e2e";
    let built = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/image/build.sh"
        ))
        .arg(tag)
        .env("CAIRN_BIN", cairn_bin())
        .env("PODMAN_FLAGS", "--runtime runc")
        .output()
        .unwrap();
    ok(built, "deploy/image/build.sh");
    // Lowered limits: these machines cannot raise them (no CAP_SYS_RESOURCE).
    let run = |extra: &[&str], args: &[&str]| {
        let mut c = podman();
        c.args([
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]);
        c.args(extra).arg(tag).args(args);
        c.output().unwrap()
    };
    let version = ok(run(&[], &["--version"]), "cairn --version");
    assert!(version.contains("repository format 1"), "{version}");
    let who = ok(run(&["--entrypoint", "id"], &[]), "id");
    assert!(
        who.contains("uid=65532(cairn)"),
        "not root, and known to NSS: {who}"
    );
    let pg = ok(run(&["--entrypoint", "pg_dump"], &["--version"]), "pg_dump");
    assert!(pg.contains("(PostgreSQL) 15."), "{pg}");

    // A directory of the host, mounted, owned by the image's user.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::create_dir_all(data.join("src/sub")).unwrap();
    std::fs::write(data.join("src/a.txt"), b"alpha").unwrap();
    std::fs::write(
        data.join("src/sub/b.bin"),
        cairn_e2e::random_bytes(300_000, 9),
    )
    .unwrap();
    let chown = Command::new("chown")
        .args(["-R", "65532:65532"])
        .arg(data)
        .status()
        .unwrap();
    assert!(chown.success());
    let volume = format!("{}:/data", data.display());
    let env = [
        "-v",
        &volume,
        "-e",
        "CAIRN_REPOSITORY=/data/repo",
        "-e",
        "CAIRN_PASSWORD=container-test",
    ];
    ok(run(&env, &["init"]), "init");
    let backup = ok(run(&env, &["--json", "backup", "/data/src"]), "backup");
    assert!(backup.contains("\"user\": \"cairn\""), "{backup}");
    ok(
        run(&env, &["restore", "latest", "--target", "/data/out"]),
        "restore",
    );
    for f in ["a.txt", "sub/b.bin"] {
        let (a, b) = (data.join("src").join(f), data.join("out/data/src").join(f));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{f}"
        );
        assert_eq!(std::fs::metadata(&b).unwrap().uid(), 65532);
    }
    let _ = podman().args(["rmi", "-f", tag]).output();
}
