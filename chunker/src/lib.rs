//! Content-defined chunking and chunk ids for Cairn.
//!
//! This crate is synchronous and does no I/O. It answers two questions about
//! bytes, both under secret keys that the repository derives from its master
//! key (see `docs/format.md` §2 and §9):
//!
//! - **Where to cut**: [`Chunker`] runs FastCDC 2020 (normalized chunking, two
//!   bytes a step) with a gear table derived entirely from a [`GearKey`], so
//!   cut points depend on the key, not on a public table.
//! - **What to call a chunk**: [`IdKey::chunk_id`] is keyed BLAKE3, so a store
//!   holding the ids cannot test for known plaintexts.
//!
//! ```
//! use cairn_chunker::{Chunker, ChunkerParams, GearKey, IdKey};
//!
//! let params = ChunkerParams::new(4096, 16384, 65536, 1)?;
//! let chunker = Chunker::new(params, &GearKey::from_bytes([7; 32]));
//! let ids = IdKey::from_bytes([9; 32]);
//!
//! let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
//! let mut rest = &data[..];
//! let mut total = 0;
//! // `eof = true`: `rest` is all there is, so the last chunk is whatever remains.
//! while let Some(len) = chunker.next_cut(rest, true) {
//!     let (chunk, tail) = rest.split_at(len);
//!     let _id = ids.chunk_id(chunk);
//!     total += chunk.len();
//!     rest = tail;
//! }
//! assert_eq!(total, data.len());
//! # Ok::<(), cairn_chunker::ParamsError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod cutter;
mod id;
mod keys;
mod params;

pub use cutter::Chunker;
pub use id::{ChunkId, ParseIdError};
pub use keys::{GearKey, IdKey};
pub use params::{ChunkerParams, ParamsError};
