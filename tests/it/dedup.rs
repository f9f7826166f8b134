//! Deduplication and compression are real (the figures of issue 2, item 4).

use cairn_e2e::{random_bytes, sql_dump, Repo};
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
