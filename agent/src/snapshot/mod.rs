//! The snapshot: every fact the checks judge, as plain serde data. Sources fill it, checks read
//! it, `ecs-diag snapshot` prints it and `check --from` replays it.
//!
//! Each source's result is kept as [`Gathered`]: the facts, or the reason they could not be read,
//! so a failed source turns the checks that need it into `unknown` instead of a silent `ok`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

mod cloud;
mod host;
mod metadata;
mod network;
mod samples;

pub use cloud::*;
pub use host::*;
pub use metadata::*;
pub use network::*;
pub use samples::*;

pub const SNAPSHOT_VERSION: u32 = 1;

/// One source's result: its facts, or why they are missing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Gathered<T> {
    Ok(T),
    Failed(String),
}

impl<T> Gathered<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Gathered<U> {
        match self {
            Gathered::Ok(v) => Gathered::Ok(f(v)),
            Gathered::Failed(e) => Gathered::Failed(e),
        }
    }

    pub fn ok(&self) -> Result<&T, &str> {
        match self {
            Gathered::Ok(v) => Ok(v),
            Gathered::Failed(e) => Err(e),
        }
    }

    /// The facts, dropping the reason they are missing.
    pub fn into_option(self) -> Option<T> {
        match self {
            Gathered::Ok(v) => Some(v),
            Gathered::Failed(_) => None,
        }
    }
}

impl<T: Default> Default for Gathered<T> {
    fn default() -> Self {
        Gathered::Ok(T::default())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Snapshot {
    pub version: u32,
    /// RFC 3339.
    pub taken_at: String,
    /// The client address the route lookups were made for (`--client`), if any.
    pub client: Option<IpAddr>,
    /// The stand-in for "any Internet client" (a documentation address off every local
    /// subnet), decided once when gathering: replies are judged for it without `--client`,
    /// and with one it is "any other source". Absent in older snapshots. Additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stand_in: Option<std::net::Ipv4Addr>,
    pub links: Gathered<Vec<Link>>,
    pub addresses: Gathered<Vec<Address>>,
    pub routes: Gathered<Vec<Route>>,
    pub rules: Gathered<Vec<Rule>>,
    pub neighbours: Gathered<Vec<Neighbour>>,
    /// Kernel route lookups for replies from each local IPv4 address.
    pub reply_lookups: Gathered<Vec<RouteLookup>>,
    /// NIC driver per interface name.
    pub drivers: Gathered<BTreeMap<String, NicDriver>>,
    /// Sysctls by dotted name.
    pub sysctls: Gathered<BTreeMap<String, Sysctl>>,
    pub network_config: Gathered<Vec<InterfaceConfig>>,
    pub icmp: Gathered<IcmpCounters>,
    /// The earlier ICMP sample as snapshots recorded it before `earlier` existed; read as a
    /// fallback when replaying them (the earlier counters are now in `earlier`).
    pub icmp_previous: Option<IcmpCounters>,
    pub dmi: Gathered<Dmi>,
    pub metadata: MetadataState,
    /// The cloud side (security groups, network ACL, route table, public IP, Anti-DDoS),
    /// read through the RAM role. Older snapshots replay as not probed.
    #[serde(default)]
    pub cloud: CloudState,
    /// iptables/ip6tables rulesets, both backends. Snapshots from before it existed replay
    /// as "not gathered", never as an empty (accept-all) firewall.
    #[serde(default = "not_in_snapshot")]
    pub firewall: Gathered<std::sync::Arc<Vec<Ruleset>>>,
    /// Native nftables tables (not those iptables-nft manages); None: nft is not installed.
    #[serde(default = "not_in_snapshot")]
    pub nftables: Gathered<Option<std::sync::Arc<crate::ruleset::nft::NftRuleset>>>,
    /// ipset contents, read when a rule matches on a set; None: no rule does.
    #[serde(default = "not_in_snapshot")]
    pub ipsets: Gathered<Option<std::sync::Arc<Vec<crate::ruleset::ipset::IpSet>>>>,
    /// (family, table, entries, size) of each legacy iptables table: its change signal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_signature: Vec<(String, String, u32, u32)>,
    /// nf_tables ruleset generation id when the firewall was read (changes with any rule).
    #[serde(default)]
    pub nft_genid: Option<u32>,
    /// What could not be read for lack of privilege (each source's checks say unknown): the
    /// CLI prints one line per source instead of the tools' raw errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<Denied>,
    /// Queueing disciplines of every interface.
    #[serde(default = "not_in_snapshot")]
    pub qdiscs: Gathered<Vec<Qdisc>>,
    #[serde(default = "not_in_snapshot")]
    pub softnet: Gathered<Vec<SoftnetCpu>>,
    /// None: connection tracking is not loaded in this namespace.
    #[serde(default = "not_in_snapshot")]
    pub conntrack: Gathered<Option<Conntrack>>,
    /// The distribution (`os-release`), for remedies in its own terms.
    #[serde(default = "not_in_snapshot")]
    pub os: Gathered<OsRelease>,
    /// Listening TCP and unconnected UDP sockets.
    #[serde(default = "not_in_snapshot")]
    pub listeners: Gathered<Vec<Listener>>,
    /// Outbound TCP connections to port 25 waiting for an answer (`local → remote:25
    /// (SYN_SENT)`): a mail sender the platform's block stops. Additive.
    #[serde(default = "no_smtp_attempts")]
    pub smtp_attempts: Gathered<Vec<String>>,
    /// How each `--domain` / `[dns] domains` name resolves in this guest (empty: none asked).
    /// Additive.
    #[serde(default = "no_names_asked")]
    pub dns: Gathered<Vec<Resolution>>,
    /// Milliseconds since the Unix epoch when the counters below were read.
    #[serde(default)]
    pub at_ms: u64,
    /// CPU time counters (`/proc/stat`) and load averages.
    #[serde(default = "not_in_snapshot")]
    pub cpu: Gathered<CpuSample>,
    /// `/proc/meminfo` and `/proc/vmstat`.
    #[serde(default = "not_in_snapshot")]
    pub memory: Gathered<MemorySample>,
    /// Pressure stall information; None: this kernel has none (no `/proc/pressure`).
    #[serde(default = "not_in_snapshot")]
    pub pressure: Gathered<Option<Pressure>>,
    /// Block devices with I/O (`/proc/diskstats`), partitions and idle virtual devices left out.
    #[serde(default = "not_in_snapshot")]
    pub disks: Gathered<Vec<Disk>>,
    /// Processes in uninterruptible sleep (D state).
    #[serde(default = "not_in_snapshot")]
    pub tasks: Gathered<TaskSample>,
    /// The earlier sample rates are computed against (`check --window`, the previous refresh
    /// in `serve`); absent: judge on kernel averages and counters since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier: Option<Box<Sample>>,
}

impl Snapshot {
    /// The stand-in Internet client: as gathered, else (older snapshots) the one the reply
    /// lookups used, else the first documentation address off the local subnets.
    pub fn stand_in(&self) -> std::net::Ipv4Addr {
        if let Some(s) = self.stand_in {
            return s;
        }
        let looked_up = self.client.is_none().then(|| {
            self.reply_lookups
                .ok()
                .ok()
                .and_then(|l| l.iter().find(|l| l.destination.is_ipv4()))
                .map(|l| l.destination)
        });
        match looked_up.flatten() {
            Some(IpAddr::V4(v4)) => v4,
            _ => public_probe(self.addresses.ok().map(Vec::as_slice).unwrap_or_default()),
        }
    }

    /// The address replies are judged for: `--client` (IPv4), else the stand-in.
    pub fn reply_target(&self) -> IpAddr {
        match self.client {
            Some(c @ IpAddr::V4(_)) => c,
            _ => IpAddr::V4(self.stand_in()),
        }
    }

    /// Every source's outcome, by name — the one list that `ecs_diag_source_up` and
    /// `ecs_diag_source_errors_total` are made from; a test holds it to the snapshot's fields,
    /// so a new source cannot be left out.
    pub fn source_results(&self) -> Vec<(&'static str, Result<(), &str>)> {
        fn r<T>(g: &Gathered<T>) -> Result<(), &str> {
            match g {
                Gathered::Ok(_) => Ok(()),
                Gathered::Failed(e) => Err(e.as_str()),
            }
        }
        let metadata = match &self.metadata {
            MetadataState::Failed { reason } => Err(reason.as_str()),
            _ => Ok(()),
        };
        let cloud = match &self.cloud {
            CloudState::Failed { reason } => Err(reason.as_str()),
            _ => Ok(()),
        };
        vec![
            ("links", r(&self.links)),
            ("addresses", r(&self.addresses)),
            ("routes", r(&self.routes)),
            ("rules", r(&self.rules)),
            ("neighbours", r(&self.neighbours)),
            ("reply_lookups", r(&self.reply_lookups)),
            ("drivers", r(&self.drivers)),
            ("sysctls", r(&self.sysctls)),
            ("network_config", r(&self.network_config)),
            ("icmp", r(&self.icmp)),
            ("dmi", r(&self.dmi)),
            ("metadata", metadata),
            ("cloud", cloud),
            ("firewall", r(&self.firewall)),
            ("nftables", r(&self.nftables)),
            ("ipsets", r(&self.ipsets)),
            ("qdiscs", r(&self.qdiscs)),
            ("softnet", r(&self.softnet)),
            ("conntrack", r(&self.conntrack)),
            ("os", r(&self.os)),
            ("listeners", r(&self.listeners)),
            ("smtp_attempts", r(&self.smtp_attempts)),
            ("dns", r(&self.dns)),
            ("cpu", r(&self.cpu)),
            ("memory", r(&self.memory)),
            ("pressure", r(&self.pressure)),
            ("disks", r(&self.disks)),
            ("tasks", r(&self.tasks)),
        ]
    }
}

fn not_in_snapshot<T>() -> Gathered<T> {
    Gathered::Failed("not recorded in this snapshot".to_string())
}

fn no_names_asked() -> Gathered<Vec<Resolution>> {
    Gathered::Ok(Vec::new())
}

/// One name as this guest resolves it (`sources::dns`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resolution {
    /// As given.
    pub name: String,
    /// `files` (/etc/hosts), `dns`, or `none` (nsswitch asks neither).
    pub source: String,
    /// The nameserver that answered (`ip:53`), or the hosts file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// The name asked (after the search list), where it differs or DNS answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<String>,
    /// A and AAAA addresses, in answer order.
    pub addresses: Vec<std::net::IpAddr>,
    /// The smallest TTL of the addresses, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u32>,
    /// The answer code (NOERROR, NXDOMAIN, SERVFAIL, ...), where a nameserver answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// Why nothing answered (timeouts, an unreadable resolv.conf, a name that is not one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn no_smtp_attempts() -> Gathered<Vec<String>> {
    Gathered::Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply target is decided in one place: `--client`, else the recorded stand-in,
    /// else (older snapshots) the stand-in the lookups used.
    #[test]
    fn reply_target_and_stand_in() {
        let mut s = crate::checks::fixture::healthy();
        let looked_up = s.reply_lookups.ok().unwrap()[0].destination;
        assert_eq!(s.reply_target(), looked_up);
        s.stand_in = Some(std::net::Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(s.reply_target(), "203.0.113.1".parse::<IpAddr>().unwrap());
        s.client = Some("198.18.0.2".parse().unwrap());
        assert_eq!(s.reply_target(), "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(s.stand_in(), std::net::Ipv4Addr::new(203, 0, 113, 1));
        // Nothing recorded, nothing looked up: the first documentation address off-link.
        s.stand_in = None;
        s.reply_lookups = Gathered::Failed("x".into());
        assert_eq!(s.stand_in(), PUBLIC_PROBES[0]);
    }
    /// Every field of the snapshot that holds a source's result (`{"ok": ...}` or
    /// `{"failed": ...}` in JSON), and the metadata, is in `source_results`: the metrics and
    /// the docs cannot drift from the sources again.
    #[test]
    fn every_source_is_listed() {
        let s = crate::checks::fixture::healthy();
        let listed: Vec<&str> = s.source_results().iter().map(|(n, _)| *n).collect();
        let json = serde_json::to_value(&s).unwrap();
        let mut sources = vec!["metadata".to_string(), "cloud".to_string()];
        for (key, v) in json.as_object().unwrap() {
            let is_gathered = v.as_object().is_some_and(|o| {
                o.len() == 1 && (o.contains_key("ok") || o.contains_key("failed"))
            });
            if is_gathered && key != "metadata" && key != "cloud" {
                sources.push(key.clone());
            }
        }
        for s in &sources {
            assert!(
                listed.contains(&s.as_str()),
                "source {s} missing from source_results"
            );
        }
        assert_eq!(listed.len(), sources.len(), "{listed:?} vs {sources:?}");
    }
}
