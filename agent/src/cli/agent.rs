//! `cairn agent`: the node-side daemon's commands. Today `check-config`,
//! which reads an agent configuration file and names every mistake in it.

use crate::cli::Status;
use crate::daemon::config::Config;
use anyhow::Result;
use std::path::PathBuf;

/// `cairn agent …`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check an agent configuration file: every mistake is named with its
    /// line and key; exit 1 if there is one.
    CheckConfig {
        /// The file (TOML; docs/agent.md).
        #[arg(long, short = 'c', env = "CAIRN_AGENT_CONFIG")]
        config: PathBuf,
    },
}

pub fn run(command: Command) -> Result<Status> {
    match command {
        Command::CheckConfig { config } => {
            let loaded = Config::load(&config)?;
            let jobs: Vec<&str> = loaded.job_names().collect();
            println!(
                "{}: valid; {} job(s){}{}",
                config.display(),
                jobs.len(),
                if jobs.is_empty() { "" } else { ": " },
                jobs.join(", ")
            );
            Ok(Status::Success)
        }
    }
}
