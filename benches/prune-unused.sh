#!/usr/bin/env bash
# The default of `prune --max-unused`, by measurement (issue 18): the
# repository of benches/prune.sh (DAYS daily backups of a changing SIZE
# dump, all but the newest KEEP forgotten) is pruned once per threshold,
# each time from the same copy: wall time, peak RSS, bytes copied by the
# repack, repository size after, and the bytes still unused after (as the
# dry-run prune counts them).
#
#   bash benches/prune-unused.sh [DAYS] [SIZE] [KEEP]   defaults: 30 1G 7
#   PERCENTS="0 5 10 25 50 100" bash benches/prune-unused.sh
# Appends a section to benches/prune-report.md; raw rows go to
# benches/prune-unused-raw.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-30}
size=${2:-1G}
keep=${3:-7}
percents=${PERCENTS:-0 2 5 10 25 50 100}
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq --no-install-recommends time >/dev/null; }
cargo build --release -q -p cairn-agent -p cairn-e2e
bin=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-prune-unused.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench
base=$work/base
"$bin/cairn" --repo "$base" init -q > /dev/null 2>&1
echo "generating a $size dump and $days daily backups"
"$bin/cairn-gen" sql "$size" 7 > "$work/dump"
for day in $(seq 1 "$days"); do
  if [ "$day" -gt 1 ]; then
    "$bin/cairn-gen" edit 1000 10K "$day" < "$work/dump" > "$work/dump.new"
    mv "$work/dump.new" "$work/dump"
  fi
  CAIRN_CATALOG=$work/catalog-base "$bin/cairn" --repo "$base" backup -q --stdin --name dump < "$work/dump" > /dev/null
done
CAIRN_CATALOG=$work/catalog-base "$bin/cairn" --repo "$base" forget -q --keep-last "$keep" > /dev/null
raw=benches/prune-unused-raw.tsv
printf 'max_unused\twall_s\trss_kib\trepacked_bytes\trepo_after\tunused_after\n' > "$raw"
for p in $percents; do
  r=$work/repo-$p
  rm -rf "$r" "$work"/catalog-run*
  cp -a "$base" "$r"
  sync
  export CAIRN_CATALOG=$work/catalog-run
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin/cairn" --repo "$r" prune -q --json --max-unused "$p" > "$work/out"
  read -r wall rss < <(tail -n 1 "$work/time")
  repacked=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["repacked_bytes"])' "$work/out")
  after=$(du -sb "$r" | cut -f1)
  unused=$("$bin/cairn" --repo "$r" prune -q -n --json | python3 -c 'import json,sys
r=json.load(sys.stdin); print(r["condemned_bytes"] + r["partly_unused_bytes"])')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$wall" "$rss" "$repacked" "$after" "$unused" >> "$raw"
  echo "  --max-unused $p: ${wall}s $((rss / 1024)) MiB, repacked $repacked, after $after, unused $unused"
  rm -rf "$r"
done
python3 - "$raw" "$days" "$size" "$keep" >> benches/prune-report.md <<'EOF'
import csv, sys
raw, days, size, keep = sys.argv[1:]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
mib = lambda b: f"{int(b) / 2**20:,.0f} MiB"
print(f"\n## The `--max-unused` default (`benches/prune-unused.sh`, {days} daily backups of a {size} dump, keep {keep})\n")
print("The same repository pruned from the same copy with each threshold.\n")
print("| --max-unused | prune | peak RSS | live bytes copied | repository after | unused after |")
print("|---|---|---|---|---|---|")
for r in rows:
    share = int(r["unused_after"]) / max(int(r["repo_after"]), 1)
    print(f"| {r['max_unused']} % | {r['wall_s']} s | {int(r['rss_kib']) // 1024} MiB | {mib(r['repacked_bytes'])} | {mib(r['repo_after'])} | {mib(r['unused_after'])} ({100 * share:.1f} %) |")
EOF
echo "appended to benches/prune-report.md"
