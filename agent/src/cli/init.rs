//! `cairn init`

use super::{passphrase, Status};
use crate::backend::DynBackend;
use crate::repo::Repository;
use anyhow::{Context, Result};
use cairn_chunker::ChunkerParams;
use cairn_repo_format::{Config, KdfParams, DEFAULT_PACK_SIZE, DEFAULT_ZSTD_LEVEL};

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
}

pub async fn run(backend: DynBackend, args: Args) -> Result<Status> {
    let avg = args.chunk_avg_kib.saturating_mul(1024);
    let chunker = ChunkerParams::new(avg / 4, avg, avg.saturating_mul(4), 1)
        .context("invalid --chunk-avg-kib")?;
    let pack_size = args
        .pack_size_mib
        .checked_mul(1 << 20)
        .context("--pack-size-mib is too large")?;
    let config = Config::new(chunker, args.compression_level, pack_size)
        .context("invalid repository settings")?;
    let pass = passphrase(
        "CAIRN_PASSWORD",
        "CAIRN_PASSWORD_FILE",
        "Passphrase for the new repository: ",
        true,
    )?;
    let repo = Repository::init(backend, &pass, config, KdfParams::DEFAULT).await?;
    println!(
        "created repository {} at {}",
        repo.config.repository_id_hex(),
        repo.backend.location()
    );
    println!("keep the passphrase safe: without it the data cannot be restored");
    Ok(Status::Success)
}
