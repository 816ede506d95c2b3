#!/usr/bin/env bash
# Benchmark (DESIGN.md): with 100,000 iptables rules, the full diagnosis costs at most 1.2x
# `iptables-save` alone, and a refresh with an unchanged ruleset costs a small constant.
# Everything runs inside a network namespace this script creates and always deletes; the
# machine's own rules are not touched. Prints figures; asserts nothing.
#
#   bench/firewall-100k.sh [RULES]     (default 100000; needs root, iptables)
set -euo pipefail
cd "$(dirname "$0")/.."
rules=${1:-100000}
ns=ecsdiag-bench-$$
tmp=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# ECS_DIAG_BIN picks the binary (bench/static-vs-glibc.sh compares builds); default: build.
if [ -n "${ECS_DIAG_BIN:-}" ]; then bin=$ECS_DIAG_BIN; else
  cargo build --release -p ecs-diag --quiet
  bin=$PWD/target/release/ecs-diag
fi
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip link add eth0 type veth peer name peer0
ip netns exec "$ns" ip addr add 10.77.0.10/24 dev eth0
ip netns exec "$ns" ip link set eth0 up
ip netns exec "$ns" ip link set peer0 up
ip netns exec "$ns" ip route add default via 10.77.0.1

# Rules that never match a ping: TCP drops from many sources, in INPUT and a user chain.
awk -v n="$rules" 'BEGIN {
  print "*filter"; print ":INPUT ACCEPT [0:0]"; print ":FORWARD ACCEPT [0:0]"; print ":OUTPUT ACCEPT [0:0]"; print ":blocklist - [0:0]"
  print "-A INPUT -p tcp -j blocklist"
  for (i = 0; i < n - 1; i++) {
    chain = (i % 2) ? "INPUT" : "blocklist"
    printf "-A %s -s 10.%d.%d.%d/32 -p tcp -m tcp --dport %d -j DROP\n", chain, int(i / 65536) % 256, int(i / 256) % 256, i % 256, 1024 + i % 60000
  }
  print "COMMIT" }' > "$tmp/rules"
ip netns exec "$ns" iptables-restore < "$tmp/rules"
printf '[metadata]\nmode = "never"\n[paths]\netc = "%s/etc"\n' "$tmp" > "$tmp/config.toml"

median_ms() {
  local -a t=()
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
    t+=($(((t1 - t0) / 1000000)))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 2p
}

save_ms=$(median_ms ip netns exec "$ns" iptables-save)
check_ms=$(median_ms ip netns exec "$ns" "$bin" check --json --config "$tmp/config.toml")
ip netns exec "$ns" "$bin" check --json --config "$tmp/config.toml" > "$tmp/report.json" || true
verdict=$(grep -A2 '"id": "firewall.icmp_in"' "$tmp/report.json" | grep -o '"status": "[a-z]*"' || true)

# Refresh cost with an unchanged ruleset: the daemon refreshing every second for 10 s.
printf '[metadata]\nmode = "never"\n[server]\nlisten = "127.0.0.1:0"\n[refresh]\ninterval_s = 1\ntimeout_s = 60\n[paths]\netc = "%s/etc"\n' "$tmp" > "$tmp/serve.toml"
ip netns exec "$ns" "$bin" serve --config "$tmp/serve.toml" 2> "$tmp/serve.log" &
pid=$!
for _ in $(seq 600); do grep -q "first diagnosis" "$tmp/serve.log" && break; sleep 0.1; done
# The children (iptables-save, nft) count too: use the whole process tree's CPU via /proc.
tree_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat"; }
t0=$(tree_ticks); sleep 10; t1=$(tree_ticks)
hz=$(getconf CLK_TCK)
refresh_ms=$(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.1f", d * 1000 / hz / 10 }')

echo "rules: $rules (iptables-nft backend, in a test namespace)"
echo "iptables-save alone: ${save_ms} ms (median of 3)"
echo "ecs-diag check --json, whole process: ${check_ms} ms (median of 3); firewall.icmp_in $verdict"
awk -v c="$check_ms" -v s="$save_ms" 'BEGIN { printf "ratio check/iptables-save: %.2f (target <= 1.2)\n", c / s }'
echo "serve, unchanged ruleset: ${refresh_ms} ms CPU per refresh (daemon and its children, 10 refreshes)"
