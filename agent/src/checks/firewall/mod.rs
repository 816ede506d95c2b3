//! `firewall.icmp_in`, `firewall.icmp_out`, `firewall.icmp6`: the verdict of the guest's whole
//! iptables/ip6tables ruleset (every table, both backends) for an inbound echo request from the
//! client and for the outbound echo reply, naming the deciding rule with its counters, and the
//! remedy in the terms of whatever manages the rules (firewalld, ufw, plain iptables).
//! Evidence: the saved rulesets, walked by `ruleset::eval`.

use std::net::IpAddr;

use serde_json::json;

use super::{ipv4_on, no_primary, primary_interface, reply_target};
use crate::checks::{Cause, Check};
use crate::report::{Finding, Subject};

/// The directions of the echo path the firewall checks judge (their [`Subject`]s).
pub const ECHO_IN: &str = "echo requests in";
pub const ECHO_OUT: &str = "echo replies out";
pub const ECHO6: &str = "ICMPv6 echo";
use crate::ruleset::eval::{evaluate_with_sets, CtState, Decision, Packet, Verdict, L4};
use crate::ruleset::nft::{self, NftRuleset};
use crate::snapshot::Gathered;
use crate::snapshot::LookupOutcome;
use crate::snapshot::Ruleset;
use crate::snapshot::Snapshot;

pub const ICMP_IN: &str = "firewall.icmp_in";
pub const ICMP_OUT: &str = "firewall.icmp_out";
pub const ICMP6: &str = "firewall.icmp6";
pub const PORTS: &str = "firewall.ports";

mod ports;
pub use ports::ports;

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: ICMP_IN,
        decides: "the guest firewall accepts an inbound IPv4 echo request from the client (or any Internet address)",
        evidence: &["iptables-nft -S -v per iptables-nft table (nat: whether a rule rewrites destinations, over nfnetlink), else iptables-nft-save -c; iptables-legacy-save -c (every table)", "native nftables tables: over nfnetlink where every rule is a plain one, else nft -j list table", "ipset contents the rules match on"],
        causes: &[
            Cause { id: "guest_rule_drops_echo", cause: "a rule (or a chain policy) drops or rejects the echo request; the deciding rule is named with its counters", remedy: "insert an accept for ICMP echo ahead of it, in the terms of what manages the rules (firewall-cmd, ufw, iptables -I, nft insert)" },
        ],
        judge: |s, _| icmp_in(s).judges([Subject::FirewallPath(ECHO_IN)]),
    },
    Check {
        id: ICMP_OUT,
        decides: "the guest firewall lets the IPv4 echo reply out to the client",
        evidence: &["the OUTPUT and POSTROUTING chains of every table, both backends", "native nftables output hooks"],
        causes: &[
            Cause { id: "guest_rule_drops_reply", cause: "a rule (or a chain policy) drops the outgoing echo reply", remedy: "insert an accept for ICMP echo-reply ahead of the deciding rule" },
        ],
        judge: |s, _| icmp_out(s).judges([Subject::FirewallPath(ECHO_OUT)]),
    },
    Check {
        id: ICMP6,
        decides: "the guest firewall accepts an inbound ICMPv6 echo request and lets the reply out, and lets neighbour discovery with the router through both ways (untracked by conntrack)",
        evidence: &["ip6tables-nft-save -c and ip6tables-legacy-save -c", "native nftables ip6 and inet tables"],
        causes: &[
            Cause { id: "guest_rule_drops_echo6", cause: "an ip6tables or nft rule (or policy) drops the ICMPv6 echo request or reply", remedy: "insert an accept for ipv6-icmp echo-request / echo-reply ahead of the deciding rule" },
            Cause { id: "guest_rule_drops_neighbour_discovery", cause: "a rule (or a DROP policy with only an ESTABLISHED,RELATED accept) drops neighbour solicitations or advertisements: IPv6 breaks though echo is accepted", remedy: "insert an accept for ipv6-icmp neighbour-solicitation / neighbour-advertisement ahead of the deciding rule" },
        ],
        judge: |s, _| icmp6(s).judges([Subject::FirewallPath(ECHO6)]),
    },
    Check {
        id: PORTS,
        decides: "each listening TCP/UDP port that is reachable from outside is accepted by the guest firewall",
        evidence: &["listening sockets (sock_diag)", "the rulesets, judged for a new connection to each port"],
        causes: &[
            Cause { id: "guest_rule_drops_port", cause: "the firewall drops new connections to a listening port", remedy: "open the port: firewall-cmd --add-port, ufw allow, iptables -I INPUT, or nft insert rule" },
        ],
        judge: |s, _| ports(s),
    },
];

/// Stand-in IPv6 client (documentation prefix) when `--client` is not an IPv6 address.
use crate::snapshot::PUBLIC_PROBE6;

/// Who writes the rules, so the remedy speaks its language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Firewalld,
    Ufw,
    Plain,
}

impl Manager {
    /// As the evidence names it.
    pub fn name(self) -> &'static str {
        match self {
            Manager::Firewalld => "firewalld",
            Manager::Ufw => "ufw",
            Manager::Plain => "plain",
        }
    }
}

/// What the firewall checks read: the iptables rulesets and the native nftables tables.
pub struct Firewall<'a> {
    pub rulesets: &'a [Ruleset],
    /// ipsets the rules refer to (empty when none do or they could not be read).
    pub ipsets: &'a [crate::ruleset::ipset::IpSet],
    /// The distribution, so remedies say how to persist rules there.
    pub os: Option<&'a crate::snapshot::OsRelease>,
    /// `Ok(None)`: nft is not installed.
    pub nft: Result<Option<&'a NftRuleset>, &'a str>,
    /// What could not be read for lack of privilege.
    pub denied: &'a [crate::snapshot::Denied],
    /// Whether the guest's own NAT may rewrite an incoming packet's destination
    /// ([`guest_dnat`]), found once for every packet judged against these rulesets.
    pub dnat: Option<bool>,
}

pub fn manager(fw: &Firewall) -> Manager {
    if let Ok(Some(rs)) = fw.nft {
        if rs.tables.iter().any(|t| t.name == "firewalld") {
            return Manager::Firewalld;
        }
    }
    let chains = fw
        .rulesets
        .iter()
        .filter_map(|r| r.tables.ok().ok())
        .flatten()
        .flat_map(|t| t.chains.iter().map(|c| c.name.as_str()));
    let mut m = Manager::Plain;
    for c in chains {
        if c.starts_with("ufw-") || c.starts_with("ufw6-") {
            return Manager::Ufw;
        }
        if c.starts_with("IN_") || c.ends_with("_direct") || c.starts_with("INPUT_ZONES") {
            m = Manager::Firewalld;
        }
    }
    m
}

/// One ruleset's verdict, for the evidence.
fn ruleset_evidence(r: &Ruleset, d: &Decision) -> serde_json::Value {
    let mut v = json!({"backend": r.backend, "family": r.family, "tool": r.tool, "verdict": d.verdict, "decided_by": d.decider, "uncertain": d.uncertain});
    if let Some(why) = &r.not_read {
        v["not_read"] = json!(why);
    }
    if let Some(nat) = &r.nat {
        v["nat"] = json!(format!(
            "not listed (its rules are not walked): {} rules read over nfnetlink, {}",
            nat.rules,
            if nat.rewrites_destination {
                "some rewrite destinations (DNAT/REDIRECT/NETMAP)"
            } else {
                "none rewrites destinations"
            }
        ));
    }
    v
}

impl Judged {
    /// Records one ruleset's decision: the first that does not accept is the block.
    fn record(&mut self, r: &Ruleset, d: Decision, label: &str) {
        self.evidence.push(ruleset_evidence(r, &d));
        self.uncertain.extend(d.uncertain.iter().cloned());
        if d.verdict != Verdict::Accept {
            if self.blocked.is_none() {
                self.blocked = Some((r.clone(), d));
            }
        } else if let Some(dec) = &d.decider {
            self.accepted_by.get_or_insert(format!(
                "{label}{} {} rule {}",
                dec.table,
                dec.chain,
                dec.position.unwrap_or(0)
            ));
        }
    }
}

struct Judged {
    /// The first ruleset that does not accept, with its decision.
    blocked: Option<(Ruleset, Decision)>,
    uncertain: Vec<String>,
    unreadable: Vec<String>,
    accepted_by: Option<String>,
    evidence: Vec<serde_json::Value>,
}

/// Whether the guest's own NAT may rewrite an incoming packet's destination: some DNAT,
/// REDIRECT or NETMAP rule exists in an iptables nat table or an nft table. None: a ruleset
/// could not be read.
fn guest_dnat(fw: &Firewall) -> Option<bool> {
    let mut any = false;
    for r in fw.rulesets {
        let tables = r.tables.ok().ok()?;
        // A nat table read over nfnetlink instead of listed.
        any |= r.nat.is_some_and(|n| n.rewrites_destination);
        any |= tables
            .iter()
            .filter(|t| t.name == "nat")
            .flat_map(|t| t.chains.iter().flat_map(|c| c.rules.iter()))
            .any(|rule| {
                rule.args.windows(2).any(|w| {
                    matches!(w[0].as_str(), "-j" | "--jump")
                        && matches!(w[1].as_str(), "DNAT" | "REDIRECT" | "NETMAP")
                })
            });
    }
    if let Some(rs) = fw.nft.ok()? {
        any |= rs
            .tables
            .iter()
            .flat_map(|t| t.chains.iter().flat_map(|c| c.rules.iter()))
            .flat_map(|r| r.expr.iter())
            .any(|e| e.get("dnat").is_some() || e.get("redirect").is_some());
    }
    Some(any)
}

/// Inbound: does a route back to the packet's source leave by the interface it came in on?
/// From the kernel's own lookups of the replies; a link-local source always does (every
/// IPv6 interface has its fe80::/64 route). None: not looked up.
fn reverse_path(s: &Snapshot, p: &Packet) -> Option<bool> {
    let in_if = p.in_if.as_deref()?;
    if let IpAddr::V6(v6) = p.src {
        if v6.segments()[0] & 0xffc0 == 0xfe80 {
            return Some(true);
        }
    }
    let index = s.links.ok().ok()?.iter().find(|l| l.name == in_if)?.index;
    let lookup = s.reply_lookups.ok().ok().and_then(|l| {
        l.iter()
            .find(|l| l.destination == p.src && l.source == p.dst)
    });
    if let Some(lookup) = lookup {
        return Some(match &lookup.outcome {
            LookupOutcome::Route { kind, oif, .. } => kind == "unicast" && *oif == Some(index),
            LookupOutcome::Refused { .. } => false,
        });
    }
    // Not looked up (a neighbour, the router): the longest match in the main table.
    let best = s
        .routes
        .ok()
        .ok()?
        .iter()
        .filter(|r| r.table == 254 && r.destination.contains(&p.src))
        .max_by_key(|r| r.destination.prefix_len())?;
    Some(best.kind == "unicast" && best.oif == Some(index))
}

/// The packet with what the snapshot says about the way back to its source.
pub(crate) fn routed(s: &Snapshot, p: Packet) -> Packet {
    Packet {
        reverse_path: reverse_path(s, &p),
        ..p
    }
}

fn judge_rulesets(fw: &Firewall, family: &str, packet: &Packet) -> Judged {
    let packet = &Packet {
        dnat: fw.dnat,
        ..packet.clone()
    };
    let mut j = Judged {
        blocked: None,
        uncertain: Vec::new(),
        unreadable: Vec::new(),
        accepted_by: None,
        evidence: Vec::new(),
    };
    for r in fw.rulesets.iter().filter(|r| r.family == family) {
        match r.tables.ok() {
            Err(e) => {
                j.unreadable
                    .push(format!("{} ({} backend): {e}", r.tool, r.backend));
                j.evidence
                    .push(json!({"backend": r.backend, "tool": r.tool, "unreadable": e}));
            }
            Ok(tables) => {
                let d = evaluate_with_sets(tables, fw.ipsets, packet);
                j.record(r, d, "");
            }
        }
    }
    match fw.nft {
        Err(e) => {
            j.unreadable.push(format!("native nftables: {e}"));
            j.evidence.push(json!({"backend": "nftables", "tool": "nft", "unreadable": e}));
        }
        Ok(None) => j.evidence.push(json!({"backend": "nftables", "tool": "nft", "note": "nft is not installed: native nftables tables not read"})),
        Ok(Some(rs)) => {
            let d = nft::evaluate(rs, packet);
            let native = Ruleset {
                not_read: (!rs.read_natively.is_empty()).then(|| {
                    format!(
                        "nft not run for {}: read over nfnetlink (every rule one nft prints back plainly) and given as nft -j gives it",
                        rs.read_natively.join(", ")
                    )
                }),
                nat: None,
                backend: "native".into(),
                family: family.into(),
                tool: "nft".into(),
                tables: Gathered::Ok(vec![]),
            };
            j.record(&native, d, "nftables ");
        }
    }
    j
}

/// How iptables rules survive a reboot on this distribution.
fn persist_iptables(os: Option<&crate::snapshot::OsRelease>, tool: &str) -> String {
    let debian = "netfilter-persistent save (package iptables-persistent)".to_string();
    let rhel = format!("service {tool} save (package iptables-services)");
    match os {
        Some(o) if o.debian_like() => format!("persist it: {debian}"),
        Some(o) if o.rhel_like() => format!("persist it: {rhel}"),
        _ => format!("persist it: {debian} on Debian/Ubuntu, {rhel} on the RHEL family / Alibaba Cloud Linux"),
    }
}

/// Where nftables rules survive a reboot on this distribution.
fn persist_nft(os: Option<&crate::snapshot::OsRelease>) -> String {
    match os {
        Some(o) if o.debian_like() => "persist it in /etc/nftables.conf (loaded by nftables.service)".to_string(),
        Some(o) if o.rhel_like() => "persist it in /etc/sysconfig/nftables.conf (loaded by nftables.service)".to_string(),
        _ => "persist it in /etc/nftables.conf (Debian/Ubuntu) or /etc/sysconfig/nftables.conf (RHEL family), loaded by nftables.service".to_string(),
    }
}

/// The remedy in nft's own syntax for a native nftables decision.
/// The ICMP type's names: as iptables (and firewalld) and as nft spell it.
fn icmp_kind(v6: bool, icmp_type: u8) -> (&'static str, &'static str) {
    match (v6, icmp_type) {
        (false, 0) | (true, 129) => ("echo-reply", "echo-reply"),
        (true, 135) => ("neighbour-solicitation", "nd-neighbor-solicit"),
        (true, 136) => ("neighbour-advertisement", "nd-neighbor-advert"),
        _ => ("echo-request", "echo-request"),
    }
}

fn nft_remedy(
    m: Manager,
    os: Option<&crate::snapshot::OsRelease>,
    d: &Decision,
    v6: bool,
    icmp_type: u8,
) -> Vec<String> {
    let Some(dec) = &d.decider else { return vec![] };
    let (kind, nft_kind) = icmp_kind(v6, icmp_type);
    let stmt = format!(
        "{} type {nft_kind} accept",
        if v6 { "icmpv6" } else { "icmp" }
    );
    let fix = match dec.handle {
        Some(h) => format!("nft insert rule {} {} position {h} {stmt}   (ahead of the deciding rule; or delete it: nft delete rule {} {} handle {h})", dec.table, dec.chain, dec.table, dec.chain),
        None => format!("nft add rule {} {} {stmt}   (the chain's policy drops it)", dec.table, dec.chain),
    };
    if m == Manager::Firewalld {
        return vec![format!("firewalld manages these rules: firewall-cmd --list-all; firewall-cmd --permanent --remove-icmp-block={kind}; firewall-cmd --reload"), format!("otherwise: {fix}")];
    }
    vec![fix, persist_nft(os)]
}

fn remedy(
    m: Manager,
    os: Option<&crate::snapshot::OsRelease>,
    r: &Ruleset,
    d: &Decision,
    v6: bool,
    icmp_type: u8,
) -> Vec<String> {
    let tool = if v6 { "ip6tables" } else { "iptables" };
    let (kind, _) = icmp_kind(v6, icmp_type);
    let proto = if v6 {
        format!("-p ipv6-icmp --icmpv6-type {kind}")
    } else {
        format!("-p icmp --icmp-type {kind}")
    };
    let Some(dec) = &d.decider else { return vec![] };
    let table = if dec.table == "filter" {
        String::new()
    } else {
        format!("-t {} ", dec.table)
    };
    let fix = match dec.position {
        Some(pos) => format!("{tool} {table}-I {} {pos} {proto} -j ACCEPT   (ahead of the deciding rule; or delete it: {tool} {table}-D {} {pos})", dec.chain, dec.chain),
        None => format!("{tool} {table}-A {} {proto} -j ACCEPT   (the chain's policy drops it)", dec.chain),
    };
    let legacy = if r.backend == "legacy" {
        format!(" (rules in the legacy backend: use {tool}-legacy)")
    } else {
        String::new()
    };
    match m {
        Manager::Firewalld => vec![
            format!("firewalld manages these rules: firewall-cmd --list-all; firewall-cmd --permanent --remove-icmp-block={kind}; firewall-cmd --reload"),
            format!("if a direct rule blocks it: firewall-cmd --permanent --direct --get-all-rules; then {fix}"),
        ],
        Manager::Ufw => vec![
            format!("ufw manages these rules: keep `-A ufw-before-input {proto} -j ACCEPT` in /etc/ufw/before.rules{}, then ufw reload", if v6 { " (before6.rules for IPv6)" } else { "" }),
            format!("now, without waiting for ufw: {fix}"),
        ],
        Manager::Plain => vec![
            format!("{fix}{legacy}"),
            persist_iptables(os, tool),
        ],
    }
}

/// The whole finding for one direction of one family.
fn verdict_finding(id: &str, fw: &Firewall, family: &str, packet: Packet, what: &str) -> Finding {
    let v6 = family == "ipv6";
    let j = judge_rulesets(fw, family, &packet);
    let packet_ev = json!({"src": packet.src, "dst": packet.dst, "in": packet.in_if, "out": packet.out_if, "icmp_type": packet.icmp_type, "conntrack": format!("{:?}", packet.ct)});
    let m = manager(fw);
    let evidence = json!({"packet": packet_ev, "rulesets": j.evidence, "manager": m.name()});
    if let Some((r, d)) = &j.blocked {
        let Some(dec) = &d.decider else {
            return Finding::unknown(id, "a ruleset blocks without naming a rule")
                .evidence(evidence);
        };
        let how = match d.verdict {
            Verdict::Reject => format!("rejects ({})", dec.reject_with.clone().unwrap_or_default()),
            _ => "drops".to_string(),
        };
        let at = match dec.position {
            Some(p) => format!("rule {p} of {} {}: `{}`", dec.table, dec.chain, dec.rule),
            None => format!(
                "the {} policy of {} {}",
                dec.rule.split_whitespace().nth(1).unwrap_or("DROP"),
                dec.table,
                dec.chain
            ),
        };
        let who = if r.tool == "nft" {
            "nftables".to_string()
        } else {
            format!(
                "{} ({} backend)",
                if v6 { "ip6tables" } else { "iptables" },
                r.backend
            )
        };
        let summary = format!("{who} {how} {what}: {at} ({})", dec.counter_text());
        let remedy = if r.tool == "nft" {
            nft_remedy(m, fw.os, d, v6, packet.icmp_type)
        } else {
            remedy(m, fw.os, r, d, v6, packet.icmp_type)
        };
        if !d.uncertain.is_empty() {
            return Finding::unknown(
                id,
                format!(
                    "probably: {summary}; but an earlier match could not be evaluated: {}",
                    d.uncertain.join("; ")
                ),
            )
            .evidence(evidence)
            .remedy(remedy);
        }
        let cause = match id {
            ICMP6 => "guest_rule_drops_echo6",
            ICMP_OUT => "guest_rule_drops_reply",
            _ => "guest_rule_drops_echo",
        };
        return Finding::fail(id, summary)
            .cause(cause)
            .evidence(evidence)
            .remedy(remedy);
    }
    if !j.unreadable.is_empty() {
        // For lack of privilege: say which tool needs what, not each tool's own words (those
        // stay in the evidence).
        let denied: Vec<&crate::snapshot::Denied> = fw
            .denied
            .iter()
            .filter(|d| d.source == "firewall" || d.source == "nftables")
            .collect();
        let summary = if denied.is_empty() {
            format!("cannot read the ruleset: {}", j.unreadable.join("; "))
        } else {
            format!(
                "cannot read the ruleset without privileges: {}",
                crate::snapshot::Denied::describe(&denied)
            )
        };
        return Finding::unknown(id, summary)
            .evidence(evidence)
            .remedy(["run ecs-diag as root (iptables-save and nft need CAP_NET_ADMIN)"]);
    }
    if !j.uncertain.is_empty() {
        return Finding::unknown(id, format!("no rule drops {what} as far as the ruleset can be evaluated, but these matches could not be: {}", j.uncertain.join("; "))).evidence(evidence);
    }
    let by = j
        .accepted_by
        .map(|a| format!(" (accepted by {a})"))
        .unwrap_or_else(|| " (no rule or policy stops it)".to_string());
    Finding::ok(id, format!("the firewall lets {what} through{by}")).evidence(evidence)
}

fn rulesets<'a>(s: &'a Snapshot, id: &str) -> Result<Firewall<'a>, Finding> {
    let rulesets = s
        .firewall
        .ok()
        .map_err(|e| Finding::unknown(id, format!("cannot read the firewall: {e}")))?;
    let mut fw = Firewall {
        rulesets,
        os: s.os.ok().ok(),
        // Unreadable sets leave `-m set` matches unevaluated: they are then named as uncertain.
        ipsets: match s.ipsets.ok() {
            Ok(Some(sets)) => sets.as_slice(),
            _ => &[],
        },
        nft: s.nftables.ok().map(|n| n.as_deref()),
        denied: &s.denied,
        dnat: None,
    };
    fw.dnat = guest_dnat(&fw);
    Ok(fw)
}

/// The IPv6 client: `--client` if it is IPv6, else the documentation stand-in.
fn client_v6(s: &Snapshot) -> IpAddr {
    match s.client {
        Some(c @ IpAddr::V6(_)) => c,
        _ => IpAddr::V6(PUBLIC_PROBE6),
    }
}

/// The first global IPv6 address of an interface.
fn global_v6(s: &Snapshot, ifindex: u32) -> Option<IpAddr> {
    s.addresses.ok().ok().and_then(|v| {
        v.iter()
            .find(|a| a.ifindex == ifindex && a.address.is_ipv6() && a.scope == "global")
            .map(|a| a.address)
    })
}

fn local_addresses(s: &Snapshot) -> Vec<IpAddr> {
    s.addresses
        .ok()
        .map(|v| v.iter().map(|a| a.address).collect())
        .unwrap_or_default()
}

/// The primary interface's name and the address a client pings (assigned IP if present).
fn primary_v4(s: &Snapshot, id: &str) -> Result<(String, IpAddr), Finding> {
    let p = primary_interface(s).map_err(|e| no_primary(id, e))?;
    let assigned = s.metadata.ok().and_then(|m| m.private_ipv4).map(IpAddr::V4);
    let on_if: Vec<IpAddr> = ipv4_on(s, p.link.index).iter().map(|a| a.address).collect();
    let ip = assigned
        .filter(|a| on_if.contains(a))
        .or(on_if.first().copied());
    match ip {
        Some(ip) => Ok((p.link.name.clone(), ip)),
        None => Err(Finding::unknown(
            id,
            format!(
                "{} has no IPv4 address to judge pings to (see addr.primary)",
                p.link.name
            ),
        )),
    }
}

/// The IPv4 echo request in (NEW) or the echo reply out (ESTABLISHED), between the client and
/// the address it pings.
fn icmp_v4(s: &Snapshot, id: &str, inbound: bool) -> Finding {
    let fw = match rulesets(s, id) {
        Ok(r) => r,
        Err(f) => return f,
    };
    let (dev, ip) = match primary_v4(s, id) {
        Ok(x) => x,
        Err(f) => return f,
    };
    let client = reply_target(s);
    let (packet, what) = if inbound {
        let p = routed(
            s,
            Packet::icmp(client, ip, 8, true, &dev, local_addresses(s)),
        );
        (p, format!("echo requests from {client} to {ip}"))
    } else {
        let p = Packet::icmp(ip, client, 0, false, &dev, local_addresses(s));
        (p, format!("echo replies from {ip} to {client}"))
    };
    verdict_finding(id, &fw, "ipv4", packet, &what)
}

pub fn icmp_in(s: &Snapshot) -> Finding {
    icmp_v4(s, ICMP_IN, true)
}

pub fn icmp_out(s: &Snapshot) -> Finding {
    icmp_v4(s, ICMP_OUT, false)
}

pub fn icmp6(s: &Snapshot) -> Finding {
    let judged = match icmp6_judged(s) {
        Ok(j) => j,
        Err(f) => return f,
    };
    let mut ndp = Vec::new();
    for j in &judged {
        if j.finding.status != crate::report::Status::Ok {
            let f = j.finding.clone();
            if j.ndp {
                let summary = format!(
                    "{}: without neighbour discovery nothing reaches {} over IPv6, even though echo is accepted",
                    f.summary, j.local
                );
                return Finding { summary, ..f }.cause("guest_rule_drops_neighbour_discovery");
            }
            return f;
        }
        if j.ndp {
            ndp.push(j.finding.evidence.clone());
        }
    }
    let (ip, router) = (judged[0].local, judged[2].peer);
    Finding::ok(
        ICMP6,
        format!("the firewall lets IPv6 echo requests to {ip} in and the replies out, and neighbour discovery with {router} both ways"),
    )
    .evidence(json!({"in": judged[0].finding.evidence, "out": judged[1].finding.evidence, "ndp": ndp}))
}

/// One IPv6 packet `firewall.icmp6` judges, and the firewall's verdict on it.
pub struct Judged6 {
    pub finding: Finding,
    /// Neighbour discovery (else echo).
    pub ndp: bool,
    /// The instance's address and the other end (the client, or the router for NDP).
    pub local: IpAddr,
    pub peer: IpAddr,
}

/// The IPv6 packets that `firewall.icmp6` stops at the first failure of, each judged: the echo
/// request in, the reply out, and neighbour solicitations and advertisements with the router
/// both ways. `fix` uses every blocked one. Err: the check's finding when there is nothing to
/// judge (skipped, unknown).
pub fn icmp6_judged(s: &Snapshot) -> Result<Vec<Judged6>, Finding> {
    let fw = rulesets(s, ICMP6)?;
    let p = primary_interface(s).map_err(|e| no_primary(ICMP6, e))?;
    let Some(ip) = global_v6(s, p.link.index) else {
        return Err(Finding::skipped(
            ICMP6,
            format!(
                "{} has no global IPv6 address: nothing to ping over IPv6",
                p.link.name
            ),
        ));
    };
    let client = client_v6(s);
    let dev = p.link.name.clone();
    let mut judged = Vec::new();
    let inbound = routed(
        s,
        Packet::icmp(client, ip, 128, true, &dev, local_addresses(s)),
    );
    judged.push(Judged6 {
        finding: verdict_finding(
            ICMP6,
            &fw,
            "ipv6",
            inbound,
            &format!("IPv6 echo requests from {client} to {ip}"),
        ),
        ndp: false,
        local: ip,
        peer: client,
    });
    let outbound = Packet::icmp(ip, client, 129, false, &dev, local_addresses(s));
    judged.push(Judged6 {
        finding: verdict_finding(
            ICMP6,
            &fw,
            "ipv6",
            outbound,
            &format!("IPv6 echo replies from {ip} to {client}"),
        ),
        ndp: false,
        local: ip,
        peer: client,
    });
    // Neighbour discovery with the router (else a link-local stand-in): solicitations and
    // advertisements both ways. Conntrack leaves them untracked, so an ESTABLISHED,RELATED
    // accept does not let them through.
    let router = super::default_routes_v6(s)
        .iter()
        .flat_map(|r| r.hops())
        .find_map(|(gw, oif)| gw.filter(|_| oif == Some(p.link.index)))
        .or_else(|| {
            s.metadata
                .ok()
                .and_then(|m| m.primary())
                .and_then(|e| e.ipv6_gateway)
                .map(IpAddr::V6)
        })
        .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::new(
            0xfe80, 0, 0, 0, 0, 0, 0, 1,
        )));
    for (icmp_type, inbound, what) in [
        (135, true, "neighbour solicitations"),
        (136, true, "neighbour advertisements"),
        (135, false, "neighbour solicitations"),
        (136, false, "neighbour advertisements"),
    ] {
        let (src, dst, dir) = if inbound {
            (router, ip, format!("from {router} to {ip}"))
        } else {
            (ip, router, format!("from {ip} to {router}"))
        };
        let mut packet = routed(
            s,
            Packet::icmp(src, dst, icmp_type, inbound, &dev, local_addresses(s)),
        );
        packet.ct = CtState::Untracked;
        judged.push(Judged6 {
            finding: verdict_finding(
                ICMP6,
                &fw,
                "ipv6",
                packet,
                &format!("IPv6 {what} (NDP) {dir}"),
            ),
            ndp: true,
            local: ip,
            peer: router,
        });
    }
    Ok(judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::{addresses, ip, judge as judge_check};
    use crate::report::Status;
    use crate::ruleset::iptables::parse_save;
    use crate::snapshot::Gathered;

    pub(super) fn with_rules(v4: &str) -> impl FnOnce(&mut Snapshot) {
        let tables = parse_save(v4).unwrap();
        move |s| {
            s.firewall = Gathered::Ok(std::sync::Arc::new(vec![Ruleset {
                not_read: None,
                nat: None,
                backend: "nft".into(),
                family: "ipv4".into(),
                tool: "iptables-nft-save".into(),
                tables: Gathered::Ok(tables),
            }]));
        }
    }

    pub(super) fn filter(input_policy: &str, rules: &str) -> String {
        format!("*filter\n:INPUT {input_policy} [5:420]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rules}COMMIT\n")
    }

    #[test]
    fn in_paths() {
        assert_eq!(judge_check(icmp_in, |_| {}).status, Status::Ok);
        let f = judge_check(
            icmp_in,
            with_rules(&filter(
                "ACCEPT",
                "[7:588] -A INPUT -p icmp -m icmp --icmp-type 8 -j DROP\n",
            )),
        );
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("rule 1 of filter INPUT") && f.summary.contains("7 packets"),
            "{}",
            f.summary
        );
        assert!(
            f.remedy[0]
                .starts_with("iptables -I INPUT 1 -p icmp --icmp-type echo-request -j ACCEPT"),
            "{:?}",
            f.remedy
        );
        let f = judge_check(
            icmp_in,
            with_rules(&filter("DROP", "-A INPUT -i lo -j ACCEPT\n")),
        );
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("DROP policy of filter INPUT"),
            "{}",
            f.summary
        );
        let f = judge_check(
            icmp_in,
            with_rules(&filter(
                "ACCEPT",
                "-A INPUT -m set --match-set bad src -j DROP\n",
            )),
        );
        assert_eq!(f.status, Status::Unknown);
        assert!(f.summary.contains("set --match-set bad src"));
        assert_eq!(
            judge_check(icmp_in, |s| s.firewall =
                Gathered::Failed("no iptables".into()))
            .status,
            Status::Unknown
        );
        let f = judge_check(icmp_in, |s| {
            s.firewall = Gathered::Ok(std::sync::Arc::new(vec![Ruleset {
                not_read: None,
                nat: None,
                backend: "nft".into(),
                family: "ipv4".into(),
                tool: "iptables-nft-save".into(),
                tables: Gathered::Failed("Permission denied (you must be root)".into()),
            }]));
        });
        assert_eq!(f.status, Status::Unknown);
        assert!(f.summary.contains("you must be root"));
    }

    #[test]
    fn client_decides() {
        let rules = filter(
            "ACCEPT",
            "-A INPUT -s 198.18.0.2/32 -j REJECT --reject-with icmp-host-prohibited\n",
        );
        let f = judge_check(icmp_in, |s| {
            with_rules(&rules)(s);
            s.client = Some(ip("198.18.0.2"));
        });
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("rejects (icmp-host-prohibited)"),
            "{}",
            f.summary
        );
        assert_eq!(judge_check(icmp_in, with_rules(&rules)).status, Status::Ok);
    }

    #[test]
    fn out_paths() {
        assert_eq!(judge_check(icmp_out, |_| {}).status, Status::Ok);
        let rules = "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p icmp -m icmp --icmp-type 0 -j DROP\nCOMMIT\n";
        let f = judge_check(icmp_out, with_rules(rules));
        assert_eq!(f.status, Status::Fail);
        assert!(f.remedy[0].contains("-I OUTPUT 1 -p icmp --icmp-type echo-reply -j ACCEPT"));
        assert_eq!(
            judge_check(icmp_out, |s| s.firewall = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn managers_shape_the_remedy() {
        let ufw = "*filter\n:INPUT DROP [0:0]\n:ufw-before-input - [0:0]\n-A INPUT -j ufw-before-input\nCOMMIT\n";
        let f = judge_check(icmp_in, with_rules(ufw));
        assert!(
            f.remedy[0].contains("/etc/ufw/before.rules"),
            "{:?}",
            f.remedy
        );
        let fwd = "*filter\n:INPUT ACCEPT [0:0]\n:IN_public - [0:0]\n-A INPUT -j IN_public\n-A IN_public -p icmp -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n";
        let f = judge_check(icmp_in, with_rules(fwd));
        assert!(f.remedy[0].contains("firewall-cmd"), "{:?}", f.remedy);
    }

    #[test]
    fn icmp6_paths() {
        assert_eq!(judge_check(icmp6, |_| {}).status, Status::Skipped);
        let add_v6 = |s: &mut Snapshot| {
            addresses(s).push(crate::snapshot::Address {
                ifindex: 2,
                address: ip("fd77::10"),
                prefix_len: 64,
                scope: "global".into(),
            })
        };
        assert_eq!(judge_check(icmp6, add_v6).status, Status::Ok);
        let tables = parse_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP\nCOMMIT\n").unwrap();
        let f = judge_check(icmp6, |s| {
            add_v6(s);
            s.firewall = Gathered::Ok(std::sync::Arc::new(vec![Ruleset {
                not_read: None,
                nat: None,
                backend: "nft".into(),
                family: "ipv6".into(),
                tool: "ip6tables-nft-save".into(),
                tables: Gathered::Ok(tables),
            }]));
        });
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.remedy[0].starts_with("ip6tables -I INPUT 1 -p ipv6-icmp"),
            "{:?}",
            f.remedy
        );
        assert_eq!(
            judge_check(icmp6, |s| s.firewall = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    fn v6_rules(save: &str) -> impl FnOnce(&mut Snapshot) {
        let tables = parse_save(save).unwrap();
        move |s| {
            crate::checks::fixture::with_ipv6(s);
            s.firewall = Gathered::Ok(std::sync::Arc::new(vec![Ruleset {
                not_read: None,
                nat: None,
                backend: "nft".into(),
                family: "ipv6".into(),
                tool: "ip6tables-nft-save".into(),
                tables: Gathered::Ok(tables),
            }]));
        }
    }

    #[test]
    fn icmp6_neighbour_discovery() {
        // Echo accepted, neighbour solicitations dropped: fail, naming the rule and why it
        // matters, with the remedy for that type (not for echo).
        let f = judge_check(
            icmp6,
            v6_rules("*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[9:648] -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j DROP\nCOMMIT\n"),
        );
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary
                .contains("neighbour solicitations (NDP) from fd77::1 to fd77::10")
                && f.summary.contains("rule 1 of filter INPUT")
                && f.summary.contains("even though echo is accepted"),
            "{}",
            f.summary
        );
        assert!(
            f.remedy[0].starts_with(
                "ip6tables -I INPUT 1 -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT"
            ),
            "{:?}",
            f.remedy
        );
        // Outbound advertisements dropped by name.
        let f = judge_check(
            icmp6,
            v6_rules("*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-advertisement -j DROP\nCOMMIT\n"),
        );
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary
                .contains("advertisements (NDP) from fd77::10 to fd77::1"),
            "{}",
            f.summary
        );
        // A DROP policy that accepts echo and established traffic only: NDP is untracked and dies.
        let f = judge_check(
            icmp6,
            v6_rules("*filter\n:INPUT DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\nCOMMIT\n"),
        );
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary.contains("DROP policy of filter INPUT"),
            "{}",
            f.summary
        );
        // ... and the usual fix: accepting ipv6-icmp (all types) passes.
        let f = judge_check(
            icmp6,
            v6_rules("*filter\n:INPUT DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p ipv6-icmp -j ACCEPT\nCOMMIT\n"),
        );
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert!(
            f.summary
                .contains("neighbour discovery with fd77::1 both ways"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["ndp"].as_array().unwrap().len(), 4);
        // nft: the type by nft's name.
        let f = judge_check(icmp6, |s| {
            crate::checks::fixture::with_ipv6(s);
            with_nft(
                r#"{"nftables":[{"table":{"family":"inet","name":"f","handle":1}},{"chain":{"family":"inet","table":"f","name":"in","handle":1,"type":"filter","hook":"input","prio":0,"policy":"accept"}},{"rule":{"family":"inet","table":"f","chain":"in","handle":4,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"icmpv6","field":"type"}},"right":"nd-neighbor-solicit"}},{"drop":null}]}}]}"#,
            )(s);
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.remedy[0].contains("icmpv6 type nd-neighbor-solicit accept"),
            "{:?}",
            f.remedy
        );
    }

    fn with_nft(json: &str) -> impl FnOnce(&mut Snapshot) {
        let rs = nft::parse_json(json).unwrap();
        move |s| s.nftables = Gathered::Ok(Some(std::sync::Arc::new(rs)))
    }

    const NFT_DROP: &str = r#"{"nftables":[
        {"table":{"family":"inet","name":"filter"}},
        {"chain":{"family":"inet","table":"filter","name":"input","hook":"input","prio":0,"policy":"accept"}},
        {"rule":{"family":"inet","table":"filter","chain":"input","handle":4,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"icmp","field":"type"}},"right":"echo-request"}},{"counter":{"packets":9,"bytes":756}},{"drop":null}]}}
    ]}"#;

    /// firewalld's real ruleset with an ICMP block: judged through its `ct status dnat` and
    /// IPv6 rpfilter rules, so the block is proved (fail), not guessed (unknown); a DNAT rule
    /// in the guest makes `ct status dnat` undecidable, and that is said.
    #[test]
    fn firewalld_blocks_are_proved_through_its_conntrack_and_rpfilter_rules() {
        const FIREWALLD: &str = include_str!("../../ruleset/fixtures/nft-firewalld.json");
        let f = judge_check(icmp_in, with_nft(FIREWALLD));
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert_eq!(f.evidence["manager"], "firewalld");
        assert!(f.summary.contains("filter_IN_public_deny"), "{}", f.summary);
        let nft = with_nft(FIREWALLD);
        let f = judge_check(icmp6, |s| {
            crate::checks::fixture::with_ipv6(s);
            nft(s)
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        // The guest DNATs something: a new packet's `ct status dnat` is not known.
        let dnat = FIREWALLD.replacen(
            r#"{"rule": {"family": "inet", "table": "firewalld", "chain": "nat_PREROUTING""#,
            r#"{"rule": {"family": "inet", "table": "firewalld", "chain": "nat_PREROUTING", "handle": 999, "expr": [{"dnat": {"addr": "10.77.0.99"}}]}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "nat_PREROUTING""#,
            1,
        );
        assert_ne!(dnat, FIREWALLD, "the fixture has a nat_PREROUTING rule");
        let f = judge_check(icmp_in, with_nft(&dnat));
        assert_eq!(f.status, Status::Unknown, "{}", f.summary);
        assert!(f.summary.contains("ct status"), "{}", f.summary);
    }

    #[test]
    fn guest_dnat_and_the_way_back_come_from_the_snapshot() {
        let mut s = crate::checks::fixture::healthy();
        let in_eth0 = |src: &str| Packet::icmp(ip(src), ip("10.77.0.10"), 8, true, "eth0", vec![]);
        // The lookup of the reply to 192.0.2.1 leaves by eth0 (index 2).
        assert_eq!(reverse_path(&s, &in_eth0("192.0.2.1")), Some(true));
        // On-link or routed elsewhere: the main table decides.
        assert_eq!(reverse_path(&s, &in_eth0("10.77.0.1")), Some(true));
        if let Gathered::Ok(routes) = &mut s.routes {
            routes.push(crate::checks::fixture::route(
                "203.0.113.0/24",
                None,
                3,
                "unicast",
            ));
            routes.push(crate::checks::fixture::route(
                "198.51.100.0/24",
                None,
                2,
                "blackhole",
            ));
        }
        assert_eq!(reverse_path(&s, &in_eth0("203.0.113.9")), Some(false));
        assert_eq!(reverse_path(&s, &in_eth0("198.51.100.9")), Some(false));
        // Link-local neighbours are always on the link.
        let ll = Packet::icmp(ip("fe80::1"), ip("fe80::2"), 136, true, "eth0", vec![]);
        assert_eq!(reverse_path(&s, &ll), Some(true));
        let out = Packet::icmp(ip("10.77.0.10"), ip("192.0.2.1"), 0, false, "eth0", vec![]);
        assert_eq!(
            reverse_path(&s, &out),
            None,
            "outbound has no way back to judge"
        );

        let nat = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.77.0.99:8080\nCOMMIT\n";
        let rulesets = |text: &str| {
            vec![Ruleset {
                not_read: None,
                nat: None,
                backend: "nft".into(),
                family: "ipv4".into(),
                tool: "iptables-nft-save".into(),
                tables: Gathered::Ok(parse_save(text).unwrap()),
            }]
        };
        let fw = |r: &'static [Ruleset]| Firewall {
            rulesets: r,
            ipsets: &[],
            os: None,
            nft: Ok(None),
            denied: &[],
            dnat: None,
        };
        let with_nat: &'static [Ruleset] = Box::leak(rulesets(nat).into_boxed_slice());
        assert_eq!(guest_dnat(&fw(with_nat)), Some(true));
        let plain: &'static [Ruleset] = Box::leak(
            rulesets(&nat.replace("-j DNAT --to-destination 10.77.0.99:8080", "-j ACCEPT"))
                .into_boxed_slice(),
        );
        assert_eq!(guest_dnat(&fw(plain)), Some(false));
        let unread: &'static [Ruleset] = Box::leak(
            vec![Ruleset {
                not_read: None,
                nat: None,
                backend: "nft".into(),
                family: "ipv4".into(),
                tool: "iptables-nft-save".into(),
                tables: Gathered::Failed("denied".into()),
            }]
            .into_boxed_slice(),
        );
        assert_eq!(guest_dnat(&fw(unread)), None);
    }

    #[test]
    fn native_nft_paths() {
        let f = judge_check(icmp_in, with_nft(NFT_DROP));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.starts_with("nftables drops") && f.summary.contains("9 packets"),
            "{}",
            f.summary
        );
        assert!(
            f.remedy[0].starts_with(
                "nft insert rule inet filter input position 4 icmp type echo-request accept"
            ),
            "{:?}",
            f.remedy
        );
        assert_eq!(judge_check(icmp_out, with_nft(NFT_DROP)).status, Status::Ok);
        let f = judge_check(icmp_in, |s| {
            s.nftables = Gathered::Failed("Operation not permitted".into())
        });
        assert_eq!(f.status, Status::Unknown);
        assert!(f.summary.contains("Operation not permitted"));
        // A rule without a counter statement has no count to report: say so, not "0 packets".
        let uncounted = NFT_DROP.replace(r#"{"counter":{"packets":9,"bytes":756}},"#, "");
        let f = judge_check(icmp_in, with_nft(&uncounted));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("(the rule has no counter)") && !f.summary.contains("packets"),
            "{}",
            f.summary
        );
        // Nor does an nft chain policy.
        let policy = r#"{"nftables":[{"table":{"family":"inet","name":"filter"}},
            {"chain":{"family":"inet","table":"filter","name":"input","hook":"input","prio":0,"policy":"drop"}}]}"#;
        let f = judge_check(icmp_in, with_nft(policy));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("a policy has no counter"),
            "{}",
            f.summary
        );
        let firewalld = NFT_DROP.replace("\"filter\"", "\"firewalld\"");
        let f = judge_check(icmp_in, with_nft(&firewalld));
        assert!(f.remedy[0].contains("firewall-cmd"), "{:?}", f.remedy);
    }

    #[test]
    fn ipset_membership_decides() {
        use crate::ruleset::ipset::IpSet;
        let rules = filter(
            "ACCEPT",
            "-A INPUT -m set --match-set bad src -p icmp -j DROP\n",
        );
        let sets = |s: &mut Snapshot| {
            s.ipsets = Gathered::Ok(Some(std::sync::Arc::new(vec![IpSet {
                name: "bad".into(),
                kind: "hash:net".into(),
                members: vec!["198.18.0.0/16".into()],
            }])));
        };
        let f = judge_check(icmp_in, |s| {
            with_rules(&rules)(s);
            sets(s);
            s.client = Some(ip("198.18.0.2"));
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert_eq!(
            judge_check(icmp_in, |s| {
                with_rules(&rules)(s);
                sets(s);
            })
            .status,
            Status::Ok
        );
        let f = judge_check(icmp_in, |s| {
            with_rules(&rules)(s);
            s.ipsets = Gathered::Failed("ipset not installed".into());
        });
        assert_eq!(f.status, Status::Unknown);
        assert!(f.summary.contains("ipset bad"), "{}", f.summary);
    }

    #[test]
    fn persistence_follows_the_distribution() {
        let rules = filter("ACCEPT", "-A INPUT -p icmp -j DROP\n");
        let f = judge_check(icmp_in, with_rules(&rules));
        assert_eq!(
            f.remedy[1],
            "persist it: service iptables save (package iptables-services)"
        );
        let f = judge_check(icmp_in, |s| {
            with_rules(&rules)(s);
            s.os = Gathered::Ok(crate::snapshot::OsRelease {
                id: "ubuntu".into(),
                id_like: vec!["debian".into()],
                pretty_name: None,
            });
        });
        assert_eq!(
            f.remedy[1],
            "persist it: netfilter-persistent save (package iptables-persistent)"
        );
        let f = judge_check(icmp_in, |s| {
            with_rules(&rules)(s);
            s.os = Gathered::Failed("no os-release".into());
        });
        assert!(
            f.remedy[1].contains("netfilter-persistent")
                && f.remedy[1].contains("service iptables save")
        );
        let f = judge_check(icmp_in, with_nft(NFT_DROP));
        assert!(
            f.remedy[1].contains("/etc/sysconfig/nftables.conf") && !f.remedy[1].contains("Debian")
        );
    }
}
