//! `link.primary`, `link.secondary`, `link.driver`: is each ENI present in the OS, up, with a
//! carrier and the right driver? Evidence: netlink link flags and operstate, metadata MACs,
//! the sysfs driver binding.

use serde_json::json;

use super::{assigned_values, ipv4_on, link_with_mac, no_primary, primary_interface};
use crate::checks::{Cause, Check};
use crate::report::Finding;
use crate::snapshot::{Link, Snapshot};

pub const PRIMARY: &str = "link.primary";
pub const SECONDARY: &str = "link.secondary";
pub const DRIVER: &str = "link.driver";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: PRIMARY,
        decides: "the primary interface can exchange packets: administratively up, with a carrier, operationally up",
        evidence: &["netlink link flags (IFF_UP, IFF_LOWER_UP) and operstate", "the primary ENI's MAC from the instance metadata, else the default route's interface"],
        causes: &[
            Cause { cause: "the interface is administratively down", remedy: "ip link set dev IF up; make it persistent (ONBOOT=yes, auto IF, netplan)" },
            Cause { cause: "no carrier: the ENI is detached or its driver is not bound", remedy: "ECS console → instance → ENIs; see link.driver" },
            Cause { cause: "no interface has the primary ENI's MAC", remedy: "check the ENI is attached and the driver loaded (see link.driver)" },
        ],
        judge: |s, _| primary(s).judges(super::primary_link(s)),
    },
    Check {
        id: SECONDARY,
        decides: "every ENI the cloud attached has an OS interface that is up and addressed",
        evidence: &["metadata MACs of every attached ENI", "netlink links and their IPv4 addresses"],
        causes: &[
            Cause { cause: "a secondary ENI has no OS interface", remedy: "check its driver and udev naming (see link.driver)" },
            Cause { cause: "a secondary ENI's interface is down or has no address", remedy: "ip link set dev IF up; dhclient IF (or ip addr add IP/PREFIX dev IF)" },
        ],
        judge: |s, _| secondary(s),
    },
    Check {
        id: DRIVER,
        decides: "each NIC is bound to a driver, and a known virtio/ENI driver",
        evidence: &["the sysfs driver binding of each interface's device (/sys/class/net/IF/device/driver)"],
        causes: &[
            Cause { cause: "a NIC has no driver bound", remedy: "modprobe virtio_net" },
            Cause { cause: "a NIC is bound to an unexpected driver", remedy: "check the image's kernel supports the instance type's NIC" },
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
    })
}

fn bring_up(name: &str) -> Vec<String> {
    vec![
        format!("ip link set dev {name} up"),
        format!("make it persistent: set ONBOOT=yes in /etc/sysconfig/network-scripts/ifcfg-{name} (RHEL/Alibaba Cloud Linux), `auto {name}` in /etc/network/interfaces (Debian), or check /etc/netplan (Ubuntu)"),
    ]
}

/// Why a link cannot carry traffic, if it cannot: (summary, remedy).
fn link_problem(l: &Link) -> Option<(String, Vec<String>)> {
    if !l.admin_up {
        return Some((
            format!("{} is administratively down", l.name),
            bring_up(&l.name),
        ));
    }
    if !l.carrier {
        return Some((
            format!("{} is up but has no carrier (operstate {}): the ENI is detached or its backend is down", l.name, l.operstate),
            vec![
                format!("ip link show dev {}", l.name),
                "in the ECS console, check the ENI is attached to this instance and the instance is Running; restart the instance if the ENI stays without carrier".to_string(),
            ],
        ));
    }
    None
}

pub fn primary(s: &Snapshot) -> Finding {
    let p = match primary_interface(s) {
        Ok(p) => p,
        Err(super::NoPrimary::MacMissing(mac)) => {
            return Finding::fail(PRIMARY, format!("no interface has the primary ENI's MAC {mac}: the ENI is not visible to the OS"))
                .evidence(json!({"metadata_mac": mac, "interfaces": s.links.ok().ok().map(|ls| ls.iter().map(|l| json!({"name": l.name, "mac": l.mac})).collect::<Vec<_>>())}))
                .remedy(["ip -br link", "check the NIC driver is loaded: lsmod | grep virtio_net; modprobe virtio_net", "in the ECS console, check the primary ENI and restart the instance"]);
        }
        Err(e) => return no_primary(PRIMARY, e),
    };
    let l = p.link;
    let mut evidence = link_evidence(l);
    evidence["chosen_by"] = json!(p.chosen_by);
    if let Some((summary, remedy)) = link_problem(l) {
        return Finding::fail(PRIMARY, summary)
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
        .evidence(evidence)
        .remedy([format!("ip link show dev {}", l.name)]);
    }
    Finding::ok(
        PRIMARY,
        format!("primary interface {} is up with a carrier", l.name),
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
        if let Some((summary, steps)) = link_problem(l) {
            problems.push(
                json!({"eni": eni_name, "mac": eni.mac, "interface": l.name, "problem": summary}),
            );
            remedy.extend(steps);
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
        return Finding::fail(
            SECONDARY,
            format!("{n} secondary ENI(s) not working: {who}: {first}"),
        )
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
            .evidence(evidence)
            .remedy([format!("ethtool -i {name}"), "check this is the ENI and not a virtual or third-party interface".to_string()]),
        (None, true) => Finding::fail(DRIVER, format!("{name} has a device but no driver is bound to it"))
            .evidence(evidence)
            .remedy(["modprobe virtio_net".to_string(), "dmesg | grep -i -e virtio -e eth".to_string(), "if the module is missing, reinstall the kernel's modules package and rebuild the initramfs (dracut -f / update-initramfs -u)".to_string()]),
        (None, false) => Finding::warn(DRIVER, format!("{name} is a virtual interface (no NIC device behind it)"))
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
