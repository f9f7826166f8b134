//! Repository creation, keys and passphrases, snapshot selection, progress.

use cairn_e2e::{cairn_bin, run_cmd, Repo};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn init_creates_and_never_overwrites() {
    let r = Repo::init();
    assert!(r.path.join("config").is_file());
    assert_eq!(cairn_e2e::files_under(&r.path.join("keys")).len(), 1);
    let before = std::fs::read(r.path.join("config")).unwrap();
    let again = r.run(&["init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(r.path.join("config")).unwrap(), before);
    assert_eq!(
        cairn_e2e::files_under(&r.path.join("keys")).len(),
        1,
        "a failed init must not add keys"
    );
}

#[test]
fn missing_repository_and_missing_passphrase_are_clear() {
    let r = Repo::new();
    let o = r.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no repository at") && stderr(&o).contains("cairn init"),
        "{}",
        stderr(&o)
    );

    let o = run_cmd(
        std::process::Command::new(cairn_bin())
            .env_remove("CAIRN_REPOSITORY")
            .arg("snapshots"),
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert!(stderr(&o).contains("--repo"), "{}", stderr(&o));

    let r = Repo::init();
    // No passphrase in the environment and no terminal (setsid detaches /dev/tty).
    let o = run_cmd(
        std::process::Command::new("setsid")
            .arg(cairn_bin())
            .arg("snapshots")
            .env("CAIRN_REPOSITORY", &r.path)
            .env_remove("CAIRN_PASSWORD"),
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("CAIRN_PASSWORD_FILE"), "{}", stderr(&o));
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let r = Repo::init();
    let o = r
        .cairn()
        .env("CAIRN_PASSWORD", "not it")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
}

#[test]
fn passphrase_from_a_file() {
    let r = Repo::init();
    let f = r.tmp("pass");
    std::fs::write(&f, format!("{}\n", r.pass)).unwrap();
    let o = r
        .cairn()
        .env_remove("CAIRN_PASSWORD")
        .env("CAIRN_PASSWORD_FILE", &f)
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = r
        .cairn()
        .env_remove("CAIRN_PASSWORD")
        .env("CAIRN_PASSWORD_FILE", r.tmp("nope"))
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("passphrase file"), "{}", stderr(&o));
}

#[test]
fn keys_add_list_remove() {
    let r = Repo::init();
    r.ok_with(&["backup", "--stdin"], b"data under the first key");
    let out = r
        .cairn()
        .env("CAIRN_NEW_PASSWORD", "second secret")
        .args(["key", "add"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let list = String::from_utf8(r.ok(&["key", "list"])).unwrap();
    assert_eq!(list.lines().count(), 3, "{list}");
    let current = list.lines().find(|l| l.starts_with('*')).unwrap()[1..9].to_owned();
    let other = list.lines().skip(1).find(|l| !l.starts_with('*')).unwrap()[1..9].to_owned();

    // The new passphrase opens the repository and reads the old data.
    let second = |args: &[&str]| {
        r.cairn()
            .env("CAIRN_PASSWORD", "second secret")
            .args(args)
            .output()
            .unwrap()
    };
    let o = second(&["restore", "latest", "--stdout"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"data under the first key");

    // The key in use cannot be removed.
    let o = r.run(&["key", "remove", &current]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("opened the repository"),
        "{}",
        stderr(&o)
    );

    // Another key can; then the old passphrase no longer opens the repository.
    let o = second(&["key", "remove", &current]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = r.run(&["snapshots"]);
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));

    // The last key cannot be removed, even by another's passphrase (there is none left).
    let o = second(&["key", "remove", &other]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("opened the repository") || stderr(&o).contains("last key"),
        "{}",
        stderr(&o)
    );
    let o = second(&["key", "remove", "ffffffff"]);
    assert!(stderr(&o).contains("no key matches"), "{}", stderr(&o));
}

#[test]
fn snapshot_arguments_latest_prefix_ambiguous_unknown() {
    let r = Repo::init();
    for i in 0..6 {
        r.ok_with(
            &["backup", "--stdin", "--name", "s"],
            format!("content {i}").as_bytes(),
        );
    }
    let snaps = r.snapshots();
    assert_eq!(snaps.len(), 6);
    let last = snaps[5]["id"].as_str().unwrap();
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), b"content 5");
    assert_eq!(r.ok(&["restore", &last[..10], "--stdout"]), b"content 5");
    let first = snaps[0]["id"].as_str().unwrap();
    assert_eq!(r.ok(&["restore", first, "--stdout"]), b"content 0");

    let o = r.run(&["restore", "0123456789abcdef", "--stdout"]);
    let unknown = o.status.code() == Some(1) && stderr(&o).contains("no snapshot matches");
    // (A 16-digit prefix matching a random id is a 2^-64 event.)
    assert!(unknown, "{}", stderr(&o));
    // Some one-digit prefix is shared by two of six snapshots or unique; find an ambiguous one if any.
    let ids: Vec<&str> = snaps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    if let Some(p) = ids
        .iter()
        .map(|i| &i[..1])
        .find(|p| ids.iter().filter(|i| i.starts_with(*p)).count() > 1)
    {
        let o = r.run(&["restore", p, "--stdout"]);
        assert!(stderr(&o).contains("ambiguous"), "{}", stderr(&o));
    }
    let o = r.run(&["restore", "not-hex!", "--stdout"]);
    assert!(stderr(&o).contains("not a snapshot id"), "{}", stderr(&o));
}

#[test]
fn snapshots_table_and_json() {
    let r = Repo::init();
    r.ok_with(&["backup", "--stdin", "--name", "db.sql"], b"select 1;");
    let table = String::from_utf8(r.ok(&["snapshots"])).unwrap();
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("stdin:db.sql") && table.contains("1 snapshots"),
        "{table}"
    );
    let s = &r.snapshots()[0];
    assert_eq!(s["source"]["type"], "stdin");
    assert_eq!(s["summary"]["bytes_read"], 9);
    assert_eq!(s["partial"], false);
}

/// A reader that stops early (`| head`) ends cairn quietly with 141, as
/// SIGPIPE ends `cat`: no error message, and `pipefail` still sees the cut.
#[test]
fn a_closed_stdout_is_a_quiet_exit_141() {
    use std::io::Read;
    let r = Repo::init();
    // Both outputs are well past a pipe's 64 KiB buffer.
    let dir = r.tmp("many");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..2000 {
        std::fs::write(dir.join(format!("file-{i:04}-{}", "n".repeat(60))), b"x").unwrap();
    }
    r.ok(&["backup", dir.to_str().unwrap()]);
    r.ok_with(
        &["backup", "--stdin", "--name", "big"],
        &cairn_e2e::random_bytes(4 << 20, 3),
    );
    let listing = r.snapshots()[0]["id"].as_str().unwrap().to_owned();
    for args in [&["restore", "latest", "--stdout"][..], &["ls", &listing]] {
        let mut child = r
            .cairn()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn silent_without_a_terminal_and_progress_with_one() {
    let r = Repo::init();
    let data = cairn_e2e::random_bytes(8 << 20, 1);
    let o = r.run_with(&["backup", "--stdin"], &data);
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "stderr should be silent: {}",
        stderr(&o)
    );

    // Under a pseudo-terminal (script(1)), the progress display appears.
    let input = r.tmp("in");
    std::fs::write(&input, cairn_e2e::random_bytes(64 << 20, 2)).unwrap();
    let cmd = format!(
        "{} backup --stdin < {}",
        cairn_bin().display(),
        input.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("CAIRN_REPOSITORY", &r.path)
        .env("CAIRN_PASSWORD", &r.pass)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("saved"), "{text}");
}

/// Runs `cairn ARGS` under a pseudo-terminal with no passphrase in the
/// environment, answering each prompt (a substring of the output) with its
/// line once the prompt has appeared. Returns the exit status and the output.
fn on_terminal(repo: &std::path::Path, args: &str, answers: &[(&str, &str)]) -> (i32, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let cmd = format!("{} {args}", cairn_bin().display());
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("CAIRN_REPOSITORY", repo)
        .env_remove("CAIRN_PASSWORD")
        .env_remove("CAIRN_PASSWORD_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut from = 0;
    for (prompt, answer) in answers {
        loop {
            let text = seen.lock().unwrap().clone();
            if let Some(at) = text[from..].find(prompt) {
                from += at + prompt.len();
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no prompt {prompt:?} in {text:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let text = seen.lock().unwrap().clone();
    (status.code().unwrap_or(-1), text)
}

#[test]
fn passphrase_prompt_on_a_terminal() {
    let r = Repo::new();
    let (code, text) = on_terminal(
        &r.path,
        "init",
        &[
            ("new repository:", "typed secret"),
            ("confirm:", "typed secret"),
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains("typed secret"),
        "the passphrase was echoed: {text}"
    );
    let (code, text) = on_terminal(&r.path, "snapshots", &[("passphrase:", "typed secret")]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0 snapshots"), "{text}");
    let (code, text) = on_terminal(&r.path, "snapshots", &[("passphrase:", "wrong")]);
    assert_eq!(code, 1, "{text}");

    let other = Repo::new();
    let (code, text) = on_terminal(
        &other.path,
        "init",
        &[("new repository:", "one"), ("confirm:", "two")],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("differ"), "{text}");
    assert!(!other.path.join("config").exists());
}

#[test]
fn logs_for_people_quiet_verbose_and_json() {
    let r = Repo::init();
    let src = r.tmp("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let src = src.to_str().unwrap();
    r.ok(&["backup", src]);

    // For people: what cairn is doing, one `cairn: ` line each.
    let o = r.run(&["backup", src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("cairn: using parent snapshot"),
        "{}",
        stderr(&o)
    );
    // -q: warnings and errors only.
    let o = r.run(&["-q", "backup", src]);
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
    // -v: debug events of the library too.
    let o = r.run(&["-v", "backup", src]);
    assert!(
        stderr(&o).contains("cairn: debug: backup committed"),
        "{}",
        stderr(&o)
    );
    // RUST_LOG chooses instead of -v and -q.
    let o = run_cmd(
        r.cairn()
            .args(["-q", "backup", src])
            .env("RUST_LOG", "cairn_agent::ops=debug"),
        b"",
    );
    assert!(stderr(&o).contains("backup committed"), "{}", stderr(&o));

    // JSON lines: the event, its fields and the spans it happened in; an
    // error says what can be done about it.
    let o = r.run(&["--log-format", "json", "-v", "backup", src]);
    assert!(o.status.success());
    let events: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let done = events
        .iter()
        .find(|e| e["message"] == "backup committed")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(done["level"], "DEBUG");
    assert_eq!(done["span"]["name"], "backup");
    assert_eq!(done["span"]["source"], "files");
    assert!(
        done["span"]["snapshot"]
            .as_str()
            .is_some_and(|s| s.len() == 8),
        "{done}"
    );
    let o = r.run(&["--log-format", "json", "restore", "nosuch", "--target", src]);
    assert_eq!(o.status.code(), Some(1));
    let line: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["action"], "fix_input");
    assert!(
        line["message"].as_str().unwrap().contains("nosuch"),
        "{line}"
    );
}
