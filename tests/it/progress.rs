//! A CLI that explains itself and shows progress (#22): help, version,
//! completions and manual pages; progress bars under a pseudo-terminal
//! (script(1)), periodic log lines without one, never on standard output.

use cairn_e2e::{cairn_bin, run_cmd, Repo};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a shell command line under a pseudo-terminal; its transcript.
fn on_pty(r: &Repo, line: &str) -> String {
    let out = std::process::Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .env("CAIRN_REPOSITORY", &r.path)
        .env("CAIRN_PASSWORD", &r.pass)
        .env("CAIRN_CATALOG", &r.catalog)
        .output()
        .expect("script(1) runs (bsdutils)");
    let t = text(&out.stdout);
    assert!(out.status.success(), "{line}: {t}");
    t
}

#[test]
fn help_version_completions_and_manual_pages() {
    let r = Repo::new();
    let version = text(&r.ok(&["--version"]));
    assert!(
        version.contains("commit ") && version.contains("repository format 1"),
        "{version}"
    );
    let help = text(&r.ok(&["--help"]));
    for want in [
        "deduplicated",
        "Repository:",
        "Output:",
        "CAIRN_PASSWORD_FILE",
        "Examples:",
        "Exit status",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
    let backup = text(&r.ok(&["backup", "--help"]));
    for want in [
        "Examples:",
        "File selection:",
        "--exclude-caches",
        "[env: CAIRN_HOST=",
    ] {
        assert!(
            backup.contains(want),
            "backup --help lacks {want:?}:\n{backup}"
        );
    }
    for cmd in ["restore", "forget", "snapshots", "agent", "find"] {
        assert!(text(&r.ok(&[cmd, "--help"])).contains("Examples:"), "{cmd}");
    }

    // Completions load in their shell.
    let bash = r.tmp("cairn.bash");
    std::fs::write(&bash, r.ok(&["completion", "bash"])).unwrap();
    let o = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("source {} && complete -p cairn", bash.display()),
        ])
        .output()
        .unwrap();
    assert!(text(&o.stdout).contains("cairn"), "{}", text(&o.stderr));
    assert!(text(&r.ok(&["completion", "zsh"])).starts_with("#compdef cairn"));
    assert!(text(&r.ok(&["completion", "fish"])).contains("complete -c cairn"));

    let man = r.tmp("man");
    r.ok(&["man", "--dir", man.to_str().unwrap()]);
    for page in [
        "cairn.1",
        "cairn-backup.1",
        "cairn-restore.1",
        "cairn-agent.1",
    ] {
        let p = std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(p.contains(".TH"), "{page}");
    }
    assert!(text(&r.ok(&["man"])).contains(".SH NAME"));
}

#[test]
fn an_empty_password_file_variable_is_unset() {
    let r = Repo::init();
    let o = run_cmd(
        r.cairn().env("CAIRN_PASSWORD_FILE", "").arg("snapshots"),
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn bars_on_a_terminal_lines_without_one_never_on_stdout() {
    let r = Repo::init();
    let bin = cairn_bin();
    let bin = bin.display();
    // A slow producer, so the display draws while it runs.
    let slow = "head -c 4194304 /dev/urandom; sleep 1.2; head -c 4194304 /dev/urandom";
    let t = on_pty(
        &r,
        &format!("{bin} backup --name slow.bin --command -- sh -c '{slow}'"),
    );
    assert!(
        t.contains(" read, ") && t.contains("/s"),
        "no backup progress: {t}"
    );

    // A restore knows its size: a bar with the time left (the reader
    // starts late, so the restore waits on the pipe while the bar draws).
    let out = r.tmp("restored.bin");
    let t = on_pty(
        &r,
        &format!(
            "{bin} restore latest --stdout | (sleep 1; cat > {})",
            out.display()
        ),
    );
    assert!(
        t.contains("restored [") && t.contains("ETA"),
        "no restore bar: {t}"
    );
    // Standard output carried the data only.
    let back = std::fs::read(&out).unwrap();
    assert_eq!(back.len(), 8 << 20);
    let dir = r.tmp("tree");
    let t = on_pty(
        &r,
        &format!("{bin} restore latest --target {}", dir.display()),
    );
    assert!(t.contains("restored snapshot"), "{t}");

    // Without a terminal: a log line every --progress-interval seconds.
    let slow = |quiet: bool, script: &str| {
        let mut a = vec!["backup", "--progress-interval", "1", "--name", "slow.bin"];
        if quiet {
            a.insert(0, "-q");
        }
        a.extend(["--command", "--", "sh", "-c", script]);
        let o = r.run(&a);
        let err = text(&o.stderr);
        assert!(o.status.success(), "{err}");
        err
    };
    let err = slow(
        false,
        "head -c 1048576 /dev/urandom; sleep 2.5; head -c 1048576 /dev/urandom",
    );
    let lines = err
        .lines()
        .filter(|l| l.contains("backup running for"))
        .count();
    assert!(lines >= 2, "{err}");
    assert!(err.contains("MiB done at"), "{err}");
    // -q: none.
    let err = slow(true, "head -c 1024 /dev/urandom; sleep 1.5");
    assert!(err.is_empty(), "{err}");
}
