//! Fixes for a guest firewall that drops the echo request (`firewall.icmp_in`) or the echo
//! reply (`firewall.icmp_out`): an ACCEPT for ICMP echo (from or to the client when one is
//! given) inserted just before the deciding rule, in the same table, chain and backend, with the
//! same iptables variant that listed it. Nothing is ever deleted, so no rule that accepts the
//! SSH session's port can be removed. Rulesets that firewalld or ufw manage, and native
//! nftables tables, are left to a person for now (their remedy says how).

use std::net::IpAddr;

use serde_json::Value;

use super::{Change, Plan};
use crate::report::Finding;

/// The plan for one failing firewall finding.
pub fn accept_echo(finding: &Finding, client: Option<IpAddr>) -> Result<Plan, String> {
    let inbound = match finding.id.as_str() {
        crate::checks::firewall::ICMP_IN => true,
        crate::checks::firewall::ICMP_OUT => false,
        other => return Err(format!("{other} has no firewall fix")),
    };
    let ev = &finding.evidence;
    match ev["manager"].as_str() {
        Some("plain") => {}
        Some(m) => {
            return Err(format!(
                "{m} manages these rules: change them through {m} (the remedy says how); no automatic fix yet"
            ))
        }
        None => return Err("the finding does not say who manages the rules".to_string()),
    }
    let blocking: Vec<&Value> = ev["rulesets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| matches!(r["verdict"].as_str(), Some("drop" | "reject")))
                .collect()
        })
        .unwrap_or_default();
    if blocking.is_empty() {
        return Err("the finding names no ruleset that blocks".to_string());
    }
    let mut changes = Vec::new();
    for r in blocking {
        let tool = r["tool"].as_str().unwrap_or_default();
        if r["backend"] == "native" || tool == "nft" {
            return Err("a native nftables rule decides: no automatic fix yet (the remedy has the nft command)".to_string());
        }
        if r["family"] != "ipv4" {
            return Err("only IPv4 rules are fixed so far".to_string());
        }
        // `iptables-nft-save` listed it: `iptables-nft` changes it (likewise legacy).
        let Some(cli) = tool.strip_suffix("-save") else {
            return Err(format!("unexpected tool {tool:?} in the evidence"));
        };
        let d = &r["decided_by"];
        let (Some(table), Some(chain)) = (d["table"].as_str(), d["chain"].as_str()) else {
            return Err("the deciding rule's table and chain are not in the evidence".to_string());
        };
        // Before the deciding rule; a chain policy decides after every rule: first is as good.
        let position = d["position"].as_u64().unwrap_or(1).max(1).to_string();
        let mut spec: Vec<String> = vec!["-p".into(), "icmp".into(), "--icmp-type".into()];
        spec.push(
            if inbound {
                "echo-request"
            } else {
                "echo-reply"
            }
            .into(),
        );
        if let Some(c @ IpAddr::V4(_)) = client {
            spec.push(if inbound { "-s" } else { "-d" }.into());
            spec.push(c.to_string());
        }
        spec.extend(["-j".into(), "ACCEPT".into()]);
        let head = |op: &str| -> Vec<String> {
            [cli, "-w", "-t", table, op, chain]
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        let mut argv = head("-I");
        argv.push(position.clone());
        argv.extend(spec.iter().cloned());
        let mut undo = head("-D");
        undo.extend(spec);
        changes.push(Change::Command {
            what: format!("ACCEPT echo in {table} {chain} at {position} ({cli})"),
            argv,
            undo,
        });
    }
    Ok(Plan {
        check: if inbound {
            crate::checks::firewall::ICMP_IN
        } else {
            crate::checks::firewall::ICMP_OUT
        },
        why: format!(
            "accept ICMP echo {} before the rule that {}",
            if inbound { "requests" } else { "replies" },
            if inbound {
                "drops them"
            } else {
                "drops them on the way out"
            }
        ),
        changes,
        cuts_connectivity: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(id: &str, manager: &str, rulesets: Value) -> Finding {
        Finding::fail(id, "x").evidence(json!({"manager": manager, "rulesets": rulesets}))
    }

    fn dropping(tool: &str, backend: &str, position: Value) -> Value {
        json!([{"backend": backend, "family": "ipv4", "tool": tool, "verdict": "drop",
                "decided_by": {"table": "filter", "chain": "INPUT", "position": position}},
               {"backend": "native", "family": "ipv4", "tool": "nft", "verdict": "accept", "decided_by": null}])
    }

    #[test]
    fn an_accept_goes_just_before_the_deciding_rule_in_its_backend() {
        let f = finding(
            "firewall.icmp_in",
            "plain",
            dropping("iptables-nft-save", "nft", json!(2)),
        );
        let p = accept_echo(&f, Some("198.18.0.2".parse().unwrap())).unwrap();
        assert!(p.cuts_connectivity);
        let Change::Command { argv, undo, .. } = &p.changes[0] else {
            panic!()
        };
        assert_eq!(
            argv.join(" "),
            "iptables-nft -w -t filter -I INPUT 2 -p icmp --icmp-type echo-request -s 198.18.0.2 -j ACCEPT"
        );
        assert_eq!(
            undo.join(" "),
            "iptables-nft -w -t filter -D INPUT -p icmp --icmp-type echo-request -s 198.18.0.2 -j ACCEPT"
        );
        // The reply way, a policy decides, legacy iptables, any client.
        let f = finding(
            "firewall.icmp_out",
            "plain",
            dropping("iptables-legacy-save", "legacy", Value::Null),
        );
        let p = accept_echo(&f, None).unwrap();
        let Change::Command { argv, .. } = &p.changes[0] else {
            panic!()
        };
        assert_eq!(
            argv.join(" "),
            "iptables-legacy -w -t filter -I INPUT 1 -p icmp --icmp-type echo-reply -j ACCEPT"
        );
    }

    #[test]
    fn managed_and_native_rulesets_are_left_to_a_person() {
        let f = finding(
            "firewall.icmp_in",
            "firewalld",
            dropping("iptables-nft-save", "nft", json!(2)),
        );
        assert!(accept_echo(&f, None)
            .unwrap_err()
            .contains("firewalld manages"));
        let native = json!([{"backend": "native", "family": "ipv4", "tool": "nft", "verdict": "drop",
                             "decided_by": {"table": "filter", "chain": "input"}}]);
        let f = finding("firewall.icmp_in", "plain", native);
        assert!(accept_echo(&f, None)
            .unwrap_err()
            .contains("native nftables"));
    }
}
