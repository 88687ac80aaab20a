#!/usr/bin/env bash
# Checks the release artifacts without building an image or contacting a cluster:
#
#   1. the CycloneDX SBOM of the prefiq binary (scripts/sbom.py → target/sbom/prefiq.cdx.json),
#      validated by the script and against the official 1.5 schema;
#   2. licences, bans and sources with cargo-deny (deny.toml; installed if missing);
#   3. the Prometheus alert rules (promtool check rules, and their unit tests);
#   4. compose.yaml (parsed and checked; `docker-compose config` when installed);
#   5. the Helm chart: lint --strict and renders for SQLite and PostgreSQL
#      (deploy/helm/check-chart.py, with PyPI's helm-python-sdk in a virtualenv);
#   6. the systemd unit (systemd-analyze verify, and security --offline), when available;
#   7. the Dockerfile's essentials, and shellcheck of the deploy scripts when installed.
#
# Exits non-zero when any check fails. RELEASE_CHECK_HELM=0 skips the chart's render (it
# downloads a 75 MB wheel the first time). Building and running the image is
# deploy/docker/build-offline.sh (root, podman, a release binary), not part of this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$root/target/release-check
mkdir -p "$work"
failed=()

step() { printf '\n== release-check: %s\n' "$*"; }
fail() { echo "release-check: FAILED: $*" >&2; failed+=("$*"); }

step "SBOM (CycloneDX 1.5)"
if ! python3 -c 'import cyclonedx.validation.json, jsonschema' 2>/dev/null; then
  # The official schema ships with cyclonedx-python-lib; without it the script's own
  # structural checks still run.
  pip install -q 'cyclonedx-python-lib[json-validation]' 2>/dev/null \
    || echo "release-check: cyclonedx-python-lib could not be installed; structural checks only"
fi
scripts/sbom.py || fail "SBOM"

step "cargo-deny: licenses, bans, sources"
if ! cargo deny --version >/dev/null 2>&1; then
  echo "installing cargo-deny (compiles for a few minutes)"
  cargo install --locked cargo-deny
fi
cargo deny --locked check licenses bans sources 2>"$work/deny.log" || { tail -40 "$work/deny.log" >&2; fail "cargo deny"; }
tail -1 "$work/deny.log"

step "Prometheus alert rules"
if ! command -v promtool >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool check rules deploy/prometheus/alerts.yaml || fail "promtool check rules"
(cd deploy/prometheus && promtool test rules alerts.test.yaml) || fail "promtool test rules"

step "compose.yaml"
python3 - <<'PY' || fail "compose.yaml structure"
import sys, yaml
doc = yaml.safe_load(open("compose.yaml"))
services = doc["services"]
problems = []
for name in ("prefiq", "migrate", "postgres", "nats", "redis"):
    if name not in services:
        problems.append(f"no service {name}")
for name in ("postgres", "nats", "redis"):
    if "healthcheck" not in services.get(name, {}):
        problems.append(f"{name} has no healthcheck")
env = services["prefiq"]["environment"]
for key in ("PREFIQ__DATABASE__URL", "PREFIQ__EVENTS__NATS_URL", "PREFIQ__CACHE__REDIS_URL",
            "PREFIQ__AUDIT__SIGNING_KEY_FILE", "PREFIQ__CORTEX__SIGNING_KEY_FILE"):
    if key not in env:
        problems.append(f"prefiq has no {key}")
if services["prefiq"]["depends_on"]["migrate"]["condition"] != "service_completed_successfully":
    problems.append("prefiq must wait for the migration")
for p in problems:
    print("compose.yaml:", p, file=sys.stderr)
print(f"compose.yaml: {len(services)} services parsed, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
if command -v docker-compose >/dev/null; then
  if CODEXION_DB_PASSWORD=check docker-compose -f compose.yaml config -q; then
    echo "docker-compose config: valid"
  else
    fail "docker-compose config"
  fi
else
  echo "docker-compose not installed: compose.yaml parsed and checked by structure only"
fi

step "Helm chart"
if [ "${RELEASE_CHECK_HELM:-1}" = 1 ]; then
  venv=$work/helm-venv
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import helm_python, yaml' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q helm-python-sdk pyyaml
  fi
  "$venv/bin/python" deploy/helm/check-chart.py || fail "Helm chart"
else
  python3 deploy/helm/check-chart.py || fail "Helm chart (static checks)"
fi

step "systemd unit"
if command -v systemd-analyze >/dev/null; then
  # verify wants the binary to exist: point the unit at one that does.
  sed "s#/usr/local/bin/prefiq#/bin/true#g" deploy/systemd/prefiq.service > "$work/prefiq.service"
  systemd-analyze verify "$work/prefiq.service" || fail "systemd-analyze verify"
  # --threshold counts tenths: 30 is an exposure of 3.0 (the unit scores 1.5, "OK").
  systemd-analyze security --offline=true --threshold=30 "$work/prefiq.service" | tail -1 \
    || fail "systemd-analyze security: exposure above 3.0"
else
  echo "systemd-analyze not installed: the unit was not verified"
fi

step "Dockerfile and deploy scripts"
for needle in '^FROM .* AS builder$' '^FROM .* AS runtime$' 'cargo build --release --locked -p prefiq-cli' \
  '^USER codexion' '^HEALTHCHECK ' '^EXPOSE 4949$' '^VOLUME \["/srv/codexion/data"\]$'; do
  grep -Eq "$needle" Dockerfile || fail "Dockerfile lacks $needle"
done
if ! grep -qx 'target/' .dockerignore || ! grep -qx 'data/' .dockerignore; then
  fail ".dockerignore must exclude target/ and data/"
fi
echo "Dockerfile: two stages, release build with --locked, non-root, HEALTHCHECK, EXPOSE, VOLUME"
if command -v shellcheck >/dev/null; then
  shellcheck scripts/release-check.sh deploy/docker/*.sh deploy/compose/make-keys.sh || fail "shellcheck"
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "release-check: ${#failed[@]} failed: ${failed[*]}" >&2
  exit 1
fi
echo "release-check: all checks passed"
