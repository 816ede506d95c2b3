//! Sources: the only code that touches the OS. `gather` runs them all (metadata concurrently
//! with the rest) and returns a [`Snapshot`]; each source's failure is kept in it as a reason.

pub mod capture;
pub mod cloud;
pub mod dns;
pub mod held_files;
pub mod iptables_nft;
pub mod kfree_skb;
pub mod load;
pub mod metadata;
pub mod netlink;
pub mod netstat;
pub mod network_config;
pub mod nfnetlink;
pub mod nftables;
pub mod nftrace;
pub mod probes;
pub mod rulesets;
pub mod snmp;
pub mod sockets;
pub mod sysctl;
pub mod sysfs;
pub mod tools;

use std::net::IpAddr;

use crate::config::{Config, MetadataMode};
use crate::snapshot::{
    Address, Dmi, Gathered, Link, MetadataState, RouteLookup, Sample, Snapshot, SNAPSHOT_VERSION,
};

pub use crate::snapshot::{
    public_probe, reply_sources, reply_sources_v6, PUBLIC_PROBE6, PUBLIC_PROBES,
};

/// Configuration files (sysctl.d, network configuration, os-release) above this size are not
/// read: a stray log or core file named `*.conf` must not cost the daemon its memory.
pub const MAX_CONFIG_FILE: u64 = 1 << 20;

/// Reads a configuration file of at most [`MAX_CONFIG_FILE`] bytes; a larger one is an error
/// naming it.
pub fn read_config_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_FILE} bytes: not a configuration file"),
        ));
    }
    Ok(text)
}

/// The sysctls every diagnosis reads; per-interface `rp_filter` are added for each link.
pub const SYSCTLS: &[&str] = &[
    "net.ipv4.icmp_echo_ignore_all",
    "net.ipv4.icmp_echo_ignore_broadcasts",
    "net.ipv6.icmp.echo_ignore_all",
    // Tells "IPv6 off" from "a kernel before 4.20 without echo_ignore_all".
    "net.ipv6.conf.all.disable_ipv6",
    "net.ipv4.icmp_ratelimit",
    "net.ipv4.icmp_ratemask",
    "net.ipv4.icmp_msgs_per_sec",
    "net.ipv4.icmp_msgs_burst",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
];

#[derive(Debug, Clone, Default)]
pub struct GatherOptions {
    /// `--client`: route lookups and verdicts for this source address.
    pub client: Option<IpAddr>,
    /// `serve`: the previous refresh's firewall facts, reused if the ruleset is unchanged.
    pub firewall_cache: Option<rulesets::FirewallFacts>,
    /// `serve`: cloud facts read less than `cloud.cache_s` ago, reused instead of asking again.
    pub cloud: Option<crate::snapshot::CloudState>,
}

/// Whether to ask the metadata service, and if not, why.
pub fn metadata_decision(mode: MetadataMode, dmi: &Gathered<Dmi>) -> Result<(), String> {
    match (mode, dmi) {
        (MetadataMode::Always, _) => Ok(()),
        (MetadataMode::Never, _) => Err("metadata.mode = \"never\" in the config".to_string()),
        (MetadataMode::Auto, Gathered::Ok(d)) if d.is_alibaba_ecs() => Ok(()),
        (MetadataMode::Auto, Gathered::Ok(d)) => Err(format!(
            "DMI does not say Alibaba Cloud ECS (product_name {:?}, sys_vendor {:?}); set metadata.mode = \"always\" to ask anyway",
            d.product_name.as_deref().unwrap_or("absent"),
            d.sys_vendor.as_deref().unwrap_or("absent")
        )),
        (MetadataMode::Auto, Gathered::Failed(e)) => {
            Err(format!("cannot tell whether this is an ECS instance: {e}"))
        }
    }
}

/// Gathers every fact. Never fails as a whole: failed sources are recorded in the snapshot.
pub fn gather(config: &Config, options: &GatherOptions) -> Snapshot {
    let dmi = sysfs::dmi(&config.paths.sys);
    let decision = metadata_decision(config.metadata.mode, &dmi);
    let scan = SharedScan::new();
    std::thread::scope(|scope| {
        // The cloud side needs the metadata's region and ids: asked right after it, while
        // the local sources are read.
        let read_metadata = || {
            let md = match decision.clone() {
                Err(reason) => MetadataState::NotProbed { reason },
                Ok(()) => match metadata::MetadataClient::new(&config.metadata).read() {
                    Ok(m) => MetadataState::Ok(m),
                    Err(e) => MetadataState::Failed {
                        reason: e.to_string(),
                    },
                },
            };
            let cloud = match &options.cloud {
                Some(reused) => reused.clone(),
                None => cloud::read(config, &md, metadata_decision(MetadataMode::Auto, &dmi)),
            };
            (md, cloud)
        };
        // Not to be asked: nothing waits on the network (the cloud side needs the metadata),
        // so no thread.
        let metadata = decision.is_ok().then(|| scope.spawn(read_metadata));
        // Names resolve (bounded by [dns] budget_ms) while everything else is read; with no
        // name to resolve, no thread.
        let dns = (!config.dns.domains.is_empty())
            .then(|| scope.spawn(|| dns::resolve_all(&config.paths, &config.dns)));
        // The firewall tools are separate processes: run them while netlink is read.
        let firewall = scope.spawn(|| {
            let facts = rulesets::read_all(&config.paths.proc, options.firewall_cache.as_ref());
            help_scan(&scan);
            facts
        });
        let mut snapshot = gather_local(config, options, &scan);
        snapshot.dmi = dmi.clone();
        let facts = firewall.join().unwrap_or_else(|_| {
            let why = "the firewall reader panicked";
            rulesets::FirewallFacts {
                legacy_signature: Vec::new(),
                ipsets: Gathered::Failed(why.to_string()),
                firewall: Gathered::Failed(why.to_string()),
                nftables: Gathered::Failed(why.to_string()),
                genid: None,
                denied: Vec::new(),
            }
        });
        snapshot.firewall = facts.firewall;
        snapshot.ipsets = facts.ipsets;
        snapshot.nftables = facts.nftables;
        snapshot.nft_genid = facts.genid;
        snapshot.denied = facts.denied;
        snapshot.legacy_signature = facts.legacy_signature;
        // Every helper has returned: the firewall thread and the local ones are joined.
        snapshot.tasks = match scan.get() {
            Some(Ok(s)) => Gathered::Ok(s.finish()),
            Some(Err(e)) => Gathered::Failed(e.clone()),
            None => Gathered::Failed("the load reader panicked".to_string()),
        };
        if let Some(dns) = dns {
            snapshot.dns = dns
                .join()
                .unwrap_or_else(|_| Gathered::Failed("the DNS resolver panicked".to_string()));
        }
        (snapshot.metadata, snapshot.cloud) = match metadata {
            None => read_metadata(),
            Some(asked) => asked.join().unwrap_or_else(|_| {
                let reason = "the metadata reader panicked".to_string();
                (
                    MetadataState::Failed {
                        reason: reason.clone(),
                    },
                    crate::snapshot::CloudState::Failed { reason },
                )
            }),
        };
        snapshot
    })
}

/// The reading of every process (`load::TaskScan`), set up by the host thread once memory
/// says whether swap is worth reading, and helped by every thread that finishes its own
/// sources first.
type SharedScan = std::sync::OnceLock<Result<load::TaskScan, String>>;

/// Takes processes from the scan, if it has been set up, until none is left.
fn help_scan(scan: &SharedScan) {
    if let Some(Ok(s)) = scan.get() {
        s.help();
    }
}

/// The host's load and kernel counters, read from /proc files (every process: `SharedScan`).
struct HostFacts {
    cpu: Gathered<crate::snapshot::CpuSample>,
    memory: Gathered<crate::snapshot::MemorySample>,
    pressure: Gathered<Option<crate::snapshot::Pressure>>,
    disks: Gathered<Vec<crate::snapshot::Disk>>,
    softnet: Gathered<Vec<crate::snapshot::SoftnetCpu>>,
    conntrack: Gathered<Option<crate::snapshot::Conntrack>>,
    icmp: Gathered<crate::snapshot::IcmpCounters>,
}

impl HostFacts {
    /// Reads the counters and sets up `scan` (reading no process).
    fn read(proc: &std::path::Path, scan: &SharedScan) -> HostFacts {
        let memory = load::memory(proc);
        let _ = scan.set(load::TaskScan::new(
            proc,
            load::own_process(proc),
            swap_in_use(&memory),
        ));
        HostFacts {
            cpu: load::cpu(proc),
            memory,
            pressure: load::pressure(proc),
            disks: load::disks(proc),
            softnet: netstat::softnet(proc),
            conntrack: netstat::conntrack(proc),
            icmp: snmp::icmp(proc),
        }
    }

    fn failed(why: &str) -> HostFacts {
        let f = || why.to_string();
        HostFacts {
            cpu: Gathered::Failed(f()),
            memory: Gathered::Failed(f()),
            pressure: Gathered::Failed(f()),
            disks: Gathered::Failed(f()),
            softnet: Gathered::Failed(f()),
            conntrack: Gathered::Failed(f()),
            icmp: Gathered::Failed(f()),
        }
    }
}

/// The local sources; every process (`scan`) is left to `gather` to finish.
fn gather_local(config: &Config, options: &GatherOptions, scan: &SharedScan) -> Snapshot {
    let proc = &config.paths.proc;
    std::thread::scope(|scope| {
        // The host's load is read on another core while netlink is asked; every process
        // (`scan`, the longest single source: a millisecond per hundred) is then shared by
        // whichever thread is done with its own sources.
        let host = scope.spawn(|| {
            let facts = HostFacts::read(proc, scan);
            help_scan(scan);
            facts
        });
        let network = gather_network(config, options);
        help_scan(scan);
        let host = host
            .join()
            .unwrap_or_else(|_| HostFacts::failed("the load reader panicked"));
        Snapshot {
            cpu: host.cpu,
            memory: host.memory,
            pressure: host.pressure,
            disks: host.disks,
            softnet: host.softnet,
            conntrack: host.conntrack,
            icmp: host.icmp,
            ..network
        }
    })
}

/// Everything `gather_local` reads but the host's load: links, addresses, routes, rules,
/// neighbours and qdiscs over netlink, drivers, sysctls, network configuration, sockets.
fn gather_network(config: &Config, options: &GatherOptions) -> Snapshot {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let ((links, addresses, routes, rules, neighbours, reply_lookups, stand_in), qdiscs) =
        match runtime {
            Err(e) => {
                let why = format!("cannot start the netlink runtime: {e}");
                (all_failed(why.clone()), Gathered::Failed(why))
            }
            Ok(rt) => rt.block_on(async {
                // One socket for every dump (one at a time: the kernel answers EBUSY to a
                // second dump on the same socket).
                match netlink::Netlink::connect() {
                    Ok(nl) => {
                        let facts = gather_netlink(&nl, options).await;
                        (facts, nl.qdiscs().await)
                    }
                    Err(e) => (all_failed(e.clone()), Gathered::Failed(e)),
                }
            }),
        };

    let link_names: Vec<&str> = links
        .ok()
        .map(|v| v.iter().map(|l| l.name.as_str()).collect())
        .unwrap_or_default();
    let mut sysctl_names: Vec<String> = SYSCTLS.iter().map(|s| s.to_string()).collect();
    sysctl_names.extend(
        link_names
            .iter()
            .filter(|n| !n.contains('.') && !n.contains('/'))
            .map(|n| format!("net.ipv4.conf.{n}.rp_filter")),
    );

    let listeners = sockets::read(&config.paths.proc);
    // Read on the other thread (`HostFacts`), filled in by `gather_local`.
    fn not_here<T>() -> Gathered<T> {
        Gathered::Failed("not gathered".to_string())
    }
    Snapshot {
        version: SNAPSHOT_VERSION,
        taken_at: crate::now_rfc3339(),
        client: options.client,
        stand_in,
        drivers: sysfs::drivers(&config.paths.sys, link_names.iter().copied()),
        sysctls: sysctl::sysctls(&config.paths, &sysctl_names),
        network_config: network_config::read(&config.paths.etc),
        icmp: not_here(),
        icmp_previous: None,
        // The running kernel's own sockets only (a fixture root has none to ask).
        smtp_attempts: if config.paths.proc == std::path::Path::new("/proc") {
            sockets::smtp_attempts(&config.paths.proc, &listeners)
        } else {
            Gathered::Ok(Vec::new())
        },
        listeners,
        qdiscs,
        // Filled in by `gather`, which resolves concurrently.
        dns: Gathered::Ok(Vec::new()),
        softnet: not_here(),
        conntrack: not_here(),
        os: sysfs::os_release(&config.paths),
        // Filled in by `gather`, which reads the firewall concurrently.
        firewall: Gathered::Failed("not gathered".to_string()),
        nftables: Gathered::Failed("not gathered".to_string()),
        nft_genid: None,
        denied: Vec::new(),
        legacy_signature: Vec::new(),
        ipsets: Gathered::Failed("not gathered".to_string()),
        links,
        addresses,
        routes,
        rules,
        neighbours,
        reply_lookups,
        dmi: Gathered::Failed("not gathered".to_string()),
        metadata: MetadataState::default(),
        cloud: Default::default(),
        at_ms: crate::unix_ms(),
        cpu: not_here(),
        // Filled in by `gather`, once every thread that helps read the processes is done.
        tasks: not_here(),
        memory: not_here(),
        pressure: not_here(),
        disks: not_here(),
        earlier: None,
    }
}

/// Whether any swap is in use: only then is each process's `VmSwap` worth reading.
fn swap_in_use(memory: &Gathered<crate::snapshot::MemorySample>) -> bool {
    memory.ok().is_ok_and(|m| m.swap_total_kb > m.swap_free_kb)
}

/// One sample of every counter rates are computed from (load, links, qdiscs, softnet, ICMP):
/// taken before `check --window` sleeps and on each tick of `watch`. Sources that fail are
/// left out; the checks then judge without a rate.
pub fn sample(config: &Config) -> Sample {
    let proc = &config.paths.proc;
    let (links, qdiscs) = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async {
            match netlink::Netlink::connect() {
                Ok(nl) => (
                    nl.links().await.into_option(),
                    nl.qdiscs().await.into_option(),
                ),
                Err(_) => (None, None),
            }
        }),
        Err(_) => (None, None),
    };
    let memory = load::memory(proc);
    Sample {
        at_ms: crate::unix_ms(),
        cpu: load::cpu(proc).into_option(),
        tasks: load::tasks(proc, swap_in_use(&memory)).into_option(),
        memory: memory.into_option(),
        disks: load::disks(proc).into_option(),
        links,
        qdiscs,
        softnet: netstat::softnet(proc).into_option(),
        conntrack: netstat::conntrack(proc).into_option().flatten(),
        icmp: snmp::icmp(proc).into_option(),
    }
}

type NetlinkFacts = (
    Gathered<Vec<Link>>,
    Gathered<Vec<Address>>,
    Gathered<Vec<crate::snapshot::Route>>,
    Gathered<Vec<crate::snapshot::Rule>>,
    Gathered<Vec<crate::snapshot::Neighbour>>,
    Gathered<Vec<RouteLookup>>,
    // The stand-in Internet client, decided from the addresses (recorded in the snapshot).
    Option<std::net::Ipv4Addr>,
);

fn all_failed(e: String) -> NetlinkFacts {
    (
        Gathered::Failed(e.clone()),
        Gathered::Failed(e.clone()),
        Gathered::Failed(e.clone()),
        Gathered::Failed(e.clone()),
        Gathered::Failed(e.clone()),
        Gathered::Failed(e),
        None,
    )
}

async fn gather_netlink(nl: &netlink::Netlink, options: &GatherOptions) -> NetlinkFacts {
    let links = nl.links().await;
    let addresses = nl.addresses().await;
    let routes = nl.routes().await;
    let rules = nl.rules().await;
    let neighbours = nl.neighbours().await;
    let stand_in = addresses.ok().ok().map(|a| public_probe(a));
    let reply_lookups = match (&links, &addresses, stand_in) {
        (Gathered::Ok(links), Gathered::Ok(addrs), Some(stand_in)) => {
            let target = match options.client {
                Some(IpAddr::V4(c)) => c,
                _ => stand_in,
            };
            let target6 = match options.client {
                Some(IpAddr::V6(c)) => c,
                _ => PUBLIC_PROBE6,
            };
            let mut out = Vec::new();
            let mut failure = None;
            let pairs = reply_sources(links, addrs)
                .into_iter()
                .map(|a| (IpAddr::V4(target), a))
                .chain(
                    reply_sources_v6(links, addrs)
                        .into_iter()
                        .map(|a| (IpAddr::V6(target6), a)),
                );
            for (target, a) in pairs {
                match nl.lookup(target, a.address, a.ifindex).await {
                    Ok(l) => out.push(l),
                    Err(e) => failure = Some(e),
                }
            }
            match failure {
                Some(e) => Gathered::Failed(e),
                None => Gathered::Ok(out),
            }
        }
        _ => Gathered::Failed("no links or addresses to look up routes from".to_string()),
    };
    (
        links,
        addresses,
        routes,
        rules,
        neighbours,
        reply_lookups,
        stand_in,
    )
}

/// Gathers a snapshot; with a window, the ICMP counters are sampled before and after it.
pub fn take_snapshot(
    config: &Config,
    client: Option<IpAddr>,
    window: Option<std::time::Duration>,
) -> Snapshot {
    let first = window.map(|w| {
        let s = sample(config);
        std::thread::sleep(w);
        s
    });
    let mut snapshot = gather(
        config,
        &GatherOptions {
            client,
            ..Default::default()
        },
    );
    if let Some(first) = first {
        snapshot.earlier = Some(Box::new(first));
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_config_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.conf");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_FILE as usize + 1]).unwrap();
        let e = read_config_file(&big).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        let ok = dir.path().join("ok.conf");
        std::fs::write(&ok, "a = 1\n").unwrap();
        assert_eq!(read_config_file(&ok).unwrap(), "a = 1\n");
    }

    #[test]
    fn public_probe_avoids_local_subnets() {
        let a = |s: &str, p| Address {
            ifindex: 2,
            address: s.parse().unwrap(),
            prefix_len: p,
            scope: "global".into(),
        };
        assert_eq!(public_probe(&[a("10.0.0.5", 24)]), PUBLIC_PROBES[0]);
        assert_eq!(public_probe(&[a("192.0.2.2", 24)]), PUBLIC_PROBES[1]);
        assert_eq!(
            public_probe(&[a("192.0.2.2", 24), a("198.51.100.9", 24)]),
            PUBLIC_PROBES[2]
        );
    }

    #[test]
    fn metadata_is_only_probed_where_allowed() {
        let ecs = Gathered::Ok(Dmi {
            sys_vendor: Some("Alibaba Cloud".into()),
            product_name: Some("Alibaba Cloud ECS".into()),
        });
        let other = Gathered::Ok(Dmi {
            sys_vendor: Some("QEMU".into()),
            product_name: Some("Standard PC".into()),
        });
        assert!(metadata_decision(MetadataMode::Auto, &ecs).is_ok());
        let why = metadata_decision(MetadataMode::Auto, &other).unwrap_err();
        assert!(why.contains("Standard PC"), "{why}");
        assert!(metadata_decision(MetadataMode::Always, &other).is_ok());
        assert!(metadata_decision(MetadataMode::Never, &ecs).is_err());
        assert!(metadata_decision(MetadataMode::Auto, &Gathered::Failed("x".into())).is_err());
    }
}
