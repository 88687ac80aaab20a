#!/usr/bin/env bash
# Makes compose.yaml's two signing keys (64 hex characters each, Ed25519 seeds) if they
# do not exist, owned by the image's user (uid 10001) with mode 0600: compose mounts
# secrets with the file's own owner and mode. Run as root, or chown them yourself.
#
# Keep copies of both somewhere safe: the audit key is what checkpoints verify against,
# and docs/operations.md ("Key rotation") explains what replacing either one means.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)/secrets
mkdir -p "$dir"
for name in audit-ed25519 auth-ed25519; do
  file=$dir/$name.key
  if [ -e "$file" ]; then
    echo "kept $file"
    continue
  fi
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file")
  chown 10001:10001 "$file" 2>/dev/null || echo "could not chown $file to 10001 (not root?): the container must be able to read it" >&2
  echo "made $file"
done
