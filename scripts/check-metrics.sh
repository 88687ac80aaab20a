#!/usr/bin/env bash
# Serves on a fresh SQLite database, makes a few requests, and checks /metrics with
# `promtool check metrics` (Debian package `prometheus`). Then SIGTERM must exit 0.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
bin=$(realpath "${PREFIQ_BIN:-$root/target/debug/prefiq}")
command -v promtool >/dev/null || { echo "promtool is not installed (apt-get install prometheus)" >&2; exit 1; }
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && exec "$bin" serve --port "$port" 2>"$work/log.jsonl") &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null
curl -sS "http://127.0.0.1:$port/no-such-route" >/dev/null
curl -fsS "http://127.0.0.1:$port/api/v1/system/info" >/dev/null
curl -fsS "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt"
grep -q '^prefiq_boot_duration_seconds ' "$work/metrics.txt"
grep -q '^prefiq_build_info{' "$work/metrics.txt"
kill -TERM "$pid"
wait "$pid"
trap 'rm -rf "$work"' EXIT
echo "metrics check: promtool accepts /metrics and SIGTERM exits 0"
