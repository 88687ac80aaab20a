#!/usr/bin/env bash
# `prefiq make:module demo` in a copy of the workspace yields a crate that builds and passes
# its test. Uses the repository's target/ so only the workspace crates are rebuilt.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
bin=$(realpath "${PREFIQ_BIN:-$root/target/debug/prefiq}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work")
cd "$work"
"$bin" make:module demo
CARGO_TARGET_DIR="$root/target" cargo test -p demo
echo "scaffold check: apps/demo builds and its test passes"
