//! Faults judged by `ecs-diag watch` while a real ping runs.

use std::time::Duration;

use serde_json::Value;

use ecs_diag_matrix::matrix::*;

/// Runs `watch --json --client CLIENT` in the guest for 3 s while the client sends `pings`
/// echo requests; returns the verdict JSON and the exit code.
pub(crate) fn watch_while_pinging(t: &Topology, pings: u32) -> (Value, i32) {
    watch_while_pinging_at(t, pings, GUEST_IP, CLIENT)
}

/// The same for any target address of the guest and client source (IPv6 when it has a ':').
fn watch_while_pinging_at(t: &Topology, pings: u32, target: &str, client: &str) -> (Value, i32) {
    let config = t.dir.path().join("config.toml");
    let (out, received) = std::thread::scope(|scope| {
        let agent = scope.spawn(|| {
            t.exec(
                &t.guest,
                &[
                    agent_bin(),
                    "watch",
                    "--json",
                    "--seconds",
                    "3",
                    "--client",
                    client,
                    "--config",
                    config.to_str().unwrap(),
                ],
            )
        });
        // After the capture, the trace table and the first counters are in place.
        std::thread::sleep(Duration::from_millis(1200));
        let received = if pings > 0 {
            t.ping_count(target, pings, target.contains(':'))
        } else {
            0
        };
        (agent.join().unwrap(), received)
    });
    let v = verdict_line(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!("watch (ping received {received}/{pings}):\n{v:#}");
    // The trace table is gone afterwards.
    let tables = t.exec(&t.guest, &["nft", "list", "tables"]);
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("ecs_diag_watch"),
        "the trace table must be removed"
    );
    (v, out.status.code().unwrap_or(-1))
}

/// `watch --json` prints JSON Lines, each with `version` and `type`: the `start` line first,
/// one `tick` per second whose totals add up, and the final `verdict` last (returned).
fn verdict_line(stdout: &[u8]) -> Result<Value, String> {
    let lines: Vec<Value> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not a JSON line ({e}): {l}")))
        .collect::<Result<_, _>>()?;
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["type"].as_str().unwrap_or(""))
        .collect();
    if kinds.first() != Some(&"start") || kinds.last() != Some(&"verdict") {
        return Err(format!("lines out of order: {kinds:?}"));
    }
    for l in &lines {
        if l["version"] != 1 {
            return Err(format!("a line without version 1: {l}"));
        }
        if l["type"] == "tick" {
            let n = |k: &str| l[k].as_u64().unwrap_or(u64::MAX);
            if n("requests_seen") != n("answered") + n("dropped") + n("unanswered") {
                return Err(format!("a tick that does not add up: {l}"));
            }
        }
    }
    // The header names the interface, its private and public IP and the client filter.
    let start = &lines[0];
    if start["interface"] != "eth0"
        || start["private_ip"].as_str().is_none()
        || start["public_ip"] != PUBLIC_IP
        || start["client"].as_str().is_none()
    {
        return Err(format!(
            "the start line does not say what is watched: {start}"
        ));
    }
    Ok(lines[lines.len() - 1].clone())
}

#[test]
fn watch_sees_requests_arriving_and_answered() {
    let t = Topology::new();
    assert_healthy(&t);
    let (v, code) = watch_while_pinging(&t, 5);
    assert_eq!(v["verdict"], "answered", "{v:#}");
    assert_eq!(code, 0);
    assert!(v["evidence"]["requests_on_wire"].as_u64().unwrap() >= 5);
    assert!(v["evidence"]["replies_on_wire"].as_u64().unwrap() >= 5);
    assert!(v["evidence"]["requests_reached_icmp"].as_u64().unwrap() >= 5);
    assert!(v["sources"][CLIENT]["requests"].as_u64().unwrap() >= 5);
    // The suggestions are filled in: the public IP from the metadata, the client's address.
    let steps = v["steps"].to_string();
    assert!(steps.contains(&format!("mtr -n {PUBLIC_IP}")), "{steps}");
    // "answered" points to this instance's half of the link test, the client filled in.
    assert!(
        steps.contains(&format!("ecs-diag trace --client {CLIENT}")),
        "{steps}"
    );
    assert!(v["unavailable"].as_array().unwrap().is_empty(), "{v:#}");
}

#[test]
fn watch_names_the_firewall_rule_that_drops_requests() {
    let t = Topology::new();
    assert_healthy(&t);
    t.guest("iptables -A INPUT -p icmp --icmp-type echo-request -j DROP");
    assert!(!t.ping(GUEST_IP), "ground truth: the rule drops pings");
    let (v, code) = watch_while_pinging(&t, 5);
    assert_eq!(v["verdict"], "arriving_not_answered", "{v:#}");
    assert_eq!(code, 2);
    assert!(v["evidence"]["requests_on_wire"].as_u64().unwrap() >= 5);
    assert_eq!(v["evidence"]["requests_reached_icmp"], 0);
    let summary = v["summary"].as_str().unwrap();
    assert!(
        summary.contains("-A INPUT -p icmp -m icmp --icmp-type 8 -j DROP"),
        "the rule is named: {summary}"
    );
    assert!(
        summary.contains("never reached the ICMP layer"),
        "{summary}"
    );
    // Both kinds of evidence: the rule's counter moved, and the nftables trace saw the drop.
    let moved = &v["moved_rules"][0];
    assert_eq!(moved["drops"], true);
    assert!(moved["packets"].as_u64().unwrap() >= 5);
    let traced = &v["traced_drops"][0];
    assert_eq!(traced["chain"], "ip filter INPUT", "{v:#}");
    assert_eq!(traced["source"], CLIENT);
    assert_eq!(traced["packet"], "echo-request");
}

#[test]
fn watch_sees_requests_not_arriving() {
    let t = Topology::new();
    assert_healthy(&t);
    // A security group without an ICMP rule: the client's requests are dropped before the
    // guest (here on the client's side of the link).
    t.client("iptables -A OUTPUT -p icmp -d 10.77.0.10 -j DROP");
    assert!(!t.ping(GUEST_IP), "ground truth: nothing reaches the guest");
    let (v, code) = watch_while_pinging(&t, 5);
    assert_eq!(v["verdict"], "not_arriving", "{v:#}");
    assert_eq!(code, 1);
    assert_eq!(v["evidence"]["requests_on_wire"], 0);
    assert_eq!(v["evidence"]["requests_reached_icmp"], 0);
    let steps = v["steps"].to_string();
    for outside in ["security group", "network ACL", "blackhole"] {
        assert!(steps.contains(outside), "{outside} in {steps}");
    }
}

#[test]
fn watch_follows_icmpv6_echo_to_the_ip6tables_rule_that_drops_it() {
    let t = Topology::new();
    assert_healthy(&t);
    let (v, code) = watch_while_pinging_at(&t, 4, "fd77::10", "fd77::1");
    assert_eq!(v["verdict"], "answered", "{v:#}");
    assert_eq!(code, 0);
    assert!(
        v["sources"]["fd77::1"]["requests"].as_u64().unwrap() >= 4,
        "{v:#}"
    );
    t.guest("ip6tables -A INPUT -p icmpv6 --icmpv6-type echo-request -j DROP");
    assert_eq!(t.ping_count("fd77::10", 2, true), 0, "ground truth");
    let (v, code) = watch_while_pinging_at(&t, 4, "fd77::10", "fd77::1");
    assert_eq!(v["verdict"], "arriving_not_answered", "{v:#}");
    assert_eq!(code, 2);
    assert_eq!(v["traced_drops"][0]["chain"], "ip6 filter INPUT", "{v:#}");
    assert_eq!(v["traced_drops"][0]["source"], "fd77::1");
    assert!(
        v["summary"].as_str().unwrap().contains("ip6tables"),
        "{v:#}"
    );
}

#[test]
fn watch_names_the_kernels_drop_reason_for_a_reverse_path_drop() {
    // No rule and no ICMP counter explains this drop: strict rp_filter on eth1 drops requests
    // from a client the guest routes through eth0. The kernel's skb:kfree_skb reason does.
    let t = Topology::new();
    assert_healthy(&t);
    t.add_asymmetric_eth1();
    t.sysctl_g("net.ipv4.conf.eth1.rp_filter=1");
    // rp_filter also refuses the client's ARP requests (their sender is the client's address):
    // a static entry on the client lets the echo requests themselves reach eth1.
    let mac = t.exec(&t.guest, &["cat", "/sys/class/net/eth1/address"]);
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_string();
    t.client(&format!(
        "ip neigh replace 10.78.0.10 lladdr {mac} dev gw1 nud permanent"
    ));
    assert_eq!(t.ping_count("10.78.0.10", 2, false), 0, "ground truth");
    let (v, code) = watch_while_pinging_at(&t, 4, "10.78.0.10", CLIENT);
    assert_eq!(v["verdict"], "arriving_not_answered", "{v:#}");
    assert_eq!(code, 2);
    assert!(v["moved_rules"].as_array().unwrap().is_empty(), "{v:#}");
    assert!(v["traced_drops"].as_array().unwrap().is_empty(), "{v:#}");
    let rpf = v["kernel_drops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["reason"] == "IP_RPFILTER")
        .unwrap_or_else(|| panic!("no IP_RPFILTER drop in {v:#}"));
    assert_eq!(rpf["protocol"], "IPv4");
    // The tracepoint and the capture attach separately: on a loaded machine the first
    // request can be on the wire before the tracepoint sees drops (3 of 4 once, with two
    // suites on 2 cores). Every drop it does see must be this one.
    let on_wire = v["evidence"]["requests_on_wire"].as_u64().unwrap();
    let seen = rpf["packets"].as_u64().unwrap();
    assert!(seen >= 1 && seen + 1 >= on_wire, "{v:#}");
    assert!(!rpf["location"].as_str().unwrap().is_empty());
    let summary = v["summary"].as_str().unwrap();
    assert!(summary.contains("IP_RPFILTER in "), "{summary}");
    // The start line says the kernel's reasons are watched; nothing was unavailable.
    assert!(v["unavailable"].as_array().unwrap().is_empty(), "{v:#}");
}
