//! Stream backups: stdin and commands, and every way a source can fail.

use cairn_e2e::{files_under, kill_while_spooling, random_bytes, Repo};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn stdin_round_trip_with_json_summary() {
    let r = Repo::init();
    let data = random_bytes(5 << 20, 7);
    let s = r.backup_json(&["--stdin", "--name", "blob.bin"], &data);
    for k in [
        "snapshot_id",
        "bytes_read",
        "new_bytes",
        "stored_bytes",
        "new_chunks",
        "packs_written",
        "duration_seconds",
    ] {
        assert!(!s[k].is_null(), "summary lacks {k}: {s}");
    }
    assert_eq!(s["bytes_read"], 5 << 20);
    assert!(s["packs_written"].as_u64().unwrap() >= 1);
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), data);
    assert_eq!(
        r.ok(&["restore", "latest", "--stdout", "--include", "blob.bin"]),
        data
    );
    // Restored to a directory, the stream is a file of that name.
    let out = r.tmp("out");
    r.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("blob.bin")).unwrap(), data);
}

/// A restore into a pipe grows the pipe's buffer to 1 MiB (or the system's
/// `pipe-max-size`, if lower), so cairn and the reader do not take turns every
/// 64 KiB; the bytes come through intact.
#[test]
fn restore_into_a_pipe_widens_it() {
    use std::io::Read;
    let r = Repo::init();
    let data = random_bytes(3 << 20, 11);
    r.ok_with(&["backup", "--stdin", "--name", "s"], &data);
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let before = rustix::pipe::fcntl_getpipe_size(&reader).unwrap();
    // The command (and its copy of the write end) is gone once spawned, so
    // the read below ends when cairn exits.
    let mut child = r
        .cairn()
        .args(["restore", "latest", "--stdout"])
        .stdout(std::process::Stdio::from(writer))
        .spawn()
        .unwrap();
    let mut reader = std::fs::File::from(reader);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(got, data);
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let want = max.min(1 << 20);
    let after = rustix::pipe::fcntl_getpipe_size(&reader).unwrap();
    assert!(
        before < want && after == want,
        "pipe buffer {before} before the restore, {after} after; expected {want}"
    );
}

#[test]
fn empty_stream() {
    let r = Repo::init();
    r.ok_with(&["backup", "--stdin"], b"");
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), b"");
}

#[test]
fn command_output_round_trip() {
    let r = Repo::init();
    let s = r.backup_json(
        &[
            "--name",
            "listing",
            "--command",
            "--",
            "sh",
            "-c",
            "seq 1 200000; echo done >&2",
        ],
        b"",
    );
    assert!(s["bytes_read"].as_u64().unwrap() > 1_000_000);
    let expected: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(
        r.ok(&["restore", "latest", "--stdout"]),
        expected.as_bytes()
    );
    let snap = &r.snapshots()[0];
    assert_eq!(snap["source"]["type"], "command");
    assert_eq!(snap["source"]["argv"][0], "sh");
}

fn assert_no_snapshot(r: &Repo, o: &std::process::Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "stderr lacks {needle:?}: {}",
        stderr(o)
    );
    assert!(stderr(o).contains("no snapshot"), "{}", stderr(o));
    assert!(
        r.snapshots().is_empty(),
        "a failed source must not leave a snapshot"
    );
    assert!(cairn_e2e::files_under(&r.path.join("snapshots")).is_empty());
    assert!(cairn_e2e::files_under(&r.path.join("commits")).is_empty());
}

#[test]
fn command_exiting_non_zero_gives_no_snapshot_and_its_stderr() {
    let r = Repo::init();
    let o = r.run(&[
        "backup",
        "--name",
        "d",
        "--command",
        "--",
        "sh",
        "-c",
        "head -c 3000000 /dev/zero; echo 'pg_dump: error: connection refused' >&2; exit 3",
    ]);
    assert_no_snapshot(&r, &o, "connection refused");
    assert!(stderr(&o).contains("status 3"), "{}", stderr(&o));
}

#[test]
fn command_killed_by_a_signal_gives_no_snapshot() {
    let r = Repo::init();
    let o = r.run(&[
        "backup",
        "--name",
        "d",
        "--command",
        "--",
        "sh",
        "-c",
        "head -c 4000000 /dev/urandom; kill -9 $$",
    ]);
    assert_no_snapshot(&r, &o, "signal 9");
}

#[test]
fn command_whose_stream_ends_early_gives_no_snapshot() {
    // The producer closes its output half-way and dies: the stream ends
    // early, and the exit status says so.
    let r = Repo::init();
    let o = r.run(&["backup", "--name", "d", "--command", "--", "sh", "-c", "head -c 2000000 /dev/urandom; exec >&-; sleep 0.2; echo 'dump truncated' >&2; kill -TERM $$"]);
    assert_no_snapshot(&r, &o, "dump truncated");
}

/// A backup killed while packs are being spooled leaves no file behind in
/// the repository but its session's lease, which expires (its spool files
/// have no name until they are published), and no snapshot.
#[test]
fn a_killed_backup_leaves_no_spool_files_in_the_repository() {
    let r = Repo::init();
    let before = files_under(&r.path);
    kill_while_spooling(&mut r.cairn(), &random_bytes(10 << 20, 61), &r.path);
    let leases = r.path.join("leases");
    let stray: Vec<_> = files_under(&r.path)
        .into_iter()
        .filter(|p| !before.contains(p) && !p.starts_with(&leases))
        .collect();
    assert!(stray.is_empty(), "left in the repository: {stray:?}");
    assert!(r.snapshots().is_empty());
    // The repository is whole: the next backup works and restores.
    let data = random_bytes(3 << 20, 62);
    r.ok_with(&["backup", "--stdin"], &data);
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), data);
}

#[test]
fn command_that_cannot_start() {
    let r = Repo::init();
    let o = r.run(&["backup", "--command", "--", "/no/such/program"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot start") && stderr(&o).contains("/no/such/program"),
        "{}",
        stderr(&o)
    );
    assert!(r.snapshots().is_empty());
}

#[test]
fn earlier_snapshots_survive_a_failed_backup() {
    let r = Repo::init();
    let data = random_bytes(3 << 20, 9);
    r.ok_with(&["backup", "--stdin"], &data);
    let o = r.run(&[
        "backup",
        "--command",
        "--",
        "sh",
        "-c",
        "head -c 5000000 /dev/urandom; exit 1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(r.snapshots().len(), 1);
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), data);
}

#[test]
fn usage_errors() {
    let r = Repo::init();
    for (args, needle) in [
        (vec!["backup"], "nothing to back up"),
        (vec!["backup", "--command"], "needs the command"),
        (
            vec!["backup", "--stdin", "--name", "a/b"],
            "not a valid file name",
        ),
        (vec!["backup", "/tmp", "--name", "x"], "--name is for"),
    ] {
        let o = r.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    let o = r.run(&["restore", "latest"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error: {}", stderr(&o));
}
