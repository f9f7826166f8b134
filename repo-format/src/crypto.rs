//! The key hierarchy (format §2) and the AEAD wrappers every encrypted
//! structure goes through. Nonces are built here from a domain and a counter
//! that the encrypting structure owns; no caller ever supplies one.
//!
//! AES-256-GCM comes from aws-lc-rs (AWS-LC's AES-NI/VAES and carry-less
//! multiply code, several times faster than the `aes-gcm` crate; its key
//! schedule is wiped when freed). The bytes are standard
//! AES-256-GCM either way: a test checks them against the `aes-gcm` crate.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use cairn_chunker::{GearKey, IdKey};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of an AES-GCM tag.
pub const TAG_LEN: usize = 16;

const CTX_ID: &str = "cairn 2026-11 v1 chunk id";
const CTX_GEAR: &str = "cairn 2026-11 v1 chunker gear";
const CTX_ENC: &str = "cairn 2026-11 v1 object encryption";
const CTX_CATALOG: &str = "cairn 2026-12 v1 local catalog authentication";
pub(crate) const CTX_PACK: &str = "cairn 2026-11 v1 pack subkey";
pub(crate) const CTX_SEALED: &str = "cairn 2026-11 v1 sealed object subkey";

/// The repository's master key `M`. Only ever stored wrapped in key files.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A fresh master key from the OS CSPRNG (at `init`).
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }
    pub(crate) fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Derives the domain-separated working keys.
    pub fn derive(&self) -> RepoKeys {
        RepoKeys {
            id: IdKey::from_bytes(blake3::derive_key(CTX_ID, &self.0)),
            gear: GearKey::from_bytes(blake3::derive_key(CTX_GEAR, &self.0)),
            enc: EncKey(blake3::derive_key(CTX_ENC, &self.0)),
            catalog: CatalogKey(blake3::derive_key(CTX_CATALOG, &self.0)),
        }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// `K_enc`: the root of every encryption subkey.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncKey([u8; 32]);

impl std::fmt::Debug for EncKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncKey(<redacted>)")
    }
}

impl EncKey {
    /// `BLAKE3-derive(ctx, K_enc || unique)`: the subkey of one object.
    pub(crate) fn subkey(&self, ctx: &str, unique: &[u8; 32]) -> Aead {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.0);
        material[32..].copy_from_slice(unique);
        let mut k = blake3::derive_key(ctx, &material);
        material.zeroize();
        let aead = Aead::new(&k);
        k.zeroize();
        aead
    }
}

/// The working keys of an opened repository.
#[derive(Debug, Clone)]
pub struct RepoKeys {
    /// `K_id`: chunk ids.
    pub id: IdKey,
    /// `K_gear`: the chunker's gear table.
    pub gear: GearKey,
    /// `K_enc`: encryption.
    pub enc: EncKey,
    /// `K_cat`: authenticates what the local catalog caches (never used
    /// for anything stored in the repository).
    pub catalog: CatalogKey,
}

/// `K_cat` (format §2, §13): a MAC over rows of the local catalog, so that
/// a row edited by someone without the key is detected when it is used.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CatalogKey([u8; 32]);

impl std::fmt::Debug for CatalogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogKey(<redacted>)")
    }
}

impl CatalogKey {
    /// `BLAKE3-keyed(K_cat, u64le(len(what)) || what || u64le(len(id)) || id
    /// || data)`: `what` names the kind of row, `id` the row.
    pub fn mac(&self, what: &[u8], id: &[u8], data: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&(what.len() as u64).to_le_bytes());
        h.update(what);
        h.update(&(id.len() as u64).to_le_bytes());
        h.update(id);
        h.update(data);
        *h.finalize().as_bytes()
    }

    /// Whether `tag` is [`CatalogKey::mac`] of the row (in constant time).
    pub fn verify(&self, what: &[u8], id: &[u8], data: &[u8], tag: &[u8]) -> bool {
        // blake3::Hash compares in constant time.
        <[u8; 32]>::try_from(tag)
            .is_ok_and(|t| blake3::Hash::from(t) == blake3::Hash::from(self.mac(what, id, data)))
    }
}

/// Nonce domains (format §2.3).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub(crate) enum NonceDomain {
    Blob = 0,
    PackHeader = 1,
    Sealed = 2,
    KeyWrap = 3,
}

fn nonce_bytes(domain: NonceDomain, counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&(domain as u32).to_le_bytes());
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

fn nonce(domain: NonceDomain, counter: u64) -> Nonce {
    Nonce::assume_unique_for_key(nonce_bytes(domain, counter))
}

/// AES-256-GCM under one object's subkey. Not `Clone`: one encrypting owner.
pub(crate) struct Aead(LessSafeKey);

impl std::fmt::Debug for Aead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Aead(<redacted>)")
    }
}

impl Aead {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        // A 32-byte key is exactly what AES-256-GCM takes; nothing else fails.
        let key = UnboundKey::new(&AES_256_GCM, key)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes a 32-byte key"));
        Self(LessSafeKey::new(key))
    }

    /// Encrypts `buf[start..]` in place and appends the tag.
    pub(crate) fn seal_tail(
        &self,
        domain: NonceDomain,
        counter: u64,
        aad: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) {
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce(domain, counter), Aad::from(aad), &mut buf[start..])
            // GCM fails only for messages over 2^36 bytes; every caller is bounded far below.
            .unwrap_or_else(|_| unreachable!("AES-GCM message length bounded by format limits"));
        buf.extend_from_slice(tag.as_ref());
    }

    /// Decrypts `ct || tag` in place; returns the plaintext length, or `None` if
    /// authentication fails.
    pub(crate) fn open_in_place(
        &self,
        domain: NonceDomain,
        counter: u64,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Option<usize> {
        let n = buf.len().checked_sub(TAG_LEN)?;
        self.0
            .open_in_place(nonce(domain, counter), Aad::from(aad), buf)
            .ok()?;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_distinct_and_redacted() {
        let m = MasterKey::from_bytes([5; 32]);
        let k = m.derive();
        assert_eq!(format!("{m:?}"), "MasterKey(<redacted>)");
        assert!(!format!("{k:?}").contains("05"));
        let id = blake3::derive_key(CTX_ID, m.bytes());
        let gear = blake3::derive_key(CTX_GEAR, m.bytes());
        assert_ne!(id, gear);
        assert_ne!(id, k.enc.0);
    }

    #[test]
    fn nonce_layout() {
        let n = nonce_bytes(NonceDomain::Sealed, 0x0102);
        assert_eq!(n, [2, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]);
    }

    proptest::proptest! {
        /// The AEAD is plain AES-256-GCM: the `aes-gcm` crate (format v1's
        /// first implementation) gives the same bytes, and each opens the other's.
        #[test]
        fn same_bytes_as_the_aes_gcm_crate(
            key in proptest::array::uniform32(proptest::prelude::any::<u8>()),
            counter in proptest::prelude::any::<u64>(),
            aad in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            plain in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5000),
            start in 0usize..16,
        ) {
            use aes_gcm::aead::{AeadInPlace, KeyInit};
            let start = start.min(plain.len());
            let ours = Aead::new(&key);
            let mut sealed = plain.clone();
            ours.seal_tail(NonceDomain::Blob, counter, &aad, &mut sealed, start);

            let theirs = aes_gcm::Aes256Gcm::new((&key).into());
            let n = aes_gcm::Nonce::from(nonce_bytes(NonceDomain::Blob, counter));
            let mut expected = plain[start..].to_vec();
            let tag = theirs.encrypt_in_place_detached(&n, &aad, &mut expected)
                .map_err(|_| proptest::test_runner::TestCaseError::fail("aes-gcm seal"))?;
            expected.extend_from_slice(&tag);
            proptest::prop_assert_eq!(&sealed[..start], &plain[..start]);
            proptest::prop_assert_eq!(&sealed[start..], &expected[..]);

            let mut opened = expected.clone();
            proptest::prop_assert_eq!(
                ours.open_in_place(NonceDomain::Blob, counter, &aad, &mut opened),
                Some(plain.len() - start)
            );
            proptest::prop_assert_eq!(&opened[..plain.len() - start], &plain[start..]);
            let (ct, tag) = sealed[start..].split_at_mut(plain.len() - start);
            let tag = aes_gcm::Tag::clone_from_slice(tag);
            proptest::prop_assert!(theirs.decrypt_in_place_detached(&n, &aad, ct, &tag).is_ok());
            proptest::prop_assert_eq!(&ct[..], &plain[start..]);
        }
    }

    #[test]
    fn tamper_is_detected() {
        let a = Aead::new(&[1; 32]);
        let mut buf = b"hello world".to_vec();
        a.seal_tail(NonceDomain::Blob, 7, b"aad", &mut buf, 0);
        let mut ok = buf.clone();
        assert_eq!(
            a.open_in_place(NonceDomain::Blob, 7, b"aad", &mut ok),
            Some(11)
        );
        assert_eq!(&ok[..11], b"hello world");
        for (domain, counter, aad) in [
            (NonceDomain::Blob, 8, &b"aad"[..]),
            (NonceDomain::Sealed, 7, b"aad"),
            (NonceDomain::Blob, 7, b"aae"),
        ] {
            let mut b = buf.clone();
            assert_eq!(a.open_in_place(domain, counter, aad, &mut b), None);
        }
        let mut flipped = buf.clone();
        flipped[3] ^= 1;
        assert_eq!(
            a.open_in_place(NonceDomain::Blob, 7, b"aad", &mut flipped),
            None
        );
    }
}
