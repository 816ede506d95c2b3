//! Cloud-side facts read from the OpenAPI through the instance RAM role: the instance's state,
//! its ENIs' security groups with their rules, the vSwitch's network ACL and route table, the
//! EIPs, the Anti-DDoS status of the public IP, Cloud Firewall's policies for it and Security
//! Center's alerts. No secret is ever part of these.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// `normal` groups deny inbound and allow outbound where no rule matches; `enterprise` groups
/// deny both.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecurityGroupKind {
    Normal,
    Enterprise,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    // Drop sorts first: at equal priority it wins.
    Drop,
    Accept,
}

/// One security group rule (`DescribeSecurityGroupAttribute`'s `Permission`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroupRule {
    pub rule_id: Option<String>,
    pub direction: Direction,
    /// `TCP`, `UDP`, `ICMP`, `ICMPV6`, `GRE` or `ALL`, upper case.
    pub protocol: String,
    /// `80/80`, `1/65535`; `-1/-1` for ICMP and ALL.
    pub port_range: String,
    /// The peer: the source of an ingress rule, the destination of an egress rule (IPv4 or
    /// IPv6 CIDR).
    pub peer_cidr: Option<IpNet>,
    /// A peer given as another security group: never an Internet client.
    pub peer_group: Option<String>,
    /// A peer given as a prefix list: its entries are not read, so a match is uncertain.
    pub peer_prefix_list: Option<String>,
    pub policy: Policy,
    /// 1 (first) to 100.
    pub priority: u8,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub kind: SecurityGroupKind,
    pub rules: Vec<SecurityGroupRule>,
}

/// One network ACL entry (`DescribeNetworkAclAttributes`' ingress or egress entries). Entries
/// are evaluated in their listed order; the first match decides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AclEntry {
    pub entry_id: Option<String>,
    pub name: Option<String>,
    pub policy: Policy,
    /// `icmp`, `icmpv6`, `tcp`, `udp`, `gre` or `all`, lower case.
    pub protocol: String,
    /// The peer: the source of an ingress entry, the destination of an egress entry.
    pub peer_cidr: IpNet,
    /// `-1/-1` or `FROM/TO`.
    pub port_range: String,
    /// `custom` or `system` (the default entries the cloud adds).
    pub entry_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkAcl {
    pub id: String,
    pub ingress: Vec<AclEntry>,
    pub egress: Vec<AclEntry>,
}

/// One entry of the vSwitch's route table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudRoute {
    pub destination: IpNet,
    /// `Ipv4Gateway`, `NatGateway`, `Instance`, `HaVip`, `VpnGateway`, `local`, ...
    pub next_hop_type: String,
    pub next_hop_id: Option<String>,
    /// `Available`, `Pending`, ...
    pub status: Option<String>,
}

/// What DescribeInstanceAttribute says about the instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudInstance {
    pub id: String,
    /// `Running`, `Stopped`, `Starting`, `Stopping`, ...
    pub status: String,
    /// `OperationLocks.LockReason[].LockReason`: `financial` (overdue), `security`, ...
    pub locks: Vec<String>,
    pub public_ips: Vec<std::net::Ipv4Addr>,
    pub eip: Option<std::net::Ipv4Addr>,
    pub vswitch_id: Option<String>,
    pub vpc_id: Option<String>,
    pub security_group_ids: Vec<String>,
}

/// One ENI as DescribeNetworkInterfaces tells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudEni {
    pub id: String,
    pub mac: Option<String>,
    pub security_group_ids: Vec<String>,
    pub private_ips: Vec<std::net::Ipv4Addr>,
    /// `AssociatedPublicIp.PublicIpAddress` (an EIP bound to the ENI in NAT mode).
    pub public_ip: Option<std::net::Ipv4Addr>,
}

/// One EIP as DescribeEipAddresses tells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudEip {
    pub allocation_id: String,
    pub ip: std::net::Ipv4Addr,
    /// `InUse`, `Available`, `Associating`, ...
    pub status: String,
    /// The instance or ENI it is bound to.
    pub bound_to: Option<String>,
}

/// Anti-DDoS Origin Basic's word for a public IP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum DdosState {
    Normal,
    /// Blackhole filtering: all traffic to the IP is dropped upstream.
    Blackholed,
    /// Attack traffic is being scrubbed; clean traffic passes.
    Scrubbing,
    /// A word this version does not know, as the API sent it.
    Other(String),
}

/// The Anti-DDoS status of the public IP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Blackhole {
    pub ip: std::net::Ipv4Addr,
    pub status: DdosState,
    /// When the blackhole is lifted (Unix seconds), where the event list says.
    pub ends_at: Option<u64>,
}

/// One Cloud Firewall access-control policy (`DescribeControlPolicy`'s `Policys[]`, direction
/// in). Policies are evaluated by `order` (1 first); the first that matches decides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControlPolicy {
    pub uuid: String,
    pub order: i64,
    /// `accept`, `drop` or `log` (log only records and goes on), lower case.
    pub action: String,
    /// `ANY`, `TCP`, `UDP` or `ICMP`, upper case.
    pub proto: String,
    /// `net` (a CIDR), `group` (an address book: its CIDRs), `location` (a region of the world).
    pub source_type: String,
    pub source: String,
    pub source_cidrs: Vec<String>,
    /// `net`, `group`, `domain` or `location`.
    pub destination_type: String,
    pub destination: String,
    pub destination_cidrs: Vec<String>,
    /// `port` (`80/80`, `0/0`) or `group` (its ports).
    pub dest_port_type: String,
    pub dest_port: String,
    pub dest_port_ports: Vec<String>,
    /// `Release`: whether the policy is enabled.
    pub enabled: bool,
    pub description: Option<String>,
}

/// Cloud Firewall's Internet border for the public IP: whether it protects it
/// (`DescribeAssetList`'s `ProtectStatus`), and if so its inbound policies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudFirewall {
    /// The public IP asked about; None: the instance has none.
    pub ip: Option<std::net::Ipv4Addr>,
    /// `open`, `opening`, `closed`, `closing`; None: Cloud Firewall does not list the IP.
    pub protect_status: Option<String>,
    pub policies: Vec<ControlPolicy>,
    /// More policies exist than were read (the first page of 100 only).
    #[serde(default)]
    pub truncated: bool,
}

/// One Security Center alert for this instance (`DescribeSuspEvents`' `SuspEvents[]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityAlert {
    pub id: Option<i64>,
    /// `AlarmEventNameDisplay` (else `AlarmEventName`).
    pub name: String,
    /// `serious` (urgent), `suspicious` or `remind`.
    pub level: String,
    /// `LastTime`, as the API gives it (`YYYY-MM-DD HH:mm:ss`).
    pub last_time: Option<String>,
    pub instance_id: Option<String>,
    /// `EventStatus`: 1 pending, 32 handled, ... (the request asks for unhandled ones).
    pub status: Option<i64>,
}

/// Whether the cloud side was read, and if not, why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per snapshot
pub enum CloudState {
    /// Not asked: `cloud.mode = "never"`, not on Alibaba Cloud, or no RAM role attached (the
    /// reason says which, and how to attach one).
    NotProbed {
        reason: String,
    },
    Ok(CloudFacts),
    /// Asked, but no credentials could be had (the metadata service failed).
    Failed {
        reason: String,
    },
}

impl Default for CloudState {
    fn default() -> Self {
        CloudState::NotProbed {
            reason: "not recorded in this snapshot".to_string(),
        }
    }
}

impl CloudState {
    pub fn ok(&self) -> Option<&CloudFacts> {
        match self {
            CloudState::Ok(f) => Some(f),
            _ => None,
        }
    }
}

/// Everything read from the cloud API for one diagnosis; each part gathered or why not (an
/// action the RAM policy does not allow is named).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudFacts {
    pub region: String,
    /// Where the keys came from (`RAM role NAME`, `environment`): never the keys.
    pub credentials: String,
    pub instance: super::Gathered<CloudInstance>,
    pub enis: super::Gathered<Vec<CloudEni>>,
    pub security_groups: super::Gathered<Vec<SecurityGroup>>,
    /// None: the vSwitch has no network ACL.
    pub network_acl: super::Gathered<Option<NetworkAcl>>,
    pub routes: super::Gathered<Vec<CloudRoute>>,
    /// The VPC's enabled IPv4 gateway, if any.
    pub ipv4_gateway: super::Gathered<Option<String>>,
    pub eips: super::Gathered<Vec<CloudEip>>,
    /// The public IP's Anti-DDoS status; None: there is no public IP to ask about.
    #[serde(default = "not_gathered")]
    pub blackhole: super::Gathered<Option<Blackhole>>,
    /// The vSwitch's route table (where `routes` came from).
    #[serde(default)]
    pub route_table: Option<String>,
    /// Cloud Firewall in front of the public IP.
    #[serde(default = "not_gathered")]
    pub cloud_firewall: super::Gathered<CloudFirewall>,
    /// Security Center's unhandled serious and suspicious alerts of the last 7 days.
    #[serde(default = "not_gathered")]
    pub security_alerts: super::Gathered<Vec<SecurityAlert>>,
    /// RFC 3339: when these were read (`serve` reuses them for `cloud.cache_s`).
    #[serde(default)]
    pub fetched_at: String,
}

fn not_gathered<T>() -> super::Gathered<T> {
    super::Gathered::Failed("not recorded in this snapshot".to_string())
}
