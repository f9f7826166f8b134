//! Key files (format §3): the master key wrapped under a passphrase with
//! Argon2id, plus metadata sealed under the repository's own key.

use crate::crypto::{Aead, EncKey, MasterKey, NonceDomain, TAG_LEN};
use crate::error::{FormatError, KeyError};
use crate::ids::KeyId;
use crate::names::ObjectName;
use crate::sealed::{self, KEY_META};
use crate::wire::Reader;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const MAGIC: [u8; 8] = *b"CAIRNKEY";
const VERSION: u16 = 1;
const KDF_ARGON2ID: u8 = 1;
const PARAMS_LEN: usize = 56;
const WRAPPED_LEN: usize = 32 + TAG_LEN;
const MAX_META: u32 = 65_536;
const MAX_META_STRING: usize = 255;

/// A passphrase. Zeroed on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(Vec<u8>);

impl Passphrase {
    /// Wraps the passphrase's bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl KdfParams {
    /// The default for new keys: 56 MiB, 4 iterations, 4 lanes. Against RFC
    /// 9106 §4's second recommended option (64 MiB, 3 iterations) it costs an
    /// attacker more per guess in both memory traffic (m·t) and memory-time
    /// (m²·t), and lowers every command's peak RSS by 8 MiB (decisions §15).
    /// The lanes are filled on parallel threads, so on two cores the
    /// derivation takes about half as long as one lane would.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 56 * 1024,
        iterations: 4,
        parallelism: 4,
    };

    /// Checks the bounds of format §3.
    ///
    /// # Errors
    /// [`FormatError::OutOfRange`] naming the parameter that is out of bounds.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, FormatError> {
        let what = "key file";
        if !(8..=4_194_304).contains(&memory_kib) || memory_kib < 8 * parallelism {
            return Err(FormatError::range(
                what,
                "memory cost (KiB)",
                memory_kib.into(),
            ));
        }
        if !(1..=64).contains(&iterations) {
            return Err(FormatError::range(what, "iterations", iterations.into()));
        }
        if !(1..=16).contains(&parallelism) {
            return Err(FormatError::range(what, "parallelism", parallelism.into()));
        }
        Ok(Self {
            memory_kib,
            iterations,
            parallelism,
        })
    }

    fn kek(&self, pass: &Passphrase, salt: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| KeyError::Kdf(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(&pass.0, salt, out.as_mut())
            .map_err(|e| KeyError::Kdf(e.to_string()))?;
        Ok(out)
    }
}

/// Key metadata, readable by anyone who has opened the repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMeta {
    /// Creation time, ns since the Unix epoch.
    pub created_ns: i64,
    /// Host that created the key.
    pub hostname: String,
    /// User that created the key.
    pub username: String,
}

impl KeyMeta {
    fn check(&self, what: &str) -> Result<(), FormatError> {
        if self.hostname.len() > MAX_META_STRING || self.username.len() > MAX_META_STRING {
            return Err(FormatError::invalid(
                what,
                "hostname or username longer than 255 bytes",
            ));
        }
        Ok(())
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    while s.len() > max {
        s.pop();
    }
}

/// Builds a key file that wraps `master` under `pass`.
///
/// # Errors
/// [`KeyError::Kdf`] if Argon2 rejects the parameters.
pub fn create(
    master: &MasterKey,
    enc: &EncKey,
    key_id: KeyId,
    pass: &Passphrase,
    params: KdfParams,
    mut meta: KeyMeta,
) -> Result<Vec<u8>, KeyError> {
    truncate_utf8(&mut meta.hostname, MAX_META_STRING);
    truncate_utf8(&mut meta.username, MAX_META_STRING);
    let mut salt = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(KDF_ARGON2ID);
    out.push(0);
    out.extend_from_slice(&params.memory_kib.to_le_bytes());
    out.extend_from_slice(&params.iterations.to_le_bytes());
    out.extend_from_slice(&params.parallelism.to_le_bytes());
    out.extend_from_slice(&salt);
    let aad = out.clone();
    let kek = params.kek(pass, &salt)?;
    out.extend_from_slice(master.bytes());
    Aead::new(&kek).seal_tail(NonceDomain::KeyWrap, 0, &aad, &mut out, PARAMS_LEN);
    let meta_json =
        serde_json::to_vec(&meta).unwrap_or_else(|e| unreachable!("KeyMeta serialises: {e}"));
    let sealed_meta = sealed::seal(enc, KEY_META, &ObjectName::Key(key_id).path(), &meta_json);
    let len = u32::try_from(sealed_meta.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&sealed_meta);
    Ok(out)
}

/// The parsed, still-encrypted parts of a key file.
#[derive(Debug)]
pub struct KeyFile<'a> {
    header: &'a [u8],
    params: KdfParams,
    salt: [u8; 32],
    wrapped: &'a [u8],
    meta: &'a [u8],
}

/// Parses a key file without any secret: checks layout and KDF bounds.
///
/// # Errors
/// [`FormatError`] for anything format §3 does not allow.
pub fn parse(data: &[u8]) -> Result<KeyFile<'_>, FormatError> {
    let what = "key file";
    let mut r = Reader::new(what, data);
    if r.array::<8>()? != MAGIC {
        return Err(FormatError::BadMagic { what: what.into() });
    }
    let version = r.u16()?;
    FormatError::check_version(what, version, VERSION)?;
    let kdf = r.u8()?;
    if kdf != KDF_ARGON2ID {
        return Err(FormatError::range(what, "kdf", kdf.into()));
    }
    r.reserved(1)?;
    let params = KdfParams::new(r.u32()?, r.u32()?, r.u32()?)?;
    let salt = r.array::<32>()?;
    let wrapped = r.bytes(WRAPPED_LEN)?;
    let meta_len = r.u32()?;
    if meta_len == 0 || meta_len > MAX_META {
        return Err(FormatError::range(what, "metadata length", meta_len.into()));
    }
    let meta = r.bytes(meta_len as usize)?;
    r.finish()?;
    Ok(KeyFile {
        header: &data[..PARAMS_LEN],
        params,
        salt,
        wrapped,
        meta,
    })
}

impl KeyFile<'_> {
    /// The KDF cost parameters.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Unwraps the master key with `pass`.
    ///
    /// # Errors
    /// [`KeyError::WrongPassphrase`] if authentication fails (wrong passphrase or
    /// altered file); [`KeyError::Kdf`] if Argon2 fails.
    pub fn unwrap(&self, key_id: KeyId, pass: &Passphrase) -> Result<MasterKey, KeyError> {
        let kek = self.params.kek(pass, &self.salt)?;
        let mut buf = Zeroizing::new(self.wrapped.to_vec());
        Aead::new(&kek)
            .open_in_place(NonceDomain::KeyWrap, 0, self.header, &mut buf)
            .ok_or_else(|| KeyError::WrongPassphrase {
                key: key_id.short(),
            })?;
        let mut m = [0u8; 32];
        m.copy_from_slice(&buf[..32]);
        let master = MasterKey::from_bytes(m);
        m.zeroize();
        Ok(master)
    }

    /// Decrypts the metadata with the repository's key.
    ///
    /// # Errors
    /// [`FormatError`] if it is malformed or fails authentication.
    pub fn meta(&self, enc: &EncKey, key_id: KeyId) -> Result<KeyMeta, FormatError> {
        let name = ObjectName::Key(key_id).path();
        let json = sealed::open(enc, KEY_META, &name, self.meta)?;
        let meta: KeyMeta = serde_json::from_slice(&json)
            .map_err(|e| FormatError::invalid(&format!("key metadata {name}"), e.to_string()))?;
        meta.check(&name)?;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams::new(64, 1, 1).unwrap_or(KdfParams::DEFAULT)
    }
    fn meta() -> KeyMeta {
        KeyMeta {
            created_ns: 1,
            hostname: "h".into(),
            username: "u".into(),
        }
    }

    #[test]
    fn wrap_unwrap() -> Result<(), KeyError> {
        let m = MasterKey::generate();
        let keys = m.derive();
        let id = KeyId::random();
        let pass = Passphrase::new(b"correct horse".to_vec());
        let file = create(&m, &keys.enc, id, &pass, fast(), meta())?;
        let parsed = parse(&file)?;
        let back = parsed.unwrap(id, &pass)?;
        assert_eq!(back.bytes(), m.bytes());
        assert_eq!(parsed.meta(&keys.enc, id)?, meta());
        assert!(matches!(
            parsed.unwrap(id, &Passphrase::new(b"wrong".to_vec())),
            Err(KeyError::WrongPassphrase { .. })
        ));
        Ok(())
    }

    /// The derivation, lanes filled in parallel, matches the reference
    /// implementation (Debian's `argon2` CLI from phc-winner-argon2:
    /// `echo -n 'correct horse battery staple' | argon2 SALT -id -t 3 -k 65536
    /// -p N -l 32 -r`), for four lanes (as new keys use) and for one.
    #[test]
    fn kek_matches_the_reference_implementation() -> Result<(), KeyError> {
        let pass = Passphrase::new(b"correct horse battery staple".to_vec());
        let salt = *b"cairn-kdf-known-answer-salt-0032";
        let cases = [
            (
                KdfParams::new(64 * 1024, 3, 4)?,
                "f8a8717dc0314110ba7c312e2dc8e722ec8907005de74d9185c185b0c7ca36cd",
            ),
            (
                KdfParams::new(64 * 1024, 3, 1)?,
                "b74132d24d2cbcdae16f1523eca1c4d8b239f3a21cb031e858ca0a4df1f86c8c",
            ),
        ];
        for (params, want) in cases {
            assert_eq!(hex::encode(*params.kek(&pass, &salt)?), want, "{params:?}");
        }
        Ok(())
    }

    #[test]
    fn altered_params_fail_authentication() -> Result<(), KeyError> {
        let m = MasterKey::generate();
        let id = KeyId::random();
        let pass = Passphrase::new(b"pw".to_vec());
        let mut file = create(&m, &m.derive().enc, id, &pass, fast(), meta())?;
        file[16] = 2; // iterations 1 -> 2: still in bounds, but bound into the AAD
        assert!(matches!(
            parse(&file)?.unwrap(id, &pass),
            Err(KeyError::WrongPassphrase { .. })
        ));
        Ok(())
    }

    #[test]
    fn hostile_params_are_refused_before_the_kdf() {
        let mut file = vec![0u8; 200];
        file[..8].copy_from_slice(&MAGIC);
        file[8] = 1;
        file[10] = KDF_ARGON2ID;
        file[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        file[16] = 1;
        file[20] = 1;
        assert!(matches!(
            parse(&file),
            Err(FormatError::OutOfRange {
                field: "memory cost (KiB)",
                ..
            })
        ));
    }
}
