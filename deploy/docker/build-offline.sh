#!/usr/bin/env bash
# Builds the image from the Dockerfile on a machine that reaches Debian's mirrors and
# crates.io but no container registry (so neither rust:… nor debian:…-slim can be pulled):
#
#   1. debootstrap a minimal Debian 12 root file system (variant minbase, the same
#      packages debian:bookworm-slim starts from) and import it as a local base image;
#   2. put a release `prefiq` built on this (Debian 12) host in deploy/docker/prebuilt/;
#   3. build the Dockerfile with both base images pointing at the local one and
#      PREFIQ_PREBUILT=1, so its runtime stage (user, packages, volume, healthcheck,
#      environment) is the one that ran;
#   4. run the image with fresh signing keys and probe /readyz from outside and with the
#      image's own HEALTHCHECK.
#
#   deploy/docker/build-offline.sh [BINARY]      (default: $CARGO_TARGET_DIR or target/, release/prefiq)
#
# Needs root, debootstrap and podman (Debian packages `debootstrap podman`). The root
# file system lives under /var/tmp/codexion-rootfs (kept between runs), never in the tree.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=${1:-${CARGO_TARGET_DIR:-$root/target}/release/prefiq}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=/var/tmp/codexion-rootfs/$suite
base=localhost/codexion/debian:$suite-minbase
image=${IMAGE:-localhost/codexion/prefiq:dev}
engine=${ENGINE:-podman}
# The OCI runtime, when the default does not run here: on a host whose cgroup v2
# hierarchy is mounted beside v1 with a controller on it ("hybrid"), crun refuses to
# create containers and runc works (RUNTIME=runc).
runtime=()
[ -n "${RUNTIME:-}" ] && runtime=(--runtime "$RUNTIME")
# Extra `run` options: where the host refuses to raise resource limits (no
# CAP_SYS_RESOURCE), podman's default nproc and nofile limits must be lowered
# (RUN_ARGS="--ulimit nofile=20000:20000 --ulimit nproc=4096:4096").
read -r -a run_args <<<"${RUN_ARGS:-}"

[ -x "$binary" ] || { echo "no release binary at $binary (cargo build --release -p prefiq-cli)" >&2; exit 1; }
command -v "$engine" >/dev/null || { echo "$engine is not installed (apt-get install podman)" >&2; exit 1; }

if ! "$engine" "${runtime[@]}" image exists "$base" 2>/dev/null; then
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed" >&2; exit 1; }
  if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror"
  fi
  # What debian:*-slim drops as well: downloaded packages, package lists, documentation,
  # manual pages and translations (and dpkg told not to install them again).
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
SLIM
  tar -C "$rootfs" --numeric-owner -c . | "$engine" "${runtime[@]}" import \
    --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$base"
fi

install -D -m 0755 "$binary" "$root/deploy/docker/prebuilt/prefiq"
trap 'rm -f "$root/deploy/docker/prebuilt/prefiq"' EXIT
started=$(date +%s)
"$engine" "${runtime[@]}" build --format docker \
  --build-arg RUST_IMAGE="$base" --build-arg RUNTIME_IMAGE="$base" --build-arg PREFIQ_PREBUILT=1 \
  -t "$image" "$root"
echo "built $image in $(( $(date +%s) - started )) s"
"$engine" "${runtime[@]}" image inspect "$image" --format 'size: {{.Size}} bytes; user: {{.Config.User}}; healthcheck: {{.Config.Healthcheck.Test}}'

# Run it as production would: keys from a read-only mount, data on a named volume.
keys=$(mktemp -d)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$keys/audit-ed25519.key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$keys/auth-ed25519.key"
# The image's user (uid 10001) reads them; 0600, or prefiq warns that others may read them.
chown 10001:10001 "$keys"/*.key && chmod 0600 "$keys"/*.key && chmod 0755 "$keys"
name=codexion-smoke-$$
port=${PORT:-14949}
cleanup() {
  "$engine" "${runtime[@]}" rm -f "$name" >/dev/null 2>&1 || true
  "$engine" "${runtime[@]}" volume rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$keys" "$root/deploy/docker/prebuilt/prefiq"
}
trap cleanup EXIT
"$engine" "${runtime[@]}" run -d "${run_args[@]}" --name "$name" -p "127.0.0.1:$port:4949" \
  -v "$name:/srv/codexion/data" -v "$keys:/run/secrets/codexion:ro" "$image" >/dev/null
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/readyz"; echo
"$engine" "${runtime[@]}" exec "$name" id
"$engine" "${runtime[@]}" healthcheck run "$name" && echo "HEALTHCHECK: healthy"
"$engine" "${runtime[@]}" exec "$name" prefiq tenant create smoke --admin-email admin@smoke.test --admin-password 'correct horse battery'
curl -fsS -o /dev/null -w 'login as smoke: %{http_code}\n' -H 'X-Tenant: smoke' \
  -d '{"email": "admin@smoke.test", "password": "correct horse battery"}' "http://127.0.0.1:$port/api/v1/auth/login"
"$engine" "${runtime[@]}" stop -t 15 "$name" >/dev/null
echo "exit code after SIGTERM: $("$engine" "${runtime[@]}" inspect "$name" --format '{{.State.ExitCode}}')"
