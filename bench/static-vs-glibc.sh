#!/usr/bin/env bash
# Benchmark: the shipped static (musl) binary against a glibc build of the same source, in one
# run, on the DESIGN.md targets: `check` wall time against the shell way, the 100,000-rule
# diagnosis against iptables-save, and the daemon's RSS, /metrics throughput and refresh CPU.
# Prints each build's figures; asserts nothing. (This is how the static build's allocator was
# chosen: musl's own malloc against mimalloc, see agent/src/main.rs.)
#
#   bench/static-vs-glibc.sh [RUNS]    (default 30; needs root, iptables, wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
t=x86_64-unknown-linux-musl
# cargo-zigbuild (zig cc compiles ring for musl) lives where scripts/prerequisites put it.
while read -r line; do PATH="${line#PATH+=}:$PATH"; done < <(./scripts/prerequisites)
export PATH
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release --locked -p ecs-diag --quiet
cp target/release/ecs-diag "$out/glibc"
cargo zigbuild --release --locked -p ecs-diag --quiet --target $t
cp target/$t/release/ecs-diag "$out/static-musl"

for name in glibc static-musl; do
  bin=$out/$name
  echo
  echo "=== $name ($(stat -c %s "$bin") bytes)"
  ECS_DIAG_BIN=$bin bench/check-vs-shell.sh "$runs" | sed 's/^/  /'
  ECS_DIAG_BIN=$bin bench/firewall-100k.sh | sed 's/^/  /'
  ECS_DIAG_BIN=$bin bench/daemon.sh | sed 's/^/  /'
done
