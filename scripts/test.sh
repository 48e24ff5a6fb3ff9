#!/usr/bin/env bash
# The whole test suite from a fresh machine: prerequisites, fmt, clippy, unit and end-to-end
# tests, `augur check` on every example, a smoke run of the scenario simulator, and a short
# run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
chmod 600 examples/keys/*.key   # git does not keep the mode a tunnel's key file needs

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests (unit + end-to-end)"
cargo test --workspace
echo "== tunnel rekey on boringtun's mock clock"
cargo test -q -p augur-tunnel --features mock-instant a_rekey
echo "== augur check examples/*.yaml"
for f in examples/*.yaml; do
  target/debug/augur check -c "$f" >/dev/null || { target/debug/augur check -c "$f"; exit 1; }
  echo "ok $f"
done
echo "== scenario simulator smoke run (numbers: benches/RESULTS.md)"
cargo run --release -q -p augur-benches --bin scenarios -- --quick --seeds 1 > /dev/null
echo "ok scenarios --quick --seeds 1"
echo "== fuzz (${FUZZ_SECONDS:=20}s per target)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in $(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list); do
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 2>&1 | tail -n 3)
done
echo "== all passed"
