//! Faults judged by firewall.icmp_in, firewall.icmp_out, firewall.icmp6, firewall.ports, and serve seeing ruleset changes.

use ecs_diag_matrix::matrix::*;
use ecs_diag_matrix::served::Served;
use serde_json::Value;

#[test]
fn firewall_input_drops_echo_request() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &["iptables -A INPUT -p icmp --icmp-type echo-request -j DROP"],
    );
    let s = summary(&r, "firewall.icmp_in");
    assert!(
        s.contains("rule 1 of filter INPUT") && s.contains("-j DROP"),
        "{s}"
    );
    // The counters show the ground-truth pings hit this rule.
    let hits = r["firewall.icmp_in"].1["evidence"]["rulesets"][0]["decided_by"]["packets"]
        .as_u64()
        .unwrap();
    assert!(hits >= 3, "rule counters moved: {hits}");
}

#[test]
fn firewall_output_drops_echo_reply() {
    firewall_case(
        &[("firewall.icmp_out", "fail")],
        false,
        &["iptables -A OUTPUT -p icmp --icmp-type echo-reply -j DROP"],
    );
}

#[test]
fn firewall_input_policy_drop_without_icmp_accept() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[
            "iptables -A INPUT -i lo -j ACCEPT",
            "iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "iptables -A INPUT -p tcp --dport 22 -j ACCEPT",
            "iptables -P INPUT DROP",
        ],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("DROP policy of filter INPUT"));
}

#[test]
fn firewall_drop_reached_through_a_user_chain() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[
            "iptables -N blocklist",
            "iptables -A blocklist -p icmp -j DROP",
            "iptables -A INPUT -s 198.18.0.0/16 -j blocklist",
        ],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("filter blocklist"));
}

#[test]
fn firewall_drop_only_for_the_client_address() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &["iptables -A INPUT -s 198.18.0.2 -p icmp -j DROP"],
    );
    assert!(summary(&r, "firewall.icmp_in").contains(CLIENT));
}

#[test]
fn firewall_client_decides_the_verdict() {
    let t = Topology::new();
    assert_healthy(&t);
    t.guest("iptables -A INPUT -s 198.18.0.2 -p icmp -j DROP");
    assert!(
        !t.ping(GUEST_IP),
        "ground truth: this client's pings are dropped"
    );
    assert_eq!(t.diagnose(Some(CLIENT))["firewall.icmp_in"].0, "fail");
    // Any other source is let through: without --client the verdict is ok.
    let other = t.diagnose(None);
    assert_eq!(other["firewall.icmp_in"].0, "ok", "{}", show(&other));
}

#[test]
fn firewall_reject_host_prohibited_as_firewalld_does() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[
            "iptables -A INPUT -i lo -j ACCEPT",
            "iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "iptables -A INPUT -j REJECT --reject-with icmp-host-prohibited",
        ],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("rejects (icmp-host-prohibited)"));
}

#[test]
fn firewall_raw_table_drop() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &["iptables -t raw -A PREROUTING -p icmp --icmp-type 8 -j DROP"],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("of raw PREROUTING"));
}

#[test]
fn firewall_legacy_backend_drop() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &["iptables-legacy -A INPUT -p icmp -j DROP"],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("legacy backend"));
}

#[test]
fn firewall_ip6tables_drops_icmpv6_echo() {
    let r = prove(
        Fault {
            inject: &[],
            ping: GUEST_IP,
            ping_works: true,
            expect: &[("firewall.icmp6", "fail")],
            consequences: &[],
        },
        |t| {
            assert!(
                t.ping_count("fd77::10", 3, true) > 0,
                "IPv6 ping works before the fault"
            );
            t.guest("ip6tables -A INPUT -p ipv6-icmp --icmpv6-type echo-request -j DROP");
            assert_eq!(
                t.ping_count("fd77::10", 3, true),
                0,
                "ground truth: IPv6 ping fails"
            );
        },
    );
    assert!(summary(&r, "firewall.icmp6").contains("ip6tables"));
}

#[test]
fn firewall_drops_that_do_not_touch_icmp_are_ok() {
    firewall_case(
        &[
            ("firewall.icmp_in", "ok"),
            ("firewall.icmp_out", "ok"),
            ("firewall.icmp6", "ok"),
        ],
        true,
        &[
            "iptables -A INPUT -p tcp --dport 23 -j DROP",
            "iptables -A INPUT -p udp -m multiport --dports 137:139,445 -j DROP",
            "iptables -A INPUT -s 203.0.113.0/24 -j DROP",
            "iptables -A INPUT -p icmp --icmp-type timestamp-request -j DROP",
            "iptables -A OUTPUT -p tcp --dport 25 -j REJECT",
            "ip6tables -A INPUT -p tcp --dport 23 -j DROP",
        ],
    );
}

#[test]
fn firewall_icmp_accept_ahead_of_a_catch_all_drop_is_ok() {
    firewall_case(
        &[("firewall.icmp_in", "ok")],
        true,
        &[
            "iptables -A INPUT -i lo -j ACCEPT",
            "iptables -A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
            "iptables -A INPUT -j DROP",
        ],
    );
}

#[test]
fn firewall_native_nft_inet_table_drop() {
    let r = prove(
        Fault {
            inject: &[],
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("firewall.icmp_in", "fail")],
            consequences: &[],
        },
        |t| {
            t.add_nft_guard_input();
            t.guest("nft add rule inet guard input icmp type echo-request counter drop");
        },
    );
    let s = summary(&r, "firewall.icmp_in");
    assert!(
        s.starts_with("nftables drops") && s.contains("inet guard input"),
        "{s}"
    );
    assert!(r["firewall.icmp_in"].1["remedy"][0]
        .as_str()
        .unwrap()
        .starts_with("nft insert rule inet guard input position"));
}

#[test]
fn firewall_drops_a_listening_port() {
    let t = Topology::new();
    assert_healthy(&t);
    // A TCP service on 0.0.0.0:8080 in the guest.
    let _service = t.listen_tcp(8080);
    let connect = || {
        t.exec(
            &t.client,
            &[
                "timeout",
                "2",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{GUEST_IP}/8080"),
            ],
        )
        .status
        .success()
    };
    assert!(connect(), "the service answers before the fault");
    let before = t.diagnose(Some(CLIENT));
    assert_eq!(before["firewall.ports"].0, "ok", "{}", show(&before));
    assert!(summary(&before, "firewall.ports").contains("1 listening port"));

    t.guest("iptables -A INPUT -p tcp --dport 8080 -j DROP");
    assert!(!connect(), "ground truth: TCP connect to 8080 fails");
    assert!(t.ping(GUEST_IP), "ping still works");
    let report = t.diagnose(Some(CLIENT));
    assert_eq!(report["firewall.ports"].0, "warn", "{}", show(&report));
    assert!(summary(&report, "firewall.ports").contains("tcp/8080"));
    assert_eq!(
        report["firewall.ports"].1["remedy"][0],
        "iptables -I INPUT 1 -p tcp --dport 8080 -j ACCEPT"
    );
    for (id, (status, _)) in &report {
        assert!(
            status != "fail",
            "unrelated check {id} failed:\n{}",
            show(&report)
        );
    }
}

#[test]
fn firewall_drop_by_ipset_membership() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[
            "ipset create blocked hash:net",
            "ipset add blocked 198.18.0.0/16",
            "iptables -A INPUT -p icmp -m set --match-set blocked src -j DROP",
        ],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("--match-set blocked src"));
}

/// `serve` reuses an unchanged ruleset between refreshes; a change in either backend must
/// still reach the served report (nf_tables generation id; legacy table signature).
#[test]
fn serve_sees_ruleset_changes_in_both_backends() {
    let t = Topology::new();
    assert_healthy(&t);
    let served = Served::start(&t, "");
    let wait_for = |want: &str, what: &str| {
        served.wait_for("firewall.icmp_in", want, what);
    };
    let start = served.wait_for("firewall.icmp_in", "ok", "start");
    // No iptables-nft table exists yet: the tool is not run, and the evidence says so.
    let not_read: Vec<&Value> = start["evidence"]["rulesets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["not_read"].is_string())
        .collect();
    assert!(
        not_read.iter().any(|r| r["tool"] == "iptables-nft-save"),
        "{start:#}"
    );
    // A table appearing between two refreshes (a new generation) is read on the next one,
    // in each family.
    t.guest("iptables -A INPUT -p icmp -j DROP");
    wait_for("fail", "an iptables-nft rule was added");
    t.guest("ip6tables -A INPUT -p ipv6-icmp --icmpv6-type echo-request -j DROP");
    served.wait_for("firewall.icmp6", "fail", "an ip6tables-nft rule was added");
    t.guest("ip6tables -F INPUT");
    served.wait_for("firewall.icmp6", "ok", "the ip6tables-nft rule was deleted");
    t.guest("iptables -D INPUT 1");
    wait_for("ok", "the iptables-nft rule was deleted");
    t.guest("iptables-legacy -A INPUT -p icmp -j DROP");
    wait_for("fail", "an iptables-legacy rule was added");
    t.guest("iptables-legacy -D INPUT 1");
    wait_for("ok", "the iptables-legacy rule was deleted");
    // Conditions over time: each change is a transition in /v1/history, oldest first, and
    // `since` is the last one.
    let h = served.get("/v1/history").expect("history");
    let changes: Vec<(String, String)> = h["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["check"] == "firewall.icmp_in")
        .map(|t| {
            (
                t["from"].as_str().unwrap_or("-").to_string(),
                t["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("-", "ok"),
        ("ok", "fail"),
        ("fail", "ok"),
        ("ok", "fail"),
        ("fail", "ok"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(changes, want, "{h}");
    let last = h["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["check"] == "firewall.icmp_in")
        .unwrap();
    let f = served.get("/v1/checks/firewall.icmp_in").unwrap();
    assert_eq!(f["since"], last["at"], "{f}");
}

// ---- Packet drops inside the guest ----

#[test]
fn firewall_ip6tables_drops_neighbour_discovery() {
    // Echo is accepted; the gateway's neighbour solicitations are not: the client cannot
    // resolve the guest once its entry is gone, so IPv6 breaks.
    let r = prove(
        Fault {
            inject: &[
                "guest: ip6tables -A INPUT -p ipv6-icmp --icmpv6-type neighbour-solicitation -j DROP",
                "client: ip -6 neigh flush dev gw0",
            ],
            ping: GUEST_IP6,
            ping_works: false,
            expect: &[("firewall.icmp6", "fail")],
            consequences: &[],
        },
        |t| assert!(t.ping(GUEST_IP), "IPv4 is unaffected"),
    );
    let s = summary(&r, "firewall.icmp6");
    assert!(
        s.contains("neighbour solicitations (NDP) from fd77::1 to fd77::10")
            && s.contains("even though echo is accepted"),
        "{s}"
    );
    assert!(
        r["firewall.icmp6"].1["remedy"][0]
            .as_str()
            .unwrap()
            .starts_with(
                "ip6tables -I INPUT 1 -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT"
            ),
        "{}",
        r["firewall.icmp6"].1
    );
}

/// What `tool -c` (iptables-nft-save) prints in the guest, parsed: the oracle.
fn saved_by(t: &Topology, tool: &str) -> Vec<ecs_diag::ruleset::iptables::Table> {
    let out = t.exec(&t.guest, &[tool, "-c"]);
    let mut p = ecs_diag::ruleset::iptables::SaveParser::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        p.feed(line).unwrap();
    }
    p.finish().unwrap()
}

/// The agent's tables equal the oracle's: tables, chains and policies by name, every rule's
/// words in order; counters no higher than the oracle's (read after them).
fn assert_same_tables(
    mut listed: Vec<ecs_diag::ruleset::iptables::Table>,
    mut oracle: Vec<ecs_diag::ruleset::iptables::Table>,
) {
    use ecs_diag::ruleset::iptables::{Chain, Table};
    for tables in [&mut listed, &mut oracle] {
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        for t in tables.iter_mut() {
            t.chains.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
    let names = |ts: &[Table]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&listed), names(&oracle), "{listed:#?} vs {oracle:#?}");
    for (a, b) in listed.iter().zip(&oracle) {
        let chains = |t: &Table| t.chains.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(chains(a), chains(b), "{} chains", a.name);
        for (ca, cb) in a.chains.iter().zip(&b.chains) {
            assert_eq!(ca.policy, cb.policy, "{} {}", a.name, ca.name);
            let args = |c: &Chain| c.rules.iter().map(|r| r.args.clone()).collect::<Vec<_>>();
            assert_eq!(args(ca), args(cb), "{} {}", a.name, ca.name);
            for (ra, rb) in ca.rules.iter().zip(&cb.rules) {
                assert!(
                    ra.packets <= rb.packets && ra.bytes <= rb.bytes,
                    "{ra:?} {rb:?}"
                );
            }
        }
    }
}

/// The iptables-nft tables are listed one by one (`iptables-nft -t TABLE -S -v`, converted to
/// save lines) and nat is read over nfnetlink: the result must be exactly what
/// `iptables-nft-save -c` prints — every chain, policy, rule word and counter — in both
/// families, on rules whose text holds what the conversion could trip on (quotes, a `-c N N`
/// inside a comment and after the target, ranges, goto, compat matches). The oracle is
/// iptables itself; the nat fact is proven against its DNAT rules.
#[test]
fn listed_tables_read_what_iptables_nft_save_prints() {
    let t = Topology::new();
    assert_healthy(&t);
    for cmd in [
        "iptables -N MY-CHAIN",
        "iptables -A INPUT -s 10.0.0.0/8 -i eth0 -p tcp --dport 22 -j ACCEPT",
        "iptables -A INPUT ! -s 10.1.2.3 -p udp --sport 1000:2000 -j REJECT --reject-with icmp-host-prohibited",
        "iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "iptables -A INPUT -m mark --mark 0x4000/0x4000 -j MY-CHAIN",
        "iptables -A INPUT -d 192.168.1.0/25 -g MY-CHAIN",
        "iptables -A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
        "iptables -t mangle -A PREROUTING -p icmp -j MARK --set-mark 7",
        "iptables -t raw -A PREROUTING -p tcp --dport 9 -j NOTRACK",
        "iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 10.77.0.10:80",
        "iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE",
        "ip6tables -A INPUT -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT",
        "ip6tables -t nat -A POSTROUTING -o eth0 -j MASQUERADE",
        "iptables -P FORWARD DROP",
    ] {
        t.guest(cmd);
    }
    // Words with spaces, quotes and counters-like text in them.
    t.g(&[
        "iptables",
        "-I",
        "INPUT",
        "4",
        "-m",
        "comment",
        "--comment",
        "say \"-c 1 2\" -j DROP",
        "-j",
        "RETURN",
    ]);
    t.g(&[
        "iptables",
        "-A",
        "MY-CHAIN",
        "-p",
        "tcp",
        "-m",
        "multiport",
        "--dports",
        "80,443",
        "-j",
        "LOG",
        "--log-prefix",
        "x -c 3 4 ",
    ]);
    // Counters that are not zero.
    assert!(t.ping(GUEST_IP));
    let snapshot: ecs_diag::snapshot::Snapshot =
        serde_json::from_slice(&t.snapshot_json()).expect("a snapshot");
    let rulesets = snapshot.firewall.ok().unwrap();
    for (family, tool, dnat) in [
        ("ipv4", "iptables-nft-save", true),
        ("ipv6", "ip6tables-nft-save", false),
    ] {
        let r = rulesets
            .iter()
            .find(|r| r.family == family && r.backend == "nft")
            .unwrap_or_else(|| panic!("no {family} ruleset: {rulesets:?}"));
        assert_eq!(r.tool, tool.trim_end_matches("-save"), "listed per table");
        let mut oracle = saved_by(&t, tool);
        oracle.retain(|t| t.name != "nat");
        assert_same_tables(r.tables.ok().unwrap().clone(), oracle);
        let nat = r.nat.expect("nat read over nfnetlink");
        assert_eq!(
            (nat.rules, nat.rewrites_destination),
            (1 + dnat as usize, dnat)
        );
    }
    // Some counter moved, and was read: the mangle rule every echo request crosses.
    let v4 = rulesets.iter().find(|r| r.family == "ipv4").unwrap();
    let mangle = v4
        .tables
        .ok()
        .unwrap()
        .iter()
        .find(|t| t.name == "mangle")
        .unwrap();
    let marked = &mangle
        .chains
        .iter()
        .find(|c| c.name == "PREROUTING")
        .unwrap()
        .rules[0];
    assert!(marked.packets >= 1, "{marked:?}");
}

/// Tables whose every rule is one of the plain matches iptables-nft writes natively are read
/// straight from nf_tables (no iptables process): what that prints must be exactly what
/// `iptables-nft-save -c` prints — chains, policies, rule words — in both families.
#[test]
fn plain_tables_read_over_nfnetlink_equal_iptables_nft_save() {
    let t = Topology::new();
    assert_healthy(&t);
    for cmd in [
        "iptables -N MY-CHAIN",
        "iptables -N OTHER",
        "iptables -A INPUT -s 10.0.0.0/8 -i eth0 -p tcp --dport 22 -j ACCEPT",
        "iptables -A INPUT -s 10.1.2.0/23 ! -d 192.168.0.1 -p icmp -j MY-CHAIN",
        "iptables -A INPUT ! -i lo -p tcp ! --dport 2222 -j OTHER",
        "iptables -A INPUT -i eth+ -p udp --sport 1000:2000 -j DROP",
        "iptables -A INPUT -p tcp --sport 5 --dport 6 -j RETURN",
        "iptables -A INPUT ! -p udp -s 203.0.113.7 -j ACCEPT",
        "iptables -A INPUT -p udp --dport 53 -g OTHER",
        "iptables -A INPUT -p icmp -j ACCEPT",
        "iptables -A MY-CHAIN",
        "iptables -A OTHER -d 10.77.0.10/32 -p tcp --dport 10:20 -j DROP",
        "iptables -A OUTPUT -o eth0 -p tcp --sport 1 -j ACCEPT",
        "iptables -P FORWARD DROP",
        "iptables -t raw -A PREROUTING -s 198.51.100.0/24 -j DROP",
        "ip6tables -A INPUT -s fd00::/8 -d ::1/128 -p ipv6-icmp -j ACCEPT",
        "ip6tables -A INPUT -s 2001:db8:18::/48 -p tcp --dport 443 -j DROP",
    ] {
        t.guest(cmd);
    }
    assert!(t.ping(GUEST_IP));
    let snapshot: ecs_diag::snapshot::Snapshot =
        serde_json::from_slice(&t.snapshot_json()).expect("a snapshot");
    let rulesets = snapshot.firewall.ok().unwrap();
    for (family, tool, native) in [
        ("ipv4", "iptables-nft-save", "filter, raw"),
        ("ipv6", "ip6tables-nft-save", "filter"),
    ] {
        let r = rulesets
            .iter()
            .find(|r| r.family == family && r.backend == "nft")
            .unwrap_or_else(|| panic!("no {family} ruleset: {rulesets:?}"));
        let why = r.not_read.as_deref().unwrap_or_default();
        assert!(
            why.starts_with(&format!("not run for {native}: read over nfnetlink")),
            "{why}"
        );
        assert_same_tables(r.tables.ok().unwrap().clone(), saved_by(&t, tool));
    }
    // The counters were read: the ping's echo requests took the icmp accept.
    let v4 = rulesets.iter().find(|r| r.family == "ipv4").unwrap();
    let filter = v4
        .tables
        .ok()
        .unwrap()
        .iter()
        .find(|t| t.name == "filter")
        .unwrap();
    let input = filter.chains.iter().find(|c| c.name == "INPUT").unwrap();
    let icmp = input
        .rules
        .iter()
        .find(|r| r.args.join(" ") == "-p icmp -j ACCEPT")
        .unwrap();
    assert!(icmp.packets >= 1, "{icmp:?}");
}

/// A table whose dump runs to dozens of datagrams (3,000 rules) is received on a second thread
/// while the first reads it: the result must still be exactly what `iptables-nft-save -c`
/// prints, rule for rule in order, and the drop after the 3,000 rules is found against the
/// real ping, by its position.
#[test]
fn a_long_table_read_over_nfnetlink_on_two_threads_equals_iptables_nft_save() {
    let t = Topology::new();
    assert_healthy(&t);
    let mut rules =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for i in 0..3000 {
        rules += &format!(
            "-A INPUT -s 198.18.{}.{}/32 -p tcp -m tcp --dport 9 -j DROP\n",
            i / 256,
            i % 256
        );
    }
    rules += "-A INPUT -p icmp -j DROP\nCOMMIT\n";
    let file = t.dir.path().join("long.rules");
    std::fs::write(&file, rules).unwrap();
    t.g(&[
        "sh",
        "-c",
        &format!("iptables-nft-restore < {}", file.display()),
    ]);
    assert!(!t.ping(GUEST_IP));
    let r = t.diagnose(None);
    assert_eq!(r["firewall.icmp_in"].0, "fail", "{}", show(&r));
    let s = summary(&r, "firewall.icmp_in");
    assert!(
        s.contains("rule 3001 of filter INPUT") && s.contains("-p icmp -j DROP"),
        "{s}"
    );
    let snapshot: ecs_diag::snapshot::Snapshot =
        serde_json::from_slice(&t.snapshot_json()).expect("a snapshot");
    let rulesets = snapshot.firewall.ok().unwrap();
    let v4 = rulesets
        .iter()
        .find(|r| r.family == "ipv4" && r.backend == "nft")
        .unwrap_or_else(|| panic!("no ipv4 ruleset: {rulesets:?}"));
    let why = v4.not_read.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("not run for filter: read over nfnetlink"),
        "{why}"
    );
    let tables = v4.tables.ok().unwrap().clone();
    assert_eq!(
        tables[0]
            .chains
            .iter()
            .map(|c| c.rules.len())
            .sum::<usize>(),
        3001
    );
    assert_same_tables(tables, saved_by(&t, "iptables-nft-save"));
}

/// A drop read over nfnetlink is judged like one read by iptables, against the real ping.
#[test]
fn firewall_plain_drop_read_over_nfnetlink() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &["iptables -A INPUT -s 198.18.0.0/16 -p icmp -j DROP"],
    );
    let s = summary(&r, "firewall.icmp_in");
    assert!(
        s.contains("rule 1 of filter INPUT") && s.contains("-s 198.18.0.0/16 -p icmp -j DROP"),
        "{s}"
    );
    let rs = &r["firewall.icmp_in"].1["evidence"]["rulesets"][0];
    assert!(
        rs["not_read"]
            .as_str()
            .unwrap_or_default()
            .contains("over nfnetlink"),
        "{rs}"
    );
    assert!(rs["decided_by"]["packets"].as_u64().unwrap() >= 3, "{rs}");
}

/// A corpus of native nftables rules in the shapes nft prints back plainly, in all three
/// families the reader takes; `nft -f` syntax.
const NATIVE_CORPUS: &str = r#"
table inet corpus {
    chain input {
        type filter hook forward priority -5; policy accept;
        tcp dport 22 accept
        tcp dport != 22 counter drop
        udp sport 53 udp dport 1024-65535 accept
        tcp dport { 22, 80, 443, 8080, 3306, 5432 } accept
        tcp dport { 1000-2000, 3000, 4000-4001 } drop
        tcp dport != { 22, 80 } drop
        tcp dport != 1000-2000 drop
        tcp dport 22 tcp sport 1 accept
        udp sport 1 udp dport 2 accept
        ip saddr 10.0.0.0/8 drop
        ip saddr 10.1.2.0/23 ip daddr 192.168.1.1 drop
        ip6 saddr 2001:db8::/32 drop
        ip6 saddr != fe80::/10 drop
        ip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 1.2.3.4, 5.6.7.8-5.6.7.20 } drop
        ip saddr != { 10.0.0.0/8, 1.1.1.1 } drop
        ip6 saddr { ::1, 2001:db8::/48, fe80::1-fe80::5 } drop
        icmp type echo-request drop
        icmp type { echo-request, echo-reply, destination-unreachable, 42 } accept
        icmpv6 type { echo-request, nd-neighbor-solicit, mld-listener-query, mld2-listener-report } accept
        icmpv6 type 200 accept
        ct state established,related accept
        ct state invalid drop
        ct state != established accept
        ct state { established, related, new } accept
        ct status dnat accept
        ct status != dnat accept
        meta l4proto { tcp, udp } accept
        meta l4proto ipv6-icmp accept
        meta nfproto ipv4 meta l4proto icmp accept
        meta nfproto ipv6 meta l4proto udp udp dport 53 accept
        meta nfproto ipv4 tcp dport 22 accept
        iifname "eth0" accept
        iifname "eth*" accept
        oifname != "lo" drop
        iifname { "eth0", "lo", "docker0" } accept
        meta nfproto ipv6 fib saddr . mark . iif oif missing drop
        fib saddr . iif oif missing drop
        ip saddr 1.2.3.4 reject with icmp host-prohibited
        ip6 saddr ::1 reject with icmpv6 admin-prohibited
        udp dport { 1-100, 200-300 } counter reject
        ip daddr 10.77.0.10 tcp dport 80 counter accept
        reject with icmpx admin-prohibited
        jump other
        goto other
        continue
    }
    chain other {
        return
    }
}
table ip corpus4 {
    chain output {
        type filter hook output priority 0; policy accept;
        ip saddr 10.0.0.0/8 icmp type echo-request drop
        ip daddr 10.0.0.1 reject with icmp port-unreachable
        ip saddr 1.2.3.4 tcp sport 1 tcp dport 2 counter accept
        iifname "eth0" ip saddr { 1.2.3.0/24 } accept
        udp dport { 53, 123 } accept
    }
}
table ip6 corpus6 {
    chain forward {
        type filter hook forward priority 0; policy drop;
        ip6 saddr 2001:db8::1 tcp dport 22 accept
        icmpv6 type { echo-request, echo-reply } accept
        ip6 saddr fe80::/10 ip6 daddr ff02::1 accept
        reject with icmpv6 addr-unreachable
    }
}
table inet mixed {
    chain input {
        type filter hook input priority 5; policy accept;
        tcp dport 22 accept
        tcp dport 23 log prefix "telnet " drop
    }
}
table inet bound {
    chain input {
        type filter hook input priority 6; policy accept;
        tcp dport 2222 jump { ip saddr 192.0.2.99 drop; }
    }
}
"#;

/// Native nftables tables are read over nfnetlink where every rule is one the reader prints
/// back: the result must be what `nft -j list table` gives (parsed as the agent parses nft's
/// own output) — every chain, hook, priority, policy, rule handle and statement — for
/// firewalld's default zone (as firewalld 1.3 writes it) and a corpus of plain rules in the
/// inet, ip and ip6 families. A table with one rule outside those shapes (`log`, or a chain
/// bound to a rule) is read by nft instead. The verdict stands against the real ping: firewalld's zone rejects echo.
#[test]
fn native_tables_read_over_nfnetlink_equal_nft_json() {
    let t = Topology::new();
    assert_healthy(&t);
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../agent/src/ruleset/fixtures/nft-firewalld.json"
    );
    t.g(&["nft", "-j", "-f", fixture]);
    let corpus = t.dir.path().join("corpus.nft");
    std::fs::write(&corpus, NATIVE_CORPUS).unwrap();
    t.g(&["nft", "-f", corpus.to_str().unwrap()]);
    assert!(
        !t.ping(GUEST_IP),
        "ground truth: firewalld's zone rejects echo"
    );

    let native = t.native_nft();
    let mut natively = native.read_natively.clone();
    natively.sort();
    assert_eq!(
        natively,
        ["inet corpus", "inet firewalld", "ip corpus4", "ip6 corpus6"]
    );
    for (family, name) in [
        ("inet", "firewalld"),
        ("inet", "corpus"),
        ("ip", "corpus4"),
        ("ip6", "corpus6"),
        ("inet", "mixed"),
        ("inet", "bound"),
    ] {
        let ours = native
            .tables
            .iter()
            .find(|t| t.family == family && t.name == name)
            .unwrap_or_else(|| panic!("{family} {name} not read"));
        assert_same_nft_table(&t, ours);
    }

    let r = t.diagnose(None);
    assert_eq!(r["firewall.icmp_in"].0, "fail", "{}", show(&r));
    let s = summary(&r, "firewall.icmp_in");
    assert!(
        s.contains("filter_IN_public_deny") && s.contains("admin-prohibited"),
        "{s}"
    );
    let rs = &r["firewall.icmp_in"].1["evidence"]["rulesets"];
    let nft = rs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["backend"] == "native")
        .unwrap();
    assert!(
        nft["not_read"]
            .as_str()
            .unwrap_or_default()
            .contains("read over nfnetlink"),
        "{nft}"
    );
}
