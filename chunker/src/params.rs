//! Chunker parameters, validated once so that cutting never has to check them.

use fastcdc::v2020::{
    AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
};

/// Why a set of chunker parameters was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamsError {
    /// A size is outside the range FastCDC 2020 supports.
    #[error("chunker {what} size {value} is outside {min}..={max}")]
    OutOfRange {
        /// `min`, `avg` or `max`.
        what: &'static str,
        /// The offending value.
        value: u32,
        /// Smallest allowed value.
        min: u32,
        /// Largest allowed value.
        max: u32,
    },
    /// The sizes are not strictly increasing.
    #[error("chunker sizes must satisfy min < avg < max (got {min} / {avg} / {max})")]
    NotIncreasing {
        /// Minimum chunk size.
        min: u32,
        /// Average chunk size.
        avg: u32,
        /// Maximum chunk size.
        max: u32,
    },
    /// The average size is not a power of two.
    #[error("chunker average size {0} is not a power of two")]
    AvgNotPowerOfTwo(u32),
    /// The normalization level is not 0..=3.
    #[error("chunker normalization level {0} is not in 0..=3")]
    Normalization(u8),
}

/// Validated FastCDC parameters, as stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    min: u32,
    avg: u32,
    max: u32,
    normalization: u8,
}

impl ChunkerParams {
    /// Cairn's default for new repositories: 32 KiB / 128 KiB / 512 KiB, level 1.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min: 32 * 1024,
        avg: 128 * 1024,
        max: 512 * 1024,
        normalization: 1,
    };

    /// Checks and builds a parameter set.
    ///
    /// # Errors
    /// [`ParamsError`] if a size is out of FastCDC 2020's range, the sizes are not
    /// strictly increasing, `avg` is not a power of two, or `normalization > 3`.
    pub fn new(min: u32, avg: u32, max: u32, normalization: u8) -> Result<Self, ParamsError> {
        let check = |what, value, lo, hi| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(ParamsError::OutOfRange {
                    what,
                    value,
                    min: lo,
                    max: hi,
                })
            }
        };
        check("min", min, MINIMUM_MIN, MINIMUM_MAX)?;
        check("avg", avg, AVERAGE_MIN, AVERAGE_MAX)?;
        check("max", max, MAXIMUM_MIN, MAXIMUM_MAX)?;
        if !(min < avg && avg < max) {
            return Err(ParamsError::NotIncreasing { min, avg, max });
        }
        if !avg.is_power_of_two() {
            return Err(ParamsError::AvgNotPowerOfTwo(avg));
        }
        if normalization > 3 {
            return Err(ParamsError::Normalization(normalization));
        }
        Ok(Self {
            min,
            avg,
            max,
            normalization,
        })
    }

    /// Minimum chunk size in bytes (the last chunk of a stream may be shorter).
    pub fn min_size(&self) -> u32 {
        self.min
    }
    /// Target average chunk size in bytes.
    pub fn avg_size(&self) -> u32 {
        self.avg
    }
    /// Maximum chunk size in bytes; no chunk is longer.
    pub fn max_size(&self) -> u32 {
        self.max
    }
    /// FastCDC normalization level (0..=3).
    pub fn normalization(&self) -> u8 {
        self.normalization
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        let d = ChunkerParams::DEFAULT;
        assert_eq!(
            ChunkerParams::new(d.min, d.avg, d.max, d.normalization),
            Ok(d)
        );
    }

    #[test]
    fn rejects_bad_sets() {
        assert!(matches!(
            ChunkerParams::new(10, 1024, 4096, 1),
            Err(ParamsError::OutOfRange { what: "min", .. })
        ));
        assert!(matches!(
            ChunkerParams::new(4096, 4096, 65536, 1),
            Err(ParamsError::NotIncreasing { .. })
        ));
        assert_eq!(
            ChunkerParams::new(4096, 10000, 65536, 1),
            Err(ParamsError::AvgNotPowerOfTwo(10000))
        );
        assert_eq!(
            ChunkerParams::new(4096, 16384, 65536, 4),
            Err(ParamsError::Normalization(4))
        );
        assert!(matches!(
            ChunkerParams::new(4096, 16384, 1 << 30, 1),
            Err(ParamsError::OutOfRange { what: "max", .. })
        ));
    }
}
