//! Progress on a terminal: bytes read, new bytes, throughput, ETA when the
//! size is known. Silent when stderr is not a terminal.

use crate::pipeline::Stats;
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
    pub fn start(stats: Arc<Stats>, total: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                ticker: None,
            };
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec}, ETA {eta} · {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {elapsed} · {bytes} read, {bytes_per_sec} · {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
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
