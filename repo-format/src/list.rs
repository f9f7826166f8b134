//! Content lists (format §7.4): a large file's chunk ids, kept in blobs of
//! kind 3 that its node names, so the tree holds one id per list.

use crate::error::FormatError;
use crate::ids::ChunkId;

/// Most ids a content list may hold (a reader rejects more).
pub const MAX_LIST_IDS: usize = 65_536;

/// Ids a writer puts in each content list, and the most chunks it keeps in
/// the tree itself: a file of more chunks is written as lists of this many
/// (the last one shorter), so an unchanged file gives the same lists.
pub const LIST_IDS: usize = 16_384;

/// A content list's plaintext: the ids, 32 bytes each.
pub fn encode_list(ids: &[ChunkId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * 32);
    for id in ids {
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// Decodes a content list's plaintext.
///
/// # Errors
/// [`FormatError`] for an empty list, a length that is not a multiple of
/// 32 bytes, or more than [`MAX_LIST_IDS`] ids.
pub fn decode_list(data: &[u8]) -> Result<Vec<ChunkId>, FormatError> {
    let what = "content list";
    if data.is_empty() || !data.len().is_multiple_of(32) {
        return Err(FormatError::invalid(
            what,
            format!("{} bytes is not a positive multiple of 32", data.len()),
        ));
    }
    let n = data.len() / 32;
    if n > MAX_LIST_IDS {
        return Err(FormatError::range(what, "ids", n as u64));
    }
    Ok(data
        .chunks_exact(32)
        .map(|c| {
            let mut id = [0; 32];
            id.copy_from_slice(c);
            ChunkId::from_bytes(id)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(ids in proptest::collection::vec(proptest::array::uniform32(any::<u8>()), 1..50)) {
            let ids: Vec<ChunkId> = ids.into_iter().map(ChunkId::from_bytes).collect();
            prop_assert_eq!(decode_list(&encode_list(&ids)).ok(), Some(ids));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_list(&data);
        }
    }

    #[test]
    fn rejects_what_the_spec_forbids() {
        assert!(decode_list(&[]).is_err());
        assert!(decode_list(&[0; 33]).is_err());
        assert!(decode_list(&vec![0; 32 * MAX_LIST_IDS]).is_ok());
        assert!(decode_list(&vec![0; 32 * (MAX_LIST_IDS + 1)]).is_err());
    }
}
