//! `cloud.*`: the causes outside the guest, read from the cloud API through the instance RAM
//! role (see `sources::cloud`), judged exactly as the cloud applies them.
//!
//! - `cloud.instance`: DescribeInstanceAttribute's status and operation locks.
//! - `cloud.security_group`: an ENI's security groups for one flow — every rule of every group
//!   together, priority 1 before 100, Drop before Accept at equal priority, the first match
//!   decides; no match: inbound denied, outbound allowed by normal groups and denied by
//!   enterprise groups. Groups are stateful, so a reply to an accepted request passes. Judged
//!   for an inbound echo request from the client (`--client`, else the stand-in Internet
//!   address) and for each listening port; quota warnings.
//! - `cloud.network_acl`: the vSwitch's network ACL, stateless: the request must pass its
//!   inbound entries and the reply its outbound entries, each in order, first match; nothing
//!   matched is denied.
//! - `cloud.route`: where the VPC has an IPv4 gateway enabled, public traffic needs a route to it
//!   in the vSwitch's route table.
//! - `cloud.public_ip`: a public IP or an in-use EIP is bound, and the metadata agrees.
//! - `cloud.blackhole`: Anti-DDoS Origin Basic's status of the public IP.
//! - `cloud.firewall`: Cloud Firewall's inbound policies for the public IP (`cloud/firewall.rs`).
//! - `cloud.security_alerts`: Security Center's unhandled alerts (`cloud/security_alerts.rs`).
//!
//! Without cloud facts (no RAM role, `cloud.mode = "never"`, not on Alibaba Cloud) each says
//! `skipped` and why; a call that failed makes its check `unknown`, naming the action (and the
//! policy to grant when the RAM role may not call it).

use std::net::IpAddr;

use serde_json::json;

use crate::checks::{Cause, Check};
use crate::report::Finding;
use crate::snapshot::{
    AclEntry, CloudFacts, CloudRoute, CloudState, DdosState, Direction, Gathered, NetworkAcl,
    Policy, SecurityGroup, SecurityGroupKind, SecurityGroupRule, Snapshot,
};

pub const INSTANCE: &str = "cloud.instance";
pub const SECURITY_GROUP: &str = "cloud.security_group";
pub const NETWORK_ACL: &str = "cloud.network_acl";
pub const ROUTE: &str = "cloud.route";
pub const PUBLIC_IP: &str = "cloud.public_ip";
pub const BLACKHOLE: &str = "cloud.blackhole";
pub const FIREWALL: &str = "cloud.firewall";
pub const SECURITY_ALERTS: &str = "cloud.security_alerts";

pub mod firewall;
pub mod security_alerts;

/// Ports a mail server listens on (SMTP, submission over TLS, submission).
const MAIL_PORTS: [u16; 3] = [25, 465, 587];

/// The minimal read-only RAM policy, as shipped in /usr/share/ecs-diag/ram-policy.json.
pub const RAM_POLICY: &str = include_str!("../../../packaging/ram-policy.json");

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: INSTANCE,
        decides: "the instance is Running and under no operation lock (overdue payment, security lock)",
        evidence: &["ECS DescribeInstanceAttribute: Status, OperationLocks"],
        causes: &[
            Cause { id: "instance_not_running", cause: "the instance is not Running", remedy: "start it: ECS console → Instances → Start, or `aliyun ecs StartInstance --InstanceId ID`" },
            Cause { id: "operation_lock", cause: "an operation lock (financial: overdue payment; security: locked for a violation)", remedy: "settle the overdue payment in the Billing console, or open a ticket about the security lock" },
        ],
        judge: |s, _| instance(s),
    },
    Check {
        id: SECURITY_GROUP,
        decides: "every security group of the ENI, evaluated as the cloud does (priority 1 first, Drop wins ties, normal/enterprise defaults, stateful), accepts the inbound echo request from the client and lets each listening port through; names the deciding rule; quota warnings",
        evidence: &["ECS DescribeNetworkInterfaces (each ENI's groups)", "ECS DescribeSecurityGroups (normal or enterprise)", "ECS DescribeSecurityGroupAttribute (ingress and egress rules)", "the listening sockets"],
        causes: &[
            Cause { id: "sg_no_icmp_accept", cause: "no rule accepts ICMP from the client: the groups' default denies it", remedy: "`aliyun ecs AuthorizeSecurityGroup --RegionId R --SecurityGroupId SG --IpProtocol icmp --PortRange -1/-1 --SourceCidrIp CLIENT/32 --Priority 1`, or ECS console → Security Groups → Inbound → Add Rule (ICMP(IPv4), source, priority 1)" },
            Cause { id: "sg_drop_rule", cause: "a Drop rule of higher (smaller) or equal priority matches first", remedy: "delete that rule or give the Accept rule a smaller priority number" },
            Cause { id: "smtp_blocked", cause: "mail is sent on TCP 25, which the platform blocks outbound by default whatever the group says", remedy: "send through port 465 (SMTP over TLS), or apply to unblock port 25 in the ECS console" },
            Cause { id: "sg_quota", cause: "a group holds ≥ 90% of its 200 rules, or the ENI is in 5 groups", remedy: "merge rules (port ranges, prefix lists) before the quota blocks the next change" },
        ],
        judge: |s, _| security_group(s),
    },
    Check {
        id: NETWORK_ACL,
        decides: "the vSwitch's network ACL (stateless) lets the echo request in and the echo reply out; names the deciding entry",
        evidence: &["VPC DescribeVSwitchAttributes (the ACL's id)", "VPC DescribeNetworkAclAttributes (ingress and egress entries, in order)"],
        causes: &[
            Cause { id: "acl_ingress_drops", cause: "an inbound entry drops the request, or none matches", remedy: "VPC console → Network ACL → Inbound Rules: accept ICMP from the client before the deciding entry" },
            Cause { id: "acl_egress_drops", cause: "an outbound entry drops the reply (the ACL is stateless)", remedy: "VPC console → Network ACL → Outbound Rules: accept ICMP to the client before the deciding entry" },
        ],
        judge: |s, _| network_acl(s),
    },
    Check {
        id: ROUTE,
        decides: "where the VPC has an IPv4 gateway enabled, the vSwitch's route table sends public traffic (0.0.0.0/0) to it",
        evidence: &["VPC ListIpv4Gateways (the enabled gateway)", "VPC DescribeVSwitchAttributes (the vSwitch's route table)", "VPC DescribeRouteEntryList (its entries)"],
        causes: &[
            Cause { id: "vpc_route_missing", cause: "no route covers the client, or the most specific one points elsewhere", remedy: "VPC console → Route Tables → the vSwitch's table → Add Route Entry: 0.0.0.0/0, next hop IPv4 gateway; or `aliyun vpc CreateRouteEntry --RegionId R --RouteTableId VTB --DestinationCidrBlock 0.0.0.0/0 --NextHopType Ipv4Gateway --NextHopId IPV4GW`" },
        ],
        judge: |s, _| route(s),
    },
    Check {
        id: PUBLIC_IP,
        decides: "a public IP or an in-use EIP is bound to the instance (or the ENI holding the pinged address), and the metadata agrees",
        evidence: &["ECS DescribeInstanceAttribute (PublicIpAddress, EipAddress)", "ECS DescribeNetworkInterfaces (AssociatedPublicIp)", "VPC DescribeEipAddresses", "metadata public-ipv4 / eipv4"],
        causes: &[
            Cause { id: "no_public_ip", cause: "no public IP and no EIP", remedy: "allocate an EIP and associate it: `aliyun vpc AllocateEipAddress` then `aliyun vpc AssociateEipAddress --AllocationId ID --InstanceId INSTANCE`" },
            Cause { id: "public_ip_changed", cause: "the metadata's public IP is not the one the cloud API says is bound: the binding changed", remedy: "ping the address the cloud API names" },
            Cause { id: "eip_not_in_use", cause: "the EIP is not InUse", remedy: "associate it with this instance in the VPC console → Elastic IP Addresses" },
        ],
        judge: |s, _| public_ip(s),
    },
    Check {
        id: BLACKHOLE,
        decides: "the public IP is not in Anti-DDoS blackhole filtering (and when it ends, where known)",
        evidence: &["Anti-DDoS DescribeInstanceIpAddress (IpStatus)", "Anti-DDoS DescribeDdosEventList (when the blackhole ends)"],
        causes: &[
            Cause { id: "ddos_scrubbing", cause: "a DDoS attack is being scrubbed: clean traffic passes, probes may be dropped", remedy: "wait for the attack to end; the Anti-DDoS console shows it" },
            Cause { id: "blackholed", cause: "blackhole filtering after a DDoS attack: all traffic to the IP is dropped upstream", remedy: "wait for the blackhole to end (the Anti-DDoS console shows when), or deactivate it early there; consider Anti-DDoS Pro for a larger threshold" },
        ],
        judge: |s, _| blackhole(s),
    },
    Check {
        id: FIREWALL,
        decides: "where Cloud Firewall protects the public IP, its Internet-border inbound policies (by order, first match) pass the echo request from the client; names the deciding policy; each listening port as evidence",
        evidence: &["Cloud Firewall DescribeAssetList (ProtectStatus of the public IP)", "Cloud Firewall DescribeControlPolicy (direction in)", "the listening sockets"],
        causes: &[
            Cause { id: "cloud_firewall_drops", cause: "an inbound access-control policy drops ICMP from the client", remedy: "Cloud Firewall console → Access Control → Internet Border → Inbound: edit or disable the policy, or add an Accept policy for ICMP with a smaller order number (`aliyun cloudfw AddControlPolicy --Direction in --AclAction accept --Proto ICMP ...`)" },
        ],
        judge: |s, _| firewall::judge(s),
    },
    Check {
        id: SECURITY_ALERTS,
        decides: "Security Center has no unhandled urgent (fail) or suspicious (warn) alert for this instance in the last 7 days; the connection-tracking fill as in-guest evidence of an outbound flood",
        evidence: &["Security Center DescribeSuspEvents (unhandled, serious and suspicious, 7 days)", "/proc/sys/net/netfilter/nf_conntrack_count and _max"],
        causes: &[
            Cause { id: "instance_compromised", cause: "the instance is compromised (an urgent alert), and may be penalised for attacking others", remedy: "handle the alert in the Security Center console; isolate, clean, rotate credentials, and open a ticket to lift a penalty" },
        ],
        judge: |s, _| security_alerts::judge(s),
    },
];

/// A part read from a product the account may not use (Cloud Firewall, Security Center):
/// not bought, or not granted to the RAM role, is `skipped` naming the action (the other
/// checks are unaffected); any other failure is `unknown`.
fn optional_part_failed(id: &str, why: &str, product: &str) -> Finding {
    let lower = why.to_ascii_lowercase();
    if why.contains("not permitted to the RAM role") {
        Finding::skipped(id, format!("{product} not read: {why}")).remedy([
            "to judge it, grant the instance's RAM role the read-only actions in /usr/share/ecs-diag/ram-policy.json (RAM console → Roles → the role → Grant Permission)".to_string(),
        ])
    } else if why.contains("cannot reach") {
        // The packaged unit lets the daemon reach only the VPC-internal range; these products
        // answer at public endpoints. Not reading them is a choice of the unit, not a fault.
        Finding::skipped(id, format!("{product} not read: {why}")).remedy([
            "the packaged unit lets the daemon reach only localhost and 100.64.0.0/10: to judge this, `systemctl edit ecs-diag` and add `IPAddressAllow=` the endpoint's addresses, or point [cloud.endpoints] at a reachable one".to_string(),
        ])
    } else if [
        "notbuy",
        "notopen",
        "notactivat",
        "not_buy",
        "notpurchase",
        "noinstance",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        Finding::skipped(
            id,
            format!("{product} is not in use on this account: {why}"),
        )
    } else {
        Finding::unknown(id, format!("cannot tell: {why}"))
    }
}

/// The cloud facts, or the finding that says why there are none.
fn facts<'a>(s: &'a Snapshot, id: &str) -> Result<&'a CloudFacts, Finding> {
    match &s.cloud {
        CloudState::Ok(f) => Ok(f),
        CloudState::NotProbed { reason } => {
            let f = Finding::skipped(id, format!("cloud side not read: {reason}"));
            Err(if reason.contains("RAM role") {
                f.remedy([crate::sources::cloud::ATTACH_ROLE.to_string()])
            } else {
                f
            })
        }
        CloudState::Failed { reason } => Err(Finding::unknown(
            id,
            format!("cloud side not read: {reason}"),
        )),
    }
}

/// One part of the cloud facts, or `unknown` naming the call that failed (with the policy to
/// grant where the RAM role may not call it).
fn part<'a, T>(g: &'a Gathered<T>, id: &str) -> Result<&'a T, Finding> {
    match g {
        Gathered::Ok(v) => Ok(v),
        Gathered::Failed(why) => {
            let f = Finding::unknown(id, format!("cannot tell: {why}"));
            Err(if why.contains("not permitted to the RAM role") {
                f.remedy([
                    "grant the instance's RAM role this read-only policy (/usr/share/ecs-diag/ram-policy.json): RAM console → Roles → the role → Grant Permission → a custom policy with:".to_string(),
                    RAM_POLICY.trim().to_string(),
                ])
            } else if why.contains("cannot reach") {
                f.remedy([
                    "the packaged unit lets the daemon reach only localhost and 100.64.0.0/10 (the VPC-internal endpoints): for another endpoint, `systemctl edit ecs-diag` and add `IPAddressAllow=` its addresses, or point [cloud.endpoints] at a reachable one".to_string(),
                ])
            } else {
                f
            })
        }
    }
}

/// Who the flows are judged for: `--client`, else the stand-in Internet address.
fn peer(s: &Snapshot) -> (IpAddr, bool) {
    match s.client {
        Some(c) => (c, true),
        None => (IpAddr::V4(s.stand_in()), false),
    }
}

fn peer_name(peer: IpAddr, given: bool) -> String {
    if given {
        format!("client {peer}")
    } else {
        format!("any Internet client (judged for {peer}; pass --client to judge yours)")
    }
}

fn echo_protocol(peer: IpAddr) -> &'static str {
    if peer.is_ipv6() {
        "ICMPV6"
    } else {
        "ICMP"
    }
}

pub fn instance(s: &Snapshot) -> Finding {
    let f = match facts(s, INSTANCE) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let i = match part(&f.instance, INSTANCE) {
        Ok(i) => i,
        Err(f) => return f,
    };
    let evidence = json!({"instance_id": i.id, "status": i.status, "locks": i.locks});
    let lock_text = |l: &str| match l {
        "financial" => "financial (overdue payment)".to_string(),
        "security" => "security (locked for a violation)".to_string(),
        other => other.to_string(),
    };
    if !i.locks.is_empty() {
        let locks: Vec<String> = i.locks.iter().map(|l| lock_text(l)).collect();
        return Finding::fail(
            INSTANCE,
            format!("{} is locked: {} (status {})", i.id, locks.join(", "), i.status),
        ).cause("operation_lock")
        .evidence(evidence)
        .remedy(["settle the overdue payment in the Billing console (financial), or open a ticket with Alibaba Cloud about the security lock".to_string()]);
    }
    if i.status != "Running" {
        return Finding::fail(
            INSTANCE,
            format!("{} is {}, not Running: nothing answers while it is not", i.id, i.status),
        ).cause("instance_not_running")
        .evidence(evidence)
        .remedy([format!(
            "start it: ECS console → Instances → Start, or `aliyun ecs StartInstance --InstanceId {}`",
            i.id
        )]);
    }
    Finding::ok(INSTANCE, format!("{} is Running, no operation lock", i.id)).evidence(evidence)
}

/// The ENIs whose groups decide: the primary ENI (the metadata's MAC; else the instance's own
/// group list), and any other ENI holding a public IP (an EIP bound to it), each with its
/// groups.
fn judged_enis<'a>(
    s: &Snapshot,
    f: &'a CloudFacts,
    groups: &'a [SecurityGroup],
) -> Vec<(Option<String>, Vec<SecurityGroup>)> {
    let of = |ids: &[String]| -> Vec<SecurityGroup> {
        groups
            .iter()
            .filter(|g| ids.contains(&g.id))
            .cloned()
            .collect()
    };
    let mac = s.metadata.ok().map(|m| m.mac.to_ascii_lowercase());
    let enis = f.enis.ok().map(Vec::as_slice).unwrap_or_default();
    let primary = enis
        .iter()
        .find(|e| e.mac.as_deref().map(str::to_ascii_lowercase) == mac)
        .or_else(|| enis.first());
    let mut out = vec![match (primary, f.instance.ok()) {
        (Some(e), _) => (Some(e.id.clone()), of(&e.security_group_ids)),
        (None, Ok(i)) => (None, of(&i.security_group_ids)),
        _ => (None, groups.to_vec()),
    }];
    for e in enis.iter().filter(|e| e.public_ip.is_some()) {
        if Some(&e.id) != primary.map(|p| &p.id) {
            out.push((Some(e.id.clone()), of(&e.security_group_ids)));
        }
    }
    out
}

/// The verdict text for one flow's decision.
fn decision_text(d: &Decision) -> String {
    match d {
        Decision::Rule { group, rule } => describe_rule(group, rule),
        Decision::Default { accept, kind } => format!(
            "no rule matched: {} by the {} groups' default",
            if *accept { "accepted" } else { "denied" },
            match kind {
                SecurityGroupKind::Normal => "normal",
                SecurityGroupKind::Enterprise => "enterprise",
            }
        ),
        Decision::Uncertain { group, rule, why } => {
            format!(
                "cannot tell: {} may match first ({why})",
                describe_rule(group, rule)
            )
        }
        Decision::NoGroups => "the ENI is in no security group".to_string(),
    }
}

pub fn security_group(s: &Snapshot) -> Finding {
    let f = match facts(s, SECURITY_GROUP) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let all = match part(&f.security_groups, SECURITY_GROUP) {
        Ok(g) => g,
        Err(f) => return f,
    };
    let mut findings: Vec<Finding> = judged_enis(s, f, all)
        .into_iter()
        .map(|(eni, groups)| security_group_of(s, f, eni, &groups))
        .collect();
    // The worst ENI's verdict decides; the others are in its evidence.
    findings.sort_by_key(|f| std::cmp::Reverse(f.status));
    let mut worst = findings.remove(0);
    if !findings.is_empty() {
        if let Some(e) = worst.evidence.as_object_mut() {
            e.insert(
                "other_enis".into(),
                findings
                    .iter()
                    .map(|f| json!({"status": f.status, "summary": f.summary, "eni": f.evidence["eni"]}))
                    .collect(),
            );
        }
        worst.summary = format!(
            "ENI {}: {}",
            worst.evidence["eni"].as_str().unwrap_or("?"),
            worst.summary
        );
    }
    worst
}

/// One ENI's groups: the echo request, each listening port, quotas.
fn security_group_of(
    s: &Snapshot,
    f: &CloudFacts,
    eni: Option<String>,
    groups: &[SecurityGroup],
) -> Finding {
    let (peer, given) = peer(s);
    let echo = Flow {
        direction: Direction::Ingress,
        protocol: echo_protocol(peer),
        port: None,
        peer,
    };
    let d = evaluate(groups, &echo);
    let verdict = decision_text(&d);
    // Listening ports (not loopback), each judged for the same peer.
    let mut ports = Vec::new();
    if let Ok(listeners) = s.listeners.ok() {
        let mut seen = std::collections::BTreeSet::new();
        for l in listeners.iter().filter(|l| !l.address.is_loopback()) {
            if l.address.is_ipv6() != peer.is_ipv6() && !l.address.is_unspecified() {
                continue;
            }
            if !seen.insert((l.proto.clone(), l.port)) {
                continue;
            }
            let flow = Flow {
                direction: Direction::Ingress,
                protocol: if l.proto == "tcp" { "TCP" } else { "UDP" },
                port: Some(l.port),
                peer,
            };
            let pd = evaluate(groups, &flow);
            ports.push(json!({
                "port": format!("{}/{}", l.proto, l.port),
                "accepted": pd.accepts(),
                "decided_by": decision_text(&pd),
            }));
        }
    }
    let warnings = quota_warnings(groups);
    // The platform blocks outbound TCP 25 on every instance: a fact, not a fault, unless this
    // one shows it needs it (a mail server listening beyond loopback).
    let mta = s.listeners.ok().ok().and_then(|ls| {
        ls.iter()
            .find(|l| l.proto == "tcp" && MAIL_PORTS.contains(&l.port) && !l.address.is_loopback())
            .map(|l| format!("tcp {}:{}", l.address, l.port))
    });
    let smtp_rule = groups
        .iter()
        .flat_map(|g| g.rules.iter().map(move |r| (g, r)))
        .find(|(_, r)| {
            r.direction == Direction::Egress
                && r.policy == Policy::Accept
                && matches!(r.protocol.to_ascii_uppercase().as_str(), "TCP" | "ALL")
                && port_range(&r.port_range).is_some_and(|(lo, hi)| (lo..=hi).contains(&25))
        })
        .map(|(g, r)| describe_rule(g, r));
    // Or it is trying right now: connections to port 25 that get no answer.
    let attempts: Vec<String> = s.smtp_attempts.ok().ok().cloned().unwrap_or_default();
    let who_needs = match (&mta, attempts.first()) {
        (_, Some(first)) => Some(format!(
            "outbound connections to port 25 get no answer ({first}{})",
            if attempts.len() > 1 {
                format!(" and {} more", attempts.len() - 1)
            } else {
                String::new()
            }
        )),
        (Some(listener), None) => Some(format!("a mail server listens on {listener}")),
        (None, None) => None,
    };
    let smtp = who_needs.map(|who| {
        format!(
            "{who}, but the platform blocks outbound TCP 25 by default whatever the security group says{}: send through port 465 (SMTP over TLS) or apply to unblock port 25 (ECS console → Security Groups → the 25 port unblock application)",
            smtp_rule.as_deref().map(|r| format!(" ({r} accepts it)")).unwrap_or_default()
        )
    });
    let evidence = json!({
        "eni": eni,
        "groups": groups.iter().map(|g| json!({"id": g.id, "kind": g.kind, "rules": g.rules.len()})).collect::<Vec<_>>(),
        "judged_for": peer.to_string(),
        "echo_request": verdict,
        "ports": ports,
        "quota": warnings,
        "outbound_tcp_25": smtp.clone().unwrap_or_else(|| "blocked by the platform by default (not by the security group); no mail server listens here, so nothing needs it".to_string()),
    });
    let who = peer_name(peer, given);
    let group_ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    let first_group = group_ids.first().copied().unwrap_or("SG");
    let region = &f.region;
    let authorize = |cidr: String| {
        vec![
            format!(
                "`aliyun ecs AuthorizeSecurityGroup --RegionId {region} --SecurityGroupId {first_group} --IpProtocol {} --PortRange -1/-1 --{} {cidr} --Priority 1 --Policy accept`",
                if peer.is_ipv6() { "icmpv6" } else { "icmp" },
                if peer.is_ipv6() { "Ipv6SourceCidrIp" } else { "SourceCidrIp" }
            ),
            format!("or ECS console → Security Groups → {first_group} → Inbound → Add Rule: Allow, {}, source {cidr}, priority 1", if peer.is_ipv6() { "ICMP(IPv6)" } else { "ICMP(IPv4)" }),
        ]
    };
    let cidr = if given {
        match peer {
            IpAddr::V4(_) => format!("{peer}/32"),
            IpAddr::V6(_) => format!("{peer}/128"),
        }
    } else if peer.is_ipv6() {
        "::/0".to_string()
    } else {
        "0.0.0.0/0".to_string()
    };
    match d.accepts() {
        None => Finding::unknown(
            SECURITY_GROUP,
            format!("echo request from {who}: {verdict}"),
        )
        .evidence(evidence),
        Some(false) => {
            // Without --client, a group that accepts echo only from some sources is a choice,
            // not a fault: said, not failed.
            let narrower = (!given).then(|| {
                groups.iter().flat_map(|g| g.rules.iter().map(move |r| (g, r))).find(|(_, r)| {
                    r.direction == Direction::Ingress
                        && r.policy == Policy::Accept
                        && matches!(r.protocol.to_ascii_uppercase().as_str(), "ICMP" | "ICMPV6" | "ALL")
                })
            }).flatten();
            let mut remedy = match &d {
                Decision::Rule { group, rule } => vec![format!(
                    "{} decides: delete it (`aliyun ecs RevokeSecurityGroup --RegionId {region} --SecurityGroupId {} --SecurityGroupRuleId.1 {}`) or add an Accept rule with a smaller priority number",
                    describe_rule(group, rule),
                    group.id,
                    rule.rule_id.as_deref().unwrap_or("RULE")
                )],
                _ => Vec::new(),
            };
            remedy.extend(authorize(cidr));
            let deny_cause = if matches!(d, Decision::Rule { .. }) {
                "sg_drop_rule"
            } else {
                "sg_no_icmp_accept"
            };
            match narrower {
                Some((g, r)) => Finding::warn(
                    SECURITY_GROUP,
                    format!(
                        "the security groups accept echo requests only from some sources ({}); {who}: {verdict}",
                        describe_rule(g, r)
                    ),
                ).cause("sg_no_icmp_accept"),
                None => Finding::fail(
                    SECURITY_GROUP,
                    format!("security group {} denies the echo request from {who}: {verdict}", group_ids.join(", ")),
                ).cause(deny_cause),
            }
            .evidence(evidence)
            .remedy(remedy)
        }
        Some(true) if !warnings.is_empty() || smtp.is_some() => Finding::warn(
            SECURITY_GROUP,
            format!(
                "echo request from {who} accepted ({verdict}); {}",
                warnings.iter().cloned().chain(smtp.clone()).collect::<Vec<_>>().join("; ")
            ),
        ).cause(if warnings.is_empty() { "smtp_blocked" } else { "sg_quota" })
        .evidence(evidence)
        .remedy(
            warnings
                .first()
                .map(|_| "merge rules (port ranges, prefix lists) or split the ENI's groups before the quota blocks the next change".to_string())
                .into_iter()
                .chain(smtp.as_ref().map(|_| "send mail through port 465 (SMTP over TLS), or apply to unblock outbound TCP 25 in the ECS console".to_string())),
        ),
        Some(true) => Finding::ok(
            SECURITY_GROUP,
            format!("echo request from {who} accepted: {verdict}"),
        )
        .evidence(evidence),
    }
}

pub fn network_acl(s: &Snapshot) -> Finding {
    let f = match facts(s, NETWORK_ACL) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let acl = match part(&f.network_acl, NETWORK_ACL) {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Finding::ok(NETWORK_ACL, "the vSwitch has no network ACL")
                .evidence(json!({"network_acl": null}))
        }
        Err(f) => return f,
    };
    let (peer, given) = peer(s);
    let who = peer_name(peer, given);
    let proto = echo_protocol(peer);
    let request = evaluate_acl(
        &acl.ingress,
        &Flow {
            direction: Direction::Ingress,
            protocol: proto,
            port: None,
            peer,
        },
    );
    let reply = evaluate_acl(
        &acl.egress,
        &Flow {
            direction: Direction::Egress,
            protocol: proto,
            port: None,
            peer,
        },
    );
    let text = |d: &AclDecision, ingress: bool| match d {
        AclDecision::Entry(e) => describe_acl_entry(acl, e, ingress),
        AclDecision::NoMatch => format!(
            "{} {}: no entry matched: denied",
            acl.id,
            if ingress { "inbound" } else { "outbound" }
        ),
        AclDecision::Uncertain { entry, why } => format!(
            "cannot tell: {} may match first ({why})",
            describe_acl_entry(acl, entry, ingress)
        ),
    };
    let (req_text, rep_text) = (text(&request, true), text(&reply, false));
    let evidence = json!({
        "network_acl": acl.id, "judged_for": peer.to_string(),
        "echo_request": req_text, "echo_reply": rep_text,
        "inbound_entries": acl.ingress.len(), "outbound_entries": acl.egress.len(),
    });
    let mut fails = Vec::new();
    let mut remedy = Vec::new();
    if request.accepts() == Some(false) {
        fails.push(format!("the echo request from {who} is denied: {req_text}"));
        remedy.push(format!("VPC console → Network ACL → {} → Inbound Rules: add an Accept entry for ICMP from {} above the deciding entry", acl.id, if given { peer.to_string() } else { "0.0.0.0/0".into() }));
    }
    if reply.accepts() == Some(false) {
        fails.push(format!(
            "the echo reply to {who} is denied (network ACLs are stateless): {rep_text}"
        ));
        remedy.push(format!("VPC console → Network ACL → {} → Outbound Rules: add an Accept entry for ICMP to {} above the deciding entry", acl.id, if given { peer.to_string() } else { "0.0.0.0/0".into() }));
    }
    if !fails.is_empty() {
        return Finding::fail(NETWORK_ACL, fails.join("; "))
            .cause(if request.accepts() == Some(false) {
                "acl_ingress_drops"
            } else {
                "acl_egress_drops"
            })
            .evidence(evidence)
            .remedy(remedy);
    }
    if request.accepts().is_none() || reply.accepts().is_none() {
        return Finding::unknown(
            NETWORK_ACL,
            format!("request: {req_text}; reply: {rep_text}"),
        )
        .evidence(evidence);
    }
    Finding::ok(
        NETWORK_ACL,
        format!(
            "echo request from {who} and its reply pass network ACL {}: {req_text}; {rep_text}",
            acl.id
        ),
    )
    .evidence(evidence)
}

pub fn route(s: &Snapshot) -> Finding {
    let f = match facts(s, ROUTE) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let gateway = match part(&f.ipv4_gateway, ROUTE) {
        Ok(g) => g.as_deref(),
        Err(f) => return f,
    };
    let Some(gw) = gateway else {
        return Finding::ok(
            ROUTE,
            "the VPC has no IPv4 gateway enabled: public traffic takes the system route",
        )
        .evidence(json!({"ipv4_gateway": null}));
    };
    let routes = match part(&f.routes, ROUTE) {
        Ok(r) => r,
        Err(f) => return f,
    };
    let (peer, given) = peer(s);
    let target = if peer.is_ipv6() {
        IpAddr::V4(s.stand_in())
    } else {
        peer
    };
    let table = f
        .route_table
        .as_deref()
        .unwrap_or("the vSwitch's route table");
    let evidence = json!({
        "ipv4_gateway": gw,
        "route_table": f.route_table,
        "judged_for": target.to_string(),
        "routes": routes.iter().map(|r| format!("{} → {} {}", r.destination, r.next_hop_type, r.next_hop_id.as_deref().unwrap_or(""))).collect::<Vec<_>>(),
    });
    match route_to_internet(routes, Some(gw), target) {
        Ok(r) => Finding::ok(
            ROUTE,
            format!(
                "public traffic to {} leaves by {}",
                peer_name(target, given),
                r.map(|r| format!("{} → {} {}", r.destination, r.next_hop_type, gw))
                    .unwrap_or_default()
            ),
        )
        .evidence(evidence),
        Err(why) => Finding::fail(ROUTE, format!("route table {table}: {why}"))
            .evidence(evidence)
            .remedy([
                format!("VPC console → Route Tables → {table} → Add Route Entry: destination 0.0.0.0/0, next hop type IPv4 Gateway, {gw}"),
                format!(
                    "`aliyun vpc CreateRouteEntry --RegionId {} --RouteTableId {table} --DestinationCidrBlock 0.0.0.0/0 --NextHopType Ipv4Gateway --NextHopId {gw}` (where a wrong 0.0.0.0/0 entry exists, delete it first with DeleteRouteEntry)",
                    f.region
                ),
            ]),
    }
}

pub fn public_ip(s: &Snapshot) -> Finding {
    let f = match facts(s, PUBLIC_IP) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let i = match part(&f.instance, PUBLIC_IP) {
        Ok(i) => i,
        Err(f) => return f,
    };
    let eips = match part(&f.eips, PUBLIC_IP) {
        Ok(e) => e,
        Err(f) => return f,
    };
    let eni_ips: Vec<std::net::Ipv4Addr> = f
        .enis
        .ok()
        .map(|e| e.iter().filter_map(|e| e.public_ip).collect())
        .unwrap_or_default();
    let md = s.metadata.ok();
    let md_ip = md.and_then(|m| m.eipv4.or(m.public_ipv4));
    let mut bound: Vec<std::net::Ipv4Addr> = i.public_ips.clone();
    bound.extend(i.eip);
    bound.extend(eni_ips.iter().copied());
    bound.sort();
    bound.dedup();
    let evidence = json!({
        "public_ips": i.public_ips, "eip": i.eip, "eni_public_ips": eni_ips,
        "eips": eips.iter().map(|e| json!({"allocation_id": e.allocation_id, "ip": e.ip, "status": e.status, "bound_to": e.bound_to})).collect::<Vec<_>>(),
        "metadata_public_ip": md_ip,
    });
    let idle: Vec<String> = eips
        .iter()
        .filter(|e| e.status != "InUse")
        .map(|e| {
            format!(
                "EIP {} ({}) is {}, not InUse",
                e.ip, e.allocation_id, e.status
            )
        })
        .collect();
    if bound.is_empty() {
        let mut why = format!(
            "{} has no public IP and no EIP bound: nothing on the Internet can reach it",
            i.id
        );
        if !idle.is_empty() {
            why.push_str(&format!("; {}", idle.join("; ")));
        }
        return Finding::fail(PUBLIC_IP, why).cause("no_public_ip").evidence(evidence).remedy([format!(
            "allocate and associate an EIP: `aliyun vpc AllocateEipAddress --RegionId {}` then `aliyun vpc AssociateEipAddress --AllocationId ALLOCATION --InstanceId {}`",
            f.region, i.id
        )]);
    }
    if !idle.is_empty() {
        return Finding::fail(PUBLIC_IP, idle.join("; "))
            .cause("eip_not_in_use")
            .evidence(evidence)
            .remedy([
                "VPC console → Elastic IP Addresses → Associate with this instance".to_string(),
            ]);
    }
    let list: Vec<String> = bound.iter().map(|b| b.to_string()).collect();
    if let Some(m) = md_ip.filter(|m| !bound.contains(m)) {
        return Finding::warn(
            PUBLIC_IP,
            format!("the metadata says the public IP is {m}, the cloud API says {}: the binding changed; ping the API's address", list.join(", ")),
        ).cause("public_ip_changed")
        .evidence(evidence);
    }
    Finding::ok(PUBLIC_IP, format!("public IP bound: {}", list.join(", "))).evidence(evidence)
}

pub fn blackhole(s: &Snapshot) -> Finding {
    let f = match facts(s, BLACKHOLE) {
        Ok(f) => f,
        Err(f) => return f,
    };
    // Anti-DDoS answers at a public endpoint the packaged unit does not let the daemon reach:
    // not read by configuration is `skipped` (with how to allow it), not a lasting `unknown`
    // on every healthy instance.
    if let Gathered::Failed(why) = &f.blackhole {
        if why.contains("cannot reach") {
            return optional_part_failed(BLACKHOLE, why, "Anti-DDoS");
        }
    }
    let b = match part(&f.blackhole, BLACKHOLE) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Finding::skipped(BLACKHOLE, "no public IP to ask Anti-DDoS about")
                .evidence(json!({"ip": null}))
        }
        Err(f) => return f,
    };
    let ends = b.ends_at.map(|t| crate::rfc3339_ms(t.saturating_mul(1000)));
    let evidence = json!({"ip": b.ip, "status": b.status, "ends_at": ends});
    match &b.status {
        DdosState::Normal => Finding::ok(BLACKHOLE, format!("{} is not in blackhole filtering", b.ip)).evidence(evidence),
        DdosState::Blackholed => Finding::fail(
            BLACKHOLE,
            format!(
                "{} is in Anti-DDoS blackhole filtering: every packet to it is dropped upstream{}",
                b.ip,
                ends.as_deref().map(|e| format!(" until {e}")).unwrap_or_else(|| " (end time not published)".to_string())
            ),
        )
        .cause("blackholed")
        .evidence(evidence)
        .remedy(["wait for the blackhole to end, or deactivate it early in the Anti-DDoS console (Traffic Security → Anti-DDoS Origin → Assets); an attack that repeats needs Anti-DDoS Pro".to_string()]),
        DdosState::Scrubbing => Finding::warn(
            BLACKHOLE,
            format!("{} is under DDoS attack and its traffic is being scrubbed: clean traffic passes, but probes may be dropped", b.ip),
        )
        .cause("ddos_scrubbing")
        .evidence(evidence),
        DdosState::Other(word) => Finding::unknown(
            BLACKHOLE,
            format!("Anti-DDoS says {word:?} for {}: not a status this version knows", b.ip),
        )
        .evidence(evidence),
    }
}

/// The failing `cloud.*` findings: what stops echo requests before the guest, for `icmp.live`
/// and `watch` to name instead of an inference.
pub fn blocking(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.id.starts_with("cloud.") && f.status == crate::report::Status::Fail)
        .map(|f| format!("{}: {}", f.id, f.summary))
        .collect()
}

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
        Some(r)
            if r.next_hop_type == "Ipv4Gateway"
                && r.next_hop_id.as_deref().is_none_or(|id| id == gw) =>
        {
            Ok(Some(r))
        }
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
        crate::checks::fixture::sg_rule(
            &format!("sgr-{proto}-{priority}-{policy:?}"),
            dir,
            proto,
            ports,
            peer,
            policy,
            priority,
        )
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
        assert!(route_to_internet(&ok, Some("Ipv4Gateway-id"), client)
            .unwrap()
            .is_some());
        // The default route to another VPC's (or a deleted) IPv4 gateway is not this one.
        let e = route_to_internet(&ok, Some("ipv4gw-made-up"), client).unwrap_err();
        assert!(e.contains("not to IPv4 gateway ipv4gw-made-up"), "{e}");
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

    mod checks {
        use super::super::*;
        use crate::checks::fixture::*;
        use crate::report::Status;
        use crate::snapshot::{Blackhole, CloudEip, Listener, MetadataState};

        fn judged(edit: impl FnOnce(&mut Snapshot), id: &str) -> Finding {
            let mut s = healthy();
            edit(&mut s);
            crate::checks::evaluate(&s, &criteria())
                .into_iter()
                .find(|f| f.id == id)
                .unwrap()
        }

        fn status(edit: impl FnOnce(&mut Snapshot), id: &str) -> (Status, String) {
            let f = judged(edit, id);
            (f.status, f.summary)
        }

        const ALL: [&str; 6] = [
            INSTANCE,
            SECURITY_GROUP,
            NETWORK_ACL,
            ROUTE,
            PUBLIC_IP,
            BLACKHOLE,
        ];

        #[test]
        fn healthy_cloud_is_ok_everywhere() {
            for id in ALL {
                let (st, why) = status(|_| {}, id);
                assert_eq!(st, Status::Ok, "{id}: {why}");
            }
        }

        /// No RAM role: skipped with how to attach one; the metadata service failing: unknown;
        /// one call denied: unknown naming the action, with the policy to grant.
        #[test]
        fn skipped_and_unknown_paths() {
            for id in ALL {
                let f = judged(
                    |s| {
                        s.cloud = CloudState::NotProbed {
                            reason: "no RAM role is attached to the instance".into(),
                        }
                    },
                    id,
                );
                assert_eq!(f.status, Status::Skipped, "{id}");
                assert!(
                    f.remedy[0].contains("AttachInstanceRamRole"),
                    "{:?}",
                    f.remedy
                );
                let f = judged(
                    |s| {
                        s.cloud = CloudState::Failed {
                            reason: "metadata service: timed out".into(),
                        }
                    },
                    id,
                );
                assert_eq!(f.status, Status::Unknown, "{id}");
                assert!(f.summary.contains("timed out"), "{}", f.summary);
            }
            let denied = "DescribeNetworkAclAttributes: not permitted to the RAM role (Forbidden.RAM); the policy needs DescribeNetworkAclAttributes";
            let f = judged(
                |s| cloud_mut(s).network_acl = Gathered::Failed(denied.into()),
                NETWORK_ACL,
            );
            assert_eq!(f.status, Status::Unknown);
            assert!(f.summary.contains("DescribeNetworkAclAttributes"));
            assert!(
                f.remedy
                    .join("\n")
                    .contains("vpc:DescribeNetworkAclAttributes"),
                "{:?}",
                f.remedy
            );
            for (id, edit) in [
                (
                    INSTANCE,
                    Box::new(|f: &mut CloudFacts| {
                        f.instance = Gathered::Failed("x: throttled".into())
                    }) as Box<dyn Fn(&mut CloudFacts)>,
                ),
                (
                    SECURITY_GROUP,
                    Box::new(|f: &mut CloudFacts| {
                        f.security_groups = Gathered::Failed("x: throttled".into())
                    }),
                ),
                (
                    ROUTE,
                    Box::new(|f: &mut CloudFacts| {
                        f.routes = Gathered::Failed("x: throttled".into())
                    }),
                ),
                (
                    PUBLIC_IP,
                    Box::new(|f: &mut CloudFacts| f.eips = Gathered::Failed("x: throttled".into())),
                ),
                (
                    BLACKHOLE,
                    Box::new(|f: &mut CloudFacts| {
                        f.blackhole = Gathered::Failed("x: throttled".into())
                    }),
                ),
            ] {
                let (st, why) = status(|s| edit(cloud_mut(s)), id);
                assert_eq!(st, Status::Unknown, "{id}: {why}");
                assert!(why.contains("throttled"), "{why}");
            }
        }

        #[test]
        fn instance_state_and_locks() {
            let (st, why) = status(
                |s| {
                    if let Gathered::Ok(i) = &mut cloud_mut(s).instance {
                        i.status = "Stopped".into();
                    }
                },
                INSTANCE,
            );
            assert_eq!(st, Status::Fail);
            assert!(why.contains("Stopped, not Running"), "{why}");
            let (st, why) = status(
                |s| {
                    if let Gathered::Ok(i) = &mut cloud_mut(s).instance {
                        i.locks = vec!["financial".into()];
                    }
                },
                INSTANCE,
            );
            assert_eq!(st, Status::Fail);
            assert!(why.contains("overdue payment"), "{why}");
        }

        fn groups(s: &mut Snapshot) -> &mut Vec<SecurityGroup> {
            match &mut cloud_mut(s).security_groups {
                Gathered::Ok(g) => g,
                _ => unreachable!(),
            }
        }

        #[test]
        fn security_group_verdicts_name_the_deciding_rule() {
            // No ICMP rule: the normal group's default denies it.
            let f = judged(
                |s| groups(s)[0].rules.retain(|r| r.protocol != "ICMP"),
                SECURITY_GROUP,
            );
            assert_eq!(f.status, Status::Fail, "{}", f.summary);
            assert!(
                f.summary
                    .contains("no rule matched: denied by the normal groups' default"),
                "{}",
                f.summary
            );
            assert!(
                f.remedy.iter().any(|r| r.contains("AuthorizeSecurityGroup")
                    && r.contains("--SourceCidrIp 0.0.0.0/0")),
                "{:?}",
                f.remedy
            );
            // A higher-priority Drop beats the Accept; with --client the remedy names the /32.
            let f = judged(
                |s| {
                    s.client = Some(ip("198.18.0.2"));
                    groups(s)[0].rules.push(sg_rule(
                        "sgr-drop",
                        Direction::Ingress,
                        "ALL",
                        "-1/-1",
                        "198.18.0.0/16",
                        Policy::Drop,
                        1,
                    ));
                },
                SECURITY_GROUP,
            );
            assert_eq!(f.status, Status::Fail);
            assert!(
                f.summary
                    .contains("sg-web rule sgr-drop: priority 1, Drop ALL"),
                "{}",
                f.summary
            );
            assert!(
                f.remedy
                    .iter()
                    .any(|r| r.contains("RevokeSecurityGroup") && r.contains("sgr-drop")),
                "{:?}",
                f.remedy
            );
            assert!(
                f.remedy.iter().any(|r| r.contains("198.18.0.2/32")),
                "{:?}",
                f.remedy
            );
            // Echo accepted only from an office range: without --client a warning, not a fail.
            let f = judged(
                |s| {
                    let r = &mut groups(s)[0].rules[0];
                    r.peer_cidr = Some("198.51.100.0/24".parse().unwrap());
                },
                SECURITY_GROUP,
            );
            assert_eq!(f.status, Status::Warn, "{}", f.summary);
            assert!(
                f.summary.contains("only from some sources"),
                "{}",
                f.summary
            );
            // Quota: 180 of 200 rules is a warning even while echo passes.
            let f = judged(
                |s| {
                    for i in 0..178 {
                        groups(s)[0].rules.push(sg_rule(
                            &format!("sgr-{i}"),
                            Direction::Ingress,
                            "TCP",
                            "8080/8080",
                            "10.0.0.0/8",
                            Policy::Accept,
                            50,
                        ));
                    }
                },
                SECURITY_GROUP,
            );
            assert_eq!(f.status, Status::Warn);
            assert!(
                f.summary.contains("holds 180 of its 200 rules"),
                "{}",
                f.summary
            );
            // A prefix list ahead of everything: cannot tell.
            let f = judged(
                |s| {
                    let mut r = sg_rule(
                        "sgr-pl",
                        Direction::Ingress,
                        "ICMP",
                        "-1/-1",
                        "0.0.0.0/0",
                        Policy::Drop,
                        1,
                    );
                    r.peer_cidr = None;
                    r.peer_prefix_list = Some("pl-made-up".into());
                    groups(s)[0].rules.insert(0, r);
                },
                SECURITY_GROUP,
            );
            assert_eq!(f.status, Status::Unknown, "{}", f.summary);
            // Outbound TCP 25 accepted by the group: the platform still blocks it.
            let f = judged(
                |s| {
                    groups(s)[0].rules.push(sg_rule(
                        "sgr-smtp",
                        Direction::Egress,
                        "TCP",
                        "25/25",
                        "0.0.0.0/0",
                        Policy::Accept,
                        1,
                    ))
                },
                SECURITY_GROUP,
            );
            // Every default group accepts all outbound: with no mail server that is evidence,
            // not a warning (issue 30).
            assert_eq!(f.status, Status::Ok, "{}", f.summary);
            assert!(f.evidence["outbound_tcp_25"]
                .as_str()
                .unwrap()
                .contains("no mail server listens"));
            // A mail server listening beyond loopback: now it matters, and is named.
            let with_mta = |address: &str| {
                let address: std::net::IpAddr = address.parse().unwrap();
                judged(
                    move |s| {
                        groups(s)[0].rules.push(sg_rule(
                            "sgr-out-all",
                            Direction::Egress,
                            "ALL",
                            "-1/-1",
                            "0.0.0.0/0",
                            Policy::Accept,
                            1,
                        ));
                        s.listeners = Gathered::Ok(vec![crate::snapshot::Listener {
                            proto: "tcp".into(),
                            address,
                            port: 25,
                        }]);
                    },
                    SECURITY_GROUP,
                )
            };
            let f = with_mta("0.0.0.0");
            assert_eq!(f.status, Status::Warn);
            assert!(
                f.summary
                    .contains("a mail server listens on tcp 0.0.0.0:25")
                    && f.summary.contains("platform blocks outbound TCP 25")
                    && f.summary.contains("sgr-out-all"),
                "{}",
                f.summary
            );
            assert!(f.remedy.join(" ").contains("port 465"), "{:?}", f.remedy);
            // A local-only MTA (the distribution default) sends nothing out itself.
            assert_eq!(with_mta("127.0.0.1").status, Status::Ok);
            // A sender stuck on port 25 right now: warned, naming the connection.
            let f = judged(
                |s| {
                    s.smtp_attempts =
                        Gathered::Ok(vec!["10.77.0.10:40000 → 198.51.100.25:25 (SYN_SENT)".into()])
                },
                SECURITY_GROUP,
            );
            assert_eq!(f.status, Status::Warn);
            assert!(
                f.summary.contains("outbound connections to port 25 get no answer (10.77.0.10:40000 → 198.51.100.25:25 (SYN_SENT))"),
                "{}",
                f.summary
            );
        }

        /// An ENI holding an EIP is judged with its own groups too; the worst decides.
        #[test]
        fn the_eni_holding_the_pinged_address_is_judged_too() {
            let f = judged(
                |s| {
                    let c = cloud_mut(s);
                    if let Gathered::Ok(e) = &mut c.enis {
                        e.push(crate::snapshot::CloudEni {
                            id: "eni-second".into(),
                            mac: Some("00:16:3e:00:00:02".into()),
                            security_group_ids: vec!["sg-private".into()],
                            private_ips: vec![v4("10.77.2.10")],
                            public_ip: Some(v4("198.51.100.20")),
                        });
                    }
                    if let Gathered::Ok(g) = &mut c.security_groups {
                        g.push(SecurityGroup {
                            id: "sg-private".into(),
                            kind: SecurityGroupKind::Enterprise,
                            rules: vec![],
                        });
                    }
                },
                SECURITY_GROUP,
            );
            assert_eq!(f.status, Status::Fail, "{}", f.summary);
            assert!(
                f.summary
                    .starts_with("ENI eni-second: security group sg-private denies")
                    && f.summary.contains("enterprise groups' default"),
                "{}",
                f.summary
            );
            assert_eq!(f.evidence["other_enis"][0]["eni"], "eni-primary");
        }

        #[test]
        fn security_group_judges_each_listening_port() {
            let f = judged(
                |s| {
                    s.listeners = Gathered::Ok(vec![
                        Listener {
                            proto: "tcp".into(),
                            address: ip("0.0.0.0"),
                            port: 22,
                        },
                        Listener {
                            proto: "tcp".into(),
                            address: ip("0.0.0.0"),
                            port: 8080,
                        },
                        Listener {
                            proto: "tcp".into(),
                            address: ip("127.0.0.1"),
                            port: 9717,
                        },
                    ])
                },
                SECURITY_GROUP,
            );
            assert_eq!(f.status, Status::Ok);
            let ports = f.evidence["ports"].as_array().unwrap();
            assert_eq!(ports.len(), 2, "{ports:?}");
            assert_eq!(ports[0]["accepted"], true);
            assert!(ports[0]["decided_by"].as_str().unwrap().contains("sgr-ssh"));
            assert_eq!(ports[1]["accepted"], false);
            assert!(ports[1]["decided_by"].as_str().unwrap().contains("default"));
        }

        fn acl(s: &mut Snapshot) -> &mut NetworkAcl {
            match &mut cloud_mut(s).network_acl {
                Gathered::Ok(Some(a)) => a,
                _ => unreachable!(),
            }
        }

        #[test]
        fn network_acl_is_stateless() {
            let f = judged(
                |s| {
                    acl(s).ingress.insert(
                        0,
                        acl_entry("nae-noping", Policy::Drop, "icmp", "0.0.0.0/0"),
                    )
                },
                NETWORK_ACL,
            );
            assert_eq!(f.status, Status::Fail);
            assert!(
                f.summary.contains("inbound entry nae-noping"),
                "{}",
                f.summary
            );
            // The reply is judged on its own: nothing outbound matches ICMP → denied.
            let f = judged(
                |s| acl(s).egress = vec![acl_entry("nae-web", Policy::Accept, "tcp", "0.0.0.0/0")],
                NETWORK_ACL,
            );
            assert_eq!(f.status, Status::Fail);
            assert!(
                f.summary.contains("echo reply") && f.summary.contains("no entry matched"),
                "{}",
                f.summary
            );
            assert!(f.remedy[0].contains("Outbound Rules"));
            let (st, _) = status(
                |s| cloud_mut(s).network_acl = Gathered::Ok(None),
                NETWORK_ACL,
            );
            assert_eq!(st, Status::Ok);
            let f = judged(
                |s| {
                    let mut e = acl_entry("nae-odd", Policy::Drop, "all", "0.0.0.0/0");
                    e.port_range = "x".into();
                    acl(s).ingress.insert(0, e);
                    s.listeners = Gathered::Ok(vec![]);
                },
                NETWORK_ACL,
            );
            // ICMP has no ports: an unreadable port range does not matter to it.
            assert_eq!(f.status, Status::Fail, "{}", f.summary);
        }

        #[test]
        fn route_table_needs_the_ipv4_gateway() {
            let f = judged(
                |s| {
                    if let Gathered::Ok(r) = &mut cloud_mut(s).routes {
                        r.retain(|r| r.next_hop_type != "Ipv4Gateway");
                    }
                },
                ROUTE,
            );
            assert_eq!(f.status, Status::Fail);
            assert!(
                f.summary.contains("0.0.0.0/0 → ipv4gw-made-up")
                    && f.summary.contains("route table vtb-made-up"),
                "{}",
                f.summary
            );
            let remedy = f.remedy.join("\n");
            assert!(
                remedy.contains("CreateRouteEntry --RegionId cn-made-up --RouteTableId vtb-made-up --DestinationCidrBlock 0.0.0.0/0 --NextHopType Ipv4Gateway --NextHopId ipv4gw-made-up"),
                "{remedy}"
            );
            let (st, why) = status(
                |s| {
                    cloud_mut(s).ipv4_gateway =
                        Gathered::Failed("ListIpv4Gateways: throttled".into())
                },
                ROUTE,
            );
            assert_eq!(st, Status::Unknown);
            assert!(why.contains("ListIpv4Gateways"), "{why}");
            let (st, why) = status(|s| cloud_mut(s).ipv4_gateway = Gathered::Ok(None), ROUTE);
            assert_eq!(st, Status::Ok);
            assert!(why.contains("system route"));
        }

        fn border(s: &mut Snapshot) -> &mut crate::snapshot::CloudFirewall {
            match &mut cloud_mut(s).cloud_firewall {
                Gathered::Ok(f) => f,
                _ => panic!("the fixture reads Cloud Firewall"),
            }
        }

        fn drop_icmp(source: &str) -> crate::snapshot::ControlPolicy {
            crate::snapshot::ControlPolicy {
                description: Some("no\x1b[2J ping".into()),
                ..firewall::policy("acl-no-ping", 1, "drop", "ICMP", source)
            }
        }

        #[test]
        fn cloud_firewall_policies_for_the_echo() {
            let (st, why) = status(|_| {}, FIREWALL);
            assert_eq!(st, Status::Ok, "{why}");
            assert!(why.contains("no policy matched"), "{why}");
            let f = judged(
                |s| border(s).policies.push(drop_icmp("0.0.0.0/0")),
                FIREWALL,
            );
            assert_eq!(f.status, Status::Fail);
            assert!(
                f.summary.contains("drops the echo request")
                    && f.summary
                        .contains("policy acl-no-ping (order 1, no\\u{1b}[2J ping)"),
                "{}",
                f.summary
            );
            assert!(f.remedy.join(" ").contains("AddControlPolicy"));
            // A policy for other sources decides nothing for this one.
            let (st, _) = status(
                |s| border(s).policies.push(drop_icmp("10.0.0.0/8")),
                FIREWALL,
            );
            assert_eq!(st, Status::Ok);
            // By location: cannot tell.
            let (st, why) = status(
                |s| {
                    let mut p = drop_icmp("CN");
                    p.source_type = "location".into();
                    border(s).policies.push(p);
                },
                FIREWALL,
            );
            assert_eq!(st, Status::Unknown, "{why}");
            // Not protected, or not in use, or not granted: skipped, naming why.
            let (st, why) = status(
                |s| border(s).protect_status = Some("closed".into()),
                FIREWALL,
            );
            assert_eq!(st, Status::Skipped);
            assert!(why.contains("closed"), "{why}");
            let (st, why) = status(|s| border(s).protect_status = None, FIREWALL);
            assert_eq!(st, Status::Skipped);
            assert!(why.contains("does not list 203.0.113.10"), "{why}");
            let (st, why) = status(
                |s| {
                    cloud_mut(s).cloud_firewall = Gathered::Failed(
                        "DescribeAssetList: not permitted to the RAM role (Forbidden.RAM); the policy needs DescribeAssetList".into(),
                    )
                },
                FIREWALL,
            );
            assert_eq!(st, Status::Skipped);
            assert!(why.contains("DescribeAssetList"), "{why}");
            let (st, _) = status(
                |s| {
                    cloud_mut(s).cloud_firewall = Gathered::Failed(
                        "DescribeControlPolicy: the cloud calls' budget of 3000 ms ran out".into(),
                    )
                },
                FIREWALL,
            );
            assert_eq!(st, Status::Unknown);
            let (st, why) = status(
                |s| {
                    cloud_mut(s).cloud_firewall = Gathered::Failed(
                        "DescribeAssetList: cannot reach https://cloudfw.aliyuncs.com: connection refused".into(),
                    )
                },
                FIREWALL,
            );
            assert_eq!(st, Status::Skipped, "{why}");
            // The other cloud checks do not care.
            let (st, _) = status(
                |s| {
                    cloud_mut(s).cloud_firewall =
                        Gathered::Failed("x: not permitted to the RAM role".into())
                },
                SECURITY_GROUP,
            );
            assert_eq!(st, Status::Ok);
        }

        #[test]
        fn anti_ddos_out_of_the_units_reach_is_skipped_not_unknown() {
            let (st, why) = status(
                |s| {
                    cloud_mut(s).blackhole = Gathered::Failed(
                        "DescribeInstanceIpAddress: cannot reach https://antiddos.aliyuncs.com: Operation not permitted".into(),
                    )
                },
                BLACKHOLE,
            );
            assert_eq!(st, Status::Skipped, "{why}");
            let (st, _) = status(
                |s| {
                    cloud_mut(s).blackhole =
                        Gathered::Failed("DescribeInstanceIpAddress: throttled".into())
                },
                BLACKHOLE,
            );
            assert_eq!(st, Status::Unknown);
        }

        #[test]
        fn security_center_alerts() {
            let alert = |level: &str| crate::snapshot::SecurityAlert {
                id: Some(7),
                name: "Reverse shell".into(),
                level: level.into(),
                last_time: Some("2026-12-06 01:02:03".into()),
                instance_id: Some("i-made-up".into()),
                status: Some(1),
            };
            let with = |level: &'static str| {
                move |s: &mut Snapshot| {
                    cloud_mut(s).security_alerts = Gathered::Ok(vec![alert(level)])
                }
            };
            assert_eq!(status(|_| {}, SECURITY_ALERTS).0, Status::Ok);
            let f = judged(with("serious"), SECURITY_ALERTS);
            assert_eq!(f.status, Status::Fail);
            assert!(
                f.summary.contains("urgent")
                    && f.summary
                        .contains("Reverse shell (last 2026-12-06 01:02:03)"),
                "{}",
                f.summary
            );
            assert!(f.remedy.join(" ").contains("yundun.console.aliyun.com"));
            assert_eq!(status(with("suspicious"), SECURITY_ALERTS).0, Status::Warn);
            let (st, why) = status(
                |s| {
                    cloud_mut(s).security_alerts = Gathered::Failed(
                        "DescribeSuspEvents: the API refused the call: HTTP 500: x".into(),
                    )
                },
                SECURITY_ALERTS,
            );
            assert_eq!(st, Status::Unknown);
            assert!(why.contains("DescribeSuspEvents"), "{why}");
            let (st, _) = status(
                |s| {
                    cloud_mut(s).security_alerts = Gathered::Failed(
                        "DescribeSuspEvents: the API refused the call: NotBuy: no".into(),
                    )
                },
                SECURITY_ALERTS,
            );
            assert_eq!(st, Status::Skipped);
        }

        #[test]
        fn public_ip_bound_and_in_use() {
            let none = |s: &mut Snapshot| {
                if let Gathered::Ok(i) = &mut cloud_mut(s).instance {
                    i.public_ips.clear();
                }
            };
            let (st, why) = status(none, PUBLIC_IP);
            assert_eq!(st, Status::Fail);
            assert!(why.contains("no public IP and no EIP"), "{why}");
            let (st, why) = status(
                |s| {
                    none(s);
                    if let Gathered::Ok(i) = &mut cloud_mut(s).instance {
                        i.eip = Some(v4("198.51.100.7"));
                    }
                    cloud_mut(s).eips = Gathered::Ok(vec![CloudEip {
                        allocation_id: "eip-made-up".into(),
                        ip: v4("198.51.100.7"),
                        status: "Associating".into(),
                        bound_to: Some("i-made-up".into()),
                    }]);
                },
                PUBLIC_IP,
            );
            assert_eq!(st, Status::Fail);
            assert!(why.contains("Associating, not InUse"), "{why}");
            let (st, why) = status(
                |s| {
                    if let MetadataState::Ok(m) = &mut s.metadata {
                        m.public_ipv4 = Some(v4("198.51.100.9"));
                    }
                },
                PUBLIC_IP,
            );
            assert_eq!(st, Status::Warn);
            assert!(why.contains("198.51.100.9"), "{why}");
        }

        #[test]
        fn blackhole_verdicts() {
            let set = |status: DdosState, ends: Option<u64>| {
                move |s: &mut Snapshot| {
                    cloud_mut(s).blackhole = Gathered::Ok(Some(Blackhole {
                        ip: v4("203.0.113.10"),
                        status: status.clone(),
                        ends_at: ends,
                    }))
                }
            };
            let (st, why) = status(set(DdosState::Blackholed, Some(1_800_000_000)), BLACKHOLE);
            assert_eq!(st, Status::Fail);
            assert!(
                why.contains("blackhole filtering") && why.contains("until 2027-01-15T08:00:00"),
                "{why}"
            );
            let (st, why) = status(set(DdosState::Blackholed, None), BLACKHOLE);
            assert_eq!(st, Status::Fail);
            assert!(why.contains("end time not published"), "{why}");
            assert_eq!(
                status(set(DdosState::Scrubbing, None), BLACKHOLE).0,
                Status::Warn
            );
            assert_eq!(
                status(set(DdosState::Other("frozen".into()), None), BLACKHOLE).0,
                Status::Unknown
            );
            assert_eq!(
                status(|s| cloud_mut(s).blackhole = Gathered::Ok(None), BLACKHOLE).0,
                Status::Skipped
            );
        }

        /// icmp.live names the failing cloud check instead of the inference.
        #[test]
        fn icmp_live_names_the_cloud_cause() {
            let f = judged(
                |s| {
                    groups(s)[0].rules.retain(|r| r.protocol != "ICMP");
                    if let Gathered::Ok(c) = &mut s.icmp {
                        c.in_echos = 0;
                        c.out_echo_reps = 0;
                    }
                },
                crate::checks::icmp::LIVE,
            );
            assert_eq!(f.status, Status::Warn, "{}", f.summary);
            assert!(
                f.summary
                    .contains("the cloud side stops them: cloud.security_group"),
                "{}",
                f.summary
            );
            assert!(
                !f.summary.contains("(inferred)")
                    && !f.summary.contains("security group, network ACL, route"),
                "{}",
                f.summary
            );
        }
    }
}
