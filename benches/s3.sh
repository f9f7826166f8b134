#!/usr/bin/env bash
# Backup and restore of 1 GiB against the local S3 test server (SeaweedFS),
# Cairn next to restic's S3 backend (Debian's package), same server, same run,
# alternating, REPS repetitions; medians of wall time and peak RSS.
#
#   bash benches/s3.sh [SIZE] [REPS]     (defaults 1G, 3; writes benches/s3-report.md)
#
# Every restore is compared with the input. Loopback S3 is slow (about
# 80 MiB/s sequential PUT on this machine: ../shared/S3-TEST-SERVER.md), so
# these figures measure the clients against the same server, not S3 itself.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1G}
reps=${2:-3}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic; }
cargo build --release -q -p cairn-agent -p cairn-e2e
bin=$PWD/target/release
work=$(mktemp -d)
source benches/s3-common.sh
start_s3 "$work" 28000 bench
port=$s3_port
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
"$bin/cairn-gen" sql "$size" 9 > "$work/input"

for i in $(seq 1 "$reps"); do
  "$bin/cairn" --repo "s3:bench/cairn-$i" init > /dev/null
  timed cairn-backup "$bin/cairn" --repo "s3:bench/cairn-$i" backup --stdin --name dump < "$work/input" > /dev/null
  timed cairn-restore sh -c "'$bin/cairn' --repo 's3:bench/cairn-$i' restore latest --stdout > '$work/out'"
  cmp "$work/input" "$work/out"
  restic -q -r "s3:http://127.0.0.1:$port/bench/restic-$i" init > /dev/null
  timed restic-backup restic -q -r "s3:http://127.0.0.1:$port/bench/restic-$i" backup --stdin --stdin-filename dump < "$work/input"
  timed restic-restore sh -c "restic -q -r 's3:http://127.0.0.1:$port/bench/restic-$i' dump latest dump > '$work/out'"
  cmp "$work/input" "$work/out"
done
bytes=$(stat -c %s "$work/input")
{
  echo "# 1 GiB SQL dump to and from S3 (SeaweedFS on loopback), $(date -u +%Y-%m-%d), $(nproc) cores, $reps runs, medians"
  echo
  echo "| tool | operation | wall | throughput | peak RSS |"
  echo "|---|---|---|---|---|"
  for t in cairn restic; do
    for op in backup restore; do
      w=$(awk -v k="$t-$op" '$1==k {print $2}' "$work/results" | median)
      r=$(awk -v k="$t-$op" '$1==k {print $3}' "$work/results" | median)
      tp=$(awk -v b="$bytes" -v w="$w" 'BEGIN {printf "%.0f", b / 1048576 / w}')
      printf '| %s | %s | %.2f s | %s MiB/s | %d MiB |\n' "$t" "$op" "$w" "$tp" $((r / 1024))
    done
  done
  echo
  echo "restic: $(restic version | head -1)"
} | tee benches/s3-report.md
