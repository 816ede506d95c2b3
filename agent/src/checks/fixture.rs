//! A healthy snapshot to start unit tests from: the same shape as the fault matrix's guest
//! (eth0 00:16:3e:00:00:01, 10.77.0.10/24 and secondary .11, gateway 10.77.0.1).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::snapshot::*;

pub const MAC: &str = "00:16:3e:00:00:01";
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn route(dst: &str, gw: Option<&str>, oif: u32, kind: &str) -> Route {
    Route {
        table: TABLE_MAIN,
        kind: kind.into(),
        destination: dst.parse().unwrap(),
        gateway: gw.map(ip),
        oif: Some(oif),
        prefsrc: None,
        metric: None,
        protocol: "static".into(),
        linkdown: false,
        nexthops: vec![],
    }
}

pub fn lookup(src: &str, oif: u32, kind: &str) -> RouteLookup {
    RouteLookup {
        destination: ip("192.0.2.1"),
        source: ip(src),
        source_ifindex: 2,
        outcome: LookupOutcome::Route {
            kind: kind.into(),
            table: Some(TABLE_MAIN),
            oif: Some(oif),
            gateway: Some(ip("10.77.0.1")),
            prefsrc: None,
        },
    }
}

pub fn sysctl(now: &str) -> Sysctl {
    Sysctl {
        now: Some(now.into()),
        error: None,
        after_reboot: None,
        absent: false,
    }
}

pub fn healthy() -> Snapshot {
    let links = vec![
        Link {
            index: 1,
            name: "lo".into(),
            admin_up: true,
            carrier: true,
            loopback: true,
            operstate: "unknown".into(),
            ..Default::default()
        },
        Link {
            index: 2,
            name: "eth0".into(),
            mac: Some(MAC.into()),
            mtu: Some(1500),
            admin_up: true,
            carrier: true,
            operstate: "up".into(),
            ..Default::default()
        },
    ];
    let addresses = vec![
        Address {
            ifindex: 1,
            address: ip("127.0.0.1"),
            prefix_len: 8,
            scope: "host".into(),
        },
        Address {
            ifindex: 2,
            address: ip("10.77.0.10"),
            prefix_len: 24,
            scope: "global".into(),
        },
        Address {
            ifindex: 2,
            address: ip("10.77.0.11"),
            prefix_len: 24,
            scope: "global".into(),
        },
    ];
    let routes = vec![
        route("0.0.0.0/0", Some("10.77.0.1"), 2, "unicast"),
        route("10.77.0.0/24", None, 2, "unicast"),
    ];
    let mut sysctls = BTreeMap::new();
    for (k, v) in [
        ("net.ipv4.icmp_echo_ignore_all", "0"),
        ("net.ipv6.icmp.echo_ignore_all", "0"),
        ("net.ipv4.icmp_ratelimit", "1000"),
        ("net.ipv4.icmp_ratemask", "6168"),
        ("net.ipv4.icmp_msgs_per_sec", "1000"),
        ("net.ipv4.icmp_msgs_burst", "50"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.eth0.rp_filter", "1"),
        ("net.ipv4.conf.lo.rp_filter", "0"),
    ] {
        sysctls.insert(k.to_string(), sysctl(v));
    }
    let mut drivers = BTreeMap::new();
    drivers.insert(
        "eth0".into(),
        NicDriver {
            has_device: true,
            driver: Some("virtio_net".into()),
        },
    );
    drivers.insert("lo".into(), NicDriver::default());
    Snapshot {
        version: SNAPSHOT_VERSION,
        taken_at: "2026-01-01T00:00:00Z".into(),
        client: None,
        // As in snapshots taken before it was recorded: decided from the reply lookups.
        stand_in: None,
        links: Gathered::Ok(links),
        addresses: Gathered::Ok(addresses),
        routes: Gathered::Ok(routes),
        rules: Gathered::Ok(vec![]),
        neighbours: Gathered::Ok(vec![Neighbour {
            ifindex: 2,
            address: ip("10.77.0.1"),
            mac: Some("02:00:00:00:00:01".into()),
            state: NeighbourState::Reachable,
        }]),
        reply_lookups: Gathered::Ok(vec![
            lookup("10.77.0.10", 2, "unicast"),
            lookup("10.77.0.11", 2, "unicast"),
        ]),
        drivers: Gathered::Ok(drivers),
        sysctls: Gathered::Ok(sysctls),
        network_config: Gathered::Ok(vec![InterfaceConfig {
            file: "/etc/sysconfig/network-scripts/ifcfg-eth0".into(),
            format: ConfigFormat::Ifcfg,
            interface: Some("eth0".into()),
            mac: None,
            method: AddressingMethod::Dhcp,
            addresses: vec![],
            gateway: None,
            netplan_id: None,
        }]),
        icmp: Gathered::Ok(IcmpCounters {
            at_ms: 10_000,
            in_msgs: 5,
            in_echos: 5,
            out_echo_reps: 5,
            ..Default::default()
        }),
        icmp_previous: None,
        firewall: Gathered::Ok(std::sync::Arc::new(vec![])),
        nftables: Gathered::Ok(None),
        listeners: Gathered::Ok(vec![]),
        smtp_attempts: Gathered::Ok(vec![]),
        dns: Gathered::Ok(Vec::new()),
        qdiscs: Gathered::Ok(vec![]),
        softnet: Gathered::Ok(vec![SoftnetCpu {
            processed: 100,
            dropped: 0,
            time_squeeze: 0,
        }]),
        conntrack: Gathered::Ok(Some(Conntrack {
            count: 10,
            max: 262144,
            ..Default::default()
        })),
        os: Gathered::Ok(OsRelease {
            id: "alinux".into(),
            id_like: vec!["rhel".into()],
            pretty_name: None,
        }),
        nft_genid: None,
        denied: Vec::new(),
        legacy_signature: vec![],
        at_ms: 20_000,
        cpu: Gathered::Ok(CpuSample {
            total: CpuTimes {
                user: 200,
                idle: 1800,
                ..Default::default()
            },
            per_cpu: vec![
                (
                    0,
                    CpuTimes {
                        user: 100,
                        idle: 900,
                        ..Default::default()
                    },
                ),
                (
                    1,
                    CpuTimes {
                        user: 100,
                        idle: 900,
                        ..Default::default()
                    },
                ),
            ],
            loadavg: [0.2, 0.1, 0.05],
        }),
        memory: Gathered::Ok(MemorySample {
            total_kb: 2_000_000,
            available_kb: Some(1_500_000),
            oom_kills: Some(0),
            ..Default::default()
        }),
        pressure: Gathered::Ok(Some(Pressure {
            cpu_some: Some(PressureLine::default()),
            memory_some: Some(PressureLine::default()),
            memory_full: Some(PressureLine::default()),
            io_some: Some(PressureLine::default()),
            io_full: Some(PressureLine::default()),
        })),
        disks: Gathered::Ok(vec![Disk {
            name: "vda".into(),
            reads: 10,
            writes: 10,
            io_ticks_ms: 100,
            in_flight: 0,
        }]),
        tasks: Gathered::Ok(TaskSample {
            processes: 100,
            dstate: vec![],
            ..Default::default()
        }),
        earlier: None,
        ipsets: Gathered::Ok(None),
        dmi: Gathered::Ok(Dmi {
            sys_vendor: Some("Alibaba Cloud".into()),
            product_name: Some("Alibaba Cloud ECS".into()),
        }),
        cloud: CloudState::Ok(healthy_cloud()),
        metadata: MetadataState::Ok(InstanceMetadata {
            hardened: true,
            mac: MAC.into(),
            private_ipv4: Some(v4("10.77.0.10")),
            interfaces: vec![MetadataInterface {
                mac: MAC.into(),
                eni_id: Some("eni-primary".into()),
                primary_ip: Some(v4("10.77.0.10")),
                prefix_len: Some(24),
                prefix_from: Some("netmask".into()),
                gateway: Some(v4("10.77.0.1")),
                private_ipv4s: vec![v4("10.77.0.10"), v4("10.77.0.11")],
                vswitch_cidr: Some("10.77.0.0/24".parse().unwrap()),
                vpc_cidr: Some("10.0.0.0/8".parse().unwrap()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// A security group rule for fixtures: `ingress`/`egress`, protocol, ports, peer CIDR.
pub fn sg_rule(
    id: &str,
    direction: Direction,
    protocol: &str,
    ports: &str,
    peer: &str,
    policy: Policy,
    priority: u8,
) -> SecurityGroupRule {
    SecurityGroupRule {
        rule_id: Some(id.into()),
        direction,
        protocol: protocol.into(),
        port_range: ports.into(),
        peer_cidr: Some(peer.parse().unwrap()),
        peer_group: None,
        peer_prefix_list: None,
        policy,
        priority,
        description: None,
    }
}

pub fn acl_entry(id: &str, policy: Policy, protocol: &str, peer: &str) -> AclEntry {
    AclEntry {
        entry_id: Some(id.into()),
        name: None,
        policy,
        protocol: protocol.into(),
        peer_cidr: peer.parse().unwrap(),
        port_range: "-1/-1".into(),
        entry_type: Some("custom".into()),
    }
}

/// The cloud side of a reachable instance: Running, public IP 203.0.113.10, one normal
/// group accepting ICMP and SSH from anywhere, an ACL accepting everything, the VPC's IPv4
/// gateway carrying 0.0.0.0/0, no blackhole.
pub fn healthy_cloud() -> CloudFacts {
    CloudFacts {
        region: "cn-made-up".into(),
        credentials: "RAM role made-up".into(),
        instance: Gathered::Ok(CloudInstance {
            id: "i-made-up".into(),
            status: "Running".into(),
            locks: vec![],
            public_ips: vec![v4("203.0.113.10")],
            eip: None,
            vswitch_id: Some("vsw-made-up".into()),
            vpc_id: Some("vpc-made-up".into()),
            security_group_ids: vec!["sg-web".into()],
        }),
        enis: Gathered::Ok(vec![CloudEni {
            id: "eni-primary".into(),
            mac: Some(MAC.into()),
            security_group_ids: vec!["sg-web".into()],
            private_ips: vec![v4("10.77.0.10")],
            public_ip: None,
        }]),
        security_groups: Gathered::Ok(vec![SecurityGroup {
            id: "sg-web".into(),
            kind: SecurityGroupKind::Normal,
            rules: vec![
                sg_rule(
                    "sgr-icmp",
                    Direction::Ingress,
                    "ICMP",
                    "-1/-1",
                    "0.0.0.0/0",
                    Policy::Accept,
                    1,
                ),
                sg_rule(
                    "sgr-ssh",
                    Direction::Ingress,
                    "TCP",
                    "22/22",
                    "0.0.0.0/0",
                    Policy::Accept,
                    1,
                ),
            ],
        }]),
        network_acl: Gathered::Ok(Some(NetworkAcl {
            id: "nacl-made-up".into(),
            ingress: vec![acl_entry("nae-in", Policy::Accept, "all", "0.0.0.0/0")],
            egress: vec![acl_entry("nae-out", Policy::Accept, "all", "0.0.0.0/0")],
        })),
        routes: Gathered::Ok(vec![
            CloudRoute {
                destination: "0.0.0.0/0".parse().unwrap(),
                next_hop_type: "Ipv4Gateway".into(),
                next_hop_id: Some("ipv4gw-made-up".into()),
                status: Some("Available".into()),
            },
            CloudRoute {
                destination: "10.77.0.0/24".parse().unwrap(),
                next_hop_type: "local".into(),
                next_hop_id: None,
                status: Some("Available".into()),
            },
        ]),
        ipv4_gateway: Gathered::Ok(Some("ipv4gw-made-up".into())),
        eips: Gathered::Ok(vec![]),
        blackhole: Gathered::Ok(Some(Blackhole {
            ip: v4("203.0.113.10"),
            status: DdosState::Normal,
            ends_at: None,
        })),
        route_table: Some("vtb-made-up".into()),
        cloud_firewall: Gathered::Ok(CloudFirewall {
            ip: Some(v4("203.0.113.10")),
            protect_status: Some("open".into()),
            policies: vec![],
            truncated: false,
        }),
        security_alerts: Gathered::Ok(vec![]),
        fetched_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// The healthy snapshot's cloud facts, to change in a test.
pub fn cloud_mut(s: &mut Snapshot) -> &mut CloudFacts {
    match &mut s.cloud {
        CloudState::Ok(f) => f,
        _ => panic!("the fixture has cloud facts"),
    }
}

/// The healthy snapshot's IPv6, as in the matrix: fd77::10/64 assigned by the cloud on eth0,
/// a default route via the vSwitch IPv6 gateway fd77::1 (reachable), and the kernel's reply
/// route from fd77::10 to the IPv6 stand-in through it.
pub fn with_ipv6(s: &mut Snapshot) {
    if let Gathered::Ok(a) = &mut s.addresses {
        a.push(Address {
            ifindex: 2,
            address: ip("fd77::10"),
            prefix_len: 64,
            scope: "global".into(),
        });
        a.push(Address {
            ifindex: 2,
            address: ip("fe80::216:3eff:fe00:1"),
            prefix_len: 64,
            scope: "link".into(),
        });
    }
    if let Gathered::Ok(r) = &mut s.routes {
        r.push(route("::/0", Some("fd77::1"), 2, "unicast"));
        r.push(route("fd77::/64", None, 2, "unicast"));
    }
    if let Gathered::Ok(n) = &mut s.neighbours {
        n.push(Neighbour {
            ifindex: 2,
            address: ip("fd77::1"),
            mac: Some("02:00:00:00:00:01".into()),
            state: NeighbourState::Reachable,
        });
    }
    if let Gathered::Ok(l) = &mut s.reply_lookups {
        l.push(RouteLookup {
            destination: IpAddr::V6(PUBLIC_PROBE6),
            source: ip("fd77::10"),
            source_ifindex: 2,
            outcome: LookupOutcome::Route {
                kind: "unicast".into(),
                table: Some(TABLE_MAIN),
                oif: Some(2),
                gateway: Some(ip("fd77::1")),
                prefsrc: None,
            },
        });
    }
    if let MetadataState::Ok(m) = &mut s.metadata {
        let eni = &mut m.interfaces[0];
        eni.ipv6s = vec!["fd77::10".parse().unwrap()];
        eni.ipv6_gateway = Some("fd77::1".parse().unwrap());
        eni.vswitch_ipv6_cidr = Some("fd77::/64".parse().unwrap());
    }
}

/// The IPv6 default route [`with_ipv6`] added.
pub fn ipv6_default(s: &mut Snapshot) -> &mut Route {
    routes(s)
        .iter_mut()
        .find(|r| r.is_default() && r.destination.addr().is_ipv6())
        .unwrap()
}

/// Removes every IPv6 default route.
pub fn remove_ipv6_default(s: &mut Snapshot) {
    routes(s).retain(|r| !(r.is_default() && r.destination.addr().is_ipv6()));
}

/// Runs a check on a snapshot changed by `edit`.
pub fn judge(
    check: fn(&Snapshot) -> crate::report::Finding,
    edit: impl FnOnce(&mut Snapshot),
) -> crate::report::Finding {
    let mut s = healthy();
    edit(&mut s);
    check(&s)
}

/// The criteria the fixtures are judged by: default thresholds, a 1,000 Mbit/s limit.
pub fn criteria() -> crate::checks::Criteria {
    crate::checks::Criteria {
        thresholds: crate::config::Thresholds::default(),
        limits: crate::config::Limits {
            bandwidth_mbps: Some(1000.0),
        },
    }
}

/// Runs a check that judges against criteria on a snapshot changed by `edit`.
pub fn judge_by(
    check: fn(&Snapshot, &crate::checks::Criteria) -> crate::report::Finding,
    criteria: crate::checks::Criteria,
    edit: impl FnOnce(&mut Snapshot),
) -> crate::report::Finding {
    let mut s = healthy();
    edit(&mut s);
    check(&s, &criteria)
}

pub fn links(s: &mut Snapshot) -> &mut Vec<Link> {
    match &mut s.links {
        Gathered::Ok(v) => v,
        _ => panic!("links failed"),
    }
}
pub fn addresses(s: &mut Snapshot) -> &mut Vec<Address> {
    match &mut s.addresses {
        Gathered::Ok(v) => v,
        _ => panic!("addresses failed"),
    }
}
pub fn routes(s: &mut Snapshot) -> &mut Vec<Route> {
    match &mut s.routes {
        Gathered::Ok(v) => v,
        _ => panic!("routes failed"),
    }
}
pub fn metadata(s: &mut Snapshot) -> &mut InstanceMetadata {
    match &mut s.metadata {
        MetadataState::Ok(m) => m,
        _ => panic!("no metadata"),
    }
}
pub fn sysctls(s: &mut Snapshot) -> &mut BTreeMap<String, Sysctl> {
    match &mut s.sysctls {
        Gathered::Ok(v) => v,
        _ => panic!("sysctls failed"),
    }
}
pub fn no_metadata(s: &mut Snapshot) {
    s.metadata = MetadataState::NotProbed {
        reason: "metadata.mode = \"never\"".into(),
    };
}
pub fn metadata_failed(s: &mut Snapshot) {
    s.metadata = MetadataState::Failed {
        reason: "metadata service at http://100.100.100.200: timed out".into(),
    };
}
