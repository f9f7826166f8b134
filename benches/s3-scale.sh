#!/usr/bin/env bash
# Scale against the S3 test server (SeaweedFS on loopback), issue 23:
#
# 1. A large stream to S3 and back: the SQL dump at 1 GiB and at SIZE
#    (default 20G), backed up from a file and restored into a pipe whose
#    reader compares it with the file. Peak RSS must not grow with the size.
# 2. The time to the first restored byte from a repository of SNAPSHOTS
#    (default 1000) snapshots, on a machine that never saw it (a new catalog
#    for cairn, a new cache for restic), and the whole restore after it;
#    restic's S3 backend on the same server with the same snapshots beside.
#
#   bash benches/s3-scale.sh [SIZE] [SNAPSHOTS]    (writes benches/s3-scale-report.md)
#
# SNAPSHOTS=0 measures the large stream alone.
#
# Needs SIZE of free space in /var/tmp for the input, and about a third of
# it more for the server's data.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-20G}
snapshots=${2:-1000}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic; }
if [ -n "${CAIRN_BENCH_BIN:-}" ]; then
  bin=$CAIRN_BENCH_BIN
else
  cargo build --release -q -p cairn-agent -p cairn-e2e
  bin=$PWD/target/release
fi
work=$(mktemp -d /var/tmp/cairn-s3-scale.XXXXXX)
source benches/s3-common.sh
start_s3 "$work" 28400 bench
port=$s3_port
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
report=$work/report

# 1. Large streams.
echo "| size | backup wall | backup peak RSS | restore wall | restore peak RSS |" > "$report.streams"
echo "|---|---|---|---|---|" >> "$report.streams"
for s in 1G "$size"; do
  echo "== $s stream"
  "$bin/cairn-gen" sql "$s" 9 > "$work/input"
  repo="s3:bench/stream-$s"
  "$bin/cairn" --repo "$repo" init > /dev/null
  sync
  /usr/bin/time -f "%e %M" -o "$work/b" "$bin/cairn" --repo "$repo" --catalog "$work/c-$s" backup --stdin --name dump < "$work/input" > /dev/null
  # Only cairn is timed: the reader's RSS and time are its own.
  /usr/bin/time -f "%e %M" -o "$work/r" "$bin/cairn" --repo "$repo" --catalog "$work/c-$s" restore latest --stdout \
    | "$bin/cairn-gen" check "$work/input"
  read -r bw brss < "$work/b"
  read -r rw rrss < "$work/r"
  echo "| $s | $bw s | $((brss / 1024)) MiB | $rw s | $((rrss / 1024)) MiB |" >> "$report.streams"
  rm -f "$work/input"
done

if [ "$snapshots" = 0 ]; then
  {
    echo "# Scale against S3 (SeaweedFS on loopback), $(date -u +%Y-%m-%d), cairn $(git rev-parse --short HEAD), $(nproc) cores"
    echo
    echo "## A large stream: the SQL dump to S3 and back (restored into a checking pipe)"
    echo
    cat "$report.streams"
  } | tee benches/s3-scale-report.md
  exit 0
fi

# 2. Many snapshots, then a machine that never saw them.
echo "== $snapshots snapshots each for cairn and restic"
"$bin/cairn" --repo s3:bench/many init > /dev/null
restic -q -r "s3:http://127.0.0.1:$port/bench/many-restic" init > /dev/null
one() { # N: the Nth day's small dump, into both repositories
  "$bin/cairn-gen" sql 256K "$1" > "$work/day-$1"
  # Two writers at a time into each repository, as two nodes would; each
  # keeps its own catalog or cache.
  flock "$work/lock-$(( $1 % 2 ))" "$bin/cairn" --repo s3:bench/many --catalog "$work/seed-$(( $1 % 2 )).catalog" backup --stdin --name dump < "$work/day-$1" > /dev/null
  RESTIC_CACHE_DIR=$work/seed-cache-$(( $1 % 2 )) flock "$work/lock-$(( $1 % 2 ))" restic -q -r "s3:http://127.0.0.1:$port/bench/many-restic" backup --stdin --stdin-filename dump < "$work/day-$1" > /dev/null
  rm -f "$work/day-$1"
}
export -f one
export bin work port
seq 1 "$snapshots" | xargs -P 2 -I{} bash -c 'one {}'
# What each tool's `latest` holds, read with the catalog or cache that
# saw it written; every timed restore below is compared with it.
"$bin/cairn" --repo s3:bench/many --catalog "$work/seed-0.catalog" restore latest --stdout > "$work/newest-cairn"
RESTIC_CACHE_DIR=$work/seed-cache-0 restic -q -r "s3:http://127.0.0.1:$port/bench/many-restic" dump latest dump > "$work/newest-restic"
count=$("$bin/cairn" --repo s3:bench/many --catalog "$work/seed-0.catalog" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')

# first_byte NAME COMMAND: seconds until the first byte reaches the reader,
# and until the command ends; the output is compared with the newest dump.
first_byte() {
  local name=$1 cmd=$2 start
  sync
  start=$(date +%s.%N)
  bash -c "$cmd" | python3 -c '
import sys, time
first = sys.stdin.buffer.read(1)
t = time.time()
rest = first + sys.stdin.buffer.read()
open(sys.argv[1], "wb").write(rest)
print(t)' "$work/got" > "$work/first"
  local end
  end=$(date +%s.%N)
  cmp -s "$work/got" "$work/newest-${name%-*}" || { echo "MISMATCH: $name" >&2; exit 1; }
  echo "$name $(echo "$(cat "$work/first") - $start" | bc) $(echo "$end - $start" | bc)" >> "$work/firsts"
}
for rep in 1 2 3; do
  first_byte cairn-new "'$bin/cairn' --repo s3:bench/many --catalog '$work/fresh-$rep.catalog' restore latest --stdout"
  first_byte cairn-known "'$bin/cairn' --repo s3:bench/many --catalog '$work/fresh-$rep.catalog' restore latest --stdout"
  first_byte restic-new "RESTIC_CACHE_DIR='$work/fresh-cache-$rep' restic -q -r 's3:http://127.0.0.1:$port/bench/many-restic' dump latest dump"
  first_byte restic-known "RESTIC_CACHE_DIR='$work/fresh-cache-$rep' restic -q -r 's3:http://127.0.0.1:$port/bench/many-restic' dump latest dump"
done

{
  echo "# Scale against S3 (SeaweedFS on loopback), $(date -u +%Y-%m-%d), cairn $(git rev-parse --short HEAD), $(nproc) cores"
  echo
  echo "## A large stream: the SQL dump to S3 and back (restored into a checking pipe)"
  echo
  cat "$report.streams"
  echo
  echo "## The newest of $count snapshots, on a machine that never saw the repository (medians of 3)"
  echo
  echo "A new catalog (cairn) or cache (restic) each time, then the same again with it."
  echo
  echo "| tool | first byte, new machine | whole restore, new machine | first byte, catalog or cache kept | whole restore, kept |"
  echo "|---|---|---|---|---|"
  for t in cairn restic; do
    m() { awk -v k="$1" -v c="$2" '$1==k {print $c}' "$work/firsts" | median; }
    printf '| %s | %.2f s | %.2f s | %.2f s | %.2f s |\n' "$t" "$(m "$t-new" 2)" "$(m "$t-new" 3)" "$(m "$t-known" 2)" "$(m "$t-known" 3)"
  done
  echo
  echo "restic: $(restic version | head -1)"
} | tee benches/s3-scale-report.md
