//! The network facts read from netlink: links, addresses, routes, policy rules, neighbours,
//! the kernel's reply-route lookups, NIC drivers and listening sockets.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

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

/// The stand-in Internet client for IPv6 (documentation prefix): only looked up, never sent to.
pub const PUBLIC_PROBE6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// Global-scope IPv6 addresses on non-loopback links: where an IPv6 reply comes from.
pub fn reply_sources_v6<'a>(links: &'a [Link], addrs: &'a [Address]) -> Vec<&'a Address> {
    global_on_links(links, addrs, true)
}

fn global_on_links<'a>(links: &'a [Link], addrs: &'a [Address], v6: bool) -> Vec<&'a Address> {
    addrs
        .iter()
        .filter(|a| a.address.is_ipv6() == v6 && a.scope == "global")
        .filter(|a| links.iter().any(|l| l.index == a.ifindex && !l.loopback))
        .collect()
}

/// Global-scope IPv4 addresses on non-loopback links: where a reply to a client comes from.
pub fn reply_sources<'a>(links: &'a [Link], addrs: &'a [Address]) -> Vec<&'a Address> {
    global_on_links(links, addrs, false)
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
    /// IFF_NOARP: the link resolves no neighbours (`ip link set dev IF arp off`).
    #[serde(default)]
    pub noarp: bool,
    /// IFLA_MASTER: the bridge or bond this link is a port of.
    #[serde(default)]
    pub controller: Option<u32>,
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

impl LinkStats {
    /// The counters' increase since `before` (the same link earlier); None if any went
    /// backwards (the NIC was reset).
    pub fn since(&self, before: &LinkStats) -> Option<LinkStats> {
        let d = |now, b| super::increase(now, b, false);
        Some(LinkStats {
            rx_packets: d(self.rx_packets, before.rx_packets)?,
            tx_packets: d(self.tx_packets, before.tx_packets)?,
            rx_bytes: d(self.rx_bytes, before.rx_bytes)?,
            tx_bytes: d(self.tx_bytes, before.tx_bytes)?,
            rx_errors: d(self.rx_errors, before.rx_errors)?,
            tx_errors: d(self.tx_errors, before.tx_errors)?,
            rx_dropped: d(self.rx_dropped, before.rx_dropped)?,
            tx_dropped: d(self.tx_dropped, before.tx_dropped)?,
        })
    }
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
