//! Sources: where backup data comes from.
//!
//! A stream source ([`Stream`]: stdin or a command's stdout) yields bytes,
//! then reports success or failure with [`Stream::finish`]. For a command,
//! success means exit status 0 *and* its stdout read to EOF; stderr is
//! drained concurrently and its tail kept for the error message, and the
//! child is killed if the stream is dropped early. A snapshot is written only
//! after `finish` says success.

use crate::pipeline::Stats;
use bytes::{Bytes, BytesMut};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub mod files;

/// Bytes of a command's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;
/// Size of the buffers the reader hands to the chunker.
const STREAM_BUF: usize = 1 << 20;

/// A source failed; no snapshot may be written.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The command could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the stream failed.
    #[error("reading {what} failed: {source}")]
    Read {
        /// stdin or the program.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command exited non-zero.
    #[error("{program} exited with status {code}; no snapshot was written{}", tail(.stderr))]
    Exit {
        /// The program.
        program: String,
        /// Its exit code.
        code: i32,
        /// The tail of its stderr.
        stderr: String,
    },
    /// The command was killed by a signal.
    #[error("{program} was killed by signal {signal}; no snapshot was written{}", tail(.stderr))]
    Signal {
        /// The program.
        program: String,
        /// The signal.
        signal: i32,
        /// The tail of its stderr.
        stderr: String,
    },
    /// A path to back up does not exist or cannot be read at all.
    #[error("cannot back up {path}: {source}")]
    Path {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn tail(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- end of its stderr ---\n{}", stderr.trim_end())
    }
}

/// A running stream source.
pub struct Stream {
    what: String,
    reader: Option<Box<dyn AsyncRead + Unpin + Send>>,
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
            reader: Some(Box::new(tokio::io::stdin())),
            child: None,
        }
    }

    /// Starts `argv` with its stdout as the stream.
    ///
    /// # Errors
    /// [`SourceError::Spawn`] if it cannot be started.
    pub fn command(argv: &[String]) -> Result<Self, SourceError> {
        let program = argv.first().cloned().unwrap_or_default();
        let mut child = Command::new(&program)
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SourceError::Spawn {
                program: program.clone(),
                source,
            })?;
        let stdout = child.stdout.take().ok_or_else(|| SourceError::Spawn {
            program: program.clone(),
            source: std::io::Error::other("no stdout pipe"),
        })?;
        let mut stderr = child.stderr.take().ok_or_else(|| SourceError::Spawn {
            program: program.clone(),
            source: std::io::Error::other("no stderr pipe"),
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
            reader: Some(Box::new(stdout)),
            child: Some((child, drain)),
        })
    }

    /// Starts a task that reads the stream into buffers for the chunker.
    /// It ends with the byte count, or the read error.
    pub fn spawn_reader(
        &mut self,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        stats: Arc<Stats>,
    ) -> JoinHandle<Result<u64, SourceError>> {
        let reader = self.reader.take();
        let what = self.what.clone();
        tokio::spawn(async move {
            let Some(mut reader) = reader else {
                return Ok(0);
            };
            let mut total = 0u64;
            loop {
                let mut buf = BytesMut::with_capacity(STREAM_BUF);
                while buf.len() < STREAM_BUF {
                    match reader.read_buf(&mut buf).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(source) => return Err(SourceError::Read { what, source }),
                    }
                }
                let n = buf.len();
                if n == 0 {
                    return Ok(total);
                }
                total += n as u64;
                Stats::add(&stats.bytes_read, n as u64);
                if tx.send(buf.freeze()).await.is_err() {
                    // The pipeline stopped; it reports why.
                    return Ok(total);
                }
                if n < STREAM_BUF {
                    return Ok(total);
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
        let status = child.wait().await.map_err(|source| SourceError::Read {
            what: self.what.clone(),
            source,
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
