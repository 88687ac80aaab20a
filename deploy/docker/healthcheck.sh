#!/bin/bash
# The image's HEALTHCHECK: GET /readyz on the local port, healthy on a 200.
#
# `prefiq` has no probe subcommand, and curl would add 15 Debian packages beside
# ca-certificates (libcurl and its SSH, LDAP, SASL, HTTP/2, RTMP and Kerberos libraries;
# 5.5 MiB installed on Debian 12) to the runtime image for one request; bash, which
# Debian's slim image already has, can send it over /dev/tcp. Docker's --timeout bounds
# the whole probe.
set -u
port="${PREFIQ__SERVER__PORT:-4949}"
exec 3<>"/dev/tcp/127.0.0.1/${port}" || exit 1
printf 'GET /readyz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: healthcheck\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 5 status <&3 || exit 1
case "$status" in
  "HTTP/1.1 200"*) exit 0 ;;
  *) echo "readyz: ${status%$'\r'}"; exit 1 ;;
esac
