//! `cairn-gen KIND SIZE [SEED]`: writes a deterministic dataset to stdout for
//! benchmarks and demos. KIND is `sql` (a pg_dump-like text dump with COPY
//! rows) or `random`. SIZE accepts K, M and G suffixes (binary).
//!
//! `cairn-gen tree DIR FILES SIZE [SEED]`: writes a tree of FILES files of
//! about SIZE bytes in all under DIR, 100 files a directory, of mixed sizes
//! (most small, a few large: sizes drawn from a log-uniform range), half
//! SQL-like text and half random bytes.
//!
//! `cairn-gen edit COUNT SIZE [SEED] < IN > OUT`: copies IN to OUT with COUNT
//! edits spread evenly over it, each overwriting about SIZE bytes (at a
//! pseudo-random place in its stretch) with other SQL-like rows of the same
//! length, as a database's day of scattered updates would. The length does not
//! change.
//!
//! `cairn-gen check FILE < IN`: exits 0 if IN (a restore's output, read as a
//! pipe's reader would, 1 MiB at a time) has exactly FILE's bytes, else names
//! the first difference and exits 1.

use std::io::Write;

fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// Writes the tree of `cairn-gen tree`.
fn tree(dir: &std::path::Path, files: u64, size: u64, seed: u64) -> std::io::Result<()> {
    // Log-uniform weights in [1, 1000]; scaled so the sizes sum to `size`.
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let weights: Vec<f64> = (0..files)
        .map(|_| 1000f64.powf((next() % 10_000) as f64 / 10_000.0))
        .collect();
    let total: f64 = weights.iter().sum();
    for (i, w) in weights.iter().enumerate() {
        let len = ((w / total) * size as f64).max(1.0) as usize;
        let sub = dir.join(format!("d{:03}", i / 100));
        std::fs::create_dir_all(&sub)?;
        let file_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        let data = if i % 2 == 0 {
            cairn_e2e::sql_dump(len, file_seed)
        } else {
            cairn_e2e::random_bytes(len, file_seed)
        };
        std::fs::write(
            sub.join(format!("f{i:05}.dat")),
            &data[..len.min(data.len())],
        )?;
    }
    Ok(())
}

/// `cairn-gen edit`: overwrites `count` evenly spread stretches of `size` bytes.
fn edit(count: u64, size: u64, seed: u64) -> std::io::Result<()> {
    use std::io::Read;
    let mut data = Vec::new();
    std::io::stdin().lock().read_to_end(&mut data)?;
    let len = data.len() as u64;
    let size = size.min(len);
    if count > 0 && size > 0 {
        let stride = len / count;
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for i in 0..count {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let room = stride.saturating_sub(size).max(1);
            let at = (i * stride + state % room).min(len - size);
            let (at, n) = (at as usize, size as usize);
            let new = cairn_e2e::sql_dump(n + 256, state);
            // Rows only: not the dump's header, nor its closing `\.` line.
            let end = new.len() - 3;
            data[at..at + n].copy_from_slice(&new[end - n..end]);
        }
    }
    std::io::stdout().lock().write_all(&data)
}

/// Compares standard input with `path`, a read at a time; `Ok(None)` if
/// they are equal, else where they first differ.
fn check(path: &std::path::Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut want = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut stdin = std::io::stdin().lock();
    let (mut got, mut expected) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut at = 0u64;
    loop {
        let n = match stdin.read(&mut got) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            let more = want.read(&mut expected[..1])?;
            return Ok(
                (more != 0).then(|| format!("the input ends at byte {at}, before the file does"))
            );
        }
        if let Err(e) = want.read_exact(&mut expected[..n]) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(Some(format!(
                    "the input goes on past the file's end (at byte {at} or later)"
                )));
            }
            return Err(e);
        }
        // Slice equality is a memcmp; the position is looked for only once
        // a difference is known.
        if got[..n] != expected[..n] {
            let i = got[..n]
                .iter()
                .zip(&expected[..n])
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Ok(Some(format!(
                "the input differs from the file at byte {}",
                at + i as u64
            )));
        }
        at += n as u64;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("check") {
        let Some(path) = args.get(2) else {
            eprintln!("usage: cairn-gen check FILE < IN");
            std::process::exit(2);
        };
        match check(std::path::Path::new(path)) {
            Ok(None) => return,
            Ok(Some(why)) => eprintln!("cairn-gen check: {path}: {why}"),
            Err(e) => eprintln!("cairn-gen check: {path}: {e}"),
        }
        std::process::exit(1);
    }
    if args.get(1).map(String::as_str) == Some("edit") {
        let (Some(count), Some(size)) = (
            args.get(2).and_then(|s| s.parse::<u64>().ok()),
            args.get(3).and_then(|s| parse_size(s)),
        ) else {
            eprintln!("usage: cairn-gen edit COUNT SIZE[K|M|G] [SEED] < IN > OUT");
            std::process::exit(2);
        };
        let seed: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
        if let Err(e) = edit(count, size, seed) {
            eprintln!("cairn-gen edit: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.get(1).map(String::as_str) == Some("tree") {
        let (Some(dir), Some(files), Some(size)) = (
            args.get(2),
            args.get(3).and_then(|s| s.parse::<u64>().ok()),
            args.get(4).and_then(|s| parse_size(s)),
        ) else {
            eprintln!("usage: cairn-gen tree DIR FILES SIZE[K|M|G] [SEED]");
            std::process::exit(2);
        };
        let seed: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(1);
        if let Err(e) = tree(std::path::Path::new(dir), files, size, seed) {
            eprintln!("cairn-gen tree: {e}");
            std::process::exit(1);
        }
        return;
    }
    let (Some(kind), Some(size)) = (args.get(1), args.get(2).and_then(|s| parse_size(s))) else {
        eprintln!("usage: cairn-gen sql|random SIZE[K|M|G] [SEED]");
        std::process::exit(2);
    };
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let block: u64 = 64 << 20;
    let mut written = 0u64;
    let mut part = 0u64;
    while written < size {
        let n = block.min(size - written);
        let len = usize::try_from(n).unwrap_or(usize::MAX);
        let mut data = match kind.as_str() {
            "sql" => cairn_e2e::sql_dump(len, seed.wrapping_mul(1_000_003).wrapping_add(part)),
            "random" => {
                cairn_e2e::random_bytes(len, seed.wrapping_mul(1_000_003).wrapping_add(part))
            }
            _ => {
                eprintln!("unknown kind {kind:?}: sql or random");
                std::process::exit(2);
            }
        };
        data.truncate(len);
        if out.write_all(&data).is_err() {
            return;
        }
        written += n;
        part += 1;
    }
    let _ = out.flush();
}
