# Sourced by the S3 benchmarks (s3.sh, copy.sh): a SeaweedFS server on
# loopback in a throwaway directory, stopped and removed on exit, and the
# helpers that time a command and take a median.
#
#   start_s3 WORK BASE_PORT BUCKET...
#
# starts `weed mini` with its ten ports from BASE_PORT (the S3 port is
# BASE_PORT + 6, exported as AWS_ENDPOINT_URL_S3 with the credentials),
# waits until S3 answers and every bucket exists, and sets `s3_port`.
start_s3() {
  local work=$1 base=$2 weed buckets
  shift 2
  buckets=$(IFS=,; echo "$*")
  weed=$(bash scripts/install-seaweedfs.sh)
  s3_port=$((base + 6))
  cat > "$work/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"bench-ak","secretKey":"bench-sk"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  mkdir -p "$work/data" "$work/logs"
  "$weed" -logdir="$work/logs" mini -dir="$work/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$base -master.port.grpc=$((base + 1)) -volume.port=$((base + 2)) -volume.port.grpc=$((base + 3)) \
    -filer.port=$((base + 4)) -filer.port.grpc=$((base + 5)) -s3.port=$s3_port -s3.port.grpc=$((base + 7)) \
    -admin.port=$((base + 8)) -admin.port.grpc=$((base + 9)) \
    -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
    -s3.config="$work/s3.json" -bucket="$buckets" -s3.localSocket="$work/s3.sock" -filer.localSocket="$work/filer.sock" \
    > "$work/weed.out" 2>&1 &
  weed_pid=$!
  trap 'kill $weed_pid 2>/dev/null; wait $weed_pid 2>/dev/null; rm -rf "$work"' EXIT
  local ready b
  for _ in $(seq 1 300); do
    ready=yes
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$s3_port/")" = 403 ] || ready=
    for b in "$@"; do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((base + 4))/buckets/$b/")" = 200 ] || ready=
    done
    [ -n "$ready" ] && break
    sleep 0.2
  done
  [ -n "$ready" ] || { echo "SeaweedFS did not come up; its log:" >&2; tail -20 "$work/weed.out" >&2; exit 1; }
  export AWS_ACCESS_KEY_ID=bench-ak AWS_SECRET_ACCESS_KEY=bench-sk AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3_port
}

# timed LABEL COMMAND...: runs the command under /usr/bin/time and appends
# "LABEL wall_seconds peak_rss_kib" to $work/results.
timed() {
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/t" "$@"
  echo "$label $(cat "$work/t")" >> "$work/results"
}

# The median of the numbers on standard input, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
