//! Progress of a backup or a restore, on standard error (never standard
//! output, which may carry data): on a terminal, an indicatif bar with the
//! bytes done, the rate and, when the size is known, the time left; without
//! one (a Kubernetes job's log, a pipe), one log line every so often, so a
//! long run shows life.

use crate::stats::Stats;
use crate::util::human_bytes;
use indicatif::{HumanDuration, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How progress is shown.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// No progress at all (`-q`).
    pub quiet: bool,
    /// A bar when standard error is a terminal (not for the agent, whose
    /// jobs run side by side: it logs).
    pub bar: bool,
    /// Without a terminal: a log line this often (`None`: never).
    pub every: Option<Duration>,
}

/// What is being done, for the display's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A backup: bytes read, new and stored.
    Backup,
    /// A restore: bytes restored.
    Restore,
}

/// A running progress display.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<JoinHandle<()>>,
}

/// Bytes done: read, and for a backup those of unchanged files not read.
fn done(stats: &Stats) -> u64 {
    Stats::get(&stats.bytes_read).saturating_add(Stats::get(&stats.skipped_bytes))
}

fn backup_message(stats: &Stats) -> String {
    format!(
        "{} new, {} stored in {} packs",
        human_bytes(Stats::get(&stats.new_bytes)),
        human_bytes(Stats::get(&stats.stored_bytes)),
        Stats::get(&stats.packs)
    )
}

impl Settings {
    /// Whether a bar is drawn (standard error is a terminal, and a bar is
    /// wanted): only then is an estimate of the size worth its cost.
    pub fn draws_bar(&self) -> bool {
        self.bar && !self.quiet && std::io::stderr().is_terminal()
    }
}

impl Progress {
    /// Starts showing `stats`: a bar when standard error is a terminal
    /// (and `settings` allows one), else log lines as `settings` asks.
    pub fn start(stats: Arc<Stats>, work: Work, settings: Settings) -> Self {
        let none = Self {
            bar: None,
            ticker: None,
        };
        if settings.quiet {
            return none;
        }
        if !settings.draws_bar() {
            let Some(every) = settings.every.filter(|d| !d.is_zero()) else {
                return none;
            };
            let ticker = tokio::spawn(log_lines(stats, work, every));
            return Self {
                bar: None,
                ticker: Some(ticker),
            };
        }
        let verb = match work {
            Work::Backup => "read",
            Work::Restore => "restored",
        };
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {{elapsed}} · {{bytes}} {verb}, {{bytes_per_sec}} · {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut sized = false;
            loop {
                // The size, when known, turns the spinner into a bar with
                // an estimate of the time left.
                let total = Stats::get(&stats.expected_bytes);
                if total > 0 && !sized {
                    sized = true;
                    b.set_length(total);
                    b.set_style(
                        ProgressStyle::with_template(&format!("{{spinner}} {{bytes}}/{{total_bytes}} {verb} [{{wide_bar}}] {{bytes_per_sec}}, ETA {{eta}} · {{msg}}"))
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                }
                b.set_position(done(&stats));
                if work == Work::Backup {
                    b.set_message(backup_message(&stats));
                }
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

/// One log line every `every`: what is done, the rate, and the share of
/// the expected size with the time left when it is known.
async fn log_lines(stats: Arc<Stats>, work: Work, every: Duration) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let bytes = done(&stats);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let total = Stats::get(&stats.expected_bytes);
        let share = if total > 0 && rate > 0.0 {
            let left = total.saturating_sub(bytes) as f64 / rate;
            format!(
                ", {:.0} % of about {}, about {} left",
                (bytes as f64 * 100.0 / total as f64).min(100.0),
                human_bytes(total),
                HumanDuration(Duration::from_secs_f64(left))
            )
        } else {
            String::new()
        };
        let (what, extra) = match work {
            Work::Backup => ("backup", format!("; {}", backup_message(&stats))),
            Work::Restore => ("restore", String::new()),
        };
        tracing::info!(
            bytes,
            expected_bytes = total,
            "{what} running for {}: {} done at {}/s{share}{extra}",
            HumanDuration(started.elapsed()),
            human_bytes(bytes),
            human_bytes(rate as u64)
        );
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
