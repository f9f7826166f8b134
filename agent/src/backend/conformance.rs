//! One conformance suite for every backend: each must behave identically.

use super::delete::Deletion;
use super::spool::SpoolFile;
use super::{
    local::LocalBackend, memory::MemoryBackend, s3::S3Backend, Backend, ErrorKind, Expect, PutMode,
};
use bytes::Bytes;
use cairn_repo_format::{KeyId, ObjectKind, ObjectName, PackId, SessionId, SnapshotId};
use std::collections::HashSet;
use std::sync::Arc;

/// A spool file holding `data`, where `b` wants `name` spooled, made as a
/// backup makes it (unnamed on Linux: backends get `/proc/self/fd/N`).
fn spool(b: &dyn Backend, name: &ObjectName, data: &[u8]) -> SpoolFile {
    let dir = b.spool_dir(name).unwrap_or_else(std::env::temp_dir);
    let mut f = SpoolFile::create(&dir).unwrap_or_else(|e| panic!("{e}"));
    f.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    f
}

/// Create-only and compare-and-swap writes with versions, and the
/// storage's clock.
async fn versioned(b: &Arc<dyn Backend>) {
    let state = ObjectName::GcState;
    let ok = |r: Result<super::Version, super::BackendError>| r.unwrap_or_else(|e| panic!("{e}"));
    let before = crate::util::now_ns();
    let v1 = ok(b
        .put_versioned(&state, Bytes::from_static(b"one"), Expect::Absent)
        .await);
    let kind = |r: Result<super::Version, super::BackendError>| r.err().map(|e| e.kind);
    assert_eq!(
        kind(
            b.put_versioned(&state, Bytes::from_static(b"again"), Expect::Absent)
                .await
        ),
        Some(ErrorKind::AlreadyExists)
    );
    let (data, v) = b
        .get_versioned(&state)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((data, &v), (Bytes::from_static(b"one"), &v1));
    let v2 = ok(b
        .put_versioned(&state, Bytes::from_static(b"two"), Expect::Version(&v1))
        .await);
    assert_ne!(v1, v2);
    assert_eq!(
        kind(
            b.put_versioned(&state, Bytes::from_static(b"stale"), Expect::Version(&v1))
                .await
        ),
        Some(ErrorKind::Changed)
    );
    assert_eq!(b.get(&state).await.ok(), Some(Bytes::from_static(b"two")));
    // Of many writers that read one version, exactly one replaces it.
    let racers: Vec<_> = (0..12u8)
        .map(|i| {
            let (b, v2) = (b.clone(), v2.clone());
            tokio::spawn(async move {
                b.put_versioned(
                    &ObjectName::GcState,
                    Bytes::from(vec![i; 8]),
                    Expect::Version(&v2),
                )
                .await
                .is_ok()
            })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.unwrap_or(false));
    }
    assert_eq!(wins, 1);
    // A compare-and-swap of a missing object fails.
    let lease = ObjectName::Lease(SessionId::random());
    assert!(matches!(
        kind(
            b.put_versioned(&lease, Bytes::from_static(b"x"), Expect::Version(&v2))
                .await
        ),
        Some(ErrorKind::NotFound | ErrorKind::Changed)
    ));
    // The storage's clock: about now (S3 gives whole seconds).
    let stat = b.stat(&state).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stat.size, 8);
    let after = crate::util::now_ns();
    assert!(
        stat.modified_ns >= before - 2_000_000_000 && stat.modified_ns <= after + 2_000_000_000,
        "modified {} not within [{before}, {after}]",
        stat.modified_ns
    );
    assert_eq!(
        b.list(ObjectKind::GcState).await.unwrap_or_default(),
        vec![state]
    );
}

async fn suite(b: Arc<dyn Backend>) {
    let s = SessionId::random();
    let pack = ObjectName::Pack(s, PackId::random());
    let data = Bytes::from((0..10_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());

    // Missing objects are typed not-found.
    assert_eq!(
        b.get(&pack).await.err().map(|e| e.kind),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        b.head(&pack).await.err().map(|e| e.kind),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        b.delete(&pack, &Deletion::for_tests())
            .await
            .err()
            .map(|e| e.kind),
        Some(ErrorKind::NotFound)
    );

    // Create, read back whole and in ranges.
    b.put(&pack, data.clone(), PutMode::Create)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.get(&pack).await.ok(), Some(data.clone()));
    assert_eq!(b.head(&pack).await.ok(), Some(10_000));
    assert_eq!(
        b.get_range(&pack, 100, 50).await.ok(),
        Some(data.slice(100..150))
    );
    assert_eq!(
        b.get_range(&pack, 9_990, 100).await.ok(),
        Some(data.slice(9_990..))
    );

    // Create-only: a second create fails and leaves the first intact.
    let e = b
        .put(&pack, Bytes::from_static(b"other"), PutMode::Create)
        .await
        .err();
    assert_eq!(e.map(|e| e.kind), Some(ErrorKind::AlreadyExists));
    assert_eq!(b.get(&pack).await.ok(), Some(data.clone()));

    // From a spooled file: the same contract, and the file stays the caller's.
    let spooled_pack = ObjectName::Pack(s, PackId::random());
    let file = spool(&*b, &spooled_pack, &data);
    b.put_file(&spooled_pack, file.path(), PutMode::Create)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.get(&spooled_pack).await.ok(), Some(data.clone()));
    assert_eq!(
        std::fs::read(file.path()).ok(),
        Some(data.to_vec()),
        "put_file consumed the caller's file"
    );
    let other = spool(&*b, &spooled_pack, b"other");
    let e = b
        .put_file(&spooled_pack, other.path(), PutMode::Create)
        .await
        .err();
    assert_eq!(e.map(|e| e.kind), Some(ErrorKind::AlreadyExists));
    assert_eq!(b.get(&spooled_pack).await.ok(), Some(data.clone()));
    drop((file, other));
    b.delete(&spooled_pack, &Deletion::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Racing creators: exactly one wins.
    let commit = ObjectName::Commit(s);
    let racers: Vec<_> = (0..16u8)
        .map(|i| {
            let b = b.clone();
            tokio::spawn(async move {
                b.put(&commit, Bytes::from(vec![i; 64]), PutMode::Create)
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.unwrap_or(false));
    }
    assert_eq!(wins, 1);
    assert_eq!(b.get(&commit).await.map(|d| d.len()).ok(), Some(64));

    // Overwrite replaces.
    let lease = ObjectName::Lease(s);
    b.put(&lease, Bytes::from_static(b"one"), PutMode::Overwrite)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    b.put(&lease, Bytes::from_static(b"two"), PutMode::Overwrite)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.get(&lease).await.ok(), Some(Bytes::from_static(b"two")));

    versioned(&b).await;

    // Listing: many objects, each kind under its own prefix.
    let mut want = HashSet::new();
    for _ in 0..1100 {
        let n = ObjectName::Snapshot(SnapshotId::random());
        want.insert(n);
    }
    let puts: Vec<_> = want
        .iter()
        .map(|n| {
            let (b, n) = (b.clone(), *n);
            tokio::spawn(async move {
                b.put(&n, Bytes::from_static(b"s"), PutMode::Create)
                    .await
                    .is_ok()
            })
        })
        .collect();
    for p in puts {
        assert!(p.await.unwrap_or(false));
    }
    let got: HashSet<_> = b
        .list(ObjectKind::Snapshot)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        b.list(ObjectKind::Pack).await.unwrap_or_default(),
        vec![pack]
    );
    assert_eq!(
        b.list(ObjectKind::Commit).await.unwrap_or_default(),
        vec![commit]
    );
    assert!(b.list(ObjectKind::Key).await.unwrap_or_default().is_empty());

    // Delete.
    let key = ObjectName::Key(KeyId::random());
    b.put(&key, Bytes::from_static(b"k"), PutMode::Create)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    b.delete(&key, &Deletion::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.get(&key).await.err().map(|e| e.kind),
        Some(ErrorKind::NotFound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_conforms() {
    let s3 = cairn_e2e::s3_server();
    let prefix = format!("conformance-{}/", hex::encode(rand::random::<[u8; 6]>()));
    let b = S3Backend::for_test(
        &s3.endpoint,
        &s3.access_key,
        &s3.secret_key,
        &s3.bucket,
        &prefix,
        6 << 20,
        5 << 20,
    );
    suite(Arc::new(b.clone())).await;

    // Multipart: a large object goes up in parts and reads back whole.
    let big = ObjectName::Pack(SessionId::random(), PackId::random());
    let data = Bytes::from(
        (0..13_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect::<Vec<u8>>(),
    );
    b.put(&big, data.clone(), PutMode::Create)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.get(&big).await.ok(), Some(data.clone()));
    assert_eq!(
        b.get_range(&big, 6_000_000, 10).await.ok(),
        Some(data.slice(6_000_000..6_000_010))
    );
    // The same from a spooled file: its parts are read from the file.
    let big_file = ObjectName::Pack(SessionId::random(), PackId::random());
    let file = spool(&b, &big_file, &data);
    b.put_file(&big_file, file.path(), PutMode::Create)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    assert_eq!(b.get(&big_file).await.ok(), Some(data.clone()));
    // A create-only multipart upload onto an existing name fails, leaves the
    // first object intact, and leaves no parts behind.
    let e = b
        .put(&big, Bytes::from(vec![7u8; 12 << 20]), PutMode::Create)
        .await
        .err();
    assert_eq!(e.map(|e| e.kind), Some(ErrorKind::AlreadyExists));
    assert_eq!(b.get(&big).await.ok(), Some(data));
    assert_eq!(
        b.stray_uploads().await,
        0,
        "an aborted multipart upload left parts"
    );

    // A missing bucket is a permanent, clear error.
    let none = S3Backend::for_test(
        &s3.endpoint,
        &s3.access_key,
        &s3.secret_key,
        "no-such-bucket",
        "",
        6 << 20,
        5 << 20,
    );
    let e = none
        .get(&ObjectName::Config)
        .await
        .err()
        .unwrap_or_else(|| panic!("missing bucket read"));
    assert!(
        !e.is_retryable() && e.to_string().contains("no-such-bucket"),
        "{e}"
    );
    // Bad credentials: permission denied, not retried.
    let bad = S3Backend::for_test(
        &s3.endpoint,
        &s3.access_key,
        "wrong-secret",
        &s3.bucket,
        &prefix,
        6 << 20,
        5 << 20,
    );
    let e = bad.get(&ObjectName::Config).await.err().map(|e| e.kind);
    assert_eq!(e, Some(ErrorKind::PermissionDenied));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_conforms() {
    suite(Arc::new(MemoryBackend::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_backend_conforms() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let local = LocalBackend::new(dir.path().join("repo"));
    suite(Arc::new(local.clone())).await;

    // A file spooled where the backend asks, unnamed or named, is published
    // without a copy; one spooled elsewhere is copied.
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.ino()).ok();
    let name = ObjectName::Pack(SessionId::random(), PackId::random());
    let file = spool(&local, &name, b"spooled pack");
    local
        .put_file(&name, file.path(), PutMode::Create)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let object = dir.path().join("repo").join(name.path());
    assert_eq!(ino(file.path()), ino(&object));
    drop(file);
    assert_eq!(std::fs::read(&object).ok(), Some(b"spooled pack".to_vec()));
    let name = ObjectName::Pack(SessionId::random(), PackId::random());
    let named = object.with_file_name(".tmp-test-named");
    std::fs::write(&named, b"named").unwrap_or_else(|e| panic!("{e}"));
    local
        .put_file(&name, &named, PutMode::Create)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let object = dir.path().join("repo").join(name.path());
    assert_eq!(ino(&named), ino(&object));
    std::fs::remove_file(&named).unwrap_or_else(|e| panic!("{e}"));
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, b"copied").unwrap_or_else(|e| panic!("{e}"));
    let name = ObjectName::Pack(SessionId::random(), PackId::random());
    local
        .put_file(&name, &elsewhere, PutMode::Overwrite)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let object = dir.path().join("repo").join(name.path());
    assert_ne!(ino(&elsewhere), ino(&object));
    assert_eq!(std::fs::read(&object).ok(), Some(b"copied".to_vec()));
    // No temp files are left behind.
    let mut stray = Vec::new();
    for d in ["packs", "commits", "leases", "snapshots", "keys"] {
        let p = dir.path().join("repo").join(d);
        for e in walk(&p) {
            if e.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
            {
                stray.push(e);
            }
        }
    }
    assert!(stray.is_empty(), "{stray:?}");
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
