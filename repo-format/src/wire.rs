//! A bounds-checked little-endian reader: every read checks the bytes that
//! remain, so no decoder indexes past its input or trusts a length.

use crate::error::FormatError;

pub(crate) struct Reader<'a> {
    what: &'a str,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'a str, data: &'a [u8]) -> Self {
        Self { what, data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(FormatError::Truncated {
                what: self.what.to_owned(),
                need: (self.pos as u64).saturating_add(n as u64),
                have: self.data.len() as u64,
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), FormatError> {
        self.bytes(n).map(|_| ())
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reserved bytes: must be zero.
    pub(crate) fn reserved(&mut self, n: usize) -> Result<(), FormatError> {
        if self.bytes(n)?.iter().any(|b| *b != 0) {
            return Err(FormatError::invalid(
                self.what,
                "reserved bytes are not zero",
            ));
        }
        Ok(())
    }

    /// The input must end here.
    pub(crate) fn finish(&self) -> Result<(), FormatError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(FormatError::TrailingBytes {
                what: self.what.to_owned(),
                extra: extra as u64,
            }),
        }
    }
}
