//! Fixes for a guest firewall that drops ICMP the instance needs: the echo request
//! (`firewall.icmp_in`), the echo reply (`firewall.icmp_out`), and over IPv6 the echo either way
//! or neighbour discovery with the router (`firewall.icmp6`, every blocked packet at once). For
//! each blocked packet an ACCEPT for exactly that ICMP type and direction (from or to the
//! client when one is given, for echo) is inserted just before the deciding rule, in the same
//! table, chain and backend, with the same iptables/ip6tables variant that listed it, or, for
//! a native nftables rule, inserted before it by handle (`nft insert rule … position HANDLE`).
//! Nothing but the fix's own rule is ever deleted, so no rule that accepts the SSH session's
//! port can be removed. Where ufw manages the rules the accept goes into its `before.rules`
//! and `ufw reload` loads it (so ufw keeps it); where firewalld manages them, a rich rule at
//! the lowest priority in the deciding zone, at runtime and permanently (so firewalld keeps it).

use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

use super::sysctl::Pending;
use super::{Change, Plan};
use crate::report::{Finding, Status};
use crate::snapshot::Snapshot;

/// One packet to let through: an ICMP type, one way, from or to one address or any.
#[derive(Debug, Clone, PartialEq)]
struct Accept {
    v6: bool,
    icmp_type: u8,
    inbound: bool,
    /// The client (its source inbound, destination outbound); None: any.
    peer: Option<IpAddr>,
}

impl Accept {
    /// From a verdict's `packet` evidence; the peer only for echo when the user named a client
    /// (else the packet's address is a stand-in, and any source must be accepted).
    fn of_packet(packet: &Value, client_given: bool) -> Result<Accept, String> {
        let addr = |k: &str| -> Result<IpAddr, String> {
            packet[k]
                .as_str()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("the finding's packet has no {k} address"))
        };
        let (src, dst) = (addr("src")?, addr("dst")?);
        let icmp_type = packet["icmp_type"]
            .as_u64()
            .and_then(|t| u8::try_from(t).ok())
            .ok_or("the finding's packet has no ICMP type")?;
        let inbound = packet["in"].is_string();
        let echo = matches!(icmp_type, 0 | 8 | 128 | 129);
        Ok(Accept {
            v6: src.is_ipv6(),
            icmp_type,
            inbound,
            peer: (client_given && echo).then_some(if inbound { src } else { dst }),
        })
    }

    /// The type's name as iptables/ip6tables and nft spell it.
    fn type_names(&self) -> Result<(&'static str, &'static str), String> {
        Ok(match (self.v6, self.icmp_type) {
            (false, 8) => ("echo-request", "echo-request"),
            (false, 0) => ("echo-reply", "echo-reply"),
            (true, 128) => ("echo-request", "echo-request"),
            (true, 129) => ("echo-reply", "echo-reply"),
            (true, 135) => ("neighbour-solicitation", "nd-neighbor-solicit"),
            (true, 136) => ("neighbour-advertisement", "nd-neighbor-advert"),
            (_, t) => return Err(format!("no fix for ICMP type {t}")),
        })
    }

    fn describe(&self) -> String {
        let (name, _) = self.type_names().unwrap_or(("icmp", "icmp"));
        let family = if self.v6 { "ICMPv6" } else { "ICMP" };
        match self.peer {
            Some(p) if self.inbound => format!("{family} {name} from {p}"),
            Some(p) => format!("{family} {name} to {p}"),
            None => format!(
                "{family} {name} {}",
                if self.inbound { "in" } else { "out" }
            ),
        }
    }
}

/// The plan for a failing `firewall.icmp_in` or `firewall.icmp_out` finding.
pub fn accept_echo(
    finding: &Finding,
    client: Option<IpAddr>,
    etc: &Path,
    pending: &mut Pending,
) -> Result<Plan, String> {
    let inbound = match finding.id.as_str() {
        crate::checks::firewall::ICMP_IN => true,
        crate::checks::firewall::ICMP_OUT => false,
        other => return Err(format!("{other} has no firewall fix")),
    };
    // A client of the other IP version is not this packet's peer.
    let changes = accept_changes(finding, client.is_some_and(|c| c.is_ipv4()), etc, pending)?;
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

/// The plan for a failing `firewall.icmp6`: an accept for every IPv6 packet the check judges
/// blocked (echo either way, neighbour discovery), so one run lets all of them through.
pub fn accept_icmp6(
    s: &Snapshot,
    client: Option<IpAddr>,
    etc: &Path,
    pending: &mut Pending,
) -> Result<Plan, String> {
    // An IPv4 client is not the IPv6 packets' peer: accept from anywhere then.
    let client = client.filter(|c| c.is_ipv6());
    let judged = crate::checks::firewall::icmp6_judged(s).map_err(|f| f.summary)?;
    let blocked: Vec<&Finding> = judged
        .iter()
        .map(|j| &j.finding)
        .filter(|f| f.status == Status::Fail)
        .collect();
    if blocked.is_empty() {
        return Err("no IPv6 packet is blocked by a rule".to_string());
    }
    let mut changes = Vec::new();
    for f in &blocked {
        for c in accept_changes(f, client.is_some(), etc, pending)? {
            // NDP both ways may be decided by one rule pair: one accept each suffices.
            if !changes.contains(&c) {
                changes.push(c);
            }
        }
    }
    Ok(Plan {
        check: crate::checks::firewall::ICMP6,
        why: format!(
            "accept what the firewall blocks over IPv6 ({}) before the rules that drop it",
            blocked
                .iter()
                .filter_map(|f| Accept::of_packet(&f.evidence["packet"], client.is_some()).ok())
                .map(|a| a.describe())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        changes,
        cuts_connectivity: true,
    })
}

/// The accepts for one blocked packet's finding: one per ruleset that drops or rejects it, or,
/// where ufw manages the rules, one in ufw's own files and a `ufw reload`.
fn accept_changes(
    finding: &Finding,
    client_given: bool,
    etc: &Path,
    pending: &mut Pending,
) -> Result<Vec<Change>, String> {
    let ev = &finding.evidence;
    let accept = Accept::of_packet(&ev["packet"], client_given)?;
    let (ipt_type, nft_type) = accept.type_names()?;
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
    match ev["manager"].as_str() {
        Some("plain") => {}
        Some("ufw") => return ufw_accept(&accept, ipt_type, &blocking, etc, pending),
        Some("firewalld") => return firewalld_accept(&accept, ipt_type, &blocking),
        Some(m) => {
            return Err(format!(
                "{m} manages these rules: change them through {m} (the remedy says how); no automatic fix yet"
            ))
        }
        None => return Err("the finding does not say who manages the rules".to_string()),
    }
    let mut changes = Vec::new();
    for r in blocking {
        let tool = r["tool"].as_str().unwrap_or_default();
        if r["backend"] == "native" || tool == "nft" {
            changes.push(nft_accept(r, &accept, nft_type, &finding.id)?);
            continue;
        }
        // `iptables-nft-save` (or `iptables-nft -S`) listed it: `iptables-nft` changes it
        // (likewise legacy, ip6tables).
        let cli = tool.strip_suffix("-save").unwrap_or(tool);
        if !cli.starts_with("iptables") && !cli.starts_with("ip6tables") {
            return Err(format!("unexpected tool {tool:?} in the evidence"));
        }
        if cli.starts_with("ip6tables") != accept.v6 {
            return Err(format!("{tool} listed a rule for the other IP version"));
        }
        let d = &r["decided_by"];
        let (Some(table), Some(chain)) = (d["table"].as_str(), d["chain"].as_str()) else {
            return Err("the deciding rule's table and chain are not in the evidence".to_string());
        };
        // Before the deciding rule; a chain policy decides after every rule: first is as good.
        let position = d["position"].as_u64().unwrap_or(1).max(1).to_string();
        let mut spec: Vec<String> = if accept.v6 {
            vec!["-p".into(), "ipv6-icmp".into(), "--icmpv6-type".into()]
        } else {
            vec!["-p".into(), "icmp".into(), "--icmp-type".into()]
        };
        spec.push(ipt_type.into());
        if let Some(peer) = accept.peer {
            spec.push(if accept.inbound { "-s" } else { "-d" }.into());
            spec.push(peer.to_string());
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
        undo.extend(spec.iter().cloned());
        let mut check = head("-C");
        check.extend(spec);
        changes.push(Change::Command {
            what: format!(
                "ACCEPT {} in {table} {chain} at {position} ({cli})",
                accept.describe()
            ),
            argv,
            undo,
            stands: Some(super::Probe {
                argv: check,
                prints: false,
            }),
        });
    }
    Ok(changes)
}

/// ufw: the accept goes into ufw's own `before.rules` (`before6.rules` for IPv6) as the first
/// rule of `ufw-before-input` (`-output` for replies), ahead of every ufw rule and the policy,
/// and `ufw reload` loads it; a rule ufw would drop on its next reload is no fix. Only where
/// ufw's chains or the policy it sets decide: a rule outside them is for a person.
fn ufw_accept(
    accept: &Accept,
    ipt_type: &str,
    blocking: &[&Value],
    etc: &Path,
    pending: &mut Pending,
) -> Result<Vec<Change>, String> {
    for r in blocking {
        let d = &r["decided_by"];
        let chain = d["chain"].as_str().unwrap_or_default();
        let policy = d["position"].is_null() && matches!(chain, "INPUT" | "OUTPUT");
        if !(chain.starts_with("ufw") || policy) {
            return Err(format!(
                "a rule outside ufw's chains decides ({} {chain}): ufw would not keep a fix for it; no automatic fix",
                d["table"].as_str().unwrap_or("?")
            ));
        }
    }
    let (file, chain, proto) = match (accept.v6, accept.inbound) {
        (false, true) => ("before.rules", "ufw-before-input", "-p icmp --icmp-type"),
        (false, false) => ("before.rules", "ufw-before-output", "-p icmp --icmp-type"),
        (true, true) => (
            "before6.rules",
            "ufw6-before-input",
            "-p icmpv6 --icmpv6-type",
        ),
        (true, false) => (
            "before6.rules",
            "ufw6-before-output",
            "-p icmpv6 --icmpv6-type",
        ),
    };
    let path = etc.join("ufw").join(file);
    let text = super::pending_text(&path, pending)?.ok_or_else(|| {
        format!(
            "{} does not exist: ufw's rules are not where expected",
            path.display()
        )
    })?;
    let mut rule = format!("-A {chain} {proto} {ipt_type}");
    if let Some(peer) = accept.peer {
        rule.push_str(&format!(
            " {} {peer}",
            if accept.inbound { "-s" } else { "-d" }
        ));
    }
    rule.push_str(" -j ACCEPT");
    let lines: Vec<&str> = text.lines().collect();
    let filter = lines
        .iter()
        .position(|l| l.trim() == "*filter")
        .ok_or_else(|| format!("{} has no *filter table", path.display()))?;
    let prefix = format!("-A {chain} ");
    let at = lines[filter..]
        .iter()
        .position(|l| l.trim_start().starts_with(&prefix) || l.trim() == "COMMIT")
        .map(|i| filter + i)
        .ok_or_else(|| format!("{}: *filter has no COMMIT", path.display()))?;
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.insert(at, rule);
    out.insert(
        at,
        format!(
            "# ecs-diag fix: accept {} ahead of every ufw rule",
            accept.describe()
        ),
    );
    let mut after = out.join("\n");
    after.push('\n');
    pending.insert(path.clone(), after.clone());
    Ok(vec![
        Change::File {
            path,
            before: Some(text),
            after,
        },
        Change::Reload {
            what: "ufw reload".to_string(),
            argv: vec!["ufw".to_string(), "reload".to_string()],
        },
    ])
}

/// The zone whose chain decided, where that chain is one of firewalld's zone chains: nftables
/// backend `inet firewalld` `filter_IN_<zone>[_pre|_log|_deny|_allow|_post]`, iptables backend
/// `filter` `IN_<zone>[…]`. Policy chains (`…_IN_policy_<name>`) and the base chains are not a
/// zone's: None.
fn firewalld_zone(decided_by: &Value) -> Option<&str> {
    let table = decided_by["table"].as_str()?;
    let chain = decided_by["chain"].as_str()?;
    let rest = match table {
        "inet firewalld" => chain.strip_prefix("filter_IN_")?,
        "filter" => chain.strip_prefix("IN_")?,
        _ => return None,
    };
    if rest.starts_with("policy_") {
        return None;
    }
    let zone = ["_pre", "_log", "_deny", "_allow", "_post"]
        .iter()
        .find_map(|s| rest.strip_suffix(s))
        .unwrap_or(rest);
    // firewalld's own zone-name alphabet; anything else is not a chain it made.
    let valid = !zone.is_empty()
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '+'));
    valid.then_some(zone)
}

/// firewalld: a rich rule at the lowest priority, which firewalld places in the zone's `_pre`
/// chain ahead of its ICMP blocks, rich-rule drops and the zone's target, accepts exactly the
/// packet (from the client when one is given) — at runtime and in the permanent configuration,
/// so a `firewall-cmd --reload` or a reboot keeps it. Only for packets coming in through a zone:
/// firewalld has no zone rule for outgoing packets, and a rule outside the zone chains (a
/// direct rule, a policy, another table) is for a person.
fn firewalld_accept(
    accept: &Accept,
    type_name: &str,
    blocking: &[&Value],
) -> Result<Vec<Change>, String> {
    if !accept.inbound {
        return Err(format!(
            "firewalld blocks {} on the way out: its zones filter incoming packets only (a policy or a direct rule decides); no automatic fix",
            accept.describe()
        ));
    }
    let mut zones: Vec<&str> = Vec::new();
    for r in blocking {
        let d = &r["decided_by"];
        let zone = firewalld_zone(d).ok_or_else(|| {
            format!(
                "a rule outside firewalld's zone chains decides ({} {}): a rich rule would not pass it; no automatic fix",
                d["table"].as_str().unwrap_or("?"),
                d["chain"].as_str().unwrap_or("?")
            )
        })?;
        if !zones.contains(&zone) {
            zones.push(zone);
        }
    }
    let mut rule = format!(
        "rule priority=\"-32768\" family=\"{}\"",
        if accept.v6 { "ipv6" } else { "ipv4" }
    );
    if let Some(peer) = accept.peer {
        rule.push_str(&format!(" source address=\"{peer}\""));
    }
    rule.push_str(&format!(" icmp-type name=\"{type_name}\" accept"));
    let mut changes = Vec::new();
    for zone in zones {
        for permanent in [false, true] {
            let argv = |op: &str| -> Vec<String> {
                let mut v = vec!["firewall-cmd".to_string()];
                if permanent {
                    v.push("--permanent".to_string());
                }
                v.extend(["--zone".to_string(), zone.to_string()]);
                v.extend([format!("--{op}-rich-rule"), rule.clone()]);
                v
            };
            changes.push(Change::Command {
                what: format!(
                    "firewalld rich rule accepting {} first in zone {zone} ({})",
                    accept.describe(),
                    if permanent { "permanent" } else { "runtime" }
                ),
                argv: argv("add"),
                undo: argv("remove"),
                stands: Some(super::Probe {
                    argv: argv("query"),
                    prints: false,
                }),
            });
        }
    }
    Ok(changes)
}

/// The comment that marks a fix's own nft rule (what its undo looks for).
fn nft_comment(check: &str) -> String {
    // Unique even for several rules of one plan: each undo finds its own rule.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("ecs-diag fix {check} {}.{n}", crate::unix_ms())
}

/// An nft ACCEPT for the packet, before the deciding rule (its handle) or first in the chain.
fn nft_accept(r: &Value, accept: &Accept, nft_type: &str, check: &str) -> Result<Change, String> {
    let d = &r["decided_by"];
    let (Some(table), Some(chain)) = (d["table"].as_str(), d["chain"].as_str()) else {
        return Err("the deciding nft rule's table and chain are not in the evidence".to_string());
    };
    // `inet guard`: family and table.
    let Some((family, table)) = table.split_once(' ') else {
        return Err(format!("nft table {table:?} names no family"));
    };
    let fits = match family {
        "inet" => true,
        "ip" => !accept.v6,
        "ip6" => accept.v6,
        _ => false,
    };
    if !fits {
        return Err(format!(
            "an nft rule of family {family} decides: no automatic fix for it yet"
        ));
    }
    let (l3, l4) = if accept.v6 {
        ("ip6", "icmpv6")
    } else {
        ("ip", "icmp")
    };
    let mut rule: Vec<String> = Vec::new();
    if let Some(peer) = accept.peer {
        rule.extend([
            l3.into(),
            if accept.inbound { "saddr" } else { "daddr" }.into(),
            peer.to_string(),
        ]);
    }
    rule.extend([l4.into(), "type".into(), nft_type.into(), "accept".into()]);
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

/// Deletes the fix's own rule, found by its comment: its handle, or None when no rule carries
/// the comment (deleted since, or never made).
pub fn nft_delete_commented(
    family: &str,
    table: &str,
    chain: &str,
    comment: &str,
) -> Result<Option<u64>, String> {
    let list: Vec<String> = ["nft", "-a", "list", "chain", family, table, chain]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let listing = super::run_command_output(&list)?;
    let Some(handle) = handle_of_commented(&listing, comment) else {
        return Ok(None);
    };
    let delete: Vec<String> = ["nft", "delete", "rule", family, table, chain, "handle"]
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once(handle.to_string()))
        .collect();
    super::run_command(&delete)?;
    Ok(Some(handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::shell_line;
    use serde_json::json;

    const NO_ETC_STR: &str = "/nonexistent/etc";

    fn finding(id: &str, manager: &str, rulesets: Value) -> Finding {
        let packet = if id == "firewall.icmp_out" {
            json!({"src": "10.77.0.10", "dst": "198.18.0.2", "in": null, "out": "eth0", "icmp_type": 0})
        } else {
            json!({"src": "198.18.0.2", "dst": "10.77.0.10", "in": "eth0", "out": null, "icmp_type": 8})
        };
        Finding::fail(id, "x")
            .evidence(json!({"manager": manager, "rulesets": rulesets, "packet": packet}))
    }

    /// The plan for `f` with no configuration files to edit and nothing planned before.
    fn plan(f: &Finding, client: Option<&str>) -> Result<Plan, String> {
        let client = client.map(|c| c.parse().unwrap());
        accept_echo(f, client, Path::new(NO_ETC_STR), &mut Default::default())
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
        let p = plan(&f, Some("198.18.0.2")).unwrap();
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
        let p = plan(&f, None).unwrap();
        let Change::Command { argv, .. } = &p.changes[0] else {
            panic!()
        };
        assert_eq!(
            argv.join(" "),
            "iptables-legacy -w -t filter -I INPUT 1 -p icmp --icmp-type echo-reply -j ACCEPT"
        );
    }

    /// firewalld: a lowest-priority rich rule in the zone whose chain decided, added and
    /// removed at runtime and permanently; outgoing packets and rules outside the zone chains
    /// (a direct rule in INPUT, a policy) are left to a person.
    #[test]
    fn firewalld_rulesets_get_a_rich_rule_in_the_deciding_zone() {
        let by = |table: &str, chain: &str| {
            json!([{"backend": "native", "family": "inet", "tool": "nft", "verdict": "reject",
                    "decided_by": {"table": table, "chain": chain, "handle": 41}}])
        };
        let f = finding(
            "firewall.icmp_in",
            "firewalld",
            by("inet firewalld", "filter_IN_public_deny"),
        );
        let p = plan(&f, Some("198.18.0.2")).unwrap();
        let lines: Vec<(String, String)> = p
            .changes
            .iter()
            .map(|c| match c {
                Change::Command { argv, undo, .. } => (shell_line(argv), shell_line(undo)),
                other => panic!("{other:?}"),
            })
            .collect();
        let rule = r#"rule priority="-32768" family="ipv4" source address="198.18.0.2" icmp-type name="echo-request" accept"#;
        assert_eq!(
            lines,
            vec![
                (
                    format!("firewall-cmd --zone public --add-rich-rule '{rule}'"),
                    format!("firewall-cmd --zone public --remove-rich-rule '{rule}'")
                ),
                (
                    format!("firewall-cmd --permanent --zone public --add-rich-rule '{rule}'"),
                    format!("firewall-cmd --permanent --zone public --remove-rich-rule '{rule}'")
                ),
            ]
        );
        // IPv6 neighbour solicitations, any source, the zone's own chain (its target) decides;
        // the iptables backend names the chain without the family prefix.
        let mut v6 = finding("firewall.icmp6", "firewalld", by("filter", "IN_dmz-2"));
        v6.evidence["packet"] = json!({"src": "fe80::1", "dst": "fe80::2", "in": "eth0", "out": null, "icmp_type": 135});
        let p = accept_changes(&v6, false, Path::new(NO_ETC_STR), &mut Default::default()).unwrap();
        let Change::Command { argv, .. } = &p[1] else {
            panic!("{p:?}")
        };
        assert_eq!(
            argv.last().unwrap(),
            r#"rule priority="-32768" family="ipv6" icmp-type name="neighbour-solicitation" accept"#
        );
        assert_eq!(argv[2..4], ["--zone", "dmz-2"]);
        // Left to a person: the echo reply out, a direct rule in INPUT, a policy chain.
        let out = finding(
            "firewall.icmp_out",
            "firewalld",
            by("inet firewalld", "filter_OUTPUT"),
        );
        let e = plan(&out, None);
        assert!(e.unwrap_err().contains("on the way out"));
        for (table, chain) in [
            ("filter", "INPUT"),
            ("inet firewalld", "filter_INPUT"),
            ("inet firewalld", "filter_IN_policy_allow-host-ipv6"),
            ("inet guard", "filter_IN_public"),
        ] {
            let f = finding("firewall.icmp_in", "firewalld", by(table, chain));
            let e = plan(&f, None);
            assert!(
                e.unwrap_err().contains("outside firewalld's zone chains"),
                "{table} {chain}"
            );
        }
    }

    #[test]
    fn native_rulesets_of_the_other_family_are_left_to_a_person() {
        let native = json!([{"backend": "native", "family": "ipv4", "tool": "nft", "verdict": "drop",
                             "decided_by": {"table": "ip6 filter", "chain": "input"}}]);
        let f = finding("firewall.icmp_in", "plain", native);
        assert!(plan(&f, None).unwrap_err().contains("family ip6"));
    }

    /// A native nft rule: inserted before the deciding handle, tagged; the undo finds it by
    /// the tag in `nft -a list chain` output.
    #[test]
    fn native_nft_rules_get_a_tagged_accept_before_the_deciding_handle() {
        let native = json!([{"backend": "native", "family": "ipv4", "tool": "nft", "verdict": "drop",
                             "decided_by": {"table": "inet guard", "chain": "input", "handle": 4}}]);
        let f = finding("firewall.icmp_in", "plain", native);
        let p = plan(&f, Some("198.18.0.2")).unwrap();
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

    /// IPv6: every blocked packet gets its own accept in one plan — the echo request from the
    /// client, and neighbour solicitations from any address (the router's is not the client).
    #[test]
    fn every_blocked_ipv6_packet_gets_an_accept_in_one_plan() {
        use crate::ruleset::iptables::parse_save;
        use crate::snapshot::{Gathered, Ruleset};
        let mut s = crate::checks::fixture::healthy();
        crate::checks::fixture::with_ipv6(&mut s);
        let tables = parse_save("*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j DROP\nCOMMIT\n").unwrap();
        s.firewall = Gathered::Ok(std::sync::Arc::new(vec![Ruleset {
            not_read: None,
            nat: None,
            backend: "nft".into(),
            family: "ipv6".into(),
            tool: "ip6tables-nft-save".into(),
            tables: Gathered::Ok(tables),
        }]));
        let client: IpAddr = "2001:db8::2".parse().unwrap();
        s.client = Some(client);
        let p = accept_icmp6(
            &s,
            Some(client),
            Path::new(NO_ETC_STR),
            &mut Default::default(),
        )
        .unwrap();
        assert_eq!(p.check, "firewall.icmp6");
        assert!(p.cuts_connectivity);
        let argvs: Vec<String> = p
            .changes
            .iter()
            .map(|c| match c {
                Change::Command { argv, .. } => argv.join(" "),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            argvs,
            [
                "ip6tables-nft -w -t filter -I INPUT 2 -p ipv6-icmp --icmpv6-type echo-request -s 2001:db8::2 -j ACCEPT",
                "ip6tables-nft -w -t filter -I INPUT 3 -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT",
            ]
        );
        assert!(
            p.why.contains("ICMPv6 echo-request from 2001:db8::2"),
            "{}",
            p.why
        );
        // An IPv4 client says nothing about IPv6 peers: the echo is accepted from anywhere.
        let p = accept_icmp6(
            &s,
            Some("198.18.0.2".parse().unwrap()),
            Path::new(NO_ETC_STR),
            &mut Default::default(),
        )
        .unwrap();
        let Change::Command { argv, .. } = &p.changes[0] else {
            panic!()
        };
        assert!(!argv.contains(&"-s".to_string()), "{argv:?}");
        // Nothing blocked: no plan.
        let mut healthy = crate::checks::fixture::healthy();
        crate::checks::fixture::with_ipv6(&mut healthy);
        assert!(accept_icmp6(
            &healthy,
            None,
            Path::new(NO_ETC_STR),
            &mut Default::default()
        )
        .is_err());
        // No IPv6 address: the check's own reason.
        let e = accept_icmp6(
            &crate::checks::fixture::healthy(),
            None,
            Path::new(NO_ETC_STR),
            &mut Default::default(),
        )
        .unwrap_err();
        assert!(e.contains("no global IPv6 address"), "{e}");
    }

    /// nft: an ip6 or inet table takes an IPv6 accept (icmpv6, ip6 saddr); an ip table cannot
    /// hold one, and an ip6tables tool never changes IPv4 rules.
    #[test]
    fn ipv6_accepts_fit_the_table_family() {
        let packet = json!({"src": "2001:db8::2", "dst": "fd77::10", "in": "eth0", "out": null, "icmp_type": 128});
        let accept = Accept::of_packet(&packet, true).unwrap();
        let r = json!({"backend": "native", "family": "ipv6", "tool": "nft", "verdict": "drop",
                       "decided_by": {"table": "ip6 guard", "chain": "input", "handle": 3}});
        let c = nft_accept(&r, &accept, "echo-request", "firewall.icmp6").unwrap();
        let argv = nft_insert_argv(&c).join(" ");
        assert!(
            argv.starts_with("nft insert rule ip6 guard input position 3 ip6 saddr 2001:db8::2 icmpv6 type echo-request accept comment "),
            "{argv}"
        );
        let r4 = json!({"backend": "native", "family": "ipv4", "tool": "nft", "verdict": "drop",
                        "decided_by": {"table": "ip guard", "chain": "input", "handle": 3}});
        assert!(nft_accept(&r4, &accept, "echo-request", "firewall.icmp6")
            .unwrap_err()
            .contains("family ip"));
        // Without a client the echo is accepted from anywhere; the comment differs per rule.
        let any = Accept::of_packet(&packet, false).unwrap();
        assert_eq!(any.peer, None);
        let c2 = nft_accept(&r, &any, "echo-request", "firewall.icmp6").unwrap();
        let (Change::NftInsert { comment: a, .. }, Change::NftInsert { comment: b, .. }) =
            (&c, &c2)
        else {
            panic!()
        };
        assert_ne!(a, b);
        let f = Finding::fail("firewall.icmp6", "x").evidence(json!({"manager": "plain", "packet": packet,
            "rulesets": [{"backend": "nft", "family": "ipv4", "tool": "iptables-nft-save", "verdict": "drop",
                          "decided_by": {"table": "filter", "chain": "INPUT", "position": 1}}]}));
        assert!(
            accept_changes(&f, false, Path::new(NO_ETC_STR), &mut Default::default())
                .unwrap_err()
                .contains("other IP version")
        );
        // A type with no fix says so.
        let odd = json!({"src": "2001:db8::2", "dst": "fd77::10", "in": "eth0", "icmp_type": 1});
        assert!(Accept::of_packet(&odd, false)
            .unwrap()
            .type_names()
            .is_err());
    }

    /// ufw: the accept goes first into ufw-before-input in before.rules (where ufw keeps it),
    /// then `ufw reload`; a rule outside ufw's chains is left to a person.
    #[test]
    fn ufw_rules_get_the_accept_in_before_rules_and_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        std::fs::create_dir_all(etc.join("ufw")).unwrap();
        let before = "# ufw before.rules (made up, as shipped minus the echo accept)\n*filter\n:ufw-before-input - [0:0]\n:ufw-before-output - [0:0]\n# End required lines\n\n# allow all on loopback\n-A ufw-before-input -i lo -j ACCEPT\n-A ufw-before-output -o lo -j ACCEPT\n-A ufw-before-input -p icmp --icmp-type destination-unreachable -j ACCEPT\nCOMMIT\n";
        std::fs::write(etc.join("ufw/before.rules"), before).unwrap();
        let policy = json!([{"backend": "nft", "family": "ipv4", "tool": "iptables-nft-save", "verdict": "drop",
                             "decided_by": {"table": "filter", "chain": "INPUT", "position": null}}]);
        let f = finding("firewall.icmp_in", "ufw", policy);
        let mut pending = Default::default();
        let p = accept_echo(&f, Some("198.18.0.2".parse().unwrap()), etc, &mut pending).unwrap();
        assert!(p.cuts_connectivity);
        let Change::File { path, after, .. } = &p.changes[0] else {
            panic!("{:?}", p.changes)
        };
        assert_eq!(path, &etc.join("ufw/before.rules"));
        assert!(
            after.contains("# allow all on loopback\n# ecs-diag fix: accept ICMP echo-request from 198.18.0.2 ahead of every ufw rule\n-A ufw-before-input -p icmp --icmp-type echo-request -s 198.18.0.2 -j ACCEPT\n-A ufw-before-input -i lo -j ACCEPT\n"),
            "{after}"
        );
        assert_eq!(
            p.changes[1],
            Change::Reload {
                what: "ufw reload".into(),
                argv: vec!["ufw".into(), "reload".into()]
            }
        );
        // The reply way: first in ufw-before-output.
        let out = finding(
            "firewall.icmp_out",
            "ufw",
            json!([{"backend": "nft", "family": "ipv4", "tool": "iptables-nft-save", "verdict": "drop",
                    "decided_by": {"table": "filter", "chain": "ufw-before-output", "position": 3}}]),
        );
        let p = accept_echo(&out, None, etc, &mut Default::default()).unwrap();
        let Change::File { after, .. } = &p.changes[0] else {
            panic!()
        };
        assert!(
            after.contains("-A ufw-before-input -i lo -j ACCEPT\n# ecs-diag fix: accept ICMP echo-reply out ahead of every ufw rule\n-A ufw-before-output -p icmp --icmp-type echo-reply -j ACCEPT\n-A ufw-before-output -o lo -j ACCEPT\n"),
            "{after}"
        );
        // A hand-made rule in INPUT ahead of ufw's jump: ufw would not keep a fix for it.
        let outside = finding(
            "firewall.icmp_in",
            "ufw",
            json!([{"backend": "nft", "family": "ipv4", "tool": "iptables-nft-save", "verdict": "drop",
                    "decided_by": {"table": "filter", "chain": "INPUT", "position": 1}}]),
        );
        assert!(accept_echo(&outside, None, etc, &mut Default::default())
            .unwrap_err()
            .contains("outside ufw's chains"));
        // No before.rules: said.
        let e = plan(&f, None).unwrap_err();
        assert!(e.contains("before.rules does not exist"), "{e}");
    }
}
