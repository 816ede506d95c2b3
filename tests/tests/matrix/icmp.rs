//! Faults judged by icmp.live over a window.

use std::time::Duration;

use ecs_diag_matrix::matrix::*;

/// `check --window`: the agent samples the counters while a real ping runs.
fn windowed_check_while_pinging(t: &Topology) -> Report {
    std::thread::scope(|scope| {
        let agent = scope.spawn(|| t.diagnose_with(Some(CLIENT), &["--window", "3"]));
        std::thread::sleep(Duration::from_millis(500));
        t.ping_count(GUEST_IP, 8, false);
        agent.join().unwrap()
    })
}

#[test]
fn icmp_live_window_sees_requests_answered_then_unanswered() {
    let t = Topology::new();
    assert_healthy(&t);
    let healthy = windowed_check_while_pinging(&t);
    assert_eq!(healthy["icmp.live"].0, "ok", "{}", show(&healthy));
    assert!(healthy["icmp.live"].1["summary"]
        .as_str()
        .unwrap()
        .contains("all were answered"));

    t.sysctl_g("net.ipv4.icmp_echo_ignore_all=1");
    let report = windowed_check_while_pinging(&t);
    assert_eq!(report["icmp.live"].0, "fail", "{}", show(&report));
    let ev = &report["icmp.live"].1["evidence"];
    assert!(ev["echo_requests_in"].as_u64().unwrap() >= 5, "{ev}");
    assert_eq!(ev["echo_replies_out"], 0);
    for (id, (status, _)) in &report {
        assert!(
            status != "fail" || id == "icmp.live" || id == "sysctl.icmp_echo",
            "unrelated check {id} failed:\n{}",
            show(&report)
        );
    }
}

// ---- Guest firewall (iptables/ip6tables, both backends) ----
