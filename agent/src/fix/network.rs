//! Fixes that change the network path, so they can cut the session running them: the primary
//! link administratively down (`link.primary`) and a missing IPv4 default route
//! (`route.default`, via the vSwitch gateway the metadata assigns, on the primary interface).
//! Each touches only the interface the finding names, and is applied with a timed revert.

use std::net::IpAddr;

use super::{Change, Plan};
use crate::checks::{default_routes_v4, primary_interface};
use crate::snapshot::Snapshot;

fn ip(args: &[&str]) -> Vec<String> {
    std::iter::once("ip")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// `ip link set dev IF up` for the primary interface when it is administratively down.
pub fn link_up(s: &Snapshot) -> Result<Plan, String> {
    let p =
        primary_interface(s).map_err(|e| format!("the primary interface is unknown ({e:?})"))?;
    let name = &p.link.name;
    if p.link.admin_up {
        return Err(format!(
            "{name} is administratively up: the fault is below the guest (carrier, driver); no automatic fix"
        ));
    }
    Ok(Plan {
        check: crate::checks::link::PRIMARY,
        why: format!("bring the primary interface {name} up (it was set down)"),
        changes: vec![Change::Command {
            what: format!("{name} up"),
            argv: ip(&["link", "set", "dev", name, "up"]),
            undo: ip(&["link", "set", "dev", name, "down"]),
        }],
        cuts_connectivity: true,
    })
}

/// `ip route add default via GW dev IF` when there is no IPv4 default route at all (a wrong or
/// dropping one is for a person to judge), GW the metadata's gateway, IF the primary interface.
pub fn default_route(s: &Snapshot) -> Result<Plan, String> {
    if !default_routes_v4(s).is_empty() {
        return Err("a default route exists but is wrong: replacing it is for a person to decide (see the remedy)".to_string());
    }
    let gateway = s
        .metadata
        .ok()
        .and_then(|m| m.primary())
        .and_then(|e| e.gateway)
        .ok_or("the metadata names no gateway: no automatic fix")?;
    let p =
        primary_interface(s).map_err(|e| format!("the primary interface is unknown ({e:?})"))?;
    let name = &p.link.name;
    let on_link = s.addresses.ok().is_ok_and(|a| {
        a.iter().any(|a| {
            a.ifindex == p.link.index
                && match a.address {
                    IpAddr::V4(v4) => {
                        ipnet::Ipv4Net::new(v4, a.prefix_len).is_ok_and(|n| n.contains(&gateway))
                    }
                    IpAddr::V6(_) => false,
                }
        })
    });
    if !on_link && p.link.admin_up {
        return Err(format!(
            "gateway {gateway} is not on a subnet of {name}: fix its address first (addr.primary)"
        ));
    }
    let gw = gateway.to_string();
    Ok(Plan {
        check: crate::checks::route::DEFAULT,
        why: format!("add the default route via the vSwitch gateway {gw} on {name}"),
        changes: vec![Change::Command {
            what: format!("default via {gw} dev {name}"),
            argv: ip(&["route", "add", "default", "via", &gw, "dev", name]),
            undo: ip(&["route", "del", "default", "via", &gw, "dev", name]),
        }],
        cuts_connectivity: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::healthy;
    use crate::snapshot::{Gathered, MetadataState};

    fn command(p: &Plan) -> (String, String) {
        match &p.changes[0] {
            Change::Command { argv, undo, .. } => (argv.join(" "), undo.join(" ")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn link_up_only_for_an_administratively_down_primary() {
        let mut s = healthy();
        assert!(link_up(&s).unwrap_err().contains("administratively up"));
        if let Gathered::Ok(links) = &mut s.links {
            links
                .iter_mut()
                .find(|l| l.name == "eth0")
                .unwrap()
                .admin_up = false;
        }
        let p = link_up(&s).unwrap();
        assert!(p.cuts_connectivity);
        assert_eq!(
            command(&p),
            (
                "ip link set dev eth0 up".to_string(),
                "ip link set dev eth0 down".to_string()
            )
        );
    }

    #[test]
    fn default_route_via_the_assigned_gateway_only_when_none_exists() {
        let mut s = healthy();
        assert!(default_route(&s)
            .unwrap_err()
            .contains("for a person to decide"));
        if let Gathered::Ok(r) = &mut s.routes {
            r.retain(|r| !(r.destination.prefix_len() == 0 && r.destination.addr().is_ipv4()));
        }
        let p = default_route(&s).unwrap();
        assert_eq!(
            command(&p),
            (
                "ip route add default via 10.77.0.1 dev eth0".to_string(),
                "ip route del default via 10.77.0.1 dev eth0".to_string()
            )
        );
        s.metadata = MetadataState::NotProbed { reason: "x".into() };
        assert!(default_route(&s).unwrap_err().contains("no gateway"));
    }
}
