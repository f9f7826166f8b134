//! `cairn find`: files by name or path across snapshots, from the catalog
//! alone.
//!
//! A pattern without `/` is matched against each entry's name; one with `/`
//! against its full path in the snapshot. `*` matches any run of bytes
//! (with a path pattern, across `/` too), `?` any one byte.

use super::ls::line;
use super::Status;
use crate::catalog::Catalog;
use crate::filter::resolve;
use crate::source::describe;
use crate::util::format_time;
use anyhow::Result;
use cairn_repo_format::{ChunkId, Node, NodeKind};
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name pattern (`*.conf`), or path pattern if it holds a `/` (`/etc/*.conf`).
    pattern: String,
    /// Only these snapshots (id prefix or `latest`; repeatable).
    #[arg(long = "snapshot")]
    pub(super) snapshots: Vec<String>,
    #[command(flatten)]
    pub(super) filter: super::filter::FilterArgs,
}

/// Whether `text` matches the wildcard `pattern` (`*` and `?`).
pub fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == b'?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

type Matches = Rc<Vec<(String, Node)>>;

struct Finder<'a> {
    cat: &'a Catalog,
    pattern: &'a [u8],
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
            let hit = if self.by_path {
                wildcard(self.pattern, path.as_bytes())
            } else {
                wildcard(self.pattern, &node.name)
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

pub fn run(cat: &Catalog, args: Args) -> Result<Status> {
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
    let mut finder = Finder {
        cat,
        pattern: args.pattern.as_bytes(),
        by_path: args.pattern.contains('/'),
        memo: HashMap::new(),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut total = 0;
    for (id, snap) in chosen {
        let found = finder.tree(snap.tree, "")?;
        if found.is_empty() {
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
        total += found.len();
    }
    out.flush()?;
    if total == 0 {
        eprintln!("no entry matches {:?}", args.pattern);
    }
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards() {
        for (p, t, ok) in [
            ("*.conf", "nginx.conf", true),
            ("*.conf", "nginx.conf.bak", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("/etc/*/x", "/etc/a/b/x", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxc", false),
        ] {
            assert_eq!(wildcard(p.as_bytes(), t.as_bytes()), ok, "{p} ~ {t}");
        }
    }
}
