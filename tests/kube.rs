//! A real Kubernetes API server for the tests: etcd (Debian's) and
//! kube-apiserver 1.20 (built from Debian's source package by
//! `scripts/build-kube.sh`, cached in target/kube/), on 127.0.0.1, with
//! RBAC on. No controller manager, scheduler or kubelet: the tests create
//! what those would (bound claims, pods on a node, their status) through
//! the API, and lay out the kubelet's directory themselves.

use crate::{free_port, with_watchdog};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The directory holding kube-apiserver and a matching kubectl, built if
/// needed (`CAIRN_KUBE_BIN` names a directory built before).
pub fn kube_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CAIRN_KUBE_BIN") {
            return PathBuf::from(p);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/build-kube.sh");
        let out = Command::new("bash")
            .arg(script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/build-kube.sh");
        assert!(
            out.status.success(),
            "scripts/build-kube.sh failed: the Kubernetes tests need kube-apiserver (run `bash .ci/run`, which builds it)"
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// A running API server with an administrator's kubeconfig.
#[derive(Debug)]
pub struct KubeServer {
    /// The server's `https://127.0.0.1:PORT`.
    pub url: String,
    /// Scratch directory (certificates, kubeconfigs).
    pub dir: PathBuf,
    /// The CA that signed the server's certificate (PEM file).
    pub ca: PathBuf,
    /// The administrator's kubeconfig.
    pub admin: PathBuf,
}

fn sh(script: &str, dir: &Path) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl KubeServer {
    /// Starts etcd and kube-apiserver; they stop when the test process
    /// exits.
    pub fn start() -> KubeServer {
        let bin = kube_bin();
        assert!(
            Command::new("etcd").arg("--version").output().is_ok(),
            "etcd is missing: run `bash .ci/run` (it installs etcd-server)"
        );
        let dir = tempfile::Builder::new()
            .prefix("cairn-kube-")
            .tempdir()
            .unwrap()
            .keep();
        // A CA, the server's certificate for 127.0.0.1, the service
        // account signing key.
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
               -keyout ca.key -out ca.crt 2>/dev/null
             openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
               -keyout server.key -out server.csr 2>/dev/null
             printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext
             openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
               -days 2 -extfile san.ext -out server.crt 2>/dev/null
             openssl genrsa -out sa.key 2048 2>/dev/null
             openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
             echo 'admin-token,admin,admin,system:masters' > tokens.csv",
            &dir,
        );
        let (etcd_port, peer_port, port) = (free_port(), free_port(), free_port());
        let d = dir.display();
        let script = format!(
            "etcd --name test --data-dir {d}/etcd \
               --listen-client-urls http://127.0.0.1:{etcd_port} \
               --advertise-client-urls http://127.0.0.1:{etcd_port} \
               --listen-peer-urls http://127.0.0.1:{peer_port} \
               --initial-advertise-peer-urls http://127.0.0.1:{peer_port} \
               --initial-cluster test=http://127.0.0.1:{peer_port} > {d}/etcd.out 2>&1 & \
             {apiserver} --etcd-servers=http://127.0.0.1:{etcd_port} \
               --bind-address=127.0.0.1 --secure-port={port} --insecure-port=0 \
               --tls-cert-file={d}/server.crt --tls-private-key-file={d}/server.key \
               --client-ca-file={d}/ca.crt \
               --token-auth-file={d}/tokens.csv --authorization-mode=Node,RBAC \
               --service-account-issuer=https://kubernetes.default.svc \
               --service-account-key-file={d}/sa.pub \
               --service-account-signing-key-file={d}/sa.key \
               --api-audiences=https://kubernetes.default.svc \
               --service-cluster-ip-range=10.96.0.0/16 --advertise-address=127.0.0.1",
            apiserver = bin.join("kube-apiserver").display(),
        );
        with_watchdog(
            &format!("{{ {script}; }}"),
            "pkill -f 'data-dir {d}/etcd'",
            &dir,
        );
        let url = format!("https://127.0.0.1:{port}");
        let server = KubeServer {
            admin: dir.join("admin.kubeconfig"),
            ca: dir.join("ca.crt"),
            url,
            dir,
        };
        server.write_kubeconfig(&server.admin, "admin-token");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = server.kubectl(&["get", "--raw", "/readyz"], None);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver did not become ready: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(server.dir.join("server.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        server
    }

    /// Writes a kubeconfig for this server that authenticates with
    /// `token`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) {
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             users:\n- name: user\n  user:\n    token: {token}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: user\ncurrent-context: test\n",
            self.url,
            self.ca.display()
        );
        std::fs::write(path, config).unwrap();
    }

    /// kubectl as the administrator, or with `kubeconfig`.
    pub fn kubectl(&self, args: &[&str], kubeconfig: Option<&Path>) -> Output {
        Command::new(kube_bin().join("kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig.unwrap_or(&self.admin))
            .args(args)
            .output()
            .unwrap()
    }

    /// kubectl as the administrator, which must succeed; its output.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = self.kubectl(args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Applies YAML as the administrator.
    pub fn apply(&self, yaml: &str) -> String {
        let file = self
            .dir
            .join(format!("apply-{}.yaml", rand::random::<u32>()));
        std::fs::write(&file, yaml).unwrap();
        self.admin(&["apply", "-f", file.to_str().unwrap()])
    }

    /// A token of service account `namespace/name` (the TokenRequest API:
    /// no controller manager needed), valid for an hour.
    pub fn token(&self, namespace: &str, name: &str) -> String {
        let req = self.dir.join("token-request.json");
        std::fs::write(
            &req,
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}"#,
        )
        .unwrap();
        let out = self.admin(&[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"),
            "-f",
            req.to_str().unwrap(),
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["status"]["token"].as_str().unwrap().to_owned()
    }

    /// Sets a pod's phase to Running, as its kubelet would.
    pub fn set_running(&self, namespace: &str, pod: &str) {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--cacert"])
            .arg(&self.ca)
            .args([
                "-H",
                "Authorization: Bearer admin-token",
                "-H",
                "Content-Type: application/merge-patch+json",
                "-X",
                "PATCH",
                "--data",
                r#"{"status":{"phase":"Running"}}"#,
            ])
            .arg(format!(
                "{}/api/v1/namespaces/{namespace}/pods/{pod}/status",
                self.url
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "patching {namespace}/{pod}'s status: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
