//! Cancelling an operation: a [`Cancel`] token is handed to every
//! operation; when it fires, the work in progress is dropped, so a source's
//! command (`pg_dump`, `--command`) is killed, no snapshot is committed, and
//! a backup's lease is removed, and the operation fails with
//! [`crate::Error::Cancelled`].
//!
//! [`Cancel::on_signals`] fires a token on SIGTERM, SIGINT or SIGHUP (a
//! drained node, Ctrl-C, a closed terminal); a second signal exits at once.
//! A front end then exits with the conventional status, 128 + the signal's
//! number.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// A signal that asks cairn to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// Its number (15 for SIGTERM).
    pub number: i32,
    /// Its name.
    pub name: &'static str,
}

impl Signal {
    /// The exit status for a process stopped by it.
    pub fn exit_status(self) -> u8 {
        u8::try_from(128 + self.number).unwrap_or(1)
    }
}

/// Why an operation was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A signal asked the process to stop.
    Signal(Signal),
    /// The caller asked (a daemon shutting down, a job's deadline).
    Requested(&'static str),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Signal(s) => f.write_str(s.name),
            Reason::Requested(why) => f.write_str(why),
        }
    }
}

/// Work stopped because a stop was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {0}: stopped, nothing was committed")]
pub struct Cancelled(pub Reason);

/// Tells the work in progress that a stop was asked for. Clones share it.
#[derive(Debug, Clone)]
pub struct Cancel {
    tx: std::sync::Arc<watch::Sender<Option<Reason>>>,
    rx: watch::Receiver<Option<Reason>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

const SIGNALS: [(i32, &str); 3] = [(15, "SIGTERM"), (2, "SIGINT"), (1, "SIGHUP")];

/// The signals this process was started ignoring (bit n - 1 for signal n),
/// from `/proc/self/status`; none where it cannot be read.
fn ignored_signals() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .unwrap_or(0)
}

impl Cancel {
    /// A token nobody has fired yet.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(None);
        Self {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }

    /// Asks every holder to stop (the first reason stays).
    pub fn cancel(&self, reason: Reason) {
        self.tx.send_if_modified(|r| {
            let first = r.is_none();
            if first {
                *r = Some(reason);
            }
            first
        });
    }

    /// Why a stop was asked for, if it was.
    pub fn reason(&self) -> Option<Reason> {
        *self.rx.borrow()
    }

    /// A token fired by SIGTERM, SIGINT or SIGHUP (inside the runtime). A
    /// second signal ends the process at once.
    ///
    /// # Errors
    /// If a signal handler cannot be installed.
    pub fn on_signals() -> std::io::Result<Self> {
        let cancel = Self::new();
        let mut streams = Vec::new();
        let ignored = ignored_signals();
        for (number, name) in SIGNALS {
            // `nohup cairn …` ignores SIGHUP: it stays ignored.
            if ignored & (1 << (number - 1)) != 0 {
                continue;
            }
            streams.push((
                signal(SignalKind::from_raw(number))?,
                Signal { number, name },
            ));
        }
        if streams.is_empty() {
            return Ok(cancel);
        }
        let fire = cancel.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let received = futures::future::select_all(
                    streams
                        .iter_mut()
                        .map(|(s, sig)| Box::pin(async move { s.recv().await.map(|()| *sig) })),
                )
                .await
                .0;
                let Some(sig) = received else { return };
                if first {
                    tracing::warn!(
                        signal = sig.name,
                        "{}: stopping (again to stop at once)",
                        sig.name
                    );
                    fire.cancel(Reason::Signal(sig));
                    first = false;
                } else {
                    tracing::error!(signal = sig.name, "{}: stopping at once", sig.name);
                    std::process::exit(i32::from(sig.exit_status()));
                }
            }
        });
        Ok(cancel)
    }

    /// Waits for a stop to be asked for (at once if it already was).
    pub async fn cancelled(&self) -> Reason {
        let mut rx = self.rx.clone();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // Nobody can ask any more.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `work` unless a stop is asked for first; then `work` is dropped
    /// (what it started is killed) and the error is [`Cancelled`] (as
    /// [`crate::Error::Cancelled`]).
    ///
    /// # Errors
    /// `work`'s error, or [`Cancelled`].
    pub async fn or_cancel<T, E: From<Cancelled>>(
        &self,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        // A token fired already stops the work before it starts.
        tokio::select! {
            biased;
            reason = self.cancelled() => Err(Cancelled(reason).into()),
            r = work => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_token_stops_the_work_and_keeps_the_first_reason() {
        let cancel = Cancel::new();
        let clone = cancel.clone();
        let work = cancel.or_cancel(async {
            std::future::pending::<()>().await;
            Ok::<(), Cancelled>(())
        });
        clone.cancel(Reason::Requested("shutdown"));
        clone.cancel(Reason::Requested("later"));
        assert_eq!(work.await, Err(Cancelled(Reason::Requested("shutdown"))));
        assert_eq!(cancel.reason(), Some(Reason::Requested("shutdown")));
        let late = cancel.or_cancel(async { Ok::<_, Cancelled>(1) }).await;
        assert_eq!(late, Err(Cancelled(Reason::Requested("shutdown"))));
    }
}
