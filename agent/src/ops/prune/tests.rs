//! Prune under the fault-injecting backend: transient failures (half of
//! the writes among them taking effect with their answer lost) are retried
//! and the prune finishes; a credential revoked in the middle stops it
//! cleanly, and a rerun finishes the collection.

use super::*;
use crate::backend::faulty::Faulty;
use crate::backend::memory::MemoryBackend;
use crate::backend::retry::Retry;
use crate::backend::DynBackend;
use crate::ops::{self, BackupOptions, Destination, ForgetOptions, RestoreOptions};
use crate::retention::Rules;
use crate::source::command::CommandSettings;
use crate::source::SourceSettings;
use crate::stats::Stats;
use cairn_repo_format::{KdfParams, Passphrase};
use std::collections::BTreeMap;

struct Fixture {
    dir: tempfile::TempDir,
    mem: DynBackend,
    repo: Repository,
    cat: Arc<Catalog>,
    /// Snapshot id → the bytes backed up.
    expected: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mem: DynBackend = Arc::new(MemoryBackend::default());
        let pass = Passphrase::new(b"faults".to_vec());
        let kdf = KdfParams::new(64, 1, 1).expect("kdf");
        let config = ops::InitOptions::default().config().expect("config");
        let repo = Repository::init(mem.clone(), &pass, config, kdf)
            .await
            .expect("init");
        let cat = ops::open_catalog(&repo, Some(&dir.path().join("catalog"))).expect("catalog");
        Self {
            dir,
            mem,
            repo,
            cat,
            expected: BTreeMap::new(),
        }
    }

    /// The repository through faults as `spec` says, retried as always.
    fn faulty(&self, spec: &str) -> Repository {
        let faulty: DynBackend =
            Arc::new(Faulty::parse(self.mem.clone(), spec).expect("fault spec"));
        self.repo.with_backend(Arc::new(Retry::new(
            faulty,
            crate::backend::DEFAULT_RETRIES,
        )))
    }

    async fn backup(&mut self, seed: u64) {
        let data: Vec<u8> = (0..300_000u64)
            .map(|i| u8::try_from((i * 31 + seed * 7919) % 251).unwrap_or(0) ^ (seed as u8))
            .collect();
        let file = self.dir.path().join(format!("data-{seed}"));
        std::fs::write(&file, &data).expect("write");
        let source = SourceSettings::Command(CommandSettings {
            argv: vec!["cat".into(), file.to_string_lossy().into_owned()],
            name: Some("data".into()),
        });
        let r = ops::backup(
            &self.repo,
            &self.cat,
            &BackupOptions::new(source),
            &Cancel::new(),
            Arc::new(Stats::default()),
        )
        .await
        .expect("backup");
        self.expected.insert(r.id.to_hex(), data);
    }

    async fn forget_all_but(&self, last: u32) {
        let opts = ForgetOptions {
            rules: Rules {
                keep_last: Some(last),
                ..Rules::default()
            },
            ..ForgetOptions::default()
        };
        ops::forget(&self.repo, &self.cat, &opts, &Cancel::new())
            .await
            .expect("forget");
    }

    /// Every snapshot that counts restores to its bytes, and a dry run
    /// finds nothing left to delete.
    async fn whole(&self) {
        self.restores().await;
        let dry = PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        };
        let r = prune(&self.repo, &self.cat, &dry, &Cancel::new())
            .await
            .expect("dry run");
        assert_eq!(r.deleted_packs, 0, "{r:?}");
    }

    /// Every snapshot that counts restores to its bytes.
    async fn restores(&self) {
        crate::sync::sync(&self.cat, &self.repo)
            .await
            .expect("sync");
        let snapshots = self.cat.snapshots().expect("snapshots");
        assert!(!snapshots.is_empty());
        for (id, _) in snapshots {
            let to = self.dir.path().join(format!("out-{}", id.short()));
            let opts = RestoreOptions {
                snapshot: id.to_hex(),
                filter: crate::filter::SnapshotFilter::default(),
                estimate: false,
                to: Destination::Dir {
                    path: to.clone(),
                    include: Vec::new(),
                    xattrs: true,
                },
            };
            ops::restore(&self.repo, &self.cat, &opts, &Cancel::new())
                .await
                .expect("restore");
            let got = std::fs::read(to.join("data")).expect("restored file");
            assert!(got == self.expected[&id.to_hex()], "snapshot {id} differs");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_the_prune_finishes() {
    let mut f = Fixture::new().await;
    for seed in 0..4 {
        f.backup(seed).await;
    }
    f.forget_all_but(2).await;
    let repo = f.faulty("transient=0.25,seed=11");
    let r = prune(&repo, &f.cat, &PruneOptions::default(), &Cancel::new())
        .await
        .expect("a prune through transient faults");
    assert!(r.deleted_packs > 0, "{r:?}");
    f.whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_revoked_mid_prune_stops_it_and_a_rerun_finishes() {
    let mut f = Fixture::new().await;
    for seed in 0..4 {
        f.backup(seed).await;
    }
    f.forget_all_but(1).await;
    // Writes succeed a few times (the lease, the claim, the plan), then
    // every write is refused.
    for after in [1, 2, 3, 4, 6] {
        let repo = f.faulty(&format!("permanent-after={after}"));
        let e = prune(&repo, &f.cat, &PruneOptions::default(), &Cancel::new())
            .await
            .expect_err("a revoked credential");
        assert_eq!(e.action(), crate::Action::FixAccess, "{e}");
        f.restores().await;
    }
    let r = prune(&f.repo, &f.cat, &PruneOptions::default(), &Cancel::new())
        .await
        .expect("a rerun");
    assert!(r.deleted_packs > 0 || r.took_over, "{r:?}");
    f.whole().await;
}
