# syntax=docker/dockerfile:1.7
#
# The `prefiq` image: a release build in the Rust toolchain's image, then the binary alone
# on Debian 12 slim, running as an unprivileged user with its installation directory's
# data/ on a volume. See docs/operations.md ("Container image") for how it was exercised.
#
#   docker build -t codexion/prefiq .            (or: podman build / buildah bud)
#   docker run -p 4949:4949 -v codexion-data:/srv/codexion/data \
#     -v "$PWD/keys:/run/secrets/codexion:ro" codexion/prefiq
#
# PREFIQ_ENV=production refuses to start without the two signing keys (64 hex characters
# each; `openssl rand -hex 32 > audit-ed25519.key`), read from /run/secrets/codexion/ by
# default. Without a database URL it serves on SQLite in /srv/codexion/data.
#
# Both base images are pinned by tag; pin them by digest (FROM ...@sha256:...) in a
# registry you mirror, and override them with --build-arg when Docker Hub is not reachable.
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
# PREFIQ_PREBUILT=1 takes deploy/docker/prebuilt/prefiq (a release binary built on a
# Debian 12 host, copied there by deploy/docker/build-offline.sh) instead of compiling:
# for machines that cannot pull the Rust image. Off by default, and refused unless the
# file is there, so a normal build always compiles from this source.
ARG PREFIQ_PREBUILT=0
WORKDIR /src
# Build dependencies beyond the toolchain image: none. `cc`/`g++` (ring, the bundled
# SQLite, mimalloc, usearch's C++) come with the bookworm variant; nothing downloads at
# build time apart from crates.io (`--locked`: exactly Cargo.lock's versions).
COPY . .
# The registry and target caches survive between builds with BuildKit or buildah; the
# binary is copied out of the cache mount so that the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    if [ "$PREFIQ_PREBUILT" = 1 ]; then \
      install -D -m 0755 deploy/docker/prebuilt/prefiq /out/prefiq; \
    else \
      CARGO_INCREMENTAL=0 cargo build --release --locked -p prefiq-cli \
      && install -D -m 0755 target/release/prefiq /out/prefiq; \
    fi \
 && /out/prefiq --version

FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: NATS over TLS reads the system's roots (rustls-native-certs); the
# webhook and OIDC clients carry their own (webpki-roots). No init process: `prefiq` runs
# no child processes while serving and handles SIGTERM itself (drain, then exit 0).
# tzdata: jiff reads /usr/share/zoneinfo, and `app.timezone`, a tenant's zone and every
# schedule's zone must name a zone found there (only UTC works without it).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tzdata \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --system --gid 10001 codexion \
 && useradd --system --uid 10001 --gid codexion --home-dir /srv/codexion --shell /usr/sbin/nologin codexion \
 && install -d -o codexion -g codexion -m 0750 /srv/codexion /srv/codexion/data \
 && install -d -m 0755 /srv/codexion/config /run/secrets/codexion

COPY --from=builder /out/prefiq /usr/local/bin/prefiq
COPY deploy/docker/healthcheck.sh /usr/local/bin/prefiq-healthcheck

# The installation directory: config/ (base.yaml, production.yaml; mount it read-only),
# data/ (the SQLite databases, plugins, installed models, the development mailer), an
# optional .env, schema/ and themes/.
WORKDIR /srv/codexion
ENV PREFIQ_ENV=production \
    PREFIQ__SERVER__HOST=0.0.0.0 \
    PREFIQ__SERVER__PORT=4949 \
    PREFIQ__LOG__FORMAT=json \
    PREFIQ__AUDIT__SIGNING_KEY_FILE=/run/secrets/codexion/audit-ed25519.key \
    PREFIQ__CORTEX__SIGNING_KEY_FILE=/run/secrets/codexion/auth-ed25519.key
VOLUME ["/srv/codexion/data"]
EXPOSE 4949
USER codexion:codexion

# Boot to ready takes well under a second on SQLite (docs/operations.md, "Sizing"); the
# start period covers migrations of a large database at first start after an upgrade.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/prefiq-healthcheck"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/prefiq"]
CMD ["serve"]

LABEL org.opencontainers.image.title="prefiq" \
      org.opencontainers.image.description="Codexion: the prefiq binary (ERP platform), serving the REST API and the desk" \
      org.opencontainers.image.licenses="Apache-2.0"
