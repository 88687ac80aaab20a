#!/usr/bin/env bash
# The job queue benchmark, with graphile-worker as the baseline:
#
# 1. prefiq's runner (crates/prefiq-worker/benches/jobs.rs, bench profile) on SQLite and on
#    a throw-away PostgreSQL database: N no-op jobs enqueued in batches of 1,000 and run
#    to completion at concurrency 10, then enqueue-to-start latency at a steady 1,000
#    jobs/s for 5 s, and one job at a time.
# 2. graphile-worker (npm, pinned, installed into a cache outside the repository) on a
#    throw-away database of the same PostgreSQL, measured the same way
#    (scripts/graphile-bench.mjs) with the batching options of its own perf test.
# 3. A table of both, with the ratios.
#
#   scripts/jobs-bench.sh [N]          (N defaults to JOBS_BENCH_JOBS, else 100,000)
#
# PostgreSQL: PREFIQ_TEST_POSTGRES_URL (a server URL; default
# postgres://postgres@127.0.0.1:5432/test). The other JOBS_BENCH_* settings of the two
# benches pass through (JOBS_BENCH_CONCURRENCY, JOBS_BENCH_RATE, JOBS_BENCH_LATENCY_SECS,
# JOBS_BENCH_SERIAL, ...). GRAPHILE_WORKER_VERSION overrides the pinned version. Needs
# cargo, node (20+), npm, psql and python3. Exits non-zero, saying what, when a step or
# a measurement failed.
set -euo pipefail
cd "$(dirname "$0")/.."

export JOBS_BENCH_JOBS="${1:-${JOBS_BENCH_JOBS:-100000}}"
export PREFIQ_TEST_POSTGRES_URL="${PREFIQ_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# The newest graphile-worker that runs on Node 20 (0.18 needs Node 22.18).
graphile_version="${GRAPHILE_WORKER_VERSION:-0.17.3}"
graphile_dir="${XDG_CACHE_HOME:-$HOME/.cache}/codexion/graphile-worker"

step() { printf '\n== %s\n' "$*" >&2; }
die() { echo "jobs-bench: FAILED: $*" >&2; exit 1; }

for tool in cargo node npm psql python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
admin_url="$PREFIQ_TEST_POSTGRES_URL"
psql "$admin_url" -Atqc "SELECT 1" >/dev/null || die "PostgreSQL at $admin_url cannot be reached"

work="$(mktemp -d)"
database="gw_bench_$$_$(date +%s)"
cleanup() {
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
failed=()

step "building the Rust bench (bench profile)"
cargo bench -p prefiq-worker --bench jobs --no-run || die "the Rust bench did not build"

step "prefiq: $JOBS_BENCH_JOBS jobs on SQLite and PostgreSQL"
if ! cargo bench -p prefiq-worker --bench jobs | tee "$work/prefiq.jsonl"; then
  failed+=("the prefiq bench (see its output above)")
fi

step "graphile-worker $graphile_version into $graphile_dir"
installed="$(node -p "require('$graphile_dir/node_modules/graphile-worker/package.json').version" 2>/dev/null || true)"
if [[ "$installed" != "$graphile_version" ]]; then
  mkdir -p "$graphile_dir"
  [[ -f "$graphile_dir/package.json" ]] || echo '{"private": true}' >"$graphile_dir/package.json"
  npm install --prefix "$graphile_dir" --no-audit --no-fund --save-exact \
    "graphile-worker@$graphile_version" >&2 || die "npm could not install graphile-worker@$graphile_version"
fi

step "graphile-worker: $JOBS_BENCH_JOBS jobs on PostgreSQL (database $database)"
psql "$admin_url" -qc "CREATE DATABASE $database" || die "could not create the database $database"
base="${admin_url%%\?*}"
graphile_url="${base%/*}/$database${admin_url#"$base"}"
if ! GRAPHILE_DIR="$graphile_dir" GRAPHILE_DATABASE_URL="$graphile_url" \
  node scripts/graphile-bench.mjs | tee "$work/graphile.jsonl"; then
  failed+=("the graphile-worker bench (see its output above)")
fi

step "summary"
python3 - "$work/prefiq.jsonl" "$work/graphile.jsonl" <<'PY' || failed+=("the summary")
import json, sys

def load(path):
    rows = {}
    try:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                rows[(r["measurement"], r["backend"])] = r
    except FileNotFoundError:
        pass
    return rows

prefiq, graphile = load(sys.argv[1]), load(sys.argv[2])
columns = [("prefiq SQLite", prefiq, "sqlite"), ("prefiq PG", prefiq, "postgres"),
           ("graphile PG", graphile, "postgres")]
# (label, measurement, field, higher is better)
metrics = [
    ("enqueue, batches of 1,000 (jobs/s)", "throughput", "enqueue_jobs_per_s", True),
    ("run to completion (jobs/s)", "throughput", "jobs_per_s", True),
    ("  of which handlers all ran (s)", "throughput", "handlers_done_s", False),
    ("  PG transactions per job", "throughput", "pg_transactions_per_job", False),
    ("steady enqueue: achieved (jobs/s)", "latency", "achieved_enqueue_jobs_per_s", True),
    ("  enqueues all returned after (s)", "latency", "enqueues_done_s", False),
    ("  enqueue-to-start p50 (ms)", "latency", "p50_ms", False),
    ("  enqueue-to-start p99 (ms)", "latency", "p99_ms", False),
    ("  enqueue-to-start max (ms)", "latency", "max_ms", False),
    ("  jobs run", "latency", "ran", True),
    ("one at a time: enqueue p50 (ms)", "latency_serial", "enqueue_p50_ms", False),
    ("  enqueue-to-start p50 (ms)", "latency_serial", "p50_ms", False),
    ("  enqueue-to-start p99 (ms)", "latency_serial", "p99_ms", False),
]

def cell(rows, backend, measurement, field):
    r = rows.get((measurement, backend))
    return None if r is None else r.get(field)

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else f"{v:,.2f}"

width = 36
print(f"{'':{width}}" + "".join(f"{c[0]:>15}" for c in columns) + f"{'PG ratio':>20}")
for label, measurement, field, higher in metrics:
    values = [cell(rows, backend, measurement, field) for _, rows, backend in columns]
    ratio = "-"
    if isinstance(values[1], (int, float)) and isinstance(values[2], (int, float)) and values[2]:
        r = values[1] / values[2]
        better = None if abs(r - 1) < 0.02 else (r > 1) == higher
        ratio = f"{r:.2f}" + ("" if better is None else (" (prefiq)" if better else " (graphile)"))
    print(f"{label:{width}}" + "".join(f"{fmt(v):>15}" for v in values) + f"{ratio:>20}")
print("\nPG ratio: prefiq PG ÷ graphile-worker PG; in brackets, the better of the two.")

bad = [f"{name} {m}" for name, rows in (("prefiq", prefiq), ("graphile", graphile))
       for (m, b), r in sorted(rows.items()) if not r.get("ok")]
expected = [("prefiq", prefiq, m, b) for m in ("throughput", "latency", "latency_serial")
            for b in ("sqlite", "postgres")] + \
           [("graphile", graphile, m, "postgres") for m in ("throughput", "latency", "latency_serial")]
missing = [f"{name} {m} on {b}" for name, rows, m, b in expected if (m, b) not in rows]
if bad or missing:
    for b in bad:
        print(f"not ok: {b}", file=sys.stderr)
    for m in missing:
        print(f"missing: {m}", file=sys.stderr)
    sys.exit(1)
PY

if ((${#failed[@]})); then
  for what in "${failed[@]}"; do echo "jobs-bench: FAILED: $what" >&2; done
  exit 1
fi
echo "jobs-bench: all measurements ok" >&2
