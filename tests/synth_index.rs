//! `cairn-synth-index REPO CHUNKS`: adds committed sessions whose index files
//! list CHUNKS random blobs in packs that do not exist, to a local repository
//! (passphrase in `CAIRN_PASSWORD`). Only for measuring how cairn behaves
//! with a large index without storing terabytes: never restore from such a
//! repository.

use cairn_repo_format::{
    keyfile, BlobEntry, BlobKind, ChunkId, Commit, Compression, IndexFile, IndexId, IndexPack,
    KeyId, ObjectName, PackId, Passphrase, SessionId,
};
use rand::RngCore;
use std::path::{Path, PathBuf};

/// Blobs per session (and per index file).
const PER_SESSION: u64 = 1 << 16;
/// Blobs per fake pack (32 MiB of 128 KiB chunks).
const PER_PACK: u64 = 256;
const RAW: u32 = 128 << 10;

fn write(repo: &Path, name: &ObjectName, data: &[u8]) {
    let path: PathBuf = repo.join(name.path());
    std::fs::create_dir_all(path.parent().expect("object paths have a directory"))
        .expect("create object directory");
    std::fs::write(&path, data).expect("write object");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(repo), Some(chunks)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: CAIRN_PASSWORD=… cairn-synth-index REPO_DIR CHUNKS");
        std::process::exit(2);
    };
    let repo = Path::new(repo);
    let pass = Passphrase::new(
        std::env::var("CAIRN_PASSWORD")
            .expect("CAIRN_PASSWORD must be set")
            .into_bytes(),
    );
    let master = std::fs::read_dir(repo.join("keys"))
        .expect("REPO/keys")
        .find_map(|e| {
            let e = e.ok()?;
            let id = KeyId::from_hex(e.file_name().to_str()?).ok()?;
            let data = std::fs::read(e.path()).ok()?;
            keyfile::parse(&data).ok()?.unwrap(id, &pass).ok()
        })
        .expect("no key file opens with CAIRN_PASSWORD");
    let enc = master.derive().enc;
    let mut rng = rand::thread_rng();
    let mut left = chunks;
    while left > 0 {
        let n = left.min(PER_SESSION);
        left -= n;
        let session = SessionId::random();
        let mut packs = Vec::new();
        let mut done = 0;
        while done < n {
            let k = (n - done).min(PER_PACK);
            let stored = RAW + 16;
            let blobs: Vec<BlobEntry> = (0..k)
                .map(|i| {
                    let mut id = [0u8; 32];
                    rng.fill_bytes(&mut id);
                    BlobEntry {
                        id: ChunkId::from_bytes(id),
                        offset: i * u64::from(stored),
                        stored_len: stored,
                        raw_len: RAW,
                        number: u32::try_from(i).expect("small"),
                        kind: BlobKind::Data,
                        compression: Compression::None,
                    }
                })
                .collect();
            packs.push(IndexPack {
                session,
                id: PackId::random(),
                length: k * u64::from(stored) + (1 << 20),
                blobs,
            });
            done += k;
        }
        let iid = IndexId::random();
        let pack_count = packs.len() as u64;
        write(
            repo,
            &ObjectName::Index(session, iid),
            &IndexFile { packs }.seal(&enc, session, iid),
        );
        let commit = Commit {
            index: vec![iid],
            packs: pack_count,
            ..Commit::empty(session, "synthetic".into(), 0, 0)
        };
        write(repo, &ObjectName::Commit(session), &commit.seal(&enc));
    }
    eprintln!("added {chunks} synthetic blobs to {}", repo.display());
}
