#!/usr/bin/env bash
# The restore drill on both backends and both tenancies: write data, back up under a
# write load, destroy, restore, and check that rows, custom fields, runtime entities,
# balances, journal entries and audit logs (against a checkpoint taken before the backup)
# all came back; plus damaged, cut and SIGKILLed backups, a restore over data, and
# scheduled backups with retention. See scripts/restore_drill.py. PostgreSQL runs when
# PREFIQ_TEST_POSTGRES_URL is set, and is reported skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PREFIQ_BIN:-$PWD/target/debug/prefiq}
[[ -x "$bin" ]] || cargo build -p prefiq-cli --locked
command -v sqlite3 >/dev/null || { echo "restore drill: sqlite3 is needed to inspect the restored ledger" >&2; exit 1; }
for tenancy in shared database; do
  RESTORE_DRILL_TENANCY=$tenancy python3 scripts/restore_drill.py "$bin" sqlite
  if [[ -n "${PREFIQ_TEST_POSTGRES_URL:-}" ]]; then
    RESTORE_DRILL_TENANCY=$tenancy python3 scripts/restore_drill.py "$bin" postgres "$PREFIQ_TEST_POSTGRES_URL"
  else
    echo "restore drill (postgres, $tenancy tenancy): skipped: PREFIQ_TEST_POSTGRES_URL is not set"
  fi
done
