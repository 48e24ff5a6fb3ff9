#!/usr/bin/env bash
# Installs what building and testing augur needs on a fresh Debian machine, when missing:
# cmake (Pingora's zlib-ng), a C compiler, curl (HTTPS/HTTP/2 test client), wireguard-tools
# (`wg`: the keys test checks augur's keys against it), wireguard-go and iproute2 and python3 (the tunnel
# interop test runs a WireGuard we did not write in a network namespace), prometheus
# (`promtool`: the metrics test checks /metrics with it; under systemd the package also
# enables a Prometheus server, which `systemctl disable --now prometheus` stops).
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(gcc)
command -v curl >/dev/null || need+=(curl)
command -v kill >/dev/null || need+=(procps)
command -v wg >/dev/null || need+=(wireguard-tools)
command -v wireguard-go >/dev/null || need+=(wireguard-go)
command -v ip >/dev/null || need+=(iproute2)
command -v python3 >/dev/null || need+=(python3)
# promtool only: without its recommends (a node exporter, another daemon).
lean=()
command -v promtool >/dev/null || lean+=(prometheus)
if [ $(( ${#need[@]} + ${#lean[@]} )) -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${need[*]} ${lean[*]}"
  $SUDO apt-get update -qq
  if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if [ ${#lean[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
  fi
fi
