//! Reading blobs back: located through the catalog, grouped by pack, read with
//! ranges aligned to fixed windows (never exact blob boundaries, which access
//! logs would reveal), several reads in flight, decrypted and verified on
//! blocking threads.

use super::Repository;
use crate::backend::ErrorKind;
use crate::catalog::{Catalog, PackRef};
use crate::error::{Context, Error, Result};
use crate::stats::Stats;
use bytes::Bytes;
use cairn_repo_format::{BlobDecompressor, BlobEntry, BlobKind, ChunkId, ObjectName, PackCipher};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;

/// Reads are aligned to multiples of this many bytes.
pub const WINDOW: u64 = 1 << 20;
/// Reads in flight.
pub const READ_CONCURRENCY: usize = 4;

/// One ranged read and the blobs it covers.
#[derive(Debug)]
pub struct Read {
    /// The pack.
    pub pack: PackRef,
    /// First byte (a window boundary).
    pub start: u64,
    /// End (a window boundary, or the pack's end).
    pub end: u64,
    /// The blobs it covers: (position, entry).
    pub blobs: Vec<(usize, BlobEntry)>,
}

type PackKey = (cairn_repo_format::SessionId, cairn_repo_format::PackId);
type Located = (usize, PackRef, BlobEntry);

/// Groups the blobs by pack and merges their aligned windows into reads of
/// up to `max_read` bytes ([`crate::backend::ReadProfile`]).
fn plan(located: Vec<Located>, max_read: u64) -> Vec<Read> {
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
                Some(r) if start <= r.end && end.max(r.end) - r.start <= max_read => {
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

/// Why one blob cannot be read back intact: its pack is missing or shorter
/// than its index says, or the blob fails authentication or its id check.
/// Other blobs can still be read; a tree restore restores the files that do
/// not need this one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Damaged(pub Arc<str>);

impl Damaged {
    pub(crate) fn new(why: impl std::fmt::Display) -> Self {
        Self(why.to_string().into())
    }
}

impl From<Damaged> for Error {
    fn from(e: Damaged) -> Self {
        Error::Corrupt(e.to_string())
    }
}

/// A blob's plaintext, or why it is damaged.
pub type Opened = Result<Bytes, Damaged>;

/// The blobs of one read, by position: each as an [`Opener`] made it, or
/// why it is damaged.
pub type ReadBatch<T> = Vec<(usize, Result<T, Damaged>)>;

/// What a read makes of each blob it fetched: given the pack's cipher, the
/// blob's entry, its encrypted bytes and a decompressor (on a blocking
/// thread), the blob as the caller wants it, authenticated and verified.
pub trait Opener:
    Fn(
        &PackCipher,
        &BlobEntry,
        &[u8],
        &mut BlobDecompressor,
    ) -> Result<Self::Out, cairn_repo_format::BlobError>
    + Clone
    + Send
    + 'static
{
    /// The blob as the caller wants it.
    type Out: Send + 'static;
}

impl<F, T> Opener for F
where
    F: Fn(
            &PackCipher,
            &BlobEntry,
            &[u8],
            &mut BlobDecompressor,
        ) -> Result<T, cairn_repo_format::BlobError>
        + Clone
        + Send
        + 'static,
    T: Send + 'static,
{
    type Out = T;
}

/// Why a blob the catalog does not locate cannot be read.
fn unavailable(cat: &Catalog, id: &ChunkId) -> Result<Damaged> {
    Ok(match cat.missing_home(id)? {
        Some(p) => Damaged::new(format_args!(
            "blob {id} is only in pack {}, which is missing from the repository: the repository is inconsistent",
            ObjectName::Pack(p.session, p.id)
        )),
        None => Damaged::new(format_args!(
            "blob {id} is not in any committed index: the repository is missing data"
        )),
    })
}

/// Where each of `ids` is, in one read transaction of the catalog, or an
/// error naming the first that cannot be read and why.
///
/// # Errors
/// If a blob is in no usable pack, or the catalog cannot be read.
pub fn locate_all(cat: &Catalog, ids: &[ChunkId]) -> Result<Vec<(ChunkId, PackRef, BlobEntry)>> {
    let found = cat.locate_all(ids)?;
    ids.iter()
        .zip(found)
        .map(|(id, f)| match f {
            Some((pack, entry)) => Ok((*id, pack, entry)),
            None => Err(unavailable(cat, id)?.into()),
        })
        .collect()
}

/// The distinct ids, in first-seen order, and each id's position among them.
pub fn distinct<'a>(
    ids: impl IntoIterator<Item = &'a ChunkId>,
) -> (Vec<ChunkId>, HashMap<ChunkId, usize>) {
    let mut slot_of: HashMap<ChunkId, usize> = HashMap::new();
    let mut out = Vec::new();
    for id in ids {
        slot_of.entry(*id).or_insert_with(|| {
            out.push(*id);
            out.len() - 1
        });
    }
    (out, slot_of)
}

/// Locates distinct blobs and plans the reads that fetch them; a blob is
/// known by its position in `ids`. Blobs the repository cannot provide are
/// returned apart, with why.
///
/// # Errors
/// If the catalog cannot be read.
pub fn plan_reads(repo: &Repository, cat: &Catalog, ids: &[ChunkId]) -> Result<Plan> {
    let mut located = Vec::with_capacity(ids.len());
    let mut unlocated = Vec::new();
    for (slot, (id, found)) in ids.iter().zip(cat.locate_all(ids)?).enumerate() {
        match found {
            Some((pack, entry)) => located.push((slot, pack, entry)),
            None => unlocated.push((slot, unavailable(cat, id)?)),
        }
    }
    Ok(Plan {
        reads: plan(located, repo.backend.read_profile().max_read),
        unlocated,
    })
}

/// The reads that fetch a set of blobs, and the blobs no read can fetch.
#[derive(Debug)]
pub struct Plan {
    /// Ranged reads.
    pub reads: Vec<Read>,
    /// Blobs the repository cannot provide (by position), with why.
    pub unlocated: Vec<(usize, Damaged)>,
}

/// Runs planned reads, several at once; yields the blobs of each read as
/// (position, verified plaintext or why it is damaged) when it completes,
/// in any order. A read that fails for another reason (the storage refuses,
/// retries are spent) ends the stream with that error.
pub fn run_reads<'a>(
    repo: &'a Repository,
    cat: &'a Catalog,
    reads: Vec<Read>,
) -> impl futures::Stream<Item = Result<Vec<(usize, Opened)>>> + 'a {
    let ids = repo.keys.id.clone();
    run_reads_with(repo, cat, reads, move |cipher, e, stored, dec| {
        cipher.open_blob(&ids, e, stored, dec).map(Bytes::from)
    })
}

/// [`run_reads`], each blob made what `open` makes of it.
pub fn run_reads_with<'a, O: Opener>(
    repo: &'a Repository,
    cat: &'a Catalog,
    reads: Vec<Read>,
    open: O,
) -> impl futures::Stream<Item = Result<ReadBatch<O::Out>>> + 'a {
    futures::stream::iter(reads)
        .map(move |read| fetch_and_open(repo, cat, read, open.clone()))
        .buffer_unordered(READ_CONCURRENCY)
}

/// Reads, decrypts and verifies blobs; returns their plaintexts in the order
/// of `ids` (an id may repeat).
pub async fn read_blobs(repo: &Repository, cat: &Catalog, ids: &[ChunkId]) -> Result<Vec<Bytes>> {
    read_located(repo, cat, &locate_all(cat, ids)?).await
}

/// [`read_blobs`] for blobs already located.
pub async fn read_located(
    repo: &Repository,
    cat: &Catalog,
    blobs: &[(ChunkId, PackRef, BlobEntry)],
) -> Result<Vec<Bytes>> {
    let (ids, slot_of) = distinct(blobs.iter().map(|(id, _, _)| id));
    let mut planned = Vec::with_capacity(ids.len());
    for (id, pack, entry) in blobs {
        if slot_of[id] == planned.len() {
            planned.push((planned.len(), *pack, *entry));
        }
    }
    let mut out: Vec<Option<Bytes>> = vec![None; ids.len()];
    let decoded: Vec<Vec<(usize, Opened)>> = run_reads(
        repo,
        cat,
        plan(planned, repo.backend.read_profile().max_read),
    )
    .try_collect()
    .await?;
    for (slot, bytes) in decoded.into_iter().flatten() {
        out[slot] = Some(bytes?);
    }
    blobs
        .iter()
        .map(|(id, _, _)| {
            out[slot_of[id]]
                .clone()
                .ok_or_else(|| Error::Internal(format!("blob {id} was planned but not read")))
        })
        .collect()
}

async fn fetch_and_open<O: Opener>(
    repo: &Repository,
    cat: &Catalog,
    read: Read,
    open: O,
) -> Result<ReadBatch<O::Out>> {
    let name = ObjectName::Pack(read.pack.session, read.pack.id);
    let data = match repo
        .backend
        .get_range(&name, read.start, read.end - read.start)
        .await
    {
        Ok(d) => d,
        Err(e) if e.kind == ErrorKind::NotFound => {
            // Never used again, never a reason to delete anything.
            cat.mark_missing(&read.pack)?;
            let why = Damaged::new(format_args!(
                "inconsistency: pack {name} is listed by a committed index but is not in the repository. Nothing was deleted; the catalog no longer uses it, so the next backup stores its data again"
            ));
            return Ok(read
                .blobs
                .iter()
                .map(|(slot, _)| (*slot, Err(why.clone())))
                .collect());
        }
        Err(e) => return Err(e).with_context(|| format!("reading pack {name}")),
    };
    let keys = repo.keys.clone();
    let reads = repo.read_stats();
    tokio::task::spawn_blocking(move || {
        let cipher = PackCipher::new(&keys.enc, read.pack.session, read.pack.id);
        let mut dec = BlobDecompressor::new()?;
        let mut out = Vec::with_capacity(read.blobs.len());
        for (slot, e) in &read.blobs {
            let from = usize::try_from(e.offset - read.start)?;
            let to = from + e.stored_len as usize;
            let opened = match data.get(from..to) {
                None => Err(Damaged::new(format_args!(
                    "pack {} is shorter than its index says (blob {} ends at {})",
                    cipher.name(),
                    e.id,
                    e.offset + u64::from(e.stored_len)
                ))),
                Some(stored) => open(&cipher, e, stored, &mut dec).map_err(Damaged::new),
            };
            if let (Ok(_), BlobKind::Data) = (&opened, e.kind) {
                Stats::add(&reads.bytes_read, u64::from(e.raw_len));
            }
            out.push((*slot, opened));
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
        let mut reads = plan(located, crate::backend::ReadProfile::LOCAL.max_read);
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
