//! `cairn`: streaming, deduplicating, encrypted backups.
//!
//! `main` parses the command line, builds the one tokio runtime, runs the
//! command and maps the outcome to an exit code: 0 success, 1 failure,
//! 2 usage error (from clap), 3 a backup that is partial (some files could
//! not be read; the snapshot holds the rest), 141 standard output closed by
//! its reader (`cairn restore latest --stdout | head`), quietly, as `cat`.

mod cli;
mod progress;

// The library's modules, under the names the front end's code uses.
use cairn_agent::{backend, backup, catalog, interrupt, repo, restore, source, stats, sync, util};

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let interrupt = interrupt::Interrupt::listen()
            .map_err(|e| anyhow::anyhow!("cannot install the signal handlers: {e}"))?;
        cli::run(args, interrupt).await
    });
    // Do not wait for stray blocking tasks (a stdin read) at exit.
    runtime.shutdown_background();
    match result {
        Ok(cli::Status::Success) => ExitCode::SUCCESS,
        Ok(cli::Status::Partial) => ExitCode::from(3),
        Err(e) if e.is::<util::StdoutClosed>() => ExitCode::from(141),
        Err(e) if e.is::<interrupt::Interrupted>() => {
            eprintln!("cairn: {e:#}");
            e.downcast_ref::<interrupt::Interrupted>()
                .map_or(ExitCode::FAILURE, |i| ExitCode::from(i.0.exit_status()))
        }
        Err(e) if e.is::<cli::UsageError>() => {
            eprintln!("cairn: error: {e:#}\n\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("cairn: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
