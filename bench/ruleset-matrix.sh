#!/usr/bin/env bash
# Benchmark (DESIGN.md performance targets, issue 29): `ecs-diag check` (the whole process, the
# shipped static binary) against the shell commands a person would run instead, on the rulesets
# real instances carry, each measured in the same run:
#   none       no rules at all (a default Alibaba Cloud Linux 3 image)        target <= 0.25
#   firewalld  firewalld's default zone ruleset, native nft (firewalld 1.3)   target <= 0.25
#   docker     iptables-nft: DOCKER, DOCKER-USER, DOCKER-ISOLATION, NAT, 20 containers  <= 0.5
#   kube-proxy iptables-nft: KUBE-SERVICES with 1,000 services, two endpoints each      <= 0.5
#   100k       100,000 iptables-nft rules, against `iptables-save` alone                 <= 1.0
# Both ways are timed inside the namespace, entered once (as on the instance itself). For
# each: check wall median, shell median, ratio, peak RSS of `check`, and the daemon's CPU
# per refresh (serve, one refresh a second, the ruleset unchanged; from /proc/PID/schedstat). Prints figures; asserts
# nothing. Everything runs in a network namespace this script creates and always deletes; the
# machine's own rules are not touched.
#
#   bench/ruleset-matrix.sh [RUNS]     (default 21; needs root, iptables, nftables, python3)
#   CASES="none firewalld" bench/ruleset-matrix.sh 11     (only those cases)
set -euo pipefail
trap 'echo "bench/ruleset-matrix.sh: line $LINENO failed" >&2' ERR
cd "$(dirname "$0")/.."
runs=${1:-21}
ns=ecsdiag-rm-$$
tmp=$(mktemp -d)
cleanup() {
  # Command substitutions run this too: only the script itself cleans up.
  [ "$BASHPID" = "$$" ] || return 0
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The shipped build (ECS_DIAG_BIN, as scripts/test sets it), else the static release build.
if [ -n "${ECS_DIAG_BIN:-}" ]; then bin=$ECS_DIAG_BIN; else
  bin=$PWD/target/x86_64-unknown-linux-musl/release/ecs-diag
  [ -x "$bin" ] || { echo "build it first: ./scripts/package (or set ECS_DIAG_BIN)" >&2; exit 1; }
fi
in_ns() { ip netns exec "$ns" "$@"; }
ip netns add "$ns"
in_ns ip link set lo up
in_ns ip link add eth0 type veth peer name peer0
in_ns ip addr add 10.77.0.10/24 dev eth0
in_ns ip link set eth0 up
in_ns ip link set peer0 up
in_ns ip route add default via 10.77.0.1
printf '[metadata]\nmode = "never"\n' > "$tmp/config.toml"

# Only nf_tables is flushed: the cases add no legacy rule, and `iptables-legacy -F` would
# itself create the legacy filter table (the agent must then dump it: "none" would not be none).
reset_rules() {
  in_ns nft flush ruleset
  if in_ns test -s /proc/net/ip_tables_names; then
    echo "bench/ruleset-matrix.sh: legacy iptables tables exist in the namespace" >&2
    exit 1
  fi
}

docker_rules() {
  {
    echo '*nat'
    echo ':PREROUTING ACCEPT [0:0]'; echo ':INPUT ACCEPT [0:0]'; echo ':OUTPUT ACCEPT [0:0]'
    echo ':POSTROUTING ACCEPT [0:0]'; echo ':DOCKER - [0:0]'
    echo '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER'
    echo '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER'
    echo '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE'
    echo '-A DOCKER -i docker0 -j RETURN'
    for i in $(seq 2 21); do
      echo "-A POSTROUTING -s 172.17.0.$i/32 -d 172.17.0.$i/32 -p tcp -m tcp --dport 80 -j MASQUERADE"
      echo "-A DOCKER ! -i docker0 -p tcp -m tcp --dport $((8000 + i)) -j DNAT --to-destination 172.17.0.$i:80"
    done
    echo 'COMMIT'
    echo '*filter'
    echo ':INPUT ACCEPT [0:0]'; echo ':FORWARD DROP [0:0]'; echo ':OUTPUT ACCEPT [0:0]'
    echo ':DOCKER - [0:0]'; echo ':DOCKER-ISOLATION-STAGE-1 - [0:0]'
    echo ':DOCKER-ISOLATION-STAGE-2 - [0:0]'; echo ':DOCKER-USER - [0:0]'
    echo '-A FORWARD -j DOCKER-USER'
    echo '-A FORWARD -j DOCKER-ISOLATION-STAGE-1'
    echo '-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'
    echo '-A FORWARD -o docker0 -j DOCKER'
    echo '-A FORWARD -i docker0 ! -o docker0 -j ACCEPT'
    echo '-A FORWARD -i docker0 -o docker0 -j ACCEPT'
    for i in $(seq 2 21); do
      echo "-A DOCKER -d 172.17.0.$i/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"
    done
    echo '-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2'
    echo '-A DOCKER-ISOLATION-STAGE-1 -j RETURN'
    echo '-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP'
    echo '-A DOCKER-ISOLATION-STAGE-2 -j RETURN'
    echo '-A DOCKER-USER -j RETURN'
    echo 'COMMIT'
  } > "$tmp/docker.rules"
  in_ns iptables-nft-restore < "$tmp/docker.rules"
}

kube_rules() {
  python3 - "$tmp/kube.rules" <<'EOF'
import sys
out = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
       ":POSTROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]",
       ":KUBE-POSTROUTING - [0:0]", ":KUBE-MARK-MASQ - [0:0]"]
rules = ["-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
         "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
         "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
         "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
         "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
         "-A KUBE-POSTROUTING -j MASQUERADE --random-fully"]
for s in range(1000):
    svc = "KUBE-SVC-%012X" % s
    ip = "10.96.%d.%d" % (s // 250, s % 250 + 1)
    out.append(":%s - [0:0]" % svc)
    rules.append("-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"ns/svc%d:http cluster IP\" -m tcp --dport 80 -j %s" % (ip, s, svc))
    for e in range(2):
        sep = "KUBE-SEP-%010X%02d" % (s, e)
        pod = "10.244.%d.%d" % ((2 * s + e) // 250, (2 * s + e) % 250 + 1)
        out.append(":%s - [0:0]" % sep)
        if e == 0:
            rules.append("-A %s -m comment --comment \"ns/svc%d:http\" -m statistic --mode random --probability 0.50000000000 -j %s" % (svc, s, sep))
        else:
            rules.append("-A %s -m comment --comment \"ns/svc%d:http\" -j %s" % (svc, s, sep))
        rules.append("-A %s -s %s/32 -m comment --comment \"ns/svc%d:http\" -j KUBE-MARK-MASQ" % (sep, pod, s))
        rules.append("-A %s -p tcp -m comment --comment \"ns/svc%d:http\" -m tcp -j DNAT --to-destination %s:8080" % (sep, s, pod))
rules.append("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
out += rules + ["COMMIT", "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                ":KUBE-FORWARD - [0:0]", ":KUBE-FIREWALL - [0:0]",
                "-A INPUT -j KUBE-FIREWALL", "-A OUTPUT -j KUBE-FIREWALL", "-A FORWARD -j KUBE-FORWARD",
                "-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
                "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
                "-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT",
                "-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "COMMIT"]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
  in_ns iptables-nft-restore < "$tmp/kube.rules"
}

rules_100k() {
  { echo '*filter'; echo ':INPUT ACCEPT [0:0]'; echo ':FORWARD ACCEPT [0:0]'; echo ':OUTPUT ACCEPT [0:0]'
    for i in $(seq 0 99999); do
      echo "-A INPUT -s 10.$((i / 65536)).$(((i / 256) % 256)).$((i % 256))/32 -p tcp --dport 9 -j DROP"
    done
    echo 'COMMIT'; } > "$tmp/100k.rules"
  in_ns iptables-nft-restore < "$tmp/100k.rules"
}

dev=eth0
# What an operator types to see the same facts (as bench/check-vs-shell.sh).
shell_script="
    ip -j addr show; ip -j link show; ip -j route show table all; ip -j -6 route show table all
    ip -j rule show; ip -j -6 rule show; ip -j neigh show; ip route get 192.0.2.1
    iptables-save; ip6tables-save
    sysctl net.ipv4.icmp_echo_ignore_all net.ipv6.icmp.echo_ignore_all net.ipv4.icmp_ratelimit \
      net.ipv4.icmp_ratemask net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter \
      net.ipv4.conf.$dev.rp_filter
    cat /etc/sysctl.conf /etc/sysctl.d/*.conf; cat /proc/net/snmp /proc/net/snmp6
    cat /sys/class/dmi/id/product_name /sys/class/dmi/id/sys_vendor
    readlink /sys/class/net/$dev/device/driver; true"

# Median wall times (us) of RUNS runs each of two commands (separated by --), timed inside
# the namespace as on the instance itself: entered once, its /sys mounted once (`ip netns
# exec` mounts a fresh sysfs each time, whose first lookups both ways would pay on every run),
# read with bash's clock (no `date` process inside the measured interval), and the two taken
# in turn, so a host whose speed drifts during the run slows both alike.
medians_us() {
  in_ns bash -c '
    runs=$1; shift
    a=(); while [ "$1" != -- ]; do a+=("$1"); shift; done; shift
    "${a[@]}" >/dev/null 2>&1; "$@" >/dev/null 2>&1
    for ((i = 0; i < runs; i++)); do
      t0=$EPOCHREALTIME; "${a[@]}" >/dev/null 2>&1; t1=$EPOCHREALTIME
      "$@" >/dev/null 2>&1; t2=$EPOCHREALTIME
      echo "$(( ${t1/./} - ${t0/./} )) $(( ${t2/./} - ${t1/./} ))"
    done > /tmp/ecs-diag-bench-$$
    for col in 1 2; do
      cut -d" " -f$col /tmp/ecs-diag-bench-$$ | sort -n | awk "{a[NR]=\$1} END {printf \"%s \", a[int((NR+1)/2)]}"
    done
    echo
    rm -f /tmp/ecs-diag-bench-$$' _ "$runs" "$@"
}
agent_way=("$bin" check --json --config "$tmp/config.toml")
shell_way=(sh -c "$shell_script")
save_alone=(iptables-save)

# Peak RSS (KiB) of one `check`: ip netns exec execs the agent, so the child's rusage is its.
peak_rss() {
  python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
    ip netns exec "$ns" "$bin" check --json --config "$tmp/config.toml"
}

# CPU (ms, user+sys) per refresh of `serve` at one refresh a second, ruleset unchanged.
refresh_cpu_ms() {
  printf '[metadata]\nmode = "never"\n[server]\nlisten = "127.0.0.1:0"\n[refresh]\ninterval_s = 1\n' > "$tmp/serve.toml"
  # `ip netns exec` execs the agent: $! is the daemon itself.
  ip netns exec "$ns" "$bin" serve --config "$tmp/serve.toml" 2> "$tmp/serve.log" &
  pid=$!
  for _ in $(seq 200); do grep -q "first diagnosis" "$tmp/serve.log" && break; sleep 0.05; done
  sleep 2
  # schedstat: nanoseconds on a CPU (clock ticks would round a cheap refresh to 0).
  local t0 t1
  t0=$(awk '{print $1}' "/proc/$pid/schedstat"); sleep 10; t1=$(awk '{print $1}' "/proc/$pid/schedstat")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e6 / 10 }'
}

echo "host: $(nproc) cores, kernel $(uname -r), $runs runs each, median wall time; binary: $bin"
printf '%-11s %12s %12s %7s %8s %11s %14s\n' ruleset "check (us)" "shell (us)" ratio target "peak RSS" "CPU/refresh"
for case in ${CASES:-none firewalld docker kube-proxy 100k}; do
  reset_rules
  target=0.25 baseline=shell
  case $case in
    none) ;;
    firewalld) in_ns nft -j -f agent/src/ruleset/fixtures/nft-firewalld.json ;;
    docker) docker_rules; target=0.5 ;;
    kube-proxy) kube_rules; target=0.5 ;;
    100k) rules_100k; target=1.0 baseline=save ;;
  esac
  if [ $baseline = save ]; then
    read -r agent shell < <(medians_us "${agent_way[@]}" -- "${save_alone[@]}")
  else
    read -r agent shell < <(medians_us "${agent_way[@]}" -- "${shell_way[@]}")
  fi
  rss=$(peak_rss)
  refresh_cpu_ms > "$tmp/cpu"
  cpu=$(cat "$tmp/cpu")
  ratio=$(awk -v a="$agent" -v s="$shell" 'BEGIN { printf "%.3f", a / s }')
  printf '%-11s %12s %12s %7s %8s %8s KiB %11s ms\n' "$case" "$agent" "$shell" "$ratio" "<= $target" "$rss" "$cpu"
done
echo "(100k: the baseline is iptables-save alone; the others: the shell commands of bench/check-vs-shell.sh)"
