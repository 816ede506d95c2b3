#!/usr/bin/env bash
# Benchmark of `ecs-diag serve` (DESIGN.md targets: idle RSS under 8 MiB, /metrics from cache
# at thousands of requests per second on 2 cores, no measurable CPU between refreshes).
# Prints figures and compares them with the targets; asserts nothing.
#
#   bench/daemon.sh          (needs wrk: apt-get install wrk; builds the release binary)
#
# Loopback only; metadata mode "never"; nothing on the machine is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

# ECS_DIAG_BIN picks the binary (bench/static-vs-glibc.sh compares builds); default: build.
if [ -n "${ECS_DIAG_BIN:-}" ]; then bin=$ECS_DIAG_BIN; else
  cargo build --release -p ecs-diag --quiet
  bin=$PWD/target/release/ecs-diag
fi
tmp=$(mktemp -d)
printf '[metadata]\nmode = "never"\n[server]\nlisten = "127.0.0.1:0"\ndiagnose_min_interval_s = 0\n[refresh]\ninterval_s = 1\n' > "$tmp/config.toml"
"$bin" serve --config "$tmp/config.toml" 2> "$tmp/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q "first diagnosis" "$tmp/log" && break; sleep 0.05; done
port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$tmp/log" | grep -o '[0-9]*$')
url=http://127.0.0.1:$port

rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

sleep 1
rss_start=$(rss)

# CPU per refresh: 10 s at one refresh per second, nothing else touching the daemon.
t0=$(cpu_ticks); sleep 10; t1=$(cpu_ticks)
refresh_ms=$(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.2f", d * 1000 / hz / 10 }')

# /metrics throughput and latency: 2 threads, 16 connections, 10 s.
wrk -t2 -c16 -d10s --latency "$url/metrics" > "$tmp/wrk" 2>&1
rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk")
p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk")
requests=$(awk '/requests in/ {print $1}' "$tmp/wrk")
rss_after=$(rss)

# Idle CPU between refreshes: a long interval, then 10 s of nothing.
printf '[metadata]\nmode = "never"\n[server]\nlisten = "127.0.0.1:0"\n[refresh]\ninterval_s = 3600\n' > "$tmp/config.toml"
kill -HUP $pid; sleep 1
t0=$(cpu_ticks); sleep 10; t1=$(cpu_ticks)
idle_ticks=$((t1 - t0))

echo "host: $(nproc) cores, kernel $(uname -r)"
echo "RSS after start: $rss_start KiB ($(awk -v k="$rss_start" 'BEGIN{printf "%.1f", k/1024}') MiB; target < 8 MiB)"
echo "RSS after $requests /metrics requests: $rss_after KiB ($(awk -v k="$rss_after" 'BEGIN{printf "%.1f", k/1024}') MiB; target < 8 MiB)"
echo "/metrics: $rps requests/s, p99 $p99 (wrk -t2 -c16 on loopback; target: thousands/s)"
echo "CPU per refresh: $refresh_ms ms (user+sys, averaged over 10 refreshes)"
echo "CPU between refreshes: $idle_ticks ticks of 1/$hz s in 10 s idle (target: 0)"
