#!/usr/bin/env bash
# Renders deploy/manifests/cairn.yaml, the plain manifests, from the Helm
# chart (for clusters without Helm). The e2e test checks it is current.
set -euo pipefail
cd "$(dirname "$0")/.."
helm=$(bash scripts/install-helm.sh)
{
  echo "# Rendered from deploy/helm/cairn by scripts/render-manifests.sh; do not edit."
  echo "# Namespace cairn. Replace s3:CHANGE-ME/cairn with your bucket and prefix, and"
  echo "# create the Secret cairn-repository (key: password) first (docs/kubernetes.md)."
  echo "---"
  "$helm" template cairn deploy/helm/cairn --namespace cairn \
    --set repository.url=s3:CHANGE-ME/cairn | sed '1{/^---$/d}'
} > deploy/manifests/cairn.yaml
