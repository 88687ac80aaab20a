#!/usr/bin/env bash
# Tests the Python client (clients/python) against a fresh `prefiq serve`. Usage:
#   scripts/python-client-check.sh
#
# It makes an installation in a temporary directory (the tenant `acme`, administrator
# admin@acme.test), serves it with the debug binary (target/debug/prefiq, or $PREFIQ_BIN) on
# a free port, and runs every test under clients/python/tests with the CODEXION_* variables
# pointing at it: the HTTP mechanics against a fake server (test_http), the client against
# the server (test_live) and against its OpenAPI document (test_contract). The tests import
# the package from clients/python/src: nothing is installed. The package is type-checked
# with `mypy --strict` first when mypy is installed.
#
# It fails when a test fails, and when the live or contract tests did not run
# (CODEXION_REQUIRE_LIVE=1 turns their skip into a failure). The server is stopped on exit.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
bin=$(realpath "${PREFIQ_BIN:-$root/target/debug/prefiq}")
[ -x "$bin" ] || { echo "no prefiq binary at $bin: run cargo build -p prefiq-cli" >&2; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "the Python client needs Python 3.10 or later" >&2; exit 1; }
client="$root/clients/python"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if python3 -m mypy --version >/dev/null 2>&1; then
  echo "== mypy --strict clients/python"
  MYPYPATH="$client/src" python3 -m mypy --strict --no-error-summary \
    --cache-dir "$work/mypy-cache" "$client/src" "$client/tests" \
    || { echo "python-client: mypy found type errors" >&2; exit 1; }
else
  echo "== mypy is not installed: type check left out (pip install mypy)"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
password='correct horse'
(cd "$work" && PREFIQ__LOG__LEVEL=warn PREFIQ_ADMIN_PASSWORD="$password" \
  "$bin" tenant create acme --admin-email admin@acme.test >/dev/null 2>"$work/tenant.log") \
  || { cat "$work/tenant.log" >&2; exit 1; }
(cd "$work" && PREFIQ__LOG__LEVEL=warn exec "$bin" serve --port "$port" 2>"$work/serve.log") &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
ready=0
for _ in $(seq 1 300); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$ready" -ne 1 ]; then
  echo "python-client: the server at $base did not become ready" >&2
  tail -20 "$work/serve.log" >&2
  exit 1
fi

echo "== python3 -m unittest discover -s clients/python/tests -v (server $base)"
status=0
CODEXION_URL="$base" CODEXION_TENANT=acme CODEXION_EMAIL=admin@acme.test \
  CODEXION_PASSWORD="$password" CODEXION_REQUIRE_LIVE=1 PYTHONPATH="$client/src" \
  python3 -m unittest discover -s "$client/tests" -v >"$work/tests.log" 2>&1 || status=$?
cat "$work/tests.log"

# The counts, from unittest's report: "Ran N tests", the skips and expected failures of the
# closing line, and the tests named by FAIL:/ERROR: headings (a test whose subtests failed
# is counted once).
read -r ran passed failed skipped < <(python3 - "$work/tests.log" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
ran = int((re.findall(r"^Ran (\d+) tests? in ", text, re.M) or ["0"])[-1])
closing = (re.findall(r"^(?:OK|FAILED)(?: \((.*)\))?$", text, re.M) or [""])[-1]
counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", closing)}
failed = len({m for m in re.findall(r"^(?:FAIL|ERROR): (\S+ \([^)]*\))", text, re.M)})
failed += counts.get("unexpected_successes", 0)
skipped = counts.get("skipped", 0)
passed = ran - failed - skipped - counts.get("expected_failures", 0)
print(ran, max(passed, 0), failed, skipped)
PY
)
if [ "$status" -eq 0 ] && [ "$ran" -eq 0 ]; then
  echo "python-client: no test ran" >&2
  status=1
fi
# A live test skipped for want of a server is a failure here (CODEXION_REQUIRE_LIVE makes
# it one; this also catches a skip worded otherwise).
if grep -E "skipped '.*(no live server|unreachable|CODEXION_)" "$work/tests.log" >&2; then
  echo "python-client: live tests were skipped" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "== server log (last 30 lines)" >&2
  tail -30 "$work/serve.log" >&2
fi
echo "python-client: $passed passed, $failed failed, $skipped skipped"
exit "$status"
