//! `addr.primary`, `addr.secondary`, `addr.config`: do the interface's IPv4 addresses — now and
//! as persisted for the next boot — equal what the cloud assigned? The VPC only delivers
//! traffic for assigned addresses, so a static IP that differs is unreachable. Evidence:
//! netlink addresses, metadata ENI values, persisted network configuration files.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use serde_json::json;

use super::{assigned_values, ipv4_on, link_with_mac, no_primary, primary_interface};
use crate::checks::{Cause, Check};
use crate::report::{Finding, Subject};
use crate::snapshot::{AddressingMethod, InterfaceConfig, MetadataInterface, Snapshot};

pub const PRIMARY: &str = "addr.primary";
pub const SECONDARY: &str = "addr.secondary";
pub const CONFIG: &str = "addr.config";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: PRIMARY,
        decides: "the primary private IPv4 address and prefix equal the values the cloud assigned, on the primary interface; so are the IPv6 addresses it assigned",
        evidence: &["netlink addresses", "the metadata's primary IP, netmask (or vSwitch CIDR) and ipv6s of the primary ENI"],
        causes: &[
            Cause { id: "address_missing", cause: "the assigned address is missing, or a different static address is configured", remedy: "ip addr replace ASSIGNED/PREFIX dev IF; prefer DHCP" },
            Cause { id: "prefix_mismatch", cause: "the prefix differs from the assigned one", remedy: "ip addr replace ASSIGNED/PREFIX dev IF" },
            Cause { id: "address_on_other_interface", cause: "the assigned address sits on another interface", remedy: "ip addr del IP/PREFIX dev OTHER && ip addr add IP/PREFIX dev IF" },
            Cause { id: "ipv6_address_missing", cause: "an assigned IPv6 address is missing (DHCPv6 not enabled)", remedy: "ip -6 addr add IPV6/64 dev IF; enable DHCPv6 (IPV6INIT=yes DHCPV6C=yes, dhcp6: true)" },
        ],
        judge: |s, _| {
            let v6: Vec<Subject> = super::assigned_ipv6s(s)
                .into_iter()
                .map(|a| Subject::Address(IpAddr::V6(a)))
                .collect();
            super::with_ipv6(primary(s), primary_v6(s))
                .judges(super::assigned_primary(s))
                .judges(v6)
                .relies_on(super::primary_link(s))
        },
    },
    Check {
        id: SECONDARY,
        decides: "every secondary private IPv4 the cloud assigned is configured",
        evidence: &["netlink addresses", "the metadata's private-ipv4s of each ENI"],
        causes: &[
            Cause { id: "secondary_ip_missing", cause: "an assigned secondary private IP is not configured", remedy: "ip addr add IP/PREFIX dev IF; persist it (IPADDR1= in ifcfg, addresses: in netplan)" },
        ],
        judge: |s, _| secondary(s),
    },
    Check {
        id: CONFIG,
        decides: "the persisted network configuration (ifcfg, netplan, ifupdown, NetworkManager, networkd) is DHCP or matches the assigned values, so the next boot is right",
        evidence: &["network configuration files under [paths] etc", "the metadata's assigned address, prefix and gateway"],
        causes: &[
            Cause { id: "static_config_mismatch", cause: "a static address, prefix or gateway in a configuration file differs from the assigned one", remedy: "set BOOTPROTO=dhcp (ifcfg), dhcp4: true (netplan) or iface IF inet dhcp (ifupdown), or correct the values" },
        ],
        judge: |s, _| config(s),
    },
];

/// The assigned primary IPv4/prefix of the primary ENI, from metadata.
fn assigned(s: &Snapshot) -> Option<(Ipv4Addr, Option<u8>, Option<&MetadataInterface>)> {
    let md = s.metadata.ok()?;
    let eni = md.primary();
    let ip = eni.and_then(|e| e.primary_ip).or(md.private_ipv4)?;
    Some((ip, eni.and_then(|e| e.prefix_len), eni))
}

fn v4(a: &crate::snapshot::Address) -> Option<Ipv4Net> {
    match a.address {
        IpAddr::V4(ip) => Ipv4Net::new(ip, a.prefix_len).ok(),
        IpAddr::V6(_) => None,
    }
}

pub fn primary(s: &Snapshot) -> Finding {
    let p = match primary_interface(s) {
        Ok(p) => p,
        Err(e) => return no_primary(PRIMARY, e),
    };
    if let Err(e) = s.addresses.ok() {
        return Finding::unknown(PRIMARY, format!("cannot read addresses: {e}"));
    }
    let name = &p.link.name;
    let have: Vec<Ipv4Net> = ipv4_on(s, p.link.index)
        .into_iter()
        .filter_map(v4)
        .collect();
    let have_s: Vec<String> = have.iter().map(|n| n.to_string()).collect();
    let Some((ip, prefix, eni)) = assigned(s) else {
        if have.is_empty() {
            return Finding::fail(PRIMARY, format!("{name} has no IPv4 address"))
                .cause("address_missing")
                .evidence(json!({"interface": name, "ipv4": have_s, "metadata": "not available"}))
                .remedy([format!(
                    "dhclient {name}   (or: ip addr add <ip>/<prefix> dev {name})"
                )]);
        }
        let what = format!(
            "{name} has {}; cannot compare it with the assigned address",
            have_s.join(", ")
        );
        return match assigned_values(s, PRIMARY, &what) {
            Err(f) => f.evidence(json!({"interface": name, "ipv4": have_s})),
            Ok(_) => Finding::unknown(
                PRIMARY,
                format!("{what}: metadata names no private IPv4 for the primary ENI"),
            ),
        };
    };
    let prefix_s = prefix.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    let want = format!("{ip}/{prefix_s}");
    let gateway = eni.and_then(|e| e.gateway);
    let evidence = json!({
        "interface": name, "ipv4": have_s, "assigned": want, "gateway": gateway,
        "prefix_from": eni.and_then(|e| e.prefix_from.clone()),
    });
    let dhcp = format!("prefer DHCP, which always gets the assigned values: set BOOTPROTO=dhcp (ifcfg), dhcp4: true (netplan) or `iface {name} inet dhcp` (ifupdown), then restart networking");
    if let Some(found) = have.iter().find(|n| n.addr() == ip) {
        return match prefix {
            Some(p) if found.prefix_len() != p => {
                let gateway_on_link = gateway.is_none_or(|g| found.contains(&g));
                let summary = if found.prefix_len() < p {
                    format!(
                        "{name} has {found}: prefix /{} is wider than the assigned /{p}",
                        found.prefix_len()
                    )
                } else {
                    format!(
                        "{name} has {found}: prefix /{} is narrower than the assigned /{p}",
                        found.prefix_len()
                    )
                };
                let remedy = vec![
                    format!("ip addr replace {want} dev {name} && ip addr del {found} dev {name}"),
                    dhcp,
                ];
                if gateway_on_link {
                    Finding::warn(PRIMARY, format!("{summary}: hosts in the VPC outside the configured subnet are unreachable"))
                        .cause("prefix_mismatch")
                        .evidence(evidence)
                        .remedy(remedy)
                } else {
                    Finding::fail(PRIMARY, format!("{summary}: the gateway is not on-link"))
                        .cause("prefix_mismatch")
                        .evidence(evidence)
                        .remedy(remedy)
                }
            }
            _ => Finding::ok(PRIMARY, format!("{name} has the assigned address {want}"))
                .evidence(evidence),
        };
    }
    // On another interface?
    if let Some(other) = s
        .addresses
        .ok()
        .ok()
        .and_then(|v| v.iter().find(|a| a.address == IpAddr::V4(ip)))
    {
        let other_name = super::link_name(s, other.ifindex);
        return Finding::fail(
            PRIMARY,
            format!(
                "the assigned address {ip} is on {other_name}, not on the primary interface {name}"
            ),
        )
        .cause("address_on_other_interface")
        .evidence(evidence)
        .remedy([format!(
            "ip addr del {ip}/{} dev {other_name} && ip addr add {want} dev {name}",
            other.prefix_len
        )]);
    }
    let summary = if have.is_empty() {
        format!("{name} has no IPv4 address; the cloud assigned {want}")
    } else {
        format!("{name} has {} but the cloud assigned {want}: the VPC drops traffic for unassigned addresses", have_s.join(", "))
    };
    Finding::fail(PRIMARY, summary)
        .cause("address_missing")
        .evidence(evidence)
        .remedy([format!("ip addr add {want} dev {name}"), dhcp])
}

/// The IPv6 half of addr.primary: every address in the primary ENI's `ipv6s` is on the
/// primary interface (None: the cloud assigned no IPv6, or the interface cannot be told).
pub fn primary_v6(s: &Snapshot) -> Option<Finding> {
    let assigned = super::assigned_ipv6s(s);
    if assigned.is_empty() {
        return None;
    }
    let p = primary_interface(s).ok()?;
    let addrs = s.addresses.ok().ok()?;
    let name = &p.link.name;
    let have: Vec<String> = addrs
        .iter()
        .filter(|a| a.ifindex == p.link.index && a.address.is_ipv6() && a.scope == "global")
        .map(|a| format!("{}/{}", a.address, a.prefix_len))
        .collect();
    let prefix = s
        .metadata
        .ok()
        .and_then(|m| m.primary())
        .and_then(|e| e.vswitch_ipv6_cidr)
        .map_or(64, |c| c.prefix_len());
    let evidence = json!({"interface": name, "ipv6": have, "assigned": assigned, "prefix": prefix});
    let mut missing = Vec::new();
    let mut elsewhere = Vec::new();
    for a in &assigned {
        match addrs.iter().find(|x| x.address == IpAddr::V6(*a)) {
            Some(x) if x.ifindex == p.link.index => {}
            Some(x) => elsewhere.push((*a, super::link_name(s, x.ifindex), x.prefix_len)),
            None => missing.push(*a),
        }
    }
    if let Some((a, other, len)) = elsewhere.first() {
        return Some(
            Finding::fail(
                PRIMARY,
                format!("the assigned IPv6 address {a} is on {other}, not on the primary interface {name}"),
            )
            .cause("address_on_other_interface")
            .evidence(evidence)
            .remedy([format!("ip -6 addr del {a}/{len} dev {other} && ip -6 addr add {a}/{prefix} dev {name}")]),
        );
    }
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let has = if have.is_empty() {
            "no global IPv6 address".to_string()
        } else {
            have.join(", ")
        };
        let mut remedy: Vec<String> = missing
            .iter()
            .map(|a| format!("ip -6 addr add {a}/{prefix} dev {name}"))
            .collect();
        remedy.push(format!("prefer DHCPv6, which always gets the assigned addresses: IPV6INIT=yes and DHCPV6C=yes (ifcfg), dhcp6: true (netplan), `iface {name} inet6 dhcp` (ifupdown); then dhclient -6 {name}"));
        return Some(
            Finding::fail(
                PRIMARY,
                format!("{name} lacks the assigned IPv6 address {list} (it has {has}): the VPC delivers IPv6 traffic only to assigned addresses"),
            )
            .cause("ipv6_address_missing")
            .evidence(evidence)
            .remedy(remedy),
        );
    }
    let list = assigned
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Some(Finding::ok(PRIMARY, format!("and the assigned IPv6 {list}")).evidence(evidence))
}

pub fn secondary(s: &Snapshot) -> Finding {
    let md = match assigned_values(
        s,
        SECONDARY,
        "cannot tell which secondary private IPs are assigned",
    ) {
        Ok(m) => m,
        Err(f) => return f,
    };
    let (Ok(links), Ok(addrs)) = (s.links.ok(), s.addresses.ok()) else {
        return Finding::unknown(SECONDARY, "cannot read interfaces or addresses");
    };
    let mut missing = Vec::new();
    let mut present = Vec::new();
    let mut remedy = Vec::new();
    for eni in &md.interfaces {
        let link = link_with_mac(links, &eni.mac);
        let primary_ip = eni.primary_ip;
        for ip in eni
            .private_ipv4s
            .iter()
            .filter(|ip| Some(**ip) != primary_ip)
        {
            let on_right_link = addrs.iter().any(|a| {
                a.address == IpAddr::V4(*ip) && link.is_some_and(|l| l.index == a.ifindex)
            });
            if on_right_link {
                present.push(ip.to_string());
                continue;
            }
            let dev = link
                .map(|l| l.name.clone())
                .unwrap_or_else(|| format!("<interface with MAC {}>", eni.mac));
            missing.push(
                json!({"ip": ip, "eni": eni.eni_id, "mac": eni.mac, "interface": dev,
                                "prefix": eni.prefix_len.unwrap_or(24), "found": link.is_some()}),
            );
            remedy.push(format!(
                "ip addr add {ip}/{} dev {dev}",
                eni.prefix_len.unwrap_or(24)
            ));
        }
    }
    let evidence = json!({"present": present, "missing": missing});
    if !missing.is_empty() {
        remedy.push("persist it: IPADDR1=/PREFIX1= in ifcfg, an extra `addresses:` entry in netplan, or `up ip addr add ...` in ifupdown".into());
        let ips: Vec<String> = missing
            .iter()
            .filter_map(|m| m["ip"].as_str().map(str::to_string))
            .collect();
        return Finding::fail(
            SECONDARY,
            format!(
                "assigned secondary private IP(s) not configured in the OS: {}",
                ips.join(", ")
            ),
        )
        .evidence(evidence)
        .remedy(remedy);
    }
    if present.is_empty() {
        return Finding::ok(SECONDARY, "no secondary private IPs are assigned").evidence(evidence);
    }
    Finding::ok(
        SECONDARY,
        format!(
            "all {} assigned secondary private IP(s) are configured",
            present.len()
        ),
    )
    .evidence(evidence)
}

/// Does a persisted config apply to this interface (by name, name pattern or MAC)?
pub(crate) fn applies_to(c: &InterfaceConfig, name: &str, mac: Option<&str>) -> bool {
    let by_name = c
        .interface
        .as_deref()
        .is_some_and(|pat| crate::glob::fnmatch(pat, name));
    let by_mac = matches!((c.mac.as_deref(), mac), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b));
    by_name || by_mac
}

pub fn config(s: &Snapshot) -> Finding {
    let p = match primary_interface(s) {
        Ok(p) => p,
        Err(e) => return no_primary(CONFIG, e),
    };
    let configs = match s.network_config.ok() {
        Ok(c) => c,
        Err(e) => {
            return Finding::unknown(
                CONFIG,
                format!("cannot read persisted network configuration: {e}"),
            )
        }
    };
    let name = &p.link.name;
    let mine: Vec<&InterfaceConfig> = configs
        .iter()
        .filter(|c| applies_to(c, name, p.link.mac.as_deref()))
        .collect();
    let evidence = json!({"interface": name, "files": mine});
    if mine.is_empty() {
        return Finding::skipped(CONFIG, format!("no persisted configuration names {name}; it is configured at boot by cloud-init or NetworkManager's default DHCP"))
            .evidence(evidence);
    }
    let statics: Vec<&&InterfaceConfig> = mine
        .iter()
        .filter(|c| c.method == AddressingMethod::Static)
        .collect();
    if statics.is_empty() {
        if mine.iter().any(|c| c.method == AddressingMethod::Dhcp) {
            return Finding::ok(
                CONFIG,
                format!("{name} is configured for DHCP ({})", mine[0].file),
            )
            .evidence(evidence);
        }
        return Finding::warn(
            CONFIG,
            format!(
                "{name}'s persisted configuration ({}) sets neither DHCP nor a static IPv4 address",
                mine[0].file
            ),
        )
        .evidence(evidence)
        .remedy([format!("configure {name} for DHCP in {}", mine[0].file)]);
    }
    let to_dhcp = |c: &InterfaceConfig| {
        format!("switch {} to DHCP (BOOTPROTO=dhcp / dhcp4: true / inet dhcp / method=auto / DHCP=yes), or correct the static values", c.file)
    };
    let Some((ip, prefix, eni)) = assigned(s) else {
        if let Err(f) = assigned_values(
            s,
            CONFIG,
            "cannot compare the persisted configuration with the assigned values",
        ) {
            if f.status == crate::report::Status::Unknown {
                return f.evidence(evidence);
            }
        }
        // Deliberately no metadata: compare with what runs now.
        let now: Vec<Ipv4Net> = ipv4_on(s, p.link.index)
            .into_iter()
            .filter_map(v4)
            .collect();
        let c = statics[0];
        if c.addresses.iter().all(|a| now.contains(a)) {
            return Finding::skipped(
                CONFIG,
                format!(
                    "no instance metadata to compare with; {} sets static {} as running now",
                    c.file,
                    fmt_nets(&c.addresses)
                ),
            )
            .evidence(evidence);
        }
        return Finding::warn(
            CONFIG,
            format!(
                "{} sets static {} but {name} runs with {}: after a reboot the address changes",
                c.file,
                fmt_nets(&c.addresses),
                fmt_nets(&now)
            ),
        )
        .evidence(evidence)
        .remedy([to_dhcp(c)]);
    };
    let gateway = eni.and_then(|e| e.gateway);
    for c in &statics {
        let has_ip = c
            .addresses
            .iter()
            .any(|a| a.addr() == ip && prefix.is_none_or(|p| a.prefix_len() == p));
        let gw_ok = match (c.gateway, gateway) {
            (Some(cg), Some(g)) => cg == g,
            _ => true,
        };
        if !has_ip || !gw_ok {
            let want = format!(
                "{ip}/{}",
                prefix.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            );
            let mut what = Vec::new();
            if !has_ip {
                what.push(format!(
                    "address {} instead of the assigned {want}",
                    fmt_nets(&c.addresses)
                ));
            }
            if !gw_ok {
                what.push(format!(
                    "gateway {} instead of {}",
                    c.gateway.map(|g| g.to_string()).unwrap_or_default(),
                    gateway.map(|g| g.to_string()).unwrap_or_default()
                ));
            }
            return Finding::fail(
                CONFIG,
                format!(
                    "{} persists a static {} for {name}: after a reboot it is unreachable",
                    c.file,
                    what.join(" and ")
                ),
            )
            .evidence(evidence)
            .remedy([to_dhcp(c)]);
        }
    }
    Finding::ok(
        CONFIG,
        format!(
            "{}'s static configuration matches the assigned values",
            statics[0].file
        ),
    )
    .evidence(evidence)
}

fn fmt_nets(v: &[Ipv4Net]) -> String {
    if v.is_empty() {
        return "no address".into();
    }
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::report::Status;
    use crate::snapshot::{ConfigFormat, Gathered};

    #[test]
    fn primary_paths() {
        assert_eq!(judge(primary, |_| {}).status, Status::Ok);
        // Removed.
        let f = judge(primary, |s| addresses(s).retain(|a| a.ifindex != 2));
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("no IPv4 address"), "{}", f.summary);
        assert!(f.remedy[0].contains("ip addr add 10.77.0.10/24 dev eth0"));
        // Different static IP.
        let f = judge(primary, |s| addresses(s)[1].address = ip("10.77.0.99"));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("10.77.0.99/24") && f.summary.contains("assigned 10.77.0.10/24"),
            "{}",
            f.summary
        );
        // Wider prefix: gateway still on-link, warn.
        let f = judge(primary, |s| addresses(s)[1].prefix_len = 16);
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary
                .contains("prefix /16 is wider than the assigned /24"),
            "{}",
            f.summary
        );
        // /32: gateway off-link, fail.
        let f = judge(primary, |s| addresses(s)[1].prefix_len = 32);
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary
                .contains("prefix /32 is narrower than the assigned /24"),
            "{}",
            f.summary
        );
        // On another interface.
        let f = judge(primary, |s| {
            links(s).push(crate::snapshot::Link {
                index: 3,
                name: "eth1".into(),
                ..Default::default()
            });
            addresses(s)[1].ifindex = 3;
        });
        assert!(f.summary.contains("is on eth1"), "{}", f.summary);
        assert_eq!(
            judge(primary, |s| s.addresses = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn failed_metadata_is_unknown_not_skipped() {
        for check in [primary, secondary] {
            let f = judge(check, metadata_failed);
            assert_eq!(f.status, Status::Unknown, "{}", f.summary);
            assert!(f.summary.contains("timed out"), "{}", f.summary);
        }
        // DHCP needs no assigned values to be right; a static address does.
        assert_eq!(judge(config, metadata_failed).status, Status::Ok);
        let f = judge(config, |s| {
            metadata_failed(s);
            s.network_config = Gathered::Ok(vec![static_config("10.77.0.10/24", "10.77.0.1")]);
        });
        assert_eq!(f.status, Status::Unknown, "{}", f.summary);
    }

    #[test]
    fn primary_without_metadata() {
        assert_eq!(judge(primary, no_metadata).status, Status::Skipped);
        let f = judge(primary, |s| {
            no_metadata(s);
            addresses(s).retain(|a| a.ifindex != 2);
            // Keep the default route so eth0 is still known as primary.
        });
        assert_eq!(f.status, Status::Fail);
    }

    #[test]
    fn secondary_paths() {
        assert_eq!(judge(secondary, |_| {}).status, Status::Ok);
        let f = judge(secondary, |s| {
            addresses(s).retain(|a| a.address != ip("10.77.0.11"))
        });
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("10.77.0.11"));
        assert!(f.remedy[0].contains("ip addr add 10.77.0.11/24 dev eth0"));
        assert_eq!(
            judge(secondary, |s| metadata(s).interfaces[0]
                .private_ipv4s
                .truncate(1))
            .summary,
            "no secondary private IPs are assigned"
        );
        assert_eq!(judge(secondary, no_metadata).status, Status::Skipped);
        assert_eq!(
            judge(secondary, |s| s.addresses = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    fn static_config(addr: &str, gw: &str) -> InterfaceConfig {
        InterfaceConfig {
            file: "/etc/netplan/01.yaml".into(),
            format: ConfigFormat::Netplan,
            interface: Some("eth*".into()),
            mac: None,
            method: AddressingMethod::Static,
            addresses: vec![addr.parse().unwrap()],
            gateway: Some(gw.parse().unwrap()),
            netplan_id: None,
        }
    }

    #[test]
    fn config_paths() {
        assert_eq!(judge(config, |_| {}).status, Status::Ok);
        let set = |c: Vec<InterfaceConfig>| {
            move |s: &mut crate::snapshot::Snapshot| s.network_config = Gathered::Ok(c)
        };
        assert_eq!(
            judge(
                config,
                set(vec![static_config("10.77.0.10/24", "10.77.0.1")])
            )
            .status,
            Status::Ok
        );
        let f = judge(
            config,
            set(vec![static_config("10.77.0.99/24", "10.77.0.1")]),
        );
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("10.77.0.99/24") && f.summary.contains("after a reboot"),
            "{}",
            f.summary
        );
        let f = judge(
            config,
            set(vec![static_config("10.77.0.10/24", "10.77.0.254")]),
        );
        assert!(f.summary.contains("gateway 10.77.0.254"), "{}", f.summary);
        assert_eq!(judge(config, set(vec![])).status, Status::Skipped);
        let mut other = static_config("10.77.0.99/24", "10.77.0.1");
        other.interface = Some("eth9".into());
        assert_eq!(judge(config, set(vec![other])).status, Status::Skipped);
        assert_eq!(
            judge(config, |s| s.network_config =
                Gathered::Failed("bad yaml".into()))
            .status,
            Status::Unknown
        );
        // Without metadata: compared with the running address.
        let f = judge(config, |s| {
            no_metadata(s);
            s.network_config = Gathered::Ok(vec![static_config("10.77.0.99/24", "10.77.0.1")]);
        });
        assert_eq!(f.status, Status::Warn);
    }

    #[test]
    fn ipv6_assigned_addresses() {
        assert_eq!(primary_v6(&healthy()), None, "no IPv6 assigned: not judged");
        let mut s = healthy();
        with_ipv6(&mut s);
        let f = primary_v6(&s).unwrap();
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        // Missing: fail, with the prefix of the vSwitch's IPv6 block and DHCPv6 as the remedy.
        addresses(&mut s).retain(|a| a.address != ip("fd77::10"));
        let f = primary_v6(&s).unwrap();
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains(
                "eth0 lacks the assigned IPv6 address fd77::10 (it has no global IPv6 address)"
            ),
            "{}",
            f.summary
        );
        assert_eq!(f.remedy[0], "ip -6 addr add fd77::10/64 dev eth0");
        assert!(f.remedy[1].contains("DHCPV6C=yes"));
        // On another interface.
        addresses(&mut s).push(crate::snapshot::Address {
            ifindex: 3,
            address: ip("fd77::10"),
            prefix_len: 64,
            scope: "global".into(),
        });
        let f = primary_v6(&s).unwrap();
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary
                .contains("is on if3, not on the primary interface eth0"),
            "{}",
            f.summary
        );
        // Merged as the catalogue judges it: an IPv4-healthy box fails on its IPv6 alone.
        let f = crate::checks::evaluate(&s, &criteria())
            .into_iter()
            .find(|f| f.id == PRIMARY)
            .unwrap();
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.evidence["ipv6"]["assigned"][0] == "fd77::10",
            "{}",
            f.evidence
        );
    }
}
