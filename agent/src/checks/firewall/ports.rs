//! `firewall.ports`: for each listening TCP/UDP socket reachable from outside, the verdict of
//! the rulesets on a new connection from the client (and from any other source), with the
//! remedy to open it in the terms of what manages the rules.

use serde_json::json;

use super::*;

/// Opening a port in the language of whatever manages the rules.
fn port_remedy(m: Manager, r: &Ruleset, d: &Decision, proto: &str, port: u16) -> String {
    let Some(dec) = &d.decider else {
        return String::new();
    };
    match m {
        Manager::Firewalld => {
            return format!(
                "firewall-cmd --permanent --add-port={port}/{proto} && firewall-cmd --reload"
            )
        }
        Manager::Ufw => return format!("ufw allow {port}/{proto}"),
        Manager::Plain => {}
    }
    if r.tool == "nft" {
        return match dec.handle {
            Some(h) => format!(
                "nft insert rule {} {} position {h} {proto} dport {port} accept",
                dec.table, dec.chain
            ),
            None => format!(
                "nft add rule {} {} {proto} dport {port} accept",
                dec.table, dec.chain
            ),
        };
    }
    let tool = if r.family == "ipv6" {
        "ip6tables"
    } else {
        "iptables"
    };
    let table = if dec.table == "filter" {
        String::new()
    } else {
        format!("-t {} ", dec.table)
    };
    match dec.position {
        Some(pos) => format!(
            "{tool} {table}-I {} {pos} -p {proto} --dport {port} -j ACCEPT",
            dec.chain
        ),
        None => format!(
            "{tool} {table}-A {} -p {proto} --dport {port} -j ACCEPT",
            dec.chain
        ),
    }
}

pub fn ports(s: &Snapshot) -> Finding {
    let fw = match rulesets(s, PORTS) {
        Ok(r) => r,
        Err(f) => return f,
    };
    let listeners = match s.listeners.ok() {
        Ok(l) => l,
        Err(e) => {
            return Finding::unknown(PORTS, format!("cannot read the listening sockets: {e}"))
        }
    };
    let p = match primary_interface(s) {
        Ok(p) => p,
        Err(e) => return no_primary(PORTS, e),
    };
    let dev = p.link.name.clone();
    let primary_v4 = primary_v4(s, PORTS).ok().map(|(_, ip)| ip);
    let primary_v6 = global_v6(s, p.link.index);
    let client = reply_target(s);
    let client6 = client_v6(s);
    let m = manager(&fw);
    let mut results = Vec::new();
    let mut blocked = Vec::new();
    let mut remedy = Vec::new();
    let mut uncertain = Vec::new();
    let mut unreadable = Vec::new();
    for l in listeners {
        if l.address.is_loopback() {
            continue;
        }
        // Wildcard listeners are reached at the primary address of their family.
        let dst = if l.address.is_unspecified() {
            match l.address {
                IpAddr::V4(_) => primary_v4,
                IpAddr::V6(_) => primary_v6,
            }
        } else {
            Some(l.address)
        };
        let Some(dst) = dst else { continue };
        let (family, src) = if dst.is_ipv6() {
            ("ipv6", client6)
        } else {
            ("ipv4", client)
        };
        let proto = if l.proto == "tcp" { L4::Tcp } else { L4::Udp };
        let packet = super::routed(
            s,
            Packet::connect(src, dst, proto, l.port, &dev, local_addresses(s)),
        );
        let j = judge_rulesets(&fw, family, &packet);
        uncertain.extend(j.uncertain.iter().cloned());
        unreadable.extend(j.unreadable.iter().cloned());
        let name = format!("{}/{}", l.proto, l.port);
        // With --client, also the verdict for any other source (the stand-in Internet client).
        let any_source = s.client.is_some().then(|| {
            let stand_in = if dst.is_ipv6() {
                IpAddr::V6(PUBLIC_PROBE6)
            } else {
                IpAddr::V4(s.stand_in())
            };
            let p = super::routed(
                s,
                Packet::connect(stand_in, dst, proto, l.port, &dev, local_addresses(s)),
            );
            let any = judge_rulesets(&fw, family, &p);
            json!({"from": stand_in, "verdict": any.blocked.as_ref().map_or(Verdict::Accept, |(_, d)| d.verdict)})
        });
        match &j.blocked {
            Some((r, d)) => {
                let dec = d.decider.as_ref();
                let how = if d.verdict == Verdict::Reject { "rejected" } else { "dropped" };
                let by = dec.map(|dec| match dec.position {
                    Some(pos) => format!("rule {pos} of {} {}", dec.table, dec.chain),
                    None => format!("the policy of {} {}", dec.table, dec.chain),
                }).unwrap_or_default();
                blocked.push(format!("{name} on {dst} {how} by {by}"));
                remedy.push(port_remedy(m, r, d, &l.proto, l.port));
                results.push(json!({"port": name, "bound": l.address, "to": dst, "from": src, "verdict": d.verdict, "decided_by": dec, "any_source": any_source}));
            }
            None => results.push(json!({"port": name, "bound": l.address, "to": dst, "from": src, "verdict": "accept", "any_source": any_source})),
        }
    }
    let evidence = json!({"client": client, "ports": results});
    if !blocked.is_empty() {
        remedy.sort();
        remedy.dedup();
        return Finding::warn(
            PORTS,
            format!(
                "{} listening port(s) blocked for {}: {}",
                blocked.len(),
                crate::checks::target_label(s),
                blocked.join("; ")
            ),
        )
        .evidence(evidence)
        .remedy(remedy);
    }
    if !unreadable.is_empty() {
        return Finding::unknown(PORTS, format!("cannot read the ruleset: {}", unreadable[0]))
            .evidence(evidence);
    }
    if !uncertain.is_empty() {
        uncertain.sort();
        uncertain.dedup();
        return Finding::unknown(
            PORTS,
            format!(
                "these matches could not be evaluated: {}",
                uncertain.join("; ")
            ),
        )
        .evidence(evidence);
    }
    if results.is_empty() {
        return Finding::ok(PORTS, "no service listens beyond loopback").evidence(evidence);
    }
    Finding::ok(
        PORTS,
        format!(
            "all {} listening port(s) are open to {}",
            results.len(),
            crate::checks::target_label(s)
        ),
    )
    .evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{filter, with_rules};
    use super::*;
    use crate::checks::fixture::{ip, judge as judge_check};
    use crate::report::Status;
    use crate::snapshot::Gathered;

    fn listening(s: &mut Snapshot) {
        use crate::snapshot::Listener;
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
                proto: "udp".into(),
                address: ip("127.0.0.1"),
                port: 323,
            },
        ]);
    }

    #[test]
    fn ports_paths() {
        assert_eq!(
            judge_check(ports, |_| {}).summary,
            "no service listens beyond loopback"
        );
        let f = judge_check(ports, listening);
        assert_eq!(f.status, Status::Ok);
        assert_eq!(
            f.evidence["ports"].as_array().unwrap().len(),
            2,
            "loopback-only ports are not judged"
        );
        let rules = filter("ACCEPT", "-A INPUT -p tcp -m tcp --dport 8080 -j DROP\n-A INPUT -p tcp -m multiport --dports 8000:8100 -j REJECT\n");
        let f = judge_check(ports, |s| {
            listening(s);
            with_rules(&rules)(s);
        });
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary
                .contains("tcp/8080 on 10.77.0.10 dropped by rule 1 of filter INPUT"),
            "{}",
            f.summary
        );
        assert!(!f.summary.contains("tcp/22"));
        assert_eq!(
            f.remedy,
            vec!["iptables -I INPUT 1 -p tcp --dport 8080 -j ACCEPT".to_string()]
        );
        let f = judge_check(ports, |s| {
            listening(s);
            with_rules(&filter(
                "DROP",
                "-A INPUT -p tcp --syn --dport 22 -j ACCEPT\n",
            ))(s);
        });
        assert!(
            f.summary.starts_with("1 listening port(s) blocked"),
            "{}",
            f.summary
        );
        assert_eq!(
            judge_check(ports, |s| {
                listening(s);
                s.listeners = Gathered::Failed("x".into());
            })
            .status,
            Status::Unknown
        );
        assert_eq!(
            judge_check(ports, |s| {
                listening(s);
                s.firewall = Gathered::Failed("x".into());
            })
            .status,
            Status::Unknown
        );
        let f = judge_check(ports, |s| {
            listening(s);
            with_rules(&filter("ACCEPT", "-A INPUT -m recent --rcheck -j DROP\n"))(s);
        });
        assert_eq!(f.status, Status::Unknown);
        assert!(f.summary.contains("recent --rcheck"), "{}", f.summary);
    }

    #[test]
    fn ports_verdict_for_the_client_and_for_any_source() {
        let rules = filter(
            "ACCEPT",
            "-A INPUT -s 198.18.0.2/32 -p tcp -m tcp --dport 8080 -j DROP\n",
        );
        let f = judge_check(ports, |s| {
            listening(s);
            with_rules(&rules)(s);
            s.client = Some(ip("198.18.0.2"));
        });
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        let port = f.evidence["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == "tcp/8080")
            .unwrap()
            .clone();
        assert_eq!(port["verdict"], "drop");
        assert_eq!(port["any_source"]["verdict"], "accept", "{port}");
        // Without --client: the stand-in source is not blocked.
        assert_eq!(
            judge_check(ports, |s| {
                listening(s);
                with_rules(&rules)(s);
            })
            .status,
            Status::Ok
        );
    }
}
