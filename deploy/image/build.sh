#!/usr/bin/env bash
# Builds the cairn OCI image with podman, without a Docker daemon and
# without pulling from a registry: a Debian root file system from
# debootstrap (cached under target/image/), imported as the base, then
# deploy/image/Containerfile adds the cairn binary.
#
#   bash deploy/image/build.sh [TAG]      (default localhost/cairn:latest)
#
# CAIRN_BIN      the binary to put in (default: target/release/cairn, built if missing)
# PG_MAJOR       the PostgreSQL client tools' major version (default 15,
#                Debian bookworm's; another needs a suite that has it)
# DEBIAN_SUITE   default bookworm; DEBIAN_MIRROR default http://deb.debian.org/debian
# PODMAN_FLAGS   extra podman flags (e.g. --runtime runc on hosts where crun fails)
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-localhost/cairn:latest}
pg=${PG_MAJOR:-15}
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
bin=${CAIRN_BIN:-target/release/cairn}
read -r -a flags <<< "${PODMAN_FLAGS:-}"

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (apt-get install podman debootstrap)" >&2; exit 1; }
done
if [ ! -x "$bin" ]; then
  cargo build --release -p cairn-agent
fi

cache=target/image
base="localhost/cairn-base:$suite-pg$pg"
mkdir -p "$cache"
if ! podman "${flags[@]}" image exists "$base"; then
  root="$cache/rootfs-$suite-pg$pg"
  if [ ! -f "$root/.complete" ]; then
    rm -rf "$root"
    debootstrap --variant=minbase --include="ca-certificates,postgresql-client-$pg" \
      "$suite" "$root" "$mirror" >&2
    # What an image does not need: caches, documentation, locales.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
      "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale "$root"/usr/share/info
    # The image's user, known to NSS (snapshots record its name).
    echo "cairn:x:65532:65532:cairn:/home/cairn:/usr/sbin/nologin" >> "$root/etc/passwd"
    echo "cairn:x:65532:" >> "$root/etc/group"
    mkdir -p "$root/home/cairn/.cache"
    chown -R 65532:65532 "$root/home/cairn"
    touch "$root/.complete"
  fi
  tar -C "$root" --exclude=./.complete -c . | podman "${flags[@]}" import - "$base" >/dev/null
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
strip -o "$ctx/cairn" "$bin"
cp deploy/image/Containerfile "$ctx/"
podman "${flags[@]}" build --quiet --build-arg "BASE=$base" -t "$tag" "$ctx" >/dev/null
size=$(podman "${flags[@]}" image inspect --format '{{.Size}}' "$tag")
echo "built $tag ($((size / 1000000)) MB; base $base)" >&2
echo "$tag"
