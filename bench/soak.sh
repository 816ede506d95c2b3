#!/usr/bin/env bash
# Soak (issue 11): runs `ecs-diag serve` for MINUTES under a mix of /metrics and /v1/report
# scrapes, POST /v1/diagnose, slow-reader floods (connections that pipeline requests and never
# read) and SIGHUP reloads; samples the daemon's RSS, open fds and threads every second and
# prints the peak and final figures. Loopback only; metadata mode "never"; nothing on the
# machine is changed.
#
#   bench/soak.sh [MINUTES]    (default 30; ECS_DIAG_BIN picks the binary, default the static build)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
bin=${ECS_DIAG_BIN:-$PWD/target/x86_64-unknown-linux-musl/release/ecs-diag}
[ -x "$bin" ] || { echo "no $bin: run scripts/package (or set ECS_DIAG_BIN)" >&2; exit 1; }
tmp=$(mktemp -d)
printf '[metadata]\nmode = "never"\n[server]\nlisten = "127.0.0.1:0"\ndiagnose_min_interval_s = 1\n[refresh]\ninterval_s = 5\n[paths]\netc = "%s/etc"\n' "$tmp" > "$tmp/config.toml"
"$bin" serve --config "$tmp/config.toml" 2> "$tmp/log" &
pid=$!
load_pid=
cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
  kill "$pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 200); do grep -q "first diagnosis" "$tmp/log" && break; sleep 0.1; done
port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$tmp/log" | grep -o '[0-9]*$')

# The load: one Python process (standard library only), bounded by the soak's duration.
python3 - "$port" "$((minutes * 60))" "$pid" <<'PY' &
import os, signal, socket, sys, threading, time
port, seconds, daemon = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
end = time.time() + seconds
counts = {"scrapes": 0, "reports": 0, "diagnoses": 0, "floods": 0, "sighups": 0, "errors": 0}

def get(method, path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            while s.recv(65536):
                pass
        return True
    except OSError:
        counts["errors"] += 1
        return False

def scrapes():
    while time.time() < end:
        get("GET", "/metrics"); counts["scrapes"] += 1
        get("GET", "/v1/report"); counts["reports"] += 1
        time.sleep(0.01)

def diagnoses():
    while time.time() < end:
        get("POST", "/v1/diagnose"); counts["diagnoses"] += 1
        time.sleep(2)

def floods():
    req = b"GET /v1/report HTTP/1.1\r\nHost: x\r\n\r\n" * 64
    while time.time() < end:
        conns = []
        for _ in range(1000):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                s.setblocking(False)
                try:
                    s.send(req)
                except OSError:
                    pass
                conns.append(s)
            except OSError:
                break
        counts["floods"] += 1
        time.sleep(min(15, max(0, end - time.time())))
        for s in conns:
            s.close()
        time.sleep(min(45, max(0, end - time.time())))

def sighups():
    while time.time() < end:
        time.sleep(20)
        os.kill(daemon, signal.SIGHUP); counts["sighups"] += 1

threads = [threading.Thread(target=f, daemon=True) for f in (scrapes, scrapes, diagnoses, floods, sighups)]
for t in threads:
    t.start()
while time.time() < end:
    time.sleep(1)
print("load: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
PY
load_pid=$!

peak_rss=0 peak_fds=0 peak_threads=0
rss=0 fds=0 threads=0
for ((s = 0; s < minutes * 60; s++)); do
  kill -0 "$pid" 2>/dev/null || { echo "the daemon died after ${s}s:"; tail -20 "$tmp/log"; exit 1; }
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  threads=$(awk '/Threads/ {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  ((rss > peak_rss)) && peak_rss=$rss
  ((fds > peak_fds)) && peak_fds=$fds
  ((threads > peak_threads)) && peak_threads=$threads
  if ((s % 60 == 0)); then echo "t=${s}s rss=${rss}KiB fds=$fds threads=$threads"; fi
  sleep 1
done
wait "$load_pid" || true
load_pid=
sleep 30 # the last flood's connections time out; memory returns
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
fds=$(ls "/proc/$pid/fd" | wc -l)
threads=$(awk '/Threads/ {print $2}' "/proc/$pid/status")
health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
echo "soak: $minutes min against $bin"
echo "peak: RSS ${peak_rss} KiB ($(awk -v k="$peak_rss" 'BEGIN{printf "%.1f", k/1024}') MiB; issue 11 bound 48 MiB), fds $peak_fds, threads $peak_threads"
echo "final (30 s after the load): RSS ${rss} KiB ($(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}') MiB; bound 12 MiB), fds $fds, threads $threads; /healthz $health"
echo "panics in the log: $(grep -c panicked "$tmp/log" || true); connection-limit lines: $(grep -c max_connections "$tmp/log" || true)"
