#!/usr/bin/env bash
# Builds the example plugins in examples/plugins/ into target/example-plugins/<name>/
# (plugin.yml + plugin.wasm, the core module that `prefiq plugin pack` wraps into a
# component), with only what Debian ships: rustc + its wasm32 std for Rust plugins, clang +
# lld for C plugins. No cargo, no downloads.
#
#   scripts/build-example-plugins.sh              # every example
#   scripts/build-example-plugins.sh todo-followup  # just the ones named
#
# A plugin directory holds plugin.yml and either src/lib.rs (Rust, using
# examples/plugins/sdk/rust/codexion.rs) or *.c (C, linked with examples/plugins/sdk/c).
# Each module is then checked (when wasm-objdump is installed): it exports memory,
# cabi_realloc and the four entry points with the canonical-ABI signatures, and imports
# nothing but functions of codexion:plugin/host@0.1.0.
#
# Environment: RUSTC_WASM (default /usr/bin/rustc, Debian's, which has the wasm32 std;
# rustup's rustc usually has not), CLANG (default clang).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$ROOT/examples/plugins"
OUT="$ROOT/target/example-plugins"
RUSTC_WASM=${RUSTC_WASM:-/usr/bin/rustc}
CLANG=${CLANG:-clang}
INSTALL_HINT="apt-get install rustc libstd-rust-dev-wasm32 lld clang"
HOST_MODULE="codexion:plugin/host@0.1.0"

die() {
  echo "build-example-plugins: $*" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- toolchains, probed once each, when first needed ----------------------------------

rust_ready=0
need_rust() {
  [ "$rust_ready" = 1 ] && return 0
  command -v "$RUSTC_WASM" >/dev/null 2>&1 ||
    die "$RUSTC_WASM not found; install it with: $INSTALL_HINT"
  printf '#[no_mangle]\npub extern "C" fn probe() -> i32 { 1 }\n' >"$tmp/probe.rs"
  "$RUSTC_WASM" --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib \
    -o "$tmp/probe-rs.wasm" "$tmp/probe.rs" >"$tmp/probe-rs.log" 2>&1 ||
    die "$RUSTC_WASM cannot build for wasm32-unknown-unknown (no wasm32 std or rust-lld); install them with: $INSTALL_HINT"
  rust_ready=1
}

clang_ready=0
need_clang() {
  [ "$clang_ready" = 1 ] && return 0
  command -v "$CLANG" >/dev/null 2>&1 || die "$CLANG not found; install it with: $INSTALL_HINT"
  printf '__attribute__((export_name("probe"))) int probe(void) { return 1; }\n' >"$tmp/probe.c"
  "$CLANG" --target=wasm32 -nostdlib -Wl,--no-entry -o "$tmp/probe-c.wasm" "$tmp/probe.c" \
    >"$tmp/probe-c.log" 2>&1 ||
    die "$CLANG cannot build for wasm32 (no WebAssembly backend or no wasm-ld); install them with: $INSTALL_HINT"
  clang_ready=1
}

# ---- builds ---------------------------------------------------------------------------

build_rust() { # dir name out
  need_rust
  "$RUSTC_WASM" --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib \
    --crate-name "${2//-/_}" -C opt-level=s -C panic=abort -C lto -C strip=symbols \
    -o "$3/plugin.wasm" "$1/src/lib.rs"
}

build_c() { # dir name out
  need_clang
  local sources=("$1"/*.c)
  # No --allow-undefined: only functions declared with import_module/import_name may stay
  # undefined (they become the host imports); anything else is a link error here.
  "$CLANG" --target=wasm32 -std=c11 -O2 -Wall -Wextra -nostdlib -I "$SRC/sdk/c" \
    -Wl,--no-entry -Wl,--stack-first -Wl,--strip-all \
    -o "$3/plugin.wasm" "${sources[@]}" "$SRC/sdk/c/codexion.c"
}

# ---- checks ---------------------------------------------------------------------------

# The core-module ABI wit-component expects for the codexion:plugin world, as wasm-objdump
# prints signatures. Exports marked ? are optional (post-return functions).
read -r -d '' CHECK_AWK <<'AWK' || true
BEGIN {
  want["export memory"] = "memory"
  want["export cabi_realloc"] = "(i32, i32, i32, i32) -> i32"
  want["export on-hook"] = "(i32, i32, i32, i32, i32, i32, i32, i32) -> i32"
  want["export on-route"] = "(i32, i32) -> i32"
  want["export on-job"] = "(i32, i32, i32, i32) -> i32"
  want["export on-event"] = "(i32, i32) -> i32"
  post["cabi_post_on-hook"] = 1; post["cabi_post_on-route"] = 1
  post["cabi_post_on-job"] = 1; post["cabi_post_on-event"] = 1
  imp["log"] = "(i32, i32, i32) -> nil"
  imp["config"] = "(i32) -> nil"
  imp["get"] = "(i32, i32, i32, i32, i32) -> nil"
  imp["list"] = "(i32, i32, i32, i32, i32) -> nil"
  imp["insert"] = "(i32, i32, i32, i32, i32) -> nil"
  imp["update"] = "(i32, i32, i32, i32, i32, i32, i32) -> nil"
  imp["now-ms"] = "(i32) -> nil"
  imp["fetch"] = "(i32, i32, i32) -> nil"
  bad = 0
}
function fail(msg) { print msg; bad = 1 }
function idx(s) { sub(/^[a-z]+\[/, "", s); sub(/\].*/, "", s); return s }
/^[A-Z][A-Za-z]*\[[0-9]+\]:/ { sect = $1; sub(/\[.*/, "", sect); next }
/^ - / && sect == "Type" {
  line = $0; sub(/^ - type\[[0-9]+\] /, "", line); types[idx($2)] = line; next
}
/^ - / && sect == "Function" {
  s = $3; sub(/^sig=/, "", s); fsig[idx($2)] = s; next
}
/^ - / && sect == "Import" {
  from = $0; sub(/.*<- /, "", from)
  if ($2 !~ /^func\[/) { fail("imports " from ", which is not a function"); next }
  if (index(from, host ".") != 1) { fail("imports " from ", which is not from " host); next }
  name = substr(from, length(host) + 2)
  s = $3; sub(/^sig=/, "", s)
  if (!(name in imp)) fail("imports " from ", which the world does not offer")
  else if (types[s] != imp[name]) fail("imports " name " as " types[s] "; the world wants " imp[name])
  next
}
/^ - / && sect == "Export" {
  name = $0; sub(/^[^"]*"/, "", name); sub(/"$/, "", name)
  if ($2 ~ /^memory\[/) got[name] = "memory"
  else if ($2 ~ /^func\[/) got[name] = types[fsig[idx($2)]]
  else got[name] = $2
  next
}
END {
  for (k in want) {
    name = substr(k, 8)
    if (!(name in got)) fail("does not export " name)
    else if (got[name] != want[k]) fail("exports " name " as " got[name] "; the world wants " want[k])
  }
  for (name in post)
    if ((name in got) && got[name] != "(i32) -> nil")
      fail("exports " name " as " got[name] "; a post-return takes (i32) -> nil")
  exit bad
}
AWK

check_module() { # name wasm
  if ! command -v wasm-objdump >/dev/null 2>&1; then
    echo "  (wasm-objdump not installed: exports and imports not checked)"
    return 0
  fi
  wasm-objdump -x "$2" >"$tmp/dump" || die "$1: wasm-objdump cannot read $2"
  if ! awk -v host="$HOST_MODULE" "$CHECK_AWK" "$tmp/dump" >"$tmp/problems"; then
    sed "s/^/build-example-plugins: $1: /" "$tmp/problems" >&2
    exit 1
  fi
  local imports
  imports=$(awk -v host="$HOST_MODULE." '/^Import\[/ {s=1; next} /^[A-Z]/ {s=0} s && /<- / {sub(/.*<- /, ""); sub(host, ""); printf "%s%s", (n++ ? ", " : ""), $0}' "$tmp/dump")
  echo "  ok: exports memory, cabi_realloc, on-hook, on-route, on-job, on-event; imports ${imports:-nothing}"
}

# ---- main -----------------------------------------------------------------------------

if [ "$#" -gt 0 ]; then
  names=("$@")
else
  names=()
  for manifest in "$SRC"/*/plugin.yml; do
    [ -e "$manifest" ] && names+=("$(basename "$(dirname "$manifest")")")
  done
  [ "${#names[@]}" -gt 0 ] || die "no plugins (*/plugin.yml) under $SRC"
fi

for name in "${names[@]}"; do
  dir="$SRC/$name"
  [ -f "$dir/plugin.yml" ] || die "$name: $dir/plugin.yml not found"
  out="$OUT/$name"
  rm -rf "$out"
  mkdir -p "$out"
  if [ -f "$dir/src/lib.rs" ]; then
    lang=rust
    build_rust "$dir" "$name" "$out" || die "$name: the Rust build failed"
  elif compgen -G "$dir/*.c" >/dev/null; then
    lang=c
    build_c "$dir" "$name" "$out" || die "$name: the C build failed"
  else
    die "$name: neither src/lib.rs (Rust) nor *.c (C) in $dir"
  fi
  cp "$dir/plugin.yml" "$out/plugin.yml"
  printf '%-16s %-4s %8d bytes  %s\n' "$name" "$lang" "$(wc -c <"$out/plugin.wasm")" \
    "${out#"$ROOT"/}/plugin.wasm"
  check_module "$name" "$out/plugin.wasm"
done
