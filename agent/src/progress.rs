//! Progress on a terminal: bytes read, new bytes, throughput, ETA when the
//! size is known. Silent when stderr is not a terminal.

use crate::stats::Stats;
use crate::util::human_bytes;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A running progress display.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `stats` if stderr is a terminal.
    pub fn start(stats: Arc<Stats>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                ticker: None,
            };
        }
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed} · {bytes} read, {bytes_per_sec} · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut sized = false;
            loop {
                // The size, when the source knows it, turns the spinner
                // into a bar with an estimate of the time left.
                let total = Stats::get(&stats.expected_bytes);
                if total > 0 && !sized {
                    sized = true;
                    b.set_length(total);
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec}, ETA {eta} · {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                }
                b.set_position(Stats::get(&stats.bytes_read));
                b.set_message(format!(
                    "{} new, {} stored in {} packs",
                    human_bytes(Stats::get(&stats.new_bytes)),
                    human_bytes(Stats::get(&stats.stored_bytes)),
                    Stats::get(&stats.packs)
                ));
                b.tick();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Self {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }
}

/// Dropping it stops and clears the display (also when the work it shows
/// is dropped: a backup stopped by a signal).
impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
