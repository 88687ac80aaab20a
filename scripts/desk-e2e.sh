#!/usr/bin/env bash
# The desk end to end in headless Chromium: `scripts/desk-e2e.sh`. Serves a fresh
# installation on embedded SQLite with one tenant (`acme`, its administrator's password
# only), then runs e2e/desk.mjs (playwright-core driving Debian's /usr/bin/chromium) at
# http://acme.localhost:PORT (Chromium resolves *.localhost to loopback). Screenshots of
# the key pages go to target/e2e/. Exits non-zero when a step fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PREFIQ_BIN:-$root/target/debug/prefiq}
port=${DESK_E2E_PORT:-4978}
shots=${SCREENSHOTS:-$root/target/e2e}
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
server=
if [ ! -x /usr/bin/chromium ]; then
  echo "desk e2e: /usr/bin/chromium is missing (apt-get install chromium)" >&2
  exit 1
fi
if [ ! -d "$root/e2e/node_modules/playwright-core" ]; then
  (cd "$root/e2e" && npm ci --no-audit --no-fund --silent)
fi
export PREFIQ_ADMIN_PASSWORD='correct horse battery'
cd "$dir"
"$bin" tenant create acme --admin-email admin@acme.test >/dev/null
"$bin" serve --port "$port" >serve.log 2>&1 &
server=$!
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.05
done
rm -rf "$shots"
cd "$root/e2e"
if ! BASE_URL="http://acme.localhost:$port" EMAIL=admin@acme.test PASSWORD="$PREFIQ_ADMIN_PASSWORD" \
  SCREENSHOTS="$shots" node desk.mjs; then
  echo "--- server log (last 40 lines)" >&2
  tail -40 "$dir/serve.log" >&2
  exit 1
fi
