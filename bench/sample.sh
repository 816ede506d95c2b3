#!/usr/bin/env bash
# Benchmark (issue 5): the CPU cost of one sample of every load and drop source, and how it
# grows with interfaces (1, 100, 1,000 — veth pairs inside a test network namespace) and with
# processes (10,000 sleeping processes). Target: well under 1 ms of CPU on a typical host. The
# in-run baseline is the shell way of reading the same facts (cat of the /proc files,
# `ip -s -j link`, `tc -s -j qdisc`, `ps -eo stat`), timed in the same namespace.
# Prints figures; asserts nothing.
#
#   bench/sample.sh [ITERATIONS]     (default 200)
#
# Sends no traffic; everything it creates is in namespaces named ecs-diag-bench-* (removed on
# exit) or is a child process (killed on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-200}

cargo build --release -p ecs-diag-matrix --bin bench-sample --quiet
bin=$PWD/target/release/bench-sample
ns_list=()
sleepers=()
cleanup() {
  for ns in "${ns_list[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if ((${#sleepers[@]})); then kill "${sleepers[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}
trap cleanup EXIT

shell_way() {
  cat /proc/stat /proc/loadavg /proc/meminfo /proc/vmstat /proc/diskstats \
    /proc/net/softnet_stat /proc/net/snmp >/dev/null
  cat /proc/pressure/* >/dev/null 2>&1 || true
  ip -s -j link show >/dev/null
  tc -s -j qdisc show >/dev/null
  ps -eo stat= >/dev/null
}

# Median wall time (µs) of 20 runs of the shell way in namespace $1 (a pipeline of processes,
# so wall time is the fair figure for it).
shell_us() {
  local ns=$1 i t0 t1
  local -a times=()
  for i in $(seq 20); do
    t0=$(date +%s%N)
    ip netns exec "$ns" bash -c "$(declare -f shell_way); shell_way"
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 10p
}

run_in() {
  local ns=$1
  local line
  line=$(ip netns exec "$ns" "$bin" "$iterations")
  printf '%-62s shell_way_wall_us=%s\n' "$line" "$(shell_us "$ns")"
}

make_ns() {
  local pairs=$1 ns="ecs-diag-bench-$$-$2"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  if ((pairs > 0)); then
    for i in $(seq "$pairs"); do
      echo "link add b$i type veth peer name p$i"
    done | ip -n "$ns" -batch -
    for i in $(seq "$pairs"); do
      echo "link set b$i up"
      echo "link set p$i up"
    done | ip -n "$ns" -batch -
  fi
  echo "$ns"
}

echo "one sample (sources::sample), $iterations iterations each; CPU per sample:"
# 1 interface: loopback only; 100 and 1,000: lo + veth pairs (two interfaces per pair).
for pairs in 0 50 500; do
  ns=$(make_ns "$pairs" "$pairs")
  ns_list+=("$ns")
  run_in "$ns"
done

echo "with 10,000 more (sleeping) processes:"
for i in $(seq 10000); do
  sleep 600 &
  sleepers+=($!)
done
ns=$(make_ns 0 procs)
ns_list+=("$ns")
run_in "$ns"
