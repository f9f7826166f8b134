//! A Kubernetes PersistentVolumeClaim: the directory where the kubelet
//! mounted its volume for a pod, backed up as one directory named after
//! the claim (format §7.1, source `pvc`). Which claims a node has, and
//! where, is the agent's discovery (`daemon::kubernetes`); this is the
//! backup of one.

use super::files::{check_paths, Claim, FilesPlan, FilesSettings};
use crate::error::{input, Result};
use crate::source::SourceError;
use std::path::PathBuf;

/// One claim's volume to back up.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PvcSettings {
    /// The volume's directory on this machine (for instance under
    /// `/var/lib/kubelet/pods/<uid>/volumes/`).
    pub dir: PathBuf,
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub claim: String,
    /// The pod it is read through.
    #[serde(default)]
    pub pod: String,
    /// What the walk leaves out, as for a files backup (its `paths` must
    /// be empty); patterns see the volume's directory as `/`.
    #[serde(default)]
    pub select: FilesSettings,
}

impl PvcSettings {
    /// Checks the settings without reading the volume.
    ///
    /// # Errors
    /// [`crate::Error::Input`] naming what is wrong.
    pub fn check(&self) -> Result<()> {
        for (what, name) in [("namespace", &self.namespace), ("claim", &self.claim)] {
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
                input!("the {what} {name:?} cannot name a claim: give its name, without `/`");
            }
        }
        if !self.dir.is_absolute() {
            input!(
                "the volume's directory {} must be an absolute path",
                self.dir.display()
            );
        }
        if !self.select.paths.is_empty() || !self.select.files_from.is_empty() {
            input!("a claim's backup reads its volume's directory: give no other paths");
        }
        Ok(())
    }

    /// The walk of the volume's directory, checked to be a directory this
    /// process can list.
    ///
    /// # Errors
    /// [`crate::Error::Input`] for bad settings; [`SourceError::Path`] for
    /// a directory that is gone or cannot be listed (nothing is stored).
    pub fn plan(&self) -> Result<FilesPlan> {
        self.check()?;
        let paths = vec![self.dir.clone()];
        check_paths(&paths)?;
        if let Err(cause) = std::fs::read_dir(&self.dir) {
            return Err(SourceError::Path {
                path: self.dir.display().to_string(),
                cause,
            }
            .into());
        }
        Ok(FilesPlan {
            paths,
            selector: self.select.selector(Some(self.dir.clone()))?,
            xattrs: self.select.xattrs,
            read_concurrency: self.select.read_concurrency,
            claim: Some(Claim {
                namespace: self.namespace.clone(),
                name: self.claim.clone(),
                pod: self.pod.clone(),
            }),
        })
    }
}
