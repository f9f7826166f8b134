//! `cairn init`

use super::{passphrase, Ctx, Status};
use crate::ops::{self, InitOptions};
use anyhow::{Context, Result};
use cairn_chunker::ChunkerParams;
use cairn_repo_format::{DEFAULT_PACK_SIZE, DEFAULT_ZSTD_LEVEL};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Target pack size in MiB (1..=1024). Larger packs mean fewer objects.
    #[arg(long, default_value_t = DEFAULT_PACK_SIZE >> 20)]
    pack_size_mib: u32,
    /// zstd compression level for new data (-7..=22).
    #[arg(long, default_value_t = DEFAULT_ZSTD_LEVEL, allow_hyphen_values = true)]
    compression_level: i32,
    /// Average chunk size in KiB (a power of two); min is 1/4 and max 4× of it.
    #[arg(long, default_value_t = ChunkerParams::DEFAULT.avg_size() >> 10)]
    chunk_avg_kib: u32,
    /// Chunk and identify data as this repository does (its chunker
    /// parameters and chunking keys), so that `cairn copy` between the two
    /// keeps ids and deduplicates with both's backups. Its passphrase comes
    /// from CAIRN_FROM_PASSWORD_FILE or CAIRN_FROM_PASSWORD.
    #[arg(long, value_name = "REPO", conflicts_with = "chunk_avg_kib")]
    copy_chunker_params_from: Option<String>,
    #[command(flatten)]
    from: super::copy::FromOptions,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<Status> {
    let avg = args.chunk_avg_kib.saturating_mul(1024);
    let pack_size = args
        .pack_size_mib
        .checked_mul(1 << 20)
        .context("--pack-size-mib is too large")?;
    let opts = InitOptions {
        pack_size,
        zstd_level: args.compression_level,
        chunk_avg: avg,
    };
    // Checked before the passphrase is asked for.
    opts.config()?;
    let like = match &args.copy_chunker_params_from {
        Some(address) => Some(ctx.open_from(address, &args.from).await?),
        None => None,
    };
    let pass = passphrase(
        "CAIRN_PASSWORD",
        "CAIRN_PASSWORD_FILE",
        "Passphrase for the new repository: ",
        true,
    )?;
    let repo = ctx
        .cancel
        .or_cancel(ops::init(ctx.place.clone(), &pass, &opts, like.as_ref()))
        .await?;
    println!(
        "created repository {} at {}",
        repo.config.repository_id_hex(),
        repo.location()
    );
    if let Some(like) = &like {
        println!(
            "it chunks and identifies data as {} does: copies between them keep their ids",
            like.location()
        );
    }
    println!("keep the passphrase safe: without it the data cannot be restored");
    Ok(Status::Success)
}
