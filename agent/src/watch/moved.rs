//! Which firewall rules counted packets between two reads of the same ruleset (`watch`): the
//! rules and chain policies whose packet counters moved, those that drop or reject first.
//! Rules are matched by text (and occurrence), so a rule inserted between the reads is new (its
//! whole count is in the window) rather than mistaken for the neighbour whose place it took.

use serde::Serialize;

use crate::ruleset::iptables::{parse_rule, Target};
use crate::ruleset::nft::{render, NftRuleset};
use crate::snapshot::Ruleset;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MovedRule {
    /// `iptables-nft ipv4 filter INPUT #2`, `nft inet fw input handle 7`, `... policy`.
    pub place: String,
    /// The rule as written (`-A INPUT -p icmp -j DROP`), or `policy DROP`.
    pub rule: String,
    pub packets: u64,
    /// The rule drops or rejects what it matches.
    pub drops: bool,
}

fn iptables_drops(args: &[String]) -> bool {
    matches!(parse_rule(args).target, Target::Jump(t, _) if t == "DROP" || t == "REJECT")
}

/// Rules and built-in chain policies of iptables/ip6tables whose counters moved.
pub fn iptables(before: &[Ruleset], after: &[Ruleset]) -> Vec<MovedRule> {
    let mut out = Vec::new();
    for rs in after {
        let Ok(tables) = rs.tables.ok() else { continue };
        let old_rs = before
            .iter()
            .find(|b| b.backend == rs.backend && b.family == rs.family)
            .and_then(|b| b.tables.ok().ok());
        for t in tables {
            let old_t = old_rs.and_then(|o| o.iter().find(|x| x.name == t.name));
            for c in &t.chains {
                let old_c = old_t.and_then(|o| o.chains.iter().find(|x| x.name == c.name));
                let place = |what: String| {
                    format!("{} {} {} {} {what}", rs.tool, rs.family, t.name, c.name)
                };
                for (i, r) in c.rules.iter().enumerate() {
                    // The same rule text, the same occurrence of it (rules can repeat).
                    let nth = c.rules[..i].iter().filter(|x| x.args == r.args).count();
                    let was = old_c
                        .and_then(|o| o.rules.iter().filter(|x| x.args == r.args).nth(nth))
                        .map_or(0, |o| o.packets);
                    let moved = r.packets.saturating_sub(was);
                    if moved > 0 {
                        out.push(MovedRule {
                            place: place(format!("#{}", i + 1)),
                            rule: r.text(&c.name),
                            packets: moved,
                            drops: iptables_drops(&r.args),
                        });
                    }
                }
                if let Some(policy) = &c.policy {
                    let was = old_c.map_or(0, |o| o.packets);
                    let moved = c.packets.saturating_sub(was);
                    if moved > 0 {
                        out.push(MovedRule {
                            place: place("policy".to_string()),
                            rule: format!("policy {policy}"),
                            packets: moved,
                            drops: policy == "DROP",
                        });
                    }
                }
            }
        }
    }
    sort(out)
}

/// Native nftables rules with a `counter` whose count moved (matched by handle and text).
pub fn nft(before: Option<&NftRuleset>, after: &NftRuleset) -> Vec<MovedRule> {
    let packets = |expr: &[serde_json::Value]| {
        expr.iter()
            .find_map(|e| e.get("counter").and_then(|c| c["packets"].as_u64()))
    };
    let without_counter = |expr: &[serde_json::Value]| -> Vec<serde_json::Value> {
        expr.iter()
            .filter(|e| e.get("counter").is_none())
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    for t in &after.tables {
        let old_t = before.and_then(|b| {
            b.tables
                .iter()
                .find(|x| x.family == t.family && x.name == t.name)
        });
        for c in &t.chains {
            let old_c = old_t.and_then(|o| o.chains.iter().find(|x| x.name == c.name));
            for r in &c.rules {
                let Some(now) = packets(&r.expr) else {
                    continue;
                };
                let was = old_c
                    .and_then(|o| o.rules.iter().find(|x| x.handle == r.handle))
                    .filter(|o| without_counter(&o.expr) == without_counter(&r.expr))
                    .and_then(|o| packets(&o.expr))
                    .unwrap_or(0);
                let moved = now.saturating_sub(was);
                if moved > 0 {
                    out.push(MovedRule {
                        place: format!(
                            "nft {} {} {} handle {}",
                            t.family, t.name, c.name, r.handle
                        ),
                        rule: render(&r.expr),
                        packets: moved,
                        drops: r
                            .expr
                            .iter()
                            .any(|e| e.get("drop").is_some() || e.get("reject").is_some()),
                    });
                }
            }
        }
    }
    sort(out)
}

/// Dropping rules first, then by how much they counted.
fn sort(mut v: Vec<MovedRule>) -> Vec<MovedRule> {
    v.sort_by(|a, b| b.drops.cmp(&a.drops).then(b.packets.cmp(&a.packets)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::iptables::parse_save;
    use crate::snapshot::Gathered;

    fn ruleset(save: &str) -> Ruleset {
        Ruleset {
            not_read: None,
            nat: None,
            backend: "nft".into(),
            family: "ipv4".into(),
            tool: "iptables-nft-save".into(),
            tables: Gathered::Ok(parse_save(save).unwrap()),
        }
    }

    const BEFORE: &str = "*filter\n:INPUT ACCEPT [10:800]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[5:300] -A INPUT -p tcp --dport 22 -j ACCEPT\n[0:0] -A INPUT -p icmp --icmp-type echo-request -j DROP\nCOMMIT\n";

    #[test]
    fn counters_that_moved_are_listed_drops_first() {
        let after = "*filter\n:INPUT ACCEPT [12:960]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[9:500] -A INPUT -p tcp --dport 22 -j ACCEPT\n[3:252] -A INPUT -p icmp --icmp-type echo-request -j DROP\nCOMMIT\n";
        let m = iptables(&[ruleset(BEFORE)], &[ruleset(after)]);
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m[0].drops);
        assert_eq!(m[0].packets, 3);
        assert_eq!(
            m[0].rule,
            "-A INPUT -p icmp --icmp-type echo-request -j DROP"
        );
        assert_eq!(m[0].place, "iptables-nft-save ipv4 filter INPUT #2");
        assert_eq!((m[1].packets, m[1].drops), (4, false));
        assert_eq!((m[2].rule.as_str(), m[2].packets), ("policy ACCEPT", 2));
        // Nothing moved: nothing listed.
        assert!(iptables(&[ruleset(BEFORE)], &[ruleset(BEFORE)]).is_empty());
    }

    #[test]
    fn a_rule_inserted_between_reads_counts_from_zero() {
        let after = "*filter\n:INPUT DROP [10:800]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[2:168] -A INPUT -s 198.18.0.2/32 -j REJECT --reject-with icmp-host-prohibited\n[5:300] -A INPUT -p tcp --dport 22 -j ACCEPT\n[0:0] -A INPUT -p icmp --icmp-type echo-request -j DROP\nCOMMIT\n";
        let m = iptables(&[ruleset(BEFORE)], &[ruleset(after)]);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].drops && m[0].place.ends_with("#1"));
        // Counters reset (ruleset reloaded) are not negative moves.
        let reset = BEFORE.replace("[5:300]", "[1:60]");
        assert!(iptables(&[ruleset(BEFORE)], &[ruleset(&reset)]).is_empty());
    }

    #[test]
    fn nft_counters() {
        let json = |n: u64| {
            format!(
                r#"{{"nftables":[{{"table":{{"family":"inet","name":"fw","handle":1}}}},{{"chain":{{"family":"inet","table":"fw","name":"input","handle":1,"type":"filter","hook":"input","prio":0,"policy":"accept"}}}},{{"rule":{{"family":"inet","table":"fw","chain":"input","handle":4,"expr":[{{"match":{{"op":"==","left":{{"payload":{{"protocol":"icmp","field":"type"}}}},"right":"echo-request"}}}},{{"counter":{{"packets":{n},"bytes":0}}}},{{"drop":null}}]}}}}]}}"#
            )
        };
        let before = crate::ruleset::nft::parse_json(&json(1)).unwrap();
        let after = crate::ruleset::nft::parse_json(&json(6)).unwrap();
        let m = nft(Some(&before), &after);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].packets, 5);
        assert!(m[0].drops);
        assert!(m[0].place.contains("handle 4"), "{}", m[0].place);
        assert!(nft(Some(&after), &after).is_empty());
    }
}
