//! Configuration files and metadata bodies: the agent's config, resolv.conf, nsswitch.conf,
//! /etc/hosts, sysctl.d, ifcfg, ifupdown,
//! NetworkManager, networkd, netplan, the metadata service's answers (the RAM role's
//! credentials document too) and the cloud API's answers (instance, security group, network
//! ACL, route entries, ENIs, EIPs, IPv4 gateways, Anti-DDoS, Cloud Firewall, Security Center).
//! Never panics.
#![no_main]
use std::path::Path;

use ecs_diag::config::Config;
use ecs_diag::sources::cloud::{antiddos, cloudfw, credentials, ecs, sas, vpc};
use ecs_diag::sources::{metadata, network_config as nc, sysctl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let p = Path::new("fuzz");
    let _ = Config::parse(text);
    let _ = ecs_diag::sources::dns::parse_resolv_conf(text);
    let _ = ecs_diag::sources::dns::parse_nsswitch_hosts(text);
    let _ = ecs_diag::sources::dns::hosts_lookup(text, "www.example.com");
    let _ = ecs_diag::sources::dns::valid_name(text);
    let settings = sysctl::parse_sysctl_file(text, "fuzz");
    let _ = sysctl::after_reboot(&settings, "net.ipv4.conf.eth0.rp_filter");
    // Patterns straight from the input, against real names (interface names are at most 15).
    let _ = ecs_diag::glob::fnmatch(text, "eth0");
    let _ = ecs_diag::glob::fnmatch(text, "enp0s31f6.4094");
    let _ = ecs_diag::glob::sysctl_match(text, "net.ipv4.conf.eth0.rp_filter");
    let _ = nc::parse_ifcfg(text, p);
    let _ = nc::parse_ifupdown(text, p);
    let _ = nc::parse_nm_keyfile(text, p);
    let _ = nc::parse_networkd(text, p);
    let _ = nc::parse_netplan(text, p);
    let _ = metadata::parse_mac_list(text);
    let _ = metadata::parse_ipv4_list(text);
    let _ = metadata::parse_netmask(text);
    let _ = metadata::parse_kbps(text);
    let _ = metadata::parse_ip_list::<std::net::Ipv6Addr>(text);
    let _ = credentials::parse_role_list(text);
    let _ = credentials::parse_role_document("fuzz", text);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = ecs::parse_security_group(&v, ecs_diag::snapshot::SecurityGroupKind::Normal);
        let _ = ecs::parse_instance(&v);
        let _ = vpc::parse_network_acl(&v);
        let _ = vpc::parse_route_entries(&v);
        let _ = vpc::parse_eips(&v);
        let _ = vpc::parse_enabled_ipv4_gateway(&v);
        let _ = vpc::parse_vswitch(&v);
        let _ = ecs::parse_network_interfaces(&v);
        let _ = ecs::parse_security_group_kinds(&v);
        let _ = antiddos::parse_ip_status(&v, std::net::Ipv4Addr::new(203, 0, 113, 10));
        let _ = antiddos::parse_blackhole_end(&v);
        let _ = cloudfw::parse_protect_status(&v, std::net::Ipv4Addr::new(203, 0, 113, 10));
        let _ = cloudfw::parse_policies(&v);
        let _ = sas::parse_alerts(&v, "i-fuzz");
    }
});
