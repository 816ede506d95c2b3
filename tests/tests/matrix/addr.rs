//! Faults judged by addr.primary, addr.secondary, addr.config.

use ecs_diag_matrix::matrix::*;

#[test]
fn primary_ip_removed() {
    prove_case(Fault {
        inject: &["guest: ip addr del 10.77.0.10/24 dev eth0"],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("addr.primary", "fail")],
        consequences: &["route.default", "route.reply"],
    });
}

#[test]
fn wrong_prefix() {
    // A /16 instead of the vSwitch's /24: the gateway is still on-link, so ping works, but the
    // rest of the VPC outside the /24 is unreachable: a warning.
    let r = prove_case(Fault {
        inject: &[
            "guest: ip addr del 10.77.0.10/24 dev eth0",
            "guest: ip addr add 10.77.0.10/16 dev eth0",
            "guest: ip route replace default via 10.77.0.1 dev eth0",
        ],
        ping: GUEST_IP,
        ping_works: true,
        expect: &[("addr.primary", "warn")],
        consequences: &[],
    });
    assert!(r["addr.primary"].1["summary"]
        .as_str()
        .unwrap()
        .contains("/16"));
}

#[test]
fn static_ip_differs_from_assigned() {
    let r = prove(
        Fault {
            inject: &[],
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("addr.primary", "fail"), ("addr.config", "fail")],
            consequences: &[],
        },
        |t| {
            t.guest("ip addr del 10.77.0.10/24 dev eth0");
            t.guest("ip addr add 10.77.0.99/24 dev eth0");
            t.guest("ip route replace default via 10.77.0.1 dev eth0");
            t.write_ifcfg(
                "DEVICE=eth0\nBOOTPROTO=static\nIPADDR=10.77.0.99\nPREFIX=24\nGATEWAY=10.77.0.1\n",
            );
        },
    );
    assert!(r["addr.primary"].1["summary"]
        .as_str()
        .unwrap()
        .contains("10.77.0.99"));
}

#[test]
fn secondary_private_ip_not_configured() {
    let r = prove_case(Fault {
        inject: &["guest: ip addr del 10.77.0.11/24 dev eth0"],
        ping: SECONDARY_IP,
        ping_works: false,
        expect: &[("addr.secondary", "fail")],
        consequences: &[],
    });
    assert!(r["addr.secondary"].1["summary"]
        .as_str()
        .unwrap()
        .contains(SECONDARY_IP));
}

#[test]
fn assigned_ipv6_address_removed() {
    let r = prove(
        Fault {
            inject: &["guest: ip -6 addr del fd77::10/64 dev eth0"],
            ping: GUEST_IP6,
            ping_works: false,
            expect: &[("addr.primary", "fail")],
            consequences: &["route.default", "route.reply", "neigh.gateway"],
        },
        |t| assert!(t.ping(GUEST_IP), "IPv4 is unaffected"),
    );
    let s = summary(&r, "addr.primary");
    assert!(
        s.starts_with("eth0 lacks the assigned IPv6 address fd77::10"),
        "{s}"
    );
    for (id, (status, f)) in &r {
        if id != "addr.primary" && status == "fail" {
            assert_eq!(
                f["caused_by"],
                serde_json::json!(["addr.primary"]),
                "{id}: {f}"
            );
        }
    }
}
