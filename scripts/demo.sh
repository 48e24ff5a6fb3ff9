#!/usr/bin/env bash
# Quick start: builds augur (release) and runs `augur demo`: the proxy on 127.0.0.1:8080 in
# front of three built-in backends, admin on 127.0.0.1:9901.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
cargo build --release -p augur-proxy
exec target/release/augur demo
