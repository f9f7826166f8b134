//! `check`: is the repository whole? The structure — every commit, index
//! file and snapshot reads and authenticates, every tree of every snapshot
//! that counts is there, every blob they reach is indexed in a pack that is
//! there with the length the index says — and, with `read_data`, every
//! blob of every pack (or of a subset) downloaded, decrypted and verified.
//! Every problem names the object and the snapshots it damages.
//!
//! Like prune, it reads the repository into a private catalog of its own:
//! what it reports never depends on a cache.

use crate::backend::ErrorKind;
use crate::cancel::Cancel;
use crate::catalog::{self, Catalog, PackRef};
use crate::error::{Context, Error, Result};
use crate::repo::Repository;
use crate::sync::{self, read_commits, read_listed, Counts, Trees};
use crate::util;
use cairn_repo_format::{
    BlobDecompressor, ChunkId, ObjectKind, ObjectName, PackCipher, PackName, SessionId, SnapshotId,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Sessions read at once.
const SESSIONS_AT_ONCE: usize = 4;
/// Packs read at once with `read_data`.
const PACKS_AT_ONCE: usize = 4;

/// Which packs `read_data` reads.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Subset {
    /// Every pack.
    All,
    /// Part `n` (1-based) of `of` equal parts, by pack id.
    Part {
        /// Which part.
        n: u32,
        /// Of how many.
        of: u32,
    },
    /// The part after the one this catalog read last (1 of `of` the first
    /// time): successive runs cover every pack.
    Next {
        /// Of how many parts.
        of: u32,
    },
    /// About this share of the packs, chosen at random.
    Percent(f64),
}

impl std::str::FromStr for Subset {
    type Err = String;

    /// `N/T`, `next/T` or `P%`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("{s:?} is not a subset: write N/T (part N of T), next/T (the part after the last one checked), or P% (a random share)")
        };
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(Subset::Percent(p));
        }
        let (n, of) = s.split_once('/').ok_or_else(bad)?;
        let of: u32 = of.trim().parse().map_err(|_| bad())?;
        if of == 0 {
            return Err(bad());
        }
        if n.trim() == "next" {
            return Ok(Subset::Next { of });
        }
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || n > of {
            return Err(bad());
        }
        Ok(Subset::Part { n, of })
    }
}

/// What to check.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckOptions {
    /// Also download and verify pack data.
    #[serde(default)]
    pub read_data: Option<Subset>,
}

/// One problem found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    /// The object it is about (`packs/…`, `index/…`, `snapshot …`).
    pub object: String,
    /// What is wrong.
    pub what: String,
    /// The snapshots it damages (those that cannot be restored whole).
    pub snapshots: Vec<SnapshotId>,
}

/// A session that has not finished: a backup running, or one that died.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unfinished {
    /// Its id.
    pub session: SessionId,
    /// Seconds since its lease was last written.
    #[serde(rename = "lease_age_seconds")]
    pub age_s: i64,
}

/// What `check` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// Commits read.
    pub sessions: usize,
    /// Snapshots that count.
    pub snapshots: usize,
    /// Packs the index lists.
    pub packs: usize,
    /// Packs read and verified whole (with `read_data`).
    pub packs_read: usize,
    /// Blobs verified (with `read_data`).
    pub blobs_read: u64,
    /// Bytes downloaded (with `read_data`).
    pub bytes_read: u64,
    /// Damage found.
    pub problems: Vec<Problem>,
    /// Packs no index lists (left by sessions that did not finish, or
    /// unused since a forget): `cairn prune` removes them.
    pub unreferenced_packs: usize,
    /// Their bytes.
    pub unreferenced_bytes: u64,
    /// Sessions with a lease and no commit.
    pub unfinished: Vec<Unfinished>,
}

impl CheckReport {
    /// Whether no damage was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the repository. `cat` (this machine's catalog) only remembers
/// which part `Subset::Next` read last.
///
/// # Errors
/// Storage failures that stop the check (damage is reported, not an
/// error).
pub async fn check(
    repo: &Repository,
    cat: &Arc<Catalog>,
    opts: &CheckOptions,
    cancel: &Cancel,
) -> Result<CheckReport> {
    let dir = tempfile::tempdir_in(cat.path().parent().unwrap_or(std::path::Path::new(".")))
        .context("creating the check's temporary catalog next to the catalog")?;
    let private = Arc::new(Catalog::private(
        dir.path(),
        &repo.config.repository_id,
        catalog::Auth::of(&repo.keys),
    )?);
    cancel
        .or_cancel(async {
            let mut report = CheckReport::default();
            structure(repo, &private, &mut report).await?;
            if let Some(subset) = opts.read_data {
                let subset = match subset {
                    Subset::Next { of } => {
                        let n = cat.next_part(of)?;
                        tracing::info!("reading part {n} of {of} of the packs");
                        Subset::Part { n, of }
                    }
                    other => other,
                };
                read_data(repo, &private, subset, &mut report).await?;
            }
            Ok::<_, Error>(report)
        })
        .await
}

/// Everything but the pack data.
async fn structure(
    repo: &Repository,
    private: &Arc<Catalog>,
    report: &mut CheckReport,
) -> Result<()> {
    // Commits, index files and snapshots, each read and authenticated.
    let sessions = sync::list_sessions(repo).await?;
    report.sessions = sessions.len();
    let mut counts = Counts::default();
    let mut commits = Vec::new();
    for (sid, read) in read_commits(repo, sessions.iter().copied(), &mut counts).await {
        match read {
            Ok(c) => commits.push(c),
            Err(e) => report.problems.push(Problem {
                object: ObjectName::Commit(sid).to_string(),
                what: format!("{e}; the session's snapshots are lost unless the object is restored (from a bucket version, say)"),
                snapshots: Vec::new(),
            }),
        }
    }
    let counts = &counts;
    let damaged: Vec<(Vec<SnapshotId>, SessionId, String)> = futures::stream::iter(commits)
        .map(|c| async move {
            let (sid, listed) = (c.session, c.snapshots.clone());
            read_listed(repo, c, counts)
                .await
                .err()
                .map(|e| (listed, sid, e.to_string()))
        })
        .buffer_unordered(SESSIONS_AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await;
    for (snapshots, sid, why) in damaged {
        report.problems.push(Problem {
            object: format!("session {}", sid.short()),
            what: why,
            snapshots: snapshots
                .into_iter()
                .filter(|s| !counts.forgotten.contains(s))
                .collect(),
        });
    }
    // Trees, and the blobs they reach.
    sync::sync(private, repo).await?;
    sync::fetch_trees(private, repo, Trees::All).await?;
    for (sid, root) in private.incomplete()? {
        report.problems.push(Problem {
            object: format!("snapshot {}", sid.short()),
            what: format!("its trees (root {}) cannot all be read; restore what can be with `cairn restore`, and see the warnings above for the pack", root.to_hex()),
            snapshots: vec![sid],
        });
    }
    let roots = private.roots()?;
    report.snapshots = roots.len();
    let cat = private.clone();
    tokio::task::spawn_blocking(move || cat.mark_all_live(true)).await??;
    let unindexed: HashSet<ChunkId> = private.live_unindexed()?.into_iter().collect();
    // Packs: each indexed one there, with its length.
    let present: HashMap<PackName, u64> = repo
        .backend
        .list_sizes(ObjectKind::Pack)
        .await
        .context("listing packs")?
        .into_iter()
        .filter_map(|(n, size)| match n {
            ObjectName::Pack(s, p) => Some(((s, p), size)),
            _ => None,
        })
        .collect();
    // Packs a read found missing while the trees were fetched too.
    let mut indexed = private.packs()?;
    indexed.extend(private.missing_packs()?);
    report.packs = indexed.len();
    let mut bad_packs: HashSet<PackName> = HashSet::new();
    let mut pack_problems = Vec::new();
    let listed: HashSet<PackName> = indexed.iter().map(|p| (p.session, p.id)).collect();
    for p in &indexed {
        let what = match present.get(&(p.session, p.id)) {
            None => {
                "missing: a committed index lists it but it is not in the repository".to_owned()
            }
            Some(&size) if size != p.length => {
                format!("{size} bytes, but the index says {}", p.length)
            }
            Some(_) => continue,
        };
        bad_packs.insert((p.session, p.id));
        pack_problems.push((*p, what));
    }
    for (p, what) in pack_problems {
        let lost = lost_blobs(private, &p, &bad_packs)?;
        let snapshots = private.snapshots_using(&lost)?;
        report.problems.push(Problem {
            object: ObjectName::Pack(p.session, p.id).to_string(),
            what,
            snapshots,
        });
    }
    if !unindexed.is_empty() {
        let snapshots = private.snapshots_using(&unindexed)?;
        report.problems.push(Problem {
            object: format!("{} blob(s)", unindexed.len()),
            what: format!(
                "reached from snapshots but listed by no valid index (blob {} first)",
                unindexed
                    .iter()
                    .next()
                    .map(|b| b.to_hex())
                    .unwrap_or_default()
            ),
            snapshots,
        });
    }
    for ((s, p), size) in &present {
        if !listed.contains(&(*s, *p)) {
            report.unreferenced_packs += 1;
            report.unreferenced_bytes += size;
        }
    }
    // Sessions that have not finished.
    let now = util::now_ns();
    for name in repo.backend.list(ObjectKind::Lease).await? {
        let ObjectName::Lease(s) = name else { continue };
        if sessions.contains(&s) {
            continue;
        }
        match repo.backend.stat(&name).await {
            Ok(stat) => report.unfinished.push(Unfinished {
                session: s,
                age_s: now.saturating_sub(stat.modified_ns) / 1_000_000_000,
            }),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("reading a lease"),
        }
    }
    Ok(())
}

/// The blobs of `pack` that have no copy in a pack outside `bad`.
fn lost_blobs(
    private: &Catalog,
    pack: &PackRef,
    bad: &HashSet<PackName>,
) -> Result<HashSet<ChunkId>> {
    let mut lost = HashSet::new();
    for e in private.blobs_in(pack)? {
        if !private.copy_outside(&e.id, bad)? {
            lost.insert(e.id);
        }
    }
    Ok(lost)
}

/// Whether a pack is in the subset.
fn chosen(pack: &PackRef, subset: Subset) -> bool {
    let key = u64::from_le_bytes(pack.id.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    match subset {
        Subset::All | Subset::Next { .. } => true,
        Subset::Part { n, of } => key % u64::from(of) == u64::from(n - 1),
        Subset::Percent(p) => rand::random::<f64>() * 100.0 < p,
    }
}

/// Downloads the packs of the subset and verifies every blob the index
/// lists in them.
async fn read_data(
    repo: &Repository,
    private: &Arc<Catalog>,
    subset: Subset,
    report: &mut CheckReport,
) -> Result<()> {
    let packs: Vec<PackRef> = private
        .packs()?
        .into_iter()
        .filter(|p| chosen(p, subset))
        .collect();
    let results: Vec<PackRead> = futures::stream::iter(packs)
        .map(|p| verify_pack(repo, private, p))
        .buffer_unordered(PACKS_AT_ONCE)
        .try_collect()
        .await?;
    let bad: HashSet<PackName> = results
        .iter()
        .filter(|r| !r.damaged.is_empty())
        .map(|r| (r.pack.session, r.pack.id))
        .collect();
    for PackRead {
        pack,
        blobs,
        bytes,
        damaged,
    } in results
    {
        report.packs_read += 1;
        report.blobs_read += blobs;
        report.bytes_read += bytes;
        if damaged.is_empty() {
            continue;
        }
        let mut lost = HashSet::new();
        for (id, _) in &damaged {
            if !private.copy_outside(id, &bad)? {
                lost.insert(*id);
            }
        }
        let snapshots = private.snapshots_using(&lost)?;
        report.problems.push(Problem {
            object: ObjectName::Pack(pack.session, pack.id).to_string(),
            what: format!("{} blob(s) damaged ({})", damaged.len(), damaged[0].1),
            snapshots,
        });
    }
    Ok(())
}

/// One pack read whole.
struct PackRead {
    pack: PackRef,
    /// Blobs verified.
    blobs: u64,
    /// Bytes downloaded.
    bytes: u64,
    /// The blobs that failed, and why.
    damaged: Vec<(ChunkId, String)>,
}

/// One pack, whole: its blobs as the index lists them, each decrypted and
/// checked against its id.
async fn verify_pack(repo: &Repository, private: &Arc<Catalog>, pack: PackRef) -> Result<PackRead> {
    let entries = private.blobs_in(&pack)?;
    let name = ObjectName::Pack(pack.session, pack.id);
    let data = match repo.backend.get(&name).await {
        Ok(d) => d,
        Err(e) if e.kind == ErrorKind::NotFound => {
            // Reported by the structure check already.
            return Ok(PackRead {
                pack,
                blobs: 0,
                bytes: 0,
                damaged: Vec::new(),
            });
        }
        Err(e) => return Err(e).with_context(|| format!("reading {name}")),
    };
    let keys = repo.keys.clone();
    let bytes = data.len() as u64;
    let n = entries.len() as u64;
    let damaged = tokio::task::spawn_blocking(move || {
        let cipher = PackCipher::new(&keys.enc, pack.session, pack.id);
        let mut dec = BlobDecompressor::new()?;
        let mut damaged = Vec::new();
        for e in &entries {
            let from = usize::try_from(e.offset).unwrap_or(usize::MAX);
            let to = from.saturating_add(e.stored_len as usize);
            let Some(stored) = data.get(from..to) else {
                damaged.push((e.id, "the pack is shorter than its index says".to_owned()));
                continue;
            };
            if let Err(err) = cipher.open_blob(&keys.id, e, stored, &mut dec) {
                damaged.push((e.id, err.to_string()));
            }
        }
        Ok::<_, Error>(damaged)
    })
    .await??;
    Ok(PackRead {
        pack,
        blobs: n,
        bytes,
        damaged,
    })
}
