//! Counting the keys of an RDB file per database, as it streams by (format
//! §7.1 `counts.keys`, for drills).
//!
//! The payload is the server's fork-time snapshot, so its keys are exactly
//! what the backup holds. The parser walks the file's opcodes and skips
//! every value by its encoding (strings, plain and LZF-compressed; lists,
//! sets, sorted sets and hashes, plain and in their ziplist, listpack and
//! intset forms; quicklists; streams with their consumer groups; module
//! values through their self-describing opcodes). A type or opcode it does
//! not know (a newer Redis) ends the count without a result: the backup
//! goes on, and records no counts.

use std::collections::BTreeMap;
use std::io::Read;

/// Why the keys were not counted.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// The stream ended early or could not be read.
    #[error("reading the RDB: {0}")]
    Io(#[from] std::io::Error),
    /// Something this parser does not know.
    #[error("{0}")]
    Unsupported(String),
}

type Result<T> = std::result::Result<T, RdbError>;

fn unsupported<T>(what: impl Into<String>) -> Result<T> {
    Err(RdbError::Unsupported(what.into()))
}

/// Keys per database, from an RDB file's start to its EOF opcode.
///
/// # Errors
/// [`RdbError`] for a short stream or content this parser does not know.
pub fn count_keys(r: impl Read) -> Result<BTreeMap<u32, u64>> {
    let mut p = Parser {
        r: std::io::BufReader::with_capacity(1 << 16, r),
    };
    let mut head = [0u8; 9];
    p.r.read_exact(&mut head)?;
    if &head[..5] != b"REDIS" {
        return unsupported("not an RDB file");
    }
    let mut keys = BTreeMap::new();
    let mut db = 0u32;
    loop {
        let op = p.byte()?;
        match op {
            0xFF => return Ok(keys),
            // AUX: a name and a value.
            0xFA => {
                p.skip_string()?;
                p.skip_string()?;
            }
            // RESIZEDB: two sizes (hints).
            0xFB => {
                p.length()?;
                p.length()?;
            }
            0xFE => {
                db = u32::try_from(p.length()?)
                    .or_else(|_| unsupported("a database number beyond 32 bits"))?;
            }
            // FUNCTION2: a library's code.
            0xF6 => p.skip_string()?,
            // MODULE_AUX: a module's data outside any key.
            0xF7 => {
                p.length()?;
                p.length()?;
                p.skip_module_value()?;
            }
            // Before a key: its expiry (ms or s), its LFU frequency, its LRU idle time.
            0xFC | 0xFD | 0xF9 | 0xF8 => match op {
                0xFC => p.skip(8)?,
                0xFD => p.skip(4)?,
                0xF9 => p.skip(1)?,
                _ => {
                    p.length()?;
                }
            },
            value_type => {
                p.skip_string()?;
                p.skip_value(value_type)?;
                *keys.entry(db).or_insert(0) += 1;
            }
        }
    }
}

struct Parser<R> {
    r: std::io::BufReader<R>,
}

/// A length, or one of the special string encodings.
enum Len {
    Plain(u64),
    Special(u8),
}

impl<R: Read> Parser<R> {
    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        let got = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())?;
        if got != n {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        Ok(())
    }

    fn len_or_special(&mut self) -> Result<Len> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Len::Plain(u64::from(first & 0x3F)),
            1 => Len::Plain((u64::from(first & 0x3F) << 8) | u64::from(self.byte()?)),
            2 => match first {
                0x80 => {
                    let mut b = [0u8; 4];
                    self.r.read_exact(&mut b)?;
                    Len::Plain(u64::from(u32::from_be_bytes(b)))
                }
                0x81 => {
                    let mut b = [0u8; 8];
                    self.r.read_exact(&mut b)?;
                    Len::Plain(u64::from_be_bytes(b))
                }
                _ => return unsupported(format!("length encoding {first:#04x}")),
            },
            _ => Len::Special(first & 0x3F),
        })
    }

    fn length(&mut self) -> Result<u64> {
        match self.len_or_special()? {
            Len::Plain(n) => Ok(n),
            Len::Special(s) => {
                unsupported(format!("a special encoding ({s}) where a length belongs"))
            }
        }
    }

    /// A string: plain, an integer (8, 16, 32 bits) or LZF-compressed.
    fn skip_string(&mut self) -> Result<()> {
        match self.len_or_special()? {
            Len::Plain(n) => self.skip(n),
            Len::Special(0) => self.skip(1),
            Len::Special(1) => self.skip(2),
            Len::Special(2) => self.skip(4),
            Len::Special(3) => {
                let compressed = self.length()?;
                self.length()?;
                self.skip(compressed)
            }
            Len::Special(s) => unsupported(format!("string encoding {s}")),
        }
    }

    fn skip_strings(&mut self, n: u64) -> Result<()> {
        for _ in 0..n {
            self.skip_string()?;
        }
        Ok(())
    }

    /// A sorted set member's score in the old text form.
    fn skip_text_double(&mut self) -> Result<()> {
        match self.byte()? {
            253..=255 => Ok(()),
            n => self.skip(u64::from(n)),
        }
    }

    fn skip_value(&mut self, t: u8) -> Result<()> {
        match t {
            // String; ziplist, listpack and intset encodings (one string each).
            0 | 9..=13 | 16 | 17 | 20 => self.skip_string(),
            // List, set, quicklist: a count of strings.
            1 | 2 | 14 => {
                let n = self.length()?;
                self.skip_strings(n)
            }
            // Sorted set with text scores.
            3 => {
                for _ in 0..self.length()? {
                    self.skip_string()?;
                    self.skip_text_double()?;
                }
                Ok(())
            }
            // Hash: pairs of strings.
            4 => {
                let n = self.length()?;
                self.skip_strings(n.saturating_mul(2))
            }
            // Sorted set with binary scores.
            5 => {
                for _ in 0..self.length()? {
                    self.skip_string()?;
                    self.skip(8)?;
                }
                Ok(())
            }
            // Module value (the second form is self-describing).
            7 => {
                self.length()?;
                self.skip_module_value()
            }
            // Quicklist 2: each node's container kind, then its data.
            18 => {
                for _ in 0..self.length()? {
                    self.length()?;
                    self.skip_string()?;
                }
                Ok(())
            }
            15 | 19 | 21 => self.skip_stream(t),
            other => unsupported(format!(
                "value type {other} (a newer Redis, or a module of the old kind)"
            )),
        }
    }

    /// A module value in opcodes: ints, floats, doubles, strings, to EOF.
    fn skip_module_value(&mut self) -> Result<()> {
        loop {
            match self.length()? {
                0 => return Ok(()),
                1 | 2 => {
                    self.length()?;
                }
                3 => self.skip(4)?,
                4 => self.skip(8)?,
                5 => self.skip_string()?,
                op => return unsupported(format!("module opcode {op}")),
            }
        }
    }

    /// A stream: its listpacks, metadata, and consumer groups.
    fn skip_stream(&mut self, t: u8) -> Result<()> {
        let nodes = self.length()?;
        self.skip_strings(nodes.saturating_mul(2))?;
        // Length, last id; from the second form: first id, max deleted id,
        // entries added.
        let ids = if t >= 19 { 3 + 5 } else { 3 };
        for _ in 0..ids {
            self.length()?;
        }
        for _ in 0..self.length()? {
            self.skip_string()?;
            self.length()?;
            self.length()?;
            if t >= 19 {
                // Entries read.
                self.length()?;
            }
            // The group's pending entries: id, delivery time, count.
            for _ in 0..self.length()? {
                self.skip(16 + 8)?;
                self.length()?;
            }
            for _ in 0..self.length()? {
                self.skip_string()?;
                // Seen time; from the third form, active time too.
                self.skip(if t >= 21 { 16 } else { 8 })?;
                let pending = self.length()?;
                self.skip(pending.saturating_mul(16))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RDB file by hand: AUX, two databases, an expiry, an LZF string,
    /// an integer string, a hash, a quicklist 2 and a stream.
    fn sample() -> Vec<u8> {
        let mut f = b"REDIS0010".to_vec();
        let s = |f: &mut Vec<u8>, text: &[u8]| {
            f.push(text.len() as u8);
            f.extend_from_slice(text);
        };
        f.push(0xFA);
        s(&mut f, b"redis-ver");
        s(&mut f, b"7.0.15");
        f.extend([0xFE, 0x00, 0xFB, 0x03, 0x01]);
        // A string.
        f.push(0x00);
        s(&mut f, b"a");
        s(&mut f, b"1");
        // With an expiry: an integer-encoded string.
        f.push(0xFC);
        f.extend(1_800_000_000_000u64.to_le_bytes());
        f.push(0x00);
        s(&mut f, b"b");
        f.extend([0xC0, 0x07]);
        // A hash of one pair, its value LZF "compressed".
        f.push(0x04);
        s(&mut f, b"h");
        f.push(0x01);
        s(&mut f, b"f");
        f.extend([0xC3, 0x02, 0x05, 0xAA, 0xBB]);
        f.extend([0xFE, 0x02]);
        // A quicklist 2 of one node.
        f.push(18);
        s(&mut f, b"l");
        f.extend([0x01, 0x02]);
        s(&mut f, b"xyz");
        // A stream (second form): one listpack, ids, one group with one
        // pending entry and one consumer.
        f.push(19);
        s(&mut f, b"st");
        f.push(0x01);
        s(&mut f, b"0123456789abcdef");
        s(&mut f, b"lp");
        f.extend([0x01, 0x05, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01]);
        f.push(0x01);
        s(&mut f, b"g");
        f.extend([0x05, 0x00, 0x01]);
        f.push(0x01);
        f.extend([0u8; 24]);
        f.push(0x01);
        f.push(0x01);
        s(&mut f, b"c");
        f.extend([0u8; 8]);
        f.push(0x01);
        f.extend([0u8; 16]);
        f.push(0xFF);
        f.extend([0u8; 8]);
        f
    }

    #[test]
    fn keys_are_counted_per_database() {
        let counts = count_keys(sample().as_slice()).unwrap();
        assert_eq!(counts, BTreeMap::from([(0, 3), (2, 2)]));
    }

    #[test]
    fn what_it_does_not_know_or_a_short_file_gives_no_count() {
        let mut f = sample();
        let at = f.iter().position(|b| *b == 18).unwrap();
        f[at] = 99;
        assert!(matches!(
            count_keys(f.as_slice()),
            Err(RdbError::Unsupported(_))
        ));
        let f = sample();
        assert!(matches!(
            count_keys(&f[..f.len() - 30]),
            Err(RdbError::Io(_))
        ));
        assert!(count_keys(&b"NOTRDB0010"[..]).is_err());
    }
}
