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
weed=$(bash scripts/install-seaweedfs.sh)
cargo build --release -q -p cairn-agent -p cairn-e2e
bin=$PWD/target/release
work=$(mktemp -d)
port=28006
cat > "$work/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"bench-ak","secretKey":"bench-sk"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
mkdir -p "$work/data" "$work/logs"
"$weed" -logdir="$work/logs" mini -dir="$work/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port=28000 -master.port.grpc=28001 -volume.port=28002 -volume.port.grpc=28003 \
  -filer.port=28004 -filer.port.grpc=28005 -s3.port=$port -s3.port.grpc=28007 -admin.port=28008 -admin.port.grpc=28009 \
  -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
  -s3.config="$work/s3.json" -bucket=bench -s3.localSocket="$work/s3.sock" -filer.localSocket="$work/filer.sock" > "$work/weed.out" 2>&1 &
weed_pid=$!
trap 'kill $weed_pid 2>/dev/null; wait $weed_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 403 ] &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:28004/buckets/bench/")" = 200 ] && break
  sleep 0.2
done
export AWS_ACCESS_KEY_ID=bench-ak AWS_SECRET_ACCESS_KEY=bench-sk AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
"$bin/cairn-gen" sql "$size" 9 > "$work/input"

timed() { # label, then the command; appends "label wall rss_kib"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/t" "$@"
  echo "$label $(cat "$work/t")" >> "$work/results"
}
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
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
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
