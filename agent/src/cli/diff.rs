//! `cairn diff`: what changed between two snapshots, from the catalog
//! alone. Identical subtrees (same tree id) are skipped without reading.
//!
//! `+` added, `-` removed, `M` content changed, `T` type changed, `U` only
//! metadata (mode, owner, times, extended attributes) changed.

use super::Status;
use crate::catalog::Catalog;
use crate::filter::{resolve, SnapshotFilter};
use crate::util::escape_controls;
use anyhow::Result;
use cairn_repo_format::{ChunkId, Node, NodeKind};
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The older snapshot (id prefix or `latest`).
    pub(super) from: String,
    /// The newer snapshot (id prefix or `latest`).
    pub(super) to: String,
}

#[derive(Default, serde::Serialize)]
struct Counts {
    added: u64,
    removed: u64,
    modified: u64,
    metadata: u64,
}

/// One change, for `--json`.
#[derive(serde::Serialize)]
struct Change {
    /// `added`, `removed`, `modified` (content), `type` (the entry became
    /// another kind) or `metadata` (only mode, owner, times or attributes).
    change: &'static str,
    path: String,
}

/// `diff --json`.
#[derive(serde::Serialize)]
struct DiffJson {
    from: String,
    to: String,
    changes: Vec<Change>,
    counts: Counts,
}

struct Differ<'a, W: Write> {
    cat: &'a Catalog,
    out: W,
    counts: Counts,
    /// With `--json`, the changes are collected here instead of printed.
    changes: Option<Vec<Change>>,
}

impl<W: Write> Differ<'_, W> {
    fn emit(&mut self, mark: char, path: &str) -> Result<()> {
        match mark {
            '+' => self.counts.added += 1,
            '-' => self.counts.removed += 1,
            'U' => self.counts.metadata += 1,
            _ => self.counts.modified += 1,
        }
        match &mut self.changes {
            Some(changes) => changes.push(Change {
                change: match mark {
                    '+' => "added",
                    '-' => "removed",
                    'U' => "metadata",
                    'T' => "type",
                    _ => "modified",
                },
                path: path.to_owned(),
            }),
            None => writeln!(self.out, "{mark}    {}", escape_controls(path))?,
        }
        Ok(())
    }

    /// Reports a whole node (and everything below it) as added or removed.
    fn all(&mut self, mark: char, node: &Node, path: &str) -> Result<()> {
        self.emit(mark, path)?;
        if let NodeKind::Dir { subtree } = node.kind {
            for child in self.cat.tree(&subtree)?.nodes() {
                let p = format!("{path}/{}", String::from_utf8_lossy(&child.name));
                self.all(mark, child, &p)?;
            }
        }
        Ok(())
    }

    fn trees(&mut self, a: ChunkId, b: ChunkId, dir: &str) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let (ta, tb) = (self.cat.tree(&a)?, self.cat.tree(&b)?);
        let (na, nb) = (ta.nodes(), tb.nodes());
        let (mut i, mut j) = (0, 0);
        while i < na.len() || j < nb.len() {
            let order = match (na.get(i), nb.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let p = format!("{dir}/{}", String::from_utf8_lossy(&na[i].name));
                    self.all('-', &na[i], &p)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let p = format!("{dir}/{}", String::from_utf8_lossy(&nb[j].name));
                    self.all('+', &nb[j], &p)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let p = format!("{dir}/{}", String::from_utf8_lossy(&na[i].name));
                    self.node(&na[i], &nb[j], &p)?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    fn node(&mut self, a: &Node, b: &Node, path: &str) -> Result<()> {
        let meta_same = a.meta.mode == b.meta.mode
            && a.meta.uid == b.meta.uid
            && a.meta.gid == b.meta.gid
            && a.meta.mtime_ns == b.meta.mtime_ns
            && a.xattrs == b.xattrs;
        let content_changed = match (&a.kind, &b.kind) {
            (NodeKind::Dir { subtree: x }, NodeKind::Dir { subtree: y }) => {
                if !meta_same {
                    self.emit('U', path)?;
                }
                return self.trees(*x, *y, path);
            }
            (
                NodeKind::File {
                    size: s1,
                    content: c1,
                },
                NodeKind::File {
                    size: s2,
                    content: c2,
                },
            ) => s1 != s2 || c1 != c2,
            (NodeKind::Symlink { target: x }, NodeKind::Symlink { target: y }) => x != y,
            (x, y) if x.type_name() == y.type_name() => x != y,
            _ => return self.emit('T', path),
        };
        if content_changed {
            self.emit('M', path)
        } else if !meta_same {
            self.emit('U', path)
        } else {
            Ok(())
        }
    }
}

pub fn run(cat: &Catalog, args: Args, json: bool) -> Result<Status> {
    let all = cat.snapshots()?;
    let (from_id, from) = resolve(&all, &args.from, &SnapshotFilter::default())?;
    let (to_id, to) = resolve(&all, &args.to, &SnapshotFilter::default())?;
    let mut d = Differ {
        cat,
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        counts: Counts::default(),
        changes: json.then(Vec::new),
    };
    d.trees(from.tree, to.tree, "")?;
    if let Some(changes) = d.changes.take() {
        drop(d.out);
        super::json::print(&DiffJson {
            from: from_id.to_hex(),
            to: to_id.to_hex(),
            changes,
            counts: d.counts,
        })?;
        return Ok(Status::Success);
    }
    let c = &d.counts;
    writeln!(
        d.out,
        "{} added, {} removed, {} modified, {} metadata only",
        c.added, c.removed, c.modified, c.metadata
    )?;
    d.out.flush()?;
    Ok(Status::Success)
}
