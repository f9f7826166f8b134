//! Running stream sources ([`Stream`]: standard input, a command's
//! stdout, a Redis replication stream). A stream yields bytes, then reports
//! success or failure with [`Stream::finish`]. For a command, success means
//! exit status 0 *and* its stdout read to EOF; stderr is drained
//! concurrently and its tail kept for the error message, and the child is
//! killed if the stream is dropped early. A snapshot is written only after
//! `finish` says success.

use super::SourceError;
use crate::pipeline::streams::Feed;
use crate::stats::Stats;
use bytes::{Bytes, BytesMut};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Bytes of a command's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;
/// Size of the buffers the reader hands to the chunker.
const STREAM_BUF: usize = 4 << 20;

/// What a stream source is, before it starts.
#[derive(Debug)]
pub enum StreamSpec {
    /// Standard input.
    Stdin,
    /// A command's stdout.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
        /// Variables set for it on top of cairn's environment (not
        /// secrets: `PGPASSFILE` names a file).
        env: Vec<(String, std::ffi::OsString)>,
    },
    /// A stream a source module reads with a protocol of its own (Redis
    /// replication); it connects when the stream starts.
    Custom(Box<dyn Connect>),
}

/// Connects a stream of a protocol of its own.
#[async_trait::async_trait]
pub trait Connect: Send + std::fmt::Debug {
    /// Where it reads from (`host:port`), for messages.
    fn what(&self) -> String;
    /// Connects; the producer then streams the data.
    ///
    /// # Errors
    /// If the connection or the handshake fails.
    async fn connect(self: Box<Self>) -> Result<Box<dyn Producer>, SourceError>;
}

/// A connected stream of a protocol of its own.
#[async_trait::async_trait]
pub trait Producer: Send {
    /// Sends the whole stream into `tx` in buffers, counting bytes read in
    /// `stats`, and checks it; returns early without an error if `tx` closes
    /// (the pipeline stopped and reports why).
    ///
    /// # Errors
    /// If the stream breaks or its data is not intact.
    async fn stream(
        self: Box<Self>,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        stats: Arc<Stats>,
    ) -> Result<(), SourceError>;
}

impl StreamSpec {
    /// Starts the source.
    ///
    /// # Errors
    /// If the command cannot be started or the Redis handshake fails.
    pub async fn start(self) -> Result<Stream, SourceError> {
        match self {
            StreamSpec::Stdin => Ok(Stream::stdin()),
            StreamSpec::Command { argv, env } => Stream::command(&argv, &env),
            StreamSpec::Custom(connect) => {
                let what = connect.what();
                let producer = connect.connect().await?;
                Ok(Stream {
                    what,
                    input: Some(Input::Custom(producer)),
                    child: None,
                })
            }
        }
    }
}

enum Input {
    Read(Box<dyn AsyncRead + Unpin + Send>),
    /// Read on a blocking thread (standard input): no async wrapper, whose
    /// own buffer would cost a copy of every byte.
    Blocking(Box<dyn std::io::Read + Send>),
    Custom(Box<dyn Producer>),
}

fn read_error(what: &str, cause: std::io::Error) -> SourceError {
    SourceError::Read {
        what: what.to_owned(),
        cause,
    }
}

/// [`read_into`] for a blocking reader, on a blocking thread. `read_to_end`
/// reads into the vector's spare capacity without zeroing it first.
fn read_blocking(
    mut reader: Box<dyn std::io::Read + Send>,
    what: &str,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    stats: &Stats,
) -> Result<u64, SourceError> {
    use std::io::Read;
    /// Counts bytes as they arrive, so progress moves with a slow producer.
    struct Counting<'a, R> {
        inner: R,
        stats: &'a Stats,
    }
    impl<R: Read> Read for Counting<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            Stats::add(&self.stats.bytes_read, n as u64);
            Ok(n)
        }
    }
    let mut reader = Counting {
        inner: &mut reader,
        stats,
    };
    let mut total = 0u64;
    loop {
        let mut buf = Vec::with_capacity(STREAM_BUF);
        let n = (&mut reader)
            .take(STREAM_BUF as u64)
            .read_to_end(&mut buf)
            .map_err(|e| read_error(what, e))?;
        total += n as u64;
        if n == 0 || tx.blocking_send(Bytes::from(buf)).is_err() {
            // End of input, or the pipeline stopped (it reports why).
            return Ok(total);
        }
    }
}

/// Reads `reader` to its end in buffers of [`STREAM_BUF`] bytes.
async fn read_into(
    reader: &mut (dyn AsyncRead + Unpin + Send),
    what: &str,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    stats: &Stats,
) -> Result<u64, SourceError> {
    let mut total = 0u64;
    loop {
        let mut buf = BytesMut::with_capacity(STREAM_BUF);
        let mut eof = false;
        while buf.len() < STREAM_BUF {
            match reader.read_buf(&mut buf).await {
                Ok(0) => {
                    eof = true;
                    break;
                }
                // Counted as it arrives, so progress moves with a slow
                // producer.
                Ok(k) => Stats::add(&stats.bytes_read, k as u64),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(what, e)),
            }
        }
        let n = buf.len();
        total += n as u64;
        if n > 0 && tx.send(buf.freeze()).await.is_err() {
            // The pipeline stopped; it reports why.
            return Ok(total);
        }
        if eof {
            return Ok(total);
        }
    }
}

/// A running stream source.
pub struct Stream {
    what: String,
    input: Option<Input>,
    child: Option<(Child, JoinHandle<String>)>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Standard input.
    pub fn stdin() -> Self {
        Self {
            what: "standard input".into(),
            input: Some(Input::Blocking(Box::new(std::io::stdin()))),
            child: None,
        }
    }

    /// Starts `argv`, with `env` added to its environment, with its stdout
    /// as the stream.
    ///
    /// # Errors
    /// [`SourceError::Spawn`] if it cannot be started.
    pub fn command(
        argv: &[String],
        env: &[(String, std::ffi::OsString)],
    ) -> Result<Self, SourceError> {
        let program = argv.first().cloned().unwrap_or_default();
        let mut child = Command::new(&program)
            .args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|cause| SourceError::Spawn {
                program: program.clone(),
                cause,
            })?;
        let stdout = child.stdout.take().ok_or_else(|| SourceError::Spawn {
            program: program.clone(),
            cause: std::io::Error::other("no stdout pipe"),
        })?;
        let mut stderr = child.stderr.take().ok_or_else(|| SourceError::Spawn {
            program: program.clone(),
            cause: std::io::Error::other("no stderr pipe"),
        })?;
        let drain = tokio::spawn(async move {
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            let start = tail.len().saturating_sub(STDERR_TAIL);
            String::from_utf8_lossy(&tail[start..]).into_owned()
        });
        Ok(Self {
            what: program,
            input: Some(Input::Read(Box::new(stdout))),
            child: Some((child, drain)),
        })
    }

    /// Starts a task that reads the stream into buffers for the chunker.
    /// It ends with what it read, or the read error.
    pub fn spawn_reader(
        &mut self,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        stats: Arc<Stats>,
    ) -> JoinHandle<Result<(), SourceError>> {
        let input = self.input.take();
        let what = self.what.clone();
        tokio::spawn(async move {
            match input {
                None => Ok(()),
                Some(Input::Blocking(reader)) => {
                    let name = what.clone();
                    tokio::task::spawn_blocking(move || read_blocking(reader, &name, &tx, &stats))
                        .await
                        .map_err(|e| read_error(&what, std::io::Error::other(e.to_string())))??;
                    Ok(())
                }
                Some(Input::Custom(producer)) => producer.stream(tx, stats).await,
                Some(Input::Read(mut reader)) => {
                    read_into(&mut reader, &what, &tx, &stats).await?;
                    Ok(())
                }
            }
        })
    }

    /// Waits for the source to end and says whether it succeeded.
    ///
    /// # Errors
    /// [`SourceError::Exit`] / [`SourceError::Signal`] with the tail of stderr
    /// if the command did not exit with status 0.
    pub async fn finish(mut self) -> Result<(), SourceError> {
        let Some((mut child, drain)) = self.child.take() else {
            return Ok(());
        };
        let status = child.wait().await.map_err(|cause| SourceError::Read {
            what: self.what.clone(),
            cause,
        })?;
        let stderr = drain.await.unwrap_or_default();
        let program = self.what.clone();
        if status.success() {
            return Ok(());
        }
        match (status.code(), status.signal()) {
            (Some(code), _) => Err(SourceError::Exit {
                program,
                code,
                stderr,
            }),
            (None, Some(signal)) => Err(SourceError::Signal {
                program,
                signal,
                stderr,
            }),
            (None, None) => Err(SourceError::Exit {
                program,
                code: -1,
                stderr,
            }),
        }
    }
}

/// Reads the streams one after the other into `feed` (the pipeline's
/// stream stage, [`crate::pipeline::streams`], takes them in order). A
/// stream counts only once its source says it succeeded; dropping this
/// future drops the running source (a command is killed). If the feed
/// closes first, the pipeline stopped and reports why.
///
/// # Errors
/// The first stream's failure.
pub async fn drive(
    streams: Vec<(String, StreamSpec)>,
    feed: Feed,
    stats: Arc<Stats>,
) -> Result<(), SourceError> {
    for (name, spec) in streams {
        let mut stream = spec.start().await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        if feed.send((name, rx)).await.is_err() {
            return Ok(());
        }
        let what = stream.what.clone();
        stream
            .spawn_reader(tx, stats.clone())
            .await
            .map_err(|e| read_error(&what, std::io::Error::other(e.to_string())))??;
        stream.finish().await?;
    }
    Ok(())
}
