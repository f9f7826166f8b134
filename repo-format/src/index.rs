//! Index files (format §6): which blobs each pack of a session holds.

use crate::crypto::EncKey;
use crate::error::FormatError;
use crate::ids::{IndexId, PackId, SessionId};
use crate::names::ObjectName;
use crate::pack::{decode_entries, BlobEntry, ENTRY_LEN, MIN_PACK_OVERHEAD};
use crate::sealed::{self, INDEX};
use crate::wire::Reader;
use std::collections::HashSet;

/// A file of packs of its own session only.
const OWN_PACKS: u8 = 1;
/// A file whose packs name their sessions (consolidated index files).
const ANY_PACKS: u8 = 2;

/// One pack and its blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPack {
    /// The session of the pack (`packs/<session>/<id>`).
    pub session: SessionId,
    /// The pack.
    pub id: PackId,
    /// Its length in bytes.
    pub length: u64,
    /// Its blobs, in pack order.
    pub blobs: Vec<BlobEntry>,
}

/// The contents of one index file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// The packs it describes.
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    /// The binary payload of the file as session `session` writes it:
    /// version 1 if every pack is that session's own, else version 2.
    pub fn encode(&self, session: SessionId) -> Vec<u8> {
        let version = if self.packs.iter().all(|p| p.session == session) {
            OWN_PACKS
        } else {
            ANY_PACKS
        };
        let per_pack = if version == ANY_PACKS { 76 } else { 44 };
        let n: usize = self
            .packs
            .iter()
            .map(|p| per_pack + ENTRY_LEN * p.blobs.len())
            .sum();
        let mut out = Vec::with_capacity(8 + n);
        out.push(version);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(
            &u32::try_from(self.packs.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for p in &self.packs {
            if version == ANY_PACKS {
                out.extend_from_slice(p.session.as_bytes());
            }
            out.extend_from_slice(p.id.as_bytes());
            out.extend_from_slice(&p.length.to_le_bytes());
            out.extend_from_slice(
                &u32::try_from(p.blobs.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            for e in &p.blobs {
                e.encode(&mut out);
            }
        }
        out
    }

    /// Decodes the payload of an index file of session `session`.
    ///
    /// # Errors
    /// [`FormatError`] for anything format §6 does not allow.
    pub fn decode(data: &[u8], session: SessionId) -> Result<Self, FormatError> {
        let what = "index";
        let mut r = Reader::new(what, data);
        let version = r.u8()?;
        if version != ANY_PACKS {
            FormatError::check_version(what, version, OWN_PACKS)?;
        }
        r.reserved(3)?;
        let count = r.u32()? as usize;
        let per_pack = if version == ANY_PACKS { 76 } else { 44 };
        // Bound the allocation by the input.
        if count.saturating_mul(per_pack) > r.remaining() {
            return Err(FormatError::Truncated {
                what: what.into(),
                need: (count as u64).saturating_mul(per_pack as u64),
                have: r.remaining() as u64,
            });
        }
        let mut packs = Vec::with_capacity(count);
        let mut seen = HashSet::with_capacity(count);
        for _ in 0..count {
            let session = if version == ANY_PACKS {
                SessionId::from_bytes(r.array()?)
            } else {
                session
            };
            let id = PackId::from_bytes(r.array()?);
            if !seen.insert((session, id)) {
                return Err(FormatError::invalid(
                    what,
                    format!("pack {} listed twice", id.short()),
                ));
            }
            let length = r.u64()?;
            let n = r.u32()?;
            let (blobs, region) = decode_entries(&mut r, what, n)?;
            if region.saturating_add(MIN_PACK_OVERHEAD) > length {
                return Err(FormatError::invalid(
                    what,
                    format!("pack {} is shorter than its blobs", id.short()),
                ));
            }
            packs.push(IndexPack {
                session,
                id,
                length,
                blobs,
            });
        }
        r.finish()?;
        Ok(IndexFile { packs })
    }

    /// Encrypts as `index/<session>/<id>`.
    pub fn seal(&self, enc: &EncKey, session: SessionId, id: IndexId) -> Vec<u8> {
        sealed::seal(
            enc,
            INDEX,
            &ObjectName::Index(session, id).path(),
            &self.encode(session),
        )
    }

    /// Decrypts and decodes `index/<session>/<id>`.
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or decoding.
    pub fn open(
        enc: &EncKey,
        session: SessionId,
        id: IndexId,
        data: &[u8],
    ) -> Result<Self, FormatError> {
        Self::decode(
            &sealed::open(enc, INDEX, &ObjectName::Index(session, id).path(), data)?,
            session,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChunkId;
    use crate::pack::{BlobKind, Compression};
    use proptest::prelude::*;

    fn entries(lens: &[u32]) -> Vec<BlobEntry> {
        let mut off = 0;
        lens.iter()
            .enumerate()
            .map(|(i, l)| {
                let e = BlobEntry {
                    id: ChunkId::from_bytes([u8::try_from(i % 256).unwrap_or(0); 32]),
                    offset: off,
                    stored_len: l + 16,
                    raw_len: *l,
                    number: u32::try_from(i).unwrap_or(0),
                    kind: BlobKind::Data,
                    compression: Compression::None,
                };
                off += u64::from(l + 16);
                e
            })
            .collect()
    }

    proptest! {
        #[test]
        fn round_trip(packs in proptest::collection::vec(proptest::collection::vec(1u32..100_000, 0..30), 0..8)) {
            let own = SessionId::random();
            let idx = IndexFile { packs: packs.iter().map(|l| IndexPack { session: own, id: PackId::random(), length: 1 << 30, blobs: entries(l) }).collect() };
            let data = idx.encode(own);
            prop_assert_eq!(data[0], 1);
            prop_assert_eq!(IndexFile::decode(&data, own).ok(), Some(idx.clone()));
            // Written by another session (consolidated): version 2, read back the same.
            let other = SessionId::random();
            let data = idx.encode(other);
            prop_assert_eq!(data[0], if idx.packs.is_empty() { 1 } else { 2 });
            prop_assert_eq!(IndexFile::decode(&data, other).ok(), Some(idx));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = IndexFile::decode(&data, SessionId::random());
        }
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        let mut d = vec![1, 0, 0, 0];
        d.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            IndexFile::decode(&d, SessionId::random()),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn duplicate_pack_rejected() {
        let session = SessionId::random();
        let p = IndexPack {
            session,
            id: PackId::random(),
            length: 1 << 20,
            blobs: entries(&[5]),
        };
        let idx = IndexFile {
            packs: vec![p.clone(), p],
        };
        assert!(IndexFile::decode(&idx.encode(session), session).is_err());
    }
}
