//! Faults judged by icmp.live over a window.

use std::time::{Duration, Instant};

use ecs_diag_matrix::matrix::*;
use ecs_diag_matrix::served::Served;

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

/// A healthy box nobody has pinged since boot (a fresh namespace: fresh counters) exits 0:
/// icmp.live has nothing to judge and says so, with the counts as evidence.
#[test]
fn healthy_box_never_pinged_exits_0() {
    let t = Topology::new();
    // No ping to the guest before this check: its ICMP echo-request counter is zero. The box
    // itself has talked through its gateway, as any booted instance has (the passive
    // neigh.gateway check needs that).
    let out = t.exec(
        &t.guest,
        &["ping", "-n", "-q", "-c", "1", "-W", "2", CLIENT],
    );
    assert!(out.status.success(), "the guest reaches out");
    let report = t.diagnose(None);
    let (status, live) = &report["icmp.live"];
    assert_eq!(status, "skipped", "{}", show(&report));
    assert!(
        live["summary"].as_str().unwrap().contains("since boot"),
        "{live}"
    );
    assert_eq!(live["evidence"]["echo_requests_in"], 0, "{live}");
    // diagnose() asserts the exit code follows the worst status: everything ok or skipped is 0.
    // Only the machine's own load may warn (see machine_load_warning); nothing else.
    for (id, (st, _)) in &report {
        assert!(
            st == "ok" || st == "skipped" || machine_load_warning(id, st),
            "healthy box: {id} is {st}:
{}",
            show(&report)
        );
    }
}

/// Requests that went unanswered earlier (echo ignored, since fixed) are in the since-boot
/// counters: `check` reports them as since boot without blaming anything, and `serve` judges
/// the deltas between refreshes, not the history.
#[test]
fn fault_fixed_after_boot_is_not_blamed() {
    let t = Topology::new();
    t.sysctl_g("net.ipv4.icmp_echo_ignore_all=1");
    assert_eq!(t.ping_count(GUEST_IP, 5, false), 0, "ground truth: ignored");
    t.sysctl_g("net.ipv4.icmp_echo_ignore_all=0");
    assert!(t.ping(GUEST_IP), "ground truth: fixed");

    let report = t.diagnose(None);
    let (status, live) = &report["icmp.live"];
    assert_eq!(status, "ok", "{}", show(&report));
    let summary = live["summary"].as_str().unwrap();
    assert!(summary.starts_with("since boot"), "{summary}");
    assert!(
        live["evidence"]["echo_requests_in"].as_u64().unwrap() >= 8,
        "{live}"
    );

    let served = Served::start(&t, "");
    // The first refresh has no earlier sample (since boot, reported); later ones judge deltas.
    let first = served.wait_for("icmp.live", "ok", "start");
    assert!(
        first["summary"].as_str().unwrap().starts_with("since boot"),
        "{first}"
    );
    let later = served.wait_for("icmp.live", "skipped", "a refresh with no new requests");
    assert!(
        later["summary"].as_str().unwrap().contains("in the last"),
        "{later}"
    );
    // Pinging now: answered over the window.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        t.ping_count(GUEST_IP, 8, false);
        let v = served.get("/v1/checks/icmp.live").unwrap_or_default();
        if v["status"] == "ok" && v["summary"].as_str().unwrap_or("").contains("in the last") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "served icmp.live never saw the window answered: {v}"
        );
    }
}

// ---- Guest firewall (iptables/ip6tables, both backends) ----
