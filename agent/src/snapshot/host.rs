//! Host facts that are not netlink's: sysctls (running and persisted), persisted network
//! configuration, saved firewall rulesets, the distribution and DMI.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::Gathered;

/// A tool or file that refused to be read for lack of privilege.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Denied {
    /// The source it belongs to, as `source_results` names it (`firewall`, `nftables`, ...).
    pub source: String,
    /// The tool or file.
    pub what: String,
    /// The privilege it needs, e.g. `CAP_NET_ADMIN`.
    pub needs: String,
}

impl Denied {
    /// "a and b need X; c needs Y": what needs which privilege, grouped by privilege.
    pub fn describe(denied: &[&Denied]) -> String {
        let mut parts: Vec<(&str, Vec<&str>)> = Vec::new();
        for d in denied {
            match parts.iter_mut().find(|(n, _)| *n == d.needs) {
                Some((_, w)) => {
                    if !w.contains(&d.what.as_str()) {
                        w.push(&d.what)
                    }
                }
                None => parts.push((&d.needs, vec![&d.what])),
            }
        }
        parts
            .iter()
            .map(|(needs, what)| {
                let list = match what.as_slice() {
                    [one] => one.to_string(),
                    [init @ .., last] => format!("{} and {last}", init.join(", ")),
                    [] => String::new(),
                };
                let verb = if what.len() > 1 { "need" } else { "needs" };
                format!("{list} {verb} {needs}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One saved ruleset: which backend and family, read by which tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ruleset {
    /// `nft` or `legacy`.
    pub backend: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub tool: String,
    pub tables: Gathered<Vec<crate::ruleset::iptables::Table>>,
    /// Why the tool was not run, when it was not: the kernel lists no table it could print
    /// (`tables` is then empty by the kernel's word, not by a tool's), or the tables named
    /// were read over nfnetlink instead. Additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_read: Option<String>,
    /// The `nat` table when it was not listed but read over nfnetlink (its rules are never
    /// walked: only whether one rewrites destinations matters). Additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<NatTable>,
}

/// What the rules of a `nat` table read over nfnetlink say.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct NatTable {
    pub rules: usize,
    /// Some rule is a DNAT, REDIRECT or NETMAP.
    pub rewrites_destination: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Sysctl {
    /// The running value, whitespace-normalised; absent when unreadable or not present.
    pub now: Option<String>,
    /// Why `now` is absent.
    pub error: Option<String>,
    /// The kernel has no such parameter (its `/proc/sys` file does not exist): told apart from
    /// one that could not be read. Additive; older snapshots read as false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
    /// The value the sysctl.d / sysctl.conf files would set at boot.
    pub after_reboot: Option<PersistedSysctl>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersistedSysctl {
    pub value: String,
    pub file: String,
    pub line: usize,
}

/// Which tool persisted an interface's configuration.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConfigFormat {
    Ifcfg,
    Netplan,
    Ifupdown,
    NetworkManager,
    Networkd,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AddressingMethod {
    Dhcp,
    Static,
    /// Configured, but neither DHCP nor a static IPv4 address (e.g. `method=disabled`).
    Other,
}

/// One persisted IPv4 configuration of an interface, from one file (netplan: the merged files).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InterfaceConfig {
    pub file: String,
    pub format: ConfigFormat,
    /// Interface name or name pattern the file applies to, if it says.
    pub interface: Option<String>,
    /// MAC address the file applies to, if it says.
    pub mac: Option<String>,
    pub method: AddressingMethod,
    pub addresses: Vec<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// Netplan only: the `network.ethernets` key (a drop-in that adds to this interface must
    /// use it). Netplan files are merged as netplan merges them: `file` names every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netplan_id: Option<String>,
}

/// `ID`, `ID_LIKE` and `PRETTY_NAME` from os-release.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    fn is(&self, names: &[&str]) -> bool {
        names.contains(&self.id.as_str())
            || self.id_like.iter().any(|l| names.contains(&l.as_str()))
    }
    /// Debian, Ubuntu and derivatives.
    pub fn debian_like(&self) -> bool {
        self.is(&["debian", "ubuntu"])
    }
    /// RHEL, CentOS, Fedora, Alibaba Cloud Linux, Anolis and derivatives.
    pub fn rhel_like(&self) -> bool {
        self.is(&[
            "rhel",
            "centos",
            "fedora",
            "alinux",
            "anolis",
            "rocky",
            "almalinux",
        ])
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Dmi {
    pub sys_vendor: Option<String>,
    pub product_name: Option<String>,
}

impl Dmi {
    /// The signal cloud-init's Alibaba data source uses.
    pub fn is_alibaba_ecs(&self) -> bool {
        self.product_name.as_deref() == Some("Alibaba Cloud ECS")
            || self.sys_vendor.as_deref() == Some("Alibaba Cloud")
    }
}
