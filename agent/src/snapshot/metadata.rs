//! What the instance metadata service said the cloud assigned, or why it was not asked.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// What the instance metadata service said, or why it was not asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
// One per snapshot, and almost always `Ok`: boxing it would save nothing worth the churn.
#[allow(clippy::large_enum_variant)]
pub enum MetadataState {
    /// Not asked: `mode = "never"`, or `auto` on a machine DMI does not call Alibaba Cloud ECS.
    NotProbed {
        reason: String,
    },
    Ok(InstanceMetadata),
    Failed {
        reason: String,
    },
}

impl Default for MetadataState {
    fn default() -> Self {
        MetadataState::NotProbed {
            reason: "not gathered".to_string(),
        }
    }
}

impl MetadataState {
    pub fn ok(&self) -> Option<&InstanceMetadata> {
        match self {
            MetadataState::Ok(m) => Some(m),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct InstanceMetadata {
    /// The token (hardened) mode answered; false: plain requests were used.
    pub hardened: bool,
    pub instance_id: Option<String>,
    pub region_id: Option<String>,
    pub zone_id: Option<String>,
    pub instance_type: Option<String>,
    /// The primary ENI's MAC, lower-case.
    pub mac: String,
    pub private_ipv4: Option<Ipv4Addr>,
    pub eipv4: Option<Ipv4Addr>,
    pub public_ipv4: Option<Ipv4Addr>,
    pub vpc_cidr: Option<Ipv4Net>,
    pub vswitch_cidr: Option<Ipv4Net>,
    pub interfaces: Vec<MetadataInterface>,
    /// `instance/max-netbw-egress`: the instance type's outbound bandwidth, Kbit/s.
    #[serde(default)]
    pub max_netbw_egress_kbps: Option<u64>,
    /// `instance/max-netbw-ingress`, where published.
    #[serde(default)]
    pub max_netbw_ingress_kbps: Option<u64>,
    /// `vpc-id` and `vswitch-id`: where the cloud-side facts are read.
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub vswitch_id: Option<String>,
}

impl InstanceMetadata {
    pub fn primary(&self) -> Option<&MetadataInterface> {
        self.interfaces
            .iter()
            .find(|i| i.mac.eq_ignore_ascii_case(&self.mac))
    }
}

/// One ENI as the cloud assigned it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MetadataInterface {
    pub mac: String,
    pub eni_id: Option<String>,
    pub primary_ip: Option<Ipv4Addr>,
    pub prefix_len: Option<u8>,
    /// `netmask`, or `vswitch-cidr-block` where the netmask is not published.
    pub prefix_from: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// Every private IPv4 of the ENI, primary included.
    pub private_ipv4s: Vec<Ipv4Addr>,
    pub vswitch_cidr: Option<Ipv4Net>,
    pub vpc_cidr: Option<Ipv4Net>,
    /// `ipv6s`: the ENI's IPv6 addresses (empty where IPv6 is not enabled).
    #[serde(default)]
    pub ipv6s: Vec<Ipv6Addr>,
    /// `ipv6-gateway`: the vSwitch's IPv6 gateway.
    #[serde(default)]
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// `vswitch-ipv6-cidr-block`.
    #[serde(default)]
    pub vswitch_ipv6_cidr: Option<Ipv6Net>,
}
