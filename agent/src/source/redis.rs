//! Redis over its own replication protocol (no `redis-cli` needed).
//!
//! Cairn connects as a replica would: `AUTH` if credentials were given,
//! `INFO server` for the version, `REPLCONF capa eof capa psync2`, then
//! `PSYNC ? -1`, which makes the server send a full RDB snapshot, either as
//! `$<length>` or, for diskless replication, as `$EOF:<40-byte mark>` then the
//! payload then the same mark. The payload is streamed into the pipeline while
//! its magic, version and CRC-64 trailer are checked; a short or corrupt
//! payload is an error, so it never becomes a snapshot. The connection is
//! closed once the payload is complete.

use super::{ReadReport, SourceError};
use crate::pipeline::Stats;
use bytes::Bytes;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// Longest protocol line accepted before the payload.
const MAX_LINE: usize = 64 << 10;
/// Bytes read from the socket at a time.
const READ_BUF: usize = 1 << 20;

/// Where and how to connect.
#[derive(Clone)]
pub struct RedisTarget {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("address", &self.address())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The versions a server reported.
#[derive(Debug, Clone)]
pub struct RedisMeta {
    /// `redis_version` from INFO.
    pub redis_version: String,
    /// The RDB format version from the payload's header.
    pub rdb_version: u32,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RedisTarget {
    /// Parses `redis://[user:password@]host[:port]` (port 6379 by default).
    ///
    /// # Errors
    /// If the URL is not of that form.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url.strip_prefix("redis://").ok_or_else(|| {
            anyhow::anyhow!("a Redis URL starts with redis:// (got something else)")
        })?;
        let rest = rest.split('/').next().unwrap_or(rest);
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (
                    (!u.is_empty()).then(|| percent_decode(u)),
                    Some(Zeroizing::new(percent_decode(p))),
                ),
                None => (None, Some(Zeroizing::new(percent_decode(a)))),
            },
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .map_err(|_| anyhow::anyhow!("bad port in the Redis URL"))?,
            ),
            None => (hostport.to_owned(), 6379),
        };
        if host.is_empty() {
            anyhow::bail!("the Redis URL has no host: redis://[user:password@]host:port");
        }
        Ok(Self {
            host,
            port,
            user,
            password,
        })
    }

    /// `host:port`, never credentials.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn err(&self, detail: impl Into<String>) -> SourceError {
        SourceError::Redis {
            address: self.address(),
            detail: detail.into(),
        }
    }

    /// Connects, authenticates and asks for a full resynchronisation; returns
    /// the connection positioned at the start of the RDB payload.
    ///
    /// # Errors
    /// [`SourceError::Redis`] naming the step that failed.
    pub async fn connect(&self) -> Result<Replica, SourceError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.err(format!("cannot connect: {e}")))?;
        let mut conn = BufReader::with_capacity(READ_BUF, stream);
        if let Some(pass) = &self.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(u) = &self.user {
                args.push(u.as_bytes());
            }
            args.push(pass.as_bytes());
            send(&mut conn, &args)
                .await
                .map_err(|e| self.err(format!("sending AUTH: {e}")))?;
            let reply = read_line(&mut conn)
                .await
                .map_err(|e| self.err(format!("reading the AUTH reply: {e}")))?;
            if !reply.starts_with("+OK") {
                return Err(self.err(format!(
                    "authentication failed: {}",
                    reply.trim_start_matches('-')
                )));
            }
        }
        let info = self.command(&mut conn, &[b"INFO", b"server"]).await?;
        let info = match info.strip_prefix('$') {
            Some(len) => {
                let len: usize = len.parse().map_err(|_| self.err("bad INFO reply"))?;
                if len > MAX_LINE {
                    return Err(self.err("INFO reply too long"));
                }
                let mut body = vec![0u8; len + 2];
                conn.read_exact(&mut body)
                    .await
                    .map_err(|e| self.err(format!("reading INFO: {e}")))?;
                String::from_utf8_lossy(&body).into_owned()
            }
            None => return Err(self.err(format!("INFO failed: {info}"))),
        };
        let redis_version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let r = self
            .command(
                &mut conn,
                &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
            )
            .await?;
        if !r.starts_with("+OK") {
            return Err(self.err(format!("REPLCONF refused: {r}")));
        }
        let r = self.command(&mut conn, &[b"PSYNC", b"?", b"-1"]).await?;
        if !r.starts_with("+FULLRESYNC") {
            return Err(self.err(format!(
                "the server refused a full resynchronisation: {}",
                r.trim_start_matches('-')
            )));
        }
        // The server sends bare newlines as keep-alives while it prepares the RDB.
        let header = loop {
            let line = read_line(&mut conn)
                .await
                .map_err(|e| self.err(format!("waiting for the RDB: {e}")))?;
            if !line.is_empty() {
                break line;
            }
        };
        let transfer = if let Some(mark) = header.strip_prefix("$EOF:") {
            let mark: [u8; 40] = mark
                .as_bytes()
                .try_into()
                .map_err(|_| self.err("bad $EOF mark"))?;
            Transfer::Eof(mark)
        } else if let Some(len) = header.strip_prefix('$') {
            Transfer::Length(
                len.parse()
                    .map_err(|_| self.err(format!("bad RDB length {len:?}")))?,
            )
        } else {
            return Err(self.err(format!("unexpected reply before the RDB: {header:?}")));
        };
        Ok(Replica {
            conn,
            address: self.address(),
            redis_version,
            transfer,
        })
    }

    async fn command(
        &self,
        conn: &mut BufReader<TcpStream>,
        args: &[&[u8]],
    ) -> Result<String, SourceError> {
        let name = String::from_utf8_lossy(args[0]).into_owned();
        send(conn, args)
            .await
            .map_err(|e| self.err(format!("sending {name}: {e}")))?;
        read_line(conn)
            .await
            .map_err(|e| self.err(format!("reading the {name} reply: {e}")))
    }
}

async fn send(conn: &mut BufReader<TcpStream>, args: &[&[u8]]) -> std::io::Result<()> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    conn.get_mut().write_all(&out).await
}

/// One protocol line without its line ending.
async fn read_line(conn: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = Vec::new();
    let n = (&mut *conn)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::other("protocol line too long"));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

enum Transfer {
    Length(u64),
    Eof([u8; 40]),
}

/// A connection that is about to deliver an RDB payload.
pub struct Replica {
    conn: BufReader<TcpStream>,
    address: String,
    redis_version: String,
    transfer: Transfer,
}

/// Checks an RDB payload as it streams by: magic, version, CRC-64 trailer.
struct Checker {
    digest: crc::Digest<'static, u64>,
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
}

static CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

impl Checker {
    fn new() -> Self {
        Self {
            digest: CRC64.digest(),
            head: Vec::with_capacity(9),
            tail: Vec::with_capacity(16),
            total: 0,
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        if self.head.len() < 9 {
            let take = (9 - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
        }
        // Everything but the last 8 bytes seen so far goes into the CRC.
        if data.len() >= 8 {
            self.digest.update(&self.tail);
            self.digest.update(&data[..data.len() - 8]);
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - 8..]);
        } else {
            self.tail.extend_from_slice(data);
            let extra = self.tail.len().saturating_sub(8);
            self.digest.update(&self.tail[..extra]);
            self.tail.drain(..extra);
        }
    }

    /// The RDB version, if the payload is a whole, intact RDB file.
    fn finish(self) -> Result<u32, String> {
        if self.head.len() < 9 || &self.head[..5] != b"REDIS" {
            return Err("the payload is not an RDB file (bad magic)".into());
        }
        let version: u32 = std::str::from_utf8(&self.head[5..9])
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or("bad RDB version field")?;
        if self.total < 18 || self.tail.len() != 8 {
            return Err("the RDB payload is truncated".into());
        }
        let stored = u64::from_le_bytes(self.tail[..8].try_into().map_err(|_| "short trailer")?);
        let computed = self.digest.finalize();
        if stored != 0 && stored != computed {
            return Err(format!("the RDB checksum does not match (stored {stored:016x}, computed {computed:016x}): the payload is corrupt"));
        }
        if stored == 0 {
            eprintln!("warning: the server has rdbchecksum off; the RDB could not be verified");
        }
        Ok(version)
    }
}

impl Replica {
    /// Streams the payload into the pipeline, checking it on the way.
    ///
    /// # Errors
    /// [`SourceError::Redis`] if the connection drops early or the payload
    /// is not an intact RDB file.
    pub async fn stream(
        mut self,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        stats: Arc<Stats>,
    ) -> Result<ReadReport, SourceError> {
        let err = |detail: String| SourceError::Redis {
            address: self.address.clone(),
            detail,
        };
        let mut check = Checker::new();
        let emit = |data: &[u8], check: &mut Checker| {
            check.update(data);
            Stats::add(&stats.bytes_read, data.len() as u64);
            Bytes::copy_from_slice(data)
        };
        let mut buf = vec![0u8; READ_BUF];
        match self.transfer {
            Transfer::Length(len) => {
                let mut left = len;
                while left > 0 {
                    let want = usize::try_from(left).unwrap_or(READ_BUF).min(READ_BUF);
                    let n = self
                        .conn
                        .read(&mut buf[..want])
                        .await
                        .map_err(|e| err(format!("reading the RDB: {e}")))?;
                    if n == 0 {
                        return Err(err(format!(
                            "the connection closed after {} of {len} bytes of the RDB",
                            len - left
                        )));
                    }
                    left -= n as u64;
                    let b = emit(&buf[..n], &mut check);
                    if tx.send(b).await.is_err() {
                        return Ok(ReadReport { redis: None });
                    }
                }
            }
            Transfer::Eof(mark) => {
                // Hold back the last 40 bytes: they may be the start of the mark.
                let mut pending: Vec<u8> = Vec::with_capacity(READ_BUF + 40);
                loop {
                    let n = self
                        .conn
                        .read(&mut buf)
                        .await
                        .map_err(|e| err(format!("reading the RDB: {e}")))?;
                    if n == 0 {
                        return Err(err(format!(
                            "the connection closed after {} bytes, before the end of the RDB",
                            check.total + pending.len() as u64
                        )));
                    }
                    let from = pending.len().saturating_sub(39);
                    pending.extend_from_slice(&buf[..n]);
                    if let Some(at) = pending[from..].windows(40).position(|w| w == mark) {
                        let end = from + at;
                        let b = emit(&pending[..end], &mut check);
                        let _ = tx.send(b).await;
                        break;
                    }
                    let keep = pending.len().saturating_sub(40);
                    if keep > 0 {
                        let b = emit(&pending[..keep], &mut check);
                        pending.drain(..keep);
                        if tx.send(b).await.is_err() {
                            return Ok(ReadReport { redis: None });
                        }
                    }
                }
            }
        }
        let rdb_version = check.finish().map_err(err)?;
        Ok(ReadReport {
            redis: Some(RedisMeta {
                redis_version: self.redis_version,
                rdb_version,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = RedisTarget::parse("redis://alice:p%40ss@db.local:7000")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.address(), "db.local:7000");
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(t.password.as_deref().map(String::as_str), Some("p@ss"));
        assert!(!format!("{t:?}").contains("p@ss"));
        let t = RedisTarget::parse("redis://:secret@127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (t.address().as_str(), t.user.is_none()),
            ("127.0.0.1:6379", true)
        );
        assert!(RedisTarget::parse("http://x").is_err());
        assert!(RedisTarget::parse("redis://").is_err());
    }

    #[test]
    fn checker_accepts_only_intact_payloads() {
        let mut body = b"REDIS0010".to_vec();
        body.extend_from_slice(b"\xfa\x09redis-ver\x067.0.15\xff");
        let crc = CRC64.checksum(&body);
        let mut file = body.clone();
        file.extend_from_slice(&crc.to_le_bytes());
        for split in [1, 3, 7, 8, 9, file.len() - 3, file.len()] {
            let mut c = Checker::new();
            c.update(&file[..split]);
            c.update(&file[split..]);
            assert_eq!(c.finish(), Ok(10), "split {split}");
        }
        let mut bad = file.clone();
        bad[12] ^= 1;
        let mut c = Checker::new();
        c.update(&bad);
        assert!(c.finish().is_err_and(|e| e.contains("checksum")));
        let mut c = Checker::new();
        c.update(&file[..file.len() - 2]);
        assert!(c.finish().is_err());
    }
}
