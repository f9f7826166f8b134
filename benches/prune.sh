#!/usr/bin/env bash
# Retention next to the peers (issue 18): DAYS daily backups of a changing
# SIZE dump, then forget all but the newest KEEP and prune, then
# `check --read-data` and a restore of the newest; every tool in the same
# run on the same inputs.
#
#   bash benches/prune.sh [DAYS] [SIZE] [KEEP]      defaults: 30 1G 7
#   TOOLS="cairn restic" bash benches/prune.sh
#
# The dump is the SQL dump of benches/e2e.sh; each day applies that
# script's `edited` pattern to the day before (1,000 scattered edits of
# 10 KiB), so the dump keeps changing as a live database's does. The
# backups all run within minutes, so the rule is `--keep-last KEEP` for
# every tool (which on daily backups keeps what `--keep-daily KEEP` keeps).
# Each tool uses its defaults (restic: repack packs more than 5 % unused;
# cairn: the same; rustic: 5 %, with --instant-delete, as its default
# keeps unused packs 23 h before deleting them). The page cache is dropped
# before each timed step when the machine allows it, so every tool reads
# cold. Measured by /usr/bin/time (wall, peak RSS); bytes freed
# from the repository's size before and after; the bytes still unused after
# the prune, as each tool's own dry-run prune counts them (the fair measure
# of space: the tools start from repositories of different sizes, since
# they chunk and compress differently); cairn also reports the storage
# requests its prune made. Raw rows go to benches/prune-raw.tsv,
# the report to benches/prune-report.md.
#
# Peers: restic from Debian's packages (installed when missing); rustic
# when `rustic` is on PATH (`cargo install rustic-rs`).
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-30}
size=${2:-1G}
keep=${3:-7}
tools=${TOOLS:-cairn restic rustic}

[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq --no-install-recommends time >/dev/null; }
case " $tools " in *" restic "*) command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends restic >/dev/null; } ;; esac
active=()
notes=()
for t in $tools; do
  if [ "$t" = cairn ] || command -v "$t" >/dev/null; then
    active+=("$t")
  else
    notes+=("$t is not installed here, so it was not measured (\`cargo install rustic-rs\` builds it from crates.io).")
  fi
done

cargo build --release -q -p cairn-agent -p cairn-e2e
bin=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-prune-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench RUSTIC_PASSWORD=bench
export RESTIC_CACHE_DIR=$work/restic-cache CAIRN_CATALOG=$work/catalog
raw=benches/prune-raw.tsv
printf 'tool\tstep\twall_s\trss_kib\trepo_before\trepo_after\trequests\tunused_after\n' > "$raw"

repo_of() { echo "$work/repo-$1"; }
size_of() { du -sb "$1" | cut -f1; }

# unused_of TOOL : the bytes the tool's own dry-run prune counts as unused
# (in packs nothing uses and in partly used packs), after its prune.
unused_of() {
  local r
  r=$(repo_of "$1")
  case $1 in
    cairn) "$bin/cairn" --repo "$r" prune -q -n --json | python3 -c 'import json,sys
r=json.load(sys.stdin); print(r["condemned_bytes"] + r["partly_unused_bytes"])' ;;
    # restic and rustic print "unused size after prune: 1.234 MiB (…)".
    restic|rustic) "$1" -r "$r" prune -n 2>&1 | python3 -c 'import re,sys
units={"B":1,"Bytes":1,"KiB":2**10,"MiB":2**20,"GiB":2**30,"TiB":2**40,"kB":1e3,"MB":1e6,"GB":1e9}
for line in sys.stdin:
    m=re.search(r"unused size after prune:\s*([0-9.]+)\s*(\w+)", line)
    if m: print(int(float(m[1])*units[m[2]])); break
else: print("")' ;;
  esac
}

# timed TOOL STEP 'COMMAND' : one row; the command's stdout goes to $work/out
timed() {
  local tool=$1 step=$2 cmd=$3 repo before after wall rss requests="" unused=""
  repo=$(repo_of "$tool")
  sync
  # Every tool starts cold, as it would against object storage: the run
  # writes far more than the page cache holds, so otherwise whichever
  # tool's packs happen to be cached wins.
  [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches
  before=$(size_of "$repo")
  /usr/bin/time -f '%e %M' -o "$work/time" bash -c "$cmd" > "$work/out"
  read -r wall rss < <(tail -n 1 "$work/time")
  after=$(size_of "$repo")
  if [ "$tool" = cairn ] && [ "$step" = forget-prune ]; then
    # forget --json --prune prints two documents: forget's, then prune's.
    requests=$(python3 -c 'import json,sys
text=open(sys.argv[1]).read(); dec=json.JSONDecoder(); i=0; last=None
while i < len(text):
    while i < len(text) and text[i].isspace(): i += 1
    if i >= len(text): break
    last, i = dec.raw_decode(text, i)
print(last["requests"])' "$work/out")
  fi
  [ "$step" = forget-prune ] && unused=$(unused_of "$tool")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$wall" "$rss" "$before" "$after" "$requests" "$unused" >> "$raw"
  printf '  %-7s %-13s %7ss %6s MiB  %s -> %s bytes\n' "$tool" "$step" "$wall" $((rss / 1024)) "$before" "$after"
}

for t in "${active[@]}"; do
  r=$(repo_of "$t")
  case $t in
    cairn) "$bin/cairn" --repo "$r" init -q > /dev/null 2>&1 ;;
    restic) restic -r "$r" init -q > /dev/null ;;
    rustic) rustic -r "$r" init > /dev/null 2>&1 ;;
  esac
done

echo "generating a $size dump"
"$bin/cairn-gen" sql "$size" 7 > "$work/dump"
for day in $(seq 1 "$days"); do
  if [ "$day" -gt 1 ]; then
    "$bin/cairn-gen" edit 1000 10K "$day" < "$work/dump" > "$work/dump.new"
    mv "$work/dump.new" "$work/dump"
  fi
  for t in "${active[@]}"; do
    r=$(repo_of "$t")
    case $t in
      cairn) "$bin/cairn" --repo "$r" backup -q --stdin --name dump < "$work/dump" > /dev/null ;;
      restic) restic -r "$r" backup -q --stdin --stdin-filename dump < "$work/dump" > /dev/null ;;
      rustic) rustic -r "$r" backup --force --stdin-filename dump - < "$work/dump" > /dev/null 2>&1 ;;
    esac
  done
  echo "  day $day backed up"
done

for t in "${active[@]}"; do
  r=$(repo_of "$t")
  case $t in
    cairn) timed cairn forget-prune "$bin/cairn --repo $r forget -q --keep-last $keep --prune --json" ;;
    restic) timed restic forget-prune "restic -r $r forget -q --keep-last $keep --prune > /dev/null" ;;
    # rustic defers deleting for 23 h by default (--keep-delete); deleting
    # at once is what the other tools do.
    rustic) timed rustic forget-prune "rustic -r $r forget --keep-last $keep --prune --instant-delete > /dev/null 2>&1" ;;
  esac
done
for t in "${active[@]}"; do
  r=$(repo_of "$t")
  case $t in
    cairn) timed cairn check-read-data "$bin/cairn --repo $r check -q --read-data > /dev/null" ;;
    restic) timed restic check-read-data "restic -r $r check -q --read-data > /dev/null" ;;
    rustic) timed rustic check-read-data "rustic -r $r check --read-data > /dev/null 2>&1" ;;
  esac
  case $t in
    cairn) timed cairn restore "$bin/cairn --repo $r restore -q latest --stdout | cmp - $work/dump" ;;
    restic) timed restic restore "restic -r $r dump -q latest dump | cmp - $work/dump" ;;
    rustic) timed rustic restore "rustic -r $r dump latest:dump 2> /dev/null | cmp - $work/dump" ;;
  esac
done

python3 - "$raw" "$days" "$size" "$keep" "${notes[@]+"${notes[@]}"}" > benches/prune-report.md <<'EOF'
import csv, sys
raw, days, size, keep, *notes = sys.argv[1:]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
get = lambda t, s: next((r for r in rows if r["tool"] == t and r["step"] == s), None)
tools = sorted({r["tool"] for r in rows}, key=lambda t: (t != "cairn", t))
mib = lambda b: f"{int(b) / 2**20:,.0f} MiB"
print(f"# Retention: forget + prune, check --read-data ({days} daily backups of a {size} dump, keep {keep})\n")
print("Generated by `benches/prune.sh`; raw rows in `benches/prune-raw.tsv`.\n")
print("| tool | forget + prune | peak RSS | repository before | after | freed | unused after | check --read-data | restore of the newest |")
print("|---|---|---|---|---|---|---|---|---|")
share = lambda r: int(r["unused_after"]) / max(int(r["repo_after"]), 1) if r["unused_after"] else None
pct = lambda r: f"{mib(r['unused_after'])} ({100 * share(r):.1f} %)" if share(r) is not None else "?"
for t in tools:
    p, c, r = get(t, "forget-prune"), get(t, "check-read-data"), get(t, "restore")
    freed = int(p["repo_before"]) - int(p["repo_after"])
    print(f"| {t} | {p['wall_s']} s{' (' + p['requests'] + ' requests)' if p['requests'] else ''} | {int(p['rss_kib']) // 1024} MiB | {mib(p['repo_before'])} | {mib(p['repo_after'])} | {mib(freed)} | {pct(p)} | {c['wall_s']} s ({int(c['rss_kib']) // 1024} MiB) | {r['wall_s']} s |")
c = get("cairn", "forget-prune")
if c:
    print()
    for t in tools:
        if t == "cairn":
            continue
        p = get(t, "forget-prune")
        cf = int(c["repo_before"]) - int(c["repo_after"])
        pf = int(p["repo_before"]) - int(p["repo_after"])
        print(f"- cairn against {t}: forget + prune {float(p['wall_s']) / max(float(c['wall_s']), 1e-9):.2f}× as fast, "
              f"peak RSS {int(c['rss_kib']) / max(int(p['rss_kib']), 1):.2f}× of {t}'s, "
              f"space freed {cf / max(pf, 1):.3f}× of {t}'s, repository after {int(c['repo_after']) / max(int(p['repo_after']), 1):.3f}× of {t}'s, "
              f"unused share left {'?' if share(c) is None or share(p) is None else f'{100 * share(c):.1f} % against {100 * share(p):.1f} %'}.")
    cc, cr = get("cairn", "check-read-data"), get("cairn", "restore")
    print(f"- cairn's check --read-data took {float(cc['wall_s']) / max(float(cr['wall_s']), 1e-9):.2f}× the time of its restore of the newest snapshot (it reads every pack; the restore reads one snapshot's).")
for n in notes:
    print(f"\n{n}")
EOF
cat benches/prune-report.md
