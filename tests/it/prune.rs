//! `prune` as operators run it, and as it fails: what `forget` released is
//! deleted and everything kept restores byte for byte; a writer paused past
//! its lease is fenced and fails cleanly; a prune killed at any point is
//! finished by the next; a paused prune that was taken over stops without
//! deleting anything the new one did not decide.

use cairn_e2e::{random_bytes, Repo};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Snapshot id → the bytes its stream holds.
type Expected = BTreeMap<String, Vec<u8>>;

fn backup(r: &Repo, name: &str, data: &[u8], expected: &mut Expected) -> String {
    let s = r.backup_json(&["--stdin", "--name", name], data);
    let id = s["snapshot_id"]
        .as_str()
        .expect("backup --json has an id")
        .to_owned();
    expected.insert(id.clone(), data.to_vec());
    id
}

fn listed(r: &Repo) -> Vec<String> {
    r.snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Every snapshot listed restores to exactly the bytes it was given.
fn all_restore(r: &Repo, expected: &Expected) {
    for id in listed(r) {
        let want = expected
            .get(&id)
            .unwrap_or_else(|| panic!("unknown snapshot {id}"));
        let got = r.ok(&["restore", &id, "--stdout"]);
        assert!(got == *want, "snapshot {id} restored wrong bytes");
    }
}

fn prune_json(r: &Repo, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["prune", "--json"];
    a.extend_from_slice(args);
    serde_json::from_slice(&r.ok(&a)).expect("prune --json prints JSON")
}

fn frees_what_forget_released(r: &Repo) {
    let mut expected = Expected::new();
    let shared = random_bytes(3 << 20, 1);
    for i in 0..4u64 {
        // Half of each stream is shared by all, half its own.
        let mut data = shared.clone();
        data.extend(random_bytes(3 << 20, 100 + i));
        backup(r, "db.dump", &data, &mut expected);
    }
    let dry = prune_json(r, &["--dry-run"]);
    assert_eq!(dry["deleted_packs"], 0, "nothing forgotten yet: {dry}");
    r.ok(&["forget", "--keep-last", "2"]);
    let dry = prune_json(r, &["--dry-run"]);
    assert!(dry["deleted_packs"].as_u64().unwrap() > 0, "{dry}");
    let done = prune_json(r, &[]);
    // The second stream's packs hold only its own half and go; the
    // first's hold the shared half too: they are repacked (the shared half
    // copied) and go as well.
    assert!(done["repacked_packs"].as_u64().unwrap() > 0, "{done}");
    assert_eq!(
        done["repacked_packs"], dry["repacked_packs"],
        "{done} vs {dry}"
    );
    assert!(done["deleted_bytes"].as_u64().unwrap() >= 5 << 20, "{done}");
    assert_eq!(
        done["deleted_packs"], dry["deleted_packs"],
        "{done} vs {dry}"
    );
    assert!(done["requests"].as_u64().unwrap() > 0);
    assert_eq!(listed(r).len(), 2);
    all_restore(r, &expected);
    // Nothing is left to free; a machine that never saw the repository
    // reads it after the prune.
    let again = prune_json(r, &[]);
    assert_eq!(again["deleted_packs"], 0, "{again}");
    let mut other = Repo::new();
    other.path = r.path.clone();
    other.env = r.env.clone();
    other.pass = r.pass.clone();
    all_restore(&other, &expected);
}

#[test]
fn prune_frees_what_forget_released_locally() {
    let r = Repo::init();
    frees_what_forget_released(&r);
    // Of 15 MiB stored, the first two streams' own halves went: the shared
    // half and two own halves are left.
    assert!(r.size() < 21 << 19, "{} bytes left", r.size());
}

#[test]
fn prune_frees_what_forget_released_on_s3() {
    let r = Repo::new_s3();
    r.ok(&["init"]);
    frees_what_forget_released(&r);
}

/// A catalog that knew the pruned sessions catches up without a rebuild
/// and restores through the consolidated index.
#[test]
fn another_machine_catches_up_with_a_prune() {
    let mut r = Repo::init();
    let mut expected = Expected::new();
    for i in 0..3u64 {
        backup(&r, "x", &random_bytes(2 << 20, i), &mut expected);
    }
    let a = r.catalog.clone();
    r.catalog = r.tmp("b.catalog");
    assert_eq!(listed(&r).len(), 3);
    r.catalog = a;
    r.ok(&["forget", "--keep-last", "1", "--prune"]);
    r.catalog = r.tmp("b.catalog");
    let out = r.run(&["snapshots"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("rebuilding"), "{err}");
    all_restore(&r, &expected);
    let out = r.run(&["catalog", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cairn --log-requests ARGS` and kills it with SIGKILL after it has
/// made `after` storage requests. Returns whether it finished first.
fn kill_after_requests(r: &Repo, args: &[&str], after: usize) -> bool {
    let mut child = r
        .cairn()
        .arg("--log-requests")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn starts");
    let stderr = child.stderr.take().expect("piped");
    let mut n = 0;
    let mut killed = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.contains(" -> ") {
            n += 1;
            if n == after {
                let _ = child.kill();
                killed = true;
                break;
            }
        }
    }
    let status = child.wait().expect("wait");
    !killed && status.success()
}

fn requests_of(r: &Repo, args: &[&str]) -> usize {
    let out = r.run(&[&["--log-requests"], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(" -> "))
        .count()
}

/// A new generation of data: two streams backed up, the oldest forgotten.
fn churn(r: &Repo, round: u64, expected: &mut Expected) {
    for k in 0..2 {
        backup(
            r,
            "db.dump",
            &random_bytes(300 << 10, round * 10 + k),
            expected,
        );
    }
    r.ok(&["forget", "--keep-last", "2"]);
}

#[test]
fn a_prune_killed_at_any_point_is_finished_by_the_next() {
    let r = Repo::init();
    let mut expected = Expected::new();
    churn(&r, 0, &mut expected);
    churn(&r, 1, &mut expected);
    // How many requests a whole prune of one round makes.
    let whole = requests_of(&r, &["prune"]);
    assert!(whole > 20, "a prune made {whole} requests");
    let mut kills = 0;
    for i in 0..24u64 {
        churn(&r, 2 + i, &mut expected);
        // Points spread over the whole run: claiming, marking, publishing,
        // settling, fencing, replacing index files, deleting, cleaning up.
        let at = 1 + (i as usize * whole) / 24;
        if !kill_after_requests(&r, &["prune"], at) {
            kills += 1;
        }
        // The next prune takes over (the killed one's process is gone)
        // and finishes; everything kept restores, and nothing is left.
        let done = prune_json(&r, &[]);
        assert_eq!(listed(&r).len(), 2);
        all_restore(&r, &expected);
        let dry = prune_json(&r, &["--dry-run"]);
        assert_eq!(
            dry["deleted_packs"], 0,
            "after kill at request {at}: {done} then {dry}"
        );
        let out = r.run(&["catalog", "check"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        kills >= 20,
        "only {kills} prunes were killed before finishing"
    );
}

/// `cairn backup --command` of a slow command, started; returns the child.
fn slow_backup(r: &Repo, name: &str, ttl: &str, script: &str) -> std::process::Child {
    r.cairn()
        .env("CAIRN_LEASE_TTL", ttl)
        .args([
            "backup",
            "--json",
            "--name",
            name,
            "--command",
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn starts")
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Waits until `marker` exists: the backup's command started, so its
/// session has its lease and has read gc/state and the index.
fn wait_for(marker: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            marker.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_writer_paused_past_its_lease_is_fenced_and_fails_cleanly() {
    let r = Repo::init();
    let mut expected = Expected::new();
    for i in 0..3 {
        backup(&r, "kept", &random_bytes(1 << 20, i), &mut expected);
    }
    // A backup that writes a pack, then waits on its command.
    let marker = r.tmp("started");
    let writer = slow_backup(
        &r,
        "paused",
        "4",
        &format!(
            "touch {}; head -c 3000000 /dev/urandom; sleep 3; head -c 1000 /dev/urandom",
            marker.display()
        ),
    );
    wait_for(&marker);
    std::thread::sleep(Duration::from_millis(500));
    signal(writer.id(), "-STOP");
    // Past its lease's time-to-live (4 s), by the storage's clock.
    std::thread::sleep(Duration::from_secs(6));
    r.ok(&["forget", "--keep-last", "2"]);
    let done = prune_json(&r, &[]);
    assert_eq!(done["fenced_sessions"], 1, "{done}");
    signal(writer.id(), "-CONT");
    let out = writer.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("fenced"), "{err}");
    // With --json the failure is an error document, not a snapshot.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("fenced"),
        "{doc}"
    );
    assert!(doc.get("snapshot_id").is_none(), "no snapshot is reported");
    // No snapshot of it; the others are intact.
    let snaps = r.snapshots();
    assert_eq!(snaps.len(), 2);
    assert!(snaps.iter().all(|s| s["source"]["name"] == "kept"));
    all_restore(&r, &expected);
    // What it had written is collected by the next prune.
    r.ok(&["prune"]);
    let dry = prune_json(&r, &["--dry-run"]);
    assert_eq!(dry["deleted_packs"], 0, "{dry}");
}

#[test]
fn a_prune_waits_for_a_live_writer_and_keeps_what_it_committed() {
    let r = Repo::init();
    let mut expected = Expected::new();
    let base = random_bytes(2 << 20, 7);
    backup(&r, "db", &base, &mut expected);
    backup(&r, "db", &random_bytes(1 << 20, 8), &mut expected);
    // The writer reads the first snapshot's data again (deduplicated
    // against it), slowly, while the first snapshot is forgotten and a
    // prune runs.
    let path = r.tmp("base");
    std::fs::write(&path, &base).unwrap();
    let marker = r.tmp("started");
    let script = format!(
        "touch {}; cat {}; sleep 4",
        marker.display(),
        path.display()
    );
    let writer = slow_backup(&r, "db", "4", &script);
    wait_for(&marker);
    let first = listed(&r)[0].clone();
    r.ok(&["forget", &first]);
    let started = Instant::now();
    let done = prune_json(&r, &[]);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the prune did not wait"
    );
    assert_eq!(done["fenced_sessions"], 0, "{done}");
    let out = writer.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    expected.insert(s["snapshot_id"].as_str().unwrap().to_owned(), base.clone());
    assert!(done["rescued_packs"].as_u64().unwrap() > 0, "{done}");
    all_restore(&r, &expected);
    assert_eq!(listed(&r).len(), 2);
}

#[test]
fn a_prune_paused_after_its_plan_is_taken_over_and_deletes_nothing() {
    paused_prune_taken_over("PUT gc/plans/", false);
}

#[test]
fn a_prune_paused_after_its_deletion_set_is_taken_over_and_stops() {
    paused_prune_taken_over("PUT gc/deletions/", true);
}

/// Prune A is paused once it has logged `pause_after`; prune B takes over
/// and finishes; A, woken, stops. Before its deletion set is committed A
/// deletes nothing; after, it may delete only packs of that set, which B
/// deleted too. Either way every snapshot kept restores.
fn paused_prune_taken_over(pause_after: &str, may_delete: bool) {
    let mut r = Repo::init();
    let mut expected = Expected::new();
    churn(&r, 0, &mut expected);
    churn(&r, 1, &mut expected);
    churn(&r, 2, &mut expected);
    let a_catalog = r.catalog.clone();
    let b_catalog = r.tmp("b.catalog");
    let mut attempt = 0;
    let (mut a, lines, mut seen) = loop {
        attempt += 1;
        // Prune A gets past `pause_after`, and is paused.
        r.catalog = a_catalog.clone();
        let mut a = r
            .cairn()
            .env("CAIRN_LEASE_TTL", "4")
            .args(["--log-requests", "prune"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cairn starts");
        // Its log is read on a thread of its own, so that what A wrote
        // before the signal can be told from what it writes after.
        let stderr = a.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        for line in lines.iter() {
            let found = line.contains(pause_after);
            seen.push(line);
            if found {
                break;
            }
        }
        signal(a.id(), "-STOP");
        // Prune B waits for A's lease to expire, takes over and finishes.
        std::thread::sleep(Duration::from_secs(6));
        // Everything A logged before it was stopped is read by now.
        seen.extend(lines.try_iter());
        // B runs on another machine (its own catalog), as a second pruner
        // would; see the notes of 2026-12-03 on a paused process and a
        // shared catalog.
        r.catalog = b_catalog.clone();
        let b = prune_json(&r, &[]);
        // On a loaded machine A can run on between the line and the
        // signal: finish its collection (B then finds nothing to take over
        // and collects on its own), or, paused after its plan, commit its
        // deletion set too (a case of the other test). The scenario did not
        // happen: wake A, make garbage again and arrange it once more.
        let ran_on = !may_delete
            && seen
                .iter()
                .any(|l| l.contains("PUT gc/deletions/") || l.contains("DELETE packs/"));
        if b["took_over"] == true && !ran_on {
            break (a, lines, seen);
        }
        assert!(attempt < 5, "prune A was never paused in time: {b}");
        signal(a.id(), "-CONT");
        a.wait().unwrap();
        churn(&r, 10 + attempt, &mut expected);
    };
    churn(&r, 3, &mut expected);
    // A wakes: its next change of gc/state fails; it stops.
    signal(a.id(), "-CONT");
    seen.extend(lines.iter());
    let rest = seen;
    let status = a.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{}", rest.join("\n"));
    assert!(
        rest.iter().any(|l| l.contains("took over")),
        "{}",
        rest.join("\n")
    );
    if !may_delete {
        assert!(
            !rest.iter().any(|l| l.contains("DELETE packs/")),
            "a taken-over prune deleted a pack: {}",
            rest.join("\n")
        );
    }
    all_restore(&r, &expected);
    r.ok(&["prune"]);
    all_restore(&r, &expected);
}
