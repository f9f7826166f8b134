//! `cairn key add|list|remove`

use super::{passphrase, Status};
use crate::cancel::Cancel;
use crate::ops::keys;
use crate::repo::Repository;
use crate::util::format_time;
use anyhow::Result;

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

pub async fn run(repo: &Repository, cancel: &Cancel, cmd: Command) -> Result<Status> {
    match cmd {
        Command::Add => {
            let pass = passphrase(
                "CAIRN_NEW_PASSWORD",
                "CAIRN_NEW_PASSWORD_FILE",
                "New passphrase: ",
                true,
            )?;
            let id = cancel.or_cancel(keys::add(repo, &pass)).await?;
            println!("added key {}", id.short());
        }
        Command::List => {
            let list = cancel.or_cancel(keys::list(repo)).await?;
            println!("{:<10} {:<20} {:<24} USER", "ID", "CREATED (UTC)", "HOST");
            for key in list {
                let current = if key.current { "*" } else { " " };
                let id = key.id.short();
                match key.meta {
                    Some(meta) => println!(
                        "{current}{id:<9} {:<20} {:<24} {}",
                        format_time(meta.created_ns),
                        meta.hostname,
                        meta.username
                    ),
                    None => println!(
                        "{current}{id:<9} not a key of this repository (left by an interrupted init, or damaged): `cairn key remove {id}`",
                    ),
                }
            }
        }
        Command::Remove { id } => {
            let key = cancel.or_cancel(keys::remove(repo, &id)).await?;
            println!("removed key {}", key.short());
        }
    }
    Ok(Status::Success)
}
