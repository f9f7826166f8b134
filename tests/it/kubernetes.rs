//! Kubernetes (#20) against a real API server (kube-apiserver 1.20 and
//! etcd, started here on 127.0.0.1): the chart renders and applies; the
//! DaemonSet's agent, with its service account's token and the chart's
//! RBAC, finds the annotated claims of its node's pods, backs each up from
//! the directory the kubelet would mount it in, and nothing else; a
//! restore gives the volume back byte for byte; the API server refuses the
//! agent anything outside its role.

use cairn_e2e::{assert_success, listing, random_bytes, KubeServer, Repo};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The command `scripts/NAME` installs (it prints its path).
fn installed(name: &str) -> PathBuf {
    let script = format!("{}/../scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn helm() -> PathBuf {
    installed("install-helm.sh")
}

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/helm/cairn");

/// `helm template` of the chart in namespace `cairn`, with `sets`.
fn render(sets: &[&str]) -> String {
    let mut c = Command::new(helm());
    c.args(["template", "cairn", CHART, "--namespace", "cairn"]);
    for s in sets {
        c.args(["--set", s]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The documents of `kind` in a rendered stream.
fn documents<'a>(yaml: &'a str, kind: &str) -> Vec<&'a str> {
    yaml.split("\n---")
        .filter(|d| d.contains(&format!("\nkind: {kind}\n")))
        .collect()
}

/// deploy/examples/*.yaml.
fn examples() -> Vec<PathBuf> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

/// The agent's configuration file a rendered ConfigMap holds.
fn agent_toml(config_map: &str) -> String {
    config_map
        .split("agent.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pod bound to `node`, with claims for `volumes` (name, claim) and a
/// ConfigMap volume; annotated when `annotation` is given.
fn pod(
    ns: &str,
    name: &str,
    node: &str,
    annotation: Option<&str>,
    volumes: &[(&str, &str)],
) -> String {
    let annotations = annotation.map_or(String::new(), |a| {
        format!("  annotations:\n    backup.cairn.io/volumes: \"{a}\"\n")
    });
    let mut vols = String::from("  - name: config\n    configMap:\n      name: settings\n");
    for (v, claim) in volumes {
        vols.push_str(&format!(
            "  - name: {v}\n    persistentVolumeClaim:\n      claimName: {claim}\n"
        ));
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotations}\
         spec:\n  nodeName: {node}\n  automountServiceAccountToken: false\n  containers:\n  - name: main\n    image: example.invalid/app:1\n\
         volumes:\n{vols}"
    )
    .replace("volumes:\n", "  volumes:\n")
}

/// A claim bound to volume `pv`.
fn claim(ns: &str, name: &str, pv: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n  volumeName: {pv}\n"
    )
}

/// Lays out a volume's directory as the kubelet does for pod `uid`, with
/// some content; returns it.
fn volume_dir(kubelet: &Path, uid: &str, plugin: &str, pv: &str, seed: u64) -> PathBuf {
    let mut dir = kubelet.join(format!("pods/{uid}/volumes/{plugin}/{pv}"));
    if plugin.ends_with("~csi") {
        dir = dir.join("mount");
    }
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("top.txt"), format!("volume {pv}\n")).unwrap();
    std::fs::write(dir.join("sub/data.bin"), random_bytes(400_000, seed)).unwrap();
    std::fs::write(dir.join("sub/deeper/small"), b"x").unwrap();
    std::fs::create_dir_all(dir.join("lost+found")).unwrap();
    std::fs::write(dir.join("lost+found/junk"), b"left out by the chart").unwrap();
    dir
}

fn uid(kube: &KubeServer, ns: &str, pod: &str) -> String {
    kube.admin(&[
        "get",
        "pod",
        "-n",
        ns,
        pod,
        "-o",
        "jsonpath={.metadata.uid}",
    ])
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_daemonset_agent_backs_up_the_annotated_claims_of_its_node() {
    let kube = KubeServer::start();
    let repo = Repo::init();
    let work = tempfile::tempdir().unwrap();
    let kubelet = work.path().join("kubelet");

    // The chart: lint and render, then apply it (a real apply for the
    // service account and its RBAC, a server-side dry run for the rest:
    // no image can run here).
    let lint = Command::new(helm())
        .args(["lint", CHART, "--set", "repository.url=s3:backups/cairn"])
        .output()
        .unwrap();
    assert!(lint.status.success(), "helm lint: {}", text(&lint));
    let rendered = render(&["repository.url=s3:backups/cairn"]);
    kube.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cairn\n");
    let all = work.path().join("chart.yaml");
    std::fs::write(&all, &rendered).unwrap();
    kube.admin(&["apply", "--dry-run=server", "-f", all.to_str().unwrap()]);
    let mut rbac = documents(&rendered, "ServiceAccount");
    rbac.extend(documents(&rendered, "ClusterRole"));
    rbac.extend(documents(&rendered, "ClusterRoleBinding"));
    assert_eq!(rbac.len(), 3, "{rendered}");
    kube.apply(&rbac.join("\n---\n"));

    // The agent's own credentials: its service account's token.
    let agent_config = work.path().join("agent.kubeconfig");
    kube.write_kubeconfig(&agent_config, &kube.token("cairn", "cairn"));

    // Two namespaces; pods on node-a and node-b.
    for ns in ["shop", "blog"] {
        // With the service account the controller manager would make.
        kube.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n\
             apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {ns}\n"
        ));
    }
    // Every example applies to the real server (a server-side dry run;
    // 1.20 knows CronJob as batch/v1beta1 only, with the same fields).
    for example in examples() {
        let yaml = std::fs::read_to_string(&example).unwrap().replace(
            "apiVersion: batch/v1\nkind: CronJob",
            "apiVersion: batch/v1beta1\nkind: CronJob",
        );
        let file = work.path().join("example.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = kube.kubectl(
            &["apply", "--dry-run=server", "-f", file.to_str().unwrap()],
            None,
        );
        assert!(
            out.status.success(),
            "{}: {}",
            example.display(),
            text(&out)
        );
    }
    kube.apply(
        &[
            claim("shop", "data-pg-0", "pv-data"),
            claim("shop", "wal-pg-0", "pv-wal"),
            claim("shop", "scratch-pg-0", "pv-scratch"),
            claim("blog", "uploads", "pv-uploads"),
            claim("shop", "data-pg-1", "pv-data-1"),
            pod(
                "shop",
                "pg-0",
                "node-a",
                Some("data, wal"),
                &[
                    ("data", "data-pg-0"),
                    ("wal", "wal-pg-0"),
                    ("scratch", "scratch-pg-0"),
                ],
            ),
            pod("blog", "web", "node-a", None, &[("uploads", "uploads")]),
            pod(
                "shop",
                "pg-1",
                "node-b",
                Some("*"),
                &[("data", "data-pg-1")],
            ),
        ]
        .join("\n---\n"),
    );
    for (ns, p) in [("shop", "pg-0"), ("blog", "web"), ("shop", "pg-1")] {
        kube.set_running(ns, p);
    }
    let pg0 = uid(&kube, "shop", "pg-0");
    let data = volume_dir(&kubelet, &pg0, "kubernetes.io~csi", "pv-data", 1);
    let wal = volume_dir(&kubelet, &pg0, "kubernetes.io~local-volume", "pv-wal", 2);
    volume_dir(&kubelet, &pg0, "kubernetes.io~csi", "pv-scratch", 3);
    // What the agent must never read: the pod's token, the unannotated
    // pod's claim, the other node's pod.
    let token = kubelet.join(format!(
        "pods/{pg0}/volumes/kubernetes.io~secret/default-token"
    ));
    std::fs::create_dir_all(&token).unwrap();
    std::fs::write(token.join("token"), b"secret-token-value").unwrap();
    let web = uid(&kube, "blog", "web");
    volume_dir(&kubelet, &web, "kubernetes.io~csi", "pv-uploads", 4);
    let pg1 = uid(&kube, "shop", "pg-1");
    volume_dir(&kubelet, &pg1, "kubernetes.io~csi", "pv-data-1", 5);

    // The agent's configuration is the chart's, with this repository and
    // kubelet directory.
    let toml = agent_toml(documents(&rendered, "ConfigMap")[0]);
    let password = work.path().join("password");
    std::fs::write(&password, &repo.pass).unwrap();
    let toml = toml
        .replace(
            "url = \"s3:backups/cairn\"",
            &format!("url = {:?}", repo.path.display().to_string()),
        )
        .replace(
            "password-file = \"/etc/cairn/repository/password\"",
            &format!("password-file = {:?}", password.display().to_string()),
        )
        .replace(
            "kubelet-dir = \"/var/lib/kubelet\"",
            &format!("kubelet-dir = {:?}", kubelet.display().to_string()),
        )
        .replace(
            "catalog = \"/var/cache/cairn\"",
            &format!(
                "catalog = {:?}",
                work.path().join("catalog").display().to_string()
            ),
        );
    // The chart's retries, without its minute of backoff.
    let toml = toml.replace("retries = 2", "retries = 2\nretry-backoff = \"1s\"");
    assert!(toml.contains("retry-backoff"), "{toml}");
    let config = work.path().join("agent.toml");
    std::fs::write(&config, &toml).unwrap();
    let agent_command = |node: &str| {
        let mut c = repo.cairn();
        c.args([
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--run",
            "volumes",
        ])
        .env("KUBECONFIG", &agent_config)
        .env("CAIRN_HOST", node);
        c
    };
    let agent = |node: &str| agent_command(node).output().unwrap();

    let out = agent("node-a");
    assert_success(&out, &["agent", "--run", "volumes"]);
    let said = text(&out);
    assert!(said.contains("shop/data-pg-0"), "{said}");
    assert!(said.contains("shop/wal-pg-0"), "{said}");
    let snaps = repo.snapshots();
    assert_eq!(
        snaps.len(),
        2,
        "one snapshot per annotated claim: {snaps:?}"
    );
    for s in &snaps {
        assert_eq!(s["host"], "node-a");
        assert_eq!(s["source"]["type"], "pvc");
        assert_eq!(s["source"]["namespace"], "shop");
        assert_eq!(s["source"]["pod"], "pg-0");
    }

    // Byte-exact restores, found by claim; lost+found left out by the
    // chart's excludes; nothing else in the repository.
    for (claim_name, dir) in [("data-pg-0", &data), ("wal-pg-0", &wal)] {
        let target = work.path().join(format!("restore-{claim_name}"));
        repo.ok(&[
            "restore",
            "latest",
            "--claim",
            &format!("shop/{claim_name}"),
            "--target",
            target.to_str().unwrap(),
        ]);
        let restored = target.join(claim_name);
        let mut want = listing(dir);
        want.retain(|(p, _)| !p.starts_with("lost+found"));
        assert_eq!(listing(&restored), want, "{claim_name}");
        assert!(!restored.join("lost+found").exists());
    }
    for needle in ["token", "uploads", "data.bin"] {
        let found = String::from_utf8(repo.ok(&["find", needle])).unwrap();
        if needle == "data.bin" {
            assert_eq!(found.matches("data.bin").count(), 2, "{found}");
        } else {
            assert!(
                !found.contains(needle) || found.trim().is_empty(),
                "{needle}: {found}"
            );
        }
    }

    // A chosen claim the node does not have mounted: that volume is named,
    // the others are saved, the run is partial (exit 3).
    kube.apply(
        &[
            claim("shop", "data-pg-2", "pv-data-2"),
            pod(
                "shop",
                "pg-2",
                "node-a",
                Some("data"),
                &[("data", "data-pg-2")],
            ),
        ]
        .join("\n---\n"),
    );
    kube.set_running("shop", "pg-2");
    let out = agent("node-a");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("shop/data-pg-2") && said.contains("volume pv-data-2 is not mounted"),
        "{said}"
    );
    // The two mounted claims again, not the missing one; the chart's
    // retention (one a day) keeps the newest of each claim.
    assert!(
        said.contains("retention kept 2 snapshot(s), forgot 2"),
        "{said}"
    );
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");

    // pg-0 is rescheduled to node-b (a new pod, a new uid; its volume
    // follows it): node-b's agent backs up pg-1's claim and pg-0's, and
    // pg-0's claim stays one series: the parent is found across nodes and
    // retention counts the claim's snapshots from both nodes as one group.
    kube.admin(&[
        "delete",
        "pod",
        "-n",
        "shop",
        "pg-0",
        "pg-2",
        "--grace-period=0",
        "--force",
    ]);
    kube.apply(&pod(
        "shop",
        "pg-0",
        "node-b",
        Some("data"),
        &[("data", "data-pg-0")],
    ));
    kube.set_running("shop", "pg-0");
    let moved = uid(&kube, "shop", "pg-0");
    assert_ne!(moved, pg0);
    let data_b = kubelet.join(format!("pods/{moved}/volumes/kubernetes.io~csi/pv-data"));
    std::fs::create_dir_all(&data_b).unwrap();
    std::fs::rename(&data, data_b.join("mount")).unwrap();
    std::fs::write(data_b.join("mount/top.txt"), b"changed on node-b\n").unwrap();
    let out = agent("node-b");
    assert_success(&out, &["agent", "--run", "volumes", "(node-b)"]);
    let said = text(&out);
    assert!(
        said.contains("shop/data-pg-1") && said.contains("shop/data-pg-0"),
        "{said}"
    );
    assert!(!said.contains("wal-pg-0"), "not annotated any more: {said}");
    assert!(said.contains("using parent snapshot"), "{said}");
    let hosts = |claim: &str| -> Vec<String> {
        repo.snapshots()
            .iter()
            .filter(|s| s["source"]["claim"] == claim)
            .map(|s| s["host"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        hosts("data-pg-0"),
        ["node-b"],
        "node-a's snapshot of the day forgotten"
    );
    assert_eq!(hosts("data-pg-1"), ["node-b"]);
    assert_eq!(hosts("wal-pg-0"), ["node-a"]);
    let target = work.path().join("restore-moved");
    repo.ok(&[
        "restore",
        "latest",
        "--claim",
        "data-pg-0",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(target.join("data-pg-0/top.txt")).unwrap(),
        b"changed on node-b\n"
    );

    // Permission problems: an agent without the capability to read any
    // file (the chart grants DAC_READ_SEARCH; here it is dropped) meets a
    // volume whose root it cannot list and one with a file it cannot
    // read. The first is named and not committed; the second is saved
    // without that file, marked partial; the run exits 3.
    kube.apply(
        &[
            claim("shop", "locked", "pv-locked"),
            claim("shop", "mixed", "pv-mixed"),
            pod(
                "shop",
                "owned",
                "node-c",
                Some("*"),
                &[("locked", "locked"), ("mixed", "mixed")],
            ),
        ]
        .join("\n---\n"),
    );
    kube.set_running("shop", "owned");
    let owned = uid(&kube, "shop", "owned");
    let locked = volume_dir(&kubelet, &owned, "kubernetes.io~csi", "pv-locked", 6);
    let mixed = volume_dir(&kubelet, &owned, "kubernetes.io~csi", "pv-mixed", 7);
    let private = mixed.join("sub/private.key");
    std::fs::write(&private, b"not for the agent").unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [(&locked, 0o700), (&private, 0o600)] {
        rustix::fs::chown(
            path.as_path(),
            Some(rustix::fs::Uid::from_raw(1000)),
            Some(rustix::fs::Gid::from_raw(1000)),
        )
        .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let plain = agent_command("node-c");
    let mut c = Command::new("setpriv");
    c.arg("--bounding-set=-dac_override,-dac_read_search")
        .arg(plain.get_program())
        .args(plain.get_args());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().expect("setpriv (util-linux)");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("shop/locked") && said.contains("Permission denied"),
        "{said}"
    );
    assert!(said.contains("private.key"), "{said}");
    let snaps = repo.snapshots();
    assert!(!snaps.iter().any(|s| s["source"]["claim"] == "locked"));
    let [mixed_snap] = &snaps
        .iter()
        .filter(|s| s["source"]["claim"] == "mixed")
        .collect::<Vec<_>>()[..]
    else {
        panic!("one snapshot of shop/mixed: {snaps:?}");
    };
    assert_eq!(mixed_snap["partial"], true);

    // RBAC: the agent may read pods and claims, nothing else.
    let as_agent = |args: &[&str]| kube.kubectl(args, Some(&agent_config));
    assert!(as_agent(&["get", "pods", "--all-namespaces"])
        .status
        .success());
    for denied in [
        vec!["get", "secrets", "--all-namespaces"],
        vec!["get", "configmaps", "-n", "shop"],
        vec!["get", "persistentvolumeclaims", "--all-namespaces"],
        vec!["delete", "pod", "-n", "shop", "pg-0"],
        vec!["get", "nodes"],
    ] {
        let out = as_agent(&denied);
        assert!(!out.status.success(), "{denied:?} was allowed");
        assert!(
            text(&out).contains("Forbidden") || text(&out).contains("forbidden"),
            "{denied:?}: {}",
            text(&out)
        );
    }

    // A role of pods only (rbac.readClaims=false): claims cannot be read,
    // yet a pod with one claim is still found from the kubelet's
    // directory; a pod with two is named, with what to grant.
    let pods_only = render(&["repository.url=s3:backups/cairn", "rbac.readClaims=false"]);
    let [role] = documents(&pods_only, "ClusterRole")[..] else {
        panic!("one ClusterRole: {pods_only}");
    };
    assert!(!role.contains("persistentvolumeclaims"), "{role}");
    kube.apply(role);
    let out = as_agent(&["get", "persistentvolumeclaim", "-n", "shop", "data-pg-0"]);
    assert!(text(&out).contains("forbidden"), "{}", text(&out));
    let out = agent("node-b");
    assert_success(&out, &["agent", "--run", "volumes", "(node-b, pods only)"]);
    let said = text(&out);
    assert!(
        said.contains("shop/data-pg-0") && said.contains("shop/data-pg-1"),
        "{said}"
    );
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = agent("node-c");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rbac.readClaims"), "{}", text(&out));
    assert!(text(&out).contains("after 3 attempt(s)"), "{}", text(&out));
}

fn kubernetes_validate() -> PathBuf {
    installed("install-kubernetes-validate.sh")
}

/// The plain manifests, rendered from the chart with these values.
const MANIFESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/manifests/cairn.yaml"
);
const MANIFEST_VALUES: &[&str] = &["repository.url=s3:CHANGE-ME/cairn"];

#[test]
fn the_chart_renders_manifests_that_pass_strict_schema_validation() {
    let validate = kubernetes_validate();
    let dir = tempfile::tempdir().unwrap();
    let variants: &[&[&str]] = &[
        &["repository.url=s3:backups/cairn"],
        &[
            "repository.url=s3:backups/eu/cairn",
            "repository.s3.endpoint=http://minio.storage:9000",
            "repository.s3.region=eu-west-1",
            "repository.s3.virtualHosted=true",
            "s3Credentials.secretName=cairn-s3",
            "daemonset.labelSelector=backup=nightly",
            "daemonset.timeZone=Europe/Berlin",
            "daemonset.nodeSelector.kubernetes\\.io/os=linux",
            "daemonset.tolerations[0].operator=Exists",
            "daemonset.priorityClassName=system-node-critical",
            "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/cairn",
            "imagePullSecrets[0].name=registry",
        ],
        &[
            "repository.url=s3:backups/cairn",
            "maintenance.enabled=true",
            "maintenance.s3Credentials.secretName=cairn-s3-delete",
            "metrics.prometheusRule.enabled=true",
            "metrics.podMonitor.enabled=true",
        ],
    ];
    let mut files = Vec::new();
    for (i, sets) in variants.iter().enumerate() {
        let file = dir.path().join(format!("variant-{i}.yaml"));
        std::fs::write(&file, render(sets)).unwrap();
        files.push(file);
    }
    files.push(PathBuf::from(MANIFESTS));
    files.extend(examples());
    for version in ["1.28.0", "1.37.0"] {
        let out = Command::new(&validate)
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .unwrap();
        assert!(out.status.success(), "{version}: {}", text(&out));
        assert!(text(&out).contains("daemonset/cairn"), "{}", text(&out));
    }
    // The check can fail: an unknown field is refused.
    let bad = dir.path().join("bad.yaml");
    let rendered = render(variants[0]);
    std::fs::write(&bad, rendered.replace("hostPath:", "hostPth:")).unwrap();
    let out = Command::new(&validate)
        .args(["--strict", "-k", "1.28.0"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a misspelt field passed: {}",
        text(&out)
    );

    // Both agents' files (the DaemonSet's, the maintenance agent's) are
    // valid configurations, and the PrometheusRule holds rules promtool
    // accepts.
    let full = render(variants[2]);
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for f in ["password", "pgpass"] {
        std::fs::write(secrets.join(f), "x").unwrap();
    }
    let example_text: Vec<String> = examples()
        .iter()
        .map(|e| std::fs::read_to_string(e).unwrap())
        .collect();
    let mut config_maps = documents(&full, "ConfigMap");
    for e in &example_text {
        config_maps.extend(documents(e, "ConfigMap"));
    }
    assert_eq!(config_maps.len(), 5, "the chart's two and three examples'");
    for cm in config_maps {
        let toml = agent_toml(cm)
            .replace(
                "/etc/cairn/repository/password",
                secrets.join("password").to_str().unwrap(),
            )
            .replace(
                "/etc/cairn/pg/pgpass",
                secrets.join("pgpass").to_str().unwrap(),
            );
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, &toml).unwrap();
        let out = Command::new(cairn_e2e::cairn_bin())
            .args(["agent", "check-config", "--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{toml}\n{}", text(&out));
    }
    let [rule] = documents(&full, "PrometheusRule")[..] else {
        panic!("one PrometheusRule: {full}");
    };
    let spec = rule.split_once("\nspec:\n").unwrap().1;
    let rules: String = spec
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    assert!(rules.contains("alert: CairnBackupJobMissing"), "{rules}");
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (Debian's prometheus package; `bash .ci/run` installs it)");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(documents(&full, "PodMonitor").len(), 1);
    assert_eq!(documents(&full, "Deployment").len(), 1);

    // deploy/manifests/cairn.yaml is the chart rendered with its values
    // (regenerate it with scripts/render-manifests.sh).
    let committed = std::fs::read_to_string(MANIFESTS).unwrap();
    let body = committed
        .split_once("\n---\n")
        .map_or(committed.as_str(), |(_, rest)| rest);
    assert_eq!(
        body.trim(),
        render(MANIFEST_VALUES)
            .trim()
            .trim_start_matches("---")
            .trim(),
        "deploy/manifests/cairn.yaml is not the chart's rendering: run scripts/render-manifests.sh"
    );
}
