//! `cairn ls`: from the catalog alone.

use super::Status;
use crate::catalog::Catalog;
use crate::filter::resolve;
use crate::restore::find;
use crate::util::format_time;
use anyhow::{bail, Result};
use cairn_repo_format::{ChunkId, Node, NodeKind};
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
    };
    let m = node.meta.mode;
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

pub fn line(out: &mut impl Write, node: &Node, path: &str) -> std::io::Result<()> {
    let size = match &node.kind {
        NodeKind::File { size, .. } => *size,
        _ => 0,
    };
    let link = match &node.kind {
        NodeKind::Symlink { target } => format!(" -> {}", String::from_utf8_lossy(target)),
        _ => String::new(),
    };
    writeln!(
        out,
        "{} {:>6} {:>6} {:>12} {} {path}{link}",
        mode_string(node),
        node.meta.uid,
        node.meta.gid,
        size,
        format_time(node.meta.mtime_ns)
    )
}

pub fn run(cat: &Catalog, args: Args) -> Result<Status> {
    let snapshots = cat.snapshots()?;
    let (_, snap) = resolve(&snapshots, &args.snapshot, &args.filter.filter())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
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
            line(&mut out, &node, &path)?;
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
            line(&mut out, node, &path)?;
            if let NodeKind::Dir { subtree } = node.kind {
                subdirs.push((subtree, path));
            }
        }
        // Depth-first, in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    out.flush()?;
    Ok(Status::Success)
}
