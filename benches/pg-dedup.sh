#!/usr/bin/env bash
# How much a second day's pg_dump adds to the repository (issue 4, item 6),
# Cairn next to restic on the same pairs of dumps, in the same run.
#
#   bash benches/pg-dedup.sh [SCALE]     (pgbench scale, default 20; writes benches/pg-dedup-report.md)
#
# Day 1: pgbench at SCALE plus a `notes` table with text columns (hex text that
#   compresses about 2x; pgbench's own rows are mostly blank filler and compress far more).
# Day 2 ("realistic"): 1 % new rows appended to the large tables, 0.5 % of rows
#   updated in the most recent range of ids (hot), 20 rows updated anywhere.
# Day 2' ("worst case"): 1 % of rows updated uniformly at random.
# Dumps are pg_dump --format=custom --compress=0, as `cairn backup pg` takes them.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-20}
for p in /usr/lib/postgresql/15/bin/initdb restic /usr/bin/time; do
  command -v "$p" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client restic time >/dev/null; break; }
done
cargo build --release -q -p cairn-agent
cairn=$PWD/target/release/cairn
work=$(mktemp -d)
chmod 755 "$work"
pgdir=$work/pg
mkdir -p "$pgdir"
bin=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" = 0 ]; then chown -R postgres "$pgdir"; runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$bin/initdb" -D "$pgdir/data" -U postgres --auth=trust > /dev/null
port=25499
as_pg "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdir -c fsync=off -c full_page_writes=off" start > /dev/null
trap 'as_pg "$bin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$work"' EXIT
sql() { psql --no-psqlrc -q -At -h 127.0.0.1 -p $port -U postgres -d "$1" -c "$2"; }
dump() { pg_dump --format=custom --compress=0 -h 127.0.0.1 -p $port -U postgres "$1" > "$2"; }

sql postgres "create database day"
pgbench -i -s "$scale" -q -h 127.0.0.1 -p $port -U postgres day 2>/dev/null
notes=$((scale * 10000))
sql day "create table notes (id bigserial primary key, author text, title text, body text, created timestamptz);
         insert into notes (author, title, body, created)
           select 'user' || (g % 5000), 'note number ' || g, md5(g::text) || ' ' || md5((g::bigint * 7919)::text) || ' ' || md5((g::bigint * 104729)::text) || ' ' || md5((g::bigint * 1299709)::text), now() - (g || ' minutes')::interval
           from generate_series(1, $notes) g;"
sql postgres "create database worst template day"
dump day "$work/day1.dump"

accounts=$((scale * 100000))
# Realistic day: appends, hot updates in the recent range, a handful anywhere.
sql day "insert into pgbench_accounts (aid, bid, abalance, filler)
           select g, 1 + (g % $scale), 0, '' from generate_series($accounts + 1, $accounts + $accounts / 100) g;
         insert into notes (author, title, body, created)
           select 'user' || (g % 5000), 'new note ' || g, md5((g + 7)::text) || ' ' || md5((g * 31)::text) || ' ' || md5((g * 131)::text) || ' ' || md5((g * 1031)::text), now() from generate_series(1, $notes / 100) g;
         update pgbench_accounts set abalance = abalance + 1 where aid > $accounts - $accounts / 200 and aid <= $accounts;
         update notes set body = body || ' (edited)' where id > $notes - $notes / 200;
         update pgbench_accounts set abalance = abalance - 7 where aid in (select 1 + (random() * ($accounts - 1))::int from generate_series(1, 20));"
dump day "$work/day2.dump"
# Worst case for any content-defined chunking: 1 % of rows, uniformly at random.
sql worst "update pgbench_accounts set abalance = abalance + 1 where random() < 0.01;
           update notes set body = body || ' (edited)' where random() < 0.01;"
dump worst "$work/worst.dump"

export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
size() { du -sb "$1" | cut -f1; }
growth_cairn() { # first dump, second dump
  local repo=$work/cairn-$RANDOM
  "$cairn" --repo "$repo" init > /dev/null
  "$cairn" --repo "$repo" backup --stdin --name day < "$1" > /dev/null
  local a; a=$(size "$repo")
  "$cairn" --repo "$repo" backup --stdin --name day < "$2" > /dev/null
  echo "$a $(( $(size "$repo") - a ))"
  rm -rf "$repo"
}
growth_restic() {
  local repo=$work/restic-$RANDOM
  restic -q -r "$repo" init > /dev/null
  restic -q -r "$repo" backup --stdin --stdin-filename day < "$1" > /dev/null
  local a; a=$(size "$repo")
  restic -q -r "$repo" backup --stdin --stdin-filename day < "$2" > /dev/null
  echo "$a $(( $(size "$repo") - a ))"
  rm -rf "$repo"
}
d2=$(stat -c %s "$work/day2.dump"); dw=$(stat -c %s "$work/worst.dump")
read -r c_first c_day < <(growth_cairn "$work/day1.dump" "$work/day2.dump")
read -r _ c_worst < <(growth_cairn "$work/day1.dump" "$work/worst.dump")
read -r r_first r_day < <(growth_restic "$work/day1.dump" "$work/day2.dump")
read -r _ r_worst < <(growth_restic "$work/day1.dump" "$work/worst.dump")
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f %%", 100 * a / b}'; }
{
  echo "# Day-over-day growth of pg_dump backups, pgbench scale $scale + notes ($(date -u +%Y-%m-%d))"
  echo
  echo "Dump sizes: day 1 $(mib "$(stat -c %s "$work/day1.dump")"), day 2 $(mib "$d2"), worst case $(mib "$dw") (custom format, --compress=0)."
  echo
  echo "| tool | first backup stored | realistic day 2 adds | worst case (1 % uniform) adds |"
  echo "|---|---|---|---|"
  echo "| cairn | $(mib "$c_first") | $(mib "$c_day") ($(pct "$c_day" "$d2") of the dump) | $(mib "$c_worst") ($(pct "$c_worst" "$dw")) |"
  echo "| restic $(restic version | awk '{print $2}') | $(mib "$r_first") | $(mib "$r_day") ($(pct "$r_day" "$d2")) | $(mib "$r_worst") ($(pct "$r_worst" "$dw")) |"
} | tee benches/pg-dedup-report.md
