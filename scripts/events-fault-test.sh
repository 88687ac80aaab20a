#!/usr/bin/env bash
# Events, jobs and webhooks under faults with real processes (SIGKILL of the server, a
# NATS outage, a receiver outage): see scripts/events_fault_test.py. Usage:
#   scripts/events-fault-test.sh [KILLS] [NATS_OUTAGE_S] [RECEIVER_OUTAGE_S]
# (default 3 kills, 30 s, 10 s; CI runs a short one). Needs nats-server (Debian's
# `nats-server`) and installs the PyPI packages nats-py and standardwebhooks if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python3 -c 'import nats, standardwebhooks' 2>/dev/null || pip install -q nats-py standardwebhooks
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || {
  echo "nats-server is not installed (apt-get install nats-server)" >&2
  exit 1
}
export NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
exec python3 "$root/scripts/events_fault_test.py" "$@"
