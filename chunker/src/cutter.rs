//! FastCDC 2020 with a gear table derived from a key.

use crate::keys::GearKey;
use crate::params::ChunkerParams;
use fastcdc::v2020::{cut_gear, MASKS};

/// Finds content-defined cut points. Cheap to share: it holds only the two
/// 2 KiB gear tables and the parameters.
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl std::fmt::Debug for Chunker {
    // The gear table is key material: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Drop for Chunker {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.gear.zeroize();
        self.gear_ls.zeroize();
    }
}

/// Context of the keyed XOF that yields the gear table (format §2.2).
const GEAR_XOF_INPUT: &[u8] = b"cairn gear table";

impl Chunker {
    /// Builds the chunker: derives the 256-entry gear table from `key`.
    pub fn new(params: ChunkerParams, key: &GearKey) -> Self {
        let mut xof = blake3::Hasher::new_keyed(key.bytes());
        xof.update(GEAR_XOF_INPUT);
        let mut reader = xof.finalize_xof();
        let mut gear = Box::new([0u64; 256]);
        let mut gear_ls = Box::new([0u64; 256]);
        let mut word = [0u8; 8];
        for (g, g_ls) in gear.iter_mut().zip(gear_ls.iter_mut()) {
            reader.fill(&mut word);
            *g = u64::from_le_bytes(word);
            *g_ls = *g << 1;
        }
        // `avg` is a power of two in 256..=4 MiB, so `bits` is 8..=22 and the
        // normalization level is 0..=3: both indices stay inside MASKS (26 entries).
        let bits = params.avg_size().trailing_zeros() as usize;
        let level = usize::from(params.normalization());
        Self {
            params,
            gear,
            gear_ls,
            mask_s: MASKS[bits + level],
            mask_l: MASKS[bits - level],
        }
    }

    /// The parameters this chunker cuts with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// The length of the next chunk at the start of `data`.
    ///
    /// `eof` says whether `data` holds everything up to the end of the file or
    /// stream. Without it, `None` asks for more data: a cut is returned only
    /// where later bytes cannot move it, which is any cut found before the
    /// end of `data` (the search decides each position from the bytes up to
    /// it) or, with at least `max_size` bytes, the forced cut at `max_size`.
    /// With `eof`, the rest of `data` is chunked completely; `None` means
    /// `data` is empty.
    pub fn next_cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        let max = self.params.max_size() as usize;
        if data.is_empty() {
            return None;
        }
        let len = self.search(data, max);
        if eof || len < data.len() || data.len() >= max {
            Some(len)
        } else {
            None
        }
    }

    /// The first cut in `data`, or `min(data.len(), max)` if there is none.
    fn search(&self, data: &[u8], max: usize) -> usize {
        let (_, len) = cut_gear(
            data,
            self.params.min_size() as usize,
            self.params.avg_size() as usize,
            max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        // cut_gear returns a length in 1..=min(len, max) for non-empty data,
        // except when it finds a cut at offset 0, which the min-size skip rules out.
        len.max(1)
    }

    /// All chunk lengths of a complete input, in order. Convenience for tests
    /// and small inputs.
    pub fn cut_all(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(len) = self.next_cut(data, true) {
            out.push(len);
            data = &data[len..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> Chunker {
        let p = ChunkerParams::new(256, 1024, 4096, 1).unwrap_or_else(|e| panic!("{e}"));
        Chunker::new(p, &GearKey::from_bytes([3; 32]))
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect()
    }

    #[test]
    fn zeros_cut_at_max() {
        let c = small();
        let lens = c.cut_all(&vec![0u8; 10_000]);
        assert_eq!(lens, vec![4096, 4096, 1808]);
    }

    #[test]
    fn the_key_moves_the_cuts() {
        let data = pseudo_random(200_000, 42);
        let p = ChunkerParams::new(256, 1024, 4096, 1).unwrap_or_else(|e| panic!("{e}"));
        let a = Chunker::new(p, &GearKey::from_bytes([1; 32])).cut_all(&data);
        let b = Chunker::new(p, &GearKey::from_bytes([2; 32])).cut_all(&data);
        assert_ne!(a, b);
    }

    #[test]
    fn an_uncertain_cut_waits_for_more_data() {
        let c = small();
        // Zeros never match a mask: the only cut is the forced one at max.
        let zeros = vec![0u8; 4095];
        assert_eq!(c.next_cut(&zeros, false), None);
        assert_eq!(c.next_cut(&zeros, true), Some(4095));
        assert_eq!(c.next_cut(&[], true), None);
        // A cut found before the end of the data is final.
        let data = pseudo_random(4095, 1);
        let whole = c.cut_all(&pseudo_random(100_000, 1))[0];
        assert!(whole < 4095);
        assert_eq!(c.next_cut(&data, false), Some(whole));
        assert_eq!(c.next_cut(&data[..whole], false), None);
    }

    proptest! {
        /// Feeding the data in arbitrary pieces gives exactly the cuts of the whole.
        #[test]
        fn streaming_equals_whole(seed in any::<u64>(), len in 0usize..60_000, pieces in proptest::collection::vec(1usize..9000, 1..40)) {
            let c = small();
            let data = pseudo_random(len, seed);
            let whole = c.cut_all(&data);

            let mut got = Vec::new();
            let mut buf: Vec<u8> = Vec::new();
            let mut fed = 0;
            let mut piece = pieces.iter().cycle();
            while fed < data.len() {
                let n = (*piece.next().unwrap_or(&1)).min(data.len() - fed);
                buf.extend_from_slice(&data[fed..fed + n]);
                fed += n;
                while let Some(cut) = c.next_cut(&buf, false) {
                    got.push(cut);
                    buf.drain(..cut);
                }
            }
            while let Some(cut) = c.next_cut(&buf, true) {
                got.push(cut);
                buf.drain(..cut);
            }
            prop_assert_eq!(got, whole);
        }

        #[test]
        fn chunks_respect_bounds(seed in any::<u64>(), len in 1usize..50_000) {
            let c = small();
            let data = pseudo_random(len, seed);
            let lens = c.cut_all(&data);
            prop_assert_eq!(lens.iter().sum::<usize>(), len);
            for (i, l) in lens.iter().enumerate() {
                prop_assert!(*l <= 4096);
                if i + 1 < lens.len() {
                    prop_assert!(*l >= 256, "chunk {} of {} is {} bytes", i, lens.len(), l);
                }
            }
        }
    }
}
