use super::*;

/// The problems of `text`, as (line, key, a piece of the message).
fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    }
}

fn one_problem(text: &str) -> Problem {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    p.into_iter().next().unwrap_or_else(|| unreachable!())
}

const REPO: &str = "[repository]\nurl = \"/srv/repo\"\npassword-env = \"PATH\"\n";

#[test]
fn a_small_file_reads() {
    let text = format!(
        "{REPO}
[jobs.orders]
schedule = \"0 2 * * *\"
time-zone = \"UTC\"
jitter = \"5m\"
timeout = \"2h\"
retries = 2
tags = [\"prod\"]
source = {{ type = \"pg\", dbname = \"orders\", globals = true }}
retention = {{ keep-daily = 7, keep-weekly = 4 }}

[[jobs.orders.pre]]
command = [\"psql\", \"-c\", \"CHECKPOINT\"]
timeout = \"30s\"
on-failure = \"continue\"

[jobs.cache]
every = \"1h\"
[jobs.cache.source]
type = \"redis\"
url = \"redis://127.0.0.1:6379\"
"
    );
    let f = parse(&text).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(f.jobs.len(), 2);
    let orders = f.jobs["orders"].get_ref();
    assert!(matches!(orders.source.get_ref(), JobSource::Postgres(p) if p.globals));
    assert_eq!(
        orders.jitter,
        Some(Duration(std::time::Duration::from_secs(300)))
    );
    assert_eq!(orders.pre[0].get_ref().on_failure, OnFailure::Continue);
    assert_eq!(
        orders.retention.as_ref().map(|r| r.get_ref().keep_daily),
        Some(Some(7))
    );
    let cache = f.jobs["cache"].get_ref();
    assert_eq!(
        cache.every.as_ref().map(|e| e.get_ref().0),
        Some(std::time::Duration::from_secs(3600))
    );
    assert_eq!(f.agent.max_concurrent_jobs.into_inner(), 1);
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let p = one_problem(&format!(
        "{REPO}\n[jobs.a]\nschedul = \"0 2 * * *\"\nsource = {{ type = \"command\", command = [\"true\"] }}\n"
    ));
    assert_eq!((p.line, p.key.as_str()), (6, "jobs.a.schedul"), "{p:?}");
    assert!(p.message.contains("schedul"), "{p:?}");
}

#[test]
fn a_bad_cron_expression_is_named() {
    let p = one_problem(&format!(
        "{REPO}\n[jobs.a]\nschedule = \"0 25 * * *\"\nsource = {{ type = \"command\", command = [\"true\"] }}\n"
    ));
    assert_eq!((p.line, p.key.as_str()), (6, "jobs.a.schedule"), "{p:?}");
    assert!(p.message.contains("0 25 * * *"), "{p:?}");
}

#[test]
fn a_missing_password_file_is_named() {
    let p = one_problem(
        "[repository]\nurl = \"/srv/repo\"\npassword-file = \"/nonexistent/cairn-password\"\n",
    );
    assert_eq!(
        (p.line, p.key.as_str()),
        (3, "repository.password-file"),
        "{p:?}"
    );
    assert!(p.message.contains("/nonexistent/cairn-password"), "{p:?}");
}

#[test]
fn an_unknown_source_kind_is_named() {
    let p = one_problem(&format!(
        "{REPO}\n[jobs.a]\nevery = \"1h\"\n[jobs.a.source]\ntype = \"mysql\"\n"
    ));
    assert_eq!((p.line, p.key.as_str()), (8, "jobs.a.source.type"), "{p:?}");
    assert!(
        p.message.contains("mysql") && p.message.contains("postgres"),
        "{p:?}"
    );
}

#[test]
fn a_job_named_twice_is_refused() {
    let job = "[jobs.a]\nsource = { type = \"command\", command = [\"true\"] }\n";
    let p = one_problem(&format!("{REPO}\n{job}\n{job}"));
    assert_eq!((p.line, p.key.as_str()), (8, "jobs.a"), "{p:?}");
    assert!(p.message.contains("duplicate"), "{p:?}");
}

#[test]
fn every_mistake_after_parsing_is_listed() {
    let p = problems(
        "[repository]
url = \"/srv/repo\"
password-env = \"PATH\"

[agent]
listen = \"nowhere\"

[jobs.a]
schedule = \"* * *\"
every = \"1h\"
time-zone = \"Mars/Olympus\"
repository = \"dr\"
tags = [\"a,b\"]
retention = {}
source = { type = \"files\", paths = [\"relative/dir\"] }

[jobs.\"b c\"]
every = \"0s\"
source = { type = \"redis\", url = \"redis://:secret@127.0.0.1:6379\" }
",
    );
    let keys: Vec<(usize, &str)> = p.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        keys,
        [
            (6, "agent.listen"),
            (9, "jobs.a.schedule"),
            (11, "jobs.a.time-zone"),
            (12, "jobs.a.repository"),
            (13, "jobs.a.tags"),
            (14, "jobs.a.retention"),
            (15, "jobs.a.source.paths"),
            (17, "jobs.b c"),
            (18, "jobs.b c.every"),
            (19, "jobs.b c.source.url"),
        ],
        "{p:#?}"
    );
    // No secret is repeated back.
    assert!(!p.iter().any(|p| p.message.contains("secret")), "{p:#?}");
}

#[test]
fn a_job_without_a_repository_is_refused() {
    let p = one_problem("[jobs.a]\nsource = { type = \"command\", command = [\"true\"] }\n");
    assert_eq!((p.line, p.key.as_str()), (1, "jobs.a"), "{p:?}");
    assert!(p.message.contains("[repository]"), "{p:?}");
}

#[test]
fn durations_read_as_people_write_them() {
    for (text, secs) in [("30s", 30), ("5m", 300), ("1h 30m", 5400), ("PT2H", 7200)] {
        let p = parse(&format!("{REPO}[agent]\nshutdown-grace = \"{text}\"\n"))
            .unwrap_or_else(|p| panic!("{text}: {p:#?}"));
        assert_eq!(p.agent.shutdown_grace.0.as_secs(), secs, "{text}");
    }
    let p = one_problem(&format!("{REPO}[agent]\nshutdown-grace = \"soon\"\n"));
    assert_eq!(
        (p.line, p.key.as_str()),
        (5, "agent.shutdown-grace"),
        "{p:?}"
    );
    assert!(p.message.contains("soon"), "{p:?}");
}

/// The complete example of docs/agent.md reads; the only problems on a
/// machine without its files and variables are those it names.
#[test]
fn the_documented_example_reads() {
    let doc = include_str!("../../../../docs/agent.md");
    let start = doc
        .find("```toml\n")
        .unwrap_or_else(|| panic!("docs/agent.md has no toml example"));
    let rest = &doc[start + 8..];
    let example = &rest[..rest.find("```").unwrap_or(rest.len())];
    for p in problems(example) {
        assert!(
            p.message.starts_with("cannot read /etc/cairn/")
                || p.message.contains("CAIRN_LOCAL_PASSWORD is not set"),
            "{p:#?}"
        );
    }
}

#[test]
fn file_selection_keys_read_and_are_checked() {
    let ok = format!(
        "{REPO}
[jobs.home]
every = \"1h\"
source = {{ type = \"files\", paths = [\"/srv\"], excludes = [\"*.tmp\", \"!keep.tmp\"], iexcludes = [\"thumbs.db\"], exclude-if-present = [\".nobackup\"], exclude-caches = true, one-file-system = true, xattrs = false }}
"
    );
    assert!(problems(&ok).is_empty(), "{:#?}", problems(&ok));
    let p = problems(&format!(
        "{REPO}
[jobs.home]
every = \"1h\"
source = {{ type = \"files\", paths = [\"/srv\"], exclude-files = [\"/nonexistent/list\"], exclude-if-present = [\"a/b\"] }}
"
    ));
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "jobs.home.source.exclude-files",
            "jobs.home.source.exclude-if-present"
        ],
        "{p:#?}"
    );
}
