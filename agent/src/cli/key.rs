//! `cairn key add|list|remove`

use super::{passphrase, Status};
use crate::cancel::Cancel;
use crate::ops::keys;
use crate::repo::Repository;
use crate::util::{format_time, rfc3339};
use anyhow::Result;
use cairn_repo_format::KeyId;

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

/// A key file, for `--json`.
#[derive(serde::Serialize)]
struct KeyJson {
    id: String,
    short_id: String,
    /// Whether it is the key that opened the repository.
    current: bool,
    /// Whether its metadata opens with the repository's key (false: left
    /// by an interrupted init, or damaged).
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

/// What `key add` and `key remove` did, for `--json`.
#[derive(serde::Serialize)]
struct KeyChanged {
    id: String,
    short_id: String,
}

/// Reports a key added or removed.
fn changed(what: &str, id: KeyId, json: bool) -> Result<()> {
    if json {
        return super::json::print(&KeyChanged {
            id: id.to_hex(),
            short_id: id.short(),
        });
    }
    println!("{what} key {}", id.short());
    Ok(())
}

pub async fn run(repo: &Repository, cancel: &Cancel, cmd: Command, json: bool) -> Result<Status> {
    match cmd {
        Command::Add => {
            let pass = passphrase(
                "CAIRN_NEW_PASSWORD",
                "CAIRN_NEW_PASSWORD_FILE",
                "New passphrase: ",
                true,
            )?;
            let id = cancel.or_cancel(keys::add(repo, &pass)).await?;
            changed("added", id, json)?;
        }
        Command::List => {
            let list = cancel.or_cancel(keys::list(repo)).await?;
            if json {
                let keys: Vec<_> = list
                    .iter()
                    .map(|k| KeyJson {
                        id: k.id.to_hex(),
                        short_id: k.id.short(),
                        current: k.current,
                        valid: k.meta.is_some(),
                        created: k.meta.as_ref().map(|m| rfc3339(m.created_ns)),
                        host: k.meta.as_ref().map(|m| m.hostname.clone()),
                        user: k.meta.as_ref().map(|m| m.username.clone()),
                    })
                    .collect();
                super::json::print(&keys)?;
                return Ok(Status::Success);
            }
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
            changed("removed", key, json)?;
        }
    }
    Ok(Status::Success)
}
