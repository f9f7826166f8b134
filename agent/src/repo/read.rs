//! Reading blobs back: located through the index, grouped by pack, read with
//! ranges aligned to fixed windows (never exact blob boundaries, which access
//! logs would reveal), several reads in flight, decrypted and verified on
//! blocking threads.

use super::index::{BlobIndex, PackRef};
use super::Repository;
use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use cairn_repo_format::{BlobDecompressor, BlobEntry, ChunkId, ObjectName, PackCipher};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;

/// Reads are aligned to multiples of this many bytes.
pub const WINDOW: u64 = 1 << 20;
/// Neighbouring windows are merged into one read up to this size.
pub const MAX_READ: u64 = 16 << 20;
/// Reads in flight.
pub const READ_CONCURRENCY: usize = 4;

/// One ranged read and the blobs it covers.
#[derive(Debug)]
struct Read {
    pack: PackRef,
    start: u64,
    end: u64,
    blobs: Vec<(usize, BlobEntry)>,
}

type PackKey = (cairn_repo_format::SessionId, cairn_repo_format::PackId);
type Located = (usize, PackRef, BlobEntry);

/// Groups the blobs by pack and merges their aligned windows into reads.
fn plan(located: Vec<Located>) -> Vec<Read> {
    let mut by_pack: HashMap<PackKey, Vec<Located>> = HashMap::new();
    for l in located {
        by_pack.entry((l.1.session, l.1.id)).or_default().push(l);
    }
    let mut reads = Vec::new();
    for (_, mut blobs) in by_pack {
        blobs.sort_by_key(|(_, _, e)| e.offset);
        let mut cur: Option<Read> = None;
        for (slot, pack, e) in blobs {
            let start = e.offset / WINDOW * WINDOW;
            let end = (e.offset + u64::from(e.stored_len))
                .div_ceil(WINDOW)
                .saturating_mul(WINDOW)
                .min(pack.length);
            match &mut cur {
                Some(r) if start <= r.end && end.max(r.end) - r.start <= MAX_READ => {
                    r.end = r.end.max(end);
                    r.blobs.push((slot, e));
                }
                _ => {
                    reads.extend(cur.take());
                    cur = Some(Read {
                        pack,
                        start,
                        end,
                        blobs: vec![(slot, e)],
                    });
                }
            }
        }
        reads.extend(cur);
    }
    reads
}

/// Reads, decrypts and verifies blobs; returns their plaintexts in the order
/// of `ids` (an id may repeat).
pub async fn read_blobs(
    repo: &Repository,
    index: &BlobIndex,
    ids: &[ChunkId],
) -> Result<Vec<Bytes>> {
    let mut slot_of: HashMap<ChunkId, usize> = HashMap::new();
    let mut located = Vec::new();
    for id in ids {
        if slot_of.contains_key(id) {
            continue;
        }
        let (pack, entry) = index.get(id).ok_or_else(|| {
            anyhow!("blob {id} is not in any committed index: the repository is missing data")
        })?;
        let slot = slot_of.len();
        slot_of.insert(*id, slot);
        located.push((slot, pack, entry));
    }
    let mut out: Vec<Option<Bytes>> = vec![None; slot_of.len()];
    let decoded: Vec<Vec<(usize, Bytes)>> = futures::stream::iter(plan(located))
        .map(|read| fetch_and_open(repo, read))
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    for (slot, bytes) in decoded.into_iter().flatten() {
        out[slot] = Some(bytes);
    }
    ids.iter()
        .map(|id| {
            slot_of
                .get(id)
                .and_then(|s| out[*s].clone())
                .ok_or_else(|| anyhow!("blob {id} was planned but not read"))
        })
        .collect()
}

async fn fetch_and_open(repo: &Repository, read: Read) -> Result<Vec<(usize, Bytes)>> {
    let name = ObjectName::Pack(read.pack.session, read.pack.id);
    let data = repo
        .backend
        .get_range(&name, read.start, read.end - read.start)
        .await
        .with_context(|| format!("reading pack {name}"))?;
    let keys = repo.keys.clone();
    tokio::task::spawn_blocking(move || {
        let cipher = PackCipher::new(&keys.enc, read.pack.session, read.pack.id);
        let mut dec = BlobDecompressor::new()?;
        let mut out = Vec::with_capacity(read.blobs.len());
        for (slot, e) in &read.blobs {
            let from = usize::try_from(e.offset - read.start)?;
            let to = from + e.stored_len as usize;
            let stored = data.get(from..to).ok_or_else(|| {
                anyhow!(
                    "pack {} is shorter than its index says (blob {} ends at {})",
                    cipher.name(),
                    e.id,
                    e.offset + u64::from(e.stored_len)
                )
            })?;
            let plain = cipher.open_blob(&keys.id, e, stored, &mut dec)?;
            out.push((*slot, Bytes::from(plain)));
        }
        Ok(out)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo_format::{BlobKind, Compression, PackId, SessionId};

    fn entry(offset: u64, len: u32, n: u32) -> BlobEntry {
        BlobEntry {
            id: ChunkId::from_bytes([u8::try_from(n % 256).unwrap_or(0); 32]),
            offset,
            stored_len: len,
            raw_len: len - 16,
            number: n,
            kind: BlobKind::Data,
            compression: Compression::None,
        }
    }

    #[test]
    fn reads_are_window_aligned_and_coalesced() {
        let pack = PackRef {
            session: SessionId::random(),
            id: PackId::random(),
            length: 40 << 20,
        };
        let other = PackRef {
            session: pack.session,
            id: PackId::random(),
            length: 3 << 20,
        };
        let located = vec![
            (0, pack, entry(100, 1000, 0)),
            (1, pack, entry(1100, 2_000_000, 1)),
            (2, other, entry(5, 500, 0)),
            (3, pack, entry(30 << 20, 1000, 2)),
        ];
        let mut reads = plan(located);
        reads.sort_by_key(|r| (r.pack.length, r.start));
        let spans: Vec<(u64, u64, usize)> = reads
            .iter()
            .map(|r| (r.start, r.end, r.blobs.len()))
            .collect();
        assert_eq!(
            spans,
            vec![(0, 1 << 20, 1), (0, 2 << 20, 2), (30 << 20, 31 << 20, 1)]
        );
        for r in &reads {
            assert_eq!(r.start % WINDOW, 0);
            assert!(r.end % WINDOW == 0 || r.end == r.pack.length);
        }
    }
}
