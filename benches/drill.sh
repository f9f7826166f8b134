#!/usr/bin/env bash
# Restore drills, timed: the recovery time (RTO) of the 1 GiB benchmark SQL
# dump and of a pgbench database, next to what a person would run to
# prove the same by hand, in the same run, alternating, REPS repetitions;
# medians of wall time and peak RSS.
#
#   bash benches/drill.sh [SIZE] [REPS] [PGBENCH_SCALE]   (defaults 1G, 3, 40; writes benches/drill-report.md)
#
# - The stream: `cairn drill` (restore into a scratch directory, then read
#   back and check every chunk against its id) next to `restic restore
#   --verify` of the same stream (restic's restore that reads back and
#   checks what it wrote), both from local repositories.
# - PostgreSQL: `cairn drill` (a temporary server from the local binaries,
#   the dump restored with pg_restore, every table counted and compared)
#   next to the same by hand: initdb, start, createdb, `pg_restore` of the
#   dump file, stop. The backup's cost of counting rows is measured too:
#   `cairn backup pg` with and without `--no-row-counts`.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1G}
reps=${2:-3}
scale=${3:-40}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic; }
pgbin=/usr/lib/postgresql/15/bin
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL 15 is needed ($pgbin)" >&2; exit 1; }
cargo build --release -q -p cairn-agent -p cairn-e2e
bin=$PWD/target/release
work=$(mktemp -d)
chmod 755 "$work"
source benches/s3-common.sh # timed, median (no S3 server is started)
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache
# PostgreSQL's server programs refuse root: as root they run as postgres.
pgrun=()
[ "$(id -u)" = 0 ] && pgrun=(runuser -u postgres --)
as_pg() { "${pgrun[@]}" "$@"; }

# The source database: its own server on a private socket.
src=$work/pgsrc
mkdir -p "$src"
[ "$(id -u)" = 0 ] && chown postgres "$src"
as_pg "$pgbin/initdb" -D "$src/data" -U postgres --auth=trust --no-sync > /dev/null
as_pg "$pgbin/pg_ctl" -D "$src/data" -o "-k $src -c listen_addresses= -p 5432" -l "$src/log" -w start > /dev/null
trap 'as_pg "$pgbin/pg_ctl" -D "$src/data" -m immediate stop > /dev/null 2>&1 || true; rm -rf "$work"' EXIT
pgbench -i -q -s "$scale" -h "$src" -p 5432 -U postgres postgres 2> /dev/null
dbsize=$(psql -h "$src" -p 5432 -U postgres -Atc "select pg_database_size('postgres')")

"$bin/cairn-gen" sql "$size" 9 > "$work/input"
bytes=$(stat -c %s "$work/input")
cairn() { "$bin/cairn" --repo "$work/cairn-repo" --catalog "$work/cairn.catalog" "$@"; }
cairn init > /dev/null
cairn backup -q --stdin --name dump.sql < "$work/input" > /dev/null
restic -q -r "$work/restic-repo" init > /dev/null
restic -q -r "$work/restic-repo" backup --stdin --stdin-filename dump.sql < "$work/input"
pg=(pg -h "$src" -p 5432 -U postgres --dbname postgres)

for i in $(seq 1 "$reps"); do
  timed cairn-drill-stream sh -c "'$bin/cairn' --repo '$work/cairn-repo' --catalog '$work/cairn.catalog' --json drill --source-kind stdin --scratch '$work' > '$work/drill.json'"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['passed']; print('cairn-rto-stream', round(d['drills'][0]['rto_seconds'], 2), 0)" "$work/drill.json" >> "$work/results"
  rm -rf "$work/restored"
  timed restic-restore-verify restic -q -r "$work/restic-repo" restore latest --target "$work/restored" --verify
  cmp "$work/input" "$work/restored/dump.sql"
  rm -rf "$work/restored"

  timed cairn-backup-pg-counted "$bin/cairn" --repo "$work/cairn-repo" --catalog "$work/cairn.catalog" backup -q "${pg[@]}" > /dev/null
  timed cairn-backup-pg-uncounted "$bin/cairn" --repo "$work/cairn-repo" --catalog "$work/cairn.catalog" backup -q "${pg[@]}" --no-row-counts > /dev/null
  # The drill of the counted snapshot (the newest is uncounted).
  counted=$(cairn --json snapshots --source-kind postgres | python3 -c "import json,sys; print([s['id'] for s in json.load(sys.stdin) if 'counts' in s][-1])")
  timed cairn-drill-pg sh -c "'$bin/cairn' --repo '$work/cairn-repo' --catalog '$work/cairn.catalog' --json drill $counted --scratch '$work' > '$work/drill.json'"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); x=d['drills'][0]; assert d['passed'], x; print('cairn-rto-pg', round(x['rto_seconds'], 2), 0)" "$work/drill.json" >> "$work/results"

  # By hand: the same dump file into a fresh server of the same binaries.
  pg_dump -h "$src" -p 5432 -U postgres --format=custom --compress=0 postgres > "$work/db.dump"
  chmod 644 "$work/db.dump"
  hand=$work/byhand
  rm -rf "$hand" && mkdir -p "$hand"
  [ "$(id -u)" = 0 ] && chown postgres "$hand"
  cat > "$work/byhand.sh" <<SH
set -e
$pgbin/initdb -D $hand/data -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync > /dev/null
$pgbin/pg_ctl -D $hand/data -o "-k $hand -c listen_addresses= -p 5432" -l $hand/log -w start > /dev/null
psql -h $hand -p 5432 -U postgres -qc 'create database drill'
start=\$(date +%s.%N)
pg_restore --no-owner --no-privileges -h $hand -p 5432 -U postgres -d drill $work/db.dump
awk "BEGIN {printf \"%.2f\", \$(date +%s.%N) - \$start}" > $hand/restore.seconds
$pgbin/pg_ctl -D $hand/data -m fast -w stop > /dev/null
SH
  timed by-hand-pg "${pgrun[@]}" bash "$work/byhand.sh"
  echo "by-hand-restore-pg $(cat "$hand/restore.seconds") 0" >> "$work/results"
done

row() { # label, what
  local w r
  w=$(awk -v k="$1" '$1==k {print $2}' "$work/results" | median)
  r=$(awk -v k="$1" '$1==k {print $3}' "$work/results" | median)
  if [ "$r" = 0 ]; then r="-"; else r="$((r / 1024)) MiB"; fi
  echo "| $2 | ${w} s | $r |"
}
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }
m() { awk -v k="$1" '$1==k {print $2}' "$work/results" | median; }
{
  echo "# Restore drills, $(date -u +%Y-%m-%d), $(nproc) cores, $reps runs, medians"
  echo
  echo "## The $size SQL dump ($((bytes / 1048576)) MiB), local repositories"
  echo
  echo "| what | wall | peak RSS |"
  echo "|---|---|---|"
  row cairn-drill-stream "\`cairn drill\`: restore into scratch, read back, every chunk checked"
  row cairn-rto-stream "  of which the restore (the RTO it reports)"
  row restic-restore-verify "\`restic restore --verify\` (0.14)"
  echo
  echo "cairn drill / restic restore --verify: $(ratio "$(m cairn-drill-stream)" "$(m restic-restore-verify)")"
  echo
  echo "## A pgbench database (scale $scale, $((dbsize / 1048576)) MiB on disk)"
  echo
  echo "| what | wall | peak RSS |"
  echo "|---|---|---|"
  row cairn-backup-pg-uncounted "\`cairn backup pg --no-row-counts\`"
  row cairn-backup-pg-counted "\`cairn backup pg\` (rows counted in the dump's snapshot)"
  row cairn-drill-pg "\`cairn drill\`: temporary server, restore, count and compare"
  row cairn-rto-pg "  of which the restore (the RTO it reports)"
  row by-hand-pg "by hand: initdb, start, createdb, pg_restore, stop"
  row by-hand-restore-pg "  of which pg_restore"
  echo
  echo "Counting rows costs $(ratio "$(m cairn-backup-pg-counted)" "$(m cairn-backup-pg-uncounted)")× the backup's time without it."
  echo "cairn drill / by hand: $(ratio "$(m cairn-drill-pg)" "$(m by-hand-pg)"); its restore / pg_restore of a file: $(ratio "$(m cairn-rto-pg)" "$(m by-hand-restore-pg)")."
} > benches/drill-report.md
cat benches/drill-report.md
