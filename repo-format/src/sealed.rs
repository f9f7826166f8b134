//! Sealed objects (format §2.4): a small header, a fresh random salt, and the
//! payload encrypted under a subkey derived from that salt.

use crate::crypto::{EncKey, NonceDomain, CTX_SEALED, TAG_LEN};
use crate::error::FormatError;
use crate::wire::Reader;
use rand::RngCore;
use std::io::Read;

/// Largest payload a sealed object may carry.
pub const MAX_SEALED_PAYLOAD: usize = 256 << 20;
/// Length of the sealed header.
pub const SEALED_HEADER_LEN: usize = 44;

/// What kind of sealed object: fixes magic, version and compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedKind {
    /// Human name, used in errors.
    pub what: &'static str,
    /// Magic bytes.
    pub magic: [u8; 8],
    /// The version this build writes and reads.
    pub version: u16,
    /// Whether the payload is zstd-compressed.
    pub compressed: bool,
}

/// The repository config.
pub const CONFIG: SealedKind = SealedKind {
    what: "config",
    magic: *b"CAIRNCFG",
    version: 1,
    compressed: false,
};
/// Key metadata inside a key file.
pub const KEY_META: SealedKind = SealedKind {
    what: "key metadata",
    magic: *b"CAIRNKMD",
    version: 1,
    compressed: false,
};
/// An index file.
pub const INDEX: SealedKind = SealedKind {
    what: "index",
    magic: *b"CAIRNIDX",
    version: 1,
    compressed: false,
};
/// A snapshot.
pub const SNAPSHOT: SealedKind = SealedKind {
    what: "snapshot",
    magic: *b"CAIRNSNP",
    version: 1,
    compressed: true,
};
/// A session commit.
pub const COMMIT: SealedKind = SealedKind {
    what: "commit",
    magic: *b"CAIRNCMT",
    version: 1,
    compressed: false,
};
/// A session lease.
pub const LEASE: SealedKind = SealedKind {
    what: "lease",
    magic: *b"CAIRNLSE",
    version: 1,
    compressed: false,
};

/// The collector's state (format §10.1).
pub const GC_STATE: SealedKind = SealedKind {
    what: "gc state",
    magic: *b"CAIRNGCS",
    version: 1,
    compressed: false,
};
/// A collection's condemned packs.
pub const PLAN: SealedKind = SealedKind {
    what: "plan",
    magic: *b"CAIRNPLN",
    version: 1,
    compressed: true,
};
/// An audit record (format §7.3).
pub const AUDIT: SealedKind = SealedKind {
    what: "audit record",
    magic: *b"CAIRNAUD",
    version: 1,
    compressed: false,
};
/// A collection's deletion set.
pub const DELETIONS: SealedKind = SealedKind {
    what: "deletion set",
    magic: *b"CAIRNDEL",
    version: 1,
    compressed: true,
};

fn aad(name: &str, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(name.len() + header.len());
    a.extend_from_slice(name.as_bytes());
    a.extend_from_slice(header);
    a
}

/// Encrypts `payload` as a sealed object called `name`.
///
/// # Panics
/// If `payload` exceeds [`MAX_SEALED_PAYLOAD`]: writers build payloads that the
/// format allows, so a larger one is a bug in the caller.
pub fn seal(enc: &EncKey, kind: SealedKind, name: &str, payload: &[u8]) -> Vec<u8> {
    assert!(
        payload.len() <= MAX_SEALED_PAYLOAD,
        "{} payload over the format limit",
        kind.what
    );
    let mut salt = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = Vec::with_capacity(SEALED_HEADER_LEN + payload.len() + TAG_LEN);
    out.extend_from_slice(&kind.magic);
    out.extend_from_slice(&kind.version.to_le_bytes());
    out.push(u8::from(kind.compressed));
    out.push(0);
    out.extend_from_slice(&salt);
    let aad = aad(name, &out);
    if kind.compressed {
        // zstd into a Vec cannot fail for in-memory input.
        let z = zstd::bulk::compress(payload, 3)
            .unwrap_or_else(|e| unreachable!("zstd to memory: {e}"));
        out.extend_from_slice(&z);
    } else {
        out.extend_from_slice(payload);
    }
    enc.subkey(CTX_SEALED, &salt).seal_tail(
        NonceDomain::Sealed,
        0,
        &aad,
        &mut out,
        SEALED_HEADER_LEN,
    );
    out
}

/// Reads the version of a sealed object without decrypting it (to refuse an
/// unknown repository version before asking for a passphrase).
///
/// # Errors
/// [`FormatError`] if the bytes are too short or the magic is wrong.
pub fn peek_version(kind: SealedKind, data: &[u8]) -> Result<u16, FormatError> {
    let mut r = Reader::new(kind.what, data);
    if r.array::<8>()? != kind.magic {
        return Err(FormatError::BadMagic {
            what: kind.what.into(),
        });
    }
    r.u16()
}

/// Decrypts and checks a sealed object called `name`.
///
/// # Errors
/// [`FormatError`] if the object is malformed, of another version, fails
/// authentication (changed bytes, or a different name), or its payload
/// exceeds [`MAX_SEALED_PAYLOAD`].
pub fn open(
    enc: &EncKey,
    kind: SealedKind,
    name: &str,
    data: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let what = format!("{} {name}", kind.what);
    let version = peek_version(kind, data)?;
    FormatError::check_version(&what, version, kind.version)?;
    if data.len() > MAX_SEALED_PAYLOAD + SEALED_HEADER_LEN + TAG_LEN {
        return Err(FormatError::range(&what, "length", data.len() as u64));
    }
    let mut r = Reader::new(&what, data);
    r.skip(10)?;
    let compression = r.u8()?;
    if compression != u8::from(kind.compressed) {
        return Err(FormatError::range(&what, "compression", compression.into()));
    }
    if r.u8()? != 0 {
        return Err(FormatError::invalid(&what, "reserved byte is not zero"));
    }
    let salt = r.array::<32>()?;
    if r.remaining() < TAG_LEN {
        return Err(FormatError::Truncated {
            what,
            need: (SEALED_HEADER_LEN + TAG_LEN) as u64,
            have: data.len() as u64,
        });
    }
    let aad = aad(name, &data[..SEALED_HEADER_LEN]);
    let mut body = data[SEALED_HEADER_LEN..].to_vec();
    let n = enc
        .subkey(CTX_SEALED, &salt)
        .open_in_place(NonceDomain::Sealed, 0, &aad, &mut body)
        .ok_or_else(|| FormatError::CorruptOrTampered { what: what.clone() })?;
    body.truncate(n);
    if !kind.compressed {
        return Ok(body);
    }
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_SEALED_PAYLOAD).unwrap_or(u64::MAX) + 1;
    zstd::stream::read::Decoder::new(&body[..])
        .and_then(|d| d.take(limit).read_to_end(&mut out))
        .map_err(|e| FormatError::invalid(&what, format!("payload does not decompress: {e}")))?;
    if out.len() > MAX_SEALED_PAYLOAD {
        return Err(FormatError::range(
            &what,
            "payload length",
            out.len() as u64,
        ));
    }
    Ok(out)
}

/// Seals a JSON payload.
pub(crate) fn seal_json<T: serde::Serialize>(
    enc: &EncKey,
    kind: SealedKind,
    name: &str,
    value: &T,
) -> Vec<u8> {
    // Serialising our own plain-data structs into memory cannot fail.
    let bytes =
        serde_json::to_vec(value).unwrap_or_else(|e| unreachable!("{} serialises: {e}", kind.what));
    seal(enc, kind, name, &bytes)
}

/// Opens a sealed JSON payload and decodes it strictly (unknown fields are refused).
pub(crate) fn open_json<T: serde::de::DeserializeOwned>(
    enc: &EncKey,
    kind: SealedKind,
    name: &str,
    data: &[u8],
) -> Result<T, FormatError> {
    let payload = open(enc, kind, name, data)?;
    decode_json(&format!("{} {name}", kind.what), &payload)
}

/// Decodes JSON strictly, naming the structure in the error.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: &str,
    payload: &[u8],
) -> Result<T, FormatError> {
    serde_json::from_slice(payload)
        .map_err(|e| FormatError::invalid(what, format!("invalid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn key() -> EncKey {
        MasterKey::generate().derive().enc
    }

    #[test]
    fn round_trip_and_binding() {
        let k = key();
        for kind in [SNAPSHOT, COMMIT] {
            let s = seal(&k, kind, "snapshots/aa", b"payload payload payload");
            assert_eq!(
                open(&k, kind, "snapshots/aa", &s).ok().as_deref(),
                Some(&b"payload payload payload"[..])
            );
            // Another name, another key, another kind: all refused.
            assert!(matches!(
                open(&k, kind, "snapshots/ab", &s),
                Err(FormatError::CorruptOrTampered { .. })
            ));
            assert!(matches!(
                open(&key(), kind, "snapshots/aa", &s),
                Err(FormatError::CorruptOrTampered { .. })
            ));
            assert!(matches!(
                open(&k, LEASE, "snapshots/aa", &s),
                Err(FormatError::BadMagic { .. })
            ));
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let k = key();
        let s = seal(&k, INDEX, "index/x", b"abc");
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x40;
            assert!(open(&k, INDEX, "index/x", &t).is_err(), "byte {i}");
        }
    }

    #[test]
    fn unknown_version_is_named() {
        let k = key();
        let mut s = seal(&k, CONFIG, "config", b"{}");
        s[8] = 2;
        assert_eq!(peek_version(CONFIG, &s).ok(), Some(2));
        let e = open(&k, CONFIG, "config", &s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("unsupported version 2"), "{e}");
    }

    proptest! {
        #[test]
        fn round_trip(payload in proptest::collection::vec(any::<u8>(), 0..4096), compressed in any::<bool>()) {
            let k = key();
            let kind = if compressed { SNAPSHOT } else { INDEX };
            let s = seal(&k, kind, "n", &payload);
            prop_assert_eq!(open(&k, kind, "n", &s).ok(), Some(payload));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = open(&key(), SNAPSHOT, "n", &data);
        }
    }
}
