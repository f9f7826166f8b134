//! Four nodes back up while a fifth forgets and prunes, all on one
//! repository, for a bounded time (`CAIRN_SOAK_SECONDS`, default 90): two
//! stream writers whose data is mostly what earlier (later forgotten)
//! snapshots held, and two file-tree writers that change a few files each
//! round. Afterwards every snapshot that was not forgotten restores byte
//! for byte, `check --read-data` finds no damage, and a final prune leaves
//! no pack unused.

use cairn_e2e::{listing, random_bytes, Repo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a snapshot must restore to.
#[derive(Debug, Clone)]
enum Expect {
    Stream(Vec<u8>),
    Tree(PathBuf, Vec<(PathBuf, Vec<u8>)>),
}

fn seconds() -> u64 {
    std::env::var("CAIRN_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90)
}

/// `cairn ARGS` as another node: its own catalog.
fn node(r: &Repo, catalog: &Path, args: &[&str], stdin: &[u8]) -> Output {
    cairn_e2e::run_cmd(r.cairn().env("CAIRN_CATALOG", catalog).args(args), stdin)
}

fn id_of(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("backup --json");
    v["snapshot_id"].as_str().expect("an id").to_owned()
}

fn stream_writer(r: &Repo, k: u64, until: Instant, expected: &Mutex<BTreeMap<String, Expect>>) {
    let catalog = r.tmp(&format!("stream-{k}.catalog"));
    let base = random_bytes(1 << 20, 1000 + k);
    let name = format!("stream-{k}");
    let mut round = 0u64;
    while Instant::now() < until {
        // Mostly the same as every earlier round: deduplicated against
        // snapshots that the pruner forgets meanwhile.
        let mut data = base.clone();
        data.extend(random_bytes(200 << 10, k * 1_000_000 + round));
        let out = node(
            r,
            &catalog,
            &["backup", "--json", "--stdin", "--name", &name],
            &data,
        );
        let id = id_of(&out, &name);
        expected.lock().unwrap().insert(id, Expect::Stream(data));
        round += 1;
    }
}

fn tree_writer(r: &Repo, k: u64, until: Instant, expected: &Mutex<BTreeMap<String, Expect>>) {
    let catalog = r.tmp(&format!("tree-{k}.catalog"));
    let src = r.tmp(&format!("src-{k}"));
    for f in 0..20u64 {
        let dir = src.join(format!("d{}", f % 4));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{f}")),
            random_bytes(64 << 10, k * 100 + f),
        )
        .unwrap();
    }
    let mut round = 0u64;
    while Instant::now() < until {
        // A few files change each round.
        for f in [round % 20, (round * 7 + 3) % 20] {
            let path = src.join(format!("d{}/f{f}", f % 4));
            std::fs::write(
                &path,
                random_bytes(64 << 10, k * 1_000_000 + round * 20 + f),
            )
            .unwrap();
        }
        let files = listing(&src);
        let out = node(
            r,
            &catalog,
            &["backup", "--json", src.to_str().unwrap()],
            b"",
        );
        let id = id_of(&out, "tree");
        expected
            .lock()
            .unwrap()
            .insert(id, Expect::Tree(src.clone(), files));
        round += 1;
    }
}

fn pruner(r: &Repo, until: Instant) -> usize {
    let catalog = r.tmp("pruner.catalog");
    let mut runs = 0;
    while Instant::now() < until {
        let out = node(r, &catalog, &["forget", "--keep-last", "3", "--prune"], b"");
        assert!(
            out.status.success(),
            "forget --prune ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        runs += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    runs
}

fn soak(r: &Repo) {
    let until = Instant::now() + Duration::from_secs(seconds());
    let expected = Mutex::new(BTreeMap::new());
    let runs = std::thread::scope(|s| {
        for k in 0..2 {
            let e = &expected;
            s.spawn(move || stream_writer(r, k, until, e));
            s.spawn(move || tree_writer(r, k, until, e));
        }
        s.spawn(|| pruner(r, until)).join().unwrap()
    });
    assert!(runs >= 3, "only {runs} prunes ran");
    let expected = expected.into_inner().unwrap();
    // Every snapshot that counts restores exactly.
    let snapshots = r.snapshots();
    assert!(snapshots.len() >= 4, "{} snapshots", snapshots.len());
    assert!(expected.len() > snapshots.len(), "nothing was forgotten");
    for s in &snapshots {
        let id = s["id"].as_str().unwrap();
        match expected
            .get(id)
            .unwrap_or_else(|| panic!("unknown snapshot {id}"))
        {
            Expect::Stream(data) => {
                assert!(r.ok(&["restore", id, "--stdout"]) == *data, "stream {id}");
            }
            Expect::Tree(src, files) => {
                let out = r.tmp(&format!("out-{id}"));
                r.ok(&["restore", id, "--target", out.to_str().unwrap()]);
                let root = out.join(src.strip_prefix("/").unwrap());
                assert!(listing(&root) == *files, "tree {id}");
            }
        }
    }
    let check = r.run(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // A final prune, and nothing is left unused.
    r.ok(&["prune"]);
    let out = r.ok(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["unreferenced_packs"], 0, "{v}");
    let dry: serde_json::Value =
        serde_json::from_slice(&r.ok(&["prune", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["deleted_packs"], 0, "{dry}");
}

#[test]
fn four_writers_and_a_pruner_locally() {
    soak(&Repo::init());
}

#[test]
fn four_writers_and_a_pruner_on_s3() {
    let r = Repo::new_s3();
    r.ok(&["init"]);
    soak(&r);
}
