//! Typed errors of the format: decoding, blobs and keys.

/// A stored structure did not decode: it is malformed, from an unknown version,
/// or failed authentication. `what` names the structure (and the object where
/// the caller knows it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than the structure needs.
    #[error("{what}: truncated (needs {need} bytes, has {have})")]
    Truncated {
        /// The structure.
        what: String,
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// Bytes after the end of the structure.
    #[error("{what}: {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// The structure.
        what: String,
        /// How many.
        extra: u64,
    },
    /// The magic bytes are not those of this structure.
    #[error("{what}: not a Cairn {what} (bad magic bytes)")]
    BadMagic {
        /// The structure.
        what: String,
    },
    /// A version this build does not read.
    #[error("{what}: unsupported version {version} (this cairn reads version {supported}); upgrade cairn")]
    UnsupportedVersion {
        /// The structure.
        what: String,
        /// The version found.
        version: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// A field is outside its allowed range or enum.
    #[error("{what}: field {field} = {value} is out of range")]
    OutOfRange {
        /// The structure.
        what: String,
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// Any other violation of the spec.
    #[error("{what}: {detail}")]
    Invalid {
        /// The structure.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// AEAD authentication failed: the bytes were changed, or belong elsewhere.
    #[error("{what} is corrupt or was tampered with (authentication failed)")]
    CorruptOrTampered {
        /// The structure and object.
        what: String,
    },
}

impl FormatError {
    pub(crate) fn invalid(what: &str, detail: impl Into<String>) -> Self {
        FormatError::Invalid {
            what: what.to_owned(),
            detail: detail.into(),
        }
    }
    pub(crate) fn range(what: &str, field: &'static str, value: u64) -> Self {
        FormatError::OutOfRange {
            what: what.to_owned(),
            field,
            value,
        }
    }
    /// `Ok` if `found` is the `supported` version, else the error naming both.
    pub(crate) fn check_version(
        what: &str,
        found: impl Into<u64>,
        supported: impl Into<u64>,
    ) -> Result<(), Self> {
        let (version, supported) = (found.into(), supported.into());
        if version == supported {
            Ok(())
        } else {
            Err(FormatError::UnsupportedVersion {
                what: what.to_owned(),
                version,
                supported,
            })
        }
    }
}

/// A blob could not be read back: the error names the pack and the blob.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The ciphertext failed authentication.
    #[error("blob {blob} in pack {pack} is corrupt or was tampered with (authentication failed)")]
    CorruptOrTampered {
        /// The pack's object name.
        pack: String,
        /// The blob id.
        blob: String,
    },
    /// The plaintext does not hash to the blob's id.
    #[error("blob {blob} in pack {pack} does not match its id (content hash mismatch)")]
    HashMismatch {
        /// The pack's object name.
        pack: String,
        /// The blob id.
        blob: String,
    },
    /// The blob decrypted but did not decompress to its recorded length.
    #[error("blob {blob} in pack {pack} does not decompress to {raw_len} bytes")]
    Decompress {
        /// The pack's object name.
        pack: String,
        /// The blob id.
        blob: String,
        /// Expected plaintext length.
        raw_len: u32,
    },
    /// The bytes handed in are not the blob's stored length.
    #[error("blob {blob} in pack {pack}: got {got} bytes, index says {want}")]
    Length {
        /// The pack's object name.
        pack: String,
        /// The blob id.
        blob: String,
        /// Bytes given.
        got: usize,
        /// Stored length.
        want: u32,
    },
}

/// Opening or creating a key file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The passphrase does not open this key file (or the key file was altered).
    #[error("wrong passphrase for key {key}")]
    WrongPassphrase {
        /// The key id (short form).
        key: String,
    },
    /// The key file is malformed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The KDF refused its parameters.
    #[error("argon2id failed: {0}")]
    Kdf(String),
}
