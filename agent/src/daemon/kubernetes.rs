//! The claims mounted on this node: which of its pods' volumes to back up
//! (an annotation on the pod, or a label selector), and where the kubelet
//! mounted each (`docs/kubernetes.md`).
//!
//! The API server is asked for the pods bound to this node (a field
//! selector on `spec.nodeName`) and, for each chosen volume, for its
//! claim's `spec.volumeName`: the kubelet names a volume's directory after
//! the PersistentVolume, `<kubelet-dir>/pods/<pod uid>/volumes/<plugin>/<pv>`
//! (CSI volumes one level deeper, in `mount`). Nothing else is read from
//! the API, and nothing else under the kubelet's directory is touched: a
//! pod's other volumes (its service-account token among them) stay unread.

use crate::source::files::FilesSettings;
use crate::source::pvc::PvcSettings;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Volume};
use kube::api::{Api, ListParams};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The annotation that names a pod's volumes to back up, unless the
/// configuration names another.
pub const ANNOTATION: &str = "backup.cairn.io/volumes";
/// Where the kubelet keeps its pods, unless the configuration says
/// otherwise.
pub const KUBELET_DIR: &str = "/var/lib/kubelet";

/// `type = "kubernetes"`: the claims of the pods on this node.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KubernetesSource {
    /// This node's name (default: the agent's host name, which the
    /// DaemonSet sets to `spec.nodeName` through `CAIRN_HOST`).
    #[serde(default)]
    pub node_name: Option<String>,
    /// The kubelet's directory as this process sees it (mounted read-only
    /// with `HostToContainer` propagation).
    #[serde(default = "default_kubelet_dir")]
    pub kubelet_dir: PathBuf,
    /// The pod annotation naming volumes to back up: a comma-separated
    /// list of the pod's volume names, or `*` for all its claims.
    #[serde(default = "default_annotation")]
    pub annotation: String,
    /// Also every claim of the pods this label selector matches
    /// (`app=postgres,tier in (db)`); the annotation, if the pod has it,
    /// still narrows them.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// What each volume's walk leaves out (as a files job's keys; no
    /// `paths`). Patterns see a volume's root as `/`.
    #[serde(default)]
    pub select: FilesSettings,
}

fn default_kubelet_dir() -> PathBuf {
    PathBuf::from(KUBELET_DIR)
}

fn default_annotation() -> String {
    ANNOTATION.to_owned()
}

/// A volume chosen on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The pod's namespace (the claim's).
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The pod's name for the volume.
    pub volume: String,
    /// The claim.
    pub claim: String,
    /// Where it is mounted on this node, or why it cannot be backed up.
    pub dir: Result<PathBuf, String>,
}

impl Found {
    /// `NAMESPACE/CLAIM (volume V of pod P)`, or without a claim
    /// `volume V of pod NAMESPACE/P`.
    pub fn describe(&self) -> String {
        if self.claim.is_empty() {
            format!(
                "volume {} of pod {}/{}",
                self.volume, self.namespace, self.pod
            )
        } else {
            format!(
                "{}/{} (volume {} of pod {})",
                self.namespace, self.claim, self.volume, self.pod
            )
        }
    }

    /// The backup of this volume, with the job's selection.
    pub fn settings(&self, select: &FilesSettings) -> Option<PvcSettings> {
        let dir = self.dir.as_ref().ok()?;
        Some(PvcSettings {
            dir: dir.clone(),
            namespace: self.namespace.clone(),
            claim: self.claim.clone(),
            pod: self.pod.clone(),
            select: select.clone(),
        })
    }
}

/// Why discovery failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No client configuration (no kubeconfig, not in a pod).
    #[error("no Kubernetes API to ask: {0} (in a pod, the service account's token is used; elsewhere KUBECONFIG or ~/.kube/config)")]
    Config(String),
    /// The API server refused or failed a request.
    #[error("the Kubernetes API: {0}")]
    Api(String),
}

impl From<DiscoveryError> for crate::Error {
    fn from(e: DiscoveryError) -> Self {
        crate::Error::Source(crate::source::SourceError::Kubernetes {
            detail: e.to_string(),
        })
    }
}

/// The volumes of this node's pods that `source` chooses, with where each
/// is mounted. A volume that is chosen but cannot be found (its claim not
/// bound, its directory missing) is in the list with the reason.
///
/// # Errors
/// [`DiscoveryError`] if the API cannot be reached or refuses the pod list.
pub async fn discover(source: &KubernetesSource, node: &str) -> Result<Vec<Found>, DiscoveryError> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| DiscoveryError::Config(e.to_string()))?;
    let pods: Api<Pod> = Api::all(client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let listed = pods.list(&on_node).await.map_err(api_error)?;
    let selected: BTreeSet<(String, String)> = match &source.label_selector {
        Some(sel) => pods
            .list(&on_node.clone().labels(sel))
            .await
            .map_err(api_error)?
            .items
            .iter()
            .map(pod_key)
            .collect(),
        None => BTreeSet::new(),
    };
    let mut found = Vec::new();
    for pod in &listed.items {
        let labelled = selected.contains(&pod_key(pod));
        let Some(chosen) = chosen_volumes(pod, &source.annotation, labelled) else {
            continue;
        };
        let (namespace, name) = pod_key(pod);
        if let Some(why) = not_running(pod) {
            tracing::info!("pod {namespace}/{name}: not backed up, {why}");
            continue;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
        for (volume, claim) in chosen {
            let dir = match claim.clone() {
                Ok(claim) => locate(&claims, &source.kubelet_dir, pod, &claim).await,
                Err(why) => Err(why),
            };
            found.push(Found {
                namespace: namespace.clone(),
                pod: name.clone(),
                volume,
                claim: claim.unwrap_or_default(),
                dir,
            });
        }
    }
    Ok(found)
}

fn api_error(e: kube::Error) -> DiscoveryError {
    DiscoveryError::Api(match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    })
}

fn pod_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Why a pod's volumes are not backed up now, if they are not.
fn not_running(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some("it is terminating".to_owned());
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        Some("Running") => None,
        other => Some(format!(
            "it is {} (its volumes are mounted only while it runs)",
            other.unwrap_or("without a phase")
        )),
    }
}

/// The claim behind a pod's volume, if it is one.
fn claim_of(pod: &Pod, v: &Volume) -> Option<String> {
    if let Some(c) = &v.persistent_volume_claim {
        return Some(c.claim_name.clone());
    }
    // A generic ephemeral volume's claim is named after the pod and the
    // volume.
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    v.ephemeral
        .as_ref()
        .map(|_| format!("{pod_name}-{}", v.name))
}

/// The pod's volumes to back up, each with its claim's name or why it
/// has none; `None` if the pod is not chosen at all.
fn chosen_volumes(
    pod: &Pod,
    annotation: &str,
    labelled: bool,
) -> Option<Vec<(String, Result<String, String>)>> {
    let named = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation));
    if named.is_none() && !labelled {
        return None;
    }
    let volumes: &[Volume] = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let claim_of = |v: &Volume| claim_of(pod, v);
    let wanted: Vec<&str> = match named.map(|n| n.trim()) {
        None | Some("*") => {
            return Some(
                volumes
                    .iter()
                    .filter_map(|v| claim_of(v).map(|c| (v.name.clone(), Ok(c))))
                    .collect(),
            )
        }
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect(),
    };
    Some(
        wanted
            .into_iter()
            .map(|name| {
                let claim = match volumes.iter().find(|v| v.name == name) {
                    None => Err(format!(
                        "the annotation {annotation} names {name:?}, which is not a volume of the pod"
                    )),
                    Some(v) => claim_of(v).ok_or_else(|| {
                        format!("volume {name:?} is not a PersistentVolumeClaim; only claims are backed up")
                    }),
                };
                (name.to_owned(), claim)
            })
            .collect(),
    )
}

/// Where the kubelet mounted `claim` for `pod`. Without permission to read
/// claims (a role of pods only), a pod's one claim is still found: the
/// one volume directory of the pod that is not of a pod-scoped kind.
async fn locate(
    claims: &Api<PersistentVolumeClaim>,
    kubelet_dir: &Path,
    pod: &Pod,
    claim: &str,
) -> Result<PathBuf, String> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let pvc = match claims.get(claim).await {
        Ok(pvc) => pvc,
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return only_claim_dir(kubelet_dir, &uid, pod);
        }
        Err(e) => return Err(format!("cannot read its claim: {}", api_error(e))),
    };
    let pv = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "the claim is not bound to a volume yet".to_owned())?;
    mount_dir(kubelet_dir, &uid, &pv)
}

/// Plugins whose volumes belong to the pod, never to a claim.
const POD_SCOPED: [&str; 6] = [
    "kubernetes.io~secret",
    "kubernetes.io~configmap",
    "kubernetes.io~projected",
    "kubernetes.io~downward-api",
    "kubernetes.io~empty-dir",
    "kubernetes.io~git-repo",
];

/// The directory of a pod's claim when the claim cannot be read: only for
/// a pod with exactly one claim and no inline CSI volume, whose volumes
/// directory holds exactly one volume of a claim's kind.
fn only_claim_dir(kubelet_dir: &Path, uid: &str, pod: &Pod) -> Result<PathBuf, String> {
    let volumes: &[Volume] = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let claims = volumes.iter().filter_map(|v| claim_of(pod, v)).count();
    let inline_csi = volumes.iter().any(|v| v.csi.is_some());
    let refused = "the agent may not read claims (its role has pods only)";
    if claims != 1 || inline_csi {
        return Err(format!(
            "{refused}, and the pod has {claims} claims{}: which directory is which cannot be told; allow get on persistentvolumeclaims (the chart's rbac.readClaims)",
            if inline_csi { " and inline CSI volumes" } else { "" }
        ));
    }
    let dir = pod_volumes(kubelet_dir, uid)?;
    let mut found = volume_dirs(&dir, |plugin, _| !POD_SCOPED.contains(&plugin))
        .map_err(|e| format!("{refused}, and {} cannot be listed: {e}", dir.display()))?;
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(format!(
            "{refused}, and {} holds {n} volumes of a claim's kind, not one",
            dir.display()
        )),
    }
}

/// `pods/<uid>/volumes` under the kubelet's directory.
fn pod_volumes(kubelet_dir: &Path, uid: &str) -> Result<PathBuf, String> {
    if !plain_name(uid) {
        return Err(format!("pod uid {uid:?} is not a plain name"));
    }
    Ok(kubelet_dir.join("pods").join(uid).join("volumes"))
}

fn plain_name(n: &str) -> bool {
    !n.is_empty() && n != "." && n != ".." && !n.contains('/')
}

/// The volume directories `<plugin>/<name>` in a pod's `volumes` whose
/// plugin and name `wanted` accepts (a CSI volume's is its `mount`).
/// Links are not followed: the kubelet makes directories.
fn volume_dirs(
    volumes: &Path,
    wanted: impl Fn(&str, &str) -> bool,
) -> std::io::Result<Vec<PathBuf>> {
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let mut hits = Vec::new();
    for plugin in std::fs::read_dir(volumes)?.flatten() {
        let plugin_name = plugin.file_name().to_string_lossy().into_owned();
        if !is_dir(&plugin.path()) {
            continue;
        }
        for entry in std::fs::read_dir(plugin.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = entry.path();
            if wanted(&plugin_name, &entry.file_name().to_string_lossy()) && is_dir(&dir) {
                let csi = plugin_name.ends_with("~csi");
                hits.push(if csi { dir.join("mount") } else { dir });
            }
        }
    }
    Ok(hits)
}

/// The directory of volume `pv` of the pod `uid` under the kubelet's
/// directory: `pods/<uid>/volumes/<plugin>/<pv>`, or its `mount` for CSI.
///
/// # Errors
/// Why there is none: names that are not plain names, no such directory,
/// or more than one.
pub fn mount_dir(kubelet_dir: &Path, uid: &str, pv: &str) -> Result<PathBuf, String> {
    if !plain_name(pv) {
        return Err(format!("volume {pv:?} is not a plain name"));
    }
    let volumes = pod_volumes(kubelet_dir, uid)?;
    let not_mounted = |why: String| {
        format!("volume {pv} is not mounted on this node: {why} (is the kubelet's directory mounted into the agent, with HostToContainer propagation?)")
    };
    let mut hits = volume_dirs(&volumes, |_, name| name == pv)
        .map_err(|e| not_mounted(format!("cannot list {}: {e}", volumes.display())))?;
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err(not_mounted(format!("no {}/*/{pv}", volumes.display()))),
        _ => Err(format!(
            "volume {pv} is in more than one plugin's directory under {}",
            volumes.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kubelet directory whose pod `u1` has these volume directories.
    fn layout(dirs: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let vols = root.path().join("pods/u1/volumes");
        for d in dirs {
            std::fs::create_dir_all(vols.join(d)).unwrap();
        }
        (root, vols)
    }

    #[test]
    fn a_volume_is_found_in_its_plugins_directory() {
        let (root, vols) = layout(&[
            "kubernetes.io~local-volume/pv-a",
            "kubernetes.io~csi/pv-b/mount",
            "kubernetes.io~secret/token",
        ]);
        std::os::unix::fs::symlink("/etc", vols.join("kubernetes.io~empty-dir")).unwrap();
        assert_eq!(
            mount_dir(root.path(), "u1", "pv-a").unwrap(),
            vols.join("kubernetes.io~local-volume/pv-a")
        );
        assert_eq!(
            mount_dir(root.path(), "u1", "pv-b").unwrap(),
            vols.join("kubernetes.io~csi/pv-b/mount")
        );
        assert!(mount_dir(root.path(), "u1", "pv-c")
            .unwrap_err()
            .contains("not mounted"));
        assert!(mount_dir(root.path(), "u2", "pv-a")
            .unwrap_err()
            .contains("not mounted on this node: cannot list"));
        for (uid, pv) in [("..", "pv-a"), ("u1", "../x"), ("u1", "")] {
            assert!(mount_dir(root.path(), uid, pv)
                .unwrap_err()
                .contains("not a plain name"));
        }
    }

    fn pod(annotation: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "pg-0", "namespace": "shop", "uid": "u1",
                "annotations": annotation.map(|a| serde_json::json!({ANNOTATION: a})),
            },
            "spec": {"containers": [], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-pg-0"}},
                {"name": "wal", "persistentVolumeClaim": {"claimName": "wal-pg-0"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "config", "configMap": {"name": "pg"}},
            ]},
            "status": {"phase": "Running"},
        }))
        .unwrap()
    }

    fn names(v: Option<Vec<(String, Result<String, String>)>>) -> Vec<String> {
        v.unwrap()
            .into_iter()
            .map(|(vol, c)| format!("{vol}:{}", c.unwrap_or_else(|e| e)))
            .collect()
    }

    #[test]
    fn the_annotation_chooses_volumes() {
        assert!(chosen_volumes(&pod(None), ANNOTATION, false).is_none());
        assert_eq!(
            names(chosen_volumes(&pod(None), ANNOTATION, true)),
            ["data:data-pg-0", "wal:wal-pg-0", "scratch:pg-0-scratch"]
        );
        assert_eq!(
            names(chosen_volumes(&pod(Some("*")), ANNOTATION, false)).len(),
            3
        );
        let picked = names(chosen_volumes(
            &pod(Some(" data, config ,nope")),
            ANNOTATION,
            false,
        ));
        assert_eq!(picked[0], "data:data-pg-0");
        assert!(
            picked[1].contains("not a PersistentVolumeClaim"),
            "{picked:?}"
        );
        assert!(picked[2].contains("not a volume of the pod"), "{picked:?}");
        // Another annotation's name: this one is not looked at.
        assert!(chosen_volumes(&pod(Some("data")), "example.com/backup", false).is_none());
    }

    #[test]
    fn without_claims_only_a_pods_one_claim_is_found() {
        let (root, vols) = layout(&[
            "kubernetes.io~csi/pv-a/mount",
            "kubernetes.io~secret/token",
            "kubernetes.io~configmap/config",
        ]);
        let mut one = pod(None);
        one.spec
            .as_mut()
            .unwrap()
            .volumes
            .as_mut()
            .unwrap()
            .retain(|v| v.name == "data" || v.name == "config");
        assert_eq!(
            only_claim_dir(root.path(), "u1", &one).unwrap(),
            vols.join("kubernetes.io~csi/pv-a/mount")
        );
        let err = only_claim_dir(root.path(), "u1", &pod(None)).unwrap_err();
        assert!(
            err.contains("has 3 claims") && err.contains("rbac.readClaims"),
            "{err}"
        );
        std::fs::create_dir_all(vols.join("kubernetes.io~local-volume/pv-b")).unwrap();
        let err = only_claim_dir(root.path(), "u1", &one).unwrap_err();
        assert!(err.contains("2 volumes of a claim's kind"), "{err}");
    }

    #[test]
    fn only_running_pods_are_backed_up() {
        let mut p = pod(None);
        assert_eq!(not_running(&p), None);
        p.status.as_mut().unwrap().phase = Some("Pending".into());
        assert!(not_running(&p).unwrap().contains("Pending"));
        let mut p = pod(None);
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert!(not_running(&p).unwrap().contains("terminating"));
    }
}
