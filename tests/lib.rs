//! Fixtures for the end-to-end tests: a throwaway repository and a way to run
//! the real `cairn` binary against it.
//!
//! The binary is built once per test run (`cargo build -p cairn-agent` in the
//! same profile as the tests), so a test never runs a stale `cairn`.

mod daemon;
mod kube;
mod net;
pub use daemon::{http_get, Agent};
pub use kube::{kube_bin, KubeServer};
pub use net::{FaultyProxy, NetFaults, NET_WINDOW};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The `cairn` binary of this profile, built if needed.
pub fn cairn_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CAIRN_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/it-<hash> → target/<profile>/cairn
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "cairn-agent", "--bin", "cairn"]);
        if release {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("running cargo build for the cairn binary");
        assert!(status.success(), "building the cairn binary failed");
        let bin = profile_dir.join("cairn");
        assert!(bin.exists(), "cairn binary not found at {}", bin.display());
        bin
    })
    .clone()
}

/// A temporary directory with a repository address and a passphrase.
#[derive(Debug)]
pub struct Repo {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The repository address: a path, or `s3:BUCKET/PREFIX` (not created until `init`).
    pub path: PathBuf,
    /// The passphrase used by [`Repo::cairn`].
    pub pass: String,
    /// Extra environment for every `cairn` run (S3 endpoint and credentials).
    pub env: Vec<(String, String)>,
    /// The catalog every `cairn` run uses (in the temp dir; change it to
    /// act as another machine).
    pub catalog: PathBuf,
}

impl Default for Repo {
    fn default() -> Self {
        Self::new()
    }
}

impl Repo {
    /// A fresh directory; the repository is not initialised.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repo");
        let catalog = dir.path().join("catalog.sqlite");
        Repo {
            dir,
            path,
            catalog,
            pass: "correct horse battery staple".into(),
            env: Vec::new(),
        }
    }

    /// A fresh repository address on the test S3 server (not initialised).
    pub fn new_s3() -> Self {
        let s3 = s3_server();
        let mut r = Self::new();
        r.path = PathBuf::from(format!(
            "s3:{}/t-{}",
            s3.bucket,
            hex::encode(rand::random::<[u8; 8]>())
        ));
        r.env = vec![
            ("AWS_ENDPOINT_URL_S3".into(), s3.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), s3.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), s3.secret_key.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ];
        r
    }

    /// A fresh, initialised repository.
    pub fn init() -> Self {
        let r = Self::new();
        r.ok(&["init"]);
        r
    }

    /// A scratch path inside the temp dir.
    pub fn tmp(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `cairn` with this repository and passphrase in the environment, and
    /// nothing else from ours that could change its behaviour.
    pub fn cairn(&self) -> Command {
        let mut c = Command::new(cairn_bin());
        for v in [
            "CAIRN_PASSWORD_FILE",
            "CAIRN_NEW_PASSWORD",
            "CAIRN_NEW_PASSWORD_FILE",
            "CAIRN_LOG_REQUESTS",
        ] {
            c.env_remove(v);
        }
        c.env("CAIRN_REPOSITORY", &self.path)
            .env("CAIRN_PASSWORD", &self.pass)
            .env("CAIRN_CATALOG", &self.catalog);
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    /// Runs `cairn ARGS` with `stdin` as input.
    pub fn run_with(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_cmd(self.cairn().args(args), stdin)
    }

    /// Runs `cairn ARGS` with empty input.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, b"")
    }

    /// Runs `cairn ARGS`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert_success(&out, args);
        out.stdout
    }

    /// Runs `cairn ARGS` with input, asserts success, returns stdout.
    pub fn ok_with(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run_with(args, stdin);
        assert_success(&out, args);
        out.stdout
    }

    /// `cairn backup --json ...` with input; returns the parsed summary.
    pub fn backup_json(&self, args: &[&str], stdin: &[u8]) -> serde_json::Value {
        // `--json` goes before a command's `--`, after a subcommand's arguments.
        let mut a = vec!["backup"];
        match args.iter().position(|a| *a == "--") {
            Some(i) => {
                a.extend_from_slice(&args[..i]);
                a.push("--json");
                a.extend_from_slice(&args[i..]);
            }
            None => {
                a.extend_from_slice(args);
                a.push("--json");
            }
        }
        let out = self.ok_with(&a, stdin);
        serde_json::from_slice(&out).expect("backup --json prints JSON")
    }

    /// The committed snapshots as `cairn snapshots --json` lists them.
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        serde_json::from_slice(&self.ok(&["snapshots", "--json"])).expect("snapshots --json")
    }

    /// Total bytes of all objects in the repository.
    pub fn size(&self) -> u64 {
        files_under(&self.path)
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// All pack files.
    pub fn packs(&self) -> Vec<PathBuf> {
        files_under(&self.path.join("packs"))
    }
}

/// Starts `cairn backup --stdin` (prepared in `c`), feeds it `data` and
/// keeps its input open, waits until it holds a spool file open under
/// `spool_dir` (a `.tmp-…` file, or an unnamed one, which `/proc` shows as
/// `#N (deleted)`), then kills it with SIGKILL, as the OOM killer or a
/// drained node would. Panics if no spool file shows up within 30 s.
pub fn kill_while_spooling(c: &mut Command, data: &[u8], spool_dir: &Path) {
    let mut child = c
        .args(["backup", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn");
    let mut input = child.stdin.take().expect("stdin pipe");
    input.write_all(data).expect("feed cairn");
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let spooling = || {
        std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_link(e.path()).is_ok_and(|target| {
                    let name = target.file_name().unwrap_or_default().to_string_lossy();
                    target.starts_with(spool_dir)
                        && (name.starts_with(".tmp-") || name.ends_with(" (deleted)"))
                })
            })
    };
    while !spooling() {
        assert!(
            std::time::Instant::now() < deadline,
            "cairn never opened a spool file under {}",
            spool_dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill cairn");
    child.wait().expect("reap cairn");
    drop(input);
}

/// Runs a prepared command with `stdin` fed in.
pub fn run_cmd(c: &mut Command, stdin: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn");
    let mut input = child.stdin.take().expect("stdin pipe");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // cairn may stop reading early (it failed): that is not our error.
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for cairn");
    let _ = feeder.join();
    out
}

/// Panics with cairn's stderr unless it succeeded.
pub fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "cairn {args:?} failed with {:?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every regular file below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Every regular file below `dir` with its bytes, by path relative to `dir`.
pub fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).expect("read a listed file");
            (p.strip_prefix(dir).unwrap_or(&p).to_path_buf(), data)
        })
        .collect()
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// A text SQL dump (pg_dump plain format shape) of roughly `len` bytes.
pub fn sql_dump(len: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = b"--\n-- PostgreSQL database dump\n--\n\nCOPY public.orders (id, customer, status, amount, created_at, note) FROM stdin;\n".to_vec();
    let statuses = ["paid", "open", "refunded", "shipped"];
    let mut id = 0u64;
    while out.len() < len {
        id += 1;
        let line = format!(
            "{id}\tcustomer-{}\t{}\t{}.{:02}\t2026-{:02}-{:02} {:02}:{:02}:{:02}+00\tnote {}\n",
            rng.gen_range(1..50_000),
            statuses[rng.gen_range(0..4)],
            rng.gen_range(1..10_000),
            rng.gen_range(0..100),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
            rng.gen_range(0..24),
            rng.gen_range(0..60),
            rng.gen_range(0..60),
            rng.gen_range(0..1_000_000)
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(b"\\.\n");
    out
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A SeaweedFS S3 server on 127.0.0.1, one per test process, in a
/// throwaway directory. A watchdog shell stops it and deletes its data when
/// the test process exits.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket created at start.
    pub bucket: String,
    /// A second bucket created at start (the target of copies).
    pub second_bucket: String,
    /// Access key.
    pub access_key: String,
    /// Secret key. A second identity may only read and list: its keys are
    /// these two with `-ro` appended.
    pub secret_key: String,
}

/// The SeaweedFS binary: `$CAIRN_WEED`, or where scripts/install-seaweedfs.sh puts it.
pub fn weed_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_WEED") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/cairn/seaweedfs-4.48/bin/weed")
}

fn port_free(p: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
}

/// The HTTP status of `GET path` on 127.0.0.1:`port`, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n")
            .as_bytes(),
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// Starts `script` (a shell script) in a watchdog that runs `cleanup` and
/// removes `dir` once this test process has exited. Double fork: the
/// watchdog is reparented to init and outlives us.
pub fn with_watchdog(script: &str, cleanup: &str, dir: &Path) {
    let d = dir.display();
    let watchdog = format!(
        "{script} > {d}/server.out 2>&1 & w=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done; \
         {cleanup}; kill $w 2>/dev/null; wait $w; rm -rf {d}",
        me = std::process::id()
    );
    let started = Command::new("sh")
        .arg("-c")
        .arg(format!("( {watchdog} ) </dev/null >/dev/null 2>&1 &"))
        .status()
        .expect("start a test server");
    assert!(started.success(), "could not start the watchdog");
}

/// A TCP port on loopback that nothing listens on right now.
pub fn free_port() -> u16 {
    for _ in 0..500 {
        let p = 30_000 + rand::random::<u16>() % 20_000;
        if port_free(p) {
            return p;
        }
    }
    panic!("no free port");
}

fn wait_for(what: &str, dir: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start; its output:\n{}",
            std::fs::read_to_string(dir.join("server.out")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql-15).
/// Local socket connections are trusted; TCP needs a password (scram), so
/// tests can check authentication failures.
#[derive(Debug)]
pub struct PgServer {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The socket directory (trusted, for setup).
    pub socket_dir: PathBuf,
    /// Superuser name.
    pub user: String,
    /// Superuser password for TCP connections.
    pub password: String,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl PgServer {
    /// Starts a new cluster (each call is its own server).
    ///
    /// # Panics
    /// If PostgreSQL is not installed or does not start: tests never skip.
    pub fn start() -> PgServer {
        assert!(
            Path::new(PG_BIN).join("initdb").exists(),
            "PostgreSQL 15 is not installed ({PG_BIN}): run `bash .ci/run`, or apt-get install postgresql-15"
        );
        let dir = tempfile::Builder::new()
            .prefix("cairn-pg-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let as_pg = |cmd: &str| {
            if is_root() {
                format!("runuser -u postgres -- {cmd}")
            } else {
                cmd.to_owned()
            }
        };
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres", dir.to_str().unwrap_or("")])
                .status()
                .expect("chown");
            assert!(st.success());
        }
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, "pg-test-password\n").expect("pwfile");
        let d = dir.display();
        let init = Command::new("sh")
            .arg("-c")
            .arg(as_pg(&format!("{PG_BIN}/initdb -D {d}/data -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile={d}/pw")))
            .output()
            .expect("initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = free_port();
        let run = as_pg(&format!("{PG_BIN}/postgres -D {d}/data -c listen_addresses=127.0.0.1 -p {port} -k {d} -c fsync=off -c full_page_writes=off"));
        let stop = as_pg(&format!("{PG_BIN}/pg_ctl -D {d}/data -m immediate stop"));
        with_watchdog(&run, &stop, &dir);
        wait_for("PostgreSQL", &dir, || {
            Command::new(format!("{PG_BIN}/pg_isready"))
                .args(["-h", &d.to_string(), "-p", &port.to_string()])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        PgServer {
            port,
            socket_dir: dir,
            user: "postgres".into(),
            password: "pg-test-password".into(),
        }
    }

    /// Runs SQL over the trusted socket as the superuser; returns the output (unaligned, tuples only).
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = self
            .psql(db)
            .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `psql` connected to `db` over the trusted socket as the superuser;
    /// add the rest of the arguments.
    pub fn psql(&self, db: &str) -> Command {
        let mut c = Command::new("psql");
        c.args(["--no-psqlrc", "-q", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", &self.user, "-d", db]);
        c
    }

    /// Environment for cairn to reach this server over TCP with the password.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("PGPASSWORD".into(), self.password.clone())]
    }

    /// `--host 127.0.0.1 --port P --username U` as cairn arguments.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            self.port.to_string(),
            "--username".into(),
            self.user.clone(),
        ]
    }

    /// Stops the server at once (as if it crashed).
    pub fn stop_now(&self) {
        let d = self.socket_dir.display();
        let cmd = format!("{PG_BIN}/pg_ctl -D {d}/data -m immediate stop");
        let cmd = if is_root() {
            format!("runuser -u postgres -- {cmd}")
        } else {
            cmd
        };
        let _ = Command::new("sh").arg("-c").arg(cmd).output();
    }
}

/// A throwaway Redis server on 127.0.0.1 (Debian's redis-server).
#[derive(Debug)]
pub struct RedisServer {
    /// TCP port.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    /// The CA certificate of a server that speaks only TLS.
    pub tls_ca: Option<PathBuf>,
}

impl RedisServer {
    /// Starts a server as Debian ships it (the built-in defaults: diskless
    /// replication with a 5 s delay, RDB saves on) on 127.0.0.1, with
    /// `extra` arguments (e.g. `--dbfilename x.rdb`; a later `--bind`
    /// replaces ours).
    ///
    /// # Panics
    /// If redis-server is not installed or does not start.
    pub fn start(extra: &str) -> RedisServer {
        Self::launch(extra, false)
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1 and
    /// localhost from a throwaway CA ([`RedisServer::tls_ca`]).
    ///
    /// # Panics
    /// If openssl or redis-server is missing or the server does not start.
    pub fn start_tls(extra: &str) -> RedisServer {
        Self::launch(extra, true)
    }

    fn launch(extra: &str, tls: bool) -> RedisServer {
        let found = Command::new("redis-server")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "redis-server is not installed: run `bash .ci/run`, or apt-get install redis-server"
        );
        let dir = tempfile::Builder::new()
            .prefix("cairn-redis-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let port = free_port();
        let d = dir.display();
        let (listen, tls_ca) = if tls {
            make_certificates(&dir);
            (
                format!(
                    "--port 0 --tls-port {port} --tls-cert-file {d}/server.crt --tls-key-file {d}/server.key --tls-ca-cert-file {d}/ca.crt --tls-auth-clients no"
                ),
                Some(dir.join("ca.crt")),
            )
        } else {
            (format!("--port {port}"), None)
        };
        let run = format!("redis-server --bind 127.0.0.1 {listen} --dir {d} {extra}");
        with_watchdog(&run, "true", &dir);
        let r = RedisServer { port, dir, tls_ca };
        // A server with a password answers NOAUTH: it is up all the same.
        wait_for("Redis", &r.dir, || {
            r.cli(&["PING"])
                .is_some_and(|o| o == "PONG" || o.contains("NOAUTH"))
        });
        r
    }

    /// `redis-cli` for this server (TLS options included).
    pub fn cli_command(&self) -> Command {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(ca) = &self.tls_ca {
            c.arg("--tls").arg("--cacert").arg(ca);
        }
        c
    }

    /// Runs redis-cli with `args`; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = self.cli_command().args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost, in
/// `dir` (`ca.crt`, `server.crt`, `server.key`).
fn make_certificates(dir: &Path) {
    let d = dir.display();
    let script = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=cairn-test-ca; \
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost; \
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext; \
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext"
    );
    let out = Command::new("sh").arg("-c").arg(script).output().expect(
        "openssl is needed for the TLS tests: run `bash .ci/run`, or apt-get install openssl",
    );
    assert!(
        out.status.success(),
        "making test certificates: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test process's S3 server, started on first use.
///
/// # Panics
/// If SeaweedFS is not installed or does not start: S3 tests never skip.
pub fn s3_server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let weed = weed_bin();
        assert!(
            weed.exists(),
            "SeaweedFS (the S3 test server) is not installed at {}: run `bash scripts/install-seaweedfs.sh` (or `bash .ci/run`), or set CAIRN_WEED",
            weed.display()
        );
        let dir = tempfile::Builder::new().prefix("cairn-s3-").tempdir().expect("tempdir").keep();
        std::fs::create_dir_all(dir.join("data")).expect("data dir");
        std::fs::create_dir_all(dir.join("logs")).expect("logs dir");
        let (ak, sk) = ("cairn-test-access", "cairn-test-secret-key");
        let creds = format!(
            r#"{{"identities":[{{"name":"ci","credentials":[{{"accessKey":"{ak}","secretKey":"{sk}"}}],"actions":["Admin","Read","Write","List","Tagging"]}},{{"name":"reader","credentials":[{{"accessKey":"{ak}-ro","secretKey":"{sk}-ro"}}],"actions":["Read","List"]}}]}}"#
        );
        std::fs::write(dir.join("s3.json"), creds).expect("s3.json");
        // Ten consecutive free ports on loopback.
        let mut base = 0u16;
        for _ in 0..200 {
            let b = 20_000 + 10 * (rand::random::<u16>() % 900);
            if (b..b + 10).all(port_free) {
                base = b;
                break;
            }
        }
        assert!(base != 0, "no free ports for the S3 test server");
        let d = dir.display();
        let args = format!(
            "-logdir={d}/logs mini -dir={d}/data -ip=127.0.0.1 -ip.bind=127.0.0.1 \
             -master.port={} -master.port.grpc={} -volume.port={} -volume.port.grpc={} \
             -filer.port={} -filer.port.grpc={} -s3.port={} -s3.port.grpc={} -admin.port={} -admin.port.grpc={} \
             -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
             -s3.config={d}/s3.json -bucket=cairn,cairn-dr -s3.localSocket={d}/s3.sock -filer.localSocket={d}/filer.sock",
            base,
            base + 1,
            base + 2,
            base + 3,
            base + 4,
            base + 5,
            base + 6,
            base + 7,
            base + 8,
            base + 9
        );
        with_watchdog(&format!("{} {args}", weed.display()), "true", &dir);
        let port = base + 6;
        // Ready: the S3 gateway answers (403 to anonymous requests) and the
        // filer holds the bucket, which is created a moment after start.
        wait_for("SeaweedFS", &dir, || {
            http_status(port, "/") == Some(403)
                && ["cairn", "cairn-dr"]
                    .iter()
                    .all(|b| http_status(base + 4, &format!("/buckets/{b}/")) == Some(200))
        });
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "cairn".into(),
            second_bucket: "cairn-dr".into(),
            access_key: ak.into(),
            secret_key: sk.into(),
        }
    })
}

/// A throwaway MariaDB server (Debian's mariadb-server), reached through its
/// socket as root: the server behind the documented mysqldump example.
#[derive(Debug)]
pub struct MariaDbServer {
    /// Its directory (socket at `sock`).
    pub dir: PathBuf,
}

impl MariaDbServer {
    /// Starts a new server.
    ///
    /// # Panics
    /// If MariaDB is not installed or does not start.
    pub fn start() -> MariaDbServer {
        let found = Command::new("mariadb-install-db")
            .arg("--help")
            .output()
            .is_ok();
        assert!(
            found,
            "MariaDB is not installed: run `bash .ci/run`, or apt-get install mariadb-server"
        );
        let dir = tempfile::Builder::new()
            .prefix("cairn-mariadb-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let d = dir.display();
        let user = if is_root() {
            "root".to_owned()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        let init = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                &format!("--datadir={d}/data"),
                &format!("--user={user}"),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .output()
            .expect("mariadb-install-db");
        assert!(
            init.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = free_port();
        let run = format!(
            "mariadbd --no-defaults --datadir={d}/data --socket={d}/sock --port={port} --bind-address=127.0.0.1 --user={user} --skip-log-bin --pid-file={d}/pid"
        );
        with_watchdog(&run, "true", &dir);
        let db = MariaDbServer { dir };
        wait_for("MariaDB", &db.dir, || db.try_sql("select 1").is_some());
        db
    }

    /// `--socket=…` for the clients.
    pub fn socket_arg(&self) -> String {
        format!("--socket={}/sock", self.dir.display())
    }

    fn try_sql(&self, sql: &str) -> Option<String> {
        let out = Command::new("mariadb")
            .args([
                "--no-defaults",
                "-uroot",
                &self.socket_arg(),
                "-N",
                "-B",
                "-e",
                sql,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs SQL as root; returns the output (tab-separated, no headers).
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|| panic!("mariadb: {sql} failed"))
    }
}
