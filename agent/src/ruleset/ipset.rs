//! ipset contents (`ipset save`), for rules matching `-m set --match-set NAME src|dst`:
//! membership of an address (and port) in `hash:ip`, `hash:net`, `hash:ip,port` and
//! `hash:net,port` sets. Other set types are reported as not evaluable, never guessed.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct IpSet {
    pub name: String,
    /// `hash:ip`, `hash:net`, ...
    pub kind: String,
    pub members: Vec<String>,
}

/// Parses `ipset save` output.
pub fn parse_save(text: &str) -> Result<Vec<IpSet>, String> {
    let mut sets: Vec<IpSet> = Vec::new();
    // By name, so each member line finds its set in O(1) (linear in the dump).
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next(), w.next()) {
            (Some("create"), Some(name), Some(kind)) => {
                index.insert(name.to_string(), sets.len());
                sets.push(IpSet {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    members: Vec::new(),
                })
            }
            (Some("add"), Some(name), Some(member)) => {
                match index.get(name).and_then(|&i| sets.get_mut(i)) {
                    Some(s) => s.members.push(member.to_string()),
                    None => {
                        return Err(format!(
                            "line {}: member of an undeclared set {name}",
                            n + 1
                        ))
                    }
                }
            }
            (None, _, _) => {}
            _ => {
                return Err(format!(
                    "line {}: expected `create` or `add`: {line:?}",
                    n + 1
                ))
            }
        }
    }
    Ok(sets)
}

fn net_contains(member: &str, addr: IpAddr) -> Option<bool> {
    if let Ok(net) = member.parse::<IpNet>() {
        return Some(net.contains(&addr));
    }
    if let Some((a, b)) = member.split_once('-') {
        let (a, b): (IpAddr, IpAddr) = (a.parse().ok()?, b.parse().ok()?);
        return Some(a <= addr && addr <= b);
    }
    Some(member.parse::<IpAddr>().ok()? == addr)
}

/// Is (addr[, proto:port]) in the set? None: this set type cannot be evaluated here.
pub fn contains(set: &IpSet, addr: IpAddr, proto: &str, port: Option<u16>) -> Option<bool> {
    match set.kind.as_str() {
        "hash:ip" | "hash:net" => {
            let mut any = false;
            for m in &set.members {
                any |= net_contains(m, addr)?;
            }
            Some(any)
        }
        "hash:ip,port" | "hash:net,port" => {
            let Some(port) = port else { return Some(false) };
            let mut any = false;
            for m in &set.members {
                let (a, p) = m.split_once(',')?;
                // `tcp:80`, or a bare port meaning TCP.
                let (mproto, mport) = p.split_once(':').unwrap_or(("tcp", p));
                let port_ok = mport.parse::<u16>().ok()? == port && mproto == proto;
                any |= port_ok && net_contains(a, addr)?;
            }
            Some(any)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Saved from `ipset save`.
    const SAVED: &str = "create bad hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xcc7a328f
add bad 198.18.0.0/16
create hosts hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x2f1ff41f
add hosts 192.0.2.7
create hp hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x5a0dcbfe
add hp 192.0.2.7,tcp:80
create l list:set size 8
";

    /// 20,000 sets with members: each member finds its set by name in O(1).
    #[test]
    fn many_sets_parse_linearly() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!(
                "create s{i} hash:ip family inet\nadd s{i} 192.0.2.{}\n",
                i % 250
            ));
        }
        let start = std::time::Instant::now();
        let sets = parse_save(&text).unwrap();
        assert_eq!(sets.len(), 20_000);
        assert!(sets.iter().all(|s| s.members.len() == 1));
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn membership() {
        let sets = parse_save(SAVED).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            contains(&sets[0], ip("198.18.0.2"), "icmp", None),
            Some(true)
        );
        assert_eq!(
            contains(&sets[0], ip("192.0.2.1"), "icmp", None),
            Some(false)
        );
        assert_eq!(
            contains(&sets[1], ip("192.0.2.7"), "icmp", None),
            Some(true)
        );
        assert_eq!(
            contains(&sets[2], ip("192.0.2.7"), "tcp", Some(80)),
            Some(true)
        );
        assert_eq!(
            contains(&sets[2], ip("192.0.2.7"), "udp", Some(80)),
            Some(false)
        );
        assert_eq!(contains(&sets[3], ip("192.0.2.7"), "icmp", None), None);
        assert!(parse_save("add nope 1.2.3.4\n")
            .unwrap_err()
            .contains("undeclared"));
        assert!(parse_save("flush\n").unwrap_err().contains("line 1"));
    }
}
