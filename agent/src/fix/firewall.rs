//! Fixes for a guest firewall that drops the echo request (`firewall.icmp_in`) or the echo
//! reply (`firewall.icmp_out`): an ACCEPT for ICMP echo (from or to the client when one is
//! given) inserted just before the deciding rule, in the same table, chain and backend, with the
//! same iptables variant that listed it, or, for a native nftables rule, inserted before it by
//! handle (`nft insert rule … position HANDLE`). Nothing but the fix's own rule is ever
//! deleted, so no rule that accepts the SSH session's port can be removed. Rulesets that
//! firewalld or ufw manage are left to a person for now (their remedy says how).

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
            changes.push(nft_accept(r, inbound, client, &finding.id)?);
            continue;
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

/// The comment that marks a fix's own nft rule (what its undo looks for).
fn nft_comment(check: &str) -> String {
    format!("ecs-diag fix {check} {}", crate::unix_ms())
}

/// An nft ACCEPT for IPv4 echo, before the deciding rule (its handle) or first in the chain.
fn nft_accept(
    r: &Value,
    inbound: bool,
    client: Option<IpAddr>,
    check: &str,
) -> Result<Change, String> {
    let d = &r["decided_by"];
    let (Some(table), Some(chain)) = (d["table"].as_str(), d["chain"].as_str()) else {
        return Err("the deciding nft rule's table and chain are not in the evidence".to_string());
    };
    // `inet guard`: family and table.
    let Some((family, table)) = table.split_once(' ') else {
        return Err(format!("nft table {table:?} names no family"));
    };
    if !matches!(family, "ip" | "inet") {
        return Err(format!(
            "an nft rule of family {family} decides: no automatic fix for it yet"
        ));
    }
    let mut rule: Vec<String> = Vec::new();
    if let Some(c @ IpAddr::V4(_)) = client {
        rule.extend([
            "ip".into(),
            if inbound { "saddr" } else { "daddr" }.into(),
            c.to_string(),
        ]);
    }
    rule.extend([
        "icmp".into(),
        "type".into(),
        if inbound {
            "echo-request"
        } else {
            "echo-reply"
        }
        .into(),
        "accept".into(),
    ]);
    Ok(Change::NftInsert {
        family: family.to_string(),
        table: table.to_string(),
        chain: chain.to_string(),
        before: d["handle"].as_u64(),
        rule,
        comment: nft_comment(check),
    })
}

/// `nft insert rule FAMILY TABLE CHAIN [position H] RULE… comment "C"`.
pub fn nft_insert_argv(c: &Change) -> Vec<String> {
    let Change::NftInsert {
        family,
        table,
        chain,
        before,
        rule,
        comment,
    } = c
    else {
        return Vec::new();
    };
    let mut argv: Vec<String> = ["nft", "insert", "rule", family, table, chain]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(h) = before {
        argv.extend(["position".to_string(), h.to_string()]);
    }
    argv.extend(rule.iter().cloned());
    argv.extend(["comment".to_string(), format!("\"{comment}\"")]);
    argv
}

/// The handle of the rule in `nft -a list chain` output whose comment is `comment`.
pub fn handle_of_commented(listing: &str, comment: &str) -> Option<u64> {
    let tag = format!("comment \"{comment}\"");
    listing
        .lines()
        .find(|l| l.contains(&tag))
        .and_then(|l| l.rsplit_once("# handle "))
        .and_then(|(_, h)| h.trim().parse().ok())
}

/// Deletes the fix's own rule, found by its comment; its handle.
pub fn nft_delete_commented(
    family: &str,
    table: &str,
    chain: &str,
    comment: &str,
) -> Result<u64, String> {
    let list: Vec<String> = ["nft", "-a", "list", "chain", family, table, chain]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let listing = super::run_command_output(&list)?;
    let handle = handle_of_commented(&listing, comment)
        .ok_or_else(|| format!("no rule commented {comment:?} in {family} {table} {chain}"))?;
    let delete: Vec<String> = ["nft", "delete", "rule", family, table, chain, "handle"]
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once(handle.to_string()))
        .collect();
    super::run_command(&delete)?;
    Ok(handle)
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
                             "decided_by": {"table": "ip6 filter", "chain": "input"}}]);
        let f = finding("firewall.icmp_in", "plain", native);
        assert!(accept_echo(&f, None).unwrap_err().contains("family ip6"));
    }

    /// A native nft rule: inserted before the deciding handle, tagged; the undo finds it by
    /// the tag in `nft -a list chain` output.
    #[test]
    fn native_nft_rules_get_a_tagged_accept_before_the_deciding_handle() {
        let native = json!([{"backend": "native", "family": "ipv4", "tool": "nft", "verdict": "drop",
                             "decided_by": {"table": "inet guard", "chain": "input", "handle": 4}}]);
        let f = finding("firewall.icmp_in", "plain", native);
        let p = accept_echo(&f, Some("198.18.0.2".parse().unwrap())).unwrap();
        let argv = nft_insert_argv(&p.changes[0]).join(" ");
        assert!(
            argv.starts_with("nft insert rule inet guard input position 4 ip saddr 198.18.0.2 icmp type echo-request accept comment \"ecs-diag fix firewall.icmp_in "),
            "{argv}"
        );
        let Change::NftInsert { comment, .. } = &p.changes[0] else {
            panic!()
        };
        let listing = format!("table inet guard {{\n\tchain input {{ # handle 1\n\t\tip saddr 198.18.0.2 icmp type echo-request accept comment \"{comment}\" # handle 7\n\t\ticmp type echo-request counter packets 3 bytes 252 drop # handle 4\n\t}}\n}}\n");
        assert_eq!(handle_of_commented(&listing, comment), Some(7));
        assert_eq!(handle_of_commented(&listing, "other"), None);
    }
}
