#!/usr/bin/env bash
# The accounting benchmark: generates a journal of N postings (default 1,000,000), then in
# one run measures `ledger -f FILE balance`, `hledger -f FILE balance`, `prefiq accounting
# import FILE` into an empty embedded SQLite database and the trial balance over the
# result, each with its wall time and peak memory (GNU time), and checks that the
# imported balances equal hledger's account by account and currency by currency.
#
#   scripts/accounting-bench.sh [--check] [N]
#
# --check: only the import and the comparison with hledger, with the debug binary (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
if [[ "${1:-}" == "--check" ]]; then check=true; shift; fi
postings="${1:-1000000}"
if $check; then
  prefiq="$PWD/target/debug/prefiq"
  [[ -x "$prefiq" ]] || cargo build -p prefiq-cli --locked
else
  cargo build --release -p prefiq-cli --locked
  prefiq="$PWD/target/release/prefiq"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
journal="$work/bench.journal"
"$prefiq" accounting generate --postings "$postings" --to "$journal"
measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
    echo "$label failed:" >&2; cat "$work/err" >&2; exit 1; }
  read -r seconds kib <"$work/time"
  printf '%-28s %8.2f s %8d MB\n' "$label" "$seconds" "$((kib / 1024))"
  echo "$seconds" >"$work/$label.s"
}
if ! $check; then
  command -v ledger >/dev/null && measure ledger ledger -f "$journal" balance
  measure hledger hledger -f "$journal" balance
fi
mkdir "$work/site"
cd "$work/site"
export PREFIQ__LOG__LEVEL=warn
measure prefiq-import "$prefiq" accounting import "$journal" --company Bench --create-currency USD
tail -1 "$work/out"
measure prefiq-trial-balance "$prefiq" accounting trial-balance --company Bench --from 1900-01-01 --to 2199-12-31
grep "trial balance in" "$work/out"
"$prefiq" accounting balance --company Bench >"$work/ours.tsv"
hledger -f "$journal" balance --flat -N -O csv >"$work/theirs.csv"
python3 - "$work/ours.tsv" "$work/theirs.csv" <<'PY'
import csv, sys
from decimal import Decimal
ours = {}
for line in open(sys.argv[1]):
    account, amount = line.rstrip("\n").split("\t")
    quantity, currency = amount.rsplit(" ", 1)
    ours[(account, currency)] = Decimal(quantity)
theirs = {}
rows = csv.reader(open(sys.argv[2]))
next(rows)
for account, amounts in rows:
    for amount in amounts.split(", "):
        if amount == "0":
            continue
        quantity, currency = amount.rsplit(" ", 1)
        if Decimal(quantity) != 0:
            theirs[(account, currency)] = Decimal(quantity)
if ours != theirs:
    for key in sorted(set(ours) | set(theirs)):
        if ours.get(key) != theirs.get(key):
            print(f"differs: {key}: prefiq {ours.get(key)} hledger {theirs.get(key)}")
    sys.exit(1)
print(f"balances equal hledger's: {len(ours)} (account, currency) pairs")
PY
if ! $check && [[ -f "$work/ledger.s" ]]; then
  python3 -c "import sys; i=float(open('$work/prefiq-import.s').read()); l=float(open('$work/ledger.s').read()); h=float(open('$work/hledger.s').read()); print(f'ratio import/ledger {i/l:.2f}, import/hledger {i/h:.2f}; {$postings/i:,.0f} postings/s')"
fi
