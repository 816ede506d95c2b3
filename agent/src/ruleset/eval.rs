//! Walks one modelled packet through a saved iptables/ip6tables ruleset in kernel hook order
//! (raw → mangle → filter → security, PREROUTING+INPUT for an inbound packet, OUTPUT+POSTROUTING
//! for a locally generated one), following jumps, gotos and returns to policies, and names the
//! rule or policy that decides. A match it cannot evaluate is recorded, never assumed: the
//! verdict is then marked uncertain with that match named.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ipset::IpSet;
use super::iptables::{Chain, Criterion, Table, Target};

/// Connection-tracking state of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    New,
    Established,
    /// Neighbour discovery and MLD: conntrack leaves them untracked, so `--ctstate
    /// ESTABLISHED,RELATED` never accepts them.
    Untracked,
}

/// The packet being judged.
#[derive(Debug, Clone)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Set for inbound packets.
    pub in_if: Option<String>,
    /// Set for outbound packets.
    pub out_if: Option<String>,
    pub proto: L4,
    /// ICMP type and code (ICMP packets only).
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Destination port (TCP/UDP only; a TCP packet is a SYN).
    pub dport: u16,
    pub ct: CtState,
    pub inbound: bool,
    /// Addresses configured on this host (for `addrtype LOCAL`).
    pub local: Vec<IpAddr>,
    /// Inbound: a route back to `src` leaves by `in_if` (what a strict reverse-path lookup,
    /// nft `fib saddr . iif oif`, finds); None: not known.
    pub reverse_path: Option<bool>,
    /// The guest's own NAT may have rewritten the destination (`ct status dnat`): any DNAT or
    /// REDIRECT rule exists. None: not known.
    pub dnat: Option<bool>,
}

/// The transport protocol of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Icmp,
    Tcp,
    Udp,
}

impl Packet {
    fn v6(&self) -> bool {
        self.dst.is_ipv6()
    }

    /// An ICMP/ICMPv6 packet of this type.
    pub fn icmp(
        src: IpAddr,
        dst: IpAddr,
        icmp_type: u8,
        inbound: bool,
        dev: &str,
        local: Vec<IpAddr>,
    ) -> Packet {
        Packet {
            src,
            dst,
            in_if: inbound.then(|| dev.to_string()),
            out_if: (!inbound).then(|| dev.to_string()),
            proto: L4::Icmp,
            icmp_type,
            icmp_code: 0,
            dport: 0,
            ct: if inbound {
                CtState::New
            } else {
                CtState::Established
            },
            inbound,
            local,
            reverse_path: None,
            dnat: None,
        }
    }

    /// A new inbound TCP SYN or UDP datagram to `dport`.
    pub fn connect(
        src: IpAddr,
        dst: IpAddr,
        proto: L4,
        dport: u16,
        dev: &str,
        local: Vec<IpAddr>,
    ) -> Packet {
        Packet {
            proto,
            dport,
            icmp_type: 0,
            ..Packet::icmp(src, dst, 0, true, dev, local)
        }
    }
}

/// `22`, `1000:2000` (iptables) or a comma list of those.
fn port_in(spec: &str, port: u16) -> Option<bool> {
    let mut any = false;
    for item in spec.split(',') {
        let (lo, hi) = match item.split_once(':') {
            Some((a, b)) => (
                if a.is_empty() { 0 } else { a.parse().ok()? },
                if b.is_empty() {
                    u16::MAX
                } else {
                    b.parse().ok()?
                },
            ),
            None => {
                let p = item.parse().ok()?;
                (p, p)
            }
        };
        any |= lo <= port && port <= hi;
    }
    Some(any)
}

/// `--tcp-flags MASK COMP` for a SYN: the masked flags must equal COMP.
fn syn_matches(mask: &str, comp: &str) -> bool {
    let has = |list: &str, f: &str| list == "ALL" || list.split(',').any(|x| x == f);
    let flags = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"];
    flags.iter().all(|f| {
        let in_mask = has(mask, f);
        let in_comp = has(comp, f) && comp != "NONE";
        let set = *f == "SYN";
        !in_mask || set == in_comp
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
}

fn counted_by_default() -> bool {
    true
}

impl Decider {
    /// "9 packets so far", or that the rule keeps no counter.
    pub fn counter_text(&self) -> String {
        if self.counted {
            format!("{} packets so far", self.packets)
        } else if self.position.is_some() {
            "the rule has no counter".to_string()
        } else {
            "a policy has no counter".to_string()
        }
    }
}

/// What decided the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decider {
    pub table: String,
    pub chain: String,
    /// 1-based rule position in the chain; absent when the chain's policy decided.
    pub position: Option<usize>,
    /// The rule as written (`-A INPUT ...`), or `policy DROP`.
    pub rule: String,
    pub packets: u64,
    pub bytes: u64,
    /// Whether `packets`/`bytes` are real counters: iptables counts every rule and built-in
    /// policy; an nft rule counts only with a `counter` statement and an nft policy never.
    #[serde(default = "counted_by_default")]
    pub counted: bool,
    /// `--reject-with` for REJECT.
    pub reject_with: Option<String>,
    /// nftables rule handle (native nft rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// None: no rule or policy said anything (accepted by default).
    pub decider: Option<Decider>,
    /// Matches that could not be evaluated on rules reached before the decision.
    pub uncertain: Vec<String>,
}

/// (table, chain) pairs a packet crosses, in order.
pub fn hooks(inbound: bool) -> &'static [(&'static str, &'static str)] {
    if inbound {
        &[
            ("raw", "PREROUTING"),
            ("mangle", "PREROUTING"),
            ("mangle", "INPUT"),
            ("filter", "INPUT"),
            ("security", "INPUT"),
        ]
    } else {
        &[
            ("raw", "OUTPUT"),
            ("mangle", "OUTPUT"),
            ("filter", "OUTPUT"),
            ("security", "OUTPUT"),
            ("mangle", "POSTROUTING"),
        ]
    }
}

enum Match {
    Yes,
    No,
    Unknown(String),
}

fn icmp_type_number(v6: bool, name: &str) -> Option<(u8, Option<u8>)> {
    if let Some((t, c)) = name.split_once('/') {
        return Some((t.parse().ok()?, Some(c.parse().ok()?)));
    }
    if let Ok(n) = name.parse() {
        return Some((n, None));
    }
    let n = match (v6, name) {
        (false, "echo-reply" | "pong") => 0,
        (false, "destination-unreachable") => 3,
        (false, "echo-request" | "ping") => 8,
        (false, "time-exceeded") => 11,
        (true, "echo-request") => 128,
        (true, "echo-reply") => 129,
        (true, "destination-unreachable") => 1,
        (true, "packet-too-big") => 2,
        (true, "time-exceeded" | "ttl-exceeded") => 3,
        (true, "parameter-problem") => 4,
        (true, "router-solicitation") => 133,
        (true, "router-advertisement") => 134,
        (true, "neighbour-solicitation" | "neighbor-solicitation") => 135,
        (true, "neighbour-advertisement" | "neighbor-advertisement") => 136,
        (true, "redirect") => 137,
        _ => return None,
    };
    Some((n, None))
}

fn cidrs_contain(list: &str, addr: IpAddr) -> Option<bool> {
    let mut any = false;
    for item in list.split(',') {
        let net: IpNet = if item.contains('/') {
            let (a, m) = item.split_once('/')?;
            let a: IpAddr = a.parse().ok()?;
            let prefix = match m.parse::<u8>() {
                Ok(p) => p,
                Err(_) => {
                    // Dotted netmask (older iptables-save).
                    let m: std::net::Ipv4Addr = m.parse().ok()?;
                    u32::from(m).leading_ones() as u8
                }
            };
            IpNet::new(a, prefix).ok()?
        } else {
            let a: IpAddr = item.parse().ok()?;
            IpNet::new(a, if a.is_ipv4() { 32 } else { 128 }).ok()?
        };
        any |= net.contains(&addr);
    }
    Some(any)
}

fn iface_matches(pattern: &str, name: Option<&str>) -> bool {
    let Some(name) = name else { return false };
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

fn in_range(range: &str, addr: IpAddr) -> Option<bool> {
    let (a, b) = range.split_once('-')?;
    let (a, b): (IpAddr, IpAddr) = (a.parse().ok()?, b.parse().ok()?);
    Some(a <= addr && addr <= b)
}

fn addr_type(p: &Packet, addr: IpAddr, types: &str) -> bool {
    let local = p.local.contains(&addr) || addr.is_loopback();
    types.split(',').any(|t| match t {
        "LOCAL" => local,
        "UNICAST" => !addr.is_multicast(),
        "MULTICAST" => addr.is_multicast(),
        "BROADCAST" => matches!(addr, IpAddr::V4(v) if v.is_broadcast()),
        _ => false,
    })
}

fn criterion(c: &Criterion, p: &Packet, sets: &[IpSet]) -> Match {
    let v = c.value.as_str();
    let yes = |b: bool| if b { Match::Yes } else { Match::No };
    let unknown = || Match::Unknown(format!("{} {}", c.key, c.value).trim().to_string());
    let m = match c.key.as_str() {
        "-s" => cidrs_contain(v, p.src).map(yes).unwrap_or_else(unknown),
        "-d" => cidrs_contain(v, p.dst).map(yes).unwrap_or_else(unknown),
        "-i" => yes(iface_matches(v, p.in_if.as_deref())),
        "-o" => yes(iface_matches(v, p.out_if.as_deref())),
        "-f" => Match::No,
        "-p" => {
            let proto = v.to_ascii_lowercase();
            let names: &[&str] = match (p.proto, p.v6()) {
                (L4::Icmp, true) => &["ipv6-icmp", "icmpv6", "58"],
                (L4::Icmp, false) => &["icmp", "1"],
                (L4::Tcp, _) => &["tcp", "6"],
                (L4::Udp, _) => &["udp", "17"],
            };
            yes(names.contains(&proto.as_str()) || proto == "all" || proto == "0")
        }
        "icmp --icmp-type" | "icmp6 --icmpv6-type" if p.proto != L4::Icmp => Match::No,
        "icmp --icmp-type" | "icmp6 --icmpv6-type" => {
            if v == "any" {
                Match::Yes
            } else {
                match icmp_type_number(p.v6(), v) {
                    Some((t, code)) => {
                        yes(t == p.icmp_type && code.is_none_or(|c| c == p.icmp_code))
                    }
                    None => unknown(),
                }
            }
        }
        "state --state" | "conntrack --ctstate" => {
            let want = match p.ct {
                CtState::New => "NEW",
                CtState::Established => "ESTABLISHED",
                CtState::Untracked => "UNTRACKED",
            };
            yes(v.split(',').any(|s| s == want))
        }
        k if k.starts_with("comment ") => return Match::Yes,
        // Port matches: only on the protocol they name (never on ICMP).
        k if (k.starts_with("tcp ") && p.proto != L4::Tcp)
            || (k.starts_with("udp ") && p.proto != L4::Udp)
            || (k.starts_with("multiport ") && p.proto == L4::Icmp)
            || k.starts_with("sctp ") =>
        {
            Match::No
        }
        "tcp --dport"
        | "tcp --destination-port"
        | "udp --dport"
        | "udp --destination-port"
        | "multiport --dports"
        | "multiport --destination-ports"
        | "multiport --ports" => port_in(v, p.dport).map(yes).unwrap_or_else(unknown),
        "tcp --syn" => Match::Yes,
        "tcp --tcp-flags" => match v.split_once(' ') {
            Some((mask, comp)) => yes(syn_matches(mask, comp)),
            None => unknown(),
        },
        "iprange --src-range" => in_range(v, p.src).map(yes).unwrap_or_else(unknown),
        "iprange --dst-range" => in_range(v, p.dst).map(yes).unwrap_or_else(unknown),
        "addrtype --src-type" => yes(addr_type(p, p.src, v)),
        "addrtype --dst-type" => yes(addr_type(p, p.dst, v)),
        k if k.starts_with("addrtype --limit-iface") => return Match::Yes,
        // A rate limit lets packets through up to the rate: at ping rates it matches.
        k if k.starts_with("limit ") || k.starts_with("hashlimit ") => return Match::Yes,
        // Kernel-generated replies carry no mark and have no owning socket.
        "mark --mark" | "connmark --mark" => {
            // The packet (and its connection) carry mark 0: `--mark V/M` matches iff V == 0.
            let val = v.split_once('/').map_or(v, |(val, _)| val);
            let parsed = match val.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => val.parse().ok(),
            };
            match parsed {
                Some(val) => yes(val == 0),
                None => unknown(),
            }
        }
        k if k.starts_with("owner ") && !p.inbound => Match::No,
        "pkttype --pkt-type" => yes(v == "unicast"),
        "set --match-set" => {
            let mut words = v.split_whitespace();
            let (Some(name), Some(flags)) = (words.next(), words.next()) else {
                return unknown();
            };
            let Some(set) = sets.iter().find(|s| s.name == name) else {
                return Match::Unknown(format!("ipset {name} (its contents were not read)"));
            };
            let mut dims = flags.split(',');
            let addr = if dims.next() == Some("dst") {
                p.dst
            } else {
                p.src
            };
            let port = dims.next().map(|d| if d == "src" { 0 } else { p.dport });
            let proto = match p.proto {
                L4::Tcp => "tcp",
                L4::Udp => "udp",
                L4::Icmp => "icmp",
            };
            match super::ipset::contains(set, addr, proto, port) {
                Some(b) => yes(b),
                None => Match::Unknown(format!("ipset {name} of type {}", set.kind)),
            }
        }
        _ => unknown(),
    };
    match (m, c.negated) {
        (Match::Yes, true) => Match::No,
        (Match::No, true) => Match::Yes,
        (m, _) => m,
    }
}

enum Flow {
    Verdict(Verdict, Decider),
    /// RETURN, or the end of a user chain: continue in the caller.
    Return,
}

struct Walk<'a> {
    table: &'a Table,
    packet: &'a Packet,
    sets: &'a [IpSet],
    uncertain: Vec<String>,
    /// Chains by name, built at the first jump: a walk through many jumps stays linear in
    /// the rules it visits instead of scanning every chain at each jump.
    by_name: std::cell::OnceCell<std::collections::HashMap<&'a str, &'a Chain>>,
}

const MAX_DEPTH: usize = 64;

impl<'a> Walk<'a> {
    fn chain(&self, name: &str) -> Option<&'a Chain> {
        let table = self.table;
        self.by_name
            .get_or_init(|| table.chains.iter().map(|c| (c.name.as_str(), c)).collect())
            .get(name)
            .copied()
    }

    /// Runs a chain to a verdict, or to its end: RETURN, the end of the rules, or the end of
    /// a chain reached by `-g` all end it; a built-in chain's policy then applies.
    fn run(&mut self, chain: &Chain, depth: usize) -> Flow {
        if depth > MAX_DEPTH {
            self.uncertain.push(format!(
                "chain nesting deeper than {MAX_DEPTH} at {}",
                chain.name
            ));
            return Flow::Return;
        }
        'rules: for (i, rule) in chain.rules.iter().enumerate() {
            let parsed = &chain.parsed_rules()[i];
            let mut unknown = Vec::new();
            let mut matched = true;
            for c in &parsed.criteria {
                match criterion(c, self.packet, self.sets) {
                    Match::Yes => {}
                    Match::No => {
                        matched = false;
                        break;
                    }
                    Match::Unknown(what) => unknown.push(what),
                }
            }
            if !matched {
                continue;
            }
            let decider = |reject_with: Option<String>| Decider {
                table: self.table.name.clone(),
                chain: chain.name.clone(),
                position: Some(i + 1),
                rule: rule.text(&chain.name),
                packets: rule.packets,
                bytes: rule.bytes,
                counted: true,
                reject_with,
                handle: None,
            };
            if !unknown.is_empty() {
                // Could not tell whether this rule matches: record it and assume it does not.
                if !matches!(parsed.target, Target::None) {
                    self.uncertain.push(format!(
                        "{} (in `{}`)",
                        unknown.join(", "),
                        rule.text(&chain.name)
                    ));
                }
                continue;
            }
            match &parsed.target {
                Target::None => {}
                Target::Jump(t, opts) => match t.as_str() {
                    "ACCEPT" => return Flow::Verdict(Verdict::Accept, decider(None)),
                    "DROP" => return Flow::Verdict(Verdict::Drop, decider(None)),
                    "REJECT" => {
                        let with = opts
                            .iter()
                            .position(|o| o == "--reject-with")
                            .and_then(|p| opts.get(p + 1).cloned())
                            .unwrap_or_else(|| "icmp-port-unreachable".to_string());
                        return Flow::Verdict(Verdict::Reject, decider(Some(with)));
                    }
                    "RETURN" => break 'rules,
                    "NFQUEUE" | "QUEUE" => {
                        self.uncertain.push(format!(
                            "{t}: a userspace program decides (`{}`)",
                            rule.text(&chain.name)
                        ));
                        break 'rules;
                    }
                    user => {
                        // LOG, MARK, CT, NOTRACK, TRACE, ... are not chains: non-terminating.
                        if let Some(sub) = self.chain(user) {
                            if let Flow::Verdict(v, d) = self.run(sub, depth + 1) {
                                return Flow::Verdict(v, d);
                            }
                        }
                    }
                },
                Target::Goto(g) => {
                    if let Some(sub) = self.chain(g) {
                        // The end of a goto'd chain is the end of this one.
                        match self.run(sub, depth + 1) {
                            Flow::Verdict(v, d) => return Flow::Verdict(v, d),
                            Flow::Return => break 'rules,
                        }
                    }
                }
            }
        }
        match &chain.policy {
            Some(p) if p == "DROP" => Flow::Verdict(
                Verdict::Drop,
                Decider {
                    table: self.table.name.clone(),
                    chain: chain.name.clone(),
                    position: None,
                    rule: format!("policy {p} of {}", chain.name),
                    packets: chain.packets,
                    bytes: chain.bytes,
                    counted: true,
                    reject_with: None,
                    handle: None,
                },
            ),
            _ => Flow::Return,
        }
    }
}

/// The verdict of one ruleset (all its tables) for the packet.
pub fn evaluate(tables: &[Table], packet: &Packet) -> Decision {
    evaluate_with_sets(tables, &[], packet)
}

/// `evaluate`, with the ipsets `-m set` rules refer to.
pub fn evaluate_with_sets(tables: &[Table], sets: &[IpSet], packet: &Packet) -> Decision {
    let walks = hooks(packet.inbound)
        .iter()
        .filter_map(|(table_name, chain_name)| {
            let table = tables.iter().find(|t| t.name == *table_name)?;
            let chain = table.chains.iter().find(|c| c.name == *chain_name)?;
            let mut walk = Walk {
                table,
                packet,
                sets,
                uncertain: Vec::new(),
                by_name: Default::default(),
            };
            let verdict = match walk.run(chain, 0) {
                Flow::Verdict(v, d) => Some((v, d)),
                Flow::Return => None,
            };
            Some((verdict, walk.uncertain))
        });
    first_decisive(walks)
}

/// Combines the walks of the hooks a packet crosses, in order: the first that does not accept
/// decides (later hooks are not walked); otherwise the packet is accepted, naming the last
/// rule that accepted it. Shared by the iptables and nftables evaluators.
pub fn first_decisive(
    walks: impl IntoIterator<Item = (Option<(Verdict, Decider)>, Vec<String>)>,
) -> Decision {
    let mut uncertain = Vec::new();
    let mut accepted_by = None;
    for (verdict, walk_uncertain) in walks {
        uncertain.extend(walk_uncertain);
        match verdict {
            Some((Verdict::Accept, d)) => accepted_by = Some(d),
            Some((v, d)) => {
                return Decision {
                    verdict: v,
                    decider: Some(d),
                    uncertain,
                }
            }
            // ACCEPT ends a hook only; the next one still sees the packet.
            None => {}
        }
    }
    Decision {
        verdict: Verdict::Accept,
        decider: accepted_by,
        uncertain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::iptables::parse_save;

    fn packet_in(src: &str) -> Packet {
        Packet {
            src: src.parse().unwrap(),
            dst: "10.77.0.10".parse().unwrap(),
            in_if: Some("eth0".into()),
            out_if: None,
            proto: L4::Icmp,
            dport: 0,
            icmp_type: 8,
            icmp_code: 0,
            ct: CtState::New,
            inbound: true,
            local: vec!["10.77.0.10".parse().unwrap()],
            reverse_path: None,
            dnat: None,
        }
    }

    fn reply_out() -> Packet {
        Packet {
            src: "10.77.0.10".parse().unwrap(),
            dst: "198.18.0.2".parse().unwrap(),
            in_if: None,
            out_if: Some("eth0".into()),
            proto: L4::Icmp,
            dport: 0,
            icmp_type: 0,
            icmp_code: 0,
            ct: CtState::Established,
            inbound: false,
            local: vec!["10.77.0.10".parse().unwrap()],
            reverse_path: None,
            dnat: None,
        }
    }

    fn filter(input: &str, rules: &[&str]) -> Vec<Table> {
        let mut s = format!("*filter\n:INPUT {input} [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:user - [0:0]\n:other - [0:0]\n");
        for r in rules {
            s.push_str(r);
            s.push('\n');
        }
        s.push_str("COMMIT\n");
        parse_save(&s).unwrap()
    }

    fn verdict(tables: &[Table], p: &Packet) -> (Verdict, Option<usize>, String) {
        let d = evaluate(tables, p);
        let pos = d.decider.as_ref().and_then(|d| d.position);
        (
            d.verdict,
            pos,
            d.decider.map(|d| d.rule).unwrap_or_default(),
        )
    }

    /// Pathological but valid: 30,000 user chains, each jumped to from INPUT and returning.
    /// Parsing and the walk stay linear (a chain lookup per rule and per jump was a scan of
    /// every chain: 9e8 comparisons here). The bound is generous; quadratic takes minutes.
    #[test]
    fn many_chains_and_jumps_stay_linear() {
        let n = 30_000;
        let mut s = String::from(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
        );
        for i in 0..n {
            s.push_str(&format!(":c{i} - [0:0]\n"));
        }
        for i in 0..n {
            s.push_str(&format!(
                "-A INPUT -p icmp -j c{i}\n-A c{i} -s 192.0.2.{} -j DROP\n",
                i % 250
            ));
        }
        s.push_str("COMMIT\n");
        let start = std::time::Instant::now();
        let tables = parse_save(&s).unwrap();
        assert_eq!(tables[0].chains.len(), n + 3);
        let (v, _, _) = verdict(&tables, &packet_in("198.18.0.2"));
        assert_eq!(v, Verdict::Accept);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn empty_ruleset_accepts() {
        let d = evaluate(&[], &packet_in("198.18.0.2"));
        assert_eq!((d.verdict, d.decider), (Verdict::Accept, None));
    }

    #[test]
    fn echo_request_drop_by_type_name_and_number() {
        for t in ["8", "echo-request", "8/0", "any"] {
            let r = filter(
                "ACCEPT",
                &[&format!("-A INPUT -p icmp -m icmp --icmp-type {t} -j DROP")],
            );
            assert_eq!(
                verdict(&r, &packet_in("198.18.0.2")).0,
                Verdict::Drop,
                "{t}"
            );
        }
        let r = filter(
            "ACCEPT",
            &["-A INPUT -p icmp -m icmp --icmp-type 0 -j DROP"],
        );
        assert_eq!(verdict(&r, &packet_in("198.18.0.2")).0, Verdict::Accept);
        let r = filter(
            "ACCEPT",
            &["-A INPUT -p icmp -m icmp ! --icmp-type 8 -j DROP"],
        );
        assert_eq!(verdict(&r, &packet_in("198.18.0.2")).0, Verdict::Accept);
    }

    #[test]
    fn policy_drop_and_accept_ahead_of_catch_all() {
        let r = filter(
            "DROP",
            &[
                "-A INPUT -i lo -j ACCEPT",
                "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
            ],
        );
        let (v, pos, rule) = verdict(&r, &packet_in("198.18.0.2"));
        assert_eq!((v, pos), (Verdict::Drop, None));
        assert_eq!(rule, "policy DROP of INPUT");
        let r = filter(
            "DROP",
            &[
                "-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT",
                "-A INPUT -j DROP",
            ],
        );
        assert_eq!(verdict(&r, &packet_in("198.18.0.2")).0, Verdict::Accept);
    }

    #[test]
    fn user_chains_return_and_goto() {
        let r = filter(
            "ACCEPT",
            &[
                "-A INPUT -s 198.18.0.0/16 -j user",
                "-A user -p icmp -j DROP",
            ],
        );
        assert_eq!(
            verdict(&r, &packet_in("198.18.0.2")),
            (Verdict::Drop, Some(1), "-A user -p icmp -j DROP".into())
        );
        assert_eq!(verdict(&r, &packet_in("192.0.2.1")).0, Verdict::Accept);
        let r = filter(
            "ACCEPT",
            &[
                "-A INPUT -j user",
                "-A INPUT -j DROP",
                "-A user -j RETURN",
                "-A user -j ACCEPT",
            ],
        );
        assert_eq!(verdict(&r, &packet_in("198.18.0.2")).1, Some(2));
        // The end of a goto'd chain is the end of INPUT: its policy decides, not the next rule.
        let r = filter("ACCEPT", &["-A INPUT -g other", "-A INPUT -j DROP"]);
        assert_eq!(verdict(&r, &packet_in("198.18.0.2")).0, Verdict::Accept);
        let r = filter("DROP", &["-A INPUT -g other", "-A INPUT -j ACCEPT"]);
        assert_eq!(
            verdict(&r, &packet_in("198.18.0.2")),
            (Verdict::Drop, None, "policy DROP of INPUT".into())
        );
        // RETURN in a built-in chain applies its policy.
        let r = filter("DROP", &["-A INPUT -j RETURN", "-A INPUT -j ACCEPT"]);
        assert_eq!(verdict(&r, &packet_in("198.18.0.2")).0, Verdict::Drop);
    }

    #[test]
    fn reject_with_and_client_specific_rules() {
        let r = filter(
            "ACCEPT",
            &[
                "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
                "-A INPUT -s 198.18.0.2/32 -j REJECT --reject-with icmp-host-prohibited",
            ],
        );
        let d = evaluate(&r, &packet_in("198.18.0.2"));
        assert_eq!(d.verdict, Verdict::Reject);
        assert_eq!(
            d.decider.unwrap().reject_with.as_deref(),
            Some("icmp-host-prohibited")
        );
        assert_eq!(verdict(&r, &packet_in("192.0.2.1")).0, Verdict::Accept);
        let r = filter("ACCEPT", &["-A INPUT ! -s 10.0.0.0/255.0.0.0 -j DROP"]);
        assert_eq!(verdict(&r, &packet_in("198.18.0.2")).0, Verdict::Drop);
        assert_eq!(verdict(&r, &packet_in("10.1.1.1")).0, Verdict::Accept);
    }

    #[test]
    fn outbound_reply_is_established() {
        let r = parse_save("*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A OUTPUT -p icmp -j DROP\nCOMMIT\n").unwrap();
        assert_eq!(verdict(&r, &reply_out()).0, Verdict::Accept);
        let r = parse_save("*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -o eth+ -p icmp -m icmp --icmp-type echo-reply -j DROP\nCOMMIT\n").unwrap();
        assert_eq!(verdict(&r, &reply_out()).0, Verdict::Drop);
    }

    #[test]
    fn raw_table_is_seen_before_filter() {
        let r = parse_save("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p icmp -j DROP\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p icmp -j ACCEPT\nCOMMIT\n").unwrap();
        let d = evaluate(&r, &packet_in("198.18.0.2"));
        assert_eq!(d.verdict, Verdict::Drop);
        assert_eq!(d.decider.unwrap().table, "raw");
    }

    #[test]
    fn unknown_matches_make_it_uncertain_not_silent() {
        let r = filter(
            "ACCEPT",
            &["-A INPUT -m set --match-set blocklist src -j DROP"],
        );
        let d = evaluate(&r, &packet_in("198.18.0.2"));
        assert_eq!(d.verdict, Verdict::Accept);
        assert_eq!(d.uncertain.len(), 1);
        assert!(
            d.uncertain[0].contains("set --match-set blocklist src"),
            "{:?}",
            d.uncertain
        );
        // Comments, limits, port matches and addrtype are understood.
        let r = filter("ACCEPT", &[
            "-A INPUT -p tcp -m multiport --dports 22,80 -j DROP",
            "-A INPUT -m addrtype --dst-type LOCAL -p icmp -m limit --limit 1/s -m comment --comment x -j ACCEPT",
            "-A INPUT -j DROP",
        ]);
        let d = evaluate(&r, &packet_in("198.18.0.2"));
        assert_eq!((d.verdict, d.uncertain.len()), (Verdict::Accept, 0));
        assert_eq!(
            d.decider.and_then(|d| d.position),
            Some(2),
            "the accepting rule is named"
        );
    }

    #[test]
    fn ipv6_icmp() {
        let r = parse_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP\nCOMMIT\n").unwrap();
        let p = Packet {
            src: "2001:db8::2".parse().unwrap(),
            dst: "fd77::10".parse().unwrap(),
            icmp_type: 128,
            ..packet_in("198.18.0.2")
        };
        assert_eq!(verdict(&r, &p).0, Verdict::Drop);
    }

    /// Saved outputs of the real tools, both backends, with and without counters.
    #[test]
    fn real_outputs_of_both_backends() {
        for (fixture, counters) in [
            (include_str!("fixtures/legacy-save.txt"), false),
            (include_str!("fixtures/legacy-save-counters.txt"), true),
        ] {
            let t = parse_save(fixture).unwrap();
            assert_eq!(
                t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                ["raw", "filter"],
                "counters: {counters}"
            );
            let d = evaluate(&t, &packet_in("198.18.0.2"));
            assert_eq!(d.verdict, Verdict::Drop);
            let dec = d.decider.unwrap();
            assert_eq!(
                (dec.table.as_str(), dec.chain.as_str(), dec.position),
                ("filter", "INPUT", Some(1))
            );
            assert!(dec.rule.contains("\"legacy ping block\""), "{}", dec.rule);
            // The raw table drops its source range before filter sees it.
            let d = evaluate(&t, &packet_in("203.0.113.9"));
            assert_eq!(d.decider.unwrap().table, "raw");
        }
        let t6 = parse_save(include_str!("fixtures/ip6tables-nft-save-counters.txt")).unwrap();
        let p6 = Packet {
            src: "2001:db8::2".parse().unwrap(),
            dst: "fd77::10".parse().unwrap(),
            icmp_type: 128,
            ..packet_in("198.18.0.2")
        };
        let d = evaluate(&t6, &p6);
        assert_eq!(d.verdict, Verdict::Reject);
        assert_eq!(
            d.decider.unwrap().reject_with.as_deref(),
            Some("icmp6-adm-prohibited")
        );
    }
}
