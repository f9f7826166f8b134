#!/usr/bin/env bash
# Restore speed next to the peers (issue 23): trees restored into a fresh
# file system, as a PVC is, and a dump restored into a pipe, as
# `| pg_restore` reads it.
#
#   bash benches/restore.sh [REPS]              default 3 repetitions
#   TOOLS="cairn rustic" bash benches/restore.sh 1
#   CASES="tree pvc piped" bash benches/restore.sh
#
# Datasets (cairn-gen, deterministic):
#   tree   the 20,000 files / 500 MiB of benches/e2e.sh
#   pvc    200,000 small files (600 MiB, log-uniform sizes, 100 a
#          directory) plus three large ones: a 256 MiB SQL dump, 128 MiB and
#          64 MiB of random bytes
#   piped  the 1 GiB SQL dump of benches/e2e.sh, restored into a pipe whose
#          reader checks it
# Every tool backs each dataset up once, with its defaults and encryption
# on, into a local repository; the restores then alternate between the
# tools, the order rotating each repetition, each timed by /usr/bin/time
# with its repository and caches read into the page cache first.
#
# Trees go into a new ext4 file system for every restore (a sparse image
# on a loop device, made with mkfs.ext4's defaults: a journal, as on a
# PVC), so no restore pays for the one before: this VM's root file system
# has no journal, and ext4 without one skips every inode freed in the last
# minute when it allocates (recently_deleted), which made a restore right
# after `rm -rf` of the previous one up to 5x slower, whichever tool it was.
# Without loop devices (not root, or none), trees go into the work
# directory, and the report says so. Each restored tree is compared with
# its source (diff -r), untimed. Nothing is synced by any tool (strace:
# restic 0.14 and rustic 0.11.4 call no fsync on restored files, nor does
# cairn); each restore is followed by `sync` before the next is timed.
#
# Raw rows go to benches/restore-raw.tsv, medians and ratios to
# benches/restore-report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
cases=${CASES:-tree pvc piped}
tools=${TOOLS:-cairn restic rustic borg}

need=()
[ -x /usr/bin/time ] || need+=(time)
case " $tools " in *" restic "*) command -v restic >/dev/null || need+=(restic) ;; esac
case " $tools " in *" borg "*) command -v borg >/dev/null || need+=(borgbackup) ;; esac
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
active=()
for t in $tools; do
  if [ "$t" = cairn ] || command -v "$t" >/dev/null; then active+=("$t"); else
    echo "$t is not installed: not measured" >&2
  fi
done

if [ -n "${CAIRN_BENCH_BIN:-}" ]; then
  bin=$CAIRN_BENCH_BIN
else
  cargo build --release -q -p cairn-agent -p cairn-e2e
  bin=$PWD/target/release
fi
work=${CAIRN_BENCH_DIR:-$(mktemp -d /var/tmp/cairn-restore.XXXXXX)}
mnt=$work/mnt
mkdir -p "$work" "$mnt"
cleanup() { mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench RUSTIC_PASSWORD=bench
export BORG_BASE_DIR=$work/borg-home RESTIC_CACHE_DIR=$work/restic-cache
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# A fresh file system for each tree restore, when loop devices work here.
loop=no
if [ "$(id -u)" = 0 ] && truncate -s 12G "$work/fs.img" && mkfs.ext4 -q -F "$work/fs.img" \
  && mount -o loop "$work/fs.img" "$mnt" 2>/dev/null; then
  umount "$mnt"
  loop=yes
fi
fresh_target() {
  if [ $loop = yes ]; then
    mountpoint -q "$mnt" && umount "$mnt"
    mkfs.ext4 -q -F "$work/fs.img" && mount -o loop "$work/fs.img" "$mnt"
  else
    rm -rf "$mnt" && mkdir -p "$mnt"
  fi
  sync
}

echo "== generating datasets in $work"
[[ " $cases " == *" tree "* ]] && "$bin/cairn-gen" tree "$work/tree" 20000 500M 5
if [[ " $cases " == *" pvc "* ]]; then
  "$bin/cairn-gen" tree "$work/pvc" 200000 600M 11
  "$bin/cairn-gen" sql 256M 12 > "$work/pvc/large-dump.sql"
  "$bin/cairn-gen" random 128M 13 > "$work/pvc/large.bin"
  "$bin/cairn-gen" random 64M 14 > "$work/pvc/d000/wal.bin"
fi
[[ " $cases " == *" piped "* ]] && "$bin/cairn-gen" sql 1G 7 > "$work/sql"

# One repository per tool and dataset: each restores its `latest`.
repo_of() { echo "$work/repo-$1-$2"; }
init() { # tool dataset
  local r
  r=$(repo_of "$1" "$2")
  case $1 in
    cairn) "$bin/cairn" --repo "$r" init > /dev/null ;;
    restic) restic -r "$r" init -q > /dev/null ;;
    rustic) rustic -r "$r" init > /dev/null 2>&1 ;;
    borg) borg init -e repokey "$r" > /dev/null 2>&1 ;;
  esac
}
backup() { # tool dataset
  local r src=$work/$2
  r=$(repo_of "$1" "$2")
  case $1:$2 in
    cairn:piped) "$bin/cairn" --repo "$r" --catalog "$work/catalog-$2" backup --stdin --name dump < "$work/sql" > /dev/null ;;
    restic:piped) restic -r "$r" backup -q --stdin --stdin-filename dump < "$work/sql" ;;
    rustic:piped) rustic -r "$r" backup --stdin-filename dump - < "$work/sql" > /dev/null 2>&1 ;;
    borg:piped) borg create "$r::latest" - < "$work/sql" ;;
    cairn:*) "$bin/cairn" --repo "$r" --catalog "$work/catalog-$2" backup "$src" > /dev/null ;;
    restic:*) restic -r "$r" backup -q "$src" ;;
    rustic:*) rustic -r "$r" backup "$src" > /dev/null 2>&1 ;;
    borg:*) (cd / && borg create "$r::latest" "${src#/}") ;;
  esac
}
restore_cmd() { # tool dataset
  local r
  r=$(repo_of "$1" "$2")
  case $1:$2 in
    cairn:piped) echo "set -o pipefail; $bin/cairn --repo $r --catalog $work/catalog-$2 restore latest --stdout | $bin/cairn-gen check $work/sql" ;;
    restic:piped) echo "set -o pipefail; restic -r $r dump -q latest dump | $bin/cairn-gen check $work/sql" ;;
    rustic:piped) echo "set -o pipefail; rustic -r $r dump latest:dump 2> /dev/null | $bin/cairn-gen check $work/sql" ;;
    borg:piped) echo "set -o pipefail; borg extract --stdout $r::latest | $bin/cairn-gen check $work/sql" ;;
    cairn:*) echo "$bin/cairn --repo $r --catalog $work/catalog-$2 restore latest --target $mnt/out > /dev/null" ;;
    restic:*) echo "restic -r $r restore -q latest --target $mnt/out" ;;
    rustic:*) echo "rustic -r $r restore latest $mnt/out > /dev/null 2>&1" ;;
    borg:*) echo "mkdir -p $mnt/out && cd $mnt/out && borg extract $r::latest" ;;
  esac
}
warm() { find "$@" -type f -exec cat {} + > /dev/null 2>&1 || true; }

for tool in "${active[@]}"; do
  for ds in $cases; do
    echo "== $tool: backing up $ds"
    init "$tool" "$ds"
    backup "$tool" "$ds"
  done
done

raw=benches/restore-raw.tsv
printf 'tool\tdataset\trep\twall_s\tcpu_s\trss_kib\n' > "$raw"
for rep in $(seq 1 "$reps"); do
  order=("${active[@]:$(( (rep - 1) % ${#active[@]} ))}" "${active[@]:0:$(( (rep - 1) % ${#active[@]} ))}")
  echo "== repetition $rep: ${order[*]}"
  for ds in $cases; do
    for tool in "${order[@]}"; do
      [ "$ds" = piped ] || fresh_target
      cmd=$(restore_cmd "$tool" "$ds")
      warm "$(repo_of "$tool" "$ds")" "$work/catalog-$ds" "$RESTIC_CACHE_DIR" "$BORG_BASE_DIR" "$HOME/.cache/rustic"
      [ "$ds" = piped ] && warm "$work/sql"
      /usr/bin/time -f '%e %U %S %M' -o "$work/time" bash -c "$cmd"
      read -r wall user sys rss < <(tail -n 1 "$work/time")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$ds" "$rep" "$wall" "$(echo "$user + $sys" | bc)" "$rss" >> "$raw"
      printf '  %-7s %-6s %7ss %6s MiB\n' "$tool" "$ds" "$wall" $((rss / 1024))
      if [ "$ds" != piped ]; then
        diff -r -q "$mnt/out$work/$ds" "$work/$ds" > /dev/null || { echo "MISMATCH: $tool's restore of $ds" >&2; exit 1; }
      fi
      sync
    done
  done
done

versions="cairn $(git rev-parse --short HEAD)"
for t in "${active[@]}"; do
  case $t in
    restic) versions+=", restic $(restic version | awk '{print $2}')" ;;
    borg) versions+=", borg $(borg --version | awk '{print $2}')" ;;
    rustic) versions+=", rustic $(rustic --version | awk '{print $2}')" ;;
  esac
done
python3 - "$raw" "$versions" "$loop" "$reps" <<'PY' | tee benches/restore-report.md
import statistics, sys
from collections import defaultdict
raw, versions, loop, reps = sys.argv[1:5]
rows = defaultdict(list)
for line in open(raw).read().splitlines()[1:]:
    tool, ds, rep, wall, cpu, rss = line.split("\t")
    rows[(tool, ds)].append((float(wall), float(cpu), int(rss)))
tools = sorted({t for t, _ in rows}, key=lambda t: (t != "cairn", t))
cases = [c for c in ("tree", "pvc", "piped") if any(d == c for _, d in rows)]
med = lambda t, d, i: statistics.median(r[i] for r in rows[(t, d)])
target = {"tree": 2.0, "pvc": 2.0, "piped": 1.5}
what = {"tree": "20,000 files, 500 MiB", "pvc": "200,003 files, 1.0 GiB (3 large)", "piped": "1 GiB dump into a checking pipe"}
print(f"# Restore benchmark ({versions})\n")
where = "a new ext4 file system (loop device, mkfs.ext4 defaults) for every tree restore" if loop == "yes" else "the work directory (no loop device here: each restore after the removal of the previous one)"
print(f"Medians of {reps} interleaved repetitions (each tool in turn, the order rotating) on 2 cores; local repositories, encryption on; trees restored into {where}, then compared with their source. Produced by `bash benches/restore.sh`.\n")
print("| dataset | " + " | ".join(f"{t} wall / CPU / RSS" for t in tools) + " | cairn vs fastest peer | target | met |")
print("|---|" + "---|" * (len(tools) + 3))
for c in cases:
    cells = [f"{med(t, c, 0):.2f} s / {med(t, c, 1):.2f} s / {med(t, c, 2) // 1024} MiB" for t in tools]
    peers = [(med(t, c, 0), t) for t in tools if t != "cairn"]
    ratio, met = "", ""
    if peers and "cairn" in tools:
        best, who = min(peers)
        r = best / med("cairn", c, 0)
        ratio = f"{r:.2f}x ({who} {best:.2f} s)"
        met = "yes" if r >= target[c] else "**no**"
    print(f"| {c}: {what[c]} | " + " | ".join(cells) + f" | {ratio} | {target[c]}x | {met} |")
print("\nEvery repetition (wall seconds):\n")
for c in cases:
    print(f"- {c}: " + "; ".join(f"{t} " + ", ".join(f"{r[0]:.2f}" for r in rows[(t, c)]) for t in tools))
PY
