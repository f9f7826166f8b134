//! Repacking (format §10.3 step 1): the live blobs of partly used packs
//! are written into new packs by an ordinary session (lease, packs, index,
//! a commit with no snapshot) that commits before the plan is published;
//! the old packs are then condemned with the unused ones. A blob that has
//! a copy in a pack not being repacked is not copied again.

use crate::backend::ErrorKind;
use crate::catalog::{Catalog, PackUsage};
use crate::error::{Context, Error, Result};
use crate::ops::backup::pipeline_options;
use crate::pipeline::{self, Target};
use crate::repo::Repository;
use crate::session::{index_groups, Session};
use crate::stats::Stats;
use bytes::Bytes;
use cairn_repo_format::{BlobDecompressor, BlobKind, ObjectName, PackCipher, PackName, PackSet};
use std::sync::Arc;

/// Blobs queued between the downloads and the pipeline.
const QUEUED: usize = 64;

/// Which partly used packs to repack: those whose unused share is above
/// `max_unused` (a fraction), most unused bytes first, until `max_bytes` of
/// live data would be copied.
pub(super) fn choose(
    usage: &[PackUsage],
    max_unused: f64,
    max_bytes: Option<u64>,
) -> Vec<PackUsage> {
    let mut candidates: Vec<PackUsage> = usage
        .iter()
        .filter(|u| u.live_blobs > 0 && u.live_blobs < u.blobs)
        .filter(|u| u.bytes > 0 && (u.bytes - u.live_bytes) as f64 > max_unused * u.bytes as f64)
        .copied()
        .collect();
    candidates.sort_by_key(|u| std::cmp::Reverse(u.bytes - u.live_bytes));
    let mut total = 0u64;
    candidates
        .into_iter()
        .take_while(|u| {
            total += u.live_bytes;
            max_bytes.is_none_or(|m| total <= m)
        })
        .collect()
}

/// Copies the live blobs of `packs` into new packs of a session of its own
/// and commits it; returns the packs repacked and the bytes copied.
pub(super) async fn repack(
    repo: &Repository,
    private: &Arc<Catalog>,
    packs: &[PackUsage],
) -> Result<(Vec<PackName>, u64)> {
    if packs.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let names: Vec<PackName> = packs.iter().map(|u| (u.pack.session, u.pack.id)).collect();
    let session = Session::start(repo).await?;
    let stats = Arc::new(Stats::default());
    let target = Target {
        backend: repo.backend.clone(),
        session: session.id,
        enc: repo.keys.enc.clone(),
        ids: repo.keys.id.clone(),
        catalog: private.clone(),
        avoid: Some(Arc::new(PackSet::new(names.clone()))),
    };
    let (tx, rx) = crossbeam_channel::bounded::<(BlobKind, Bytes)>(QUEUED);
    let produce = pipeline::run(
        target,
        pipeline_options(repo, 2),
        stats.clone(),
        move |sink| {
            let mut ids = Vec::new();
            for (kind, data) in rx {
                match kind {
                    BlobKind::Data => sink.submit_data(vec![data], &mut ids)?,
                    BlobKind::Tree => {
                        sink.submit_tree(data)?;
                    }
                }
            }
            Ok(())
        },
    );
    let fetch = async move {
        for u in packs {
            copy_live(repo, private, u, &tx).await?;
        }
        drop(tx);
        Ok::<_, Error>(())
    };
    let (produced, fetched) = tokio::join!(produce, fetch);
    let written = match (produced, fetched) {
        (Ok(((), written)), Ok(())) => written,
        (Err(e), _) => return Err(session.abandon(repo, e.into()).await),
        (_, Err(e)) => return Err(session.abandon(repo, e).await),
    };
    let copied = Stats::get(&stats.stored_bytes);
    let mut index = Vec::new();
    for group in index_groups(&written) {
        match session.write_index(repo, group).await {
            Ok(iid) => index.push(iid),
            Err(e) => return Err(session.abandon(repo, e).await),
        }
    }
    let commit = cairn_repo_format::Commit {
        index,
        packs: written.len() as u64,
        ..session.empty_commit()
    };
    session.close(repo, commit).await?;
    tracing::info!(
        "repacked {} partly used pack(s) into {} new one(s)",
        names.len(),
        written.len()
    );
    Ok((names, copied))
}

/// Reads one pack and sends its live blobs, decrypted and verified.
async fn copy_live(
    repo: &Repository,
    private: &Arc<Catalog>,
    usage: &PackUsage,
    tx: &crossbeam_channel::Sender<(BlobKind, Bytes)>,
) -> Result<()> {
    let pack = usage.pack;
    let mut entries = private.blobs_in(&pack)?;
    let live = private.live_of(&entries)?;
    entries.retain(|e| live.contains(&e.id));
    let name = ObjectName::Pack(pack.session, pack.id);
    let data = match repo.backend.get(&name).await {
        Ok(d) => d,
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Err(Error::Corrupt(format!(
                "{name} is listed by a committed index but is not in the repository; nothing was deleted. Run `cairn check`"
            )))
        }
        Err(e) => return Err(e).with_context(|| format!("reading {name} to repack it")),
    };
    let keys = repo.keys.clone();
    let tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let cipher = PackCipher::new(&keys.enc, pack.session, pack.id);
        let mut dec = BlobDecompressor::new()?;
        for e in &entries {
            let from = usize::try_from(e.offset)?;
            let stored = data
                .get(from..from + e.stored_len as usize)
                .ok_or_else(|| Error::Corrupt(format!("{name} is shorter than its index says")))?;
            let plain = cipher
                .open_blob(&keys.id, e, stored, &mut dec)
                .map_err(|err| {
                    Error::Corrupt(format!("{err}; nothing was deleted. Run `cairn check`"))
                })?;
            if tx.send((e.kind, Bytes::from(plain))).is_err() {
                // The pipeline stopped; its error is the one to report.
                break;
            }
        }
        Ok::<_, Error>(())
    })
    .await?
}
