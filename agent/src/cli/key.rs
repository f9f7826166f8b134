//! `cairn key add|list|remove`

use super::{passphrase, Status};
use crate::backend::ErrorKind;
use crate::repo::Repository;
use crate::util::format_time;
use anyhow::{bail, Result};
use cairn_repo_format::{KdfParams, ObjectName};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add a passphrase (from CAIRN_NEW_PASSWORD_FILE, CAIRN_NEW_PASSWORD or the terminal).
    Add,
    /// List key files.
    List,
    /// Remove a key file (not the one in use, not the last one).
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
}

pub async fn run(repo: Repository, cmd: Command) -> Result<Status> {
    match cmd {
        Command::Add => {
            let pass = passphrase(
                "CAIRN_NEW_PASSWORD",
                "CAIRN_NEW_PASSWORD_FILE",
                "New passphrase: ",
                true,
            )?;
            let id = repo.add_key(&pass, KdfParams::DEFAULT).await?;
            println!("added key {}", id.short());
        }
        Command::List => {
            println!("{:<10} {:<20} {:<24} USER", "ID", "CREATED (UTC)", "HOST");
            for (id, meta) in repo.keys_list().await? {
                let current = if id == repo.key_id { "*" } else { " " };
                match meta {
                    Some(meta) => println!(
                        "{current}{:<9} {:<20} {:<24} {}",
                        id.short(),
                        format_time(meta.created_ns),
                        meta.hostname,
                        meta.username
                    ),
                    None => println!(
                        "{current}{:<9} not a key of this repository (left by an interrupted init, or damaged): `cairn key remove {}`",
                        id.short(),
                        id.short()
                    ),
                }
            }
        }
        Command::Remove { id } => {
            let keys = repo.keys_list().await?;
            let prefix = id.to_ascii_lowercase();
            let matching: Vec<_> = keys
                .iter()
                .filter(|(k, _)| k.to_hex().starts_with(&prefix))
                .collect();
            let key = match matching.as_slice() {
                [one] => one.0,
                [] => bail!("no key matches {id:?}; `cairn key list` lists them"),
                _ => bail!("key prefix {id:?} is ambiguous; give more digits"),
            };
            if key == repo.key_id {
                bail!("key {} is the one that opened the repository; open it with another passphrase to remove this one", key.short());
            }
            let own = keys.iter().filter(|(_, m)| m.is_some()).count();
            let removing_own = matching.iter().any(|(_, m)| m.is_some());
            if removing_own && own < 2 {
                bail!(
                    "key {} is the last key; removing it would make the repository unreadable",
                    key.short()
                );
            }
            match repo.backend.delete(&ObjectName::Key(key)).await {
                Err(e) if e.kind == ErrorKind::NotFound => {
                    bail!("key {} is already gone", key.short())
                }
                r => r?,
            }
            println!("removed key {}", key.short());
        }
    }
    Ok(Status::Success)
}
