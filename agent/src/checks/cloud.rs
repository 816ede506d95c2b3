//! The cloud-side verdicts' judgements (issue 14, in progress; `cloud.security_group` is not
//! registered yet): an ENI's security groups evaluated for one flow exactly as the cloud does
//! — every rule of every group together, priority 1 before 100, Drop before Accept at equal
//! priority, the first match decides; no match: inbound denied, outbound allowed by normal
//! groups and denied by enterprise groups. Groups are stateful, so a reply to an accepted
//! request passes. A vSwitch's network ACL is stateless: the request must pass its inbound
//! entries and the reply its outbound entries, each in order, first match; nothing matched is
//! denied. Where the VPC has an IPv4 gateway enabled, public traffic needs a route to it.
//! Evidence: the groups' rules (DescribeSecurityGroupAttribute), the ACL's entries
//! (DescribeNetworkAclAttributes), the vSwitch's route entries.

use std::net::IpAddr;

use crate::snapshot::{
    AclEntry, CloudRoute, Direction, NetworkAcl, Policy, SecurityGroup, SecurityGroupKind,
    SecurityGroupRule,
};

/// The platform's quotas (the ECS FAQ): rules per group, groups per ENI.
pub const RULES_PER_GROUP: usize = 200;
pub const GROUPS_PER_ENI: usize = 5;

/// One flow through the groups: an inbound echo request from a client, a new connection to a
/// port, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub direction: Direction,
    /// `ICMP`, `ICMPV6`, `TCP` or `UDP`.
    pub protocol: &'static str,
    /// The destination port (TCP/UDP).
    pub port: Option<u16>,
    /// The other end: the client for ingress, the destination for egress.
    pub peer: IpAddr,
}

/// What decided the flow.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'a> {
    /// A rule matched: its policy is the verdict.
    Rule {
        group: &'a SecurityGroup,
        rule: &'a SecurityGroupRule,
    },
    /// No rule matched: the groups' default.
    Default {
        accept: bool,
        kind: SecurityGroupKind,
    },
    /// A rule that may match (a prefix list) comes before any rule that surely does.
    Uncertain {
        group: &'a SecurityGroup,
        rule: &'a SecurityGroupRule,
        why: String,
    },
    /// The ENI is in no security group (not possible on ECS): nothing to judge.
    NoGroups,
}

impl Decision<'_> {
    pub fn accepts(&self) -> Option<bool> {
        match self {
            Decision::Rule { rule, .. } => Some(rule.policy == Policy::Accept),
            Decision::Default { accept, .. } => Some(*accept),
            Decision::Uncertain { .. } | Decision::NoGroups => None,
        }
    }
}

/// `80/80` → (80, 80); `-1/-1` → every port.
fn port_range(text: &str) -> Option<(i32, i32)> {
    let (a, b) = text.trim().split_once('/')?;
    let (a, b): (i32, i32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    if a == -1 && b == -1 {
        return Some((0, 65535));
    }
    ((0..=65535).contains(&a) && (a..=65535).contains(&b)).then_some((a, b))
}

/// Whether the rule applies to the flow: Some(true/false), or None with why it cannot be told.
fn matches(rule: &SecurityGroupRule, flow: &Flow) -> Result<bool, String> {
    if rule.direction != flow.direction {
        return Ok(false);
    }
    let proto = rule.protocol.to_ascii_uppercase();
    if proto != "ALL" && proto != flow.protocol {
        return Ok(false);
    }
    if let (Some(port), "TCP" | "UDP") = (flow.port, flow.protocol) {
        let Some((lo, hi)) = port_range(&rule.port_range) else {
            return Err(format!("port range {:?} is not FROM/TO", rule.port_range));
        };
        if !(lo..=hi).contains(&i32::from(port)) {
            return Ok(false);
        }
    }
    if let Some(net) = &rule.peer_cidr {
        return Ok(net.contains(&flow.peer));
    }
    if rule.peer_group.is_some() {
        // Another group's members are instances in the VPC, never an Internet client.
        return Ok(false);
    }
    if let Some(list) = &rule.peer_prefix_list {
        return Err(format!(
            "its peer is prefix list {list}, whose entries are not read"
        ));
    }
    Err("the rule names no peer".to_string())
}

/// Evaluates `flow` against every rule of `groups`, as the cloud does.
pub fn evaluate<'a>(groups: &'a [SecurityGroup], flow: &Flow) -> Decision<'a> {
    if groups.is_empty() {
        return Decision::NoGroups;
    }
    let mut rules: Vec<(&SecurityGroup, &SecurityGroupRule)> = groups
        .iter()
        .flat_map(|g| g.rules.iter().map(move |r| (g, r)))
        .collect();
    // Stable: within a priority and policy, the groups' own order.
    rules.sort_by_key(|(_, r)| (r.priority, r.policy));
    for (group, rule) in rules {
        match matches(rule, flow) {
            Ok(true) => return Decision::Rule { group, rule },
            Ok(false) => {}
            Err(why) => return Decision::Uncertain { group, rule, why },
        }
    }
    let enterprise = groups
        .iter()
        .any(|g| g.kind == SecurityGroupKind::Enterprise);
    let kind = if enterprise {
        SecurityGroupKind::Enterprise
    } else {
        SecurityGroupKind::Normal
    };
    Decision::Default {
        accept: flow.direction == Direction::Egress && !enterprise,
        kind,
    }
}

/// `sg-1 rule sgr-2: priority 1, Drop ICMP -1/-1 from 0.0.0.0/0`.
pub fn describe_rule(group: &SecurityGroup, rule: &SecurityGroupRule) -> String {
    let peer = rule
        .peer_cidr
        .map(|n| n.to_string())
        .or_else(|| rule.peer_group.clone())
        .or_else(|| rule.peer_prefix_list.clone())
        .unwrap_or_else(|| "?".into());
    let (way, policy) = match (rule.direction, rule.policy) {
        (Direction::Ingress, p) => ("from", p),
        (Direction::Egress, p) => ("to", p),
    };
    format!(
        "{} rule {}: priority {}, {:?} {} {} {way} {peer}",
        group.id,
        rule.rule_id.as_deref().unwrap_or("(no id)"),
        rule.priority,
        policy,
        rule.protocol,
        rule.port_range
    )
}

/// Quota warnings: a group at 90% of its rules, an ENI at its group limit.
pub fn quota_warnings(groups: &[SecurityGroup]) -> Vec<String> {
    let mut w: Vec<String> = groups
        .iter()
        .filter(|g| g.rules.len() * 10 >= RULES_PER_GROUP * 9)
        .map(|g| {
            format!(
                "{} holds {} of its {RULES_PER_GROUP} rules",
                g.id,
                g.rules.len()
            )
        })
        .collect();
    if groups.len() >= GROUPS_PER_ENI {
        w.push(format!(
            "the ENI is in {} security groups, the most it can be in ({GROUPS_PER_ENI})",
            groups.len()
        ));
    }
    w
}

/// What decided a flow through a network ACL (stateless: the request is judged by the ingress
/// entries, the reply separately by the egress entries).
#[derive(Debug, Clone, PartialEq)]
pub enum AclDecision<'a> {
    Entry(&'a AclEntry),
    /// No entry matched: denied.
    NoMatch,
    /// An entry's port range cannot be read: said, not guessed.
    Uncertain {
        entry: &'a AclEntry,
        why: String,
    },
}

impl AclDecision<'_> {
    pub fn accepts(&self) -> Option<bool> {
        match self {
            AclDecision::Entry(e) => Some(e.policy == Policy::Accept),
            AclDecision::NoMatch => Some(false),
            AclDecision::Uncertain { .. } => None,
        }
    }
}

/// The first entry of `entries` (in order) that matches the flow decides it.
pub fn evaluate_acl<'a>(entries: &'a [AclEntry], flow: &Flow) -> AclDecision<'a> {
    for e in entries {
        let proto = e.protocol.to_ascii_uppercase();
        if proto != "ALL" && proto != flow.protocol {
            continue;
        }
        if let (Some(port), "TCP" | "UDP") = (flow.port, flow.protocol) {
            match port_range(&e.port_range) {
                Some((lo, hi)) if (lo..=hi).contains(&i32::from(port)) => {}
                Some(_) => continue,
                None => {
                    return AclDecision::Uncertain {
                        entry: e,
                        why: format!("port range {:?} is not FROM/TO", e.port_range),
                    }
                }
            }
        }
        if e.peer_cidr.contains(&flow.peer) {
            return AclDecision::Entry(e);
        }
    }
    AclDecision::NoMatch
}

/// `acl-1 entry nae-2 (name): Drop icmp -1/-1 from 0.0.0.0/0`.
pub fn describe_acl_entry(acl: &NetworkAcl, e: &AclEntry, ingress: bool) -> String {
    format!(
        "{} {} entry {}{}: {:?} {} {} {} {}",
        acl.id,
        if ingress { "inbound" } else { "outbound" },
        e.entry_id.as_deref().unwrap_or("(no id)"),
        e.name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        e.policy,
        e.protocol,
        e.port_range,
        if ingress { "from" } else { "to" },
        e.peer_cidr
    )
}

/// Whether the vSwitch's route table sends traffic to `client` out to the Internet: where the
/// VPC has an IPv4 gateway enabled, the most specific route covering the client must point at
/// it (without one the system route carries public traffic and nothing is judged). Err names
/// the missing or wrong entry.
pub fn route_to_internet<'a>(
    routes: &'a [CloudRoute],
    ipv4_gateway: Option<&str>,
    client: IpAddr,
) -> Result<Option<&'a CloudRoute>, String> {
    let Some(gw) = ipv4_gateway else {
        return Ok(None);
    };
    let best = routes
        .iter()
        .filter(|r| r.destination.contains(&client))
        .max_by_key(|r| r.destination.prefix_len());
    match best {
        None => Err(format!(
            "the route table has no route covering {client}: with IPv4 gateway {gw} enabled, public traffic needs 0.0.0.0/0 → {gw}"
        )),
        Some(r) if r.next_hop_type == "Ipv4Gateway" => Ok(Some(r)),
        Some(r) => Err(format!(
            "the route table sends {client} by {} to {} {}, not to IPv4 gateway {gw}",
            r.destination,
            r.next_hop_type,
            r.next_hop_id.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        dir: Direction,
        proto: &str,
        ports: &str,
        peer: &str,
        policy: Policy,
        priority: u8,
    ) -> SecurityGroupRule {
        SecurityGroupRule {
            rule_id: Some(format!("sgr-{proto}-{priority}-{policy:?}")),
            direction: dir,
            protocol: proto.into(),
            port_range: ports.into(),
            peer_cidr: Some(peer.parse().unwrap()),
            peer_group: None,
            peer_prefix_list: None,
            policy,
            priority,
            description: None,
        }
    }

    fn group(kind: SecurityGroupKind, rules: Vec<SecurityGroupRule>) -> SecurityGroup {
        SecurityGroup {
            id: "sg-made-up".into(),
            kind,
            rules,
        }
    }

    fn echo_from(client: &str) -> Flow {
        Flow {
            direction: Direction::Ingress,
            protocol: "ICMP",
            port: None,
            peer: client.parse().unwrap(),
        }
    }

    use Direction::*;
    use Policy::*;
    use SecurityGroupKind::*;

    #[test]
    fn the_clouds_order_decides() {
        let client = echo_from("198.18.0.2");
        // No ICMP rule: inbound default deny.
        let g = [group(
            Normal,
            vec![rule(Ingress, "TCP", "22/22", "0.0.0.0/0", Accept, 1)],
        )];
        assert_eq!(
            evaluate(&g, &client),
            Decision::Default {
                accept: false,
                kind: Normal
            }
        );
        // An accept for ICMP.
        let g = [group(
            Normal,
            vec![rule(Ingress, "ICMP", "-1/-1", "0.0.0.0/0", Accept, 1)],
        )];
        assert_eq!(evaluate(&g, &client).accepts(), Some(true));
        // Drop at a higher priority (smaller number) than the accept.
        let g = [group(
            Normal,
            vec![
                rule(Ingress, "ICMP", "-1/-1", "0.0.0.0/0", Accept, 10),
                rule(Ingress, "ALL", "-1/-1", "198.18.0.0/16", Drop, 5),
            ],
        )];
        match evaluate(&g, &client) {
            Decision::Rule { rule, .. } => assert_eq!((rule.priority, rule.policy), (5, Drop)),
            d => panic!("{d:?}"),
        }
        // Equal priority: Drop wins whatever the order of the rules.
        let g = [group(
            Normal,
            vec![
                rule(Ingress, "ICMP", "-1/-1", "0.0.0.0/0", Accept, 1),
                rule(Ingress, "ICMP", "-1/-1", "0.0.0.0/0", Drop, 1),
            ],
        )];
        assert_eq!(evaluate(&g, &client).accepts(), Some(false));
        // Rules of several groups are one list.
        let g = [
            group(
                Normal,
                vec![rule(Ingress, "ICMP", "-1/-1", "0.0.0.0/0", Accept, 50)],
            ),
            group(
                Normal,
                vec![rule(Ingress, "ICMP", "-1/-1", "0.0.0.0/0", Drop, 40)],
            ),
        ];
        assert_eq!(evaluate(&g, &client).accepts(), Some(false));
        // A rule for a different source does not match.
        let g = [group(
            Normal,
            vec![rule(Ingress, "ICMP", "-1/-1", "10.0.0.0/8", Accept, 1)],
        )];
        assert_eq!(evaluate(&g, &client).accepts(), Some(false));
        // An IPv4 rule does not match an IPv6 client, nor ICMP ICMPv6.
        let v6 = Flow {
            protocol: "ICMPV6",
            peer: "2001:db8::2".parse().unwrap(),
            ..client
        };
        let g = [group(
            Normal,
            vec![rule(Ingress, "ICMP", "-1/-1", "0.0.0.0/0", Accept, 1)],
        )];
        assert_eq!(evaluate(&g, &v6).accepts(), Some(false));
        let g = [group(
            Normal,
            vec![rule(Ingress, "ICMPV6", "-1/-1", "::/0", Accept, 1)],
        )];
        assert_eq!(evaluate(&g, &v6).accepts(), Some(true));
    }

    #[test]
    fn defaults_of_normal_and_enterprise_groups() {
        let out = Flow {
            direction: Egress,
            protocol: "TCP",
            port: Some(443),
            peer: "203.0.113.5".parse().unwrap(),
        };
        assert_eq!(
            evaluate(&[group(Normal, vec![])], &out).accepts(),
            Some(true)
        );
        assert_eq!(
            evaluate(&[group(Enterprise, vec![])], &out).accepts(),
            Some(false)
        );
        assert_eq!(
            evaluate(&[group(Enterprise, vec![])], &echo_from("198.18.0.2")).accepts(),
            Some(false)
        );
        assert_eq!(evaluate(&[], &out), Decision::NoGroups);
    }

    #[test]
    fn ports_groups_and_prefix_lists() {
        let ssh = Flow {
            direction: Ingress,
            protocol: "TCP",
            port: Some(22),
            peer: "198.18.0.2".parse().unwrap(),
        };
        let g = [group(
            Normal,
            vec![rule(Ingress, "TCP", "1/1024", "0.0.0.0/0", Accept, 1)],
        )];
        assert_eq!(evaluate(&g, &ssh).accepts(), Some(true));
        let g = [group(
            Normal,
            vec![rule(Ingress, "TCP", "80/443", "0.0.0.0/0", Accept, 1)],
        )];
        assert_eq!(evaluate(&g, &ssh).accepts(), Some(false));
        // A group peer never matches an outside client; a prefix list cannot be told.
        let mut by_group = rule(Ingress, "ALL", "-1/-1", "0.0.0.0/0", Accept, 1);
        by_group.peer_cidr = None;
        by_group.peer_group = Some("sg-other".into());
        assert_eq!(
            evaluate(&[group(Normal, vec![by_group.clone()])], &ssh).accepts(),
            Some(false)
        );
        let mut by_list = by_group;
        by_list.peer_group = None;
        by_list.peer_prefix_list = Some("pl-made-up".into());
        match evaluate(&[group(Normal, vec![by_list])], &ssh) {
            Decision::Uncertain { why, .. } => assert!(why.contains("pl-made-up"), "{why}"),
            d => panic!("{d:?}"),
        }
        // A malformed port range is said, not guessed.
        let g = [group(
            Normal,
            vec![rule(Ingress, "TCP", "eighty", "0.0.0.0/0", Accept, 1)],
        )];
        assert!(matches!(evaluate(&g, &ssh), Decision::Uncertain { .. }));
    }

    #[test]
    fn descriptions_and_quotas() {
        let g = group(
            Normal,
            vec![rule(Ingress, "ICMP", "-1/-1", "0.0.0.0/0", Drop, 1)],
        );
        assert_eq!(
            describe_rule(&g, &g.rules[0]),
            "sg-made-up rule sgr-ICMP-1-Drop: priority 1, Drop ICMP -1/-1 from 0.0.0.0/0"
        );
        assert!(quota_warnings(std::slice::from_ref(&g)).is_empty());
        let full = group(
            Normal,
            (0..180)
                .map(|i| {
                    rule(
                        Ingress,
                        "TCP",
                        "1/1",
                        "0.0.0.0/0",
                        Accept,
                        (i % 100 + 1) as u8,
                    )
                })
                .collect(),
        );
        assert_eq!(
            quota_warnings(std::slice::from_ref(&full)),
            vec!["sg-made-up holds 180 of its 200 rules"]
        );
        let five: Vec<SecurityGroup> = (0..5).map(|_| g.clone()).collect();
        assert!(quota_warnings(&five)[0].contains("5 security groups"));
    }

    fn acl_entry(policy: Policy, proto: &str, ports: &str, peer: &str) -> AclEntry {
        AclEntry {
            entry_id: Some(format!("nae-{proto}-{policy:?}")),
            name: None,
            policy,
            protocol: proto.into(),
            peer_cidr: peer.parse().unwrap(),
            port_range: ports.into(),
            entry_type: Some("custom".into()),
        }
    }

    #[test]
    fn network_acls_are_stateless_and_ordered() {
        let request = echo_from("198.18.0.2");
        let reply = Flow {
            direction: Egress,
            ..request
        };
        let allow_all = acl_entry(Accept, "all", "-1/-1", "0.0.0.0/0");
        // A deny for ICMP ahead of the default allow decides the request.
        let ingress = vec![
            acl_entry(Drop, "icmp", "-1/-1", "0.0.0.0/0"),
            allow_all.clone(),
        ];
        assert_eq!(
            evaluate_acl(&ingress, &request),
            AclDecision::Entry(&ingress[0])
        );
        assert_eq!(evaluate_acl(&ingress, &request).accepts(), Some(false));
        // Order, not policy, decides: an accept listed first wins over a later drop.
        let ingress = vec![
            allow_all.clone(),
            acl_entry(Drop, "icmp", "-1/-1", "0.0.0.0/0"),
        ];
        assert_eq!(evaluate_acl(&ingress, &request).accepts(), Some(true));
        // Egress without an entry for the reply: the reply is denied (stateless).
        let egress = vec![acl_entry(Accept, "tcp", "443/443", "0.0.0.0/0")];
        assert_eq!(evaluate_acl(&egress, &reply), AclDecision::NoMatch);
        assert_eq!(evaluate_acl(&egress, &reply).accepts(), Some(false));
        // Ports and sources.
        let ssh = Flow {
            direction: Ingress,
            protocol: "TCP",
            port: Some(22),
            peer: "198.18.0.2".parse().unwrap(),
        };
        let only_web = vec![acl_entry(Accept, "tcp", "80/443", "0.0.0.0/0")];
        assert_eq!(evaluate_acl(&only_web, &ssh).accepts(), Some(false));
        let other_src = vec![acl_entry(Accept, "all", "-1/-1", "10.0.0.0/8")];
        assert_eq!(evaluate_acl(&other_src, &request).accepts(), Some(false));
        let bad = vec![acl_entry(Accept, "tcp", "x", "0.0.0.0/0")];
        assert!(matches!(
            evaluate_acl(&bad, &ssh),
            AclDecision::Uncertain { .. }
        ));
        let acl = NetworkAcl {
            id: "nacl-made-up".into(),
            ingress: ingress.clone(),
            egress,
        };
        assert_eq!(
            describe_acl_entry(&acl, &acl.ingress[1], true),
            "nacl-made-up inbound entry nae-icmp-Drop: Drop icmp -1/-1 from 0.0.0.0/0"
        );
    }

    #[test]
    fn public_traffic_needs_the_ipv4_gateway_route_where_one_is_enabled() {
        let client: IpAddr = "198.18.0.2".parse().unwrap();
        let route = |dst: &str, hop: &str| CloudRoute {
            destination: dst.parse().unwrap(),
            next_hop_type: hop.into(),
            next_hop_id: Some(format!("{hop}-id")),
            status: Some("Available".into()),
        };
        let local = route("10.77.0.0/24", "local");
        // No IPv4 gateway: the system route carries it, nothing to judge.
        assert_eq!(
            route_to_internet(std::slice::from_ref(&local), None, client),
            Ok(None)
        );
        let ok = [local.clone(), route("0.0.0.0/0", "Ipv4Gateway")];
        assert!(route_to_internet(&ok, Some("ipv4gw-made-up"), client)
            .unwrap()
            .is_some());
        let e = route_to_internet(std::slice::from_ref(&local), Some("ipv4gw-made-up"), client)
            .unwrap_err();
        assert!(
            e.contains("no route covering 198.18.0.2") && e.contains("0.0.0.0/0 → ipv4gw-made-up"),
            "{e}"
        );
        // A more specific route elsewhere captures the client.
        let captured = [
            route("0.0.0.0/0", "Ipv4Gateway"),
            route("198.18.0.0/16", "NatGateway"),
        ];
        let e = route_to_internet(&captured, Some("ipv4gw-made-up"), client).unwrap_err();
        assert!(e.contains("198.18.0.0/16 to NatGateway"), "{e}");
    }
}
