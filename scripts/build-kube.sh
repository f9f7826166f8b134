#!/usr/bin/env bash
# Builds kube-apiserver from Debian bookworm's `kubernetes` source package
# (1.20.2, with its vendor tree; no Go module proxy is needed) and unpacks
# Debian's kubectl of the same version beside it. Prints the directory that
# holds both. The result is cached in target/kube/ (or $CAIRN_KUBE_DIR):
# a cold build takes about five minutes on two cores, a cached one nothing.
#
# Needs root for apt-get (golang-go, rsync, etcd-server). The Kubernetes
# end-to-end tests start etcd and this kube-apiserver on 127.0.0.1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${CAIRN_KUBE_DIR:-$root/target/kube}
if [[ -x $out/bin/kube-apiserver && -x $out/bin/kubectl ]]; then
  echo "$out/bin"
  exit 0
fi

log() { echo "build-kube: $*" >&2; }
need=()
command -v go >/dev/null || need+=(golang-go)
command -v rsync >/dev/null || need+=(rsync)
command -v etcd >/dev/null || need+=(etcd-server)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
command -v make >/dev/null || need+=(make)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

work=$out/work
rm -rf "$work"
mkdir -p "$work" "$out/bin"
cd "$work"

# A private sources list with a deb-src line, so /etc/apt stays as it is.
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p apt/lists/partial apt/cache/archives/partial
printf 'deb-src %s bookworm main\n' "$mirror" >apt/sources.list
aptopts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache")
log "fetching the kubernetes source package"
apt-get "${aptopts[@]}" update -q >&2
apt-get "${aptopts[@]}" source -q --download-only kubernetes >&2
dpkg-source -x --no-check kubernetes_*.dsc src >&2

# Debian's kubectl 1.20 (kubernetes-client), unpacked, not installed: a
# newer kubectl may be on the machine already, and a matching client keeps
# its validation on against this server.
log "fetching kubectl and reflect2"
apt-get download -q kubernetes-client golang-github-modern-go-reflect2-dev >&2
dpkg -x kubernetes-client_*.deb client
dpkg -x golang-github-modern-go-reflect2-dev_*.deb reflect2

# The vendored reflect2 1.0.1 crashes with Go >= 1.18 (mapiterinit);
# Debian's 1.0.2 is API compatible.
vendored=src/vendor/github.com/modern-go/reflect2
rm -rf "$vendored"
cp -r reflect2/usr/share/gocode/src/github.com/modern-go/reflect2 "$vendored"

log "building kube-apiserver (about five minutes)"
start=$(date +%s)
(cd src && GOPROXY=off CGO_ENABLED=0 KUBE_GIT_VERSION=v1.20.2 GOFLAGS=-mod=vendor \
  make WHAT=cmd/kube-apiserver >&2)
log "built in $(($(date +%s) - start)) s"
cp src/_output/bin/kube-apiserver "$out/bin/"
cp client/usr/bin/kubectl "$out/bin/"
cd "$out"
rm -rf "$work"
echo "$out/bin"
