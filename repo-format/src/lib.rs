//! Every byte a Cairn repository stores, as specified in `docs/format.md`.
//!
//! This crate is synchronous and does no I/O: it turns values into the bytes
//! of objects and back, and holds the repository's cryptography. The agent
//! decides where the bytes go.
//!
//! - Names: [`ObjectName`] / [`ObjectKind`], typed ids ([`SessionId`],
//!   [`PackId`], [`IndexId`], [`SnapshotId`], [`KeyId`], and [`ChunkId`] for blobs).
//! - Keys: a random [`MasterKey`] wrapped in key files ([`keyfile`]) under a
//!   [`Passphrase`] with Argon2id; [`RepoKeys`] derived from it.
//! - Objects: [`Config`], packs ([`PackWriter`], [`PackCipher`]), index files
//!   ([`IndexFile`]), [`Snapshot`]s, [`Tree`]s, and session objects
//!   ([`Lease`], [`Commit`]); the collector's [`GcState`] and [`PackSet`]s.
//!
//! Every decoder accepts exactly what the spec allows and returns a typed
//! error ([`FormatError`], [`BlobError`], [`KeyError`]) for anything else.
//!
//! ```
//! use cairn_repo_format::*;
//!
//! let keys = MasterKey::generate().derive();
//! let session = SessionId::random();
//! let data = b"hello, cairn";
//! let id = keys.id.chunk_id(data);
//!
//! let mut pack = PackWriter::new(&keys.enc, session, 1 << 16);
//! let entry = pack.add(id, BlobKind::Data, data.len(), Compression::None, data)?;
//! let pack = pack.finish();
//!
//! let cipher = PackCipher::new(&keys.enc, session, pack.id);
//! assert_eq!(cipher.read_header(&pack.bytes)?, vec![entry]);
//! let stored = &pack.bytes[..entry.stored_len as usize];
//! let mut dec = BlobDecompressor::new().expect("zstd context");
//! assert_eq!(cipher.open_blob(&keys.id, &entry, stored, &mut dec).expect("intact"), data);
//! # Ok::<(), FormatError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod audit;
mod config;
mod crypto;
mod error;
mod gc;
mod ids;
mod index;
pub mod keyfile;
mod list;
mod names;
mod pack;
pub mod sealed;
mod snapshot;
mod tree;
mod wire;

/// The repository format this crate reads and writes (`docs/format.md`).
pub const FORMAT_VERSION: u32 = 1;

pub use audit::{AuditRecord, MAX_AUDIT_SNAPSHOTS, MAX_AUDIT_TEXT};
pub use config::{ChunkingKeys, Config, CHUNKER_ALGORITHM, DEFAULT_PACK_SIZE, DEFAULT_ZSTD_LEVEL};
pub use crypto::{CatalogKey, EncKey, MasterKey, RepoKeys, TAG_LEN};
pub use error::{BlobError, FormatError, KeyError};
pub use gc::{GcState, PackName, PackSet, Phase, MAX_PACK_SET};
pub use ids::{
    AuditId, ChunkId, IndexId, KeyId, PackId, ParseIdError, PlanId, SessionId, SnapshotId,
};
pub use index::{IndexFile, IndexPack};
pub use keyfile::{KdfParams, KeyMeta, Passphrase};
pub use list::{decode_list, encode_list, LIST_IDS, MAX_LIST_IDS};
pub use names::{ObjectKind, ObjectName};
pub use pack::{
    fuzz_decode_pack_header, padme, BlobCompressor, BlobDecompressor, BlobEntry, BlobKind,
    Compression, FinishedPack, PackCipher, PackWriter, ENTRY_LEN, MAX_BLOBS, MAX_BLOB_RAW,
    TRAILER_LEN,
};
pub use snapshot::{
    valid_stream_name, valid_tag, Commit, Counts, DbKeys, Lease, Origin, Snapshot, Source, Summary,
    TableRows, MAX_TAGS, MAX_TAG_LEN,
};
pub use tree::{
    FileContent, Node, NodeKind, NodeMeta, Tree, Xattr, MAX_XATTRS, MAX_XATTR_NAME, MAX_XATTR_VALUE,
};
