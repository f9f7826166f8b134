//! Fixtures for the end-to-end tests: a throwaway repository and a way to run
//! the real `cairn` binary against it.
//!
//! The binary is built once per test run (`cargo build -p cairn-agent` in the
//! same profile as the tests), so a test never runs a stale `cairn`.

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

/// A temporary directory with a repository path and a passphrase.
#[derive(Debug)]
pub struct Repo {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The repository path (not created until `init`).
    pub path: PathBuf,
    /// The passphrase used by [`Repo::cairn`].
    pub pass: String,
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
        Repo {
            dir,
            path,
            pass: "correct horse battery staple".into(),
        }
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
        ] {
            c.env_remove(v);
        }
        c.env("CAIRN_REPOSITORY", &self.path)
            .env("CAIRN_PASSWORD", &self.pass);
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
        let mut a = vec!["backup", "--json"];
        a.extend_from_slice(args);
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
