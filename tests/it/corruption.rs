//! Encrypted at rest, and corruption is caught, named, and never written out.

use cairn_e2e::{random_bytes, Repo};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const CANARY: &[u8] = b"CANARY-cairn-7f3a9c2e-plaintext";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_object_contains_plaintext() {
    let r = Repo::init();
    let mut data = Vec::new();
    for _ in 0..20_000 {
        data.extend_from_slice(CANARY);
        data.push(b'\n');
    }
    r.ok_with(
        &[
            "backup",
            "--stdin",
            "--name",
            std::str::from_utf8(CANARY).unwrap(),
        ],
        &data,
    );
    let src = r.tmp("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join(std::str::from_utf8(CANARY).unwrap()), CANARY).unwrap();
    r.ok(&["backup", src.to_str().unwrap()]);
    let hex_canary = hex::encode(CANARY);
    for f in cairn_e2e::files_under(&r.path) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, CANARY),
            "{} holds the plaintext canary",
            f.display()
        );
        assert!(
            !contains(&bytes, hex_canary.as_bytes()),
            "{} holds the canary in hex",
            f.display()
        );
        assert!(
            !contains(&bytes, b"correct horse"),
            "{} holds the passphrase",
            f.display()
        );
    }
}

/// Whether a (corrupted) pack holds only trees: a machine whose catalog has
/// not read them fails, naming it, while reading them.
fn is_tree_only(r: &Repo, pack: &std::path::Path) -> bool {
    let mut fresh = Repo::new();
    fresh.path = r.path.clone();
    fresh.pass = r.pass.clone();
    fresh.catalog = r.tmp(&format!("fresh-{}.catalog", rand::random::<u32>()));
    // Listing the snapshot's files reads its trees.
    let o = fresh.run(&["ls", "latest"]);
    stderr(&o).contains(pack.file_name().unwrap().to_str().unwrap())
}

#[test]
fn a_flipped_byte_in_any_pack_is_caught_and_named() {
    let r = Repo::new();
    r.ok(&["init", "--pack-size-mib", "1"]);
    let data = random_bytes(6 << 20, 77);
    r.ok_with(&["backup", "--stdin", "--name", "data.bin"], &data);
    let packs = r.packs();
    assert!(packs.len() >= 4, "want several packs, got {}", packs.len());
    for pack in &packs {
        let original = std::fs::read(pack).unwrap();
        let mut bad = original.clone();
        // Inside the first blob of the pack (blobs start at offset 0).
        bad[1000] ^= 0x01;
        std::fs::write(pack, &bad).unwrap();

        let o = r.run(&["restore", "latest", "--stdout"]);
        if o.status.success() && is_tree_only(&r, pack) {
            // The restore did not need this pack (trees come from the catalog).
            assert_eq!(o.stdout, data);
            std::fs::write(pack, &original).unwrap();
            continue;
        }
        assert_eq!(
            o.status.code(),
            Some(1),
            "corruption in {} not detected",
            pack.display()
        );
        let err = stderr(&o);
        let pack_id = pack.file_name().unwrap().to_str().unwrap();
        assert!(
            err.contains(pack_id) && err.contains("blob") && err.contains("corrupt"),
            "error must name pack and blob: {err}"
        );
        // Whatever reached stdout is a correct prefix: nothing corrupt was written.
        assert!(
            data.starts_with(&o.stdout),
            "corrupt bytes were written out"
        );
        assert!(o.stdout.len() < data.len());

        // To a directory: the file is not left behind half-written.
        let out = r.tmp("out");
        let o = r.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            !out.join("data.bin").exists(),
            "a corrupt file was left in the target"
        );

        std::fs::write(pack, &original).unwrap();
    }
    assert_eq!(r.ok(&["restore", "latest", "--stdout"]), data);
}

#[test]
fn a_tampered_snapshot_or_config_is_refused() {
    let mut r = Repo::init();
    r.ok_with(&["backup", "--stdin"], b"x");
    // Another machine, whose catalog has not read the snapshot yet.
    r.catalog = r.tmp("other.catalog");
    let snap = cairn_e2e::files_under(&r.path.join("snapshots"))
        .pop()
        .unwrap();
    let mut b = std::fs::read(&snap).unwrap();
    let n = b.len();
    b[n - 20] ^= 4;
    std::fs::write(&snap, b).unwrap();
    // Reported on every command, and never listed or used.
    let o = r.run(&["snapshots"]);
    assert!(stderr(&o).contains("tampered"), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 snapshots"));
    let o = r.run(&["restore", "latest", "--stdout"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("tampered"), "{}", stderr(&o));

    let cfg = r.path.join("config");
    let mut b = std::fs::read(&cfg).unwrap();
    b[8] = 9; // the format version
    std::fs::write(&cfg, b).unwrap();
    let o = r.run(&["snapshots"]);
    assert!(stderr(&o).contains("format version 9"), "{}", stderr(&o));
}
