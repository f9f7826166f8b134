#!/usr/bin/env bash
# Installs kubernetes-validate (strict JSON-schema validation of manifests
# for Kubernetes 1.25 to 1.37, offline) and prints the path of its command.
exec bash "$(dirname "$0")/pip-tool.sh" kubernetes-validate 1.37.0 kubernetes-validate
