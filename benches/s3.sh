#!/usr/bin/env bash
# Backup and restore of 1 GiB against the local S3 test server (SeaweedFS),
# Cairn next to restic's S3 backend (Debian's package), same server, same run,
# alternating, REPS repetitions; medians of wall time and peak RSS.
#
#   bash benches/s3.sh [SIZE] [REPS]     (defaults 1G, 3; writes benches/s3-report.md)
#
# In the same run, for scale:
# - cairn with a local repository on the same data (what S3 is measured
#   against: issue 23 asks for 80 % of it);
# - the server on its own: boto3 uploading the input as a plain multipart
#   upload and downloading it with ranged reads (its defaults: 8 MiB
#   parts, 10 threads), so the server's own speed and CPU cost are known.
# The server's CPU time (user + system, from /proc) is recorded beside each
# client's: the server and the client share the machine's 2 cores.
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
python3 -c 'import boto3' 2>/dev/null || pip install -q boto3 2>/dev/null || pip install -q --break-system-packages boto3
if [ -n "${CAIRN_BENCH_BIN:-}" ]; then
  bin=$CAIRN_BENCH_BIN
else
  cargo build --release -q -p cairn-agent -p cairn-e2e
  bin=$PWD/target/release
fi
work=$(mktemp -d /var/tmp/cairn-s3.XXXXXX)
source benches/s3-common.sh
start_s3 "$work" 28000 bench
port=$s3_port
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
"$bin/cairn-gen" sql "$size" 9 > "$work/input"

# CPU seconds the server has used so far.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15 + $16 + $17) / hz}' "/proc/$weed_pid/stat"; }
# measured LABEL COMMAND...: like `timed`, and appends "LABEL wall rss
# client_cpu server_cpu" to $work/measured.
measured() {
  local label=$1 before after
  shift
  sync
  before=$(server_cpu)
  /usr/bin/time -f "%e %M %U %S" -o "$work/t" "$@"
  after=$(server_cpu)
  read -r wall rss user sys < "$work/t"
  echo "$label $wall $rss $(echo "$user + $sys" | bc) $(echo "$after - $before" | bc)" >> "$work/measured"
}
# boto.py up|down KEY FILE
cat > "$work/boto.py" <<'PY'
import boto3, sys
from boto3.s3.transfer import TransferConfig
op, key, path = sys.argv[1:4]
s3 = boto3.client("s3")
if op == "up":
    s3.upload_file(path, "bench", key, Config=TransferConfig())
else:
    s3.download_file("bench", key, path, Config=TransferConfig())
PY

for i in $(seq 1 "$reps"); do
  "$bin/cairn" --repo "s3:bench/cairn-$i" init > /dev/null
  measured cairn-s3-backup "$bin/cairn" --repo "s3:bench/cairn-$i" --catalog "$work/c-$i" backup --stdin --name dump < "$work/input" > /dev/null
  measured cairn-s3-restore sh -c "'$bin/cairn' --repo 's3:bench/cairn-$i' --catalog '$work/c-$i' restore latest --stdout > '$work/out'"
  cmp "$work/input" "$work/out"
  "$bin/cairn" --repo "$work/local-$i" init > /dev/null
  measured cairn-local-backup "$bin/cairn" --repo "$work/local-$i" --catalog "$work/l-$i" backup --stdin --name dump < "$work/input" > /dev/null
  measured cairn-local-restore sh -c "'$bin/cairn' --repo '$work/local-$i' --catalog '$work/l-$i' restore latest --stdout > '$work/out'"
  cmp "$work/input" "$work/out"
  rm -rf "$work/local-$i"
  restic -q -r "s3:http://127.0.0.1:$port/bench/restic-$i" init > /dev/null
  measured restic-s3-backup restic -q -r "s3:http://127.0.0.1:$port/bench/restic-$i" backup --stdin --stdin-filename dump < "$work/input"
  measured restic-s3-restore sh -c "restic -q -r 's3:http://127.0.0.1:$port/bench/restic-$i' dump latest dump > '$work/out'"
  cmp "$work/input" "$work/out"
  measured boto3-upload python3 "$work/boto.py" up "plain-$i" "$work/input"
  measured boto3-download python3 "$work/boto.py" down "plain-$i" "$work/out"
  cmp "$work/input" "$work/out"
done
bytes=$(stat -c %s "$work/input")
{
  echo "# $size SQL dump to and from S3 (SeaweedFS on loopback), $(date -u +%Y-%m-%d), $(nproc) cores, $reps runs, medians"
  echo
  echo "Client and server CPU are user + system seconds; they share the same 2 cores."
  echo
  echo "| who | operation | wall | throughput | client CPU | server CPU | peak RSS |"
  echo "|---|---|---|---|---|---|---|"
  for k in cairn-s3-backup cairn-s3-restore cairn-local-backup cairn-local-restore restic-s3-backup restic-s3-restore boto3-upload boto3-download; do
    col() { awk -v k="$k" -v c="$1" '$1==k {print $c}' "$work/measured" | median; }
    w=$(col 2); r=$(col 3); cc=$(col 4); sc=$(col 5)
    tp=$(awk -v b="$bytes" -v w="$w" 'BEGIN {printf "%.0f", b / 1048576 / w}')
    printf '| %s | %s | %.2f s | %s MiB/s | %s s | %s s | %d MiB |\n' "${k%-*}" "${k##*-}" "$w" "$tp" "$cc" "$sc" $((r / 1024))
  done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
  m() { awk -v k="$1" '$1==k {print $2}' "$work/measured" | median; }
  echo
  echo "- S3 against the local repository (local wall / S3 wall): backup $(ratio "$(m cairn-local-backup)" "$(m cairn-s3-backup)"), restore $(ratio "$(m cairn-local-restore)" "$(m cairn-s3-restore)")"
  echo "- cairn against restic on S3 (restic wall / cairn wall): backup $(ratio "$(m restic-s3-backup)" "$(m cairn-s3-backup)")×, restore $(ratio "$(m restic-s3-restore)" "$(m cairn-s3-restore)")×"
  echo
  echo "restic: $(restic version | head -1); boto3 $(python3 -c 'import boto3; print(boto3.__version__)')"
} | tee benches/s3-report.md
