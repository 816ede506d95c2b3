//! Reads an iptables-nft table straight from nf_tables over nfnetlink and prints it as
//! `iptables-nft-save -c` does — the same lines, for [`SaveParser`] — when every rule is made
//! only of what iptables-nft writes as native expressions for the plainest matches: `-s`,
//! `-d`, `-i`, `-o`, `-p tcp|udp|icmp|ipv6-icmp`, `--sport`/`--dport` (one port or a range),
//! the counter and ACCEPT, DROP, RETURN, a jump or a goto. Anything else (an xtables match or
//! target through the compat layer, a comment, a set, an operator it does not know) answers
//! None, and the caller lists the table with iptables itself: a rule is never guessed at.
//!
//! Why: `iptables-nft-save` and `iptables -S` spend most of their time formatting; 100,000
//! `-s A -p tcp --dport N -j DROP` rules take them 1.5 s, the kernel's dump of them a fraction.
//! The matrix proves the output equal to `iptables-nft-save -c`, word for word.

use std::collections::HashMap;
use std::time::Duration;

use crate::ruleset::iptables::{parse_rule, Chain, ParsedRule, SavedRule, Table};

use super::nfnetlink::{
    attribute, attributes, be32, be64, compared_network, expressions, fields, negated,
    table_dump_request, text, value, Dumps, NFNL_SUBSYS_NFTABLES,
};

const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_COUNTERS: u16 = 8;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// What a rule matches and does, in iptables-save's words.
#[derive(Default)]
struct Rule {
    src: Option<(bool, String)>,
    dst: Option<(bool, String)>,
    iif: Option<(bool, String)>,
    oif: Option<(bool, String)>,
    proto: Option<(bool, u8)>,
    sport: Option<(bool, String)>,
    dport: Option<(bool, String)>,
    counters: (u64, u64),
    target: Option<String>,
}

/// The register a load left for the next comparison.
enum Loaded {
    Nothing,
    Meta(u32),
    /// base, offset, length, mask (after a bitwise AND).
    Payload(u32, u32, u32, Option<Vec<u8>>),
}

fn interface(data: &[u8]) -> Option<String> {
    // iptables compares the name with its NUL (exact) or without it (a `+` wildcard).
    let (name, exact) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], true),
        None => (data, false),
    };
    let name = std::str::from_utf8(name).ok()?;
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '"') {
        return None;
    }
    Some(if exact {
        name.to_string()
    } else {
        format!("{name}+")
    })
}

/// `A/P` from the compared bytes and the prefix (from the mask, else the load's length).
fn network(v6: bool, data: &[u8], len: u32, mask: Option<&[u8]>) -> Option<String> {
    if data.len() != len as usize {
        return None;
    }
    let (addr, prefix) = compared_network(v6, data, mask)?;
    Some(format!("{addr}/{prefix}"))
}

fn port(data: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(..2)?.try_into().ok()?))
}

/// One rule's expressions as iptables-save prints them; None for anything not listed in the
/// module's header.
fn rule(exprs: &[u8], v6: bool) -> Option<Rule> {
    let mut r = Rule::default();
    let mut loaded = Loaded::Nothing;
    for (name, data) in expressions(exprs)? {
        let f = fields(data);
        // A load whose value nothing compared before the next one: not what iptables writes.
        if matches!(name, b"meta" | b"payload") && !matches!(loaded, Loaded::Nothing) {
            return None;
        }
        match name {
            // dreg, key (a load: `meta … set` has a source register instead)
            b"meta" if f[1].is_some() => loaded = Loaded::Meta(be32(f[2]?)?),
            // dreg, base, offset, len (a load: a payload write has no destination register)
            b"payload" if f[1].is_some() => {
                loaded = Loaded::Payload(be32(f[2]?)?, be32(f[3]?)?, be32(f[4]?)?, None)
            }
            // sreg, dreg, len, mask, xor (and an op, absent or 0 for mask-and-xor)
            b"bitwise" => {
                let Loaded::Payload(_, _, len, mask @ None) = &mut loaded else {
                    return None;
                };
                if f[6].is_some_and(|op| be32(op) != Some(0))
                    || value(f[5])?.iter().any(|b| *b != 0)
                    || be32(f[3]?)? != *len
                {
                    return None;
                }
                *mask = Some(value(f[4])?.to_vec());
            }
            // sreg, op, data
            b"cmp" => {
                let invert = negated(f[2]?)?;
                let data = value(f[3])?;
                match std::mem::replace(&mut loaded, Loaded::Nothing) {
                    Loaded::Meta(6) if r.iif.is_none() => r.iif = Some((invert, interface(data)?)),
                    Loaded::Meta(7) if r.oif.is_none() => r.oif = Some((invert, interface(data)?)),
                    Loaded::Meta(16) if r.proto.is_none() && data.len() == 1 => {
                        r.proto = Some((invert, data[0]))
                    }
                    // Network header: IPv4 saddr 12, daddr 16; IPv6 saddr 8, daddr 24.
                    Loaded::Payload(1, off, len, mask) => {
                        let (src, dst) = if v6 { (8, 24) } else { (12, 16) };
                        let net = network(v6, data, len, mask.as_deref())?;
                        match off {
                            o if o == src && r.src.is_none() => r.src = Some((invert, net)),
                            o if o == dst && r.dst.is_none() => r.dst = Some((invert, net)),
                            _ => return None,
                        }
                    }
                    // Transport header: sport 0, dport 2, or both at once (4 bytes at 0).
                    Loaded::Payload(2, off, len, None) => {
                        let ports = r.proto.is_some_and(|(inv, p)| !inv && (p == 6 || p == 17));
                        if !ports || data.len() != len as usize {
                            return None;
                        }
                        match (off, len) {
                            (0, 2) if r.sport.is_none() => {
                                r.sport = Some((invert, port(data)?.to_string()))
                            }
                            (2, 2) if r.dport.is_none() => {
                                r.dport = Some((invert, port(data)?.to_string()))
                            }
                            (0, 4) if !invert && r.sport.is_none() && r.dport.is_none() => {
                                r.sport = Some((false, port(data)?.to_string()));
                                r.dport = Some((false, port(&data[2..])?.to_string()));
                            }
                            _ => return None,
                        }
                    }
                    _ => return None,
                }
            }
            // sreg, op, from, to: a port range.
            b"range" => {
                let Loaded::Payload(2, off, 2, None) =
                    std::mem::replace(&mut loaded, Loaded::Nothing)
                else {
                    return None;
                };
                let ports = r.proto.is_some_and(|(inv, p)| !inv && (p == 6 || p == 17));
                let invert = negated(f[2]?)?;
                let range = format!("{}:{}", port(value(f[3])?)?, port(value(f[4])?)?);
                match off {
                    0 if ports && r.sport.is_none() => r.sport = Some((invert, range)),
                    2 if ports && r.dport.is_none() => r.dport = Some((invert, range)),
                    _ => return None,
                }
            }
            // bytes, packets
            b"counter" => r.counters = (be64(f[2]?)?, be64(f[1]?)?),
            // dreg, data (a verdict)
            b"immediate" if r.target.is_none() => {
                let verdict = attributes(f[2]?)
                    .find(|(t, _)| *t == NFTA_DATA_VERDICT)
                    .map(|(_, v)| v)?;
                let v = fields(verdict);
                let chain = || {
                    let name = std::str::from_utf8(text(v[NFTA_VERDICT_CHAIN as usize]?)).ok()?;
                    (!name.is_empty() && !name.contains(char::is_whitespace))
                        .then(|| name.to_string())
                };
                r.target = Some(match be32(v[NFTA_VERDICT_CODE as usize]?)? as i32 {
                    1 => "-j ACCEPT".to_string(),
                    0 => "-j DROP".to_string(),
                    -5 => "-j RETURN".to_string(),
                    -3 => format!("-j {}", chain()?),
                    -4 => format!("-g {}", chain()?),
                    _ => return None,
                });
            }
            _ => return None,
        }
    }
    // A load nothing compared, or a port without its protocol: not what iptables writes.
    if !matches!(loaded, Loaded::Nothing) {
        return None;
    }
    Some(r)
}

fn protocol_name(p: u8) -> Option<&'static str> {
    Some(match p {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "ipv6-icmp",
        _ => return None,
    })
}

/// The rule's words after `-A CHAIN`, in iptables-save's order (none holds a space: names
/// with one are left to iptables).
fn words(r: &Rule) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let opt = |out: &mut Vec<String>, flag: &str, v: &Option<(bool, String)>| {
        if let Some((invert, value)) = v {
            if *invert {
                out.push("!".into());
            }
            out.push(flag.into());
            out.push(value.clone());
        }
    };
    opt(&mut out, "-s", &r.src);
    opt(&mut out, "-d", &r.dst);
    opt(&mut out, "-i", &r.iif);
    opt(&mut out, "-o", &r.oif);
    if let Some((invert, p)) = r.proto {
        let name = protocol_name(p)?;
        if invert {
            out.push("!".into());
        }
        out.extend(["-p".into(), name.into()]);
        if r.sport.is_some() || r.dport.is_some() {
            out.extend(["-m".into(), name.into()]);
        }
    }
    opt(&mut out, "--sport", &r.sport);
    opt(&mut out, "--dport", &r.dport);
    if let Some(t) = &r.target {
        out.extend(t.split(' ').map(str::to_string));
    }
    Some(out)
}

/// One rule's NFTA_RULE_EXPRESSIONS as the words iptables-save prints after `-A CHAIN`;
/// None where iptables would be asked instead. (The fuzz target's entry.)
pub fn print_rule(exprs: &[u8], v6: bool) -> Option<String> {
    Some(words(&rule(exprs, v6)?)?.join(" "))
}

/// The table `table` of nfproto `family` (2 ip, 10 ip6) as `iptables-nft-save -c` would
/// give it to [`SaveParser`](crate::ruleset::iptables::SaveParser) (built directly, without
/// the text); `Ok(None)` when some rule is not one this reader prints, `Err` when nf_tables
/// could not be asked.
pub fn read_table(family: u8, table: &str, timeout: Duration) -> Result<Option<Table>, String> {
    let v6 = family == 10;
    let of_table = |p: &[u8], attr: u16| attribute(p, attr).map(text) == Some(table.as_bytes());
    let mut chains: Vec<Chain> = Vec::new();
    let nf = Dumps::open(timeout)?;
    nf.dump(
        &table_dump_request(NFT_MSG_GETCHAIN, family, NFTA_CHAIN_TABLE, table),
        |ty, p| {
            if ty != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN)
                || !of_table(p, NFTA_CHAIN_TABLE)
            {
                return Ok(());
            }
            let name = attribute(p, NFTA_CHAIN_NAME)
                .and_then(|n| std::str::from_utf8(text(n)).ok())
                .ok_or("a chain without a name")?
                .to_string();
            let base = attribute(p, NFTA_CHAIN_HOOK).is_some();
            let (bytes, packets) = attribute(p, NFTA_CHAIN_COUNTERS)
                .map(|c| {
                    let f = fields(c);
                    (
                        f[1].and_then(be64).unwrap_or(0),
                        f[2].and_then(be64).unwrap_or(0),
                    )
                })
                .unwrap_or((0, 0));
            chains.push(Chain {
                name,
                policy: base.then(|| {
                    match attribute(p, NFTA_CHAIN_POLICY).and_then(be32) {
                        Some(0) => "DROP",
                        _ => "ACCEPT",
                    }
                    .to_string()
                }),
                packets,
                bytes,
                ..Default::default()
            });
            Ok(())
        },
    )?;
    if chains
        .iter()
        .any(|c| c.name.is_empty() || c.name.contains(char::is_whitespace))
    {
        return Ok(None);
    }
    // iptables prints a built-in chain it has not created yet as accepting, and empty.
    let builtin: &[&str] = match table {
        "filter" | "security" => &["INPUT", "FORWARD", "OUTPUT"],
        "raw" => &["PREROUTING", "OUTPUT"],
        "mangle" => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        _ => &[],
    };
    for name in builtin {
        if !chains.iter().any(|c| c.name == *name) {
            chains.push(Chain {
                name: name.to_string(),
                policy: Some("ACCEPT".to_string()),
                ..Default::default()
            });
        }
    }
    let index: HashMap<String, usize> = chains
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    let mut printable = true;
    // The rules of a table the firewall walk crosses are parsed as they arrive, while the
    // kernel builds the next datagram, rather than at the first walk after the whole dump.
    let walked = crate::ruleset::eval::hooks(true)
        .iter()
        .chain(crate::ruleset::eval::hooks(false))
        .any(|(t, _)| *t == table);
    let mut parsed: Vec<Vec<ParsedRule>> = vec![Vec::new(); chains.len()];
    nf.dump(
        &table_dump_request(NFT_MSG_GETRULE, family, NFTA_RULE_TABLE, table),
        |ty, p| {
            if !printable
                || ty != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)
                || !of_table(p, NFTA_RULE_TABLE)
            {
                return Ok(());
            }
            let chain = attribute(p, NFTA_RULE_CHAIN)
                .and_then(|c| index.get(std::str::from_utf8(text(c)).ok()?));
            // A comment (or anything iptables keeps in user data): iptables prints it.
            let saved = match (chain, attribute(p, NFTA_RULE_USERDATA)) {
                (Some(&chain), None) => attribute(p, NFTA_RULE_EXPRESSIONS)
                    .map_or(Some(Rule::default()), |e| rule(e, v6))
                    .and_then(|r| {
                        Some((
                            chain,
                            SavedRule {
                                args: words(&r)?,
                                packets: r.counters.0,
                                bytes: r.counters.1,
                            },
                        ))
                    }),
                _ => None,
            };
            match saved {
                Some((chain, rule)) => {
                    if walked {
                        parsed[chain].push(parse_rule(&rule.args));
                    }
                    chains[chain].rules.push(rule)
                }
                None => printable = false,
            }
            Ok(())
        },
    )?;
    if walked {
        for (chain, parsed) in chains.iter_mut().zip(parsed) {
            chain.parsed = parsed.into();
        }
    }
    Ok(printable.then(|| Table {
        name: table.to_string(),
        chains,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::nfnetlink::build::{attr, be, data, expr};

    fn verdict(code: i32, chain: Option<&str>) -> Vec<u8> {
        let mut v = attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
        if let Some(c) = chain {
            let mut c = c.as_bytes().to_vec();
            c.push(0);
            v.extend(attr(NFTA_VERDICT_CHAIN, &c));
        }
        attr(NFTA_DATA_VERDICT, &v)
    }

    #[test]
    fn plain_rules_print_as_iptables_does_and_anything_else_is_left_to_iptables() {
        // -s 10.1.2.0/23 -p tcp -m tcp ! --dport 22 -j MY (as iptables-nft 1.8.9 writes it).
        let mut e = expr("meta", &[(1, be(1)), (2, be(16))]);
        e.extend(expr("cmp", &[(1, be(1)), (2, be(0)), (3, data(&[6]))]));
        e.extend(expr(
            "payload",
            &[(1, be(1)), (2, be(1)), (3, be(12)), (4, be(4))],
        ));
        e.extend(expr(
            "bitwise",
            &[
                (1, be(1)),
                (2, be(1)),
                (3, be(4)),
                (4, data(&[255, 255, 254, 0])),
                (5, data(&[0; 4])),
            ],
        ));
        e.extend(expr(
            "cmp",
            &[(1, be(1)), (2, be(0)), (3, data(&[10, 1, 2, 0]))],
        ));
        e.extend(expr(
            "payload",
            &[(1, be(1)), (2, be(2)), (3, be(2)), (4, be(2))],
        ));
        e.extend(expr("cmp", &[(1, be(1)), (2, be(1)), (3, data(&[0, 22]))]));
        e.extend(expr(
            "counter",
            &[
                (1, 300u64.to_be_bytes().to_vec()),
                (2, 5u64.to_be_bytes().to_vec()),
            ],
        ));
        e.extend(expr(
            "immediate",
            &[(1, be(0)), (2, verdict(-3, Some("MY")))],
        ));
        assert_eq!(
            print_rule(&e, false).as_deref(),
            Some("-s 10.1.2.0/23 -p tcp -m tcp ! --dport 22 -j MY")
        );
        assert_eq!(rule(&e, false).unwrap().counters, (5, 300));
        // An xtables match through the compat layer: iptables prints it, not this reader.
        let mut m = e.clone();
        m.extend(expr("match", &[(1, b"conntrack\0".to_vec())]));
        assert_eq!(print_rule(&m, false), None);
        // A port without its protocol, a non-contiguous mask, an unknown operator: None.
        let port = [
            expr("payload", &[(1, be(1)), (2, be(2)), (3, be(2)), (4, be(2))]),
            expr("cmp", &[(1, be(1)), (2, be(0)), (3, data(&[0, 22]))]),
        ]
        .concat();
        assert_eq!(print_rule(&port, false), None);
        assert_eq!(
            network(false, &[10, 0, 0, 0], 4, Some(&[255, 0, 255, 0])),
            None
        );
        assert_eq!(
            network(false, &[10, 0, 0, 0], 4, Some(&[255, 0, 0, 0])).as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(network(true, &[0xfd], 1, None).as_deref(), Some("fd00::/8"));
        let lt = [
            expr("meta", &[(1, be(1)), (2, be(16))]),
            expr("cmp", &[(1, be(1)), (2, be(2)), (3, data(&[6]))]),
        ]
        .concat();
        assert_eq!(print_rule(&lt, false), None);
        // Interfaces: with the NUL exact, without it a wildcard.
        assert_eq!(interface(b"eth0\0\0\0\0").as_deref(), Some("eth0"));
        assert_eq!(interface(b"eth").as_deref(), Some("eth+"));
        assert_eq!(interface(b"\0"), None);
        // A load nothing compares; garbage: None, never a panic.
        assert_eq!(
            print_rule(&expr("meta", &[(1, be(1)), (2, be(6))]), false),
            None
        );
        assert_eq!(print_rule(&[0xff; 7], false), None);
        assert_eq!(print_rule(&[], false).as_deref(), Some(""));
    }
}
