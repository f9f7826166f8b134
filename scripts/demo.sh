#!/usr/bin/env bash
# Builds cairn and runs the main job on a local repository (no server):
# back up a generated SQL dump and a directory tree, back up again to show
# deduplication, restore both and check them byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cairn-agent -p cairn-e2e
cairn=$PWD/target/release/cairn
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The catalog (a cache of the repository) lives beside it, so the demo leaves nothing behind.
export CAIRN_REPOSITORY=$work/repo CAIRN_CATALOG=$work/catalog CAIRN_PASSWORD=demo-passphrase

echo "== cairn init"
"$cairn" init
echo "== a 256 MiB SQL dump from stdin, twice (the second is almost all duplicate)"
target/release/cairn-gen sql 256M 1 > "$work/dump.sql"
"$cairn" backup --stdin --name dump.sql < "$work/dump.sql"
"$cairn" backup --stdin --name dump.sql < "$work/dump.sql"
echo "== a command's output: the file tree of this source as a tar stream"
"$cairn" backup --name src.tar --command -- tar -C "$PWD" -cf - chunker repo-format agent
echo "== a directory tree"
"$cairn" backup "$PWD/docs" "$PWD/agent/src"
echo "== the same tree again: unchanged files are not read"
"$cairn" backup "$PWD/docs" "$PWD/agent/src"
"$cairn" snapshots
echo "== from the catalog alone: find and diff"
"$cairn" find '*.md'
"$cairn" diff "$("$cairn" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-2]["id"])')" latest
echo "== restore the dump to stdout and the tree to a directory"
dump_id=$("$cairn" snapshots --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["source"]["type"]=="stdin"][0])')
"$cairn" restore "$dump_id" --stdout | cmp - "$work/dump.sql"
"$cairn" restore latest --target "$work/restored"
diff -r "$PWD/docs" "$work/restored$PWD/docs"
diff -r "$PWD/agent/src" "$work/restored$PWD/agent/src"
echo "== repository: $(du -sh "$work/repo" | cut -f1) for $(du -sh "$work/dump.sql" | cut -f1) of dump (twice) plus sources"
echo "demo OK: every restored byte matches"
