//! `cairn`: streaming, deduplicating, encrypted backups.
//!
//! `main` parses the command line, sets up logging, builds the one tokio
//! runtime, runs the command and maps the outcome to an exit code: 0
//! success, 1 failure, 2 usage error, 3 a backup that is partial (some files
//! could not be read; the snapshot holds the rest), 128 + n stopped by
//! signal n, 141 standard output closed by its reader (`cairn restore
//! latest --stdout | head`), quietly, as `cat`.

mod cli;
mod logging;

// The library's modules, under the names the front end's code uses.
use cairn_agent::{
    backend, cancel, catalog, daemon, filter, ops, progress, repo, restore, retention, source,
    stats, util,
};

use cairn_agent::cancel::Reason;
use clap::Parser;
use std::process::ExitCode;

/// Buffers of megabytes flow through the pipeline at gigabytes a second.
/// glibc's malloc hands such sizes back to the kernel on free and takes
/// fresh, zeroed pages on the next allocation, which on the benchmark machine
/// cost about 1 s of system time per GiB; jemalloc keeps the freed pages for
/// reuse (`docs/decisions.md` §12; one arena, set in `.cargo/config.toml`).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    logging::init(args.logging());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let daemon = args.is_daemon();
    let json = args.json();
    let result = runtime.block_on(async {
        let cancel = if daemon {
            cancel::Cancel::new()
        } else {
            cancel::Cancel::on_signals()
                .map_err(|e| anyhow::anyhow!("cannot install the signal handlers: {e}"))?
        };
        cli::run(args, cancel).await
    });
    // Do not wait for stray blocking tasks (a stdin read) at exit.
    runtime.shutdown_background();
    let e = match result {
        Ok(cli::Status::Success) => return ExitCode::SUCCESS,
        Ok(cli::Status::Partial) => return ExitCode::from(3),
        Err(e) => e,
    };
    if e.is::<cli::StdoutClosed>() {
        return ExitCode::from(141);
    }
    let (code, action) = failed(&e);
    // With --json the failure is a JSON document on standard output too,
    // unless the command printed its report (which says what failed).
    if json && !e.is::<cli::Reported>() {
        let body = cli::json::ErrorJson {
            error: cli::json::ErrorBody {
                message: format!("{e:#}"),
                action,
                exit_code: code,
            },
        };
        let _ = cli::json::print(&body);
    }
    ExitCode::from(code)
}

/// Logs a failure on standard error; returns its exit status and, for the
/// library's errors, what to do about it.
fn failed(e: &anyhow::Error) -> (u8, Option<String>) {
    let cairn = e.downcast_ref::<cairn_agent::Error>();
    if let Some(reason) = cairn.and_then(cairn_agent::Error::cancelled) {
        tracing::warn!("{e:#}");
        return match reason {
            Reason::Signal(s) => (s.exit_status(), None),
            Reason::Requested(_) => (1, None),
        };
    }
    if e.is::<cli::UsageError>() {
        tracing::error!("{e:#}\n\nFor more information, try '--help'.");
        return (2, Some("fix_input".to_owned()));
    }
    match cairn {
        Some(c) => {
            tracing::error!(action = %c.action(), "{e:#}");
            (1, Some(c.action().to_string()))
        }
        None => {
            tracing::error!("{e:#}");
            (1, None)
        }
    }
}
