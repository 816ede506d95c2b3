//! The cloud-side verdicts' judgements (issue 14, in progress; `cloud.security_group` is not
//! registered yet): an ENI's security groups evaluated for one flow exactly as the cloud does
//! — every rule of every group together, priority 1 before 100, Drop before Accept at equal
//! priority, the first match decides; no match: inbound denied, outbound allowed by normal
//! groups and denied by enterprise groups. Groups are stateful, so a reply to an accepted
//! request passes. Evidence: the groups' rules from DescribeSecurityGroupAttribute.

use std::net::IpAddr;

use crate::snapshot::{Direction, Policy, SecurityGroup, SecurityGroupKind, SecurityGroupRule};

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
}
