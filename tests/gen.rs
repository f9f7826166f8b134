//! `cairn-gen KIND SIZE [SEED]`: writes a deterministic dataset to stdout for
//! benchmarks and demos. KIND is `sql` (a pg_dump-like text dump with COPY
//! rows) or `random`. SIZE accepts K, M and G suffixes (binary).

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
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
