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
        // The kernel also removes IPv6 addresses from a link that goes down.
        consequences: &[
            "route.default",
            "route.reply",
            "neigh.gateway",
            "addr.primary",
        ],
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
        consequences: &["route.default", "neigh.gateway"],
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

/// A link attribute fault that stops the default ping: link.primary fails naming `attribute`,
/// and every other failure (neigh.gateway where the entry cannot exist) is its consequence.
fn attribute_case(inject: &'static [&'static str], attribute: &str) -> Report {
    let r = prove_case(Fault {
        inject,
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("link.primary", "fail")],
        // An MTU below IPv6's 1280 and a down link remove the IPv6 addresses too.
        consequences: &[
            "neigh.gateway",
            "route.default",
            "route.reply",
            "net.drops",
            "addr.primary",
        ],
    });
    let f = &r["link.primary"].1;
    assert_eq!(f["evidence"]["problems"][0]["attribute"], attribute, "{f}");
    assert!(f["caused_by"].as_array().unwrap().is_empty(), "{f}");
    for (id, (status, finding)) in &r {
        if id != "link.primary" && status == "fail" {
            assert_eq!(
                finding["caused_by"],
                serde_json::json!(["link.primary"]),
                "{id}: {finding}"
            );
        }
    }
    r
}

#[test]
fn primary_arp_off() {
    let r = attribute_case(
        &[
            "guest: ip link set eth0 arp off",
            "client: ip neigh flush all",
        ],
        "noarp",
    );
    let (status, neigh) = &r["neigh.gateway"];
    assert_eq!(status, "fail");
    assert!(
        neigh["summary"]
            .as_str()
            .unwrap()
            .contains("ARP turned off"),
        "{neigh}"
    );
}

#[test]
fn primary_enslaved_to_a_bridge() {
    let r = attribute_case(
        &[
            "guest: ip link add br0 type bridge",
            "guest: ip link set br0 up",
            "guest: ip link set eth0 master br0",
            "guest: ip neigh flush all",
            "client: ip neigh flush all",
        ],
        "controller",
    );
    let summary = summary(&r, "link.primary");
    assert!(
        summary.contains("enslaved to bridge br0") && summary.contains(GUEST_IP),
        "{summary}"
    );
    assert!(summary.contains("enslaved"));
    assert_eq!(r["neigh.gateway"].0, "fail");
}

#[test]
fn primary_blackhole_qdisc() {
    let r = attribute_case(&["guest: tc qdisc add dev eth0 root blackhole"], "qdisc");
    assert!(summary(&r, "link.primary").contains("root qdisc is blackhole"));
}

#[test]
fn primary_mtu_below_a_default_ping() {
    let r = attribute_case(&["guest: ip link set eth0 mtu 68"], "mtu");
    assert!(summary(&r, "link.primary").contains("MTU 68"));
}

#[test]
fn primary_mtu_below_the_vpc() {
    let t = Topology::new();
    assert_healthy(&t);
    t.guest("ip link set eth0 mtu 1000");
    // Ground truth: a default ping passes, a full-size one (1500 bytes) is dropped.
    assert!(t.ping(GUEST_IP));
    let big = t.exec(
        &t.client,
        &[
            "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-M", "dont", "-s", "1472",
            "-I", CLIENT, GUEST_IP,
        ],
    );
    assert!(
        !big.status.success(),
        "a 1500-byte ping passed an MTU of 1000"
    );
    let r = t.diagnose(Some(CLIENT));
    let (status, f) = &r["link.primary"];
    assert_eq!(status, "warn", "{}", show(&r));
    assert!(
        f["summary"].as_str().unwrap().contains("ping -s 1472"),
        "{f}"
    );
    assert_eq!(r["neigh.gateway"].0, "ok", "{}", show(&r));
}
