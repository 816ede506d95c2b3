//! The snapshot: every fact the checks judge, as plain serde data. Sources fill it, checks read
//! it, `ecs-diag snapshot` prints it and `check --from` replays it.
//!
//! Each source's result is kept as [`Gathered`]: the facts, or the reason they could not be read,
//! so a failed source turns the checks that need it into `unknown` instead of a silent `ok`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

pub const SNAPSHOT_VERSION: u32 = 1;

/// One source's result: its facts, or why they are missing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Gathered<T> {
    Ok(T),
    Failed(String),
}

impl<T> Gathered<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Gathered<U> {
        match self {
            Gathered::Ok(v) => Gathered::Ok(f(v)),
            Gathered::Failed(e) => Gathered::Failed(e),
        }
    }

    pub fn ok(&self) -> Result<&T, &str> {
        match self {
            Gathered::Ok(v) => Ok(v),
            Gathered::Failed(e) => Err(e),
        }
    }

    /// The facts, dropping the reason they are missing.
    pub fn into_option(self) -> Option<T> {
        match self {
            Gathered::Ok(v) => Some(v),
            Gathered::Failed(_) => None,
        }
    }
}

impl<T: Default> Default for Gathered<T> {
    fn default() -> Self {
        Gathered::Ok(T::default())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Snapshot {
    pub version: u32,
    /// RFC 3339.
    pub taken_at: String,
    /// The client address the route lookups were made for (`--client`), if any.
    pub client: Option<IpAddr>,
    /// The stand-in for "any Internet client" (a documentation address off every local
    /// subnet), decided once when gathering: replies are judged for it without `--client`,
    /// and with one it is "any other source". Absent in older snapshots. Additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stand_in: Option<std::net::Ipv4Addr>,
    pub links: Gathered<Vec<Link>>,
    pub addresses: Gathered<Vec<Address>>,
    pub routes: Gathered<Vec<Route>>,
    pub rules: Gathered<Vec<Rule>>,
    pub neighbours: Gathered<Vec<Neighbour>>,
    /// Kernel route lookups for replies from each local IPv4 address.
    pub reply_lookups: Gathered<Vec<RouteLookup>>,
    /// NIC driver per interface name.
    pub drivers: Gathered<BTreeMap<String, NicDriver>>,
    /// Sysctls by dotted name.
    pub sysctls: Gathered<BTreeMap<String, Sysctl>>,
    pub network_config: Gathered<Vec<InterfaceConfig>>,
    pub icmp: Gathered<IcmpCounters>,
    /// The earlier ICMP sample as snapshots recorded it before `earlier` existed; read as a
    /// fallback when replaying them (the earlier counters are now in `earlier`).
    pub icmp_previous: Option<IcmpCounters>,
    pub dmi: Gathered<Dmi>,
    pub metadata: MetadataState,
    /// iptables/ip6tables rulesets, both backends. Snapshots from before it existed replay
    /// as "not gathered", never as an empty (accept-all) firewall.
    #[serde(default = "not_in_snapshot")]
    pub firewall: Gathered<std::sync::Arc<Vec<Ruleset>>>,
    /// Native nftables tables (not those iptables-nft manages); None: nft is not installed.
    #[serde(default = "not_in_snapshot")]
    pub nftables: Gathered<Option<std::sync::Arc<crate::ruleset::nft::NftRuleset>>>,
    /// ipset contents, read when a rule matches on a set; None: no rule does.
    #[serde(default = "not_in_snapshot")]
    pub ipsets: Gathered<Option<std::sync::Arc<Vec<crate::ruleset::ipset::IpSet>>>>,
    /// (family, table, entries, size) of each legacy iptables table: its change signal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_signature: Vec<(String, String, u32, u32)>,
    /// nf_tables ruleset generation id when the firewall was read (changes with any rule).
    #[serde(default)]
    pub nft_genid: Option<u32>,
    /// Queueing disciplines of every interface.
    #[serde(default = "not_in_snapshot")]
    pub qdiscs: Gathered<Vec<Qdisc>>,
    #[serde(default = "not_in_snapshot")]
    pub softnet: Gathered<Vec<SoftnetCpu>>,
    /// None: connection tracking is not loaded in this namespace.
    #[serde(default = "not_in_snapshot")]
    pub conntrack: Gathered<Option<Conntrack>>,
    /// The distribution (`os-release`), for remedies in its own terms.
    #[serde(default = "not_in_snapshot")]
    pub os: Gathered<OsRelease>,
    /// Listening TCP and unconnected UDP sockets.
    #[serde(default = "not_in_snapshot")]
    pub listeners: Gathered<Vec<Listener>>,
    /// Milliseconds since the Unix epoch when the counters below were read.
    #[serde(default)]
    pub at_ms: u64,
    /// CPU time counters (`/proc/stat`) and load averages.
    #[serde(default = "not_in_snapshot")]
    pub cpu: Gathered<CpuSample>,
    /// `/proc/meminfo` and `/proc/vmstat`.
    #[serde(default = "not_in_snapshot")]
    pub memory: Gathered<MemorySample>,
    /// Pressure stall information; None: this kernel has none (no `/proc/pressure`).
    #[serde(default = "not_in_snapshot")]
    pub pressure: Gathered<Option<Pressure>>,
    /// Block devices with I/O (`/proc/diskstats`), partitions and idle virtual devices left out.
    #[serde(default = "not_in_snapshot")]
    pub disks: Gathered<Vec<Disk>>,
    /// Processes in uninterruptible sleep (D state).
    #[serde(default = "not_in_snapshot")]
    pub tasks: Gathered<TaskSample>,
    /// The earlier sample rates are computed against (`check --window`, the previous refresh
    /// in `serve`); absent: judge on kernel averages and counters since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier: Option<Box<Sample>>,
    /// The thresholds and limits the load and network checks judge with (from the config).
    #[serde(default)]
    pub thresholds: crate::config::Thresholds,
    #[serde(default)]
    pub limits: crate::config::Limits,
}

/// The counters of one moment that rates are computed from: kept from one refresh to the next
/// in `serve`, taken before the window in `check --window` and on each tick of `watch`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Sample {
    pub at_ms: u64,
    pub cpu: Option<CpuSample>,
    pub memory: Option<MemorySample>,
    pub disks: Option<Vec<Disk>>,
    pub tasks: Option<TaskSample>,
    /// Links with their counters (matched by index and name: a recreated link is a new one).
    pub links: Option<Vec<Link>>,
    pub qdiscs: Option<Vec<Qdisc>>,
    pub softnet: Option<Vec<SoftnetCpu>>,
    #[serde(default)]
    pub conntrack: Option<Conntrack>,
    pub icmp: Option<IcmpCounters>,
}

impl Sample {
    /// The counters of a snapshot, for the next one to compare with.
    pub fn of(s: &Snapshot) -> Sample {
        Sample {
            at_ms: s.at_ms,
            cpu: s.cpu.ok().ok().cloned(),
            memory: s.memory.ok().ok().cloned(),
            disks: s.disks.ok().ok().cloned(),
            tasks: s.tasks.ok().ok().cloned(),
            links: s.links.ok().ok().cloned(),
            qdiscs: s.qdiscs.ok().ok().cloned(),
            softnet: s.softnet.ok().ok().cloned(),
            conntrack: s.conntrack.ok().ok().cloned().flatten(),
            icmp: s.icmp.ok().ok().cloned(),
        }
    }

    /// Seconds between this sample and a later one (None if not later).
    pub fn seconds_to(&self, later_ms: u64) -> Option<f64> {
        (later_ms > self.at_ms).then(|| (later_ms - self.at_ms) as f64 / 1000.0)
    }
}

/// CPU time in clock ticks (USER_HZ) since boot, as `/proc/stat` counts it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    /// Time the hypervisor ran something else while this vCPU wanted to run.
    pub steal: u64,
}

impl CpuTimes {
    /// Every tick (guest time is already inside user/nice).
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
    /// Ticks spent doing work (not idle, not waiting for I/O, not stolen).
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }
    /// `self - earlier`, field by field; None when any counter went backwards (CPU went
    /// offline and back, or a different machine's sample).
    pub fn since(&self, earlier: &CpuTimes) -> Option<CpuTimes> {
        Some(CpuTimes {
            user: self.user.checked_sub(earlier.user)?,
            nice: self.nice.checked_sub(earlier.nice)?,
            system: self.system.checked_sub(earlier.system)?,
            idle: self.idle.checked_sub(earlier.idle)?,
            iowait: self.iowait.checked_sub(earlier.iowait)?,
            irq: self.irq.checked_sub(earlier.irq)?,
            softirq: self.softirq.checked_sub(earlier.softirq)?,
            steal: self.steal.checked_sub(earlier.steal)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CpuSample {
    pub total: CpuTimes,
    /// By CPU number (`cpu0`, `cpu1`, ...; offline CPUs are absent).
    pub per_cpu: Vec<(u32, CpuTimes)>,
    /// 1, 5 and 15 minute load averages.
    pub loadavg: [f64; 3],
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MemorySample {
    pub total_kb: u64,
    /// None on kernels before 3.14 (no MemAvailable).
    pub available_kb: Option<u64>,
    pub swap_total_kb: u64,
    pub swap_free_kb: u64,
    /// Pages swapped in and out since boot.
    pub swap_in: u64,
    pub swap_out: u64,
    /// None on kernels before 4.13 (no `oom_kill` in vmstat).
    pub oom_kills: Option<u64>,
}

/// One line of a `/proc/pressure` file: share of time some (or all) tasks were stalled.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct PressureLine {
    pub avg10: f64,
    pub avg60: f64,
    /// Microseconds stalled since boot.
    pub total_us: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct Pressure {
    pub cpu_some: Option<PressureLine>,
    pub memory_some: Option<PressureLine>,
    pub memory_full: Option<PressureLine>,
    pub io_some: Option<PressureLine>,
    pub io_full: Option<PressureLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Disk {
    pub name: String,
    pub reads: u64,
    pub writes: u64,
    /// Milliseconds the device had I/O in flight (a 32-bit counter in the kernel: it wraps).
    pub io_ticks_ms: u64,
    /// Requests in flight now.
    pub in_flight: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TaskSample {
    /// Processes seen.
    pub processes: u64,
    /// Those in uninterruptible sleep.
    pub dstate: Vec<Task>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub pid: u32,
    pub command: String,
    /// The kernel function it sleeps in (`/proc/PID/wchan`), where readable.
    pub wchan: Option<String>,
}

/// One saved ruleset: which backend and family, read by which tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ruleset {
    /// `nft` or `legacy`.
    pub backend: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub tool: String,
    pub tables: Gathered<Vec<crate::ruleset::iptables::Table>>,
}

/// A listening TCP or UDP socket (`firewall.ports` judges the ruleset for each).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    /// `tcp` or `udp`.
    pub proto: String,
    pub address: IpAddr,
    pub port: u16,
}

/// Stand-ins for "any Internet client" in reply-route lookups when no `--client` is given (the
/// documentation ranges: a lookup sends nothing). The first not on a local subnet is used.
pub const PUBLIC_PROBES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(203, 0, 113, 1),
];

/// The stand-in Internet client for these local addresses.
pub fn public_probe(addrs: &[Address]) -> Ipv4Addr {
    let on_link = |p: Ipv4Addr| {
        addrs
            .iter()
            .any(|a| a.net().is_some_and(|n| n.contains(&IpAddr::V4(p))))
    };
    PUBLIC_PROBES
        .into_iter()
        .find(|p| !on_link(*p))
        .unwrap_or(PUBLIC_PROBES[0])
}

/// Global-scope IPv4 addresses on non-loopback links: where a reply to a client comes from.
pub fn reply_sources<'a>(links: &'a [Link], addrs: &'a [Address]) -> Vec<&'a Address> {
    addrs
        .iter()
        .filter(|a| a.address.is_ipv4() && a.scope == "global")
        .filter(|a| links.iter().any(|l| l.index == a.ifindex && !l.loopback))
        .collect()
}

impl Snapshot {
    /// The stand-in Internet client: as gathered, else (older snapshots) the one the reply
    /// lookups used, else the first documentation address off the local subnets.
    pub fn stand_in(&self) -> std::net::Ipv4Addr {
        if let Some(s) = self.stand_in {
            return s;
        }
        let looked_up = self.client.is_none().then(|| {
            self.reply_lookups
                .ok()
                .ok()
                .and_then(|l| l.first())
                .map(|l| l.destination)
        });
        match looked_up.flatten() {
            Some(IpAddr::V4(v4)) => v4,
            _ => public_probe(self.addresses.ok().map(Vec::as_slice).unwrap_or_default()),
        }
    }

    /// The address replies are judged for: `--client` (IPv4), else the stand-in.
    pub fn reply_target(&self) -> IpAddr {
        match self.client {
            Some(c @ IpAddr::V4(_)) => c,
            _ => IpAddr::V4(self.stand_in()),
        }
    }

    /// Every source's outcome, by name — the one list that `ecs_diag_source_up` and
    /// `ecs_diag_source_errors_total` are made from; a test holds it to the snapshot's fields,
    /// so a new source cannot be left out.
    pub fn source_results(&self) -> Vec<(&'static str, Result<(), &str>)> {
        fn r<T>(g: &Gathered<T>) -> Result<(), &str> {
            match g {
                Gathered::Ok(_) => Ok(()),
                Gathered::Failed(e) => Err(e.as_str()),
            }
        }
        let metadata = match &self.metadata {
            MetadataState::Failed { reason } => Err(reason.as_str()),
            _ => Ok(()),
        };
        vec![
            ("links", r(&self.links)),
            ("addresses", r(&self.addresses)),
            ("routes", r(&self.routes)),
            ("rules", r(&self.rules)),
            ("neighbours", r(&self.neighbours)),
            ("reply_lookups", r(&self.reply_lookups)),
            ("drivers", r(&self.drivers)),
            ("sysctls", r(&self.sysctls)),
            ("network_config", r(&self.network_config)),
            ("icmp", r(&self.icmp)),
            ("dmi", r(&self.dmi)),
            ("metadata", metadata),
            ("firewall", r(&self.firewall)),
            ("nftables", r(&self.nftables)),
            ("ipsets", r(&self.ipsets)),
            ("qdiscs", r(&self.qdiscs)),
            ("softnet", r(&self.softnet)),
            ("conntrack", r(&self.conntrack)),
            ("os", r(&self.os)),
            ("listeners", r(&self.listeners)),
            ("cpu", r(&self.cpu)),
            ("memory", r(&self.memory)),
            ("pressure", r(&self.pressure)),
            ("disks", r(&self.disks)),
            ("tasks", r(&self.tasks)),
        ]
    }
}

fn not_in_snapshot<T>() -> Gathered<T> {
    Gathered::Failed("not recorded in this snapshot".to_string())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Lower-case, colon separated.
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// IFF_UP: the administrator (or network config) brought it up.
    pub admin_up: bool,
    /// IFF_LOWER_UP: the NIC reports a carrier.
    pub carrier: bool,
    /// RFC 2863 operational state as the kernel reports it (`up`, `down`, `lowerlayerdown`, ...).
    pub operstate: String,
    pub loopback: bool,
    /// `veth`, `bridge`, ... for virtual links; absent for physical NICs.
    pub kind: Option<String>,
    /// Packet, error and drop counters since the interface appeared.
    #[serde(default)]
    pub stats: Option<LinkStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    #[serde(default)]
    pub rx_bytes: u64,
    #[serde(default)]
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// A queueing discipline and its counters (netlink tc stats).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Qdisc {
    pub ifindex: u32,
    pub kind: String,
    /// `root` or the parent handle as `major:minor`.
    pub parent: String,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub backlog: u64,
}

/// One CPU's line of `/proc/net/softnet_stat`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SoftnetCpu {
    pub processed: u64,
    /// Backlog full: packets dropped before the stack saw them.
    pub dropped: u64,
    /// The softirq ran out of budget with work left.
    pub time_squeeze: u64,
}

/// Connection tracking table fill and failures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Conntrack {
    pub count: u64,
    pub max: u64,
    pub insert_failed: u64,
    pub drop: u64,
    pub early_drop: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Address {
    pub ifindex: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    /// `global`, `link`, `host`, ...
    pub scope: String,
}

impl Address {
    pub fn net(&self) -> Option<IpNet> {
        IpNet::new(self.address, self.prefix_len).ok()
    }
}

/// `unicast`, `local`, `blackhole`, `unreachable`, `prohibit`, ... as `ip route` names them.
pub type RouteKind = String;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Route {
    pub table: u32,
    pub kind: RouteKind,
    /// `0.0.0.0/0` for a default route.
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub prefsrc: Option<IpAddr>,
    pub metric: Option<u32>,
    pub protocol: String,
    /// The kernel marked the route's next hop link-down.
    #[serde(default)]
    pub linkdown: bool,
    /// Multipath next hops (`nexthop via ... dev ...`).
    #[serde(default)]
    pub nexthops: Vec<NextHop>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NextHop {
    pub gateway: Option<IpAddr>,
    pub oif: u32,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.destination.prefix_len() == 0
    }
    /// Every (gateway, oif) this route can send through.
    pub fn hops(&self) -> Vec<(Option<IpAddr>, Option<u32>)> {
        if self.nexthops.is_empty() {
            vec![(self.gateway, self.oif)]
        } else {
            self.nexthops
                .iter()
                .map(|h| (h.gateway, Some(h.oif)))
                .collect()
        }
    }
}

pub const TABLE_MAIN: u32 = 254;
pub const TABLE_LOCAL: u32 = 255;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub family: String,
    pub priority: u32,
    pub table: u32,
    /// `to_table`, `blackhole`, `unreachable`, `prohibit`, `goto`, `nop`.
    pub action: String,
    pub source: Option<IpNet>,
    pub destination: Option<IpNet>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
}

/// Neighbour (ARP/NDP) cache state, as `ip neigh` names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NeighbourState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    Noarp,
    Permanent,
    None,
}

impl NeighbourState {
    /// The kernel could not (or not yet) resolve the address: nothing can be sent to it.
    pub fn is_unresolved(self) -> bool {
        matches!(self, NeighbourState::Failed | NeighbourState::Incomplete)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub address: IpAddr,
    pub mac: Option<String>,
    pub state: NeighbourState,
}

/// "Which way would a reply from `source` to `destination` go?", answered by the kernel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteLookup {
    pub destination: IpAddr,
    pub source: IpAddr,
    /// The interface `source` is configured on.
    pub source_ifindex: u32,
    pub outcome: LookupOutcome,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LookupOutcome {
    Route {
        kind: RouteKind,
        table: Option<u32>,
        oif: Option<u32>,
        gateway: Option<IpAddr>,
        prefsrc: Option<IpAddr>,
    },
    /// The kernel refused: `errno` and its meaning for routing (`ENETUNREACH`: no route, ...).
    Refused { errno: i32, meaning: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NicDriver {
    /// The interface has a backing device in sysfs (physical or paravirtual NIC).
    pub has_device: bool,
    /// The bound driver's name (`virtio_net`, ...), if any.
    pub driver: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Sysctl {
    /// The running value, whitespace-normalised; absent when unreadable or not present.
    pub now: Option<String>,
    /// Why `now` is absent.
    pub error: Option<String>,
    /// The value the sysctl.d / sysctl.conf files would set at boot.
    pub after_reboot: Option<PersistedSysctl>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersistedSysctl {
    pub value: String,
    pub file: String,
    pub line: usize,
}

/// Which tool persisted an interface's configuration.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConfigFormat {
    Ifcfg,
    Netplan,
    Ifupdown,
    NetworkManager,
    Networkd,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AddressingMethod {
    Dhcp,
    Static,
    /// Configured, but neither DHCP nor a static IPv4 address (e.g. `method=disabled`).
    Other,
}

/// One persisted IPv4 configuration of an interface, from one file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InterfaceConfig {
    pub file: String,
    pub format: ConfigFormat,
    /// Interface name or name pattern the file applies to, if it says.
    pub interface: Option<String>,
    /// MAC address the file applies to, if it says.
    pub mac: Option<String>,
    pub method: AddressingMethod,
    pub addresses: Vec<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
}

/// ICMP counters from `/proc/net/snmp` and `/proc/net/snmp6`, at one moment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct IcmpCounters {
    /// Milliseconds since the Unix epoch when read.
    pub at_ms: u64,
    pub in_msgs: u64,
    pub in_errors: u64,
    pub in_echos: u64,
    pub out_echo_reps: u64,
    /// Kernels ≥ 6.0 only.
    pub out_rate_limit_global: Option<u64>,
    pub out_rate_limit_host: Option<u64>,
    pub in_echos6: Option<u64>,
    pub out_echo_replies6: Option<u64>,
}

/// `ID`, `ID_LIKE` and `PRETTY_NAME` from os-release.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    fn is(&self, names: &[&str]) -> bool {
        names.contains(&self.id.as_str())
            || self.id_like.iter().any(|l| names.contains(&l.as_str()))
    }
    /// Debian, Ubuntu and derivatives.
    pub fn debian_like(&self) -> bool {
        self.is(&["debian", "ubuntu"])
    }
    /// RHEL, CentOS, Fedora, Alibaba Cloud Linux, Anolis and derivatives.
    pub fn rhel_like(&self) -> bool {
        self.is(&[
            "rhel",
            "centos",
            "fedora",
            "alinux",
            "anolis",
            "rocky",
            "almalinux",
        ])
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Dmi {
    pub sys_vendor: Option<String>,
    pub product_name: Option<String>,
}

impl Dmi {
    /// The signal cloud-init's Alibaba data source uses.
    pub fn is_alibaba_ecs(&self) -> bool {
        self.product_name.as_deref() == Some("Alibaba Cloud ECS")
            || self.sys_vendor.as_deref() == Some("Alibaba Cloud")
    }
}

/// What the instance metadata service said, or why it was not asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum MetadataState {
    /// Not asked: `mode = "never"`, or `auto` on a machine DMI does not call Alibaba Cloud ECS.
    NotProbed {
        reason: String,
    },
    Ok(InstanceMetadata),
    Failed {
        reason: String,
    },
}

impl Default for MetadataState {
    fn default() -> Self {
        MetadataState::NotProbed {
            reason: "not gathered".to_string(),
        }
    }
}

impl MetadataState {
    pub fn ok(&self) -> Option<&InstanceMetadata> {
        match self {
            MetadataState::Ok(m) => Some(m),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct InstanceMetadata {
    /// The token (hardened) mode answered; false: plain requests were used.
    pub hardened: bool,
    pub instance_id: Option<String>,
    pub region_id: Option<String>,
    pub zone_id: Option<String>,
    pub instance_type: Option<String>,
    /// The primary ENI's MAC, lower-case.
    pub mac: String,
    pub private_ipv4: Option<Ipv4Addr>,
    pub eipv4: Option<Ipv4Addr>,
    pub public_ipv4: Option<Ipv4Addr>,
    pub vpc_cidr: Option<Ipv4Net>,
    pub vswitch_cidr: Option<Ipv4Net>,
    pub interfaces: Vec<MetadataInterface>,
}

impl InstanceMetadata {
    pub fn primary(&self) -> Option<&MetadataInterface> {
        self.interfaces
            .iter()
            .find(|i| i.mac.eq_ignore_ascii_case(&self.mac))
    }
}

/// One ENI as the cloud assigned it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MetadataInterface {
    pub mac: String,
    pub eni_id: Option<String>,
    pub primary_ip: Option<Ipv4Addr>,
    pub prefix_len: Option<u8>,
    /// `netmask`, or `vswitch-cidr-block` where the netmask is not published.
    pub prefix_from: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// Every private IPv4 of the ENI, primary included.
    pub private_ipv4s: Vec<Ipv4Addr>,
    pub vswitch_cidr: Option<Ipv4Net>,
    pub vpc_cidr: Option<Ipv4Net>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply target is decided in one place: `--client`, else the recorded stand-in,
    /// else (older snapshots) the stand-in the lookups used.
    #[test]
    fn reply_target_and_stand_in() {
        let mut s = crate::checks::fixture::healthy();
        let looked_up = s.reply_lookups.ok().unwrap()[0].destination;
        assert_eq!(s.reply_target(), looked_up);
        s.stand_in = Some(std::net::Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(s.reply_target(), "203.0.113.1".parse::<IpAddr>().unwrap());
        s.client = Some("198.18.0.2".parse().unwrap());
        assert_eq!(s.reply_target(), "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(s.stand_in(), std::net::Ipv4Addr::new(203, 0, 113, 1));
        // Nothing recorded, nothing looked up: the first documentation address off-link.
        s.stand_in = None;
        s.reply_lookups = Gathered::Failed("x".into());
        assert_eq!(s.stand_in(), PUBLIC_PROBES[0]);
    }
    /// Every field of the snapshot that holds a source's result (`{"ok": ...}` or
    /// `{"failed": ...}` in JSON), and the metadata, is in `source_results`: the metrics and
    /// the docs cannot drift from the sources again.
    #[test]
    fn every_source_is_listed() {
        let s = crate::checks::fixture::healthy();
        let listed: Vec<&str> = s.source_results().iter().map(|(n, _)| *n).collect();
        let json = serde_json::to_value(&s).unwrap();
        let mut sources = vec!["metadata".to_string()];
        for (key, v) in json.as_object().unwrap() {
            let is_gathered = v.as_object().is_some_and(|o| {
                o.len() == 1 && (o.contains_key("ok") || o.contains_key("failed"))
            });
            if is_gathered && key != "metadata" {
                sources.push(key.clone());
            }
        }
        for s in &sources {
            assert!(
                listed.contains(&s.as_str()),
                "source {s} missing from source_results"
            );
        }
        assert_eq!(listed.len(), sources.len(), "{listed:?} vs {sources:?}");
    }
}
