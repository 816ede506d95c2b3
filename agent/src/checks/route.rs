//! `route.default`, `route.reply`: does a reply to an outside client leave by the vSwitch
//! gateway on the right interface? `route.default` judges the routing table (a default route
//! via the assigned gateway on the primary interface; no blackhole/unreachable/prohibit route
//! capturing the client). `route.reply` judges the kernel's own answer to "which way would the
//! reply from each local address go" (RTM_GETROUTE, policy rules included).

use std::net::IpAddr;

use serde_json::json;

use super::{
    assigned_values, default_routes_v4, link_name, no_primary, primary_interface,
    reply_target as target, target_label,
};
use crate::checks::{Cause, Check};
use crate::report::{Finding, Subject};
use crate::snapshot::{LookupOutcome, Route, Snapshot};

pub const DEFAULT: &str = "route.default";
pub const REPLY: &str = "route.reply";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: DEFAULT,
        decides: "an IPv4 default route goes via the assigned gateway on the primary interface, and no blackhole, unreachable or prohibit route captures replies",
        evidence: &["netlink routes of every table", "the metadata gateway", "the primary interface"],
        causes: &[
            Cause { cause: "no default route", remedy: "ip route replace default via GATEWAY dev IF; make it persistent" },
            Cause { cause: "the default route uses another gateway or interface", remedy: "ip route replace default via GATEWAY dev IF" },
            Cause { cause: "a blackhole, unreachable or prohibit route covers the client", remedy: "ip route del TYPE PREFIX, and remove it from the persisted configuration" },
        ],
        judge: |s, _| {
            let f = default_route(s).judges([Subject::DefaultRoute(4)]);
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
        evidence: &["RTM_GETROUTE lookups from each local IPv4 address to the client", "policy rules (ip rule)"],
        causes: &[
            Cause { cause: "the lookup is refused (no route, unreachable, prohibit)", remedy: "ip route get CLIENT from LOCAL; ip rule; ip route show table all" },
            Cause { cause: "replies from a secondary ENI's address leave by another interface", remedy: "ip rule add from ENI_IP table 100; ip route add default via GATEWAY dev ENI table 100" },
        ],
        judge: |s, _| {
            reply(s)
                .judges([Subject::ReplyRoute(4)])
                .relies_on([Subject::DefaultRoute(4)])
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
    let dest = target(s);
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
        return Finding::fail(DEFAULT, format!("route `{text}` drops replies to {}", target_label(s)))
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
                .evidence(evidence)
                .remedy([add, persist])
        }
        None => {
            if !on_primary {
                return Finding::warn(
                    DEFAULT,
                    format!("the default route `{}` is not on {pname}", default_texts[0]),
                )
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
    if lookups.is_empty() {
        return Finding::unknown(REPLY, "no global IPv4 address to send replies from");
    }
    let who = target_label(s);
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
    let evidence = json!({"target": target(s), "lookups": paths});
    let check = format!(
        "ip route get {} from <local address>; ip rule; ip route show table all",
        target(s)
    );
    if !failing.is_empty() {
        return Finding::fail(REPLY, format!("replies to {who} cannot be sent: {}", failing.join("; ")))
            .evidence(evidence)
            .remedy([check, "add or fix the default route (see route.default) and remove blackhole/unreachable/prohibit routes or rules that match".to_string()]);
    }
    if !asymmetric.is_empty() {
        return Finding::warn(REPLY, format!("replies to {who} leave by another interface than they arrive on: {}: the VPC drops packets whose source address belongs to another ENI", asymmetric.join("; ")))
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
}
