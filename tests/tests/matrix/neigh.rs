//! Faults judged by neigh.gateway.

use ecs_diag_matrix::matrix::*;

#[test]
fn gateway_neighbour_failed() {
    let t_expect = Fault {
        inject: &[],
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("neigh.gateway", "fail")],
        consequences: &[],
    };
    let t = Topology::new();
    assert_healthy(&t);
    // The gateway stops answering ARP; the client keeps a static entry for the guest so it
    // never needs to ask (and so never teaches the guest its address).
    let mac = String::from_utf8_lossy(
        &t.exec(&t.guest, &["cat", "/sys/class/net/eth0/address"])
            .stdout,
    )
    .trim()
    .to_string();
    t.sysctl_c("net.ipv4.conf.gw0.arp_ignore=8");
    t.c(&[
        "ip",
        "neigh",
        "replace",
        GUEST_IP,
        "lladdr",
        &mac,
        "dev",
        "gw0",
        "nud",
        "permanent",
    ]);
    t.guest("ip neigh flush dev eth0");
    assert!(
        !t.ping(t_expect.ping),
        "ground truth: ping fails when the gateway does not answer ARP"
    );
    assert!(
        t.wait_neighbour(GATEWAY, "FAILED"),
        "the guest's gateway entry reaches FAILED"
    );
    let report = t.diagnose(Some(CLIENT));
    assert_eq!(report["neigh.gateway"].0, "fail", "{}", show(&report));
    assert!(report["neigh.gateway"].1["summary"]
        .as_str()
        .unwrap()
        .contains("FAILED"));
    for (id, (status, _)) in &report {
        assert!(
            status != "fail" || id == "neigh.gateway",
            "unrelated check {id} failed:\n{}",
            show(&report)
        );
    }
}
