//! `cairn find`: files by name or path across snapshots, from the catalog
//! alone.
//!
//! Patterns are those of `backup --exclude`: one without `/` matches
//! entries by name; one starting with `/` matches full paths in the snapshot
//! from its root, any other at any depth. `*`, `?` and `[...]` stay within
//! one name, `**` crosses directories; `-i` ignores case.

use super::json::{NodeJson, SnapshotJson};
use super::ls::line;
use super::{Status, UsageError};
use crate::catalog::Catalog;
use crate::filter::resolve;
use crate::source::describe;
use crate::source::files::path_glob;
use crate::util::format_time;
use anyhow::Result;
use cairn_repo_format::{ChunkId, Node, NodeKind};
use globset::GlobMatcher;
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name pattern (`*.conf`, `[Mm]akefile`), or path pattern if it holds
    /// a `/` (`/etc/**/*.conf` from the root, `nginx/*.conf` at any depth).
    pattern: String,
    /// Match without regard to case.
    #[arg(long, short = 'i')]
    ignore_case: bool,
    /// Only these snapshots (id prefix or `latest`; repeatable).
    #[arg(long = "snapshot")]
    pub(super) snapshots: Vec<String>,
    #[command(flatten)]
    pub(super) filter: super::filter::FilterArgs,
}

/// `find --json`: the matches of one snapshot.
#[derive(serde::Serialize)]
struct Found {
    snapshot: SnapshotJson,
    matches: Vec<NodeJson>,
}

type Matches = Rc<Vec<(String, Node)>>;

struct Finder<'a> {
    cat: &'a Catalog,
    pattern: GlobMatcher,
    by_path: bool,
    /// Name matches below a subtree, relative to it (name patterns only:
    /// they do not depend on where the subtree is).
    memo: HashMap<ChunkId, Matches>,
}

impl Finder<'_> {
    fn tree(&mut self, id: ChunkId, dir: &str) -> Result<Matches> {
        if !self.by_path {
            if let Some(m) = self.memo.get(&id) {
                return Ok(m.clone());
            }
        }
        let tree = self.cat.tree(&id)?;
        let mut out = Vec::new();
        for node in tree.nodes() {
            let name = String::from_utf8_lossy(&node.name);
            let path = format!("{dir}/{name}");
            // A name pattern is `/**/NAME`: matching the name alone is the
            // same, and lets a subtree's matches be shared.
            let hit = if self.by_path {
                self.pattern.is_match(&path)
            } else {
                self.pattern.is_match(format!("/{name}"))
            };
            if hit {
                out.push((format!("/{name}"), node.clone()));
            }
            if let NodeKind::Dir { subtree } = node.kind {
                let below = self.tree(subtree, &path)?;
                out.extend(
                    below
                        .iter()
                        .map(|(p, n)| (format!("/{name}{p}"), n.clone())),
                );
            }
        }
        let out = Rc::new(out);
        if !self.by_path {
            self.memo.insert(id, out.clone());
        }
        Ok(out)
    }
}

pub fn run(cat: &Catalog, args: Args, json: bool) -> Result<Status> {
    let all = cat.snapshots()?;
    let filter = args.filter.filter();
    let chosen: Vec<_> = if args.snapshots.is_empty() {
        let f = filter.normalized()?;
        all.iter().filter(|(_, s)| f.matches(s)).collect()
    } else {
        args.snapshots
            .iter()
            .map(|s| resolve(&all, s, &filter))
            .collect::<Result<_, _>>()?
    };
    let pattern = path_glob(&args.pattern, args.ignore_case)
        .map_err(|e| UsageError(e.clone()))?
        .compile_matcher();
    let mut finder = Finder {
        cat,
        pattern,
        by_path: args.pattern.trim_end_matches('/').contains('/'),
        memo: HashMap::new(),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut total = 0;
    let mut results = Vec::new();
    for (id, snap) in chosen {
        let found = finder.tree(snap.tree, "")?;
        if found.is_empty() {
            continue;
        }
        total += found.len();
        if json {
            results.push(Found {
                snapshot: SnapshotJson::new(id, snap),
                matches: found.iter().map(|(p, n)| NodeJson::new(n, p)).collect(),
            });
            continue;
        }
        writeln!(
            out,
            "snapshot {} of {} ({}):",
            id.short(),
            format_time(snap.time_ns),
            describe(&snap.source)
        )?;
        for (path, node) in found.iter() {
            line(&mut out, node, path)?;
        }
    }
    out.flush()?;
    if json {
        super::json::print(&results)?;
    }
    if total == 0 {
        eprintln!("no entry matches {:?}", args.pattern);
    }
    Ok(Status::Success)
}
