//! The agent's metrics and the shipped alerting rules, with Debian's
//! Prometheus and promtool: the exposition lints clean, the rules pass
//! their unit tests, and a real Prometheus scraping a real agent sees the
//! failed-job alert fire when PostgreSQL goes down.

use crate::databases::make_database;
use cairn_e2e::{free_port, http_get, Agent, PgServer, Repo};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

fn promtool(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut c = Command::new("promtool");
    c.args(args)
        .current_dir(rules_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .expect("promtool is not installed: run `bash .ci/run`, or apt-get install prometheus");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default())
        .expect("promtool's input");
    drop(input);
    child.wait_with_output().expect("promtool")
}

#[test]
fn shipped_alert_rules_pass_promtool() {
    let o = promtool(&["check", "rules", "cairn-rules.yaml"], None);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = promtool(&["test", "rules", "cairn-rules.test.yaml"], None);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A Prometheus server, stopped when dropped.
pub(crate) struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` every second and evaluates the shipped rules every
    /// second.
    pub(crate) fn start(dir: &Path, target: u16) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: cairn\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n",
                rules_dir().join("cairn-rules.yaml").display()
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect(
                "prometheus is not installed: run `bash .ci/run`, or apt-get install prometheus",
            );
        let p = Prometheus { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while http_get(port, "/-/ready").0 != 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus did not start: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// Waits (90 s at most) until alert `name` fires with the label
    /// `label.0` equal to `label.1`.
    ///
    /// # Panics
    /// If it does not, with the alerts and the agent's log.
    pub(crate) fn wait_for_alert(&self, name: &str, label: (&str, &str), agent: &Agent) {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let v = self.api("/api/v1/alerts");
            let firing = v["data"]["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    x["labels"]["alertname"] == name
                        && x["labels"][label.0] == label.1
                        && x["state"] == "firing"
                })
            });
            if firing {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never fired: {v}\nthe agent's log:\n{}",
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub(crate) fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_get(self.port, path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("Prometheus answers JSON")
    }
}

#[test]
fn prometheus_scrapes_the_agent_and_sees_a_failed_job_fire() {
    let pg = PgServer::start();
    make_database(&pg, "shop");
    let r = Repo::init();
    let pass = r.tmp("pass");
    std::fs::write(&pass, &r.pass).unwrap();
    let config = format!(
        r#"[agent]
listen = "{{listen}}"
catalog = "{cat}"

[repository]
url = "{url}"
password-file = "{pass}"

[jobs.db]
source = {{ type = "pg", dbname = "shop", host = "127.0.0.1", port = {port}, username = "postgres" }}
every = "2s"
retention = {{ keep-last = 3 }}

[prune]
every = "1h"

[check]
every = "1h"
read-data = "next/7"
"#,
        cat = r.tmp("cat").display(),
        url = r.path.display(),
        pass = pass.display(),
        port = pg.port,
    );
    let agent = Agent::start(&r.dir.path().join("a"), &config, &pg.env());
    agent.wait_until("db succeeded", Duration::from_secs(60), |a| {
        a.metric("cairn_job_runs_total{job_name=\"db\",result=\"success\"}")
            .unwrap_or(0.0)
            >= 1.0
    });
    // The live exposition, with every family populated, lints clean.
    let (_, exposition) = agent.get("/metrics");
    let o = promtool(&["check", "metrics"], Some(exposition.as_bytes()));
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for family in [
        "cairn_job_last_success_timestamp_seconds{job_name=\"db\"}",
        "cairn_job_period_seconds{job_name=\"db\"}",
        "cairn_prune_period_seconds{repository=\"default\"}",
        "cairn_check_period_seconds{repository=\"default\"}",
        "cairn_repository_up{repository=\"default\"}",
    ] {
        assert!(
            agent.metric(family).is_some(),
            "{family} missing:\n{exposition}"
        );
    }

    let prom = Prometheus::start(r.dir.path(), agent.port);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = prom.api("/api/v1/query?query=cairn_job_last_result%7Bresult%3D%22success%22%7D");
        if v["data"]["result"][0]["value"][1] == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus never scraped the agent: {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    pg.stop_now();
    prom.wait_for_alert("CairnBackupJobFailed", ("job_name", "db"), &agent);
}
