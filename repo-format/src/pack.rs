//! Pack files (format §5): many encrypted blobs, random padding, an encrypted
//! trailing header, a plaintext trailer.

use crate::crypto::{Aead, EncKey, NonceDomain, CTX_PACK, TAG_LEN};
use crate::error::{BlobError, FormatError};
use crate::ids::{ChunkId, PackId, SessionId};
use crate::names::ObjectName;
use crate::wire::Reader;
use cairn_chunker::IdKey;
use rand::RngCore;

/// Length of one blob entry in a pack header or index file.
pub const ENTRY_LEN: usize = 56;
/// Length of the pack trailer.
pub const TRAILER_LEN: usize = 16;
/// Most blobs in one pack.
pub const MAX_BLOBS: u32 = 1 << 20;
/// Largest pack header (ciphertext with tag).
pub const MAX_HEADER: u32 = 64 << 20;
/// Largest plaintext of one blob.
pub const MAX_BLOB_RAW: u32 = 64 << 20;
/// Largest blob region of one pack.
pub const MAX_BLOB_REGION: u64 = (1 << 32) - 1;
const MAGIC: [u8; 8] = *b"CAIRNPAK";
const VERSION: u16 = 1;
const HEADER_VERSION: u8 = 1;
const HEADER_ALIGN: usize = 4096;
/// Bytes a pack has beyond its blob region, at the least: header and trailer.
pub(crate) const MIN_PACK_OVERHEAD: u64 = (HEADER_ALIGN + TAG_LEN + TRAILER_LEN) as u64;
/// Smallest possible header ciphertext: one aligned block plus the tag.
const MIN_HEADER: u32 = 4096 + TAG_U32;
const TAG_U32: u32 = 16;
const _: () = assert!(HEADER_ALIGN == 4096 && TAG_LEN == TAG_U32 as usize);

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A chunk of file or stream data.
    Data = 1,
    /// A tree (directory listing).
    Tree = 2,
    /// A large file's content list (format §7.4).
    List = 3,
}

/// How a blob's plaintext is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// zstd.
    Zstd = 1,
}

/// Where a blob is and how to read it (format §5, 56 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    /// Keyed BLAKE3 of the plaintext.
    pub id: ChunkId,
    /// Offset in the pack.
    pub offset: u64,
    /// Ciphertext length including the tag.
    pub stored_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
    /// Blob number in its pack: the nonce counter.
    pub number: u32,
    /// Data or tree.
    pub kind: BlobKind,
    /// Stored compressed or not.
    pub compression: Compression,
}

impl BlobEntry {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.number.to_le_bytes());
        out.push(self.kind as u8);
        out.push(self.compression as u8);
        out.extend_from_slice(&[0, 0]);
    }

    pub(crate) fn decode(r: &mut Reader<'_>, what: &str) -> Result<Self, FormatError> {
        let id = ChunkId::from_bytes(r.array()?);
        let offset = r.u64()?;
        let stored_len = r.u32()?;
        let raw_len = r.u32()?;
        let number = r.u32()?;
        let kind = match r.u8()? {
            1 => BlobKind::Data,
            2 => BlobKind::Tree,
            3 => BlobKind::List,
            k => return Err(FormatError::range(what, "blob kind", k.into())),
        };
        let compression = match r.u8()? {
            0 => Compression::None,
            1 => Compression::Zstd,
            c => return Err(FormatError::range(what, "blob compression", c.into())),
        };
        r.reserved(2)?;
        if raw_len == 0 || raw_len > MAX_BLOB_RAW {
            return Err(FormatError::range(what, "blob raw length", raw_len.into()));
        }
        let tag = TAG_U32;
        let ok = match compression {
            Compression::None => stored_len == raw_len + tag,
            Compression::Zstd => stored_len > tag && stored_len <= raw_len + tag,
        };
        if !ok {
            return Err(FormatError::range(
                what,
                "blob stored length",
                stored_len.into(),
            ));
        }
        Ok(BlobEntry {
            id,
            offset,
            stored_len,
            raw_len,
            number,
            kind,
            compression,
        })
    }
}

/// Reads `count` entries, checking the count against the bytes that remain
/// before allocating, and the entries against each other: numbered 0.., and
/// laid end to end from offset 0. Returns them and the blob region length.
pub(crate) fn decode_entries(
    r: &mut Reader<'_>,
    what: &str,
    count: u32,
) -> Result<(Vec<BlobEntry>, u64), FormatError> {
    if count > MAX_BLOBS {
        return Err(FormatError::range(what, "blob count", count.into()));
    }
    let count = count as usize;
    if count.saturating_mul(ENTRY_LEN) > r.remaining() {
        return Err(FormatError::Truncated {
            what: what.to_owned(),
            need: (count as u64).saturating_mul(ENTRY_LEN as u64),
            have: r.remaining() as u64,
        });
    }
    let mut entries = Vec::with_capacity(count);
    let mut end = 0u64;
    for i in 0..count {
        let e = BlobEntry::decode(r, what)?;
        if e.number as usize != i || e.offset != end {
            return Err(FormatError::invalid(
                what,
                format!("blob entry {i} is out of place"),
            ));
        }
        end += u64::from(e.stored_len);
        entries.push(e);
    }
    if end > MAX_BLOB_REGION {
        return Err(FormatError::range(what, "blob region length", end));
    }
    Ok((entries, end))
}

/// Padmé: rounds `len` up so that only `O(log log len)` bits of it remain.
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - len.leading_zeros(); // floor(log2 len)
    let s = 32 - e.leading_zeros(); // floor(log2 e) + 1
    let mask = (1u64 << (e - s)) - 1;
    (len + mask) & !mask
}

/// The AEAD of one pack: what is needed to read blobs and the header.
#[derive(Debug)]
pub struct PackCipher {
    aead: Aead,
    name: String,
}

impl PackCipher {
    /// The cipher of pack `packs/<session>/<id>`.
    pub fn new(enc: &EncKey, session: SessionId, id: PackId) -> Self {
        Self {
            aead: enc.subkey(CTX_PACK, id.as_bytes()),
            name: ObjectName::Pack(session, id).path(),
        }
    }

    /// The pack's object name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decrypts, decompresses and verifies one blob. `stored` is exactly the
    /// blob's `stored_len` bytes at its offset.
    ///
    /// # Errors
    /// [`BlobError`] naming the pack and blob if the bytes fail authentication,
    /// do not decompress to `raw_len`, or do not hash to the blob's id.
    pub fn open_blob(
        &self,
        ids: &IdKey,
        entry: &BlobEntry,
        stored: &[u8],
        dec: &mut BlobDecompressor,
    ) -> Result<Vec<u8>, BlobError> {
        let buf = self.open_stored(entry, stored)?;
        Ok(match self.plaintext(ids, entry, &buf, dec)? {
            std::borrow::Cow::Borrowed(_) => buf,
            std::borrow::Cow::Owned(plain) => plain,
        })
    }

    /// The plaintext of a blob's stored form as [`Self::open_stored`] gives
    /// it, decompressed and verified: it has the entry's raw length and
    /// hashes to its id under `ids`. Borrowed when nothing was compressed.
    ///
    /// # Errors
    /// [`BlobError`] naming the pack and blob if the bytes do not
    /// decompress to `raw_len` or do not hash to the blob's id.
    pub fn plaintext<'a>(
        &self,
        ids: &IdKey,
        entry: &BlobEntry,
        stored: &'a [u8],
        dec: &mut BlobDecompressor,
    ) -> Result<std::borrow::Cow<'a, [u8]>, BlobError> {
        let blob = || entry.id.to_hex();
        let plain = match entry.compression {
            Compression::None => std::borrow::Cow::Borrowed(stored),
            Compression::Zstd => {
                std::borrow::Cow::Owned(dec.decompress(stored, entry.raw_len).ok_or_else(|| {
                    BlobError::Decompress {
                        pack: self.name.clone(),
                        blob: blob(),
                        raw_len: entry.raw_len,
                    }
                })?)
            }
        };
        if plain.len() != entry.raw_len as usize || ids.chunk_id(&plain) != entry.id {
            return Err(BlobError::HashMismatch {
                pack: self.name.clone(),
                blob: blob(),
            });
        }
        Ok(plain)
    }

    /// Decrypts one blob to its stored form (the zstd frame when the entry
    /// says [`Compression::Zstd`]) without decompressing or hashing it: what
    /// a repack copies (format §10.3 step 1). Authentication binds the bytes
    /// to this pack and blob number, and the authenticated header or index
    /// file that gave `entry` binds that number to the blob's id, so no one
    /// without the key can have changed them; `check --read-data` verifies
    /// the hash.
    ///
    /// # Errors
    /// [`BlobError`] naming the pack and blob if the length is not the
    /// entry's or the bytes fail authentication.
    pub fn open_stored(&self, entry: &BlobEntry, stored: &[u8]) -> Result<Vec<u8>, BlobError> {
        let blob = || entry.id.to_hex();
        if stored.len() != entry.stored_len as usize {
            return Err(BlobError::Length {
                pack: self.name.clone(),
                blob: blob(),
                got: stored.len(),
                want: entry.stored_len,
            });
        }
        let mut buf = stored.to_vec();
        let n = self
            .aead
            .open_in_place(
                NonceDomain::Blob,
                entry.number.into(),
                self.name.as_bytes(),
                &mut buf,
            )
            .ok_or_else(|| BlobError::CorruptOrTampered {
                pack: self.name.clone(),
                blob: blob(),
            })?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Decrypts and checks the header of a whole pack.
    ///
    /// # Errors
    /// [`FormatError`] if the trailer or header is malformed or fails authentication.
    pub fn read_header(&self, pack: &[u8]) -> Result<Vec<BlobEntry>, FormatError> {
        let what = format!("pack {}", self.name);
        let len = pack.len();
        if len < TRAILER_LEN {
            return Err(FormatError::Truncated {
                what,
                need: TRAILER_LEN as u64,
                have: len as u64,
            });
        }
        let trailer = &pack[len - TRAILER_LEN..];
        let mut r = Reader::new(&what, trailer);
        let h = r.u32()?;
        let version = r.u16()?;
        r.reserved(2)?;
        if r.array::<8>()? != MAGIC {
            return Err(FormatError::BadMagic { what });
        }
        FormatError::check_version(&what, version, VERSION)?;
        if !(MIN_HEADER..=MAX_HEADER).contains(&h)
            || !(h as usize - TAG_LEN).is_multiple_of(HEADER_ALIGN)
        {
            return Err(FormatError::range(&what, "header length", h.into()));
        }
        let h = h as usize;
        if h + TRAILER_LEN > len {
            return Err(FormatError::Truncated {
                what,
                need: (h + TRAILER_LEN) as u64,
                have: len as u64,
            });
        }
        let start = len - TRAILER_LEN - h;
        let mut aad = self.name.as_bytes().to_vec();
        aad.extend_from_slice(trailer);
        let mut header = pack[start..len - TRAILER_LEN].to_vec();
        let n = self
            .aead
            .open_in_place(NonceDomain::PackHeader, 0, &aad, &mut header)
            .ok_or_else(|| FormatError::CorruptOrTampered {
                what: format!("header of {what}"),
            })?;
        let (entries, region) = decode_header(&what, &header[..n])?;
        if region > start as u64 {
            return Err(FormatError::invalid(
                &what,
                "blob region overlaps the header",
            ));
        }
        Ok(entries)
    }
}

/// Decodes a decrypted header plaintext (exposed for fuzzing via [`fuzz_decode_pack_header`]).
fn decode_header(what: &str, plain: &[u8]) -> Result<(Vec<BlobEntry>, u64), FormatError> {
    let mut r = Reader::new(what, plain);
    let version = r.u8()?;
    FormatError::check_version(what, version, HEADER_VERSION)?;
    r.reserved(3)?;
    let count = r.u32()?;
    let region = r.u64()?;
    let (entries, end) = decode_entries(&mut r, what, count)?;
    if end != region {
        return Err(FormatError::invalid(
            what,
            "blob region length does not match the entries",
        ));
    }
    let rest = r.remaining();
    r.reserved(rest)?;
    Ok((entries, region))
}

/// Decodes a pack header plaintext: the fuzzing entry point for the parser
/// behind [`PackCipher::read_header`].
///
/// # Errors
/// [`FormatError`] for anything format §5 does not allow.
pub fn fuzz_decode_pack_header(plain: &[u8]) -> Result<Vec<BlobEntry>, FormatError> {
    decode_header("pack header", plain).map(|(e, _)| e)
}

/// A reusable zstd compressor for blobs.
pub struct BlobCompressor {
    ctx: zstd::bulk::Compressor<'static>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for BlobCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobCompressor")
    }
}

impl BlobCompressor {
    /// A compressor at zstd `level`.
    ///
    /// # Errors
    /// The zstd error if the level is refused.
    pub fn new(level: i32) -> std::io::Result<Self> {
        Ok(Self {
            ctx: zstd::bulk::Compressor::new(level)?,
            buf: Vec::new(),
        })
    }

    /// Compresses `data`; returns the compressed bytes only if they are
    /// shorter, else `None` (store as is).
    pub fn compress(&mut self, data: &[u8]) -> Option<&[u8]> {
        self.buf.clear();
        self.buf.reserve(data.len());
        match self.ctx.compress_to_buffer(data, &mut self.buf) {
            Ok(n) if n < data.len() => Some(&self.buf[..n]),
            _ => None,
        }
    }
}

/// A reusable zstd decompressor for blobs.
pub struct BlobDecompressor(zstd::bulk::Decompressor<'static>);

impl std::fmt::Debug for BlobDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobDecompressor")
    }
}

impl BlobDecompressor {
    /// A new decompression context.
    ///
    /// # Errors
    /// The zstd error if the context cannot be created.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self(zstd::bulk::Decompressor::new()?))
    }

    fn decompress(&mut self, data: &[u8], raw_len: u32) -> Option<Vec<u8>> {
        // raw_len was checked against MAX_BLOB_RAW when the entry was decoded.
        let mut out = Vec::with_capacity(raw_len as usize);
        match self.0.decompress_to_buffer(data, &mut out) {
            Ok(n) if n == raw_len as usize => Some(out),
            _ => None,
        }
    }
}

/// A pack being written. Blob nonces are its own counter; the pack id (and so
/// the subkey) is drawn here.
///
/// The writer holds the bytes it has produced until [`PackWriter::drain_to`]
/// takes them, so a caller that drains after every blob holds about one blob
/// in memory however large the pack grows (the header comes last, §5).
#[derive(Debug)]
pub struct PackWriter {
    session: SessionId,
    id: PackId,
    cipher: PackCipher,
    /// Bytes produced and not yet drained.
    buf: Vec<u8>,
    /// Bytes already drained: they precede `buf`.
    drained: u64,
    entries: Vec<BlobEntry>,
}

/// A sealed pack, ready to upload.
#[derive(Debug)]
pub struct FinishedPack {
    /// The session it belongs to.
    pub session: SessionId,
    /// Its id.
    pub id: PackId,
    /// Its bytes not drained before [`PackWriter::finish`]: the whole pack
    /// if [`PackWriter::drain_to`] was never called.
    pub bytes: Vec<u8>,
    /// The length of the whole pack, drained bytes included.
    pub length: u64,
    /// Its blobs, as the index records them.
    pub entries: Vec<BlobEntry>,
}

impl FinishedPack {
    /// The object name of the pack.
    pub fn name(&self) -> ObjectName {
        ObjectName::Pack(self.session, self.id)
    }
}

impl PackWriter {
    /// Opens a new pack in `session` with a fresh random id, reserving
    /// `capacity` bytes.
    pub fn new(enc: &EncKey, session: SessionId, capacity: usize) -> Self {
        let id = PackId::random();
        Self {
            session,
            id,
            cipher: PackCipher::new(enc, session, id),
            buf: Vec::with_capacity(capacity),
            drained: 0,
            entries: Vec::new(),
        }
    }

    /// The pack's id.
    pub fn id(&self) -> PackId {
        self.id
    }

    /// Bytes of blobs written so far (drained or not).
    pub fn blob_bytes(&self) -> u64 {
        self.drained + self.buf.len() as u64
    }

    /// Writes the bytes produced so far to `out` and forgets them; the
    /// buffer keeps its capacity for the next blob.
    ///
    /// # Errors
    /// What `out` returns; the bytes stay held then, so nothing is lost.
    pub fn drain_to(&mut self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.buf)?;
        self.drained += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Number of blobs.
    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    /// Whether a blob of `stored_plain_len` bytes still fits the format's limits.
    pub fn fits(&self, stored_plain_len: usize) -> bool {
        self.entries.len() < MAX_BLOBS as usize
            && self.blob_bytes() + (stored_plain_len + TAG_LEN) as u64 <= MAX_BLOB_REGION
    }

    /// Encrypts and appends one blob. `stored_plain` is the plaintext, or its
    /// zstd form when `compression` is [`Compression::Zstd`].
    ///
    /// # Errors
    /// [`FormatError::OutOfRange`] if the blob breaks a limit (raw length, or
    /// the pack is full: check [`PackWriter::fits`] first).
    pub fn add(
        &mut self,
        id: ChunkId,
        kind: BlobKind,
        raw_len: usize,
        compression: Compression,
        stored_plain: &[u8],
    ) -> Result<BlobEntry, FormatError> {
        let what = "pack writer";
        let raw = u32::try_from(raw_len)
            .ok()
            .filter(|r| (1..=MAX_BLOB_RAW).contains(r));
        let raw = raw.ok_or_else(|| FormatError::range(what, "blob raw length", raw_len as u64))?;
        if !self.fits(stored_plain.len()) {
            return Err(FormatError::range(what, "pack size", self.blob_bytes()));
        }
        let number = u32::try_from(self.entries.len())
            .map_err(|_| FormatError::range(what, "blob count", u64::MAX))?;
        let offset = self.blob_bytes();
        let start = self.buf.len();
        self.buf.extend_from_slice(stored_plain);
        self.cipher.aead.seal_tail(
            NonceDomain::Blob,
            number.into(),
            self.cipher.name.as_bytes(),
            &mut self.buf,
            start,
        );
        let stored_len = u32::try_from(self.buf.len() - start)
            .map_err(|_| FormatError::range(what, "stored length", u64::MAX))?;
        let entry = BlobEntry {
            id,
            offset,
            stored_len,
            raw_len: raw,
            number,
            kind,
            compression,
        };
        self.entries.push(entry);
        Ok(entry)
    }

    /// Pads, appends the encrypted header and the trailer.
    pub fn finish(mut self) -> FinishedPack {
        let region = self.blob_bytes();
        let mut header = Vec::with_capacity(16 + ENTRY_LEN * self.entries.len() + HEADER_ALIGN);
        header.push(HEADER_VERSION);
        header.extend_from_slice(&[0, 0, 0]);
        // `fits` keeps the count within MAX_BLOBS, so it fits a u32.
        header.extend_from_slice(
            &u32::try_from(self.entries.len())
                .unwrap_or(MAX_BLOBS)
                .to_le_bytes(),
        );
        header.extend_from_slice(&region.to_le_bytes());
        for e in &self.entries {
            e.encode(&mut header);
        }
        let padded = header.len().div_ceil(HEADER_ALIGN).max(1) * HEADER_ALIGN;
        header.resize(padded, 0);
        let h = header.len() + TAG_LEN;
        let mut trailer = Vec::with_capacity(TRAILER_LEN);
        // h ≤ 16 + 56·2^20 + 4096 + 16 < MAX_HEADER.
        trailer.extend_from_slice(&u32::try_from(h).unwrap_or(MAX_HEADER).to_le_bytes());
        trailer.extend_from_slice(&VERSION.to_le_bytes());
        trailer.extend_from_slice(&[0, 0]);
        trailer.extend_from_slice(&MAGIC);

        let unpadded = region + (h + TRAILER_LEN) as u64;
        let pad = usize::try_from(padme(unpadded) - unpadded).unwrap_or(0);
        let pad_start = self.buf.len();
        self.buf.resize(pad_start + pad, 0);
        rand::thread_rng().fill_bytes(&mut self.buf[pad_start..]);

        let header_start = self.buf.len();
        self.buf.extend_from_slice(&header);
        let mut aad = self.cipher.name.as_bytes().to_vec();
        aad.extend_from_slice(&trailer);
        self.cipher.aead.seal_tail(
            NonceDomain::PackHeader,
            0,
            &aad,
            &mut self.buf,
            header_start,
        );
        self.buf.extend_from_slice(&trailer);
        FinishedPack {
            session: self.session,
            id: self.id,
            length: self.drained + self.buf.len() as u64,
            bytes: self.buf,
            entries: self.entries,
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    #[test]
    fn padme_values() {
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(9), 10);
        assert_eq!(padme(1000), 1024);
        assert_eq!(padme(32 << 20), 32 << 20);
        assert_eq!(padme((32 << 20) + 1), (33 << 20));
        for l in [2u64, 3, 100, 12345, 1 << 40] {
            let p = padme(l);
            assert!(p >= l && p - l <= l / 8 + 1, "{l} -> {p}");
        }
    }

    fn write_pack(blobs: &[Vec<u8>]) -> (crate::RepoKeys, FinishedPack) {
        write_drained(blobs, 0)
    }

    /// Writes a pack, draining it after every `every`-th blob (never if 0),
    /// and returns it with `bytes` put back together.
    fn write_drained(blobs: &[Vec<u8>], every: usize) -> (crate::RepoKeys, FinishedPack) {
        let keys = MasterKey::generate().derive();
        let mut w = PackWriter::new(&keys.enc, SessionId::random(), 1024);
        let mut c = BlobCompressor::new(3).unwrap_or_else(|e| panic!("{e}"));
        let mut drained = Vec::new();
        for (i, b) in blobs.iter().enumerate() {
            let id = keys.id.chunk_id(b);
            let (comp, stored) = match c.compress(b) {
                Some(z) => (Compression::Zstd, z.to_vec()),
                None => (Compression::None, b.clone()),
            };
            w.add(id, BlobKind::Data, b.len(), comp, &stored)
                .unwrap_or_else(|e| panic!("{e}"));
            if every > 0 && i % every == 0 {
                w.drain_to(&mut drained).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(w.blob_bytes(), drained.len() as u64);
            }
        }
        let mut pack = w.finish();
        drained.extend_from_slice(&pack.bytes);
        pack.bytes = drained;
        assert_eq!(pack.length, pack.bytes.len() as u64);
        (keys, pack)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..3000), 0..20), every in 0..4usize) {
            let (keys, pack) = write_drained(&blobs, every);
            prop_assert_eq!(pack.bytes.len() as u64, padme(pack.bytes.len() as u64));
            let cipher = PackCipher::new(&keys.enc, pack.session, pack.id);
            let entries = cipher.read_header(&pack.bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&entries, &pack.entries);
            let mut dec = BlobDecompressor::new().map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (e, b) in entries.iter().zip(&blobs) {
                let s = &pack.bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
                let got = cipher.open_blob(&keys.id, e, s, &mut dec).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&got, b);
            }
        }

        #[test]
        fn header_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = fuzz_decode_pack_header(&data);
        }
    }

    #[test]
    fn flipped_blob_byte_names_pack_and_blob() {
        let blobs = vec![b"hello hello hello hello".to_vec(), vec![7u8; 5000]];
        let (keys, mut pack) = write_pack(&blobs);
        pack.bytes[3] ^= 1;
        let cipher = PackCipher::new(&keys.enc, pack.session, pack.id);
        let e = pack.entries[0];
        let mut dec = BlobDecompressor::new().unwrap_or_else(|e| panic!("{e}"));
        let err = cipher.open_blob(&keys.id, &e, &pack.bytes[..e.stored_len as usize], &mut dec);
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains(&pack.id.to_hex()) && msg.contains(&e.id.to_hex()),
            "{msg}"
        );
        // The header is still intact; a flipped header byte is caught too.
        assert!(cipher.read_header(&pack.bytes).is_ok());
        let n = pack.bytes.len();
        pack.bytes[n - TRAILER_LEN - 5] ^= 1;
        assert!(matches!(
            cipher.read_header(&pack.bytes),
            Err(FormatError::CorruptOrTampered { .. })
        ));
    }

    #[test]
    fn a_blob_copied_in_stored_form_opens_in_its_new_pack() {
        let blobs = vec![b"compressible ".repeat(200), vec![9u8, 1, 200, 3]];
        let (keys, mut pack) = write_pack(&blobs);
        let old = PackCipher::new(&keys.enc, pack.session, pack.id);
        let mut new = PackWriter::new(&keys.enc, SessionId::random(), 1024);
        for e in pack.entries.iter().rev() {
            let s = &pack.bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
            let stored = old.open_stored(e, s).unwrap_or_else(|e| panic!("{e}"));
            new.add(e.id, e.kind, e.raw_len as usize, e.compression, &stored)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(pack.entries[0].compression, Compression::Zstd);
        let copy = new.finish();
        let cipher = PackCipher::new(&keys.enc, copy.session, copy.id);
        let mut dec = BlobDecompressor::new().unwrap_or_else(|e| panic!("{e}"));
        for (e, b) in copy.entries.iter().zip(blobs.iter().rev()) {
            let s = &copy.bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
            assert_eq!(
                &cipher
                    .open_blob(&keys.id, e, s, &mut dec)
                    .unwrap_or_else(|e| panic!("{e}")),
                b
            );
        }
        // The copy authenticates what it reads: a flipped byte is refused.
        pack.bytes[1] ^= 1;
        let e = pack.entries[0];
        assert!(matches!(
            old.open_stored(&e, &pack.bytes[..e.stored_len as usize]),
            Err(BlobError::CorruptOrTampered { .. })
        ));
    }

    #[test]
    fn a_pack_renamed_does_not_open() {
        let (keys, pack) = write_pack(&[b"x".to_vec()]);
        let other = PackCipher::new(&keys.enc, pack.session, PackId::random());
        assert!(other.read_header(&pack.bytes).is_err());
    }
}
