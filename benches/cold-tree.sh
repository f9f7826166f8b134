#!/usr/bin/env bash
# File tree backups from a cold page cache (issue 25): what a DaemonSet's
# nightly run meets, long after the data was written.
#
#   bash benches/cold-tree.sh [REPS]      (default 3; needs root)
#
# Two trees from cairn-gen: `pvc`, 200,000 small files (200 MiB of data,
# about 850 MiB on disk), and `e2e`, the 20,000-file tree of
# benches/e2e.sh (500 MiB). Before every timed run the page cache is dropped
# (`sync; echo 3 > /proc/sys/vm/drop_caches`). Each repetition runs, in an
# order that rotates:
#
#   cairn          a first backup into a new local repository (defaults)
#   cairn-serial   the same with --read-concurrency 0 (one file at a time)
#   restic         a first backup into a new local repository
#   cat            find | xargs cat: one reader, the files in walk order
#   cat-8          find | xargs -P 8 cat: eight readers, the read limit
#
# then, on the repositories just written, an unchanged re-backup from a
# cold cache and one from a warm cache, for cairn, cairn-serial and restic.
# Then the first backup of `pvc` once with each read concurrency of
# SWEEP (default "1 2 4 8 16 32"), for the choice of the default. Last, a
# slow disk: benches/slowfs.py serves the `e2e` tree through FUSE, waiting
# SLOW_MS (default 1) milliseconds before answering each request, and
# the first backup of it is timed once with each read concurrency of
# SLOW_SWEEP (default "0 1 2 4 8 16 32 64"), and with restic.
# /usr/bin/time gives wall, CPU and peak RSS; rows go to
# benches/cold-tree-raw.tsv, medians and ratios to benches/cold-tree-report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
sweep=${SWEEP:-1 2 4 8 16 32}
slow_sweep=${SLOW_SWEEP:-0 1 2 4 8 16 32 64}
slow_ms=${SLOW_MS:-1}
[ -w /proc/sys/vm/drop_caches ] || { echo "cold-tree.sh drops the page cache: run it as root" >&2; exit 2; }
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v restic >/dev/null || need+=(restic)
command -v fusermount >/dev/null || need+=(fuse)
ldconfig -p | grep -q 'libfuse\.so\.2' || need+=(libfuse2)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "${CAIRN_BENCH_BIN:-}" ]; then
  bin=$CAIRN_BENCH_BIN
else
  cargo build --release -q -p cairn-agent -p cairn-e2e
  bin=$PWD/target/release
fi
python3 -c 'import fuse' 2>/dev/null || pip install -q fusepy
work=$(mktemp -d /var/tmp/cairn-cold.XXXXXX)
trap 'fusermount -u "$work/slow" 2>/dev/null || true; rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache
raw=benches/cold-tree-raw.tsv
printf 'tool\ttree\toperation\trep\twall_s\tuser_s\tsys_s\trss_kib\n' > "$raw"

echo "== generating the trees in $work"
"$bin/cairn-gen" tree "$work/pvc" 200000 200M 7
"$bin/cairn-gen" tree "$work/e2e" 20000 500M 5

cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# timed TOOL TREE OPERATION REP COMMAND...: one row of $raw.
timed() {
  local tool=$1 tree=$2 op=$3 rep=$4
  shift 4
  /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$@" > /dev/null
  read -r wall user sys rss < "$work/t"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$tree" "$op" "$rep" "$wall" "$user" "$sys" "$rss" >> "$raw"
  echo "$tool $tree $op #$rep: ${wall} s (user $user s, sys $sys s), $((rss / 1024)) MiB"
}

# first TOOL TREE REP: a first backup (or a read) from a cold cache.
first() {
  local tool=$1 tree=$2 rep=$3 dir=$work/$2
  rm -rf "$work/repo-$tool-$tree" "$work/cat-$tool-$tree"
  case $tool in
    cairn | cairn-serial) "$bin/cairn" --repo "$work/repo-$tool-$tree" init > /dev/null ;;
    restic) restic -q -r "$work/repo-$tool-$tree" init > /dev/null ;;
  esac
  cold
  case $tool in
    cairn) timed "$tool" "$tree" first "$rep" "$bin/cairn" --repo "$work/repo-$tool-$tree" --catalog "$work/cat-$tool-$tree" backup "$dir" ;;
    cairn-serial) timed "$tool" "$tree" first "$rep" "$bin/cairn" --repo "$work/repo-$tool-$tree" --catalog "$work/cat-$tool-$tree" backup --read-concurrency 0 "$dir" ;;
    restic) timed "$tool" "$tree" first "$rep" restic -q -r "$work/repo-$tool-$tree" backup "$dir" ;;
    cat) timed "$tool" "$tree" first "$rep" sh -c "find '$dir' -type f -print0 | xargs -0 cat" ;;
    cat-8) timed "$tool" "$tree" first "$rep" sh -c "find '$dir' -type f -print0 | xargs -0 -P 8 -n 100 cat" ;;
  esac
}

# again TOOL TREE REP OPERATION: an unchanged re-backup (cold or warm).
again() {
  local tool=$1 tree=$2 rep=$3 op=$4 dir=$work/$2
  [ "$op" = unchanged-cold ] && cold
  case $tool in
    cairn) timed "$tool" "$tree" "$op" "$rep" "$bin/cairn" --repo "$work/repo-$tool-$tree" --catalog "$work/cat-$tool-$tree" backup "$dir" ;;
    cairn-serial) timed "$tool" "$tree" "$op" "$rep" "$bin/cairn" --repo "$work/repo-$tool-$tree" --catalog "$work/cat-$tool-$tree" backup --read-concurrency 0 "$dir" ;;
    restic) timed "$tool" "$tree" "$op" "$rep" restic -q -r "$work/repo-$tool-$tree" backup "$dir" ;;
  esac
}

tools=(cairn cairn-serial restic cat cat-8)
for rep in $(seq 1 "$reps"); do
  for tree in pvc e2e; do
    n=${#tools[@]}
    for i in $(seq 0 $((n - 1))); do
      first "${tools[$(((i + rep) % n))]}" "$tree" "$rep"
    done
    for t in cairn cairn-serial restic; do
      again "$t" "$tree" "$rep" unchanged-cold
      again "$t" "$tree" "$rep" unchanged-warm
    done
  done
done
# sweep_one TREE DIR C: a first backup of DIR from a cold cache with C threads.
sweep_one() {
  rm -rf "$work/repo-sweep" "$work/cat-sweep"
  "$bin/cairn" --repo "$work/repo-sweep" init > /dev/null
  cold
  timed "cairn-$3" "$1" first 1 "$bin/cairn" --repo "$work/repo-sweep" --catalog "$work/cat-sweep" backup --read-concurrency "$3" "$2"
}
for c in $sweep; do sweep_one pvc "$work/pvc" "$c"; done

mkdir -p "$work/slow"
python3 benches/slowfs.py "$work/e2e" "$work/slow" "$slow_ms" &
for _ in $(seq 1 100); do mountpoint -q "$work/slow" && break; sleep 0.1; done
mountpoint -q "$work/slow" || { echo "benches/slowfs.py did not mount" >&2; exit 1; }
for c in $slow_sweep; do sweep_one slow "$work/slow" "$c"; done
rm -rf "$work/repo-sweep"
restic -q -r "$work/repo-sweep" init > /dev/null
cold
timed restic slow first 1 restic -q -r "$work/repo-sweep" backup "$work/slow"
fusermount -u "$work/slow"

python3 - "$raw" "$reps" "$(git rev-parse --short HEAD)" "$(nproc)" > benches/cold-tree-report.md <<'PY'
import csv, statistics, sys, datetime
raw, reps, rev, cores = sys.argv[1:]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
def med(tool, tree, op, col="wall_s"):
    v = [float(r[col]) for r in rows if (r["tool"], r["tree"], r["operation"]) == (tool, tree, op)]
    return statistics.median(v) if v else None
print(f"# File tree backups from a cold page cache, {datetime.date.today()}, cairn {rev}, {cores} cores")
print()
print(f"Medians of {reps} interleaved repetitions (`bash benches/cold-tree.sh`); the page cache")
print("is dropped before every run but the warm re-backup. Rows: `benches/cold-tree-raw.tsv`.")
for tree, what in (("pvc", "200,000 small files"), ("e2e", "20,000 files, 500 MiB")):
    print()
    print(f"## {tree}: {what}")
    print()
    print("| tool | first backup | user | sys | peak RSS | unchanged, cold | unchanged, warm |")
    print("|---|---|---|---|---|---|---|")
    for tool in ("cairn", "cairn-serial", "restic", "cat", "cat-8"):
        w = med(tool, tree, "first")
        if w is None:
            continue
        cells = [f"{w:.2f} s", f"{med(tool, tree, 'first', 'user_s'):.2f} s", f"{med(tool, tree, 'first', 'sys_s'):.2f} s"]
        cells.append(f"{med(tool, tree, 'first', 'rss_kib') / 1024:.0f} MiB" if tool.startswith(("cairn", "restic")) else "")
        for op in ("unchanged-cold", "unchanged-warm"):
            u = med(tool, tree, op)
            cells.append(f"{u:.2f} s" if u is not None else "")
        print(f"| {tool} | " + " | ".join(cells) + " |")
    c, r, s, l = (med(t, tree, "first") for t in ("cairn", "restic", "cairn-serial", "cat-8"))
    print()
    print(f"First backup: cairn is **{r / c:.2f}×** restic's speed and reads at **{100 * l / c:.0f} %** of the")
    print(f"8-reader `cat` limit; one file at a time it was {r / s:.2f}× restic. Unchanged re-backup:")
    print(f"{med('restic', tree, 'unchanged-cold') / med('cairn', tree, 'unchanged-cold'):.2f}× restic cold, "
          f"{med('restic', tree, 'unchanged-warm') / med('cairn', tree, 'unchanged-warm'):.2f}× warm "
          f"(one file at a time: {med('restic', tree, 'unchanged-cold') / med('cairn-serial', tree, 'unchanged-cold'):.2f}× and "
          f"{med('restic', tree, 'unchanged-warm') / med('cairn-serial', tree, 'unchanged-warm'):.2f}×).")
for tree, title in (("pvc", "first backup of `pvc` from a cold cache"),
                    ("slow", "first backup of `e2e` through `benches/slowfs.py`, a slow disk")):
    sweep = [r for r in rows if r["tree"] == tree and (r["tool"][6:].isdigit() or r["tool"] == "restic")
             and r["operation"] == "first" and r["rep"] == "1" and (tree == "slow" or r["tool"] != "restic")]
    if sweep:
        print()
        print(f"## Read concurrency: {title}, one run each")
        print()
        print("| `--read-concurrency` | wall | user | sys | peak RSS |")
        print("|---|---|---|---|---|")
        for r in sweep:
            name = r["tool"][6:] if r["tool"] != "restic" else "restic"
            print(f"| {name} | {float(r['wall_s']):.2f} s | {r['user_s']} s | {r['sys_s']} s | {int(r['rss_kib']) // 1024} MiB |")
PY
cat benches/cold-tree-report.md
