#!/usr/bin/env bash
# Runs schemathesis (PyPI) against the whole OpenAPI document of a fresh `prefiq serve` on
# SQLite: every module's routes, no 5xx, and every response must match the schema. Usage:
#   scripts/schemathesis.sh [MAX_EXAMPLES]   (default 50 per operation)
#
# What it sets up first, so that the calls reach the logic behind the routes:
# - the tenant `schemathesis` and its administrator, whose token every call carries;
# - the tenant `platform` and its administrator, whose token the platform routes carry,
#   and the tenant `bystander`, the one they suspend and resume (never `schemathesis`);
# - a company with the standard chart and a fiscal year (so its periods): the accounting
#   reports get the company, period and fiscal-year close get those ids;
# - a second user of `schemathesis`, the one the users routes change (a change to a user
#   revokes its tokens at once, so the administrator's must not be changed).
# Generated records are followed from their create to the operations on them through the
# document's links (the stateful phase).
#
# The event stream is left out: it stays open by design, so every call would wait for
# schemathesis' timeout (apps/cortex/tests/events_stream.rs tests it).
#
# Every check runs except `positive_data_acceptance`: a list's `filters` and `cursor` are
# strings in the schema but must name real fields and be a cursor the server gave out, so
# arbitrary schema-valid strings are rightly refused with 422.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
bin=$(realpath "${PREFIQ_BIN:-$root/target/debug/prefiq}")
examples=${1:-50}
command -v schemathesis >/dev/null || pip install -q schemathesis
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
password='schemathesis-password'
for tenant in schemathesis platform bystander; do
  (cd "$work" && PREFIQ__LOG__LEVEL=warn "$bin" tenant create "$tenant" \
    --admin-email "admin@$tenant.test" --admin-password "$password" >/dev/null 2>"$work/tenant.log") \
    || { cat "$work/tenant.log" >&2; exit 1; }
done
# One user sends every generated call, so the per-user and login rate limits are lifted:
# they would answer most calls 429 and leave the logic behind them untested.
(cd "$work" && PREFIQ__LOG__LEVEL=warn PREFIQ__CORTEX__ACCESS_TOKEN_TTL_S=7200 \
  PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE=10000000 PREFIQ__SERVER__LOGIN_RATE_LIMIT_PER_MINUTE=100000 \
  exec "$bin" serve --port "$port" 2>"$work/log.jsonl") &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
login() { # tenant → access token
  curl -fsS -H "X-Tenant: $1" -d "{\"email\": \"admin@$1.test\", \"password\": \"$password\"}" \
    "$base/api/v1/auth/login" | json_field '["access_token"]'
}
token=$(login schemathesis)
platform_token=$(login platform)
call() { # method path [body] → body; fails on a non-2xx answer
  curl -fsS -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    ${3:+-d "$3"} "$base$2"
}
company=$(call POST /api/v1/resources/company \
  '{"company_name": "Schemathesis Ltd", "abbr": "ST", "currency": "EUR"}' | json_field '["id"]')
fiscal_year=$(call POST /api/v1/resources/fiscal_year \
  "{\"year_name\": \"FY 2026\", \"company\": \"$company\", \"start_date\": \"2026-01-01\", \"end_date\": \"2026-12-31\"}" \
  | json_field '["id"]')
period=$(call GET "/api/v1/resources/accounting_period?order_by=start_date%20asc&limit=1" | json_field '["data"][0]["id"]')

# The user the users routes change: a change to a user ends its sessions at once, so
# changes aimed at the administrator whose token every call carries would sign the whole
# run out.
user=$(call POST /api/v1/users \
  '{"email": "bystander@schemathesis.test", "password": "bystander-password", "roles": ["Accountant"]}' \
  | json_field '["id"]')

# The generated calls' headers and the seeded values, for schemathesis.toml.
export ST_TOKEN=$token ST_PLATFORM_TOKEN=$platform_token ST_COMPANY=$company \
  ST_FISCAL_YEAR=$fiscal_year ST_PERIOD=$period ST_USER=$user

# Run from the throw-away directory, so hypothesis' example database goes with it.
cd "$work"
run_schemathesis() {
  schemathesis --config-file "$root/scripts/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --url "$base" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --exclude-path /api/v1/events/stream \
    --max-examples "$examples" \
    --generation-deterministic \
    --workers 1
}

# A check failure (a 5xx, a response that breaks the schema) always fails this script. A
# crash of schemathesis itself (seen: hypothesis' "AST constructor recursion depth mismatch"
# on Python 3.11 with several workers, hence one worker) is not a finding about the API: it
# is retried once, and reported.
for attempt in 1 2; do
  if run_schemathesis | tee "$work/schemathesis.txt"; then
    exit 0
  fi
  if grep -q "^Failures:" "$work/schemathesis.txt"; then
    echo "schemathesis found failures" >&2
    exit 1
  fi
  echo "schemathesis crashed without a finding (attempt $attempt)" >&2
done
echo "schemathesis crashed twice without reporting a check failure; see above" >&2
exit 1
