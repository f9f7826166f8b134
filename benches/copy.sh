#!/usr/bin/env bash
# Copy throughput S3 -> S3: a 1 GiB SQL dump backed up into a repository in
# one bucket, then copied into a new repository in a second bucket of the
# same server (SeaweedFS on loopback), by Cairn next to `restic copy`
# (Debian's package) and `rustic copy` (when `rustic` is on PATH), in the
# same run, alternating, REPS repetitions; medians of wall time and peak RSS.
#
#   bash benches/copy.sh [SIZE] [REPS]     (defaults 1G, 3; writes benches/copy-report.md)
#
# Each tool copies twice into a target made to chunk as the source does
# (cairn init --copy-chunker-params-from, restic init --copy-chunker-params;
# rustic's targets chunk with the default polynomial, as its `copy --init`
# makes them): the first copy moves everything, the second nothing. Cairn
# also copies into a target with chunking keys of its own (every chunk
# identified again). Every copy's newest snapshot is restored and compared
# with the input.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1G}
reps=${2:-3}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic; }
cargo build --release -q -p cairn-agent -p cairn-e2e
bin=$PWD/target/release
work=$(mktemp -d)
source benches/s3-common.sh
start_s3 "$work" 28100 main second
port=$s3_port
export CAIRN_PASSWORD=bench CAIRN_FROM_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_FROM_PASSWORD=bench
export RESTIC_CACHE_DIR=$work/restic-cache
mkdir -p "$work/catalogs"
"$bin/cairn-gen" sql "$size" 9 > "$work/input"
rustic=$(command -v rustic || true)
# A rustic profile per repository (rustic reads S3 through OpenDAL).
profile() { # name, bucket, root
  cat > "$work/rustic/$1.toml" <<TOML
[repository]
repository = "opendal:s3"
password = "bench"
[repository.options]
bucket = "$2"
root = "/$3"
endpoint = "http://127.0.0.1:$port"
region = "us-east-1"
access_key_id = "bench-ak"
secret_access_key = "bench-sk"
TOML
}
mkdir -p "$work/rustic"

cairn() { "$bin/cairn" --catalog "$work/catalogs/$1.catalog" --repo "$2" "${@:3}"; }
s3r() { echo "s3:http://127.0.0.1:$port/$1"; }
for i in $(seq 1 "$reps"); do
  # Cairn: the source, a target that shares its chunking, one that does not.
  cairn src-$i s3:main/cairn-$i init > /dev/null
  cairn src-$i s3:main/cairn-$i backup --stdin --name dump < "$work/input" > /dev/null
  CAIRN_FROM_CATALOG=$work/catalogs/src-$i.catalog \
    cairn dst-$i s3:second/cairn-$i init --copy-chunker-params-from s3:main/cairn-$i > /dev/null
  for pass in first second; do
    timed "cairn-copy-$pass" env CAIRN_FROM_CATALOG="$work/catalogs/src-$i.catalog" \
      "$bin/cairn" --catalog "$work/catalogs/dst-$i.catalog" --repo s3:second/cairn-$i copy --from-repo s3:main/cairn-$i -q > /dev/null
  done
  cairn dst-$i s3:second/cairn-$i restore latest --stdout > "$work/out"
  cmp "$work/input" "$work/out"
  cairn own-$i s3:second/cairn-own-$i init > /dev/null
  timed cairn-own-keys-copy-first env CAIRN_FROM_CATALOG="$work/catalogs/src-$i.catalog" \
    "$bin/cairn" --catalog "$work/catalogs/own-$i.catalog" --repo s3:second/cairn-own-$i copy --from-repo s3:main/cairn-$i -q > /dev/null 2>&1
  cairn own-$i s3:second/cairn-own-$i restore latest --stdout > "$work/out"
  cmp "$work/input" "$work/out"

  # restic 0.14: the source, then a target with its chunker parameters.
  restic -q -r "$(s3r main/restic-$i)" init > /dev/null
  restic -q -r "$(s3r main/restic-$i)" backup --stdin --stdin-filename dump < "$work/input"
  restic -q -r "$(s3r second/restic-$i)" init --copy-chunker-params --from-repo "$(s3r main/restic-$i)" > /dev/null
  for pass in first second; do
    timed "restic-copy-$pass" restic -q -r "$(s3r second/restic-$i)" copy --from-repo "$(s3r main/restic-$i)"
  done
  restic -q -r "$(s3r second/restic-$i)" dump latest dump > "$work/out"
  cmp "$work/input" "$work/out"

  if [ -n "$rustic" ]; then
    profile rsrc-$i main rustic-$i
    profile rdst-$i second rustic-$i
    (cd "$work/rustic" && rustic -P ./rsrc-$i init > /dev/null 2>&1 &&
      rustic -P ./rsrc-$i backup --stdin-filename dump - < "$work/input" > /dev/null 2>&1)
    for pass in first second; do
      (cd "$work/rustic" && timed "rustic-copy-$pass" rustic -P ./rsrc-$i copy --init --target ./rdst-$i > /dev/null 2>&1)
    done
    (cd "$work/rustic" && rustic -P ./rdst-$i dump latest:dump > "$work/out" 2>/dev/null)
    cmp "$work/input" "$work/out"
  fi
done
bytes=$(stat -c %s "$work/input")
row() { # label, tool, what (a copy that moves nothing has no throughput)
  local w r tp
  w=$(awk -v k="$1" '$1==k {print $2}' "$work/results" | median)
  [ -n "$w" ] || return 0
  r=$(awk -v k="$1" '$1==k {print $3}' "$work/results" | median)
  tp=$(awk -v b="$bytes" -v w="$w" 'BEGIN {printf "%.0f MiB/s", b / 1048576 / w}')
  case $1 in *second) tp=-;; esac
  printf '| %s | %s | %.2f s | %s | %d MiB |\n' "$2" "$3" "$w" "$tp" $((r / 1024))
}
{
  echo "# Copy of a $size SQL dump from one S3 bucket to another (SeaweedFS on loopback), $(date -u +%Y-%m-%d), $(nproc) cores, $reps runs, medians"
  echo
  echo "| tool | copy | wall | throughput | peak RSS |"
  echo "|---|---|---|---|---|"
  row cairn-copy-first cairn "first (shared chunking keys)"
  row cairn-copy-second cairn "second (nothing new)"
  row cairn-own-keys-copy-first cairn "first (target with its own keys)"
  row restic-copy-first restic "first (--copy-chunker-params)"
  row restic-copy-second restic "second (nothing new)"
  row rustic-copy-first rustic "first (copy --init)"
  row rustic-copy-second rustic "second (nothing new)"
  echo
  echo "Throughput is the dump's size over the wall time. restic: $(restic version | head -1)."
  [ -n "$rustic" ] && echo "rustic: $(rustic --version)."
} | tee benches/copy-report.md
