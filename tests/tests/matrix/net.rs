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

// ---- Live attribution: `ecs-diag watch` while the client pings ----
