#!/usr/bin/env bash
# The plugin commands end to end with the debug binary, in a fresh installation: make a
# publisher key, pack and sign the example plugins, write a registry index, verify (and
# see a tampered package refused, naming the file), install one from a file and one from
# the registry, enable one for a tenant, list, disable, uninstall.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIQ=${PREFIQ:-$ROOT/target/debug/prefiq}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PREFIQ_LOG=error

fail() { echo "plugins-cli-check: $*" >&2; exit 1; }
expect_fail() { # description, expected fragment, command...
  local what=$1 fragment=$2; shift 2
  local out
  if out=$("$@" 2>&1); then fail "$what: succeeded, expected a refusal"; fi
  grep -qF -- "$fragment" <<<"$out" || fail "$what: expected '$fragment' in: $out"
  echo "refused as expected ($what): $(tail -1 <<<"$out")"
}

"$ROOT/scripts/build-example-plugins.sh" >/dev/null
cd "$WORK"

# A scaffolded plugin builds with Debian's rustc and packs.
"$PREFIQ" plugin new hello-world >/dev/null
/usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -C opt-level=s -C panic=abort -C lto -C strip=symbols \
  -o hello-world/package/plugin.wasm hello-world/src/lib.rs
"$PREFIQ" plugin pack hello-world/package --out hello-world.cxp
expect_fail "a bad name" "is not a plugin name" "$PREFIQ" plugin new Hello
PUBLIC=$("$PREFIQ" plugin keygen --out publisher.key | sed -n 's/^public key: //p')
[ -n "$PUBLIC" ] || fail "keygen printed no public key"
[ "$(stat -c %a publisher.key)" = 600 ] || fail "the secret key is not mode 0600"
mkdir registry
"$PREFIQ" plugin pack "$ROOT/target/example-plugins/journal-guard" --key publisher.key --out registry/journal-guard-0.1.0.cxp
"$PREFIQ" plugin pack "$ROOT/target/example-plugins/todo-followup" --out todo-followup.cxp
"$PREFIQ" plugin sign todo-followup.cxp --key publisher.key
"$PREFIQ" plugin index registry
"$PREFIQ" plugin verify todo-followup.cxp --trust "$PUBLIC"

cp todo-followup.cxp tampered.cxp
printf '\x01' | dd of=tampered.cxp bs=1 seek=9000 conv=notrunc 2>/dev/null
expect_fail "tampered" "plugin.wasm: digest mismatch" "$PREFIQ" plugin verify tampered.cxp --trust "$PUBLIC"
"$PREFIQ" plugin keygen --out stranger.key >/dev/null
STRANGER=$("$PREFIQ" plugin keygen --out stranger2.key | sed -n 's/^public key: //p')
expect_fail "untrusted" "which this installation does not trust" "$PREFIQ" plugin verify todo-followup.cxp --trust "$STRANGER"

mkdir -p inst/config
cat > inst/config/base.yaml <<YAML
plugins:
  trusted_keys: ["$PUBLIC"]
  registry: $WORK/registry
YAML
P=("$PREFIQ" --dir inst)
PREFIQ_ADMIN_PASSWORD='correct horse' "${P[@]}" tenant create acme --admin-email admin@acme.test >/dev/null
expect_fail "tampered install" "plugin.wasm" "${P[@]}" plugin install tampered.cxp
"${P[@]}" plugin install todo-followup.cxp
expect_fail "twice" "already installed" "${P[@]}" plugin install todo-followup.cxp
"${P[@]}" plugin search journal | grep -q "journal-guard" || fail "search did not find journal-guard"
"${P[@]}" plugin install journal-guard@0.1.0
expect_fail "unknown" "no plugin nothing" "${P[@]}" plugin install nothing@1.0.0
"${P[@]}" plugin enable journal-guard --tenant acme --config '{"max_amount": 500}'
expect_fail "bad settings" "max_amount: must be a number" "${P[@]}" plugin enable journal-guard --tenant acme --config '{"max_amount": "lots"}'
"${P[@]}" plugin list | grep -q "journal-guard .* enabled for: acme" || fail "list does not show journal-guard enabled for acme"
"${P[@]}" plugin disable journal-guard --tenant acme
"${P[@]}" plugin uninstall journal-guard --purge
"${P[@]}" plugin list --json | jq -e 'length == 1 and .[0].name == "todo-followup"' >/dev/null || fail "list after uninstall"
echo "plugins-cli-check: ok"
