//! The operations, called in-process as the daemon will call them: backup
//! and restore, a session fenced by a pruner, a cancelled backup, and a
//! snapshot of a source kind this release does not know.

use cairn_agent::cancel::{Cancel, Reason};
use cairn_agent::catalog::Catalog;
use cairn_agent::ops::{self, BackupOptions, Destination, InitOptions, Place, RestoreOptions};
use cairn_agent::repo::Repository;
use cairn_agent::session::Session;
use cairn_agent::source::command::CommandSettings;
use cairn_agent::source::files::FilesSettings;
use cairn_agent::source::{describe, SourceSettings};
use cairn_agent::stats::Stats;
use cairn_agent::{Action, Error};
use cairn_repo_format::{Passphrase, Snapshot, SnapshotId, Source};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    dir: tempfile::TempDir,
    repo: Repository,
    cat: Arc<Catalog>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let place = Place::connect(
            &dir.path().join("repo").to_string_lossy(),
            &Default::default(),
        )
        .await
        .expect("place");
        let pass = Passphrase::new(b"in-process".to_vec());
        let repo = ops::init(place, &pass, &InitOptions::default(), None)
            .await
            .expect("init");
        let cat = ops::open_catalog(&repo, Some(&dir.path().join("catalog"))).expect("catalog");
        Self { dir, repo, cat }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The repository's objects of one kind (`leases`, `commits`, …).
    fn objects(&self, kind: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("repo").join(kind))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Waits for `what` to hold, up to ten seconds.
    async fn until(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        for _ in 0..400 {
            if cond(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for {what}");
    }

    async fn backup(
        &self,
        source: SourceSettings,
        cancel: &Cancel,
    ) -> Result<ops::BackupReport, Error> {
        let stats = Arc::new(Stats::default());
        ops::backup(
            &self.repo,
            &self.cat,
            &BackupOptions::new(source),
            cancel,
            stats,
        )
        .await
    }

    async fn restore_dir(&self, snapshot: &str, to: &Path) -> ops::RestoreReport {
        let opts = RestoreOptions {
            snapshot: snapshot.into(),
            filter: cairn_agent::filter::SnapshotFilter::default(),
            estimate: false,
            to: Destination::Dir {
                path: to.to_owned(),
                include: Vec::new(),
                xattrs: true,
            },
        };
        ops::restore(&self.repo, &self.cat, &opts, &Cancel::new())
            .await
            .expect("restore")
    }

    /// The snapshots a fresh catalog finds in the repository.
    async fn snapshots_from_scratch(&self) -> Vec<(SnapshotId, Snapshot)> {
        let fresh =
            ops::open_catalog(&self.repo, Some(&self.path("fresh-catalog"))).expect("catalog");
        ops::sync(&self.repo, &fresh, ops::Trees::All, &Cancel::new())
            .await
            .expect("sync");
        fresh.snapshots().expect("snapshots")
    }
}

fn command(script: &str, name: &str) -> SourceSettings {
    SourceSettings::Command(CommandSettings {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        name: Some(name.into()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_in_process() {
    let f = Fixture::new().await;
    let src = f.path("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("a.txt"), b"alpha\n").expect("write");
    std::fs::write(src.join("sub/b.bin"), vec![7u8; 300_000]).expect("write");
    let files = SourceSettings::Files(FilesSettings {
        paths: vec![src.clone()],
        ..FilesSettings::default()
    });
    let first = f
        .backup(files.clone(), &Cancel::new())
        .await
        .expect("backup");
    assert_eq!(first.snapshot.summary.files, 2);
    assert_eq!(first.parent, None);
    // The second compares with the first and reads nothing again.
    let second = f.backup(files, &Cancel::new()).await.expect("backup");
    assert_eq!(second.parent, Some(first.id));
    assert_eq!(second.unchanged_files, 2);
    assert_eq!(second.snapshot.summary.new_bytes, 0);

    let out = f.path("out");
    let r = f.restore_dir(&first.id.to_hex(), &out).await;
    assert_eq!(r.id, first.id);
    let tree = r.tree.expect("a tree report");
    assert_eq!((tree.files, tree.damaged.len()), (2, 0));
    let restored = out.join(src.strip_prefix("/").expect("absolute"));
    assert_eq!(
        std::fs::read(restored.join("a.txt")).expect("read"),
        b"alpha\n"
    );
    assert_eq!(
        std::fs::read(restored.join("sub/b.bin")).expect("read"),
        vec![7u8; 300_000]
    );

    let stream = f
        .backup(command("printf 'stream data'", "out.txt"), &Cancel::new())
        .await
        .expect("command backup");
    assert!(matches!(&stream.snapshot.source, Source::Command { argv, .. } if argv == &["sh"]));
    let out = f.path("stream-out");
    f.restore_dir("latest", &out).await;
    assert_eq!(
        std::fs::read(out.join("out.txt")).expect("read"),
        b"stream data"
    );
    assert_eq!(f.snapshots_from_scratch().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_source_is_an_error_that_says_fix_the_source() {
    let f = Fixture::new().await;
    let e = f
        .backup(command("echo partial; exit 3", "x"), &Cancel::new())
        .await
        .expect_err("a failing command");
    assert_eq!(e.action(), Action::FixSource, "{e}");
    assert!(e.to_string().contains("exited with status 3"), "{e}");
    assert!(f.snapshots_from_scratch().await.is_empty());
    assert!(f.objects("leases").is_empty(), "{:?}", f.objects("leases"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_commit_exists_is_fenced() {
    let f = Fixture::new().await;
    let go = f.path("go");
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.02; done; printf data",
        go.display()
    );
    let cancel = Cancel::new();
    let backup = f.backup(command(&script, "data"), &cancel);
    let fence = async {
        f.until("the session's lease", |f| !f.objects("leases").is_empty())
            .await;
        // A local repository keeps a lease as numbered versions in
        // `leases/<session>.v/`.
        let session = f.objects("leases").remove(0);
        let session = session.trim_end_matches(".v").to_owned();
        // A pruner fences a session by creating its commit first (format
        // §10); any bytes do, since a commit is create-only.
        std::fs::create_dir_all(f.path("repo/commits")).expect("mkdir");
        std::fs::write(f.path("repo/commits").join(&session), b"tombstone").expect("fence");
        std::fs::write(&go, b"").expect("go");
        session
    };
    let (result, session) = tokio::join!(backup, fence);
    let e = result.expect_err("a fenced session");
    assert!(
        matches!(e.root(), Error::Fenced(s) if s.to_hex() == session),
        "{e}"
    );
    assert_eq!(e.action(), Action::RunAgain);
    assert!(e.to_string().contains("run the backup again"), "{e}");
    assert!(f.snapshots_from_scratch().await.is_empty());
    assert!(f.objects("leases").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backup_kills_its_source_and_commits_nothing() {
    let f = Fixture::new().await;
    let pid_file = f.path("pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let cancel = Cancel::new();
    let started = std::time::Instant::now();
    let backup = f.backup(command(&script, "never"), &cancel);
    let stop = async {
        f.until("the command to start", |f| {
            f.path("pid").exists() && !f.objects("leases").is_empty()
        })
        .await;
        cancel.cancel(Reason::Requested("a test"));
    };
    let (result, ()) = tokio::join!(backup, stop);
    let e = result.expect_err("cancelled");
    assert_eq!(e.cancelled(), Some(Reason::Requested("a test")), "{e}");
    assert_eq!(e.action(), Action::RunAgain);
    assert!(started.elapsed() < Duration::from_secs(30));
    let pid = std::fs::read_to_string(&pid_file).expect("pid");
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    f.until("the command to be killed", |_| {
        std::fs::read_to_string(proc_dir.join("stat")).map_or(true, |s| s.contains(") Z "))
    })
    .await;
    assert!(f.objects("leases").is_empty(), "{:?}", f.objects("leases"));
    assert!(f.objects("commits").is_empty());
    assert!(f.snapshots_from_scratch().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_an_unknown_source_kind_is_listed_and_restorable() {
    let f = Fixture::new().await;
    let known = f
        .backup(command("printf 'rows'", "shop.sql"), &Cancel::new())
        .await
        .expect("backup");
    // What a newer release with a MySQL source would commit.
    let mut record = serde_json::Map::new();
    record.insert("type".into(), "mysql".into());
    record.insert("database".into(), "shop".into());
    let mut newer = known.snapshot.clone();
    newer.source = Source::Other {
        kind: "mysql".into(),
        record,
    };
    let session = Session::start(&f.repo).await.expect("session");
    newer.session = session.id;
    session
        .commit(&f.repo, Default::default(), &newer)
        .await
        .expect("commit");

    let listed = f.snapshots_from_scratch().await;
    assert_eq!(listed.len(), 2);
    let (id, snap) = listed
        .iter()
        .find(|(_, s)| s.source.kind() == "mysql")
        .expect("the unknown kind is listed");
    assert!(
        describe(&snap.source).contains("does not know"),
        "{}",
        describe(&snap.source)
    );
    let out = f.path("out");
    f.restore_dir(&id.to_hex(), &out).await;
    assert_eq!(std::fs::read(out.join("shop.sql")).expect("read"), b"rows");
}
