//! Fixes that change the network path, so they can cut the session running them: the primary
//! link administratively down (`link.primary`), a missing IPv4 or IPv6 default route
//! (`route.default`, via the vSwitch gateway the metadata assigns, on the primary interface),
//! assigned IPv6 addresses missing from the primary interface (`addr.primary`: a link set down
//! loses them), and assigned secondary private IPs missing from their interface
//! (`addr.secondary`: now, and in the interface's ifcfg file where the snapshot proved one
//! configures it). Each touches only the interfaces the finding names, and is applied with a
//! timed revert.

use std::net::IpAddr;

use super::{Change, Plan};
use crate::checks::{default_routes_v4, primary_interface};
use crate::report::Status;
use crate::snapshot::Snapshot;

fn ip(args: &[&str]) -> Vec<String> {
    std::iter::once("ip")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// A probe that finds the change standing when `ip … show` prints it.
fn printed(argv: Vec<String>) -> Option<super::Probe> {
    Some(super::Probe { argv, prints: true })
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
            stands: printed(ip(&["link", "show", "dev", name, "up"])),
        }],
        cuts_connectivity: true,
    })
}

/// The default routes missing altogether, each via the gateway the metadata assigns on the
/// primary interface: `ip route add default via GW dev IF` for IPv4, and `ip -6 route add
/// default via GW6 dev IF` where the instance uses IPv6. A wrong or dropping default route is
/// for a person to judge.
pub fn default_route(s: &Snapshot) -> Result<Plan, String> {
    let v4 = crate::checks::route::default_route(s);
    let v6 = crate::checks::route::default_route_v6(s);
    let v4_missing = default_routes_v4(s).is_empty();
    let v6_missing = v6.as_ref().is_some_and(|f| f.status != Status::Ok)
        && crate::checks::default_routes_v6(s).is_empty();
    if (v4.status != Status::Ok && !v4_missing)
        || v6
            .as_ref()
            .is_some_and(|f| f.status != Status::Ok && !v6_missing)
    {
        return Err("a default route exists but is wrong: replacing it is for a person to decide (see the remedy)".to_string());
    }
    let p =
        primary_interface(s).map_err(|e| format!("the primary interface is unknown ({e:?})"))?;
    let name = &p.link.name;
    let eni = s.metadata.ok().and_then(|m| m.primary());
    let mut changes = Vec::new();
    let mut via = Vec::new();
    if v4_missing && v4.status != Status::Ok {
        let gateway = eni
            .and_then(|e| e.gateway)
            .ok_or("the metadata names no gateway: no automatic fix")?;
        let on_link = s.addresses.ok().is_ok_and(|a| {
            a.iter().any(|a| {
                a.ifindex == p.link.index
                    && match a.address {
                        IpAddr::V4(v4) => ipnet::Ipv4Net::new(v4, a.prefix_len)
                            .is_ok_and(|n| n.contains(&gateway)),
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
        changes.push(Change::Command {
            what: format!("default via {gw} dev {name}"),
            argv: ip(&["route", "add", "default", "via", &gw, "dev", name]),
            undo: ip(&["route", "del", "default", "via", &gw, "dev", name]),
            stands: printed(ip(&["route", "show", "default", "via", &gw, "dev", name])),
        });
        via.push(gw);
    }
    if v6_missing {
        let gateway = eni.and_then(|e| e.ipv6_gateway).ok_or(
            "the metadata names no IPv6 gateway: no automatic fix for the IPv6 default route",
        )?;
        let gw = gateway.to_string();
        changes.push(Change::Command {
            what: format!("IPv6 default via {gw} dev {name}"),
            argv: ip(&["-6", "route", "add", "default", "via", &gw, "dev", name]),
            undo: ip(&["-6", "route", "del", "default", "via", &gw, "dev", name]),
            stands: printed(ip(&[
                "-6", "route", "show", "default", "via", &gw, "dev", name,
            ])),
        });
        via.push(gw);
    }
    if changes.is_empty() {
        return Err("no default route is missing".to_string());
    }
    Ok(Plan {
        check: crate::checks::route::DEFAULT,
        why: format!(
            "add the default route via the vSwitch gateway {} on {name}",
            via.join(" and ")
        ),
        changes,
        cuts_connectivity: true,
    })
}

/// `ip -6 addr add ADDR/PREFIX dev IF` for each IPv6 address the metadata assigns that is on
/// no interface (a link set down loses its static IPv6 addresses), IF the primary interface,
/// PREFIX the vSwitch's. The IPv4 half must be right: a wrong IPv4 address is for a person.
pub fn primary_ipv6(s: &Snapshot) -> Result<Plan, String> {
    let v4 = crate::checks::addr::primary(s);
    if v4.status != Status::Ok {
        return Err(format!(
            "{}: changing the primary IPv4 address is for a person (the remedy says how)",
            v4.summary
        ));
    }
    let f6 = crate::checks::addr::primary_v6(s)
        .filter(|f| f.status != Status::Ok)
        .ok_or("no assigned IPv6 address is missing")?;
    let ev = &f6.evidence;
    let (Some(name), Some(prefix)) = (ev["interface"].as_str(), ev["prefix"].as_u64()) else {
        return Err("the finding lacks the interface or the prefix".to_string());
    };
    let present: Vec<IpAddr> = s
        .addresses
        .ok()
        .map(|a| a.iter().map(|a| a.address).collect())
        .unwrap_or_default();
    let mut changes = Vec::new();
    for a in ev["assigned"].as_array().into_iter().flatten() {
        let Some(addr) = a.as_str().and_then(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        if present.contains(&addr) {
            // On the primary interface it is fine; elsewhere moving it is for a person.
            if f6.summary.contains("not on the primary interface") {
                return Err(f6.summary.clone());
            }
            continue;
        }
        let cidr = format!("{addr}/{prefix}");
        changes.push(Change::Command {
            what: format!("{cidr} on {name}"),
            argv: ip(&["-6", "addr", "add", &cidr, "dev", name]),
            undo: ip(&["-6", "addr", "del", &cidr, "dev", name]),
            stands: printed(ip(&[
                "-6",
                "addr",
                "show",
                "dev",
                name,
                "to",
                &format!("{addr}/128"),
            ])),
        });
    }
    if changes.is_empty() {
        return Err(f6.summary.clone());
    }
    Ok(Plan {
        check: crate::checks::addr::PRIMARY,
        why: format!(
            "add the IPv6 address the cloud assigned to the primary interface {name} (until reboot: DHCPv6 or the persisted configuration restores it at boot)"
        ),
        changes,
        cuts_connectivity: true,
    })
}

/// `ip addr add IP/PREFIX dev IF` for each assigned secondary IP the finding proved missing,
/// and `IPADDRn=`/`PREFIXn=` in that interface's ifcfg file where one configures it.
pub fn secondary_ips(
    finding: &crate::report::Finding,
    s: &Snapshot,
    pending: &mut super::sysctl::Pending,
) -> Result<Plan, String> {
    let missing = finding.evidence["missing"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or("the finding names no missing address")?;
    let configs = s.network_config.ok().map(Vec::as_slice).unwrap_or_default();
    let mut changes = Vec::new();
    let mut runtime_only = Vec::new();
    for m in missing {
        let (Some(ip), Some(dev), Some(prefix)) = (
            m["ip"].as_str(),
            m["interface"].as_str(),
            m["prefix"].as_u64(),
        ) else {
            return Err("the finding's evidence lacks the address, interface or prefix".into());
        };
        if m["found"] != true {
            return Err(format!(
                "{ip} belongs to an ENI with no interface in the OS (link.secondary): no automatic fix"
            ));
        }
        let cidr = format!("{ip}/{prefix}");
        changes.push(Change::Command {
            what: format!("{cidr} on {dev}"),
            argv: ip_cmd(&["addr", "add", &cidr, "dev", dev]),
            undo: ip_cmd(&["addr", "del", &cidr, "dev", dev]),
            stands: printed(ip_cmd(&[
                "-4",
                "addr",
                "show",
                "dev",
                dev,
                "to",
                &format!("{ip}/32"),
            ])),
        });
        let mac = s.links.ok().ok().and_then(|links| {
            links
                .iter()
                .find(|l| l.name == dev)
                .and_then(|l| l.mac.clone())
        });
        let mine: Vec<&crate::snapshot::InterfaceConfig> = configs
            .iter()
            .filter(|c| crate::checks::addr::applies_to(c, dev, mac.as_deref()))
            .collect();
        // Persisted only where one format alone configures the interface: which one wins at
        // boot between two is not for a fix to guess.
        let format = mine.first().map(|c| c.format);
        let one_format = format.is_some() && mine.iter().all(|c| Some(c.format) == format);
        use crate::snapshot::ConfigFormat;
        match (one_format, format) {
            (true, Some(ConfigFormat::Ifcfg)) => {
                changes.push(ifcfg_edit(&mine[0].file, ip, prefix, pending)?)
            }
            (true, Some(ConfigFormat::Netplan)) => {
                changes.push(netplan_edit(mine[0], &cidr, pending)?)
            }
            (true, Some(ConfigFormat::NetworkManager)) if mine.len() == 1 => {
                changes.push(nm_keyfile_edit(&mine[0].file, &cidr, pending)?)
            }
            _ => runtime_only.push(ip.to_string()),
        }
    }
    let mut why = "configure the secondary private IPs the cloud assigned".to_string();
    if !runtime_only.is_empty() {
        why.push_str(&format!(
            " ({} until reboot: no single ifcfg file, netplan configuration or NetworkManager connection configures the interface; persist it by hand)",
            runtime_only.join(", ")
        ));
    }
    Ok(Plan {
        check: crate::checks::addr::SECONDARY,
        why,
        changes,
        cuts_connectivity: true,
    })
}

fn ip_cmd(args: &[&str]) -> Vec<String> {
    ip(args)
}

/// Netplan: the address in `99-ecs-diag.yaml` beside the files that configure the interface,
/// under the same `ethernets` id. Netplan appends a later file's `addresses` to the earlier
/// ones' (netplan-generate(8)), so the interface keeps its own configuration, DHCP included,
/// and the undo is the file's removal.
fn netplan_edit(
    c: &crate::snapshot::InterfaceConfig,
    cidr: &str,
    pending: &mut super::sysctl::Pending,
) -> Result<Change, String> {
    use serde_yaml_ng::{Mapping, Value};
    let id = c
        .netplan_id
        .as_deref()
        .ok_or("the netplan configuration has no ethernets id")?;
    let first = c.file.split(" + ").next().unwrap_or_default();
    let dir = std::path::Path::new(first)
        .parent()
        .ok_or_else(|| format!("{first} has no directory"))?;
    let path = dir.join("99-ecs-diag.yaml");
    let before = super::pending_text(&path, pending)?;
    let mut doc: Value = match &before {
        Some(t) => serde_yaml_ng::from_str(t).map_err(|e| format!("{}: {e}", path.display()))?,
        None => Value::Mapping(Mapping::new()),
    };
    fn child<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
        Some(
            v.as_mapping_mut()?
                .entry(Value::String(key.to_string()))
                .or_insert_with(|| Value::Mapping(Mapping::new())),
        )
    }
    let at = child(&mut doc, "network")
        .and_then(|v| child(v, "ethernets"))
        .and_then(|v| child(v, id))
        .ok_or_else(|| format!("{}: not a netplan mapping", path.display()))?;
    let list = at
        .as_mapping_mut()
        .ok_or_else(|| format!("{}: ethernets.{id} is not a mapping", path.display()))?
        .entry(Value::String("addresses".into()))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    let Value::Sequence(list) = list else {
        return Err(format!(
            "{}: ethernets.{id}.addresses is not a list",
            path.display()
        ));
    };
    list.push(Value::String(cidr.to_string()));
    if let Some(network) = doc.get_mut("network").and_then(Value::as_mapping_mut) {
        network
            .entry(Value::String("version".into()))
            .or_insert(Value::Number(2.into()));
    }
    let yaml = serde_yaml_ng::to_string(&doc).map_err(|e| format!("{}: {e}", path.display()))?;
    let after = format!("# ecs-diag fix: secondary private IPs assigned by the cloud, added to {id}'s own addresses\n{yaml}");
    pending.insert(path.clone(), after.clone());
    Ok(Change::File {
        path,
        before,
        after,
    })
}

/// A NetworkManager keyfile with `addressN=CIDR` added to its `[ipv4]` section, N the first
/// index it does not use: NetworkManager adds manual addresses to DHCP's (method=auto) or to
/// the static ones.
fn nm_keyfile_edit(
    file: &str,
    cidr: &str,
    pending: &mut super::sysctl::Pending,
) -> Result<Change, String> {
    let path = std::path::PathBuf::from(file);
    let text = super::pending_text(&path, pending)?.ok_or_else(|| format!("{file} is gone"))?;
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "[ipv4]")
        .ok_or_else(|| format!("{file} has no [ipv4] section: persist the address by hand"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| start + 1 + i);
    let used = |n: u32| {
        lines[start + 1..end].iter().any(|l| {
            l.trim_start()
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == format!("address{n}"))
        })
    };
    let n = (1..).find(|n| !used(*n)).unwrap_or(1);
    // After the section's last non-blank line.
    let at = (start + 1..end)
        .rev()
        .find(|i| !lines[*i].trim().is_empty())
        .map_or(start + 1, |i| i + 1);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.insert(at, format!("address{n}={cidr}"));
    out.insert(
        at,
        "# ecs-diag fix: secondary private IP assigned by the cloud".to_string(),
    );
    let mut after = out.join("\n");
    after.push('\n');
    pending.insert(path.clone(), after.clone());
    Ok(Change::File {
        path,
        before: Some(text),
        after,
    })
}

/// The ifcfg file with `IPADDRn=IP` and `PREFIXn=PREFIX` added, n the first index it does not
/// use yet.
fn ifcfg_edit(
    file: &str,
    ip: &str,
    prefix: u64,
    pending: &mut super::sysctl::Pending,
) -> Result<Change, String> {
    let path = std::path::PathBuf::from(file);
    let text = match pending.get(&path) {
        Some(t) => t.clone(),
        None => std::fs::read_to_string(&path).map_err(|e| format!("cannot read {file}: {e}"))?,
    };
    let used = |n: u32| {
        text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("IPADDR{n}=")) || l.starts_with(&format!("PREFIX{n}="))
        })
    };
    let n = (1..).find(|n| !used(*n)).unwrap_or(1);
    let mut after = text.clone();
    if !after.is_empty() && !after.ends_with('\n') {
        after.push('\n');
    }
    after.push_str(&format!(
        "# ecs-diag fix: secondary private IP assigned by the cloud\nIPADDR{n}={ip}\nPREFIX{n}={prefix}\n"
    ));
    pending.insert(path.clone(), after.clone());
    Ok(Change::File {
        path,
        before: Some(text),
        after,
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
            .contains("no default route is missing"));
        let mut wrong = healthy();
        if let Gathered::Ok(r) = &mut wrong.routes {
            for r in r.iter_mut().filter(|r| r.is_default()) {
                r.kind = "blackhole".into();
            }
        }
        assert!(default_route(&wrong)
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

    /// A link set down loses both default routes: both come back in one plan, IPv6 via the
    /// metadata's IPv6 gateway; a present but wrong IPv6 route is left to a person.
    #[test]
    fn missing_ipv6_default_route_via_the_assigned_ipv6_gateway() {
        use crate::checks::fixture::{ipv6_default, remove_ipv6_default, with_ipv6};
        let mut s = healthy();
        with_ipv6(&mut s);
        remove_ipv6_default(&mut s);
        let p = default_route(&s).unwrap();
        assert_eq!(
            command(&p),
            (
                "ip -6 route add default via fd77::1 dev eth0".to_string(),
                "ip -6 route del default via fd77::1 dev eth0".to_string()
            )
        );
        if let Gathered::Ok(r) = &mut s.routes {
            r.retain(|r| !(r.destination.prefix_len() == 0 && r.destination.addr().is_ipv4()));
        }
        let p = default_route(&s).unwrap();
        let argv: Vec<String> = p
            .changes
            .iter()
            .map(|c| match c {
                Change::Command { argv, .. } => argv.join(" "),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            argv,
            [
                "ip route add default via 10.77.0.1 dev eth0",
                "ip -6 route add default via fd77::1 dev eth0"
            ]
        );
        assert!(p.why.contains("10.77.0.1 and fd77::1"), "{}", p.why);
        let mut wrong = healthy();
        with_ipv6(&mut wrong);
        ipv6_default(&mut wrong).kind = "blackhole".into();
        assert!(default_route(&wrong)
            .unwrap_err()
            .contains("for a person to decide"));
        let mut no_gw = healthy();
        with_ipv6(&mut no_gw);
        remove_ipv6_default(&mut no_gw);
        if let MetadataState::Ok(m) = &mut no_gw.metadata {
            m.interfaces[0].ipv6_gateway = None;
        }
        assert!(default_route(&no_gw)
            .unwrap_err()
            .contains("no IPv6 gateway"));
    }

    /// The assigned IPv6 address lost (as with a link set down): added back on the primary
    /// interface with the vSwitch prefix; a wrong IPv4 address or nothing missing: no plan.
    #[test]
    fn a_missing_assigned_ipv6_address_is_added_to_the_primary_interface() {
        use crate::checks::fixture::with_ipv6;
        let mut s = healthy();
        with_ipv6(&mut s);
        assert!(primary_ipv6(&s).unwrap_err().contains("no assigned IPv6"));
        if let Gathered::Ok(a) = &mut s.addresses {
            a.retain(|a| a.address.to_string() != "fd77::10");
        }
        let p = primary_ipv6(&s).unwrap();
        assert_eq!(p.check, "addr.primary");
        assert!(p.cuts_connectivity);
        assert_eq!(
            command(&p),
            (
                "ip -6 addr add fd77::10/64 dev eth0".to_string(),
                "ip -6 addr del fd77::10/64 dev eth0".to_string()
            )
        );
        if let Gathered::Ok(a) = &mut s.addresses {
            a.retain(|a| !a.address.is_ipv4() || a.address.to_string() == "10.77.0.11");
        }
        assert!(primary_ipv6(&s).unwrap_err().contains("for a person"));
    }

    #[test]
    fn secondary_ips_now_and_in_the_ifcfg_file_that_configures_the_interface() {
        use crate::snapshot::{AddressingMethod, ConfigFormat, InterfaceConfig};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ifcfg-eth0");
        std::fs::write(
            &file,
            "DEVICE=eth0\nBOOTPROTO=dhcp\nIPADDR1=10.77.0.99\nPREFIX1=24",
        )
        .unwrap();
        let mut s = healthy();
        if let Gathered::Ok(a) = &mut s.addresses {
            a.retain(|a| a.address.to_string() != "10.77.0.11");
        }
        let finding = crate::checks::addr::secondary(&s);
        let mut pending = Default::default();
        // No ifcfg configures eth0: now only, and the plan says so.
        s.network_config = Gathered::Ok(vec![]);
        let p = secondary_ips(&finding, &s, &mut pending).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert_eq!(
            command(&p),
            (
                "ip addr add 10.77.0.11/24 dev eth0".to_string(),
                "ip addr del 10.77.0.11/24 dev eth0".to_string()
            )
        );
        assert!(p.why.contains("until reboot"), "{}", p.why);
        s.network_config = Gathered::Ok(vec![InterfaceConfig {
            file: file.display().to_string(),
            format: ConfigFormat::Ifcfg,
            interface: Some("eth0".into()),
            mac: None,
            method: AddressingMethod::Dhcp,
            addresses: vec![],
            gateway: None,
            netplan_id: None,
        }]);
        let p = secondary_ips(&finding, &s, &mut pending).unwrap();
        match &p.changes[1] {
            Change::File { after, .. } => assert!(
                after.ends_with("PREFIX1=24\n# ecs-diag fix: secondary private IP assigned by the cloud\nIPADDR2=10.77.0.11\nPREFIX2=24\n"),
                "{after}"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// Netplan (matched by MAC, as cloud-init writes it): a drop-in under the same ethernets
    /// id, which our own reader merges back into a DHCP configuration holding the address;
    /// a NetworkManager keyfile: addressN= in [ipv4]; two formats at once: runtime only.
    #[test]
    fn secondary_ips_persisted_for_netplan_and_networkmanager() {
        use crate::snapshot::{AddressingMethod, ConfigFormat, InterfaceConfig};
        use crate::sources::network_config::{parse_netplan_files, parse_nm_keyfile};
        let dir = tempfile::tempdir().unwrap();
        let netplan = dir.path().join("netplan");
        std::fs::create_dir_all(&netplan).unwrap();
        let base = netplan.join("50-cloud-init.yaml");
        let base_text = "network:\n  version: 2\n  ethernets:\n    primary:\n      match:\n        macaddress: 00:16:3e:00:00:01\n      set-name: eth0\n      dhcp4: true\n";
        std::fs::write(&base, base_text).unwrap();
        let mut s = healthy();
        if let Gathered::Ok(a) = &mut s.addresses {
            a.retain(|a| a.address.to_string() != "10.77.0.11");
        }
        let mac = s
            .links
            .ok()
            .unwrap()
            .iter()
            .find(|l| l.name == "eth0")
            .unwrap()
            .mac
            .clone();
        let finding = crate::checks::addr::secondary(&s);
        let configs = parse_netplan_files(&[(base.clone(), base_text.into())]).unwrap();
        assert_eq!(configs[0].mac, mac, "the fixture's eth0 MAC");
        s.network_config = Gathered::Ok(configs);
        let mut pending = Default::default();
        let p = secondary_ips(&finding, &s, &mut pending).unwrap();
        assert!(!p.why.contains("until reboot"), "{}", p.why);
        let Change::File {
            path,
            before,
            after,
        } = &p.changes[1]
        else {
            panic!("{:?}", p.changes)
        };
        assert_eq!(path, &netplan.join("99-ecs-diag.yaml"));
        assert_eq!(before, &None);
        let merged = parse_netplan_files(&[
            (base.clone(), base_text.into()),
            (path.clone(), after.clone()),
        ])
        .unwrap();
        assert_eq!(merged.len(), 1, "{after}");
        assert_eq!(merged[0].method, AddressingMethod::Dhcp);
        assert_eq!(merged[0].addresses, vec!["10.77.0.11/24".parse().unwrap()]);
        let mut judged = s.clone();
        judged.network_config = Gathered::Ok(merged);
        assert_eq!(
            crate::checks::addr::config(&judged).status,
            crate::report::Status::Ok
        );

        // NetworkManager: the keyfile that names eth0.
        let keyfile = dir.path().join("eth0.nmconnection");
        let nm_text = "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\naddress1=10.77.0.99/24\n\n[ipv6]\nmethod=auto\n";
        std::fs::write(&keyfile, nm_text).unwrap();
        s.network_config = Gathered::Ok(vec![parse_nm_keyfile(nm_text, &keyfile).unwrap()]);
        let mut pending = Default::default();
        let p = secondary_ips(&finding, &s, &mut pending).unwrap();
        let Change::File { after, .. } = &p.changes[1] else {
            panic!("{:?}", p.changes)
        };
        assert_eq!(after, "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\naddress1=10.77.0.99/24\n# ecs-diag fix: secondary private IP assigned by the cloud\naddress2=10.77.0.11/24\n\n[ipv6]\nmethod=auto\n");
        let c = parse_nm_keyfile(after, &keyfile).unwrap();
        assert_eq!(c.method, AddressingMethod::Dhcp);
        assert!(c.addresses.contains(&"10.77.0.11/24".parse().unwrap()));
        // No [ipv4] section: said, not guessed.
        let bare = "[connection]\ntype=ethernet\ninterface-name=eth0\n";
        std::fs::write(&keyfile, bare).unwrap();
        assert!(nm_keyfile_edit(
            &keyfile.display().to_string(),
            "10.77.0.11/24",
            &mut Default::default()
        )
        .unwrap_err()
        .contains("no [ipv4] section"));

        // Netplan and an ifcfg file both name eth0: runtime only, and the plan says so.
        let mut both = parse_netplan_files(&[(base.clone(), base_text.into())]).unwrap();
        both.push(InterfaceConfig {
            file: "/etc/sysconfig/network-scripts/ifcfg-eth0".into(),
            format: ConfigFormat::Ifcfg,
            interface: Some("eth0".into()),
            mac: None,
            method: AddressingMethod::Dhcp,
            addresses: vec![],
            gateway: None,
            netplan_id: None,
        });
        s.network_config = Gathered::Ok(both);
        let p = secondary_ips(&finding, &s, &mut Default::default()).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert!(p.why.contains("until reboot"), "{}", p.why);
    }
}
