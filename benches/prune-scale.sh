#!/usr/bin/env bash
# Prune and check over a large index (issue 18): a repository with one real
# snapshot and CHUNKS synthetic index entries (cairn-synth-index: committed
# sessions whose packs do not exist, used by no snapshot), then
# `prune --dry-run`, `check` (structure) and `prune`: wall time and peak
# RSS of each, for 1 million and 5 million chunks, so growth shows.
#
#   bash benches/prune-scale.sh [CHUNKS...]     default: 1000000 5000000
# Appends to benches/prune-report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq --no-install-recommends time >/dev/null; }
cargo build --release -q -p cairn-agent -p cairn-e2e
bin=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-prune-scale.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench
rows=()
for chunks in "${@:-1000000 5000000}"; do
  r=$work/repo-$chunks
  export CAIRN_CATALOG=$work/catalog-$chunks
  "$bin/cairn" --repo "$r" init -q > /dev/null 2>&1
  head -c 64M /dev/urandom | "$bin/cairn" --repo "$r" backup -q --stdin --name real > /dev/null
  "$bin/cairn-synth-index" "$r" "$chunks" 2> /dev/null
  for step in "prune --dry-run" "check" "prune"; do
    /usr/bin/time -f '%e %M' -o "$work/time" "$bin/cairn" --repo "$r" $step > /dev/null 2>&1 || true
    read -r wall rss < <(tail -n 1 "$work/time")
    echo "  $chunks chunks: $step ${wall}s $((rss / 1024)) MiB"
    rows+=("| $chunks | \`$step\` | $wall s | $((rss / 1024)) MiB |")
  done
  rm -rf "$r" "$CAIRN_CATALOG"*
done
{
  echo
  echo "## Prune and check over a large index (\`benches/prune-scale.sh\`)"
  echo
  echo "One real snapshot, plus synthetic index entries in packs that do not exist and that no snapshot uses (so \`check\` reports them all missing, and \`prune\` condemns and deletes them all: the heaviest case for both)."
  echo
  echo "| index entries | command | wall | peak RSS |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >> benches/prune-report.md
