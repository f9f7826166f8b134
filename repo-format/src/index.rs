//! Index files (format §6): which blobs each pack of a session holds.

use crate::crypto::EncKey;
use crate::error::FormatError;
use crate::ids::{IndexId, PackId, SessionId};
use crate::names::ObjectName;
use crate::pack::{decode_entries, BlobEntry, ENTRY_LEN, MIN_PACK_OVERHEAD};
use crate::sealed::{self, INDEX};
use crate::wire::Reader;
use std::collections::HashSet;

const VERSION: u8 = 1;

/// One pack and its blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPack {
    /// The pack (in the index file's session).
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
    /// The binary payload.
    pub fn encode(&self) -> Vec<u8> {
        let n: usize = self
            .packs
            .iter()
            .map(|p| 44 + ENTRY_LEN * p.blobs.len())
            .sum();
        let mut out = Vec::with_capacity(8 + n);
        out.push(VERSION);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(
            &u32::try_from(self.packs.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for p in &self.packs {
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

    /// Decodes a payload.
    ///
    /// # Errors
    /// [`FormatError`] for anything format §6 does not allow.
    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let what = "index";
        let mut r = Reader::new(what, data);
        let version = r.u8()?;
        FormatError::check_version(what, version, VERSION)?;
        r.reserved(3)?;
        let count = r.u32()? as usize;
        // Each pack takes at least 44 bytes: bound the allocation by the input.
        if count.saturating_mul(44) > r.remaining() {
            return Err(FormatError::Truncated {
                what: what.into(),
                need: (count as u64).saturating_mul(44),
                have: r.remaining() as u64,
            });
        }
        let mut packs = Vec::with_capacity(count);
        let mut seen = HashSet::with_capacity(count);
        for _ in 0..count {
            let id = PackId::from_bytes(r.array()?);
            if !seen.insert(id) {
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
            packs.push(IndexPack { id, length, blobs });
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
            &self.encode(),
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
        Self::decode(&sealed::open(
            enc,
            INDEX,
            &ObjectName::Index(session, id).path(),
            data,
        )?)
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
            let idx = IndexFile { packs: packs.iter().map(|l| IndexPack { id: PackId::random(), length: 1 << 30, blobs: entries(l) }).collect() };
            prop_assert_eq!(IndexFile::decode(&idx.encode()).ok(), Some(idx));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = IndexFile::decode(&data);
        }
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        let mut d = vec![1, 0, 0, 0];
        d.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            IndexFile::decode(&d),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn duplicate_pack_rejected() {
        let p = IndexPack {
            id: PackId::random(),
            length: 1 << 20,
            blobs: entries(&[5]),
        };
        let idx = IndexFile {
            packs: vec![p.clone(), p],
        };
        assert!(IndexFile::decode(&idx.encode()).is_err());
    }
}
