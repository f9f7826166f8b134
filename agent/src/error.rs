//! The library's one error type. Its variants say what went wrong in the
//! terms a caller acts on ([`Error::action`]): try again, run again as a new
//! session, fix the input, the source, the credentials, or the repository.
//! Messages name the thing and what to do next; [`Context`] adds what was
//! being done, as the front ends print it (`writing snapshots/…: put …`).

use crate::backend::spool::SpoolError;
use crate::backend::{BackendError, ErrorKind};
use crate::cancel::Reason;
use cairn_repo_format::{FormatError, KeyError, SessionId};
use std::fmt::Display;

/// What a caller can do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Try the same thing again later: a network, a service or a rate limit
    /// failed, and may not next time.
    Retry,
    /// Run the operation again: it was stopped (cancelled, fenced by a
    /// pruner) before anything counted; a new run starts afresh.
    RunAgain,
    /// Change what was asked for: an argument, a passphrase, a path, a
    /// snapshot id, a setting.
    FixInput,
    /// The source failed (a dump exited non-zero, a server refused):
    /// nothing was committed; fix the source, then run again.
    FixSource,
    /// Credentials or permissions refuse the operation.
    FixAccess,
    /// Stored data is damaged or missing: check the repository; trying
    /// again reads the same bytes.
    Repair,
    /// The local machine failed: a disk full, a file that cannot be written.
    FixLocal,
    /// A bug or a state this release cannot handle.
    GiveUp,
}

impl Action {
    /// Its name in logs and reports (`run_again`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::RunAgain => "run_again",
            Action::FixInput => "fix_input",
            Action::FixSource => "fix_source",
            Action::FixAccess => "fix_access",
            Action::Repair => "repair",
            Action::FixLocal => "fix_local",
            Action::GiveUp => "give_up",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source failed; no snapshot was written.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A pruner fenced the session (it wrote the session's commit first):
    /// the snapshot does not count.
    #[error("session {} was fenced by a prune (it had been paused or silent past its lease); nothing of it counts and no snapshot was written: run the backup again", .0.short())]
    Fenced(SessionId),
    /// Another prune took the collection over since this one read
    /// `gc/state`: this one stops and changes nothing more.
    #[error("another prune took over this one's collection (gc/state changed since generation {generation}); this one stopped and changed nothing more")]
    TakenOver {
        /// The generation this one had read.
        generation: u64,
    },
    /// The repository's storage failed; its kind says whether a retry helps.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Stored data is damaged, missing or inconsistent.
    #[error("{0}")]
    Corrupt(String),
    /// The operation was cancelled (a signal, a shutdown) before it was done.
    #[error("interrupted by {0}: stopped, nothing was committed")]
    Cancelled(Reason),
    /// What was asked for cannot be done as asked.
    #[error("{0}")]
    Input(String),
    /// A wrong passphrase, or a key file that cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A local file or directory could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The local catalog's database failed.
    #[error("the catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
    /// A pack could not be spooled to local disk.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A bug: a task panicked, a stage ended without saying why.
    #[error("{0}")]
    Internal(String),
    /// What was being done when `inner` failed.
    #[error("{what}: {inner}")]
    Context {
        /// What was being done.
        what: String,
        /// The failure.
        inner: Box<Error>,
    },
}

/// A source failed; no snapshot may be written.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The command could not be started.
    #[error("cannot start {program:?}: {cause}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        cause: std::io::Error,
    },
    /// Reading the stream failed.
    #[error("reading {what} failed: {cause}")]
    Read {
        /// stdin or the program.
        what: String,
        /// Why.
        cause: std::io::Error,
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
    /// The Redis source failed (connection, authentication, protocol, or a bad RDB).
    #[error("Redis at {address}: {detail}; no snapshot was written")]
    Redis {
        /// host:port.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// PostgreSQL could not be reached or described.
    #[error("PostgreSQL: {detail}")]
    Postgres {
        /// What went wrong, with the tail of the client's stderr.
        detail: String,
    },
    /// The source gave fewer bytes than the backup was told to expect (a
    /// producer that failed before writing everything).
    #[error("the source gave {read} bytes, fewer than --expect-min-bytes {expected}: the producer probably failed; nothing was committed")]
    Short {
        /// Bytes read.
        read: u64,
        /// The least expected.
        expected: u64,
    },
    /// The Kubernetes API could not say which volumes this node has.
    #[error("{detail}; nothing was backed up")]
    Kubernetes {
        /// What went wrong.
        detail: String,
    },
    /// A path to back up does not exist or cannot be read at all.
    #[error("cannot back up {path}: {cause}")]
    Path {
        /// The path.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
}

fn tail(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- end of its stderr ---\n{}", stderr.trim_end())
    }
}

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What a caller can do about it.
    pub fn action(&self) -> Action {
        match self {
            Error::Source(_) => Action::FixSource,
            Error::Fenced(_) | Error::Cancelled(_) | Error::TakenOver { .. } => Action::RunAgain,
            Error::Backend(e) => match e.kind {
                ErrorKind::RateLimited | ErrorKind::Transient => Action::Retry,
                ErrorKind::PermissionDenied => Action::FixAccess,
                ErrorKind::NotFound => Action::Repair,
                ErrorKind::AlreadyExists | ErrorKind::Changed => Action::RunAgain,
                ErrorKind::Other => Action::FixInput,
            },
            Error::Corrupt(_) => Action::Repair,
            Error::Input(_) => Action::FixInput,
            Error::Key(KeyError::WrongPassphrase { .. }) => Action::FixInput,
            Error::Key(_) => Action::Repair,
            Error::Io(_) | Error::Spool(_) => Action::FixLocal,
            // The catalog is a cache: the next run rebuilds what it lacks.
            Error::Catalog(_) => Action::RunAgain,
            Error::Internal(_) => Action::GiveUp,
            Error::Context { inner, .. } => inner.action(),
        }
    }

    /// The failure below any [`Error::Context`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { inner, .. } => inner.root(),
            e => e,
        }
    }

    /// Whether the operation was cancelled.
    pub fn cancelled(&self) -> Option<Reason> {
        match self.root() {
            Error::Cancelled(r) => Some(*r),
            _ => None,
        }
    }

    /// Whether a write into a pipe failed because its reader closed it
    /// (`cairn restore --stdout | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self.root(), Error::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Adds what was being done.
    pub fn context(self, what: impl Display) -> Self {
        Error::Context {
            what: what.to_string(),
            inner: Box::new(self),
        }
    }
}

impl From<crate::cancel::Cancelled> for Error {
    fn from(c: crate::cancel::Cancelled) -> Self {
        Error::Cancelled(c.0)
    }
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Corrupt(e.to_string())
    }
}

impl From<std::num::TryFromIntError> for Error {
    fn from(e: std::num::TryFromIntError) -> Self {
        Error::Internal(format!("a number out of range: {e}"))
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("a task failed: {e}"))
    }
}

/// Adds what was being done to a failure, as `anyhow::Context` does.
pub trait Context<T> {
    /// With a fixed description.
    ///
    /// # Errors
    /// The failure, described.
    fn context(self, what: impl Display) -> Result<T>;
    /// With a description made only on failure.
    ///
    /// # Errors
    /// The failure, described.
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

/// Returns early with an [`Error::Input`].
macro_rules! input {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Input(format!($($arg)*)))
    };
}
pub(crate) use input;

/// Returns early with an [`Error::Corrupt`].
macro_rules! corrupt {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Corrupt(format!($($arg)*)))
    };
}
pub(crate) use corrupt;

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(kind: ErrorKind) -> Error {
        Error::Backend(BackendError {
            kind,
            op: "get",
            object: "config".into(),
            location: "s3:b/p".into(),
            detail: "x".into(),
        })
    }

    #[test]
    fn actions_follow_the_root_cause() {
        assert_eq!(backend(ErrorKind::Transient).action(), Action::Retry);
        assert_eq!(backend(ErrorKind::RateLimited).action(), Action::Retry);
        assert_eq!(
            backend(ErrorKind::PermissionDenied)
                .context("writing packs")
                .context("backup")
                .action(),
            Action::FixAccess
        );
        assert_eq!(
            Error::Fenced(SessionId::random()).action(),
            Action::RunAgain
        );
        let io = Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(io.context("writing to standard output").is_broken_pipe());
        assert_eq!(Error::Input("x".into()).context("y").to_string(), "y: x");
    }
}
