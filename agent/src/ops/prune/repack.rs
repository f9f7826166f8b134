//! Repacking (format §10.3 step 1): the live blobs of partly used packs
//! are written into new packs by an ordinary session (lease, packs, index,
//! a commit with no snapshot) that commits before the plan is published;
//! the old packs are then condemned with the unused ones. A blob that has
//! a copy in a pack not being repacked is not copied again. Blobs are
//! copied in their stored form: decrypted and encrypted again under the new
//! pack's key, never decompressed, hashed or compressed again.

use crate::backend::ErrorKind;
use crate::catalog::{Catalog, PackRef, PackUsage};
use crate::error::{Context, Error, Result};
use crate::ops::backup::pipeline_options;
use crate::pipeline::{self, Target};
use crate::repo::Repository;
use crate::session::Session;
use crate::stats::Stats;
use bytes::Bytes;
use cairn_repo_format::{BlobEntry, ObjectName, PackCipher, PackName, PackSet};
use futures::StreamExt;
use std::sync::Arc;

/// Blobs queued between the downloads and the pipeline.
const QUEUED: usize = 64;

/// Pack reads in flight while the pack before is decrypted. Reading is
/// most of a repack's time when the packs are not cached (a prune reads
/// every pack it repacks whole): reading only after the previous pack was
/// sent on, the 30-day benchmark's prune took 3.7-3.9 s cold; reading one
/// ahead, 2.7-2.9 s at 82-89 MiB peak RSS; two ahead, no faster, at
/// 130-136 MiB (docs/benchmarks.md).
const READS_AHEAD: usize = 1;

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
        index_file_blobs: crate::session::index_file_blobs()?,
        list_ids: crate::session::list_ids()?,
    };
    let (tx, rx) = crossbeam_channel::bounded::<(BlobEntry, Bytes)>(QUEUED);
    let produce = pipeline::run(
        target,
        pipeline_options(repo, 2),
        stats.clone(),
        move |sink| {
            for (e, data) in rx {
                sink.submit_stored(e.kind, e.id, e.raw_len as usize, e.compression, data)?;
            }
            Ok(())
        },
    );
    let fetch = async move {
        let (read_tx, mut read_rx) = tokio::sync::mpsc::channel(1);
        let reads = async move {
            // The (lazy) futures are made before the stream: a closure
            // in the stream's type, taking a borrowed argument, makes the
            // whole future not provably Send (the agent spawns prunes).
            let pending: Vec<_> = packs.iter().map(|u| read_live(repo, private, u)).collect();
            let mut reads = futures::stream::iter(pending).buffered(READS_AHEAD);
            while let Some(read) = reads.next().await {
                if read_tx.send(read?).await.is_err() {
                    break;
                }
            }
            Ok::<_, Error>(())
        };
        let opens = async move {
            while let Some(read) = read_rx.recv().await {
                send_live(repo, read, &tx).await?;
            }
            Ok::<_, Error>(())
        };
        let (read, opened) = tokio::join!(reads, opens);
        // A failed read is the cause; the decryption then stopped early.
        read.and(opened)
    };
    let (produced, fetched) = tokio::join!(produce, fetch);
    let written = match (produced, fetched) {
        (Ok(((), written)), Ok(())) => written,
        (Err(e), _) => return Err(session.abandon(repo, e.into()).await),
        (_, Err(e)) => return Err(session.abandon(repo, e).await),
    };
    let copied = Stats::get(&stats.stored_bytes);
    let index = match session.index_rest(repo, &written).await {
        Ok(index) => index,
        Err(e) => return Err(session.abandon(repo, e).await),
    };
    let commit = cairn_repo_format::Commit {
        index,
        packs: written.pack_count(),
        ..session.empty_commit()
    };
    session.close(repo, commit).await?;
    tracing::info!(
        "repacked {} partly used pack(s) into {} new one(s)",
        names.len(),
        written.pack_count()
    );
    Ok((names, copied))
}

/// A pack read whole, and its live blobs.
struct LiveRead {
    pack: PackRef,
    entries: Vec<BlobEntry>,
    data: Bytes,
}

/// Reads one pack and finds its live blobs.
async fn read_live(repo: &Repository, private: &Catalog, usage: &PackUsage) -> Result<LiveRead> {
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
    Ok(LiveRead {
        pack,
        entries,
        data,
    })
}

/// Sends a pack's live blobs to the pipeline, decrypted (authenticated)
/// and still in their stored form.
async fn send_live(
    repo: &Repository,
    read: LiveRead,
    tx: &crossbeam_channel::Sender<(BlobEntry, Bytes)>,
) -> Result<()> {
    let LiveRead {
        pack,
        entries,
        data,
    } = read;
    let keys = repo.keys.clone();
    let tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let cipher = PackCipher::new(&keys.enc, pack.session, pack.id);
        for e in entries {
            let from = usize::try_from(e.offset)?;
            let stored = data
                .get(from..from + e.stored_len as usize)
                .ok_or_else(|| {
                    Error::Corrupt(format!("{} is shorter than its index says", cipher.name()))
                })?;
            let plain = cipher.open_stored(&e, stored).map_err(|err| {
                Error::Corrupt(format!("{err}; nothing was deleted. Run `cairn check`"))
            })?;
            if tx.send((e, Bytes::from(plain))).is_err() {
                // The pipeline stopped; its error is the one to report.
                break;
            }
        }
        Ok::<_, Error>(())
    })
    .await?
}
