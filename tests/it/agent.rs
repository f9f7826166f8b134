//! `cairn agent`: its configuration file, checked as a user would.

use cairn_e2e::{cairn_bin, run_cmd};
use std::process::{Command, Output};

fn check_config(path: &std::path::Path) -> Output {
    let mut c = Command::new(cairn_bin());
    c.args(["agent", "check-config", "--config"])
        .arg(path)
        .env_remove("CAIRN_REPOSITORY");
    run_cmd(&mut c, b"")
}

#[test]
fn check_config_accepts_a_valid_file_and_lists_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("password");
    std::fs::write(&pass, "secret\n").unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        format!(
            "[repository]\nurl = \"{}\"\npassword-file = \"{}\"\n\n\
             [jobs.nightly]\nschedule = \"0 2 * * *\"\nretention = {{ keep-daily = 7 }}\n\
             source = {{ type = \"command\", command = [\"date\"] }}\n\n\
             [jobs.db]\nevery = \"1h\"\nsource = {{ type = \"pg\", dbname = \"app\" }}\n",
            dir.path().join("repo").display(),
            pass.display()
        ),
    )
    .unwrap();
    let o = check_config(&file);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("valid; 2 job(s): db, nightly"), "{out}");
}

/// Each kind of mistake the issue names (an unknown key, a bad cron
/// expression, a missing password file, an unknown source kind, a job
/// named twice) is named with the file, its line and the key; exit 1.
#[test]
fn check_config_names_file_line_and_key_of_each_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[repository]\nurl = \"/srv/r\"\npassword-env = \"PATH\"\n[jobs.a]\nsource = { type = \"command\", command = [\"true\"] }\nretension = { keep-last = 1 }\n",
            ":6:1: jobs.a.retension: unknown field `retension`",
        ),
        (
            "[repository]\nurl = \"/srv/r\"\npassword-env = \"PATH\"\n[jobs.a]\nschedule = \"61 * * * *\"\nsource = { type = \"command\", command = [\"true\"] }\n",
            ":5:12: jobs.a.schedule: \"61 * * * *\" is not a cron expression",
        ),
        (
            "[repository]\nurl = \"/srv/r\"\npassword-file = \"/nonexistent/pass\"\n",
            ":3:17: repository.password-file: cannot read /nonexistent/pass",
        ),
        (
            "[repository]\nurl = \"/srv/r\"\npassword-env = \"PATH\"\n[jobs.a]\nsource = { type = \"mysql\" }\n",
            ":5:19: jobs.a.source: unknown variant `mysql`",
        ),
        (
            "[repository]\nurl = \"/srv/r\"\npassword-env = \"PATH\"\n[jobs.a]\nsource = { type = \"command\", command = [\"true\"] }\n[jobs.a]\nevery = \"1h\"\n",
            ":6:7: jobs.a: duplicate key",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("agent-{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let o = check_config(&file);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{text}\n{err}");
        let line = format!("{}{want}", file.display());
        assert!(err.contains(&line), "want {line:?} in:\n{err}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn check_config_reports_every_mistake_it_can_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "[repository]\nurl = \"/srv/r\"\npassword-file = \"/nonexistent/pass\"\n\
         [jobs.a]\nschedule = \"0 2 * *\"\nsource = { type = \"redis\", url = \"redis://:hunter2@10.0.0.1:6379\" }\n",
    )
    .unwrap();
    let o = check_config(&file);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("3 errors"), "{err}");
    for key in [
        ":3:17: repository.password-file",
        ":5:12: jobs.a.schedule",
        ":6:10: jobs.a.source.url",
    ] {
        assert!(err.contains(key), "want {key} in:\n{err}");
    }
    assert!(!err.contains("hunter2"), "a secret was repeated: {err}");
}

#[test]
fn check_config_names_a_file_it_cannot_read() {
    let o = check_config(std::path::Path::new("/nonexistent/agent.toml"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/nonexistent/agent.toml") && err.contains("cannot read it"),
        "{err}"
    );
}
