//! Gathers links, addresses, routes (every table), policy rules and neighbours by netlink dumps,
//! and asks the kernel which way a reply would go (RTM_GETROUTE lookups). Netlink types are
//! converted to the snapshot's own types here; nothing past this module sees them.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::{Stream, TryStreamExt};
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState as NlNeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::tc::{TcAttribute, TcMessage, TcStats2};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};

use crate::snapshot::Qdisc;

use crate::snapshot::{
    Address, Gathered, Link, LookupOutcome, Neighbour, NeighbourState, NextHop, Route, RouteLookup,
    Rule,
};

/// Each dump or lookup must answer within this.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(3);

/// A connected rtnetlink handle; the connection task runs on the current runtime.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    pub fn connect() -> Result<Netlink, String> {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| format!("cannot open a NETLINK_ROUTE socket: {e}"))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn links(&self) -> Gathered<Vec<Link>> {
        collect("link dump", self.handle.link().get().execute(), |m| {
            Some(link_from(m))
        })
        .await
    }

    pub async fn addresses(&self) -> Gathered<Vec<Address>> {
        collect(
            "address dump",
            self.handle.address().get().execute(),
            address_from,
        )
        .await
    }

    pub async fn routes(&self) -> Gathered<Vec<Route>> {
        let mut all = Vec::new();
        for (what, msg) in [
            (
                "IPv4 route dump",
                RouteMessageBuilder::<Ipv4Addr>::new().build(),
            ),
            (
                "IPv6 route dump",
                RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
            ),
        ] {
            match collect(what, self.handle.route().get(msg).execute(), route_from).await {
                Gathered::Ok(v) => all.extend(v),
                failed => return failed,
            }
        }
        Gathered::Ok(all)
    }

    pub async fn rules(&self) -> Gathered<Vec<Rule>> {
        let mut all = Vec::new();
        for (what, v) in [
            ("IPv4 rule dump", IpVersion::V4),
            ("IPv6 rule dump", IpVersion::V6),
        ] {
            match collect(what, self.handle.rule().get(v).execute(), |m| {
                Some(rule_from(m))
            })
            .await
            {
                Gathered::Ok(v) => all.extend(v),
                failed => return failed,
            }
        }
        Gathered::Ok(all)
    }

    pub async fn neighbours(&self) -> Gathered<Vec<Neighbour>> {
        collect(
            "neighbour dump",
            self.handle.neighbours().get().execute(),
            neighbour_from,
        )
        .await
    }

    /// Every qdisc with its packet and drop counters (`tc -s qdisc`).
    pub async fn qdiscs(&self) -> Gathered<Vec<Qdisc>> {
        collect("qdisc dump", self.handle.qdisc().get().execute(), |m| {
            Some(qdisc_from(m))
        })
        .await
    }

    /// `ip route get DESTINATION from SOURCE`: the route the kernel would pick for a locally
    /// generated reply, policy rules included.
    pub async fn lookup(
        &self,
        destination: IpAddr,
        source: IpAddr,
        source_ifindex: u32,
    ) -> Result<RouteLookup, String> {
        let mut msg = match (destination, source) {
            (IpAddr::V4(d), IpAddr::V4(s)) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(d, 32)
                .source_prefix(s, 32)
                .build(),
            (IpAddr::V6(d), IpAddr::V6(s)) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(d, 128)
                .source_prefix(s, 128)
                .build(),
            _ => {
                return Err(format!(
                    "route lookup: {source} and {destination} are of different families"
                ))
            }
        };
        // Ask for the table the route came from rather than the default "main".
        msg.header.flags |= RouteFlags::LookupTable;
        let request = self.handle.route().get(msg).execute();
        let answer = with_timeout("route lookup", async {
            futures_util::pin_mut!(request);
            request.try_next().await
        })
        .await?;
        let outcome = match answer {
            Ok(Some(m)) => lookup_outcome(&m),
            Ok(None) => return Err("route lookup: the kernel sent no answer".to_string()),
            Err(rtnetlink::Error::NetlinkError(e)) => {
                let errno = -e.raw_code();
                LookupOutcome::Refused {
                    errno,
                    meaning: errno_meaning(errno).to_string(),
                }
            }
            Err(e) => return Err(format!("route lookup: {e}")),
        };
        Ok(RouteLookup {
            destination,
            source,
            source_ifindex,
            outcome,
        })
    }
}

async fn with_timeout<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(NETLINK_TIMEOUT, fut)
        .await
        .map_err(|_| format!("{what}: no answer from the kernel within {NETLINK_TIMEOUT:?}"))
}

async fn collect<M, T>(
    what: &str,
    stream: impl Stream<Item = Result<M, rtnetlink::Error>>,
    convert: impl Fn(M) -> Option<T>,
) -> Gathered<Vec<T>> {
    match with_timeout(what, stream.try_collect::<Vec<M>>()).await {
        Ok(Ok(msgs)) => Gathered::Ok(msgs.into_iter().filter_map(convert).collect()),
        Ok(Err(e)) => Gathered::Failed(format!("{what}: {e}")),
        Err(e) => Gathered::Failed(e),
    }
}

/// What an RTM_GETROUTE refusal means for a reply.
pub fn errno_meaning(errno: i32) -> &'static str {
    match errno {
        101 => "network unreachable: no route matches",
        113 => "host unreachable: an unreachable route matches",
        13 => "prohibited: a prohibit route or rule matches",
        22 => "invalid: a blackhole route or rule matches",
        _ => "the kernel refused the lookup",
    }
}

fn mac_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn link_from(m: LinkMessage) -> Link {
    let flags = m.header.flags;
    let mut link = Link {
        index: m.header.index,
        admin_up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        loopback: flags.contains(LinkFlags::Loopback),
        noarp: flags.contains(LinkFlags::Noarp),
        operstate: "unknown".to_string(),
        ..Default::default()
    };
    for attr in m.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(a) if !a.is_empty() => link.mac = Some(mac_string(&a)),
            LinkAttribute::Mtu(v) => link.mtu = Some(v),
            LinkAttribute::Controller(i) if i != 0 => link.controller = Some(i),
            LinkAttribute::OperState(s) => link.operstate = operstate_name(s),
            LinkAttribute::Stats64(st) => {
                link.stats = Some(crate::snapshot::LinkStats {
                    rx_packets: st.rx_packets,
                    tx_packets: st.tx_packets,
                    rx_bytes: st.rx_bytes,
                    tx_bytes: st.tx_bytes,
                    rx_errors: st.rx_errors,
                    tx_errors: st.tx_errors,
                    rx_dropped: st.rx_dropped,
                    tx_dropped: st.tx_dropped,
                })
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(kind_name(&k));
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn qdisc_from(m: TcMessage) -> Qdisc {
    let parent = m.header.parent;
    let mut q = Qdisc {
        ifindex: u32::try_from(m.header.index).unwrap_or(0),
        parent: if parent.major == 0xffff && parent.minor == 0xffff {
            "root".to_string()
        } else {
            format!("{:x}:{:x}", parent.major, parent.minor)
        },
        ..Default::default()
    };
    for attr in m.attributes {
        match attr {
            TcAttribute::Kind(k) => q.kind = k,
            TcAttribute::Stats2(stats) => {
                for st in stats {
                    match st {
                        TcStats2::Basic(b) => q.packets = u64::from(b.packets),
                        TcStats2::Queue(qs) => {
                            q.drops = u64::from(qs.drops);
                            q.overlimits = u64::from(qs.overlimits);
                            q.backlog = u64::from(qs.backlog);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    q
}

fn operstate_name(s: State) -> String {
    match s {
        State::Unknown => "unknown".into(),
        State::NotPresent => "notpresent".into(),
        State::Down => "down".into(),
        State::LowerLayerDown => "lowerlayerdown".into(),
        State::Testing => "testing".into(),
        State::Dormant => "dormant".into(),
        State::Up => "up".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Other(s) => s.clone(),
        other => other.to_string(),
    }
}

fn address_from(m: AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    for attr in m.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(a),
            AddressAttribute::Address(a) => address = Some(a),
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours when present.
    let address = local.or(address)?;
    Some(Address {
        ifindex: m.header.index,
        address,
        prefix_len: m.header.prefix_len,
        scope: scope_name(m.header.scope),
    })
}

fn scope_name(s: AddressScope) -> String {
    match s {
        AddressScope::Universe => "global".into(),
        AddressScope::Site => "site".into(),
        AddressScope::Link => "link".into(),
        AddressScope::Host => "host".into(),
        AddressScope::Nowhere => "nowhere".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

pub fn route_kind_name(k: RouteType) -> String {
    match k {
        RouteType::Unicast => "unicast".into(),
        RouteType::Local => "local".into(),
        RouteType::Broadcast => "broadcast".into(),
        RouteType::Anycast => "anycast".into(),
        RouteType::Multicast => "multicast".into(),
        RouteType::BlackHole => "blackhole".into(),
        RouteType::Unreachable => "unreachable".into(),
        RouteType::Prohibit => "prohibit".into(),
        RouteType::Throw => "throw".into(),
        RouteType::Nat => "nat".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn route_from(m: RouteMessage) -> Option<Route> {
    let h = &m.header;
    let family_any: IpAddr = match h.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut route = Route {
        table: u32::from(h.table),
        kind: route_kind_name(h.kind),
        destination: IpNet::new(family_any, 0).ok()?,
        gateway: None,
        oif: None,
        prefsrc: None,
        metric: None,
        protocol: protocol_name(h.protocol),
        linkdown: h.flags.contains(RouteFlags::Linkdown),
        nexthops: Vec::new(),
    };
    let mut dst = None;
    for attr in &m.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            RouteAttribute::PrefSource(a) => route.prefsrc = route_ip(a),
            RouteAttribute::Priority(p) => route.metric = Some(*p),
            // RTA_TABLE carries tables above 255, where the header says 252 (RT_TABLE_COMPAT).
            RouteAttribute::Table(t) => route.table = *t,
            RouteAttribute::MultiPath(hops) => {
                for hop in hops {
                    let gateway = hop.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => route_ip(g),
                        _ => None,
                    });
                    route.nexthops.push(NextHop {
                        gateway,
                        oif: hop.interface_index,
                    });
                }
            }
            _ => {}
        }
    }
    if let Some(d) = dst {
        route.destination = IpNet::new(d, h.destination_prefix_length).ok()?;
    }
    Some(route)
}

fn protocol_name(p: RouteProtocol) -> String {
    match p {
        RouteProtocol::Kernel => "kernel".into(),
        RouteProtocol::Boot => "boot".into(),
        RouteProtocol::Static => "static".into(),
        RouteProtocol::Dhcp => "dhcp".into(),
        RouteProtocol::Ra => "ra".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn lookup_outcome(m: &RouteMessage) -> LookupOutcome {
    let mut table = None;
    let mut oif = None;
    let mut gateway = None;
    let mut prefsrc = None;
    for attr in &m.attributes {
        match attr {
            RouteAttribute::Table(t) => table = Some(*t),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(a) => gateway = route_ip(a),
            RouteAttribute::PrefSource(a) => prefsrc = route_ip(a),
            _ => {}
        }
    }
    LookupOutcome::Route {
        kind: route_kind_name(m.header.kind),
        table: table.or(Some(u32::from(m.header.table))),
        oif,
        gateway,
        prefsrc,
    }
}

fn rule_from(m: RuleMessage) -> Rule {
    let h = &m.header;
    let family = match h.family {
        AddressFamily::Inet6 => "inet6",
        _ => "inet",
    };
    let mut rule = Rule {
        family: family.to_string(),
        priority: 0,
        table: u32::from(h.table),
        action: match h.action {
            RuleAction::ToTable => "to_table".into(),
            RuleAction::Goto => "goto".into(),
            RuleAction::Nop => "nop".into(),
            RuleAction::Blackhole => "blackhole".into(),
            RuleAction::Unreachable => "unreachable".into(),
            RuleAction::Prohibit => "prohibit".into(),
            other => format!("{other:?}").to_lowercase(),
        },
        source: None,
        destination: None,
        iif: None,
        oif: None,
        fwmark: None,
    };
    for attr in m.attributes {
        match attr {
            RuleAttribute::Priority(p) => rule.priority = p,
            RuleAttribute::Table(t) => rule.table = t,
            RuleAttribute::Source(a) => rule.source = IpNet::new(a, h.src_len).ok(),
            RuleAttribute::Destination(a) => rule.destination = IpNet::new(a, h.dst_len).ok(),
            RuleAttribute::Iifname(n) => rule.iif = Some(n),
            RuleAttribute::Oifname(n) => rule.oif = Some(n),
            RuleAttribute::FwMark(v) => rule.fwmark = Some(v),
            _ => {}
        }
    }
    rule
}

fn neighbour_from(m: NeighbourMessage) -> Option<Neighbour> {
    let mut address = None;
    let mut mac = None;
    for attr in m.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                address = Some(IpAddr::V4(a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                address = Some(IpAddr::V6(a))
            }
            NeighbourAttribute::LinkLayerAddress(l) if !l.is_empty() => mac = Some(mac_string(&l)),
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: m.header.ifindex,
        address: address?,
        mac,
        state: match m.header.state {
            NlNeighbourState::Incomplete => NeighbourState::Incomplete,
            NlNeighbourState::Reachable => NeighbourState::Reachable,
            NlNeighbourState::Stale => NeighbourState::Stale,
            NlNeighbourState::Delay => NeighbourState::Delay,
            NlNeighbourState::Probe => NeighbourState::Probe,
            NlNeighbourState::Failed => NeighbourState::Failed,
            NlNeighbourState::Noarp => NeighbourState::Noarp,
            NlNeighbourState::Permanent => NeighbourState::Permanent,
            _ => NeighbourState::None,
        },
    })
}
