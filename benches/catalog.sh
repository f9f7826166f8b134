#!/usr/bin/env bash
# The catalog's figures (issue 5), each beside a baseline or a peer measured
# in the same run:
#   1. a new 1 GiB stream backed up into repositories whose index holds 0,
#      1 million and 5 million chunks (synthetic index files, cairn-synth-index):
#      peak RSS and throughput; also the one-time catalog sync;
#   2. a tree of 20,000 files / 2 GiB: first backup, then unchanged
#      re-backup (time and bytes read), cairn and restic;
#   3. a repository with 100 snapshots restored on a machine that never saw
#      it (fresh catalog / fresh restic cache): time to the first restored
#      byte and to the last.
# Every restore is checked against its input.
#
#   bash benches/catalog.sh            (writes benches/catalog-report.md)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic; }
cargo build --release -q -p cairn-agent -p cairn-e2e
bin=$PWD/target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
unset CAIRN_REPOSITORY CAIRN_CATALOG

# timed OUT_PREFIX command...: runs it, sets $wall (s) and $rss (MiB).
timed() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@"
  read -r wall rss_kb < "$work/time"
  rss=$((rss_kb / 1024))
}

# First byte and total time of a restore to stdout; checks its SHA-256.
ttfb() { # expected-sha256 command...
  python3 - "$@" <<'EOF'
import hashlib, subprocess, sys, time
want, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
h = hashlib.sha256()
first = p.stdout.read(1)
t1 = time.monotonic() - t0
h.update(first)
while True:
    b = p.stdout.read(1 << 20)
    if not b:
        break
    h.update(b)
p.wait()
t2 = time.monotonic() - t0
if p.returncode != 0 or h.hexdigest() != want:
    sys.exit(f"restore by {cmd[0]} failed or restored wrong bytes")
print(f"{t1:.2f} {t2:.2f}")
EOF
}

report=benches/catalog-report.md
{
echo "# Catalog benchmarks ($(date -u +%Y-%m-%d), $(nproc) cores, $(restic version | awk '{print $1, $2}'))"
echo
echo "## 1. A new 1 GiB stream into a large repository index"
echo
echo "| index chunks | catalog sync (once per machine) | sync peak RSS | catalog size | backup of a new 1 GiB stream | throughput | backup peak RSS |"
echo "|---|---|---|---|---|---|---|"
want=$("$bin/cairn-gen" random 1G 7 | sha256sum | cut -d' ' -f1)
for n in 0 1000000 5000000; do
  repo=$work/big-$n cat=$work/big-$n.catalog
  "$bin/cairn" --repo "$repo" init > /dev/null
  [ "$n" = 0 ] || "$bin/cairn-synth-index" "$repo" "$n" 2> /dev/null
  timed "$bin/cairn" --repo "$repo" --catalog "$cat" catalog info > /dev/null 2>&1
  sync_wall=$wall sync_rss=$rss
  size=$(du -m "$cat" | cut -f1)
  "$bin/cairn-gen" random 1G 7 > "$work/stream"
  timed "$bin/cairn" --repo "$repo" --catalog "$cat" backup --stdin --name s < "$work/stream" > /dev/null
  rm "$work/stream"
  got=$("$bin/cairn" --repo "$repo" --catalog "$cat" restore latest --stdout | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "restore differs at $n chunks" >&2; exit 1; }
  tput=$(python3 -c "print(f'{1024/$wall:.0f} MiB/s')")
  echo "| $n | ${sync_wall} s | ${sync_rss} MiB | ${size} MiB | ${wall} s | $tput | ${rss} MiB |"
  rm -rf "$repo" "$cat"*
done
echo

echo "## 2. A tree of 20,000 files / 2 GiB"
echo
tree=$work/tree
"$bin/cairn-gen" tree "$tree" 20000 2G 3
total=$(du -sb "$tree" | cut -f1)
echo "| tool | first backup | unchanged re-backup | speed-up | bytes read again |"
echo "|---|---|---|---|---|"
"$bin/cairn" --repo "$work/tc" init > /dev/null
timed "$bin/cairn" --repo "$work/tc" --catalog "$work/tc.catalog" backup --json "$tree" > "$work/j1" 2> /dev/null
first=$wall
timed "$bin/cairn" --repo "$work/tc" --catalog "$work/tc.catalog" backup --json "$tree" > "$work/j2" 2> /dev/null
again=$wall
read_again=$(python3 -c "import json; print(json.load(open('$work/j2'))['bytes_read'])")
pct=$(python3 -c "print(f'{100*$read_again/$total:.3f} %')")
echo "| cairn | ${first} s | ${again} s | $(python3 -c "print(f'{$first/$again:.1f}x')") | $read_again of $total bytes ($pct) |"
restic --repo "$work/tr" init -q > /dev/null
timed restic --repo "$work/tr" backup -q "$tree"
rfirst=$wall
timed restic --repo "$work/tr" backup -q "$tree"
ragain=$wall
echo "| restic | ${rfirst} s | ${ragain} s | $(python3 -c "print(f'{$rfirst/$ragain:.1f}x')") | (not reported) |"
"$bin/cairn" --repo "$work/tc" --catalog "$work/tc.catalog" restore latest --target "$work/out" > /dev/null 2>&1
diff -r "$tree" "$work/out$tree" > /dev/null || { echo "tree restore differs" >&2; exit 1; }
echo
echo "cairn vs restic: first backup $(python3 -c "print(f'{$rfirst/$first:.1f}x')") faster, unchanged re-backup $(python3 -c "print(f'{$ragain/$again:.1f}x')") faster."
rm -rf "$tree" "$work/out" "$work/tc" "$work/tr" "$work"/tc.catalog*
echo

echo "## 3. Restoring on a machine that never saw the repository (100 snapshots)"
echo
"$bin/cairn" --repo "$work/lc" init > /dev/null
restic --repo "$work/lr" init -q > /dev/null
"$bin/cairn-gen" sql 8M 5 > "$work/base"
for day in $(seq 1 100); do
  { cat "$work/base"; echo "-- day $day"; } > "$work/day.sql"
  "$bin/cairn" --repo "$work/lc" --catalog "$work/node.catalog" backup --stdin --name dump.sql < "$work/day.sql" > /dev/null
  restic --repo "$work/lr" --cache-dir "$work/node-rc" backup -q --stdin --stdin-filename dump.sql < "$work/day.sql" > /dev/null
done
want=$(sha256sum < "$work/day.sql" | cut -d' ' -f1)
echo "| tool | first restored byte | whole restore (8 MiB) |"
echo "|---|---|---|"
read -r c1 c2 < <(ttfb "$want" "$bin/cairn" --repo "$work/lc" --catalog "$work/laptop.catalog" restore latest --stdout)
echo "| cairn (empty catalog) | ${c1} s | ${c2} s |"
read -r r1 r2 < <(ttfb "$want" restic --repo "$work/lr" --cache-dir "$work/laptop-rc" dump latest /dump.sql)
echo "| restic (empty cache) | ${r1} s | ${r2} s |"
read -r c3 c4 < <(ttfb "$want" "$bin/cairn" --repo "$work/lc" --catalog "$work/laptop.catalog" restore latest --stdout)
echo "| cairn (second restore, catalog synced) | ${c3} s | ${c4} s |"
read -r r3 r4 < <(ttfb "$want" restic --repo "$work/lr" --cache-dir "$work/laptop-rc" dump latest /dump.sql)
echo "| restic (second restore, cache filled) | ${r3} s | ${r4} s |"
echo
echo "First byte on a fresh machine: cairn $(python3 -c "print(f'{$r1/$c1:.1f}x')") sooner than restic."
} | tee "$report"
