//! `link.primary`, `link.secondary`, `link.driver`: is each ENI present in the OS, up, with a
//! carrier and the right driver? Evidence: netlink link flags and operstate, metadata MACs,
//! the sysfs driver binding.

use serde_json::json;

use super::{assigned_values, ipv4_on, link_name, link_with_mac, no_primary, primary_interface};
use crate::checks::{Cause, Check};
use crate::report::{Finding, Status};
use crate::snapshot::{Link, Qdisc, Snapshot};

pub const PRIMARY: &str = "link.primary";
pub const SECONDARY: &str = "link.secondary";
pub const DRIVER: &str = "link.driver";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: PRIMARY,
        decides: "the primary interface can exchange packets: administratively up, with a carrier, ARP on, not a port of a bridge or bond that takes its traffic, no dropping root qdisc, an MTU the VPC's traffic fits",
        evidence: &["netlink link flags (IFF_UP, IFF_LOWER_UP, IFF_NOARP), operstate, MTU and controller (IFLA_MASTER)", "the root qdisc (tc qdisc)", "the primary ENI's MAC from the instance metadata, else the default route's interface"],
        causes: &[
            Cause { id: "link_down", cause: "the interface is administratively down", remedy: "ip link set dev IF up; make it persistent (ONBOOT=yes, auto IF, netplan)" },
            Cause { id: "no_carrier", cause: "no carrier: the ENI is detached or its driver is not bound", remedy: "ECS console → instance → ENIs; see link.driver" },
            Cause { id: "noarp", cause: "ARP is off (NOARP): no neighbour can be resolved", remedy: "ip link set dev IF arp on" },
            Cause { id: "enslaved", cause: "enslaved to a bridge or bond that is down or does not carry the addresses", remedy: "ip link set dev IF nomaster, or move the addresses to the bridge/bond" },
            Cause { id: "dropping_qdisc", cause: "the root qdisc is noop or blackhole: every packet sent is dropped", remedy: "tc qdisc del dev IF root" },
            Cause { id: "mtu_too_small", cause: "the MTU is below the VPC's 1500 (fail when even a default ping does not fit)", remedy: "ip link set dev IF mtu 1500" },
            Cause { id: "primary_mac_missing", cause: "no interface has the primary ENI's MAC", remedy: "check the ENI is attached and the driver loaded (see link.driver)" },
            Cause { id: "operstate_not_up", cause: "up with a carrier, but the operstate is not up (dormant, lower layer down)", remedy: "ip link show dev IF; check the driver and what manages the link" },
        ],
        judge: |s, _| primary(s).judges(super::primary_link(s)),
    },
    Check {
        id: SECONDARY,
        decides: "every ENI the cloud attached has an OS interface that is up and addressed",
        evidence: &["metadata MACs of every attached ENI", "netlink links and their IPv4 addresses"],
        causes: &[
            Cause { id: "secondary_eni_missing", cause: "a secondary ENI has no OS interface", remedy: "check its driver and udev naming (see link.driver)" },
            Cause { id: "secondary_eni_down", cause: "a secondary ENI's interface is down or has no address", remedy: "ip link set dev IF up; dhclient IF (or ip addr add IP/PREFIX dev IF)" },
        ],
        judge: |s, _| secondary(s),
    },
    Check {
        id: DRIVER,
        decides: "each NIC is bound to a driver, and a known virtio/ENI driver",
        evidence: &["the sysfs driver binding of each interface's device (/sys/class/net/IF/device/driver)"],
        causes: &[
            Cause { id: "driver_unbound", cause: "a NIC has no driver bound", remedy: "modprobe virtio_net" },
            Cause { id: "driver_unexpected", cause: "a NIC is bound to an unexpected driver", remedy: "check the image's kernel supports the instance type's NIC" },
        ],
        judge: |s, _| driver(s),
    },
];

/// Drivers ECS ENIs are served by (virtio-net on most families; VFs on some).
pub const KNOWN_DRIVERS: &[&str] = &[
    "virtio_net",
    "mlx5_core",
    "ixgbevf",
    "iavf",
    "i40evf",
    "ena",
    "erdma",
];

fn link_evidence(l: &Link) -> serde_json::Value {
    json!({
        "interface": l.name, "mac": l.mac, "admin_up": l.admin_up,
        "carrier": l.carrier, "operstate": l.operstate, "mtu": l.mtu,
        "noarp": l.noarp,
    })
}

fn bring_up(name: &str) -> Vec<String> {
    vec![
        format!("ip link set dev {name} up"),
        format!("make it persistent: set ONBOOT=yes in /etc/sysconfig/network-scripts/ifcfg-{name} (RHEL/Alibaba Cloud Linux), `auto {name}` in /etc/network/interfaces (Debian), or check /etc/netplan (Ubuntu)"),
    ]
}

/// The VPC's MTU: a guest MTU below it drops the larger packets the VPC delivers.
pub const VPC_MTU: u32 = 1500;
/// The IPv4 packet of a default `ping` (56 bytes of data, 8 of ICMP, 20 of IP).
pub const DEFAULT_PING_BYTES: u32 = 84;
/// Root qdiscs that drop every packet sent.
const DROPPING_QDISCS: &[&str] = &["noop", "blackhole"];

/// One link attribute that stops the link from exchanging packets (`fail`) or some of them
/// (`warn`), with the attribute's name for the evidence.
pub struct LinkProblem {
    pub attribute: &'static str,
    pub status: Status,
    pub summary: String,
    pub remedy: Vec<String>,
}

/// The registered cause id of a [`LinkProblem`]'s attribute.
fn cause_of(attribute: &str) -> &'static str {
    match attribute {
        "admin_up" => "link_down",
        "carrier" => "no_carrier",
        "noarp" => "noarp",
        "controller" => "enslaved",
        "qdisc" => "dropping_qdisc",
        _ => "mtu_too_small",
    }
}

/// Every attribute of `l` that stops it from exchanging packets or resolving neighbours, the
/// worst first: admin state, carrier, IFF_NOARP, an enslaving bridge or bond that takes its
/// frames, a root qdisc that drops everything, an MTU too small for the traffic.
pub fn link_problems(s: &Snapshot, l: &Link) -> Vec<LinkProblem> {
    let mut out = Vec::new();
    let fail = |attribute, summary, remedy| LinkProblem {
        attribute,
        status: Status::Fail,
        summary,
        remedy,
    };
    if !l.admin_up {
        out.push(fail(
            "admin_up",
            format!("{} is administratively down", l.name),
            bring_up(&l.name),
        ));
    } else if !l.carrier {
        out.push(fail(
            "carrier",
            format!("{} is up but has no carrier (operstate {}): the ENI is detached or its backend is down", l.name, l.operstate),
            vec![
                format!("ip link show dev {}", l.name),
                "in the ECS console, check the ENI is attached to this instance and the instance is Running; restart the instance if the ENI stays without carrier".to_string(),
            ],
        ));
    }
    if l.noarp && l.mac.is_some() {
        out.push(fail(
            "noarp",
            format!("{} has ARP turned off (NOARP flag): it cannot resolve the gateway's MAC, so nothing it sends reaches the gateway and nobody can resolve its address", l.name),
            vec![
                format!("ip link set dev {} arp on", l.name),
                "find what turned it off: ARP=no in ifcfg, `arp off` in /etc/network/interfaces or a script".to_string(),
            ],
        ));
    }
    if let Some(problem) = enslaved(s, l) {
        out.push(problem);
    }
    let root = s.qdiscs.ok().ok().and_then(|qs| root_qdisc(qs, l.index));
    if let Some(q) = root.filter(|q| DROPPING_QDISCS.contains(&q.kind.as_str())) {
        out.push(fail(
            "qdisc",
            format!(
                "{}'s root qdisc is {}: every packet it sends is dropped ({} so far)",
                l.name, q.kind, q.drops
            ),
            vec![
                format!(
                    "tc qdisc del dev {} root   (restores the default qdisc)",
                    l.name
                ),
                "find what installed it: tc commands in network scripts, a traffic shaper"
                    .to_string(),
            ],
        ));
    }
    if let Some(mtu) = l.mtu.filter(|m| *m < VPC_MTU && !l.loopback) {
        let status = if mtu < DEFAULT_PING_BYTES {
            Status::Fail
        } else {
            Status::Warn
        };
        let ipv6 = if mtu < 1280 {
            "; below 1280 IPv6 is disabled on it"
        } else {
            ""
        };
        let what = if status == Status::Fail {
            format!("even a default ping ({DEFAULT_PING_BYTES} bytes) is dropped")
        } else {
            format!(
                "packets over {mtu} bytes are dropped on arrival (ping -s {} fails)",
                VPC_MTU - 28
            )
        };
        out.push(LinkProblem {
            attribute: "mtu",
            status,
            summary: format!(
                "{}'s MTU {mtu} is below the VPC's {VPC_MTU}: {what}{ipv6}",
                l.name
            ),
            remedy: vec![
                format!("ip link set dev {} mtu {VPC_MTU}", l.name),
                "make it persistent: MTU= in ifcfg, mtu in /etc/network/interfaces or netplan"
                    .to_string(),
            ],
        });
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.status));
    out
}

/// The link's root qdisc, if it has one in the dump.
fn root_qdisc(qs: &[Qdisc], ifindex: u32) -> Option<&Qdisc> {
    qs.iter()
        .find(|q| q.ifindex == ifindex && q.parent == "root")
}

/// A port of a bridge or bond receives nothing for itself: the controller takes every frame.
/// That is right only when the controller is up and carries the addresses.
fn enslaved(s: &Snapshot, l: &Link) -> Option<LinkProblem> {
    let idx = l.controller?;
    let links = s.links.ok().ok()?;
    let controller = links.iter().find(|c| c.index == idx);
    let cname = controller.map_or_else(|| format!("ifindex {idx}"), |c| c.name.clone());
    let kind = controller
        .and_then(|c| c.kind.clone())
        .unwrap_or_else(|| "controller".into());
    let own = ipv4_on(s, l.index);
    let why = if let Some(a) = own.first() {
        format!(
            "its address {} is on {} itself, where no packet arrives",
            a.address, l.name
        )
    } else if controller.is_none_or(|c| !c.admin_up) {
        format!("{cname} is down")
    } else if controller.is_some_and(|c| ipv4_on(s, c.index).is_empty()) {
        format!("{cname} has no IPv4 address")
    } else {
        return None;
    };
    Some(LinkProblem {
        attribute: "controller",
        status: Status::Fail,
        summary: format!(
            "{} is enslaved to {kind} {cname}, which takes every frame it receives, and {why}",
            l.name
        ),
        remedy: vec![
            format!(
                "ip link set dev {} nomaster   (if the {kind} is not wanted)",
                l.name
            ),
            format!("or move the addresses and routes to {cname} and bring it up"),
        ],
    })
}

/// Why the link cannot have a neighbour entry for the gateway, if it cannot: the attribute
/// in words (down, no carrier, NOARP, enslaved).
pub fn neighbour_blocker(s: &Snapshot, l: &Link) -> Option<String> {
    link_problems(s, l)
        .into_iter()
        .find(|p| matches!(p.attribute, "admin_up" | "carrier" | "noarp" | "controller"))
        .map(|p| p.summary)
}

pub fn primary(s: &Snapshot) -> Finding {
    let p = match primary_interface(s) {
        Ok(p) => p,
        Err(super::NoPrimary::MacMissing(mac)) => {
            return Finding::fail(PRIMARY, format!("no interface has the primary ENI's MAC {mac}: the ENI is not visible to the OS")).cause("primary_mac_missing")
                .evidence(json!({"metadata_mac": mac, "interfaces": s.links.ok().ok().map(|ls| ls.iter().map(|l| json!({"name": l.name, "mac": l.mac})).collect::<Vec<_>>())}))
                .remedy(["ip -br link", "check the NIC driver is loaded: lsmod | grep virtio_net; modprobe virtio_net", "in the ECS console, check the primary ENI and restart the instance"]);
        }
        Err(e) => return no_primary(PRIMARY, e),
    };
    let l = p.link;
    let mut evidence = link_evidence(l);
    evidence["chosen_by"] = json!(p.chosen_by);
    if let Some(c) = l.controller {
        evidence["controller"] = json!(link_name(s, c));
    }
    evidence["root_qdisc"] = match s.qdiscs.ok() {
        Ok(qs) => json!(root_qdisc(qs, l.index).map(|q| q.kind.clone())),
        Err(e) => json!(format!("unknown: {e}")),
    };
    let problems = link_problems(s, l);
    if let Some(first) = problems.first() {
        evidence["problems"] = json!(problems
            .iter()
            .map(|p| json!({"attribute": p.attribute, "status": p.status, "summary": p.summary}))
            .collect::<Vec<_>>());
        let mut remedy = first.remedy.clone();
        for p in &problems[1..] {
            remedy.extend(p.remedy.iter().take(1).cloned());
        }
        let summary = if problems.len() > 1 {
            format!(
                "{} (and {} more: see problems)",
                first.summary,
                problems.len() - 1
            )
        } else {
            first.summary.clone()
        };
        return Finding::new(PRIMARY, first.status, summary)
            .cause(cause_of(first.attribute))
            .evidence(evidence)
            .remedy(remedy);
    }
    if !matches!(l.operstate.as_str(), "up" | "unknown") {
        return Finding::warn(
            PRIMARY,
            format!(
                "{} is up with a carrier but its operstate is {}",
                l.name, l.operstate
            ),
        )
        .cause("operstate_not_up")
        .evidence(evidence)
        .remedy([format!("ip link show dev {}", l.name)]);
    }
    Finding::ok(
        PRIMARY,
        format!(
            "primary interface {} is up with a carrier, ARP on, MTU {}{}",
            l.name,
            l.mtu.map_or_else(|| "unknown".into(), |m| m.to_string()),
            l.controller
                .map(|c| format!(
                    ", a port of {} (which carries its addresses)",
                    link_name(s, c)
                ))
                .unwrap_or_default()
        ),
    )
    .evidence(evidence)
}

pub fn secondary(s: &Snapshot) -> Finding {
    let md = match assigned_values(
        s,
        SECONDARY,
        "cannot tell which secondary ENIs are attached",
    ) {
        Ok(m) => m,
        Err(f) => return f,
    };
    let links = match s.links.ok() {
        Ok(l) => l,
        Err(e) => return Finding::unknown(SECONDARY, format!("cannot read the interfaces: {e}")),
    };
    let mut problems = Vec::new();
    let mut remedy = Vec::new();
    let mut seen = Vec::new();
    for eni in md
        .interfaces
        .iter()
        .filter(|i| !i.mac.eq_ignore_ascii_case(&md.mac))
    {
        let eni_name = eni.eni_id.clone().unwrap_or_else(|| eni.mac.clone());
        let Some(l) = link_with_mac(links, &eni.mac) else {
            problems.push(
                json!({"eni": eni_name, "mac": eni.mac, "problem": "no OS interface has this MAC"}),
            );
            remedy.push(format!("ENI {eni_name} ({}): not visible to the OS; check `ip -br link`, load the driver, or re-attach it in the console", eni.mac));
            continue;
        };
        if let Some(p) = link_problems(s, l)
            .into_iter()
            .find(|p| p.status == Status::Fail)
        {
            problems.push(
                json!({"eni": eni_name, "mac": eni.mac, "interface": l.name, "problem": p.summary}),
            );
            remedy.extend(p.remedy);
            continue;
        }
        if ipv4_on(s, l.index).is_empty() {
            let ip = eni
                .primary_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "<primary-ip>".into());
            let prefix = eni.prefix_len.unwrap_or(24);
            problems.push(json!({"eni": eni_name, "mac": eni.mac, "interface": l.name, "problem": "up but has no IPv4 address"}));
            remedy.push(format!(
                "ip addr add {ip}/{prefix} dev {}   (or run its DHCP client: dhclient {})",
                l.name, l.name
            ));
            remedy.push("secondary ENIs are not configured automatically on every image: see the ECS documentation \"Configure a secondary ENI\" (multi-nic-util on Alibaba Cloud Linux)".into());
            continue;
        }
        seen.push(json!({"eni": eni_name, "mac": eni.mac, "interface": l.name}));
    }
    let evidence = json!({"secondary_enis_ok": seen, "problems": problems});
    if !problems.is_empty() {
        let n = problems.len();
        let first = problems[0]["problem"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let who = problems[0]["eni"].as_str().unwrap_or_default().to_string();
        let missing = problems[0]["interface"].is_null();
        return Finding::fail(
            SECONDARY,
            format!("{n} secondary ENI(s) not working: {who}: {first}"),
        )
        .cause(if missing {
            "secondary_eni_missing"
        } else {
            "secondary_eni_down"
        })
        .evidence(evidence)
        .remedy(remedy);
    }
    if seen.is_empty() {
        return Finding::ok(SECONDARY, "no secondary ENIs are attached").evidence(evidence);
    }
    Finding::ok(
        SECONDARY,
        format!("{} secondary ENI(s) present, up and addressed", seen.len()),
    )
    .evidence(evidence)
}

pub fn driver(s: &Snapshot) -> Finding {
    let p = match primary_interface(s) {
        Ok(p) => p,
        Err(e) => return no_primary(DRIVER, e),
    };
    let drivers = match s.drivers.ok() {
        Ok(d) => d,
        Err(e) => return Finding::unknown(DRIVER, format!("cannot read NIC drivers: {e}")),
    };
    let name = &p.link.name;
    let Some(d) = drivers.get(name) else {
        return Finding::unknown(DRIVER, format!("no driver information for {name}"));
    };
    let evidence = json!({"interface": name, "has_device": d.has_device, "driver": d.driver, "known_drivers": KNOWN_DRIVERS});
    match (&d.driver, d.has_device) {
        (Some(drv), _) if KNOWN_DRIVERS.contains(&drv.as_str()) => {
            Finding::ok(DRIVER, format!("{name} is driven by {drv}")).evidence(evidence)
        }
        (Some(drv), _) => Finding::warn(DRIVER, format!("{name} is driven by {drv}, not a driver ECS ENIs use (virtio_net, ...)"))
            .cause("driver_unexpected")
            .evidence(evidence)
            .remedy([format!("ethtool -i {name}"), "check this is the ENI and not a virtual or third-party interface".to_string()]),
        (None, true) => Finding::fail(DRIVER, format!("{name} has a device but no driver is bound to it"))
            .cause("driver_unbound")
            .evidence(evidence)
            .remedy(["modprobe virtio_net".to_string(), "dmesg | grep -i -e virtio -e eth".to_string(), "if the module is missing, reinstall the kernel's modules package and rebuild the initramfs (dracut -f / update-initramfs -u)".to_string()]),
        (None, false) => Finding::warn(DRIVER, format!("{name} is a virtual interface (no NIC device behind it)"))
            .cause("driver_unexpected")
            .evidence(evidence)
            .remedy([format!("ip -d link show dev {name}")]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::report::Status;
    use crate::snapshot::{Gathered, MetadataInterface, NicDriver};

    #[test]
    fn primary_paths() {
        assert_eq!(judge(primary, |_| {}).status, Status::Ok);
        let f = judge(primary, |s| links(s)[1].admin_up = false);
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("administratively down"));
        assert!(f.remedy[0].contains("ip link set dev eth0 up"));
        let f = judge(primary, |s| {
            links(s)[1].carrier = false;
            links(s)[1].operstate = "lowerlayerdown".into();
        });
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("no carrier"));
        assert_eq!(
            judge(primary, |s| links(s)[1].operstate = "dormant".into()).status,
            Status::Warn
        );
        let f = judge(primary, |s| metadata(s).mac = "00:16:3e:99:99:99".into());
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("00:16:3e:99:99:99"));
        assert_eq!(
            judge(primary, |s| s.links = Gathered::Failed("EPERM".into())).status,
            Status::Unknown
        );
    }

    /// eth0 as a port of a bridge br0 (index 3, the same MAC, up); `br0_ip` moves the
    /// address to the bridge as a working set-up does.
    fn bridged(br0_ip: bool) -> impl FnOnce(&mut crate::snapshot::Snapshot) {
        move |s| {
            links(s)[1].controller = Some(3);
            links(s).push(Link {
                index: 3,
                name: "br0".into(),
                mac: Some(MAC.into()),
                admin_up: true,
                carrier: true,
                operstate: "up".into(),
                kind: Some("bridge".into()),
                mtu: Some(1500),
                ..Default::default()
            });
            if br0_ip {
                for a in addresses(s).iter_mut().filter(|a| a.ifindex == 2) {
                    a.ifindex = 3;
                }
            }
        }
    }

    #[test]
    fn primary_judges_every_link_attribute() {
        let f = judge(primary, |s| links(s)[1].noarp = true);
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("ARP turned off"), "{}", f.summary);
        assert_eq!(f.remedy[0], "ip link set dev eth0 arp on");
        assert_eq!(f.evidence["problems"][0]["attribute"], "noarp");

        let f = judge(primary, bridged(false));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("enslaved to bridge br0") && f.summary.contains("10.77.0.10"),
            "{}",
            f.summary
        );
        assert!(f.remedy[0].contains("nomaster"));
        // The bridge carries the address: the port is judged (it has the ENI's MAC) and is fine.
        let f = judge(primary, bridged(true));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert!(f.summary.contains("a port of br0"), "{}", f.summary);
        assert_eq!(f.evidence["interface"], "eth0");
        let f = judge(primary, |s| {
            bridged(true)(s);
            links(s)[2].admin_up = false;
        });
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("br0 is down"), "{}", f.summary);

        let qdisc = |kind: &'static str| {
            move |s: &mut crate::snapshot::Snapshot| {
                s.qdiscs = Gathered::Ok(vec![crate::snapshot::Qdisc {
                    ifindex: 2,
                    kind: kind.into(),
                    parent: "root".into(),
                    drops: 7,
                    ..Default::default()
                }])
            }
        };
        let f = judge(primary, qdisc("blackhole"));
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("root qdisc is blackhole") && f.summary.contains("7 so far"));
        assert_eq!(judge(primary, qdisc("noop")).status, Status::Fail);
        assert_eq!(judge(primary, qdisc("fq_codel")).status, Status::Ok);
        // Qdiscs unreadable: the other attributes are still judged, the evidence says so.
        let f = judge(primary, |s| s.qdiscs = Gathered::Failed("EPERM".into()));
        assert_eq!(f.status, Status::Ok);
        assert!(f.evidence["root_qdisc"]
            .as_str()
            .unwrap()
            .contains("unknown"));

        let f = judge(primary, |s| links(s)[1].mtu = Some(1000));
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary.contains("MTU 1000") && f.summary.contains("ping -s 1472"),
            "{}",
            f.summary
        );
        assert!(f.summary.contains("IPv6 is disabled"));
        let f = judge(primary, |s| links(s)[1].mtu = Some(68));
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("default ping"), "{}", f.summary);
        assert_eq!(
            judge(primary, |s| links(s)[1].mtu = Some(9000)).status,
            Status::Ok
        );

        // Several at once: the worst leads, all are in the evidence, each remedy is offered.
        let f = judge(primary, |s| {
            links(s)[1].mtu = Some(1400);
            links(s)[1].noarp = true;
        });
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("ARP") && f.summary.contains("1 more"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["problems"].as_array().unwrap().len(), 2);
        assert!(f.remedy.iter().any(|r| r.contains("mtu 1500")));
    }

    #[test]
    fn gateway_neighbour_names_the_blocking_attribute() {
        use crate::checks::neigh::gateway;
        let f = judge(gateway, |s| links(s)[1].noarp = true);
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("10.77.0.1") && f.summary.contains("ARP turned off"),
            "{}",
            f.summary
        );
        let f = judge(gateway, bridged(false));
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("enslaved"), "{}", f.summary);
        // An MTU or qdisc problem does not stop neighbour resolution.
        assert_eq!(
            judge(gateway, |s| links(s)[1].mtu = Some(1000)).status,
            Status::Ok
        );
    }

    #[test]
    fn primary_without_metadata_is_the_default_route_device() {
        let f = judge(primary, no_metadata);
        assert_eq!(f.status, Status::Ok);
        assert_eq!(f.evidence["chosen_by"], "default route");
        let f = judge(primary, |s| {
            no_metadata(s);
            routes(s).clear();
            addresses(s).retain(|a| a.ifindex == 1);
        });
        assert_eq!(f.status, Status::Unknown);
    }

    fn with_secondary(s: &mut crate::snapshot::Snapshot) {
        metadata(s).interfaces.push(MetadataInterface {
            mac: "00:16:3e:00:00:02".into(),
            eni_id: Some("eni-second".into()),
            primary_ip: Some(v4("10.77.1.10")),
            prefix_len: Some(24),
            ..Default::default()
        });
    }

    #[test]
    fn secondary_paths() {
        assert_eq!(
            judge(secondary, |_| {}).summary,
            "no secondary ENIs are attached"
        );
        let f = judge(secondary, with_secondary);
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("eni-second") && f.summary.contains("no OS interface"),
            "{}",
            f.summary
        );
        let add_link = |s: &mut crate::snapshot::Snapshot, up: bool| {
            with_secondary(s);
            links(s).push(Link {
                index: 3,
                name: "eth1".into(),
                mac: Some("00:16:3E:00:00:02".into()),
                admin_up: up,
                carrier: true,
                operstate: "up".into(),
                ..Default::default()
            });
        };
        assert!(judge(secondary, |s| add_link(s, false))
            .summary
            .contains("administratively down"));
        let f = judge(secondary, |s| add_link(s, true));
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("no IPv4"));
        assert!(f.remedy[0].contains("ip addr add 10.77.1.10/24 dev eth1"));
        let f = judge(secondary, |s| {
            add_link(s, true);
            addresses(s).push(crate::snapshot::Address {
                ifindex: 3,
                address: ip("10.77.1.10"),
                prefix_len: 24,
                scope: "global".into(),
            });
        });
        assert_eq!(f.status, Status::Ok);
        assert_eq!(judge(secondary, no_metadata).status, Status::Skipped);
        assert_eq!(judge(secondary, metadata_failed).status, Status::Unknown);
        assert_eq!(
            judge(secondary, |s| s.links = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn driver_paths() {
        assert_eq!(judge(driver, |_| {}).status, Status::Ok);
        let set = |d: NicDriver| {
            move |s: &mut crate::snapshot::Snapshot| {
                if let Gathered::Ok(m) = &mut s.drivers {
                    m.insert("eth0".into(), d);
                }
            }
        };
        assert_eq!(
            judge(
                driver,
                set(NicDriver {
                    has_device: true,
                    driver: None
                })
            )
            .status,
            Status::Fail
        );
        assert_eq!(
            judge(
                driver,
                set(NicDriver {
                    has_device: true,
                    driver: Some("e1000".into())
                })
            )
            .status,
            Status::Warn
        );
        assert_eq!(
            judge(
                driver,
                set(NicDriver {
                    has_device: false,
                    driver: None
                })
            )
            .status,
            Status::Warn
        );
        assert_eq!(
            judge(driver, |s| s.drivers = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }
}
