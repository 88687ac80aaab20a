#!/usr/bin/env bash
# The audit log survives SIGKILL during a write load: `scripts/audit-crash-test.sh [ROUNDS]`
# (default 100; CI runs a few). Each round serves an installation on embedded SQLite, drives
# creates from four concurrent clients, kills the server with SIGKILL at a random moment,
# then checks that
#   - `prefiq audit verify` passes (the log is intact and consistent),
#   - every create the server acknowledged (201) has its row and its audit record,
#   - no audit record of a create lacks its row.
# It exits non-zero on the first round that fails. Traffic goes to 127.0.0.1 only.
set -euo pipefail
rounds=${1:-100}
bin=${PREFIQ_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/prefiq}
port=${AUDIT_CRASH_PORT:-4977}
dir=$(mktemp -d)
trap 'pkill -9 -f "prefiq serve --port $port" 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
export PREFIQ_ADMIN_PASSWORD='correct horse battery'
"$bin" tenant create acme --admin-email admin@acme.test >/dev/null 2>&1

check_round() {
  python3 - "$1" <<'PY'
import sqlite3, sys
acked = set(l.strip() for l in open("acked.txt") if l.strip())
db = sqlite3.connect("data/codexion.db")
rows = set(r[0] for r in db.execute("SELECT id FROM todo WHERE tenant_id = 'acme'"))
audited = set(r[0] for r in db.execute(
    "SELECT json_extract(entry, '$.id') FROM prefiq_audit WHERE tenant_id = 'acme' AND json_extract(entry, '$.entity') = 'todo' AND json_extract(entry, '$.action') = 'create'"))
lost = acked - rows
unaudited = acked - audited
orphans = audited - rows
print(f"round {sys.argv[1]}: {len(acked)} acknowledged creates, {len(rows)} rows, {len(audited)} create records", end="")
if lost or unaudited or orphans:
    print(f": FAILED: {len(lost)} acknowledged writes lost, {len(unaudited)} without their audit record, {len(orphans)} audit records without their row")
    sys.exit(1)
print(": ok")
PY
}

failed=0
for round in $(seq 1 "$rounds"); do
  "$bin" serve --port "$port" >serve.log 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  token=$(curl -s -H 'X-Tenant: acme' -d "{\"email\":\"admin@acme.test\",\"password\":\"$PREFIQ_ADMIN_PASSWORD\"}" \
    "http://127.0.0.1:$port/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  rm -f stop
  for worker in 1 2 3 4; do
    (
      n=0
      # Bounded: at most 2,000 requests per client per round, and it stops at the kill.
      while [ ! -e stop ] && [ $n -lt 2000 ]; do
        n=$((n + 1))
        out=$(curl -s -m 5 -w '\n%{http_code}' -H "Authorization: Bearer $token" \
          -d "{\"description\":\"round $round worker $worker n $n\"}" \
          "http://127.0.0.1:$port/api/v1/resources/todo" 2>/dev/null) || break
        code=${out##*$'\n'}
        if [ "$code" = 201 ]; then
          id=$(printf '%s' "$out" | head -1 | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
          echo "$id" >>"acked.$worker"
        fi
      done
    ) &
  done
  # A round proves something only if the server acknowledged a create before the kill:
  # wait (at most 10 s) for the first one, then kill at a random moment after it.
  for _ in $(seq 1 200); do
    cat acked.[0-9] 2>/dev/null | grep -q . && break
    sleep 0.05
  done
  sleep "0.$((RANDOM % 9 + 1))"
  kill -9 "$server"
  wait "$server" 2>/dev/null || true
  touch stop
  wait
  round_acked=$(cat acked.[0-9] 2>/dev/null | grep -c . || true)
  cat acked.[0-9] >>acked.txt 2>/dev/null || true
  rm -f acked.[0-9]
  if [ "${round_acked:-0}" -eq 0 ]; then
    echo "round $round: FAILED: no create was acknowledged before the kill (see serve.log)"
    failed=$((failed + 1))
    break
  fi
  if ! "$bin" audit verify >verify.log 2>&1; then
    echo "round $round: FAILED: $(tail -1 verify.log)"
    failed=$((failed + 1))
    break
  fi
  if ! check_round "$round"; then
    failed=$((failed + 1))
    break
  fi
done
passed=$((round - failed))
echo "audit crash test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
