//! `cairn ls`: from the catalog alone.

use super::json::{NodeJson, SnapshotJson};
use super::Status;
use crate::catalog::Catalog;
use crate::filter::resolve;
use crate::restore::find;
use crate::util::{escape_controls, format_time};
use anyhow::{bail, Result};
use cairn_repo_format::{ChunkId, Node, NodeKind, Snapshot, SnapshotId};
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id prefix, or `latest`.
    pub(super) snapshot: String,
    /// Only this path and what is below it.
    path: Option<String>,
    #[command(flatten)]
    pub(super) filter: super::filter::FilterArgs,
}

pub fn mode_string(node: &Node) -> String {
    let t = match node.kind {
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::File { .. } => '-',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::CharDevice { .. } => 'c',
        NodeKind::BlockDevice { .. } => 'b',
    };
    let m = node.meta.mode;
    let mut s = String::from(t);
    // Each class's execute place shows its special bit as ls does: s/S
    // for set-user-id and set-group-id, t/T for sticky (upper case without
    // the execute bit).
    for (shift, special, set) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, m & special != 0) {
            (true, false) => 'x',
            (false, false) => '-',
            (true, true) => set,
            (false, true) => set.to_ascii_uppercase(),
        });
    }
    s
}

pub fn line(out: &mut impl Write, node: &Node, path: &str) -> std::io::Result<()> {
    let size = match &node.kind {
        NodeKind::File { size, .. } => size.to_string(),
        NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor } => {
            format!("{major}, {minor}")
        }
        _ => "0".to_owned(),
    };
    let link = match &node.kind {
        NodeKind::Symlink { target } => format!(" -> {}", String::from_utf8_lossy(target)),
        _ => String::new(),
    };
    writeln!(
        out,
        "{} {:>6} {:>6} {:>12} {} {}{link}",
        mode_string(node),
        node.meta.uid,
        node.meta.gid,
        size,
        format_time(node.meta.mtime_ns),
        escape_controls(path)
    )
}

/// Where `ls` writes its entries: text lines, or the nodes of one JSON
/// document, streamed (a tree of millions of entries is never held).
enum Sink<W: Write> {
    Text(W),
    Json { out: W, first: bool },
}

impl<W: Write> Sink<W> {
    fn new(mut out: W, json: bool, id: &SnapshotId, snap: &Snapshot) -> Result<Self> {
        if !json {
            return Ok(Sink::Text(out));
        }
        write!(out, "{{\"snapshot\":")?;
        serde_json::to_writer(&mut out, &SnapshotJson::new(id, snap))?;
        write!(out, ",\"nodes\":[")?;
        Ok(Sink::Json { out, first: true })
    }

    fn entry(&mut self, node: &Node, path: &str) -> Result<()> {
        match self {
            Sink::Text(out) => line(out, node, path)?,
            Sink::Json { out, first } => {
                if !std::mem::take(first) {
                    write!(out, ",")?;
                }
                writeln!(out)?;
                serde_json::to_writer(&mut *out, &NodeJson::new(node, path))?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let mut out = match self {
            Sink::Text(out) => out,
            Sink::Json { mut out, .. } => {
                writeln!(out, "]}}")?;
                out
            }
        };
        out.flush()?;
        Ok(())
    }
}

pub fn run(cat: &Catalog, args: Args, json: bool) -> Result<Status> {
    let snapshots = cat.snapshots()?;
    let (id, snap) = resolve(&snapshots, &args.snapshot, &args.filter.filter())?;
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut out = Sink::new(out, json, id, snap)?;
    let mut stack: Vec<(ChunkId, String)> = Vec::new();
    match args
        .path
        .as_deref()
        .filter(|p| !p.trim_matches('/').is_empty())
    {
        None => stack.push((snap.tree, String::new())),
        Some(p) => {
            let Some(node) = find(cat, snap.tree, p)? else {
                bail!("{p} is not in snapshot {}", args.snapshot);
            };
            let path = format!("/{}", p.trim_matches('/'));
            out.entry(&node, &path)?;
            if let NodeKind::Dir { subtree } = node.kind {
                stack.push((subtree, path));
            }
        }
    }
    while let Some((tree_id, dir)) = stack.pop() {
        let tree = cat.tree(&tree_id)?;
        let mut subdirs = Vec::new();
        for node in tree.nodes() {
            let path = format!("{dir}/{}", String::from_utf8_lossy(&node.name));
            out.entry(node, &path)?;
            if let NodeKind::Dir { subtree } = node.kind {
                subdirs.push((subtree, path));
            }
        }
        // Depth-first, in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    out.finish()?;
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo_format::FileContent;
    use cairn_repo_format::NodeMeta;

    fn mode(kind: NodeKind, mode: u32) -> String {
        mode_string(&Node {
            name: b"x".to_vec(),
            meta: NodeMeta {
                mode,
                ..NodeMeta::default()
            },
            kind,
            xattrs: Vec::new(),
        })
    }

    #[test]
    fn modes_read_as_ls_shows_them() {
        let file = || NodeKind::File {
            size: 0,
            content: FileContent::default(),
        };
        assert_eq!(mode(file(), 0o644), "-rw-r--r--");
        assert_eq!(mode(file(), 0o4755), "-rwsr-xr-x");
        assert_eq!(mode(file(), 0o2644), "-rw-r-Sr--");
        assert_eq!(mode(NodeKind::Fifo, 0o1777), "prwxrwxrwt");
        assert_eq!(mode(NodeKind::Socket, 0o1776), "srwxrwxrwT");
        assert_eq!(
            mode(NodeKind::CharDevice { major: 1, minor: 3 }, 0o666),
            "crw-rw-rw-"
        );
        assert_eq!(
            mode(NodeKind::BlockDevice { major: 8, minor: 0 }, 0o660),
            "brw-rw----"
        );
    }
}
