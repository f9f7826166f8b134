#!/usr/bin/env bash
# Installs kubernetes-validate (strict JSON-schema validation of manifests
# for Kubernetes 1.25 to 1.37, offline) into a virtualenv and prints the
# path of its command. Idempotent.
set -euo pipefail
version=1.37.0
dir=${CAIRN_KUBEVALIDATE_DIR:-${HOME:-/root}/.cache/cairn/kubernetes-validate-$version}
if [ ! -x "$dir/bin/kubernetes-validate" ]; then
  if ! python3 -m venv "$dir" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$dir"
  fi
  "$dir/bin/pip" install -q "kubernetes-validate==$version"
fi
echo "$dir/bin/kubernetes-validate"
