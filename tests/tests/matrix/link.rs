//! Faults judged by link.primary, link.secondary.

use ecs_diag_matrix::matrix::*;

#[test]
fn healthy_guest_is_all_ok() {
    let t = Topology::new();
    assert_healthy(&t);
}

#[test]
fn primary_admin_down() {
    let r = prove_case(Fault {
        inject: &["guest: ip link set eth0 down"],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("link.primary", "fail")],
        consequences: &["route.default", "route.reply"],
    });
    // The kernel dropped the routes through eth0: those failures are the link's, and say so,
    // with the link's remedy first (not "add a route").
    assert!(r["link.primary"].1["caused_by"]
        .as_array()
        .unwrap()
        .is_empty());
    for id in ["route.default", "route.reply"] {
        let f = &r[id].1;
        assert_eq!(
            f["caused_by"],
            serde_json::json!(["link.primary"]),
            "{id}: {f}"
        );
        assert!(
            f["remedy"][0]
                .as_str()
                .unwrap()
                .starts_with("first fix link.primary: ip link set dev eth0 up"),
            "{id}: {f}"
        );
    }
}

#[test]
fn primary_no_carrier() {
    let r = prove_case(Fault {
        inject: &["client: ip link set gw0 down"],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("link.primary", "fail")],
        consequences: &["route.default"],
    });
    assert!(r["link.primary"].1["summary"]
        .as_str()
        .unwrap()
        .contains("no carrier"));
}

#[test]
fn secondary_eni_without_interface() {
    let r = prove(
        Fault {
            inject: &[],
            ping: "10.77.2.10",
            ping_works: false,
            expect: &[("link.secondary", "fail")],
            consequences: &[],
        },
        |t| {
            // The cloud attached a second ENI (and routes its IP to this instance) but the OS
            // has no interface for it.
            t.write_metadata(true);
            t.client("ip route add 10.77.2.0/24 dev gw0");
        },
    );
    assert!(r["link.secondary"].1["summary"]
        .as_str()
        .unwrap()
        .contains("eni-matrix1"));
}
