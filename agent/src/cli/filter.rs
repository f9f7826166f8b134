//! The snapshot filters shared by the commands that choose snapshots.

use crate::filter::SnapshotFilter;

/// `--host`, `--tag`, `--path`, `--claim`, `--source-kind`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Snapshot filters")]
pub struct FilterArgs {
    /// Only snapshots taken on this host (repeat for several).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    #[command(flatten)]
    rest: FilterRest,
}

/// The filters but the host, for a command whose `--host` means something
/// else (`restore --pg`: the PostgreSQL server).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Snapshot filters")]
pub struct FilterRest {
    /// Only snapshots with this tag (repeat: with all of them).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only file-tree snapshots of this path (repeat: of all of them).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    /// Only snapshots of this Kubernetes PersistentVolumeClaim:
    /// NAMESPACE/NAME, or NAME in any namespace (repeat for several).
    #[arg(long = "claim", value_name = "CLAIM")]
    claims: Vec<String>,
    /// Only snapshots of this kind of source: files, postgres (pg), redis,
    /// pvc, command or stdin (repeat for several).
    #[arg(long = "source-kind", value_name = "KIND")]
    kinds: Vec<String>,
}

impl FilterArgs {
    /// The filter.
    pub fn filter(&self) -> SnapshotFilter {
        self.rest.filter(self.hosts.clone())
    }
}

impl FilterRest {
    /// The filter, with these hosts.
    pub fn filter(&self, hosts: Vec<String>) -> SnapshotFilter {
        SnapshotFilter {
            hosts,
            tags: self.tags.clone(),
            paths: self.paths.clone(),
            kinds: self.kinds.clone(),
            claims: self.claims.clone(),
        }
    }
}
