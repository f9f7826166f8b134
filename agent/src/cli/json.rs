//! What `--json` prints: typed records shared by every command, specified
//! in `docs/json.md`. Times are RFC 3339 in UTC; ids are full hex with a
//! `short_id` beside them; sizes are bytes.

use crate::util::rfc3339;
use cairn_repo_format::{Counts, Node, NodeKind, Origin, Snapshot, SnapshotId, Source, Summary};
use serde::Serialize;
use std::io::Write;

/// Writes `value` as one JSON document (pretty, with a final newline).
///
/// # Errors
/// If standard output cannot be written.
pub fn print<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// A snapshot.
#[derive(Debug, Serialize)]
pub struct SnapshotJson {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub finished: String,
    pub host: String,
    pub user: String,
    pub source: Source,
    pub tags: Vec<String>,
    pub partial: bool,
    pub tree: String,
    pub session: String,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<Origin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
}

impl SnapshotJson {
    pub fn new(id: &SnapshotId, s: &Snapshot) -> Self {
        SnapshotJson {
            id: id.to_hex(),
            short_id: id.short(),
            time: rfc3339(s.time_ns),
            finished: rfc3339(s.finished_ns),
            host: s.hostname.clone(),
            user: s.username.clone(),
            source: shown(&s.source),
            tags: s.tags.clone(),
            partial: s.partial,
            tree: s.tree.to_hex(),
            session: s.session.to_hex(),
            summary: s.summary,
            copy_of: s.copy_of,
            counts: s.counts.clone(),
        }
    }
}

/// A source as shown: a command's program only (snapshots written before
/// 2026-12-03 recorded its arguments too, which may hold a password).
pub fn shown(source: &Source) -> Source {
    match source {
        Source::Command { name, argv } => Source::Command {
            name: name.clone(),
            argv: argv.iter().take(1).cloned().collect(),
        },
        other => other.clone(),
    }
}

/// One entry of a snapshot's tree.
#[derive(Debug, Serialize)]
pub struct NodeJson {
    pub path: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    /// As `ls -l` shows it: `-rwsr-xr-x`.
    pub permissions: String,
    pub uid: u32,
    pub gid: u32,
    pub mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<u32>,
    /// The names of its extended attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<String>,
}

impl NodeJson {
    pub fn new(node: &Node, path: &str) -> Self {
        let (mut size, mut link_target, mut major, mut minor) = (None, None, None, None);
        match &node.kind {
            NodeKind::File { size: s, .. } => size = Some(*s),
            NodeKind::Symlink { target } => {
                link_target = Some(String::from_utf8_lossy(target).into_owned());
            }
            NodeKind::CharDevice { major: a, minor: b }
            | NodeKind::BlockDevice { major: a, minor: b } => {
                (major, minor) = (Some(*a), Some(*b));
            }
            NodeKind::Dir { .. } | NodeKind::Fifo | NodeKind::Socket => {}
        }
        NodeJson {
            path: path.to_owned(),
            name: String::from_utf8_lossy(&node.name).into_owned(),
            kind: node.kind.type_name(),
            mode: node.meta.mode,
            permissions: super::ls::mode_string(node),
            uid: node.meta.uid,
            gid: node.meta.gid,
            mtime: rfc3339(node.meta.mtime_ns),
            size,
            link_target,
            major,
            minor,
            xattrs: node
                .xattrs
                .iter()
                .map(|x| String::from_utf8_lossy(&x.name).into_owned())
                .collect(),
        }
    }
}

/// A failed command, printed instead of its result.
#[derive(Debug, Serialize)]
pub struct ErrorJson {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// What went wrong, with its causes.
    pub message: String,
    /// What to do about it (`retry`, `fix-input`, …), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The exit status that follows.
    pub exit_code: u8,
}
