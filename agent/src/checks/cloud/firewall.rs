//! `cloud.firewall`: Cloud Firewall's Internet border in front of the public IP. Where it
//! protects the IP (DescribeAssetList says `open`), its inbound access-control policies
//! (DescribeControlPolicy, direction in) are evaluated as it applies them: enabled policies by
//! `order`, `log` records and goes on, the first `accept` or `drop` that matches decides, and
//! nothing matched passes (the border's default). Judged for the echo request from the client
//! (`--client`, else the stand-in Internet address) and, as evidence, each listening port.
//! Skipped where Cloud Firewall does not protect the IP, is not in use, or the RAM role may
//! not read it (naming the action).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde_json::json;

use super::{facts, peer, peer_name, FIREWALL};
use crate::report::Finding;
use crate::snapshot::{ControlPolicy, Gathered, Snapshot};

/// One packet at the border.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    /// `ICMP`, `TCP` or `UDP`.
    pub proto: &'static str,
    pub port: Option<u16>,
    pub source: IpAddr,
    pub destination: Ipv4Addr,
}

/// What decided a packet.
#[derive(Debug, Clone, PartialEq)]
pub enum BorderDecision<'a> {
    Policy(&'a ControlPolicy),
    /// No policy matched: the border lets it through.
    Default,
    /// A policy that may match (by location or domain) comes first.
    Uncertain(&'a ControlPolicy, String),
}

fn in_cidrs(addr: IpAddr, single: &str, list: &[String]) -> bool {
    let parse = |s: &str| {
        s.parse::<IpNet>()
            .ok()
            .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
    };
    std::iter::once(single)
        .chain(list.iter().map(String::as_str))
        .filter_map(parse)
        .any(|n| n.contains(&addr))
}

fn port_in(spec: &str, port: u16) -> bool {
    let spec = spec.trim();
    if spec.is_empty() || spec == "0/0" || spec == "-1/-1" {
        return true;
    }
    let (lo, hi) = spec.split_once('/').unwrap_or((spec, spec));
    match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
        (Ok(lo), Ok(hi)) => (lo..=hi).contains(&port),
        _ => false,
    }
}

/// Whether `p` matches: Some(bool), or None with why it cannot be told.
fn matches(p: &ControlPolicy, k: &Packet) -> Result<bool, String> {
    if p.proto != "ANY" && p.proto != k.proto {
        return Ok(false);
    }
    let source = match p.source_type.as_str() {
        "net" | "group" => in_cidrs(k.source, &p.source, &p.source_cidrs),
        other => {
            return Err(format!(
                "its source is a {other} ({}), which the API does not resolve to addresses",
                p.source
            ))
        }
    };
    if !source {
        return Ok(false);
    }
    let destination = match p.destination_type.as_str() {
        "net" | "group" => in_cidrs(
            IpAddr::V4(k.destination),
            &p.destination,
            &p.destination_cidrs,
        ),
        other => {
            return Err(format!(
                "its destination is a {other} ({}), which the API does not resolve to addresses",
                p.destination
            ))
        }
    };
    if !destination {
        return Ok(false);
    }
    Ok(match k.port {
        None => true,
        Some(port) if p.dest_port_type == "group" => {
            p.dest_port_ports.iter().any(|s| port_in(s, port))
        }
        Some(port) => port_in(&p.dest_port, port),
    })
}

/// The border's verdict for one packet.
pub fn decide<'a>(policies: &'a [ControlPolicy], k: &Packet) -> BorderDecision<'a> {
    for p in policies.iter().filter(|p| p.enabled) {
        match matches(p, k) {
            Ok(false) => {}
            Ok(true) if p.action == "log" => {}
            Ok(true) => return BorderDecision::Policy(p),
            Err(why) if p.action == "drop" => return BorderDecision::Uncertain(p, why),
            Err(_) => {}
        }
    }
    BorderDecision::Default
}

/// A name or description from the API, with control characters escaped (it is printed on a
/// terminal).
pub fn shown(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

pub fn describe(p: &ControlPolicy) -> String {
    let port = if p.dest_port_type == "group" {
        format!("port group {}", p.dest_port)
    } else {
        format!("port {}", p.dest_port)
    };
    format!(
        "policy {} (order {}{}): {} {} from {} to {} {port}",
        p.uuid,
        p.order,
        p.description
            .as_deref()
            .map(|d| format!(", {}", shown(d)))
            .unwrap_or_default(),
        p.action,
        p.proto,
        shown(&p.source),
        shown(&p.destination),
    )
}

fn text(d: &BorderDecision) -> String {
    match d {
        BorderDecision::Policy(p) => describe(p),
        BorderDecision::Default => "no policy matched: the border lets it through".to_string(),
        BorderDecision::Uncertain(p, why) => format!("{} may match: {why}", describe(p)),
    }
}

pub fn judge(s: &Snapshot) -> Finding {
    let f = match facts(s, FIREWALL) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let fw = match &f.cloud_firewall {
        Gathered::Ok(fw) => fw,
        Gathered::Failed(why) => {
            return super::optional_part_failed(FIREWALL, why, "Cloud Firewall")
        }
    };
    let Some(ip) = fw.ip else {
        return Finding::skipped(FIREWALL, "the instance has no public IP: nothing reaches it through Cloud Firewall's Internet border");
    };
    let status = match fw.protect_status.as_deref() {
        None => {
            return Finding::skipped(
                FIREWALL,
                format!(
                    "Cloud Firewall does not list {ip} as an asset: nothing of it filters the IP"
                ),
            )
            .evidence(json!({"public_ip": ip.to_string(), "protect_status": null}))
        }
        Some(st @ ("closed" | "closing")) => {
            return Finding::skipped(
                FIREWALL,
                format!("Cloud Firewall's protection of {ip} is {st}: its policies do not apply"),
            )
            .evidence(json!({"public_ip": ip.to_string(), "protect_status": st}))
        }
        Some(st) => st,
    };
    let (peer, given) = peer(s);
    let who = peer_name(peer, given);
    let echo = Packet {
        proto: "ICMP",
        port: None,
        source: peer,
        destination: ip,
    };
    let d = decide(&fw.policies, &echo);
    let mut ports = Vec::new();
    if let Ok(listeners) = s.listeners.ok() {
        let mut seen = std::collections::BTreeSet::new();
        for l in listeners
            .iter()
            .filter(|l| !l.address.is_loopback() && !l.address.is_ipv6())
        {
            if !seen.insert((l.proto.clone(), l.port)) {
                continue;
            }
            let k = Packet {
                proto: if l.proto == "tcp" { "TCP" } else { "UDP" },
                port: Some(l.port),
                source: peer,
                destination: ip,
            };
            let pd = decide(&fw.policies, &k);
            ports.push(json!({
                "port": format!("{}/{}", l.proto, l.port),
                "passes": !matches!(&pd, BorderDecision::Policy(p) if p.action == "drop"),
                "decided_by": text(&pd),
            }));
        }
    }
    let evidence = json!({
        "public_ip": ip.to_string(),
        "protect_status": status,
        "policies": fw.policies.len(),
        "truncated": fw.truncated,
        "judged_for": peer.to_string(),
        "echo_request": text(&d),
        "ports": ports,
    });
    match d {
        BorderDecision::Policy(p) if p.action == "drop" => Finding::fail(
            FIREWALL,
            format!("Cloud Firewall drops the echo request from {who} to {ip}: {}", describe(p)),
        )
        .evidence(evidence)
        .remedy([
            format!("Cloud Firewall console → Access Control → Internet Border → Inbound: edit or disable policy {} (order {}), or add an Accept policy for ICMP from the client with a smaller order number", p.uuid, p.order),
            format!("`aliyun cloudfw AddControlPolicy --Direction in --AclAction accept --Proto ICMP --SourceType net --Source {} --DestinationType net --Destination {ip}/32 --DestPortType port --DestPort 0/0 --NewOrder 1 --Description ecs-diag`", if given { format!("{peer}/32") } else { "0.0.0.0/0".to_string() }),
        ]),
        BorderDecision::Uncertain(..) => Finding::unknown(
            FIREWALL,
            format!("echo request from {who} to {ip}: {}", text(&d)),
        )
        .evidence(evidence),
        BorderDecision::Default if fw.truncated => Finding::unknown(
            FIREWALL,
            format!("none of the first {} inbound policies decides the echo request from {who}, and more exist than were read", fw.policies.len()),
        )
        .evidence(evidence),
        _ => Finding::ok(
            FIREWALL,
            format!("Cloud Firewall passes the echo request from {who} to {ip}: {}", text(&d)),
        )
        .evidence(evidence),
    }
}

/// A policy for the tests: `action` of `proto` from the `source` CIDR to anywhere, any port.
#[cfg(test)]
pub(crate) fn policy(
    uuid: &str,
    order: i64,
    action: &str,
    proto: &str,
    source: &str,
) -> ControlPolicy {
    ControlPolicy {
        uuid: uuid.into(),
        order,
        action: action.into(),
        proto: proto.into(),
        source_type: "net".into(),
        source: source.into(),
        source_cidrs: vec![],
        destination_type: "net".into(),
        destination: "0.0.0.0/0".into(),
        destination_cidrs: vec![],
        dest_port_type: "port".into(),
        dest_port: "0/0".into(),
        dest_port_ports: vec![],
        enabled: true,
        description: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_enabled_match_by_order_decides() {
        let k = Packet {
            proto: "ICMP",
            port: None,
            source: "198.18.0.2".parse().unwrap(),
            destination: Ipv4Addr::new(203, 0, 113, 10),
        };
        let mut off = policy("off", 1, "drop", "ANY", "0.0.0.0/0");
        off.enabled = false;
        let ps = vec![
            off,
            policy("log", 2, "log", "ICMP", "0.0.0.0/0"),
            policy("tcp", 3, "drop", "TCP", "0.0.0.0/0"),
            policy("other", 4, "drop", "ICMP", "10.0.0.0/8"),
            policy("hit", 5, "drop", "ICMP", "198.18.0.0/16"),
            policy("late", 6, "accept", "ANY", "0.0.0.0/0"),
        ];
        assert_eq!(decide(&ps, &k), BorderDecision::Policy(&ps[4]));
        assert_eq!(decide(&ps[..4], &k), BorderDecision::Default);
        let mut loc = policy("geo", 1, "drop", "ANY", "CN");
        loc.source_type = "location".into();
        assert!(matches!(
            decide(std::slice::from_ref(&loc), &k),
            BorderDecision::Uncertain(..)
        ));
        let mut ports = policy("web", 1, "drop", "TCP", "0.0.0.0/0");
        ports.dest_port = "80/443".into();
        let tcp = |port| Packet {
            proto: "TCP",
            port: Some(port),
            ..k
        };
        assert_eq!(
            decide(std::slice::from_ref(&ports), &tcp(443)),
            BorderDecision::Policy(&ports)
        );
        assert_eq!(
            decide(std::slice::from_ref(&ports), &tcp(22)),
            BorderDecision::Default
        );
    }
}
