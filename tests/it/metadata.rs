//! Whole file metadata (#22): extended attributes, POSIX ACLs, file
//! capabilities, FIFOs, sockets and device files, checked with the
//! system's own tools (getfattr, getfacl, getcap).

use cairn_e2e::{is_root, run_cmd, Repo};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Runs a tool in `dir` on a relative path; its output (names are relative,
/// so a source and its restore print the same).
fn tool(dir: &Path, argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `bash .ci/run`: it installs attr, acl and libcap2-bin)",
                argv[0]
            )
        });
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn xattrs(dir: &Path, rel: &str) -> String {
    tool(dir, &["getfattr", "-h", "-d", "-m", "-", "-e", "hex", rel])
}

fn run(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tree with every kind of metadata this user can make.
fn make_tree(src: &Path) -> Vec<&'static str> {
    std::fs::create_dir_all(src.join("d")).unwrap();
    let p = |rel: &str| src.join(rel).to_str().unwrap().to_owned();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    std::fs::write(src.join("d/tool"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(src.join("d/tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    run(&[
        "setfattr",
        "-n",
        "user.checksum",
        "-v",
        "sha256:abc",
        &p("a.txt"),
    ]);
    run(&[
        "setfattr",
        "-n",
        "user.binary",
        "-v",
        "0xff00fe",
        &p("a.txt"),
    ]);
    run(&["setfattr", "-n", "user.on-dir", "-v", "yes", &p("d")]);
    run(&["setfacl", "-m", "u:1234:rw,g:5678:r", &p("a.txt")]);
    run(&["setfacl", "-d", "-m", "u:1234:rwx", &p("d")]);
    run(&["mkfifo", "-m", "0640", &p("fifo")]);
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    let mut checked = vec!["a.txt", "d", "d/tool", "fifo", "sock"];
    if is_root() {
        run(&["setcap", "cap_net_bind_service=+ep", &p("d/tool")]);
        run(&["mknod", "-m", "0620", &p("null"), "c", "1", "3"]);
        run(&["mknod", "-m", "0600", &p("loop"), "b", "7", "200"]);
        std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
        run(&[
            "setfattr",
            "-h",
            "-n",
            "trusted.origin",
            "-v",
            "test",
            &p("link"),
        ]);
        checked.extend(["null", "loop", "link"]);
    }
    checked
}

#[test]
fn xattrs_acls_capabilities_and_special_files_round_trip() {
    let r = Repo::init();
    let src = r.tmp("src");
    let checked = make_tree(&src);
    let first = r.backup_json(&[src.to_str().unwrap()], b"");
    assert_eq!(first["partial"], false, "{first}");

    let out = r.tmp("out");
    r.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let restored = out.join(src.strip_prefix("/").unwrap());
    for rel in &checked {
        assert_eq!(xattrs(&src, rel), xattrs(&restored, rel), "xattrs of {rel}");
        if *rel != "link" {
            assert_eq!(
                tool(&src, &["getfacl", "-n", rel]),
                tool(&restored, &["getfacl", "-n", rel]),
                "ACL of {rel}"
            );
        }
        let (a, b) = (
            std::fs::symlink_metadata(src.join(rel)).unwrap(),
            std::fs::symlink_metadata(restored.join(rel)).unwrap(),
        );
        assert_eq!(
            (a.mode(), a.rdev(), a.mtime()),
            (b.mode(), b.rdev(), b.mtime()),
            "{rel}"
        );
    }
    let acl = tool(&restored, &["getfacl", "-n", "a.txt"]);
    assert!(
        acl.contains("user:1234:rw-") && acl.contains("group:5678:r--"),
        "{acl}"
    );
    let default_acl = tool(&restored, &["getfacl", "-n", "d"]);
    assert!(
        default_acl.contains("default:user:1234:rwx"),
        "{default_acl}"
    );
    assert!(xattrs(&restored, "a.txt").contains("user.binary=0xff00fe"));
    let meta = |rel: &str| std::fs::symlink_metadata(restored.join(rel)).unwrap();
    assert!(meta("fifo").file_type().is_fifo());
    assert!(meta("sock").file_type().is_socket());
    assert_eq!(meta("d/tool").mode() & 0o7777, 0o4755);
    if is_root() {
        let caps = tool(&restored, &["getcap", "d/tool"]);
        assert!(caps.contains("cap_net_bind_service=ep"), "{caps}");
        assert!(meta("null").file_type().is_char_device());
        assert!(meta("loop").file_type().is_block_device());
        assert_eq!(
            meta("null").rdev(),
            std::fs::metadata("/dev/null").unwrap().rdev()
        );
    }
    let listing = String::from_utf8(r.ok(&["ls", "latest"])).unwrap();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("prw-r-----") && l.ends_with("/fifo")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwsr-xr-x") && l.ends_with("/d/tool")),
        "{listing}"
    );
    if is_root() {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("crw--w----") && l.contains(" 1, 3 ")),
            "{listing}"
        );
    }

    // Unchanged: nothing read again, and the attributes are still there.
    let again = r.backup_json(&[src.to_str().unwrap()], b"");
    assert_eq!(again["bytes_read"].as_u64(), Some(0), "{again}");
    let diff = String::from_utf8(r.ok(&["diff", first["snapshot_id"].as_str().unwrap(), "latest"]))
        .unwrap();
    // (The temp dir above the source changes: the catalog is beside it.)
    assert!(diff.contains("0 added, 0 removed, 0 modified"), "{diff}");
    assert!(!diff.contains("/src"), "{diff}");
    // An attribute changed is metadata changed.
    run(&[
        "setfattr",
        "-n",
        "user.checksum",
        "-v",
        "sha256:def",
        src.join("a.txt").to_str().unwrap(),
    ]);
    r.backup_json(&[src.to_str().unwrap()], b"");
    let diff = String::from_utf8(r.ok(&["diff", first["snapshot_id"].as_str().unwrap(), "latest"]))
        .unwrap();
    assert!(
        diff.lines()
            .any(|l| l.starts_with('U') && l.ends_with("/a.txt")),
        "{diff}"
    );

    // --no-xattrs on either side leaves them out.
    let out2 = r.tmp("out2");
    r.ok(&[
        "restore",
        "latest",
        "--no-xattrs",
        "--target",
        out2.to_str().unwrap(),
    ]);
    let bare = out2.join(src.strip_prefix("/").unwrap());
    assert!(!xattrs(&bare, "a.txt").contains("user.checksum"));
    assert!(!tool(&bare, &["getfacl", "-n", "a.txt"]).contains("user:1234"));
    r.backup_json(&["--no-xattrs", "--force", src.to_str().unwrap()], b"");
    let out3 = r.tmp("out3");
    r.ok(&["restore", "latest", "--target", out3.to_str().unwrap()]);
    assert!(!xattrs(&out3.join(src.strip_prefix("/").unwrap()), "a.txt").contains("user.checksum"));
}

#[test]
fn an_unprivileged_restore_restores_what_it_may_and_says_what_it_could_not() {
    if !is_root() {
        // Without root the source cannot hold a device file or a
        // capability in the first place.
        eprintln!("this test makes device files: it runs as root in CI");
        return;
    }
    let r = Repo::init();
    let src = r.tmp("src");
    make_tree(&src);
    r.backup_json(&[src.to_str().unwrap()], b"");
    // The repository and catalog readable by nobody, a target it owns.
    run(&["chmod", "-R", "a+rwX", r.dir.path().to_str().unwrap()]);
    let out = r.tmp("out");
    std::fs::create_dir(&out).unwrap();
    run(&["chown", "65534:65534", out.to_str().unwrap()]);
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cairn_e2e::cairn_bin())
        .args(["restore", "latest", "--target", out.to_str().unwrap()])
        .env("CAIRN_REPOSITORY", &r.path)
        .env("CAIRN_PASSWORD", &r.pass)
        .env("CAIRN_CATALOG", &r.catalog)
        .env("HOME", "/tmp");
    let o = run_cmd(&mut c, b"");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("null: not restored: making a chardev needs privilege"),
        "{err}"
    );
    assert!(err.contains("security.capability"), "{err}");
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored.join("a.txt")).unwrap(), b"alpha");
    assert!(xattrs(&restored, "a.txt").contains("user.checksum"));
    assert!(std::fs::symlink_metadata(restored.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(!restored.join("null").exists());
}
