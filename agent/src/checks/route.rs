//! `route.default`, `route.reply`: does a reply to an outside client leave by the vSwitch
//! gateway on the right interface? `route.default` judges the routing table (a default route
//! via the assigned gateway on the primary interface; no blackhole/unreachable/prohibit route
//! capturing the client). `route.reply` judges the kernel's own answer to "which way would the
//! reply from each local address go" (RTM_GETROUTE, policy rules included).

use std::net::IpAddr;

use serde_json::json;

use super::{
    assigned_values, default_routes_v4, link_name, no_primary, primary_interface, reply_target,
    target_label,
};
use crate::checks::{Cause, Check};
use crate::report::{Finding, Subject};
use crate::snapshot::{LookupOutcome, Route, RouteLookup, Snapshot};

pub const DEFAULT: &str = "route.default";
pub const REPLY: &str = "route.reply";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: DEFAULT,
        decides: "an IPv4 default route goes via the assigned gateway on the primary interface, and no blackhole, unreachable or prohibit route captures replies; where the instance uses IPv6, an IPv6 default route does the same (via the assigned or a link-local router)",
        evidence: &["netlink routes of every table", "the metadata gateway and ipv6-gateway", "the primary interface"],
        causes: &[
            Cause { id: "no_default_route", cause: "no default route", remedy: "ip route replace default via GATEWAY dev IF; make it persistent" },
            Cause { id: "no_ipv6_default_route", cause: "no IPv6 default route on an instance with IPv6", remedy: "ip -6 route replace default via GATEWAY6 dev IF, or accept router advertisements (net.ipv6.conf.IF.accept_ra)" },
            Cause { id: "default_route_elsewhere", cause: "the default route uses another gateway or interface", remedy: "ip route replace default via GATEWAY dev IF" },
            Cause { id: "default_route_linkdown", cause: "the default route's interface has no carrier (marked linkdown; see link.primary)", remedy: "see link.primary" },
            Cause { id: "blackhole_route", cause: "a blackhole, unreachable or prohibit route covers the client", remedy: "ip route del TYPE PREFIX, and remove it from the persisted configuration" },
        ],
        judge: |s, _| {
            let v6 = default_route_v6(s);
            let families: &[Subject] = if v6.is_some() {
                &[Subject::DefaultRoute(4), Subject::DefaultRoute(6)]
            } else {
                &[Subject::DefaultRoute(4)]
            };
            let f = super::with_ipv6(default_route(s), v6).judges(families.iter().cloned());
            // A route that captures the replies is a cause of its own; a missing or wrong
            // default route may be the link's or the address's doing (the kernel removes
            // routes through a device that goes down or loses the gateway's subnet).
            if f.evidence.get("capturing_route").is_some() {
                f
            } else {
                f.relies_on(super::primary_link(s))
                    .relies_on(super::assigned_primary(s))
            }
        },
    },
    Check {
        id: REPLY,
        decides: "the kernel's own route lookup sends the reply to the client (or a stand-in Internet address) from each local address out of a working path, policy rules included",
        evidence: &["RTM_GETROUTE lookups from each local IPv4 address to the client, and from each global IPv6 address where the instance uses IPv6", "policy rules (ip rule)"],
        causes: &[
            Cause { id: "reply_unroutable", cause: "the lookup is refused (no route, unreachable, prohibit)", remedy: "ip route get CLIENT from LOCAL; ip rule; ip route show table all" },
            Cause { id: "asymmetric_reply_route", cause: "replies from a secondary ENI's address leave by another interface", remedy: "ip rule add from ENI_IP table 100; ip route add default via GATEWAY dev ENI table 100" },
        ],
        judge: |s, _| {
            reply(s)
                .judges([Subject::ReplyRoute(4), Subject::ReplyRoute(6)])
                .relies_on([Subject::DefaultRoute(4), Subject::DefaultRoute(6)])
                .relies_on(super::primary_link(s))
        },
    },
];

const DROPPING: &[&str] = &["blackhole", "unreachable", "prohibit"];

fn route_text(s: &Snapshot, r: &Route) -> String {
    let mut t = if r.kind == "unicast" {
        String::new()
    } else {
        format!("{} ", r.kind)
    };
    t.push_str(&if r.is_default() {
        "default".to_string()
    } else {
        r.destination.to_string()
    });
    for (gw, oif) in r.hops() {
        if let Some(g) = gw {
            t.push_str(&format!(" via {g}"));
        }
        if let Some(o) = oif {
            t.push_str(&format!(" dev {}", link_name(s, o)));
        }
    }
    if r.table != crate::snapshot::TABLE_MAIN {
        t.push_str(&format!(" table {}", r.table));
    }
    if let Some(m) = r.metric {
        t.push_str(&format!(" metric {m}"));
    }
    t
}

pub fn default_route(s: &Snapshot) -> Finding {
    let routes = match s.routes.ok() {
        Ok(r) => r,
        Err(e) => return Finding::unknown(DEFAULT, format!("cannot read routes: {e}")),
    };
    // A dropping route more specific than the default that captures the reply target.
    let dest = reply_target(s);
    // Tables main/local/default are always consulted; others only where a rule points at them.
    let rules = s.rules.ok().map(Vec::as_slice).unwrap_or_default();
    let consulted = |t: u32| (253..=255).contains(&t) || rules.iter().any(|r| r.table == t);
    let capturing: Vec<&Route> = routes
        .iter()
        .filter(|r| {
            DROPPING.contains(&r.kind.as_str())
                && r.destination.contains(&dest)
                && consulted(r.table)
        })
        .collect();
    if let Some(r) = capturing.iter().max_by_key(|r| r.destination.prefix_len()) {
        let text = route_text(s, r);
        let mut del = format!("ip route del {} {}", r.kind, r.destination);
        if r.table != crate::snapshot::TABLE_MAIN {
            del.push_str(&format!(" table {}", r.table));
        }
        return Finding::fail(DEFAULT, format!("route `{text}` drops replies to {}", target_label(s))).cause("blackhole_route")
            .evidence(json!({"capturing_route": text, "target": dest}))
            .remedy([del, "remove it from the persisted configuration too (route-eth0 files, netplan routes:, /etc/network/interfaces `up` lines, or the script that adds it)".to_string()]);
    }

    let defaults = default_routes_v4(s);
    let default_texts: Vec<String> = defaults.iter().map(|r| route_text(s, r)).collect();
    let md_gateway = s
        .metadata
        .ok()
        .and_then(|m| m.primary())
        .and_then(|e| e.gateway);
    let primary = primary_interface(s);
    let (pname, pindex) = match &primary {
        Ok(p) => (p.link.name.clone(), Some(p.link.index)),
        Err(_) => ("<primary interface>".to_string(), None),
    };
    let evidence = json!({"default_routes": default_texts, "assigned_gateway": md_gateway, "primary_interface": pname});
    let gw_text = md_gateway
        .map(|g| g.to_string())
        .unwrap_or_else(|| "<vSwitch gateway>".into());
    let add = format!("ip route replace default via {gw_text} dev {pname}");
    let persist = "make it persistent: GATEWAY= in ifcfg-<dev>, `gateway4`/`routes: - to: default` in netplan, `gateway` in /etc/network/interfaces (or use DHCP)".to_string();
    let Some(best) = defaults.first() else {
        return Finding::fail(
            DEFAULT,
            "no IPv4 default route: replies to the Internet have nowhere to go",
        )
        .cause("no_default_route")
        .evidence(evidence)
        .remedy([add, persist]);
    };
    if best.kind != "unicast" {
        return Finding::fail(
            DEFAULT,
            format!(
                "the default route is `{}`: it drops every reply",
                route_text(s, best)
            ),
        )
        .cause("blackhole_route")
        .evidence(evidence)
        .remedy([format!("ip route del {} default", best.kind), add, persist]);
    }
    let hops = best.hops();
    if let Err(e) = primary {
        if s.metadata.ok().is_none() {
            return no_primary(DEFAULT, e);
        }
    }
    let on_primary = hops.iter().any(|(_, oif)| oif.is_some() && *oif == pindex);
    match md_gateway {
        Some(g) => {
            let right = hops
                .iter()
                .any(|(gw, oif)| *gw == Some(IpAddr::V4(g)) && *oif == pindex);
            if right {
                if best.linkdown {
                    return Finding::fail(
                        DEFAULT,
                        format!(
                            "the default route via {g} is marked linkdown: {pname} has no carrier"
                        ),
                    )
                    .cause("default_route_linkdown")
                    .evidence(evidence);
                }
                return Finding::ok(
                    DEFAULT,
                    format!("default route via the vSwitch gateway {g} on {pname}"),
                )
                .evidence(evidence);
            }
            let via = hops
                .iter()
                .filter_map(|(gw, _)| *gw)
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let summary = if !on_primary {
                format!(
                    "the default route `{}` does not use the primary interface {pname}",
                    default_texts[0]
                )
            } else if via.is_empty() {
                format!(
                    "the default route `{}` has no gateway; the vSwitch gateway is {g}",
                    default_texts[0]
                )
            } else {
                format!("the default route goes via {via}, but the vSwitch gateway is {g}")
            };
            Finding::fail(DEFAULT, summary)
                .cause("default_route_elsewhere")
                .evidence(evidence)
                .remedy([add, persist])
        }
        None => {
            if !on_primary {
                return Finding::warn(
                    DEFAULT,
                    format!("the default route `{}` is not on {pname}", default_texts[0]),
                )
                .cause("default_route_elsewhere")
                .evidence(evidence);
            }
            let what = format!(
                "default route `{}`; its gateway is not compared with the vSwitch gateway",
                default_texts[0]
            );
            match assigned_values(s, DEFAULT, &what) {
                // Failed metadata: say so. Not consulted, or no gateway published: judged as is.
                Err(f) if f.status == crate::report::Status::Unknown => f.evidence(evidence),
                _ => Finding::ok(
                    DEFAULT,
                    format!(
                        "default route `{}` (no assigned gateway to compare with)",
                        default_texts[0]
                    ),
                )
                .evidence(evidence),
            }
        }
    }
}

/// The IPv6 half of route.default, where the instance uses IPv6 (None: not judged).
pub fn default_route_v6(s: &Snapshot) -> Option<Finding> {
    if !super::ipv6_in_use(s) || s.routes.ok().is_err() {
        return None;
    }
    let defaults = super::default_routes_v6(s);
    let texts: Vec<String> = defaults.iter().map(|r| route_text(s, r)).collect();
    let md_gateway = s
        .metadata
        .ok()
        .and_then(|m| m.primary())
        .and_then(|e| e.ipv6_gateway);
    let primary = primary_interface(s);
    let (pname, pindex) = match &primary {
        Ok(p) => (p.link.name.clone(), Some(p.link.index)),
        Err(_) => ("<primary interface>".to_string(), None),
    };
    let evidence = json!({"default_routes": texts, "assigned_gateway": md_gateway, "assigned_addresses": super::assigned_ipv6s(s)});
    let gw_text =
        md_gateway.map_or_else(|| "<vSwitch IPv6 gateway>".to_string(), |g| g.to_string());
    let add = format!("ip -6 route replace default via {gw_text} dev {pname}");
    let persist = format!("make it persistent: IPV6_DEFAULTGW= in ifcfg-{pname}, `routes: - to: ::/0` in netplan, or let router advertisements set it (sysctl net.ipv6.conf.{pname}.accept_ra=1; DHCPV6C=yes)");
    let Some(best) = defaults.first() else {
        return Some(
            Finding::fail(
                DEFAULT,
                format!("no IPv6 default route: replies to IPv6 clients have nowhere to go (this instance has IPv6: {})", ipv6_reason(s)),
            ).cause("no_ipv6_default_route")
            .evidence(evidence)
            .remedy([add, persist]),
        );
    };
    if best.kind != "unicast" {
        return Some(
            Finding::fail(
                DEFAULT,
                format!(
                    "the IPv6 default route is `{}`: it drops every IPv6 reply",
                    texts[0]
                ),
            )
            .cause("blackhole_route")
            .evidence(evidence)
            .remedy([
                format!("ip -6 route del {} default", best.kind),
                add,
                persist,
            ]),
        );
    }
    let hops = best.hops();
    let on_primary = hops.iter().any(|(_, oif)| oif.is_some() && *oif == pindex);
    if !on_primary {
        return Some(
            Finding::fail(
                DEFAULT,
                format!(
                    "the IPv6 default route `{}` does not use the primary interface {pname}",
                    texts[0]
                ),
            )
            .cause("default_route_elsewhere")
            .evidence(evidence)
            .remedy([add, persist]),
        );
    }
    // A router learned from advertisements is link-local; otherwise it must be the assigned one.
    let router_ok = |gw: &Option<IpAddr>| match gw {
        Some(IpAddr::V6(g)) => g.is_unicast_link_local() || md_gateway.is_none_or(|m| m == *g),
        _ => false,
    };
    if !hops.iter().any(|(gw, oif)| *oif == pindex && router_ok(gw)) {
        let summary = match md_gateway {
            Some(g) => format!(
                "the IPv6 default route `{}` does not go via the vSwitch IPv6 gateway {g}",
                texts[0]
            ),
            None => format!("the IPv6 default route `{}` has no gateway", texts[0]),
        };
        return Some(
            Finding::fail(DEFAULT, summary)
                .cause("default_route_elsewhere")
                .evidence(evidence)
                .remedy([add, persist]),
        );
    }
    if best.linkdown {
        return Some(
            Finding::fail(
                DEFAULT,
                format!(
                    "the IPv6 default route `{}` is marked linkdown: {pname} has no carrier",
                    texts[0]
                ),
            )
            .cause("default_route_linkdown")
            .evidence(evidence),
        );
    }
    Some(Finding::ok(DEFAULT, format!("IPv6 default route `{}`", texts[0])).evidence(evidence))
}

/// Why IPv6 is judged on this instance, for a summary.
fn ipv6_reason(s: &Snapshot) -> String {
    let assigned = super::assigned_ipv6s(s);
    if let Some(a) = assigned.first() {
        format!("the cloud assigned {a}")
    } else {
        match s.client {
            Some(c @ IpAddr::V6(_)) => format!("the client {c} is IPv6"),
            _ => "an IPv6 default route is expected".to_string(),
        }
    }
}

pub fn reply(s: &Snapshot) -> Finding {
    let lookups = match s.reply_lookups.ok() {
        Ok(l) => l,
        Err(e) => {
            return Finding::unknown(
                REPLY,
                format!("cannot ask the kernel for reply routes: {e}"),
            )
        }
    };
    let (v4, v6): (Vec<&RouteLookup>, Vec<&RouteLookup>) =
        lookups.iter().partition(|l| l.source.is_ipv4());
    let f4 = if v4.is_empty() {
        Finding::unknown(REPLY, "no global IPv4 address to send replies from")
    } else {
        reply_family(s, &v4, target_label(s), reply_target(s))
    };
    let f6 = (super::ipv6_in_use(s) && !v6.is_empty()).then(|| {
        let target = v6[0].destination;
        let who = match s.client {
            Some(IpAddr::V6(c)) => format!("IPv6 client {c}"),
            _ => format!("an IPv6 Internet client (stand-in {target})"),
        };
        reply_family(s, &v6, who, target)
    });
    super::with_ipv6(f4, f6)
}

/// route.reply for one family's lookups.
fn reply_family(s: &Snapshot, lookups: &[&RouteLookup], who: String, target: IpAddr) -> Finding {
    let mut failing = Vec::new();
    let mut asymmetric = Vec::new();
    let mut paths = Vec::new();
    for l in lookups {
        let src_if = link_name(s, l.source_ifindex);
        match &l.outcome {
            LookupOutcome::Refused { errno, meaning } => {
                failing.push(format!(
                    "from {} ({src_if}): {meaning} (errno {errno})",
                    l.source
                ));
                paths.push(json!({"source": l.source, "interface": src_if, "refused": meaning}));
            }
            LookupOutcome::Route {
                kind,
                table,
                oif,
                gateway,
                ..
            } => {
                let out_if = oif.map(|o| link_name(s, o));
                paths.push(json!({"source": l.source, "interface": src_if, "kind": kind, "table": table, "via": gateway, "dev": out_if}));
                if DROPPING.contains(&kind.as_str()) {
                    failing.push(format!("from {} ({src_if}): a {kind} route", l.source));
                } else if kind == "local" {
                    // The target is this host itself: nothing to judge.
                } else if *oif != Some(l.source_ifindex) {
                    asymmetric.push(format!(
                        "from {} ({src_if}) leaves by {}",
                        l.source,
                        out_if.unwrap_or_else(|| "?".into())
                    ));
                }
            }
        }
    }
    let evidence = json!({"target": target, "lookups": paths});
    let ip = if target.is_ipv6() { "ip -6" } else { "ip" };
    let check = format!(
        "{ip} route get {target} from <local address>; {ip} rule; {ip} route show table all"
    );
    if !failing.is_empty() {
        return Finding::fail(REPLY, format!("replies to {who} cannot be sent: {}", failing.join("; "))).cause("reply_unroutable")
            .evidence(evidence)
            .remedy([check, "add or fix the default route (see route.default) and remove blackhole/unreachable/prohibit routes or rules that match".to_string()]);
    }
    if !asymmetric.is_empty() {
        return Finding::warn(REPLY, format!("replies to {who} leave by another interface than they arrive on: {}: the VPC drops packets whose source address belongs to another ENI", asymmetric.join("; "))).cause("asymmetric_reply_route")
            .evidence(evidence)
            .remedy([check, "add a policy route per ENI: ip rule add from <eni-ip> table 100; ip route add default via <gateway> dev <eni> table 100".to_string()]);
    }
    Finding::ok(
        REPLY,
        format!("replies to {who} from every local address leave by the interface that owns it"),
    )
    .evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::report::Status;
    use crate::snapshot::{Gathered, NextHop, RouteLookup};

    #[test]
    fn default_paths() {
        assert_eq!(judge(default_route, |_| {}).status, Status::Ok);
        let f = judge(default_route, |s| routes(s).retain(|r| !r.is_default()));
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("no IPv4 default route"));
        assert!(f.remedy[0].contains("ip route replace default via 10.77.0.1 dev eth0"));
        let f = judge(default_route, |s| {
            routes(s)[0].gateway = Some(ip("10.77.0.254"))
        });
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("via 10.77.0.254") && f.summary.contains("10.77.0.1"),
            "{}",
            f.summary
        );
        let f = judge(default_route, |s| {
            routes(s).push(route("192.0.2.0/24", None, 0, "blackhole"))
        });
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("blackhole 192.0.2.0/24"),
            "{}",
            f.summary
        );
        assert_eq!(f.remedy[0], "ip route del blackhole 192.0.2.0/24");
        // A blackhole elsewhere does not matter.
        assert_eq!(
            judge(default_route, |s| routes(s).push(route(
                "198.51.100.0/24",
                None,
                0,
                "blackhole"
            )))
            .status,
            Status::Ok
        );
        // The client decides what is captured.
        let f = judge(default_route, |s| {
            s.client = Some(ip("198.51.100.7"));
            routes(s).push(route("198.51.100.0/24", None, 0, "unreachable"));
        });
        assert_eq!(f.status, Status::Fail);
        // Multipath including the right hop.
        let f = judge(default_route, |s| {
            let r = &mut routes(s)[0];
            r.gateway = None;
            r.oif = None;
            r.nexthops = vec![NextHop {
                gateway: Some(ip("10.77.0.1")),
                oif: 2,
            }];
        });
        assert_eq!(f.status, Status::Ok);
        assert_eq!(
            judge(default_route, |s| routes(s)[0].linkdown = true).status,
            Status::Fail
        );
        assert_eq!(
            judge(default_route, |s| s.routes = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn default_without_metadata() {
        assert_eq!(judge(default_route, no_metadata).status, Status::Ok);
        // Metadata names the primary ENI but publishes no gateway, and the default route
        // leaves by another interface: a warning (the gateway itself cannot be judged).
        let f = judge(default_route, |s| {
            metadata(s).interfaces[0].gateway = None;
            links(s).push(crate::snapshot::Link {
                index: 3,
                name: "eth1".into(),
                ..Default::default()
            });
            routes(s)[0].oif = Some(3);
        });
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        assert!(f.summary.contains("not on eth0"), "{}", f.summary);
        assert_eq!(
            judge(default_route, metadata_failed).status,
            Status::Unknown
        );
        assert_eq!(
            judge(default_route, |s| {
                metadata_failed(s);
                routes(s).clear();
            })
            .status,
            Status::Fail
        );
        assert_eq!(
            judge(default_route, |s| {
                no_metadata(s);
                routes(s).clear();
            })
            .status,
            Status::Fail
        );
    }

    #[test]
    fn reply_paths() {
        assert_eq!(judge(reply, |_| {}).status, Status::Ok);
        let refused = |s: &mut crate::snapshot::Snapshot| {
            s.reply_lookups = Gathered::Ok(vec![RouteLookup {
                destination: ip("192.0.2.1"),
                source: ip("10.77.0.10"),
                source_ifindex: 2,
                outcome: LookupOutcome::Refused {
                    errno: 101,
                    meaning: "network unreachable: no route matches".into(),
                },
            }]);
        };
        let f = judge(reply, refused);
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("network unreachable"), "{}", f.summary);
        assert_eq!(
            judge(reply, |s| s.reply_lookups =
                Gathered::Ok(vec![lookup("10.77.0.10", 2, "blackhole")]))
            .status,
            Status::Fail
        );
        let f = judge(reply, |s| {
            s.reply_lookups = Gathered::Ok(vec![lookup("10.77.0.10", 3, "unicast")])
        });
        assert_eq!(f.status, Status::Warn);
        assert_eq!(
            judge(reply, |s| s.reply_lookups = Gathered::Ok(vec![])).status,
            Status::Unknown
        );
        assert_eq!(
            judge(reply, |s| s.reply_lookups = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    /// The finding as the catalogue judges it (both families merged), on a snapshot with IPv6.
    fn judged6(
        id: &str,
        edit: impl FnOnce(&mut crate::snapshot::Snapshot),
    ) -> crate::report::Finding {
        let mut s = healthy();
        with_ipv6(&mut s);
        edit(&mut s);
        crate::checks::evaluate(&s, &criteria())
            .into_iter()
            .find(|f| f.id == id)
            .unwrap()
    }

    #[test]
    fn ipv6_default_route_paths() {
        // No IPv6 anywhere: not judged, the IPv4 verdict alone.
        assert_eq!(default_route_v6(&healthy()), None);
        let f = judged6(DEFAULT, |_| {});
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert!(
            f.summary
                .contains("IPv6 default route `default via fd77::1 dev eth0`"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["ipv6"]["assigned_gateway"], "fd77::1");
        // Missing while the cloud assigned IPv6: fail, naming why IPv6 is judged.
        let f = judged6(DEFAULT, remove_ipv6_default);
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary.starts_with("no IPv6 default route"),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("the cloud assigned fd77::10"),
            "{}",
            f.summary
        );
        assert!(
            f.remedy[0].starts_with("ip -6 route replace default via fd77::1 dev eth0"),
            "{:?}",
            f.remedy
        );
        // Router advertisements: a link-local router is right whatever the metadata gateway.
        let f = judged6(DEFAULT, |s| {
            let r = ipv6_default(s);
            r.gateway = Some(ip("fe80::1"));
        });
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        // A global gateway other than the assigned one.
        let f = judged6(DEFAULT, |s| {
            let r = ipv6_default(s);
            r.gateway = Some(ip("fd77::99"));
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary
                .contains("does not go via the vSwitch IPv6 gateway fd77::1"),
            "{}",
            f.summary
        );
        // A blackhole default.
        let f = judged6(DEFAULT, |s| {
            let r = ipv6_default(s);
            r.kind = "blackhole".into();
            r.gateway = None;
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.remedy[0].starts_with("ip -6 route del blackhole default"),
            "{:?}",
            f.remedy
        );
        // IPv4 broken too: both said, IPv6 first (same status: IPv4 leads).
        let f = judged6(DEFAULT, |s| routes(s).retain(|r| !r.is_default()));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("no IPv4 default route")
                && f.summary.contains("no IPv6 default route"),
            "{}",
            f.summary
        );
        // No metadata, no IPv6 default route, IPv4 client: IPv6 is not in use, not judged.
        let f = judged6(DEFAULT, |s| {
            no_metadata(s);
            remove_ipv6_default(s);
        });
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert!(f.evidence.get("ipv6").is_none(), "{}", f.evidence);
        // Routes unreadable: the IPv4 half says unknown, IPv6 adds nothing.
        assert_eq!(
            judged6(DEFAULT, |s| s.routes = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn ipv6_reply_paths() {
        let f = judged6(REPLY, |_| {});
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert_eq!(f.evidence["ipv6"]["target"], "2001:db8::1");
        let f = judged6(REPLY, |s| {
            if let Gathered::Ok(l) = &mut s.reply_lookups {
                l[2].outcome = LookupOutcome::Refused {
                    errno: 101,
                    meaning: "network unreachable: no route matches".into(),
                };
            }
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary.contains("replies to an IPv6 Internet client (stand-in 2001:db8::1) cannot be sent: from fd77::10 (eth0): network unreachable"),
            "{}",
            f.summary
        );
        assert!(
            f.remedy[0].starts_with("ip -6 route get 2001:db8::1"),
            "{:?}",
            f.remedy
        );
        // Not in use (no metadata IPv6, no default route): the IPv6 lookup is not judged.
        let f = judged6(REPLY, |s| {
            no_metadata(s);
            remove_ipv6_default(s);
            if let Gathered::Ok(l) = &mut s.reply_lookups {
                l[2].outcome = LookupOutcome::Refused {
                    errno: 101,
                    meaning: "x".into(),
                };
            }
        });
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
    }
}
