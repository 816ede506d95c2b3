#!/usr/bin/env bash
# Benchmark (DESIGN.md performance target): wall time of the whole `ecs-diag check` process
# against the shell commands a person would run instead, measured in the same run on this
# host. Target: ratio <= 0.5. Prints figures; asserts nothing.
#
#   bench/check-vs-shell.sh [RUNS]      (default 50; builds the release binary first)
#
# Read-only: it sends no traffic and changes nothing (metadata mode "never").
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}

# ECS_DIAG_BIN picks the binary (bench/static-vs-glibc.sh compares builds); default: build.
if [ -n "${ECS_DIAG_BIN:-}" ]; then bin=$ECS_DIAG_BIN; else
  cargo build --release -p ecs-diag --quiet
  bin=target/release/ecs-diag
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[metadata]\nmode = "never"\n' > "$tmp/config.toml"

dev=$(ip -o route show default 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="dev"){print $(i+1); exit}}')
dev=${dev:-lo}

# What an operator types to see the same facts.
shell_way() {
  ip -j addr show
  ip -j link show
  ip -j route show table all
  ip -j -6 route show table all
  ip -j rule show
  ip -j -6 rule show
  ip -j neigh show
  ip route get 192.0.2.1
  command -v iptables-save >/dev/null && { iptables-save; ip6tables-save; } 2>/dev/null || true
  sysctl net.ipv4.icmp_echo_ignore_all net.ipv6.icmp.echo_ignore_all net.ipv4.icmp_ratelimit \
    net.ipv4.icmp_ratemask net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter \
    "net.ipv4.conf.$dev.rp_filter" 2>/dev/null || true
  cat /etc/sysctl.conf /etc/sysctl.d/*.conf 2>/dev/null || true
  cat /proc/net/snmp /proc/net/snmp6 2>/dev/null || true
  cat /sys/class/dmi/id/product_name /sys/class/dmi/id/sys_vendor 2>/dev/null || true
  readlink "/sys/class/net/$dev/device/driver" 2>/dev/null || true
}

agent_way() {
  "$bin" check --json --config "$tmp/config.toml" || true
}

# Median wall time in microseconds of $runs runs of a function, output discarded.
median_us() {
  local fn=$1 i t0 t1
  local -a times=()
  "$fn" >/dev/null 2>&1 # warm caches
  for ((i = 0; i < runs; i++)); do
    # bash's own clock: a `date` process would sit inside the measured interval.
    t0=$EPOCHREALTIME
    "$fn" >/dev/null 2>&1
    t1=$EPOCHREALTIME
    times+=($((${t1/./} - ${t0/./})))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

agent=$(median_us agent_way)
shell=$(median_us shell_way)
size=$(stat -c %s "$bin")
echo "host: $(nproc) cores, kernel $(uname -r), $runs runs each, median wall time"
echo "ecs-diag check --json (whole process): ${agent} us"
echo "shell equivalent (ip -j ..., iptables-save, sysctl, cat /proc ...): ${shell} us"
awk -v a="$agent" -v s="$shell" 'BEGIN { printf "ratio agent/shell: %.3f (target <= 0.5)\n", a / s }'
echo "release binary: $size bytes"
