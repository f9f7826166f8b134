#!/usr/bin/env bash
# Peak memory and throughput of a 2 GiB stream backup (issue 2, item 6),
# with restic (Debian's package) measured on the same stream in the same run.
#
#   bash benches/rss.sh [SIZE]        (default 2G; writes benches/rss-report.md)
#
# Streams are generated on the fly (cairn-gen), never stored, so the disk
# holds only the repositories. Each tool's figures come from /usr/bin/time -v.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2G}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
have_restic=1
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic || have_restic=0; }
cargo build --release -q -p cairn-agent -p cairn-e2e
bin=target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench

measure() { # name, kind, command...
  local name=$1 kind=$2; shift 2
  "$bin/cairn-gen" "$kind" "$size" 7 | /usr/bin/time -v "$@" > "$work/out" 2> "$work/time"
  local rss wall
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
  printf '| %s | %s | %s | %d MiB | %s |\n' "$name" "$kind" "$size" $((rss / 1024)) "$wall"
}

{
  echo "# Peak RSS of a $size stream backup ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "| tool | data | size | peak RSS | wall time (m:ss) |"
  echo "|---|---|---|---|---|"
  for kind in sql random; do
    "$bin/cairn" --repo "$work/cairn-$kind" init > /dev/null
    measure cairn "$kind" "$bin/cairn" --repo "$work/cairn-$kind" backup --stdin --name dump
    if [ "$have_restic" = 1 ]; then
      restic --repo "$work/restic-$kind" init -q > /dev/null
      measure "restic $(restic version | awk '{print $2}')" "$kind" restic --repo "$work/restic-$kind" backup -q --stdin --stdin-filename dump
    fi
  done
} | tee benches/rss-report.md
