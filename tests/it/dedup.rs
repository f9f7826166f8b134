//! Deduplication and compression are real (the figures of issue 2, item 4).

use cairn_e2e::{files_under, random_bytes, sql_dump, Repo};
use rand::{Rng, SeedableRng};

const MIB: u64 = 1 << 20;

#[test]
fn content_defined_dedup_of_a_200_mib_stream() {
    let r = Repo::init();
    let data = random_bytes(200 << 20, 42);
    let n = data.len() as u64;

    let s0 = r.size();
    r.ok_with(&["backup", "--stdin", "--name", "s"], &data);
    let s1 = r.size();
    assert!(s1 - s0 >= n, "random data cannot shrink");

    // The same stream again: under 1 %.
    r.ok_with(&["backup", "--stdin", "--name", "s"], &data);
    let s2 = r.size();
    let again = s2 - s1;
    assert!(
        again * 100 < n,
        "identical re-backup added {again} bytes ({:.2} %)",
        again as f64 * 100.0 / n as f64
    );

    // One byte overwritten at each of 20 random places: under 25 %.
    let mut edited = data.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..20 {
        let at = rng.gen_range(0..edited.len());
        edited[at] ^= 0xff;
    }
    r.ok_with(&["backup", "--stdin", "--name", "s"], &edited);
    let s3 = r.size();
    let scattered = s3 - s2;
    assert!(
        scattered * 4 < n,
        "20 one-byte edits added {} MiB",
        scattered / MIB
    );

    // 100 bytes inserted at the start: under 5 %.
    let mut shifted = random_bytes(100, 6);
    shifted.extend_from_slice(&data);
    r.ok_with(&["backup", "--stdin", "--name", "s"], &shifted);
    let inserted = r.size() - s3;
    assert!(
        inserted * 20 < n,
        "a 100-byte insert added {} MiB",
        inserted / MIB
    );

    eprintln!(
        "dedup: same {:.3} %, 20 edits {:.2} %, insert {:.2} % of {} MiB",
        again as f64 * 100.0 / n as f64,
        scattered as f64 * 100.0 / n as f64,
        inserted as f64 * 100.0 / n as f64,
        n / MIB
    );
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), shifted);
}

#[test]
fn a_text_sql_dump_is_stored_compressed() {
    let r = Repo::init();
    let dump = sql_dump(40 << 20, 3);
    let before = r.size();
    r.ok_with(&["backup", "--stdin", "--name", "dump.sql"], &dump);
    let stored = r.size() - before;
    assert!(
        stored * 2 < dump.len() as u64,
        "a {} MiB SQL dump took {} MiB",
        dump.len() as u64 / MIB,
        stored / MIB
    );
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), dump);
}

#[test]
fn a_gibibyte_is_few_objects() {
    use std::io::Write;
    let r = Repo::init();
    let input = r.tmp("input");
    let mut f = std::fs::File::create(&input).unwrap();
    for part in 0..16 {
        f.write_all(&random_bytes(64 << 20, 1000 + part)).unwrap();
    }
    drop(f);
    let o = r
        .cairn()
        .args(["backup", "--stdin"])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let objects = cairn_e2e::files_under(&r.path).len();
    eprintln!("1 GiB backup: {objects} objects in the repository");
    assert!(objects <= 40, "a 1 GiB backup left {objects} objects");
}

/// A session writes its index files as its packs become durable (here at
/// every pack boundary past 40 blobs), so memory does not grow with a long
/// backup; it keeps deduplicating against what it already wrote out, and
/// the catalog and a machine that never saw the backup learn every index
/// file.
fn a_long_session_writes_its_index_as_it_goes(mut r: Repo, count_files: bool) {
    r.ok(&["init", "--pack-size-mib", "4"]);
    r.env.push(("CAIRN_INDEX_FILE_BLOBS".into(), "40".into()));
    // A comes again after B: by then A's packs (at most two open packs, a
    // queued one and the uploads behind them) are durable and indexed.
    let a = random_bytes(24 << 20, 61);
    let b = random_bytes(80 << 20, 62);
    let data = [&a[..], &b[..], &a[..]].concat();
    let first = r.backup_json(&["--stdin", "--name", "dump"], &data);
    let new = first["new_bytes"].as_u64().unwrap();
    // A and B once, and the few chunks cut across their junctions.
    assert!(
        (104 * MIB..106 * MIB).contains(&new),
        "the second A was deduplicated against index files written before it came: {first}"
    );
    if count_files {
        // A file per pack: packs of 4 MiB hold over 40 blobs.
        let files = files_under(&r.path.join("index")).len();
        assert!(
            files >= 20,
            "{files} index file(s) for 104 MiB of new blobs"
        );
    }
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), data);
    let again = r.backup_json(&["--stdin", "--name", "dump"], &data);
    assert_eq!(
        again["new_bytes"], 0,
        "the catalog recorded every index file: {again}"
    );
    r.catalog = r.tmp("another-machine.sqlite");
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), data);
    let third = r.backup_json(&["--stdin", "--name", "dump"], &data);
    assert_eq!(
        third["new_bytes"], 0,
        "a new catalog read every index file: {third}"
    );
}

#[test]
fn a_long_session_writes_its_index_as_it_goes_local() {
    a_long_session_writes_its_index_as_it_goes(Repo::new(), true);
}

#[test]
fn a_long_session_writes_its_index_as_it_goes_s3() {
    a_long_session_writes_its_index_as_it_goes(Repo::new_s3(), false);
}
