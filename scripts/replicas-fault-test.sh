#!/usr/bin/env bash
# Two `prefiq serve` replicas on one PostgreSQL: jobs run once, a schedule fires once per
# due time, and the cache invalidates across them. See scripts/replicas_fault_test.py.
# Usage: scripts/replicas-fault-test.sh [WRITES] [SCHEDULE_S] (default 10000 and 10; CI
# runs a short one). Needs PostgreSQL and Redis (PREFIQ_PG_ADMIN_URL, REDIS_URL).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v psql >/dev/null || { echo "psql is not installed (apt-get install postgresql-client)" >&2; exit 1; }
exec python3 "$root/scripts/replicas_fault_test.py" "$@"
