#!/usr/bin/env bash
# pip-tool.sh PACKAGE VERSION COMMAND: installs PACKAGE==VERSION from PyPI
# into a virtualenv of its own under ~/.cache/cairn (once) and prints the
# path of its COMMAND. For the test tools that come from PyPI.
set -euo pipefail
package=$1 version=$2 command=$3
dir=${HOME:-/root}/.cache/cairn/$package-$version
if [ ! -x "$dir/bin/$command" ]; then
  if ! python3 -m venv "$dir" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$dir"
  fi
  "$dir/bin/pip" install -q "$package==$version"
fi
echo "$dir/bin/$command"
