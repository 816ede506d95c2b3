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

#[test]
fn ipv6_default_route_missing() {
    let r = prove(
        Fault {
            inject: &["guest: ip -6 route del default"],
            ping: GUEST_IP6,
            ping_works: false,
            expect: &[("route.default", "fail"), ("route.reply", "fail")],
            consequences: &[],
        },
        |t| assert!(t.ping(GUEST_IP), "IPv4 is unaffected"),
    );
    let default = summary(&r, "route.default");
    assert!(
        default.starts_with("no IPv6 default route") && default.contains("assigned fd77::10"),
        "{default}"
    );
    assert!(
        r["route.default"].1["remedy"][0]
            .as_str()
            .unwrap()
            .starts_with("ip -6 route replace default via fd77::1 dev eth0"),
        "{}",
        r["route.default"].1
    );
    // The kernel cannot route the IPv6 reply: a consequence of the missing route, said so.
    let reply = &r["route.reply"].1;
    assert!(
        summary(&r, "route.reply").contains("from fd77::10 (eth0): network unreachable"),
        "{reply}"
    );
    assert_eq!(
        reply["caused_by"],
        serde_json::json!(["route.default"]),
        "{reply}"
    );
}
