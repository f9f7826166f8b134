//! Stopping on SIGTERM, SIGINT or SIGHUP (a drained node, Ctrl-C, a closed
//! terminal) as cleanly as on an error: the work in progress is dropped, so
//! a source's command (`pg_dump`, `--command`) is killed, no snapshot is
//! committed, and a backup's lease is removed; `main` then exits with the
//! conventional status, 128 + the signal's number. A second signal exits at
//! once.

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

/// Work stopped because of a signal.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}: stopped, nothing was committed", .0.name)]
pub struct Interrupted(pub Signal);

/// Tells the work in progress that a stop was asked for.
#[derive(Debug, Clone)]
pub struct Interrupt(watch::Receiver<Option<Signal>>);

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

impl Interrupt {
    /// Starts listening for the signals (inside the runtime). The first one
    /// is passed on; a second one ends the process at once.
    ///
    /// # Errors
    /// If a signal handler cannot be installed.
    pub fn listen() -> std::io::Result<Self> {
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
        let (tx, rx) = watch::channel(None);
        if streams.is_empty() {
            return Ok(Self(rx));
        }
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
                    eprintln!("cairn: {}: stopping (again to stop at once)", sig.name);
                    let _ = tx.send(Some(sig));
                    first = false;
                } else {
                    eprintln!("cairn: {}: stopping at once", sig.name);
                    std::process::exit(i32::from(sig.exit_status()));
                }
            }
        });
        Ok(Self(rx))
    }

    /// Waits for a stop to be asked for (at once if it already was).
    pub async fn wait(&mut self) -> Signal {
        loop {
            if let Some(sig) = *self.0.borrow_and_update() {
                return sig;
            }
            if self.0.changed().await.is_err() {
                // Nobody can ask any more.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `work` unless a stop is asked for first; then `work` is dropped
    /// (what it started is killed) and the error is [`Interrupted`].
    ///
    /// # Errors
    /// `work`'s error, or [`Interrupted`].
    pub async fn or_stop<T>(
        &self,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let mut me = self.clone();
        tokio::select! {
            r = work => r,
            sig = me.wait() => Err(Interrupted(sig).into()),
        }
    }
}
