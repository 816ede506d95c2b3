#!/bin/sh
# The VM lab's guest side (tests/tests/vm.rs is the host side), run by ecs-lab.service inside a
# booted Debian VM from its payload disk (/lab). It talks to the host over the virtio-serial
# port "lab", one line at a time:
#   say TEXT        for the host's log
#   ping            the host pings this VM from the client address in its namespace (the
#                   real ping, outside the VM) and answers "ok" or "fail"
#   json NAME B64   a result (base64 of JSON or text) the host asserts on
#   end             done; then the VM powers off
# The guest judges nothing itself: it installs, injects each fault, and reports what the agent
# and the system say.
set -u
exec 3<>/dev/virtio-ports/lab
say() { echo "say $*" >&3; }
ask() { echo "$1" >&3; read -r reply <&3; echo "$reply"; }
send() { printf 'json %s %s\n' "$1" "$(base64 -w0)" >&3; }
CLIENT=198.18.0.2
arch=$(dpkg --print-architecture)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

{
  echo "{\"kernel\":\"$(uname -r)\",\"arch\":\"$arch\","
  echo "\"systemd\":\"$(systemctl --version | head -1)\","
  echo "\"os\":\"$(. /etc/os-release; echo "$PRETTY_NAME")\","
  echo "\"uptime_s\":$(cut -d' ' -f1 /proc/uptime)}"
} | send system

# Legacy iptables tables exist (as on an image whose firewall script uses iptables-legacy): the
# unit's hand-over then has /proc/net/ip_tables_names to pass to the daemon.
command -v iptables-legacy >/dev/null && iptables-legacy -S >/dev/null 2>&1
command -v ip6tables-legacy >/dev/null && ip6tables-legacy -S >/dev/null 2>&1

# The package, as a person installs it.
deb=$(ls /lab/ecs-diag_*_"$arch".deb)
apt-get install -y -q "$deb" > /tmp/install.log 2>&1; echo "apt-get install exit $?" >> /tmp/install.log
send install < /tmp/install.log
i=0
until [ "$(systemctl is-active ecs-diag)" = active ] || [ $i -ge 60 ]; do sleep 0.5; i=$((i + 1)); done
pid=$(systemctl show -p MainPID --value ecs-diag)
{
  systemctl show ecs-diag -p ActiveState -p SubState -p DynamicUser -p User -p NRestarts \
    -p AmbientCapabilities -p CapabilityBoundingSet -p NoNewPrivileges -p ProtectSystem \
    -p NFileDescriptorStore -p FileDescriptorStoreMax -p MainPID
  echo "--- /proc/$pid/status"
  grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "/proc/$pid/status"
  echo "--- fds"
  ls -l "/proc/$pid/fd" 2>&1 | sed 's/.* -> //'
  echo "--- journal"
  journalctl -u ecs-diag -b --no-pager -o cat 2>&1 | tail -20
} | send unit
{
  curl -s -o /dev/null -w 'healthz %{http_code}\n' http://127.0.0.1:9717/healthz
  curl -s -w 'metrics %{http_code}\n' http://127.0.0.1:9717/metrics | grep -E '^(ecs_diag_check_status|metrics )' | head -200
} | send http

# Healthy: the host's ping works, and the agent judges every check it can. Let boot settle
# (load in the first minute) and let the ping fill the neighbour table.
echo "$(ask ping)" | send ping-healthy
sleep 5
ecs-diag check --json --client "$CLIENT" | send check-healthy

# Each fault: inject, the host's ping (expect fail), the agent's verdict, undo, the ping again.
fault() {
  name=$1 inject=$2 undo=$3
  sh -c "$inject"
  echo "$(ask ping)" | send "ping-$name"
  ecs-diag check --json --client "$CLIENT" | send "check-$name"
  if [ -n "$undo" ]; then
    sh -c "$undo"
    echo "$(ask ping)" | send "ping-$name-undone"
  fi
}
# An nft drop of the echo request in a table of its own (twice: a fault, then the timer).
NFT_DROP='nft add table inet lab && nft add chain inet lab input "{ type filter hook input priority 0; }" && nft add rule inet lab input icmp type echo-request drop'
fault nft "$NFT_DROP" 'nft delete table inet lab'
if command -v iptables-legacy >/dev/null; then
  fault iptables-legacy 'iptables-legacy -I INPUT -p icmp --icmp-type echo-request -j DROP' 'iptables-legacy -D INPUT -p icmp --icmp-type echo-request -j DROP'
fi
gw=$(ip -4 route show default | awk '{print $3; exit}')
fault route 'ip route del default' "ip route add default via $gw dev eth0"
# The safety net under this systemd: a firewall fix can cut connectivity, so its revert is
# armed as a systemd transient timer before the change; left unconfirmed, the timer (not the
# fix process, long gone) reverts it and the ping fails again.
sh -c "$NFT_DROP"
ecs-diag fix --client "$CLIENT" --apply --yes --json --revert-after 10 | send fix-nft
systemctl list-timers --all --no-pager 'ecs-diag-revert-*' | send timer-armed
echo "$(ask ping)" | send ping-nft-fixed
sleep 16
echo "$(ask ping)" | send ping-nft-reverted
ecs-diag fix --history --json | send history-nft
nft delete table inet lab

# The sysctl fault is undone by the agent's own fix.
fault sysctl 'sysctl -q -w net.ipv4.icmp_echo_ignore_all=1' ''
ecs-diag fix --client "$CLIENT" --apply --yes --json | send fix-sysctl
echo "$(ask ping)" | send ping-sysctl-fixed

# The rpm, where this image carries rpm: installed beside dpkg with its scriptlets under this
# systemd, verified, erased.
rpm_file=$(ls /lab/ecs-diag-*."$(uname -m)".rpm 2>/dev/null | head -1)
apt-get purge -y -q ecs-diag > /tmp/purge.log 2>&1; echo "apt-get purge exit $?" >> /tmp/purge.log
{
  cat /tmp/purge.log
  echo "--- left"
  ls -d /usr/bin/ecs-diag /etc/ecs-diag /var/lib/ecs-diag /var/lib/private/ecs-diag \
    /lib/systemd/system/ecs-diag.service /usr/lib/systemd/system/ecs-diag.service \
    /etc/systemd/system/multi-user.target.wants/ecs-diag.service 2>/dev/null
  dpkg -l ecs-diag 2>/dev/null | grep '^[a-z][a-z] ' || true
  echo "unit $(systemctl is-active ecs-diag)"
} | send purge
if [ -n "$rpm_file" ] && command -v rpm >/dev/null; then
  {
    rpm -i --nodeps "$rpm_file" 2>&1; echo "rpm -i exit $?"
    i=0
    until [ "$(systemctl is-active ecs-diag)" = active ] || [ $i -ge 60 ]; do sleep 0.5; i=$((i + 1)); done
    echo "after install: $(systemctl is-enabled ecs-diag) $(systemctl is-active ecs-diag)"
    curl -s -o /dev/null -w 'healthz %{http_code}\n' http://127.0.0.1:9717/healthz
    # --nodeps: dpkg, not rpm, owns /bin/sh here; the files are what is verified.
    rpm -V --nodeps ecs-diag; echo "rpm -V exit $?"
    rpm -e ecs-diag 2>&1; echo "rpm -e exit $?"
    echo "after erase: $(systemctl is-active ecs-diag)"
    ls -d /usr/bin/ecs-diag /var/lib/ecs-diag /var/lib/private/ecs-diag \
      /etc/systemd/system/multi-user.target.wants/ecs-diag.service 2>/dev/null
    echo "rpm -q: $(rpm -q ecs-diag 2>&1)"
  } | send rpm
fi
echo end >&3
systemctl poweroff
