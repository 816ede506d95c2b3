//! `neigh.gateway`: can the instance reach its gateway at layer 2? Passive: reads the kernel's
//! neighbour (ARP) entry for the gateway the default route uses (and the assigned one); an entry
//! stuck FAILED or INCOMPLETE means every reply to the outside is dropped before it leaves.
//! A primary link that cannot hold an entry at all (down, no carrier, ARP off, enslaved) fails
//! it too, naming that attribute.

use std::net::IpAddr;

use serde_json::json;

use super::{default_routes_v4, default_routes_v6, link_name};
use crate::checks::{Cause, Check};
use crate::report::{Finding, Subject};
use crate::snapshot::{Neighbour, Snapshot};

pub const GATEWAY: &str = "neigh.gateway";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[Check {
    id: GATEWAY,
    decides:
        "the gateway's neighbour entry (ARP; NDP for the IPv6 gateway where the instance uses IPv6) is not FAILED or INCOMPLETE (passive: nothing is sent)",
    evidence: &[
        "the kernel's neighbour table",
        "the gateway of the IPv4 and IPv6 default routes and the metadata gateway and ipv6-gateway",
    ],
    causes: &[
        Cause {
            id: "gateway_unresolved", cause: "the gateway does not answer ARP or neighbour discovery (entry FAILED or INCOMPLETE)",
            remedy: "ip neigh show GATEWAY; ip -s link show dev IF; arping -c 3 -I IF GATEWAY",
        },
        Cause {
            id: "link_cannot_resolve", cause: "the link cannot hold an entry: down, no carrier, ARP off or enslaved (see link.primary)",
            remedy: "fix link.primary first",
        },
    ],
    // The entry exists only while packets go through the gateway on a working link from an
    // address in its subnet.
    judge: |s, _| {
        gateway(s)
            .relies_on(super::primary_link(s))
            .relies_on([Subject::DefaultRoute(4), Subject::DefaultRoute(6)])
            .relies_on(super::assigned_primary(s))
    },
}];

pub fn gateway(s: &Snapshot) -> Finding {
    let neighbours = match s.neighbours.ok() {
        Ok(n) => n,
        Err(e) => {
            return Finding::unknown(GATEWAY, format!("cannot read the neighbour table: {e}"))
        }
    };
    // The gateways replies actually use, then the assigned one.
    let mut gateways: Vec<(IpAddr, Option<u32>)> = default_routes_v4(s)
        .iter()
        .flat_map(|r| r.hops())
        .filter_map(|(gw, oif)| gw.map(|g| (g, oif)))
        .collect();
    let eni = s.metadata.ok().and_then(|m| m.primary());
    if let Some(g) = eni.and_then(|e| e.gateway) {
        if !gateways.iter().any(|(x, _)| *x == IpAddr::V4(g)) {
            gateways.push((IpAddr::V4(g), None));
        }
    }
    // IPv6 resolves its gateway by neighbour discovery, in the same table.
    if super::ipv6_in_use(s) {
        let v6 = default_routes_v6(s);
        for (g, oif) in v6.iter().flat_map(|r| r.hops()) {
            if let Some(g) = g.filter(|g| !gateways.iter().any(|(x, _)| x == g)) {
                gateways.push((g, oif));
            }
        }
        if let Some(g) = eni.and_then(|e| e.ipv6_gateway) {
            if !gateways.iter().any(|(x, _)| *x == IpAddr::V6(g)) {
                gateways.push((IpAddr::V6(g), None));
            }
        }
    }
    // A link that cannot hold a usable entry decides it, whatever the table still shows.
    if let Ok(p) = super::primary_interface(s) {
        if let Some(why) = super::link::neighbour_blocker(s, p.link) {
            let gw = gateways.first().map_or_else(
                || "the gateway".to_string(),
                |(g, _)| format!("the gateway {g}"),
            );
            return Finding::fail(
                GATEWAY,
                format!(
                    "no usable neighbour entry for {gw} can exist on {}: {why}",
                    p.link.name
                ),
            )
            .cause("link_cannot_resolve")
            .evidence(json!({
                "interface": p.link.name,
                "gateways": gateways.iter().map(|(g, _)| g).collect::<Vec<_>>(),
                "blocked_by": why,
            }))
            .remedy(["fix link.primary first; the entry appears with the next packet sent"]);
        }
    }
    if gateways.is_empty() {
        return Finding::unknown(
            GATEWAY,
            "no gateway to look for: no default route via a gateway and no metadata",
        );
    }
    let entry = |g: IpAddr, oif: Option<u32>| -> Option<&Neighbour> {
        neighbours
            .iter()
            .find(|n| n.address == g && oif.is_none_or(|o| o == n.ifindex))
    };
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    let mut missing = Vec::new();
    for (g, oif) in &gateways {
        match entry(*g, *oif) {
            Some(n) => {
                let dev = link_name(s, n.ifindex);
                seen.push(json!({"gateway": g, "dev": dev, "state": n.state, "mac": n.mac}));
                if n.state.is_unresolved() {
                    bad.push((*g, dev, n.state));
                }
            }
            None => missing.push(*g),
        }
    }
    let evidence = json!({"entries": seen, "no_entry": missing});
    if let Some((g, dev, state)) = bad.first() {
        let state = serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_uppercase))
            .unwrap_or_default();
        let (protocol, probe) = if g.is_ipv6() {
            (
                "neighbour discovery (NDP)",
                format!(
                    "ping -6 -c 3 -I {dev} {g}   (active probe: sends neighbour solicitations)"
                ),
            )
        } else {
            (
                "ARP",
                format!("arping -c 3 -I {dev} {g}   (active probe: sends ARP requests)"),
            )
        };
        let family = if g.is_ipv6() { " over IPv6" } else { "" };
        return Finding::fail(GATEWAY, format!("the gateway {g} does not answer {protocol} on {dev} (neighbour entry {state}): nothing can leave the subnet{family}")).cause("gateway_unresolved")
            .evidence(evidence)
            .remedy([
                probe,
                format!("ip neigh show {g}; ip -s link show dev {dev}"),
                "check the address and prefix match the assigned ones (addr.primary) and the gateway is the vSwitch gateway (route.default); if both are right, the ENI or vSwitch is at fault: restart the instance or open a ticket".to_string(),
            ]);
    }
    if seen.is_empty() {
        let list = missing
            .iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Finding::unknown(GATEWAY, format!("no neighbour entry for the gateway ({list}): nothing was sent through it recently (passive check)"))
            .evidence(evidence)
            .remedy([format!("send one packet through the gateway and look again: ip neigh show {}", missing[0])]);
    }
    let resolved: Vec<String> = seen
        .iter()
        .map(|e| {
            format!(
                "{} ({})",
                e["gateway"].as_str().unwrap_or_default(),
                e["state"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let noun = if resolved.len() == 1 {
        "the gateway"
    } else {
        "the gateways"
    };
    Finding::ok(GATEWAY, format!("{noun} resolved: {}", resolved.join(", "))).evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::report::Status;
    use crate::snapshot::{Gathered, NeighbourState};

    fn state(st: NeighbourState) -> impl FnOnce(&mut Snapshot) {
        move |s| {
            if let Gathered::Ok(n) = &mut s.neighbours {
                n[0].state = st;
            }
        }
    }

    #[test]
    fn paths() {
        assert_eq!(judge(gateway, |_| {}).status, Status::Ok);
        assert_eq!(
            judge(gateway, state(NeighbourState::Stale)).status,
            Status::Ok
        );
        let f = judge(gateway, state(NeighbourState::Failed));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("10.77.0.1") && f.summary.contains("FAILED"),
            "{}",
            f.summary
        );
        assert_eq!(
            judge(gateway, state(NeighbourState::Incomplete)).status,
            Status::Fail
        );
        assert_eq!(
            judge(gateway, |s| s.neighbours = Gathered::Ok(vec![])).status,
            Status::Unknown
        );
        assert_eq!(
            judge(gateway, |s| s.neighbours = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
        // The wrong gateway the default route uses is the one that fails.
        let f = judge(gateway, |s| {
            routes(s)[0].gateway = Some(ip("10.77.0.254"));
            if let Gathered::Ok(n) = &mut s.neighbours {
                n.push(Neighbour {
                    ifindex: 2,
                    address: ip("10.77.0.254"),
                    mac: None,
                    state: NeighbourState::Failed,
                });
            }
        });
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("10.77.0.254"));
    }

    #[test]
    fn ipv6_gateway_paths() {
        let v6 = |st: NeighbourState| {
            move |s: &mut Snapshot| {
                with_ipv6(s);
                if let Gathered::Ok(n) = &mut s.neighbours {
                    n[1].state = st;
                }
            }
        };
        let f = judge(gateway, v6(NeighbourState::Reachable));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert_eq!(
            f.evidence["entries"][1]["gateway"], "fd77::1",
            "{}",
            f.evidence
        );
        let f = judge(gateway, v6(NeighbourState::Failed));
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary
                .contains("fd77::1 does not answer neighbour discovery (NDP) on eth0")
                && f.summary.contains("over IPv6"),
            "{}",
            f.summary
        );
        assert!(
            f.remedy[0].starts_with("ping -6 -c 3 -I eth0 fd77::1"),
            "{:?}",
            f.remedy
        );
        // A router from advertisements (link-local) is the one looked up.
        let f = judge(gateway, |s| {
            with_ipv6(s);
            let r = ipv6_default(s);
            r.gateway = Some(ip("fe80::1"));
            if let Gathered::Ok(n) = &mut s.neighbours {
                n.push(Neighbour {
                    ifindex: 2,
                    address: ip("fe80::1"),
                    mac: None,
                    state: NeighbourState::Incomplete,
                });
            }
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(f.summary.contains("fe80::1"), "{}", f.summary);
        // IPv6 not in use: its entries are not looked at.
        let f = judge(gateway, |s| {
            if let Gathered::Ok(n) = &mut s.neighbours {
                n.push(Neighbour {
                    ifindex: 2,
                    address: ip("fd77::1"),
                    mac: None,
                    state: NeighbourState::Failed,
                });
            }
        });
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
    }
}
