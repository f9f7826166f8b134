//! Standard input and any command's standard output, each stored as one
//! file of the snapshot. A command's exit status decides whether the
//! snapshot is committed; standard input cannot say whether its producer
//! failed (a failed producer looks like a short stream), so a backup can ask
//! for a least size.

use super::stream::StreamSpec;
use super::{Recorded, StreamPlan};
use crate::error::{input, Result};
use cairn_repo_format::{valid_stream_name, Source};

/// Standard input, stored as one file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinSettings {
    /// The file's name in the snapshot.
    #[serde(default = "stdin_name")]
    pub name: String,
}

fn stdin_name() -> String {
    "stdin".into()
}

impl Default for StdinSettings {
    fn default() -> Self {
        Self { name: stdin_name() }
    }
}

/// A command's standard output, stored as one file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSettings {
    /// The program and its arguments. Only the program is recorded in the
    /// snapshot: arguments may hold a password.
    pub argv: Vec<String>,
    /// The file's name in the snapshot (default: the program's file name).
    #[serde(default)]
    pub name: Option<String>,
}

fn check_name(name: &str) -> Result<()> {
    if !valid_stream_name(name) {
        input!("--name {name:?} is not a valid file name (no '/', not empty)");
    }
    Ok(())
}

/// Size of standard input when it is a regular file (for an estimate of
/// the time left).
fn stdin_size() -> Option<u64> {
    std::fs::metadata("/proc/self/fd/0")
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

impl StdinSettings {
    /// # Errors
    /// [`crate::Error::Input`] for a name that cannot be a file name.
    pub fn check(&self) -> Result<()> {
        check_name(&self.name)
    }

    /// One stream.
    pub fn plan(&self) -> StreamPlan {
        let name = self.name.clone();
        StreamPlan {
            streams: vec![(name.clone(), StreamSpec::Stdin)],
            expected_bytes: stdin_size(),
            record: Recorded::ready(Source::Stdin { name }),
        }
    }
}

impl CommandSettings {
    /// The file's name in the snapshot.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.argv
                .first()
                .and_then(|p| std::path::Path::new(p).file_name())
                .map_or_else(|| "output".into(), |f| f.to_string_lossy().into_owned())
        })
    }

    /// # Errors
    /// [`crate::Error::Input`] without a program, or for a name that cannot
    /// be a file name.
    pub fn check(&self) -> Result<()> {
        if self.argv.first().is_none_or(String::is_empty) {
            input!("--command needs the command after `--`, e.g. cairn backup --name db.dump --command -- pg_dump -Fc app");
        }
        check_name(&self.name())
    }

    /// One stream.
    pub fn plan(&self) -> StreamPlan {
        let name = self.name();
        // Only the program: its arguments may hold a password
        // (docs/format.md §7.1).
        let argv = self.argv.iter().take(1).cloned().collect();
        StreamPlan {
            streams: vec![(
                name.clone(),
                StreamSpec::Command {
                    argv: self.argv.clone(),
                    env: Vec::new(),
                },
            )],
            expected_bytes: None,
            record: Recorded::ready(Source::Command { name, argv }),
        }
    }
}

/// A stream snapshot's listing.
pub fn describe(record: &Source) -> Option<String> {
    match record {
        Source::Stdin { name } => Some(format!("stdin:{name}")),
        // Only the program (snapshots written before 2026-12-03 recorded
        // its arguments too, which may hold a password).
        Source::Command { name, argv } => Some(format!(
            "{name} ← {}",
            argv.first().map_or("", String::as_str)
        )),
        _ => None,
    }
}
