#!/usr/bin/env bash
# Runs the shell examples of README.md, so that they stay true. Usage:
#   scripts/readme-examples.sh [README]   (default: README.md at the repository's root)
#
# It makes a fresh installation in a temporary directory, serves it with the debug binary
# (target/debug/prefiq, or $PREFIQ_BIN) on a free port, and runs every ```sh block of the
# README in order, in that directory, each in a shell of its own with errexit; $TOKEN,
# which the login block sets, is handed on to the blocks after it. It fails, naming the block's
# line, on the first command that exits non-zero; curl is run with --fail-with-body, so a
# non-2xx answer is a failure too.
#
# Conventions for the README's blocks:
# - Only blocks fenced as ```sh run; ```yaml, plain ``` and the rest are text.
# - A block is left out when the line right before its fence is an HTML comment that
#   starts with `<!-- readme-examples: skip` and says why (the quick start's `serve`,
#   which this script does itself, and the whole test suite).
# - `localhost:4949` means the served instance: it is replaced by its address.
# - `cargo run --release --bin prefiq -- ARGS` and `prefiq ARGS` run the debug binary in
#   the installation's directory; any other cargo command is refused, so a block that
#   needs one must be marked to skip.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
readme=$(realpath "${1:-$root/README.md}")
bin=$(realpath "${PREFIQ_BIN:-$root/target/debug/prefiq}")
[ -x "$bin" ] || { echo "no prefiq binary at $bin: run cargo build -p prefiq-cli" >&2; exit 1; }
command -v jq >/dev/null || { echo "the README's examples need jq" >&2; exit 1; }
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# The blocks: a file per block holding the commands, and its first line in the README.
mkdir -p "$work/blocks"
python3 - "$readme" "$work/blocks" <<'PY'
import re, sys
readme, out = sys.argv[1], sys.argv[2]
lines = open(readme, encoding="utf-8").read().split("\n")
n, i, previous = 0, 0, ""
while i < len(lines):
    line = lines[i]
    fence = re.match(r"^```(\S*)", line)
    if fence:
        start, body, i = i + 1, [], i + 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if fence.group(1) == "sh" and not previous.startswith("<!-- readme-examples: skip"):
            n += 1
            with open(f"{out}/{n:03}-{start + 1}.sh", "w", encoding="utf-8") as f:
                f.write("\n".join(body) + "\n")
    if line.strip():
        previous = line.strip()
    i += 1
if n == 0:
    sys.exit(f"{readme} has no ```sh block to run")
PY

cd "$work"
PREFIQ__LOG__LEVEL=warn "$bin" serve --port "$port" 2>"$work/serve.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done

# What the blocks call. Logs go to a file; a failing command's own output shows.
prefiq() { PREFIQ__LOG__LEVEL=warn "$bin" "$@" 2>>"$work/cli.log" || { tail -5 "$work/cli.log" >&2; return 1; }; }
cargo() {
  if [ "${1:-}" = run ] && [ "${2:-}" = --release ] && [ "${3:-}" = --bin ] && [ "${4:-}" = prefiq ] && [ "${5:-}" = -- ]; then
    shift 5
    prefiq "$@"
  else
    echo "readme-examples: \`cargo $*\` is not run; mark its block to skip" >&2
    return 1
  fi
}
curl() { command curl --fail-with-body -sS "$@"; }

export -f prefiq cargo curl
export bin work TOKEN=""
status=0
for block in "$work"/blocks/*.sh; do
  line=$(basename "$block" .sh)
  line=${line#*-}
  script=$(sed -E "s/(^|[^.[:alnum:]])localhost:4949/\\1127.0.0.1:$port/g" "$block")
  echo "== README.md line $line"
  printf '%s\n' "$script" | sed 's/^/   /'
  # Each block in a shell of its own with errexit, so it stops at its first failing
  # command; the login's $TOKEN is handed on to the next block.
  if ! bash -euo pipefail -c "$script
declare -p TOKEN >'$work/token.sh'" >"$work/out.txt" 2>&1; then
    cat "$work/out.txt" >&2
    echo "readme-examples: the block at README.md line $line failed" >&2
    status=1
    break
  fi
  cut -c1-160 "$work/out.txt" | head -20 | sed 's/^/   > /'
  echo
  # shellcheck disable=SC1091
  . "$work/token.sh"
  export TOKEN
done
if [ "$status" -eq 0 ]; then
  echo "every README example ran"
fi
exit "$status"
