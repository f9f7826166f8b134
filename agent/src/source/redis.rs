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

use super::stream::{Connect, Producer, StreamSpec};
use super::{Recorded, SourceError, StreamPlan};
use crate::catalog::Catalog;
use crate::error::{input, Context, Error, Result};
use crate::repo::Repository;
use crate::restore::{root_file, write_new_file};
use crate::stats::Stats;
use bytes::Bytes;
use cairn_repo_format::{Counts, DbKeys, Snapshot, Source};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// Longest protocol line accepted before the payload.
const MAX_LINE: usize = 64 << 10;
/// Bytes read from the socket at a time.
const READ_BUF: usize = 1 << 20;

/// The RDB file of a snapshot's root tree (format §7.1).
pub const RDB_FILE: &str = "dump.rdb";

/// A Redis server to back up.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port`, or `rediss://` for TLS; an IPv6
    /// host in brackets; special characters in the user or password
    /// percent-encoded.
    pub url: String,
    /// The password, if the URL has none (as redis-cli's `REDISCLI_AUTH`:
    /// taken as is, not percent-decoded).
    #[serde(default)]
    pub password: Option<String>,
    /// With `rediss://`: trust the CA certificates in this PEM file instead
    /// of the system's.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL and password are secrets; the address is not.
        let address = self.target().map_or_else(|_| "?".into(), |t| t.address());
        f.debug_struct("RedisSettings")
            .field("address", &address)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish_non_exhaustive()
    }
}

impl RedisSettings {
    /// Where and how to connect.
    ///
    /// # Errors
    /// [`Error::Input`] if the URL is not of the documented form.
    pub fn target(&self) -> Result<RedisTarget> {
        Ok(RedisTarget::parse(&self.url)?
            .with_default_password(self.password.clone().map(String::into_bytes))
            .with_ca_file(self.tls_ca_file.clone()))
    }

    /// One stream, [`RDB_FILE`]; the record takes the versions the server
    /// gave while streaming.
    ///
    /// # Errors
    /// [`Error::Input`] if the URL is not of the documented form.
    pub fn plan(&self) -> Result<StreamPlan> {
        let target = self.target()?;
        let address = target.address();
        let learnt = Arc::new(OnceLock::new());
        let connect = Connector {
            target,
            learnt: learnt.clone(),
        };
        Ok(StreamPlan {
            streams: vec![(RDB_FILE.to_owned(), StreamSpec::Custom(Box::new(connect)))],
            expected_bytes: None,
            record: Box::pin(async move {
                let meta: &RedisMeta = learnt.get().ok_or_else(|| {
                    Error::Internal("the Redis stream reported no versions".into())
                })?;
                let counts = meta.keys.as_ref().map(|keys| Counts {
                    tables: None,
                    keys: Some(
                        keys.iter()
                            .map(|(db, keys)| DbKeys {
                                db: *db,
                                keys: *keys,
                            })
                            .collect(),
                    ),
                });
                Ok(Recorded {
                    source: Source::Redis {
                        address,
                        redis_version: meta.redis_version.clone(),
                        rdb_version: meta.rdb_version,
                    },
                    counts,
                })
            }),
        })
    }
}

/// Connects a [`RedisTarget`] as a stream; what the server said is kept in
/// `learnt` for the snapshot's record.
#[derive(Debug)]
struct Connector {
    target: RedisTarget,
    learnt: Arc<OnceLock<RedisMeta>>,
}

#[async_trait::async_trait]
impl Connect for Connector {
    fn what(&self) -> String {
        self.target.address()
    }

    async fn connect(self: Box<Self>) -> Result<Box<dyn Producer>, SourceError> {
        let replica = self.target.connect().await?;
        Ok(Box::new(Streaming {
            replica,
            learnt: self.learnt,
        }))
    }
}

struct Streaming {
    replica: Replica,
    learnt: Arc<OnceLock<RedisMeta>>,
}

#[async_trait::async_trait]
impl Producer for Streaming {
    async fn stream(
        self: Box<Self>,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        stats: Arc<Stats>,
    ) -> Result<(), SourceError> {
        if let Some(meta) = self.replica.stream(tx, stats).await? {
            let _ = self.learnt.set(meta);
        }
        Ok(())
    }
}

/// A Redis snapshot's listing.
pub fn describe(record: &Source) -> Option<String> {
    match record {
        Source::Redis {
            address,
            redis_version,
            ..
        } => Some(format!("redis:{address} (server {redis_version})")),
        _ => None,
    }
}

/// Writes the RDB file of a Redis snapshot to `path` (atomically: a temp
/// file in the same directory, then a rename); returns its size.
///
/// # Errors
/// [`Error::Input`] for a snapshot of another kind; if the file cannot be
/// written or the data cannot be read.
pub async fn restore_rdb(
    repo: &Repository,
    cat: &Catalog,
    snap: &Snapshot,
    path: &Path,
) -> Result<u64> {
    if !matches!(snap.source, Source::Redis { .. }) {
        input!("this snapshot is not a Redis backup");
    }
    let node = root_file(cat, snap, RDB_FILE)?
        .ok_or_else(|| Error::Corrupt(format!("the snapshot has no {RDB_FILE}")))?;
    let tmp = path.with_extension("rdb.cairn-tmp");
    let (written, file) = write_new_file(repo, cat, &node, &tmp).await?;
    if let Err(e) = tokio::task::spawn_blocking(move || file.sync_all()).await? {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(Error::from(e).context(format!("writing {} to disk", tmp.display())));
    }
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("moving the RDB into place at {}", path.display()))?;
    Ok(written)
}

/// Where and how to connect.
#[derive(Clone)]
pub struct RedisTarget {
    /// A name or an IP address (an IPv6 one without brackets).
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<Zeroizing<Vec<u8>>>,
    /// `rediss://`: TLS, as managed Redis services require.
    tls: bool,
    /// PEM certificates to trust instead of the system's roots.
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("address", &self.address())
            .field("user", &self.user)
            .field("tls", &self.tls)
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
    /// Keys per database in the payload, when they could be counted.
    pub keys: Option<BTreeMap<u32, u64>>,
}

/// Any byte stream to the server: TCP, or TLS over TCP.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
type Conn = BufReader<Box<dyn Io>>;

impl RedisTarget {
    /// Parses `redis://[[user]:password@]host[:port][/db]` or `rediss://…`
    /// (TLS); the host may be an IPv6 literal in brackets, and the user and
    /// password are percent-decoded (any bytes). The port defaults to 6379.
    ///
    /// # Errors
    /// If the URL is not of that form.
    pub fn parse(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::Input(format!("the Redis URL cannot be parsed ({e}): give redis://[user:password@]host:port, with special characters in the password percent-encoded, or the password in REDISCLI_AUTH"))
        })?;
        let tls = match parsed.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                input!("a Redis URL starts with redis:// or rediss:// (TLS), not {other}://")
            }
        };
        let host = match parsed.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            _ => input!("the Redis URL has no host: redis://[user:password@]host:port"),
        };
        let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
        let user = Some(parsed.username())
            .filter(|u| !u.is_empty())
            .map(|u| String::from_utf8_lossy(&decode(u)).into_owned());
        let password = parsed.password().map(|p| Zeroizing::new(decode(p)));
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(6379),
            user,
            password,
            tls,
            ca_file: None,
        })
    }

    /// Uses `password` if the URL gave none (from `REDISCLI_AUTH`, as
    /// redis-cli does: taken as is, not percent-decoded).
    #[must_use]
    pub fn with_default_password(mut self, password: Option<Vec<u8>>) -> Self {
        if self.password.is_none() {
            self.password = password.map(Zeroizing::new);
        }
        self
    }

    /// Trusts the PEM certificates in `path` (for `rediss://`).
    #[must_use]
    pub fn with_ca_file(mut self, path: Option<PathBuf>) -> Self {
        self.ca_file = path;
        self
    }

    /// `host:port` (`[::1]:6379`), never credentials.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The TLS settings: the CA file's certificates, or the system's roots.
    fn tls_config(&self) -> Result<rustls::ClientConfig, SourceError> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        self.err(format!("reading the CA file {}: {e}", path.display()))
                    })?;
                for c in certs {
                    roots.add(c).map_err(|e| {
                        self.err(format!("a certificate in {}: {e}", path.display()))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err(self.err(
                "no trusted certificates for TLS: install the system's CA certificates, or give --tls-ca-file",
            ));
        }
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| self.err(format!("TLS settings: {e}")))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    }

    async fn open(&self) -> Result<Conn, SourceError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.err(format!("cannot connect: {e}")))?;
        let io: Box<dyn Io> = if self.tls {
            let config = self.tls_config()?;
            let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                .map_err(|e| self.err(format!("not a TLS server name: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| self.err(format!("TLS handshake failed (check the certificate, the CA and that the port speaks TLS): {e}")))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        Ok(BufReader::with_capacity(READ_BUF, io))
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
        let mut conn = self.open().await?;
        if let Some(pass) = &self.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(u) = &self.user {
                args.push(u.as_bytes());
            }
            args.push(pass.as_slice());
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
        send(&mut conn, &[b"PSYNC", b"?", b"-1"])
            .await
            .map_err(|e| self.err(format!("sending PSYNC: {e}")))?;
        // A diskless server (the default) answers only once its transfer
        // starts, after repl-diskless-sync-delay (5 s), sending bare
        // newlines as keep-alives until then.
        let r = loop {
            let line = read_line(&mut conn)
                .await
                .map_err(|e| self.err(format!("reading the PSYNC reply: {e}")))?;
            if !line.is_empty() {
                break line;
            }
        };
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

    async fn command(&self, conn: &mut Conn, args: &[&[u8]]) -> Result<String, SourceError> {
        let name = String::from_utf8_lossy(args[0]).into_owned();
        send(conn, args)
            .await
            .map_err(|e| self.err(format!("sending {name}: {e}")))?;
        read_line(conn)
            .await
            .map_err(|e| self.err(format!("reading the {name} reply: {e}")))
    }
}

async fn send(conn: &mut Conn, args: &[&[u8]]) -> std::io::Result<()> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    let io = conn.get_mut();
    io.write_all(&out).await?;
    io.flush().await
}

/// One protocol line without its line ending.
async fn read_line(conn: &mut Conn) -> std::io::Result<String> {
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
    conn: Conn,
    address: String,
    redis_version: String,
    transfer: Transfer,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("address", &self.address)
            .field("redis_version", &self.redis_version)
            .finish_non_exhaustive()
    }
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
            tracing::warn!("the server has rdbchecksum off; the RDB could not be verified");
        }
        Ok(version)
    }
}

impl Replica {
    /// Streams the payload into the pipeline, checking it on the way;
    /// returns the versions learnt, or `None` if the pipeline stopped first.
    ///
    /// # Errors
    /// [`SourceError::Redis`] if the connection drops early or the payload
    /// is not an intact RDB file.
    pub async fn stream(
        mut self,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        stats: Arc<Stats>,
    ) -> Result<Option<RedisMeta>, SourceError> {
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
        // The keys are counted beside, on a thread of their own.
        let (to_counter, from_stream) = tokio::sync::mpsc::channel::<Bytes>(16);
        let mut counting = Some(to_counter);
        let counter = tokio::task::spawn_blocking(move || {
            super::rdb::count_keys(ChannelReader {
                rx: from_stream,
                current: Bytes::new(),
            })
        });
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
                    tee(&mut counting, &b).await;
                    if tx.send(b).await.is_err() {
                        return Ok(None);
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
                        tee(&mut counting, &b).await;
                        let _ = tx.send(b).await;
                        break;
                    }
                    let keep = pending.len().saturating_sub(40);
                    if keep > 0 {
                        let b = emit(&pending[..keep], &mut check);
                        pending.drain(..keep);
                        tee(&mut counting, &b).await;
                        if tx.send(b).await.is_err() {
                            return Ok(None);
                        }
                    }
                }
            }
        }
        let rdb_version = check.finish().map_err(err)?;
        drop(counting);
        let keys = match counter.await {
            Ok(Ok(keys)) => Some(keys),
            Ok(Err(e)) => {
                tracing::warn!(
                    "the RDB's keys were not counted, so a drill cannot compare them: {e}"
                );
                None
            }
            Err(e) => {
                tracing::warn!("the RDB's keys were not counted: {e}");
                None
            }
        };
        Ok(Some(RedisMeta {
            redis_version: self.redis_version,
            rdb_version,
            keys,
        }))
    }
}

/// Hands a piece of the payload to the key counter, until it stops
/// (it has seen the end, or met what it does not know).
async fn tee(counting: &mut Option<tokio::sync::mpsc::Sender<Bytes>>, b: &Bytes) {
    if let Some(c) = counting {
        if c.send(b.clone()).await.is_err() {
            *counting = None;
        }
    }
}

/// The payload's pieces as one byte stream, for the blocking key counter.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
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
        assert_eq!(t.password.as_deref().map(Vec::as_slice), Some(&b"p@ss"[..]));
        assert!(!format!("{t:?}").contains("p@ss"));
        let t = RedisTarget::parse("redis://:secret@127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (t.address().as_str(), t.user.is_none()),
            ("127.0.0.1:6379", true)
        );
        assert!(RedisTarget::parse("http://x").is_err());
        assert!(RedisTarget::parse("redis://").is_err());
        // IPv6 literals, TLS, and any bytes in a password (this panicked:
        // `%` followed by a non-ASCII character).
        let t = RedisTarget::parse("rediss://u:%E9%ff%25x%C3%A9@[::1]:6380/0")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.address(), "[::1]:6380");
        assert!(t.tls);
        assert_eq!(t.host, "::1");
        assert_eq!(
            t.password.as_deref().map(Vec::as_slice),
            Some(&b"\xe9\xff%x\xc3\xa9"[..])
        );
        assert!(RedisTarget::parse("redis://:p%é@h").is_ok());
        let t = RedisTarget::parse("redis://h")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_default_password(Some(b"a@b:c/d%".to_vec()));
        assert_eq!(
            t.password.as_deref().map(Vec::as_slice),
            Some(&b"a@b:c/d%"[..])
        );
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
