//! The agent daemon as a test drives it: started with a configuration
//! file, asked over HTTP, signalled, and its JSON log lines read.

use crate::{cairn_bin, free_port};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `cairn agent`.
#[derive(Debug)]
pub struct Agent {
    child: Option<Child>,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its standard error (JSON log lines).
    pub log: PathBuf,
}

impl Agent {
    /// Writes `config` (in which `{listen}` becomes the agent's address)
    /// to `dir/agent.toml` and starts the agent with `env` added.
    ///
    /// # Panics
    /// If the agent cannot start or does not answer `/healthz` in 30 s.
    pub fn start(dir: &Path, config: &str, env: &[(String, String)]) -> Agent {
        let port = free_port();
        std::fs::create_dir_all(dir).expect("the agent's directory");
        let path = dir.join("agent.toml");
        std::fs::write(
            &path,
            config.replace("{listen}", &format!("127.0.0.1:{port}")),
        )
        .expect("write the agent's configuration");
        let log = dir.join(format!("agent-{port}.log"));
        let child = Command::new(cairn_bin())
            .args(["agent", "--config"])
            .arg(&path)
            .env_remove("CAIRN_PASSWORD")
            .env_remove("CAIRN_PASSWORD_FILE")
            .env_remove("CAIRN_REPOSITORY")
            .env("CAIRN_LOG_FORMAT", "json")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start cairn agent");
        let agent = Agent {
            child: Some(child),
            port,
            config: path,
            log,
        };
        agent.wait_until("the agent answers /healthz", Duration::from_secs(30), |a| {
            a.get("/healthz").0 == 200
        });
        agent
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `GET path`: the status and the body (status 0 if nothing answers).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }

    /// The value of the series `series` (`name{label="v",…}` exactly as
    /// exposed, or a bare name) in `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (status, body) = self.get("/metrics");
        if status != 200 {
            return None;
        }
        body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// Waits until `ready` holds, polling every 200 ms.
    ///
    /// # Panics
    /// After `limit`, with the agent's log.
    pub fn wait_until(&self, what: &str, limit: Duration, ready: impl Fn(&Agent) -> bool) {
        let deadline = Instant::now() + limit;
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {}s; the agent's log:\n{}",
                limit.as_secs(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends `signal` (`-TERM`, `-HUP`, …).
    pub fn signal(&self, signal: &str) {
        let st = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill {signal}");
    }

    /// Waits for the agent to exit; its status and how long that took.
    ///
    /// # Panics
    /// If it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                self.child = None;
                return (st, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "the agent did not exit within {}s; its log:\n{}",
                limit.as_secs(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its log lines, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The snapshots the log says job `job` saved (their short ids).
    pub fn saved(&self, job: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["span"]["job"] == job && e["snapshot"].is_string())
            .filter(|e| e["message"].as_str().is_some_and(|m| m.contains("saved")))
            .map(|e| e["snapshot"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `GET path` on 127.0.0.1:`port`: the status and the body (status 0 if
/// nothing answers).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, String::new());
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}
