#!/usr/bin/env bash
# Measures the sizing figures docs/operations.md quotes, for a prefiq binary on SQLite:
# the binary's size (and stripped), its shared libraries, the time from start to the first
# 200 from /readyz (a new database, then five boots of the migrated one), resident memory
# idle and after load, and `wrk -t2 -c32 -d10s` (after 3 s of warm-up) on GET by id and on
# create, with non-2xx answers counted by wrk and by the server's own http_requests_total.
#
#   deploy/sizing.sh target/release/prefiq [OUTDIR]
#
# Needs curl, jq and wrk (Debian packages). The rate limit is turned off for the run
# (PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE=0): one token makes every request, and the
# default 3,000 a minute per user would answer most of them 429.
set -euo pipefail
bin=$(realpath "${1:?usage: deploy/sizing.sh BINARY [OUTDIR]}"); out=${2:-$(mktemp -d)}; mkdir -p "$out"
for tool in curl jq wrk; do command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }; done
port=${PORT:-15101}
mib() { stat -c %s "$1" | awk '{printf "%d bytes (%.1f MiB)", $1, $1/1048576}'; }
echo "binary: $bin, $(mib "$bin")"
cp "$bin" "$out/prefiq.stripped" && strip "$out/prefiq.stripped" && echo "stripped: $(mib "$out/prefiq.stripped")"
ldd "$bin" | awk '{print "  needs " $1}'
"$bin" --version
echo "load average before: $(cat /proc/loadavg)"
now_ms() { date +%s%3N; }
boot() { # dir -> prints ms to first 200 from /readyz, leaves server running, pid in $dir/pid
  local dir=$1 t0 t1
  t0=$(now_ms)
  (cd "$dir" && PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE=0 PREFIQ__LOG__LEVEL=warn exec "$bin" serve --port "$port" >"$dir/log" 2>&1) &
  echo $! > "$dir/pid"
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do sleep 0.005; done
  t1=$(now_ms); echo $((t1 - t0))
}
stop() { kill -TERM "$(cat "$1/pid")"; wait "$(cat "$1/pid")" 2>/dev/null || true; }
rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$(cat "$1/pid")/status"; }
dir=$(mktemp -d)
first=$(boot "$dir"); bd=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^prefiq_boot_duration_seconds /{print $2}')
sleep 5; idle_first=$(rss "$dir"); stop "$dir"
echo "first boot (create + migrate a new database): ${first} ms to /readyz 200 (prefiq_boot_duration_seconds $bd); RSS after 5 s idle: ${idle_first} MiB"
times=()
for i in 1 2 3 4 5; do t=$(boot "$dir"); times+=("$t"); [ "$i" = 5 ] || stop "$dir"; done
echo "boot of the migrated database, 5 runs: ${times[*]} ms to /readyz 200"
sleep 5; echo "idle RSS (migrated, no tenant, 5 s after ready): $(rss "$dir") MiB"
# A tenant, a token, and a row to read.
(cd "$dir" && PREFIQ_ADMIN_PASSWORD='correct horse battery' "$bin" tenant create acme --admin-email admin@acme.test >/dev/null 2>&1)
token=$(curl -fsS -H 'X-Tenant: acme' -d '{"email": "admin@acme.test", "password": "correct horse battery"}' "http://127.0.0.1:$port/api/v1/auth/login" | jq -r .access_token)
id=$(curl -fsS -H "Authorization: Bearer $token" -d '{"description": "seed"}' "http://127.0.0.1:$port/api/v1/resources/todo" | jq -r .id)
for i in $(seq 1 200); do curl -fsS -o /dev/null -H "Authorization: Bearer $token" -d "{\"description\": \"seed $i\"}" "http://127.0.0.1:$port/api/v1/resources/todo"; done
echo "RSS with one tenant and 201 rows, after a few requests: $(rss "$dir") MiB"
cat > "$out/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA
cat > "$out/create.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"description": "load"}'
LUA
scrape() { curl -fsS "http://127.0.0.1:$port/metrics" | awk -v r="$1" '$0 ~ "^http_requests_total" && index($0, r) {split($0, a, "status=\""); split(a[2], b, "\""); s[b[1]] += $NF} END {for (k in s) printf "%s=%d ", k, s[k]}'; }
for scenario in "GET by id|get.lua|/api/v1/resources/todo/$id|route=\"/api/v1/resources/{entity}/{id}\"" \
                "create|create.lua|/api/v1/resources/todo|route=\"/api/v1/resources/{entity}\""; do
  IFS='|' read -r name script path route <<<"$scenario"
  wrk -t2 -c32 -d3s -s "$out/$script" "http://127.0.0.1:$port$path" >/dev/null 2>&1  # warm-up
  before=$(scrape "$route")
  wrk -t2 -c32 -d10s --latency -s "$out/$script" "http://127.0.0.1:$port$path" > "$out/wrk-$script.txt" 2>&1
  after=$(scrape "$route")
  rps=$(awk '/Requests\/sec/{print $2}' "$out/wrk-$script.txt")
  p50=$(awk '$1=="50%"{print $2}' "$out/wrk-$script.txt"); p99=$(awk '$1=="99%"{print $2}' "$out/wrk-$script.txt")
  non2xx=$(awk '/Non-2xx/{print $NF}' "$out/wrk-$script.txt"); errs=$(grep -h 'Socket errors' "$out/wrk-$script.txt" || true)
  echo "$name: ${rps} req/s, p50 ${p50}, p99 ${p99}, wrk non-2xx/3xx: ${non2xx:-0} ${errs}; server statuses before: ${before}; after: ${after}"
  echo "  RSS after: $(rss "$dir") MiB; load average: $(cat /proc/loadavg)"
done
du -sh "$dir/data" | awk '{print "data/ after the runs: " $1}'
stop "$dir"; rm -rf "$dir"
