//! Faults judged by route.default, route.reply.

use ecs_diag_matrix::matrix::*;

#[test]
fn default_route_missing() {
    prove_case(Fault {
        inject: &["guest: ip route del default"],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("route.default", "fail"), ("route.reply", "fail")],
        consequences: &[],
    });
}

#[test]
fn default_route_via_wrong_gateway() {
    let r = prove_case(Fault {
        inject: &["guest: ip route replace default via 10.77.0.254 dev eth0"],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("route.default", "fail")],
        consequences: &["neigh.gateway"],
    });
    assert!(r["route.default"].1["summary"]
        .as_str()
        .unwrap()
        .contains("10.77.0.254"));
}

#[test]
fn blackhole_route_captures_replies() {
    let r = prove_case(Fault {
        inject: &["guest: ip route add blackhole 198.18.0.0/16"],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("route.default", "fail"), ("route.reply", "fail")],
        consequences: &[],
    });
    assert!(r["route.default"].1["summary"]
        .as_str()
        .unwrap()
        .contains("blackhole 198.18.0.0/16"));
}

#[test]
fn unreachable_route_in_a_policy_table_captures_replies() {
    prove_case(Fault {
        inject: &[
            "guest: ip route add unreachable 198.18.0.2/32 table 100",
            "guest: ip rule add to 198.18.0.0/16 table 100 priority 100",
        ],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("route.default", "fail"), ("route.reply", "fail")],
        consequences: &[],
    });
}
