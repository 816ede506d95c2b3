//! Native nftables rulesets (`nft -j list ruleset`): tables of every family with their base
//! chains' hooks and priorities, rules as expression lists, and named sets; and the verdict of
//! those base chains for a packet. Tables that iptables-nft manages (`ip filter` with chain
//! `INPUT`, ...) are left out here: `iptables-nft-save` already shows them in iptables terms.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::eval::{first_decisive, CtState, Decider, Decision, Packet, Verdict, L4};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NftRuleset {
    pub tables: Vec<NftTable>,
    /// Tables read over nfnetlink instead of by `nft` ("inet firewalld"): every rule was one
    /// the agent prints as `nft -j` does (see `sources::nftables`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_natively: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NftTable {
    pub family: String,
    pub name: String,
    pub chains: Vec<NftChain>,
    /// Named sets: name → elements as nft prints them.
    pub sets: Vec<(String, Vec<Value>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NftChain {
    pub name: String,
    /// Base chains only.
    pub hook: Option<String>,
    pub prio: Option<i64>,
    pub policy: Option<String>,
    pub rules: Vec<NftRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NftRule {
    pub handle: u64,
    pub expr: Vec<Value>,
}

const XTABLES_TABLES: &[&str] = &["filter", "raw", "mangle", "nat", "security"];

/// A table iptables-nft manages (`ip filter`, `ip6 raw`, ...), read through iptables-nft-save.
pub fn is_xtables_table(family: &str, name: &str) -> bool {
    matches!(family, "ip" | "ip6") && XTABLES_TABLES.contains(&name)
}

/// `nft -j list tables`: (family, name) pairs.
pub fn parse_table_list(text: &str) -> Result<Vec<(String, String)>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("expected an object with an \"nftables\" array")?;
    Ok(items
        .iter()
        .filter_map(|i| i.get("table"))
        .map(|t| {
            let s = |k: &str| {
                t.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (s("family"), s("name"))
        })
        .collect())
}

/// Parses `nft -j list ruleset` (or `list table`). Errors say what was expected.
pub fn parse_json(text: &str) -> Result<NftRuleset, String> {
    let mut doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    // Taken, not cloned: each rule's expression tree moves into the ruleset as it is.
    let items = match doc.get_mut("nftables").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => return Err("expected an object with an \"nftables\" array".to_string()),
    };
    let mut rs = NftRuleset::default();
    // Tables and chains by name: every item finds its place in O(1), linear in the dump.
    let mut tables: HashMap<(String, String), usize> = HashMap::new();
    let mut chains: HashMap<(usize, String), usize> = HashMap::new();
    let mut table_of = |rs: &mut NftRuleset, family: &str, name: &str| -> usize {
        if let Some(&i) = tables.get(&(family.to_string(), name.to_string())) {
            return i;
        }
        rs.tables.push(NftTable {
            family: family.into(),
            name: name.into(),
            ..Default::default()
        });
        tables.insert((family.to_string(), name.to_string()), rs.tables.len() - 1);
        rs.tables.len() - 1
    };
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for mut item in items {
        if let Some(t) = item.get("table") {
            table_of(&mut rs, &s(t, "family"), &s(t, "name"));
        } else if let Some(c) = item.get("chain") {
            let i = table_of(&mut rs, &s(c, "family"), &s(c, "table"));
            chains.insert((i, s(c, "name")), rs.tables[i].chains.len());
            rs.tables[i].chains.push(NftChain {
                name: s(c, "name"),
                hook: c.get("hook").and_then(Value::as_str).map(str::to_string),
                prio: c.get("prio").and_then(Value::as_i64),
                policy: c.get("policy").and_then(Value::as_str).map(str::to_string),
                rules: Vec::new(),
            });
        } else if let Some(r) = item.get_mut("rule") {
            let i = table_of(&mut rs, &s(r, "family"), &s(r, "table"));
            let chain = s(r, "chain");
            let rule = NftRule {
                handle: r.get("handle").and_then(Value::as_u64).unwrap_or(0),
                expr: match r.get_mut("expr").map(Value::take) {
                    Some(Value::Array(expr)) => expr,
                    _ => Vec::new(),
                },
            };
            match chains
                .get(&(i, chain.clone()))
                .and_then(|&c| rs.tables[i].chains.get_mut(c))
            {
                Some(c) => c.rules.push(rule),
                None => return Err(format!("rule {} for an unknown chain {chain}", rule.handle)),
            }
        } else if let Some(set) = item.get_mut("set") {
            let i = table_of(&mut rs, &s(set, "family"), &s(set, "table"));
            let elems = match set.get_mut("elem").map(Value::take) {
                Some(Value::Array(elems)) => elems,
                _ => Vec::new(),
            };
            rs.tables[i].sets.push((s(set, "name"), elems));
        }
    }
    // What iptables-nft manages is read through iptables-nft-save instead.
    rs.tables.retain(|t| !is_xtables_table(&t.family, &t.name));
    Ok(rs)
}

/// A rule rendered close to `nft list` syntax, for evidence.
pub fn render(expr: &[Value]) -> String {
    fn val(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(a) => a.iter().map(val).collect::<Vec<_>>().join(","),
            Value::Object(o) => {
                if let Some(p) = o.get("payload") {
                    return format!("{} {}", val(&p["protocol"]), val(&p["field"]));
                }
                if let Some(m) = o.get("meta") {
                    return format!("meta {}", val(&m["key"]));
                }
                if let Some(c) = o.get("ct") {
                    return format!("ct {}", val(&c["key"]));
                }
                if let Some(p) = o.get("prefix") {
                    return format!("{}/{}", val(&p["addr"]), val(&p["len"]));
                }
                if let Some(s) = o.get("set") {
                    return format!("{{ {} }}", val(s).replace(',', ", "));
                }
                if let Some(r) = o.get("range") {
                    return format!("{}-{}", val(&r[0]), val(&r[1]));
                }
                Value::Object(o.clone()).to_string()
            }
            other => other.to_string(),
        }
    }
    expr.iter()
        .map(|e| {
            if let Some(m) = e.get("match") {
                let op = m["op"].as_str().unwrap_or("==");
                let op = if op == "==" || op == "in" {
                    String::new()
                } else {
                    format!("{op} ")
                };
                format!("{} {op}{}", val(&m["left"]), val(&m["right"]))
            } else if let Some(c) = e.get("counter") {
                format!(
                    "counter packets {} bytes {}",
                    val(&c["packets"]),
                    val(&c["bytes"])
                )
            } else if let Some(j) = e.get("jump") {
                format!("jump {}", val(&j["target"]))
            } else if let Some(g) = e.get("goto") {
                format!("goto {}", val(&g["target"]))
            } else if let Some(r) = e.get("reject") {
                match r.get("expr") {
                    Some(x) => format!("reject with {} {}", val(&r["type"]), val(x)),
                    None => "reject".to_string(),
                }
            } else if let Some(o) = e.as_object() {
                o.keys().next().cloned().unwrap_or_default()
            } else {
                val(e)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

enum M {
    Yes,
    No,
    Unknown(String),
}

fn icmp_name(v6: bool, t: u8) -> &'static str {
    match (v6, t) {
        (false, 0) => "echo-reply",
        (false, 8) => "echo-request",
        (true, 128) => "echo-request",
        (true, 129) => "echo-reply",
        (true, 133) => "nd-router-solicit",
        (true, 134) => "nd-router-advert",
        (true, 135) => "nd-neighbor-solicit",
        (true, 136) => "nd-neighbor-advert",
        _ => "",
    }
}

/// The names and number nft may print for the packet's transport protocol.
fn l4_names(p: &Packet) -> Vec<Value> {
    let (name, alt, n) = match (p.proto, p.dst.is_ipv6()) {
        (L4::Icmp, true) => ("ipv6-icmp", "icmpv6", 58),
        (L4::Icmp, false) => ("icmp", "icmp", 1),
        (L4::Tcp, _) => ("tcp", "tcp", 6),
        (L4::Udp, _) => ("udp", "udp", 17),
    };
    vec![Value::from(name), Value::from(alt), Value::from(n)]
}

/// The packet's value for a match's left-hand side, as the strings/numbers nft prints.
fn left_value(left: &Value, p: &Packet) -> Result<Option<Vec<Value>>, String> {
    let v6 = p.dst.is_ipv6();
    let str_ = |s: &str| Ok(Some(vec![Value::String(s.to_string())]));
    if let Some(pl) = left.get("payload") {
        let proto = pl["protocol"].as_str().unwrap_or_default();
        let field = pl["field"].as_str().unwrap_or_default();
        return match (proto, field) {
            ("ip", _) | ("ip6", _) if (proto == "ip6") != v6 => Ok(None),
            ("ip" | "ip6", "saddr") => str_(&p.src.to_string()),
            ("ip" | "ip6", "daddr") => str_(&p.dst.to_string()),
            ("ip", "protocol") | ("ip6", "nexthdr") => Ok(Some(l4_names(p))),
            ("tcp", "dport") if p.proto == L4::Tcp => Ok(Some(vec![Value::from(p.dport)])),
            ("udp", "dport") if p.proto == L4::Udp => Ok(Some(vec![Value::from(p.dport)])),
            ("th", "dport") if p.proto != L4::Icmp => Ok(Some(vec![Value::from(p.dport)])),
            ("tcp" | "udp" | "th", "sport") if p.proto != L4::Icmp => {
                Err(format!("payload {proto} sport"))
            }
            ("icmp", "type") | ("icmpv6", "type")
                if (proto == "icmpv6") == v6 && p.proto == L4::Icmp =>
            {
                Ok(Some(vec![
                    Value::String(icmp_name(v6, p.icmp_type).to_string()),
                    Value::from(p.icmp_type),
                ]))
            }
            ("icmp", "code") | ("icmpv6", "code") => Ok(Some(vec![Value::from(p.icmp_code)])),
            // A header the packet does not have: the match fails.
            ("icmp" | "icmpv6", _) | ("tcp" | "udp" | "th" | "sctp" | "dccp", _) => Ok(None),
            _ => Err(format!("payload {proto} {field}")),
        };
    }
    if let Some(m) = left.get("meta") {
        let key = m["key"].as_str().unwrap_or_default();
        return match key {
            "l4proto" => Ok(Some(l4_names(p))),
            "nfproto" => str_(if v6 { "ipv6" } else { "ipv4" }),
            "protocol" => str_(if v6 { "ip6" } else { "ip" }),
            "iifname" | "iif" => match &p.in_if {
                Some(i) => str_(i),
                None => Ok(None),
            },
            "oifname" | "oif" => match &p.out_if {
                Some(i) => str_(i),
                None => Ok(None),
            },
            "mark" => Ok(Some(vec![Value::from(0)])),
            "pkttype" => str_("host"),
            other => Err(format!("meta {other}")),
        };
    }
    if let Some(c) = left.get("ct") {
        return match c["key"].as_str().unwrap_or_default() {
            "state" => str_(match p.ct {
                CtState::New => "new",
                CtState::Established => "established",
                CtState::Untracked => "untracked",
            }),
            "mark" => Ok(Some(vec![Value::from(0)])),
            // The status bits set (the match tests any of the right-hand ones). A new
            // connection at the filter hooks has none (not yet confirmed, no reply seen, not
            // expected: echo and SYNs have no helper) unless the guest's own NAT rewrote it.
            "status" => match (p.ct, p.dnat) {
                (CtState::Untracked, _) | (CtState::New, Some(false)) => Ok(Some(vec![])),
                _ => Err("ct status".to_string()),
            },
            other => Err(format!("ct {other}")),
        };
    }
    if let Some(f) = left.get("fib") {
        let flags: Vec<&str> = f["flags"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // `fib saddr [. mark] . iif oif`: the strict reverse-path lookup (firewalld's IPv6
        // rpfilter, `rp_filter` done in nft). Our packets carry mark 0, so mark changes
        // nothing; the result is the input interface, or `missing` (false).
        let reverse = f["result"] == "oif"
            && flags.contains(&"saddr")
            && flags.contains(&"iif")
            && flags.iter().all(|f| matches!(*f, "saddr" | "iif" | "mark"));
        return match (reverse, &p.in_if, p.reverse_path) {
            (true, Some(i), Some(true)) => str_(i),
            (true, Some(_), Some(false)) => Ok(Some(vec![Value::Bool(false)])),
            _ => Err(format!("match on {left}")),
        };
    }
    Err(format!("match on {left}"))
}

/// Does one packet value equal/lie in one nft right-hand value?
fn contains(right: &Value, v: &Value, sets: &[(String, Vec<Value>)]) -> Option<bool> {
    match right {
        Value::String(s) if s.starts_with('@') => {
            let elems = &sets.iter().find(|(n, _)| n == &s[1..])?.1;
            Some(elems.iter().any(|e| contains(e, v, sets) == Some(true)))
        }
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(right == v),
        Value::Array(a) => Some(a.iter().any(|r| contains(r, v, sets) == Some(true))),
        Value::Object(o) => {
            if let Some(s) = o.get("set") {
                return contains(s, v, sets);
            }
            if let Some(e) = o.get("elem") {
                return contains(e.get("val").unwrap_or(e), v, sets);
            }
            if let (Some(r), Some(n)) = (o.get("range"), v.as_u64()) {
                return Some(r[0].as_u64()? <= n && n <= r[1].as_u64()?);
            }
            let ip: IpAddr = v.as_str()?.parse().ok()?;
            if let Some(p) = o.get("prefix") {
                let net =
                    IpNet::new(p["addr"].as_str()?.parse().ok()?, p["len"].as_u64()? as u8).ok()?;
                return Some(net.contains(&ip));
            }
            if let Some(r) = o.get("range") {
                let (a, b): (IpAddr, IpAddr) =
                    (r[0].as_str()?.parse().ok()?, r[1].as_str()?.parse().ok()?);
                return Some(a <= ip && ip <= b);
            }
            None
        }
        _ => None,
    }
}

fn match_expr(m: &Value, p: &Packet, sets: &[(String, Vec<Value>)]) -> M {
    let op = m["op"].as_str().unwrap_or("==");
    let values = match left_value(&m["left"], p) {
        Err(what) => return M::Unknown(what),
        Ok(None) => return M::No,
        Ok(Some(v)) => v,
    };
    let hit = values
        .iter()
        .map(|v| contains(&m["right"], v, sets))
        .collect::<Vec<_>>();
    let Some(any) = hit
        .iter()
        .copied()
        .try_fold(false, |acc, h| h.map(|h| acc || h))
    else {
        return M::Unknown(format!("{} {op} {}", m["left"], m["right"]));
    };
    match op {
        "==" | "in" => {
            if any {
                M::Yes
            } else {
                M::No
            }
        }
        "!=" => {
            if any {
                M::No
            } else {
                M::Yes
            }
        }
        other => M::Unknown(format!("operator {other}")),
    }
}

enum Flow {
    Verdict(Verdict, Decider),
    Return,
}

struct Walk<'a> {
    table: &'a NftTable,
    packet: &'a Packet,
    uncertain: Vec<String>,
}

impl Walk<'_> {
    fn run(&mut self, chain: &NftChain, depth: usize) -> Flow {
        if depth > 64 {
            self.uncertain
                .push(format!("chain nesting deeper than 64 at {}", chain.name));
            return Flow::Return;
        }
        'rules: for (i, rule) in chain.rules.iter().enumerate() {
            let mut counters: Option<(u64, u64)> = None;
            let decider = |with: Option<String>, counters: Option<(u64, u64)>| Decider {
                table: format!("{} {}", self.table.family, self.table.name),
                chain: chain.name.clone(),
                position: Some(i + 1),
                rule: format!("{}  # handle {}", render(&rule.expr), rule.handle),
                packets: counters.map_or(0, |c| c.0),
                bytes: counters.map_or(0, |c| c.1),
                counted: counters.is_some(),
                reject_with: with,
                handle: Some(rule.handle),
            };
            for e in &rule.expr {
                if let Some(m) = e.get("match") {
                    match match_expr(m, self.packet, &self.table.sets) {
                        M::Yes => continue,
                        M::No => continue 'rules,
                        M::Unknown(what) => {
                            self.uncertain
                                .push(format!("{what} (in `{}`)", render(&rule.expr)));
                            continue 'rules;
                        }
                    }
                }
                if let Some(c) = e.get("counter") {
                    counters = Some((
                        c["packets"].as_u64().unwrap_or(0),
                        c["bytes"].as_u64().unwrap_or(0),
                    ));
                    continue;
                }
                let key = e
                    .as_object()
                    .and_then(|o| o.keys().next().cloned())
                    .unwrap_or_default();
                match key.as_str() {
                    "accept" => return Flow::Verdict(Verdict::Accept, decider(None, counters)),
                    "drop" => return Flow::Verdict(Verdict::Drop, decider(None, counters)),
                    "reject" => {
                        let with = e["reject"]
                            .get("expr")
                            .and_then(Value::as_str)
                            .unwrap_or("port-unreachable")
                            .to_string();
                        return Flow::Verdict(Verdict::Reject, decider(Some(with), counters));
                    }
                    "return" => break 'rules,
                    "jump" | "goto" => {
                        let target = e[&key]["target"].as_str().unwrap_or_default();
                        let Some(sub) = self.table.chains.iter().find(|c| c.name == target) else {
                            continue;
                        };
                        match self.run(sub, depth + 1) {
                            Flow::Verdict(v, d) => return Flow::Verdict(v, d),
                            Flow::Return if key == "goto" => break 'rules,
                            Flow::Return => continue 'rules,
                        }
                    }
                    // Rate limits pass packets at ping rates; logging, marks and comments do not decide.
                    "limit" | "log" | "comment" | "mangle" | "meta" | "ct" | "notrack"
                    | "quota" | "counter" => {}
                    "queue" => {
                        self.uncertain.push(format!(
                            "queue: a userspace program decides (`{}`)",
                            render(&rule.expr)
                        ));
                        break 'rules;
                    }
                    other => {
                        self.uncertain
                            .push(format!("statement {other} (in `{}`)", render(&rule.expr)));
                        continue 'rules;
                    }
                }
            }
        }
        match &chain.policy {
            Some(p) if p == "drop" => Flow::Verdict(
                Verdict::Drop,
                Decider {
                    table: format!("{} {}", self.table.family, self.table.name),
                    chain: chain.name.clone(),
                    position: None,
                    rule: format!("policy drop of {}", chain.name),
                    packets: 0,
                    bytes: 0,
                    counted: false,
                    reject_with: None,
                    handle: None,
                },
            ),
            _ => Flow::Return,
        }
    }
}

/// The verdict of the native nft base chains a packet crosses, in hook then priority order.
pub fn evaluate(rs: &NftRuleset, p: &Packet) -> Decision {
    let v6 = p.dst.is_ipv6();
    let hooks: &[&str] = if p.inbound {
        &["ingress", "prerouting", "input"]
    } else {
        &["output", "postrouting"]
    };
    let mut bases: Vec<(usize, i64, &NftTable, &NftChain)> = Vec::new();
    for t in &rs.tables {
        let applies = match t.family.as_str() {
            "inet" => true,
            "ip" => !v6,
            "ip6" => v6,
            "netdev" => p.inbound,
            _ => false,
        };
        if !applies {
            continue;
        }
        for c in &t.chains {
            if let (Some(h), Some(prio)) = (&c.hook, c.prio) {
                if let Some(order) = hooks.iter().position(|x| x == h) {
                    bases.push((order, prio, t, c));
                }
            }
        }
    }
    bases.sort_by_key(|(order, prio, _, _)| (*order, *prio));
    first_decisive(bases.into_iter().map(|(_, _, table, chain)| {
        let mut w = Walk {
            table,
            packet: p,
            uncertain: Vec::new(),
        };
        let verdict = match w.run(chain, 0) {
            Flow::Verdict(v, d) => Some((v, d)),
            Flow::Return => None,
        };
        (verdict, w.uncertain)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("fixtures/nft-inet-and-iptables-nft.json");

    fn packet(src: &str, dst: &str, t: u8, inbound: bool) -> Packet {
        Packet::icmp(
            src.parse().unwrap(),
            dst.parse().unwrap(),
            t,
            inbound,
            "eth0",
            vec![],
        )
    }

    /// 20,000 chains with a rule each: every rule finds its chain by name in O(1).
    #[test]
    fn many_chains_parse_linearly() {
        let mut items = vec![r#"{"table":{"family":"inet","name":"t","handle":1}}"#.to_string()];
        for i in 0..20_000 {
            items.push(format!(
                r#"{{"chain":{{"family":"inet","table":"t","name":"c{i}","handle":{i}}}}}"#
            ));
            items.push(format!(r#"{{"rule":{{"family":"inet","table":"t","chain":"c{i}","handle":{i},"expr":[{{"accept":null}}]}}}}"#));
        }
        let text = format!(r#"{{"nftables":[{}]}}"#, items.join(","));
        let start = std::time::Instant::now();
        let rs = parse_json(&text).unwrap();
        assert_eq!(rs.tables[0].chains.len(), 20_000);
        assert!(rs.tables[0].chains.iter().all(|c| c.rules.len() == 1));
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn parses_and_leaves_iptables_nft_tables_out() {
        let rs = parse_json(FIXTURE).unwrap();
        assert_eq!(rs.tables.len(), 1, "ip filter belongs to iptables-nft");
        let t = &rs.tables[0];
        assert_eq!((t.family.as_str(), t.name.as_str()), ("inet", "filter"));
        assert_eq!(t.chains[0].hook.as_deref(), Some("input"));
        assert_eq!(t.chains[0].rules.len(), 6);
        assert_eq!(
            render(&t.chains[0].rules[0].expr),
            "ip saddr 198.18.0.0/16 icmp type echo-request counter packets 0 bytes 0 drop"
        );
        assert!(parse_json("{}").unwrap_err().contains("nftables"));
        let list = parse_table_list(r#"{"nftables":[{"metainfo":{}},{"table":{"family":"inet","name":"filter","handle":1}},{"table":{"family":"ip","name":"filter","handle":2}}]}"#).unwrap();
        assert_eq!(list.len(), 2);
        assert!(is_xtables_table("ip", "filter") && !is_xtables_table("inet", "filter"));
        assert!(parse_json("nope").unwrap_err().contains("not JSON"));
    }

    /// firewalld's own ruleset (1.3, nftables backend, `--add-icmp-block=echo-request`, as
    /// `nft -j list ruleset` printed it): `ct status dnat accept` is false for a new packet
    /// when the guest has no DNAT rule, and the IPv6 rpfilter (`fib saddr . mark . iif oif
    /// missing drop`) is decided by the way back to the source; unknown when either is unknown.
    #[test]
    fn firewalld_ct_status_and_reverse_path_are_evaluated() {
        let rs = parse_json(include_str!("fixtures/nft-firewalld.json")).unwrap();
        let with = |src: &str, dst: &str, t: u8, dnat: Option<bool>, rp: Option<bool>| {
            evaluate(
                &rs,
                &Packet {
                    dnat,
                    reverse_path: rp,
                    ..packet(src, dst, t, true)
                },
            )
        };
        let d = with("198.18.0.2", "10.77.0.10", 8, Some(false), None);
        assert_eq!(d.verdict, Verdict::Reject);
        assert!(d.uncertain.is_empty(), "{:?}", d.uncertain);
        let dec = d.decider.unwrap();
        assert_eq!(
            (dec.table.as_str(), dec.chain.as_str()),
            ("inet firewalld", "filter_IN_public_deny")
        );
        // The guest's NAT might have rewritten it: said.
        let d = with("198.18.0.2", "10.77.0.10", 8, Some(true), None);
        assert!(d.uncertain.iter().any(|u| u.contains("ct status")), "{d:?}");
        let d = with("198.18.0.2", "10.77.0.10", 8, None, None);
        assert!(d.uncertain.iter().any(|u| u.contains("ct status")), "{d:?}");
        // IPv6: the way back leaves by eth0, so the rpfilter passes it to the ICMP block.
        let d = with("2001:db8::1", "fd77::10", 128, Some(false), Some(true));
        assert_eq!(d.verdict, Verdict::Reject);
        assert!(d.uncertain.is_empty(), "{:?}", d.uncertain);
        // No way back by eth0: the rpfilter drops it first.
        let d = with("2001:db8::1", "fd77::10", 128, Some(false), Some(false));
        assert_eq!(d.verdict, Verdict::Drop);
        assert!(d.decider.unwrap().rule.contains("fib"), "the rpfilter rule");
        // Not known: uncertain, and the ICMP block still named as the probable decider.
        let d = with("2001:db8::1", "fd77::10", 128, Some(false), None);
        assert!(d.uncertain.iter().any(|u| u.contains("fib")), "{d:?}");
    }

    #[test]
    fn verdicts_from_the_fixture() {
        let rs = parse_json(FIXTURE).unwrap();
        // From the blocked range: rule 1 drops.
        let d = evaluate(&rs, &packet("198.18.0.2", "10.77.0.10", 8, true));
        assert_eq!(d.verdict, Verdict::Drop);
        assert_eq!(d.decider.unwrap().position, Some(1));
        // Elsewhere: falls through to `jump sub`, which rejects ICMP with host-prohibited.
        let d = evaluate(&rs, &packet("192.0.2.1", "10.77.0.10", 8, true));
        assert_eq!(d.verdict, Verdict::Reject);
        let dec = d.decider.unwrap();
        assert_eq!(
            (dec.chain.as_str(), dec.reject_with.as_deref()),
            ("sub", Some("host-prohibited"))
        );
        // IPv6 echo request: accepted by the icmpv6 set rule.
        let d = evaluate(&rs, &packet("2001:db8::1", "fd77::10", 128, true));
        assert_eq!(d.verdict, Verdict::Accept);
        assert!(d.uncertain.is_empty(), "{:?}", d.uncertain);
        // Outbound: no output chain.
        assert_eq!(
            evaluate(&rs, &packet("10.77.0.10", "192.0.2.1", 0, false)).verdict,
            Verdict::Accept
        );
    }

    #[test]
    fn policy_drop_named_sets_and_unknown_expressions() {
        let rs = parse_json(r#"{"nftables":[
            {"table":{"family":"inet","name":"t"}},
            {"chain":{"family":"inet","table":"t","name":"in","hook":"input","prio":0,"policy":"drop"}},
            {"set":{"family":"inet","table":"t","name":"ok","type":"ipv4_addr","elem":[{"prefix":{"addr":"192.0.2.0","len":24}}]}},
            {"rule":{"family":"inet","table":"t","chain":"in","handle":3,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@ok"}},{"accept":null}]}},
            {"rule":{"family":"inet","table":"t","chain":"in","handle":4,"expr":[{"match":{"op":"==","left":{"fib":{"result":"type","flags":["daddr"]}},"right":"local"}},{"accept":null}]}}
        ]}"#).unwrap();
        assert_eq!(
            evaluate(&rs, &packet("192.0.2.9", "10.77.0.10", 8, true)).verdict,
            Verdict::Accept
        );
        let d = evaluate(&rs, &packet("198.18.0.2", "10.77.0.10", 8, true));
        assert_eq!(d.verdict, Verdict::Drop);
        assert_eq!(d.decider.unwrap().rule, "policy drop of in");
        assert!(d.uncertain[0].contains("fib"), "{:?}", d.uncertain);
    }
}
