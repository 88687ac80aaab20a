#!/usr/bin/env bash
# Moves a tenant from SQLite to PostgreSQL with the debug binary, end to end:
# `scripts/tenant-move-check.sh`. A SQLite installation gets tenant `acme` with a company,
# a customer with a custom field, a runtime entity with a row and a submitted journal
# entry; `prefiq tenant export` writes it, a PostgreSQL installation (a fresh database on
# PREFIQ_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test) imports it as
# `globex`, and the two must answer the same: the trial balance and the balances
# (`prefiq accounting`), the customer, vehicle and journal entry lists (the API), and
# `prefiq audit verify`. Without PostgreSQL it moves to a second SQLite installation and
# says so. Traffic goes to 127.0.0.1 only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PREFIQ_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/prefiq}
port=${TENANT_MOVE_PORT:-4981}
admin=${PREFIQ_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
database="prefiq_move_$$"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "${pg:-}" ]; then psql "$admin" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
export PREFIQ_ADMIN_PASSWORD='correct horse battery'
unset RUST_LOG PREFIQ_ENV

serve() { # dir
  (cd "$1" && exec "$bin" serve --port "$port" >serve.log 2>&1) &
  server=$!
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server in $1 did not start:" >&2
  cat "$1/serve.log" >&2
  return 1
}

stop() {
  kill "$server"
  wait "$server" || true
  server=""
}

login() { # tenant
  curl -sf -H "X-Tenant: $1" -H 'Content-Type: application/json' \
    -d "{\"email\":\"admin@acme.test\",\"password\":\"$PREFIQ_ADMIN_PASSWORD\"}" \
    "http://127.0.0.1:$port/api/v1/auth/login" | jq -r .access_token
}

api() { # tenant token method path [body]
  local body=()
  if [ $# -ge 5 ]; then body=(-d "$5"); fi
  curl -sS --fail-with-body -X "$3" -H "X-Tenant: $1" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' "${body[@]}" "http://127.0.0.1:$port$4"
}

lists() { # tenant token: what must be the same on both sides
  for entity in customer vehicle journal_entry account; do
    api "$1" "$2" GET "/api/v1/resources/$entity?limit=500&order_by=name%20asc" | jq -S .data
  done
  api "$1" "$2" GET /api/v1/customize/customer/fields | jq -S .data
}

reports() { # dir tenant (without the line that says how long it took)
  "$bin" --dir "$1" accounting trial-balance --company 'Acme Ltd' --tenant "$2" --from 2026-01-01 --to 2026-12-31 | grep -v '^trial balance in'
  "$bin" --dir "$1" accounting balance --company 'Acme Ltd' --tenant "$2"
}

echo "== a SQLite installation with tenant acme"
src="$work/sqlite"
mkdir -p "$src"
"$bin" --dir "$src" tenant create acme --admin-email admin@acme.test >/dev/null 2>&1
serve "$src"
token=$(login acme)
company=$(api acme "$token" POST /api/v1/resources/company '{"company_name":"Acme Ltd","abbr":"ACME","currency":"USD"}' | jq -r .id)
account() { # path
  api acme "$token" GET "/api/v1/resources/account?filters=$(jq -rn --arg c "$company" --arg p "$1" '[["company","=",$c],["account_path","=",$p]] | tojson | @uri')" | jq -r '.data[0].id'
}
api acme "$token" POST /api/v1/resources/fiscal_year "{\"year_name\":\"FY 2026\",\"company\":\"$company\",\"start_date\":\"2026-01-01\",\"end_date\":\"2026-12-31\"}" >/dev/null
receivable=$(account assets:current:receivable)
bank=$(account assets:current:bank)
sales=$(account income:sales)
api acme "$token" POST /api/v1/customize/customer/fields '{"name":"region","type":"data"}' >/dev/null
api acme "$token" POST /api/v1/resources/customer "{\"customer_name\":\"Müller GmbH\",\"company\":\"$company\",\"receivable_account\":\"$receivable\",\"currency\":\"USD\",\"custom\":{\"region\":\"north\"}}" >/dev/null
api acme "$token" POST /api/v1/customize/entities '{"name":"vehicle","fields":[{"name":"plate","type":"data","required":true}]}' >/dev/null
api acme "$token" POST /api/v1/resources/vehicle '{"plate":"B-XY 123"}' >/dev/null
entry=$(api acme "$token" POST /api/v1/resources/journal_entry "{\"company\":\"$company\",\"posting_date\":\"2026-03-10\",\"lines\":[{\"account\":\"$bank\",\"debit\":{\"amount\":\"250.00\",\"currency\":\"USD\"}},{\"account\":\"$sales\",\"credit\":{\"amount\":\"250.00\",\"currency\":\"USD\"}}]}" | jq -r .id)
api acme "$token" POST "/api/v1/resources/journal_entry/$entry/submit" >/dev/null
lists acme "$token" >"$work/lists.before"
stop
reports "$src" acme >"$work/reports.before"

echo "== export"
"$bin" --dir "$src" tenant export acme --to "$work/acme.cxt" --include-password-hashes
test ! -e "$work/acme.cxt.partial"

dst="$work/target"
mkdir -p "$dst/config"
if psql "$admin" -qc "CREATE DATABASE $database" >/dev/null 2>&1; then
  pg=1
  printf 'database:\n  url: %s\n' "${admin%/*}/$database" >"$dst/config/base.yaml"
  echo "== import into PostgreSQL (${admin%/*}/$database) as globex"
else
  echo "SKIPPED the PostgreSQL half: cannot create a database on $admin; importing into SQLite instead"
  echo "== import into SQLite as globex"
fi
"$bin" --dir "$dst" migrate >/dev/null
"$bin" --dir "$dst" tenant import "$work/acme.cxt" --as globex
"$bin" --dir "$dst" audit verify

echo "== compare"
reports "$dst" globex >"$work/reports.after"
serve "$dst"
token=$(login globex)
lists globex "$token" >"$work/lists.after"
stop
diff -u "$work/reports.before" "$work/reports.after"
diff -u "$work/lists.before" "$work/lists.after"
cat "$work/reports.after"
echo "tenant-move-check: the reports, the record lists and the audit log agree"
