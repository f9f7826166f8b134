#!/usr/bin/env bash
# The idle agent's footprint (issue 19): an agent with 10 jobs configured,
# one of which backs up a 256 MiB stream when the agent starts (an interval
# job that never succeeded runs at once); the other nine wait for nightly
# cron times. Measured, with Prometheus's usual 15 s scrape simulated:
#   - resident memory (VmRSS) 60 s after that backup finished, and its
#     peak (VmHWM) during the backup;
#   - CPU (user + system) over IDLE_S seconds of idling after that.
# Targets: <= 32 MiB resident, < 0.1 % of a core.
#
# Usage: bash benches/agent-footprint.sh [IDLE_S]   (default 600)
# Writes benches/agent-footprint-raw.tsv; the report is
# benches/agent-footprint-report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
idle=${1:-600}
bin=${CAIRN_BIN:-$PWD/target/release/cairn}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
printf 'footprint-bench-pass\n' > "$work/pass"
CAIRN_PASSWORD_FILE="$work/pass" "$bin" -r "$work/repo" init >/dev/null 2>&1
port=$((20000 + RANDOM % 20000))
{
  cat <<EOF
[agent]
listen = "127.0.0.1:$port"
catalog = "$work/catalog"

[repository]
url = "$work/repo"
password-file = "$work/pass"

[jobs.stream]
source = { type = "command", command = ["sh", "-c", "head -c 268435456 /dev/urandom"], name = "stream.bin" }
every = "24h"
retention = { keep-daily = 7 }
EOF
  for i in 1 2 3 4 5 6 7 8 9; do
    cat <<EOF

[jobs.nightly-$i]
source = { type = "command", command = ["echo", "job $i"] }
schedule = "0 $i * * *"
time-zone = "UTC"
retention = { keep-daily = 7, keep-weekly = 4 }
EOF
  done
} > "$work/agent.toml"
"$bin" agent --config "$work/agent.toml" --log-format json 2> "$work/agent.log" &
pid=$!
scrape() { curl -s "http://127.0.0.1:$port/metrics" > /dev/null || true; }
until grep -q '"snapshot [0-9a-f]* saved"' "$work/agent.log" 2>/dev/null; do
  kill -0 "$pid" || { cat "$work/agent.log"; exit 1; }
  sleep 0.5
done
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
for _ in 1 2 3 4; do scrape; sleep 15; done
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
end=$(( $(date +%s) + idle ))
while [ "$(date +%s)" -lt "$end" ]; do scrape; sleep 15; done
t1=$(ticks)
threads=$(awk '/Threads/ {print $2}' "/proc/$pid/status")
rss_end_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
cpu_pct=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$idle" 'BEGIN {printf "%.4f", (b - a) / hz / s * 100}')
kill -TERM "$pid"; wait "$pid" || true
raw=benches/agent-footprint-raw.tsv
[ -f "$raw" ] || printf 'date\tidle_s\tpeak_rss_mib\trss_60s_after_mib\trss_end_mib\tcpu_ticks\tcpu_pct_of_core\tthreads\n' > "$raw"
printf '%s\t%s\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$idle" \
  "$(echo "$peak_kib/1024" | bc -l)" "$(echo "$rss_kib/1024" | bc -l)" \
  "$(echo "$rss_end_kib/1024" | bc -l)" "$((t1 - t0))" "$cpu_pct" "$threads" | tee -a "$raw"
