#!/usr/bin/env bash
# OpenTelemetry traces against a real OTLP/HTTP receiver (scripts/otlp_receiver.py, on
# PyPI's opentelemetry-proto): one request's spans from HTTP to the database and its
# webhook delivery, W3C trace context into the webhook, and a down collector that slows
# nothing and is counted on /metrics. See scripts/otel_check.py. Usage:
#   scripts/otel-check.sh
# Builds nothing: it runs target/debug/prefiq (or $PREFIQ_BIN). Without the Python
# package it prints SKIP and exits 0, unless CODEXION_REQUIRE_LIVE=1 (then it fails):
#   pip install opentelemetry-proto
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${PREFIQ_BIN:-$root/target/debug/prefiq}")
[ -x "$bin" ] || { echo "no prefiq binary at $bin: run cargo build -p prefiq-cli" >&2; exit 1; }
if ! python3 -c 'from opentelemetry.proto.collector.trace.v1 import trace_service_pb2' 2>/dev/null; then
  if [ "${CODEXION_REQUIRE_LIVE:-}" = 1 ]; then
    echo "otel-check: FAILED: python3 cannot import opentelemetry-proto (pip install opentelemetry-proto)" >&2
    exit 1
  fi
  echo "otel-check: SKIP: python3 cannot import opentelemetry-proto (pip install opentelemetry-proto)"
  exit 0
fi
PREFIQ_BIN="$bin" exec python3 "$root/scripts/otel_check.py" "$@"
