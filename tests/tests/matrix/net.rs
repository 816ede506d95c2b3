//! Faults judged by net.drops.

use ecs_diag_matrix::matrix::*;

#[test]
fn qdisc_drops_everything() {
    let r = prove_case(Fault {
        inject: &["guest: tc qdisc replace dev eth0 root bfifo limit 0"],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("net.drops", "fail")],
        // Nothing leaves eth0, so ARP for the gateway fails too.
        consequences: &["neigh.gateway"],
    });
    let s = summary(&r, "net.drops");
    assert!(s.contains("bfifo") && s.contains("every packet"), "{s}");
}

/// Without `limits.bandwidth_mbps`, net.bandwidth judges against the instance type's limit the
/// metadata publishes (`instance/max-netbw-egress`, Kbit/s; `-ingress` where published).
#[test]
fn bandwidth_limit_comes_from_the_metadata() {
    let t = Topology::new();
    let windowed = |t: &Topology| {
        std::thread::scope(|scope| {
            let agent = scope.spawn(|| t.diagnose_with(Some(CLIENT), &["--window", "2"]));
            std::thread::sleep(std::time::Duration::from_millis(300));
            // 1,000-byte echoes every 0.2 s, answered: about 40 kbit/s each way.
            let out = t.exec(
                &t.client,
                &[
                    "ping", "-n", "-q", "-c", "8", "-i", "0.2", "-s", "1000", "-I", CLIENT,
                    GUEST_IP,
                ],
            );
            assert!(out.status.success(), "ground truth: the pings are answered");
            agent.join().unwrap()
        })
    };
    let r = windowed(&t);
    let (status, f) = &r["net.bandwidth"];
    assert_eq!(status, "ok", "{}", show(&r));
    assert_eq!(f["evidence"]["limit_out_mbps"], 10000.0, "{f}");
    assert!(
        f["evidence"]["limit_from"]
            .as_str()
            .unwrap()
            .starts_with("metadata instance/max-netbw-egress"),
        "{f}"
    );

    // An instance type limited to 8 kbit/s in: the same traffic is over it.
    t.set_metadata("instance/max-netbw-ingress", Some("8"));
    let r = windowed(&t);
    let (status, f) = &r["net.bandwidth"];
    assert_eq!(status, "fail", "{}", show(&r));
    let s = f["summary"].as_str().unwrap();
    assert!(
        s.contains("eth0 in") && s.contains("of the 0.008 Mbit/s limit"),
        "{s}"
    );
    assert_eq!(f["evidence"]["limit_in_mbps"], 0.008, "{f}");
}

// ---- Live attribution: `ecs-diag watch` while the client pings ----
