//! Faults judged by sysctl.icmp_echo, sysctl.icmp_echo6, sysctl.rp_filter, sysctl.icmp_ratelimit.

use ecs_diag_matrix::matrix::*;

#[test]
fn icmp_echo_ignore_all() {
    prove(
        Fault {
            inject: &[],
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("sysctl.icmp_echo", "fail")],
            consequences: &[],
        },
        |t| t.sysctl_g("net.ipv4.icmp_echo_ignore_all=1"),
    );
}

#[test]
fn strict_rp_filter_with_asymmetric_reply_path() {
    let r = prove(
        Fault {
            inject: &[],
            ping: "10.78.0.10",
            ping_works: false,
            expect: &[("sysctl.rp_filter", "fail"), ("route.reply", "warn")],
            consequences: &[],
        },
        |t| {
            t.add_asymmetric_eth1();
            t.sysctl_g("net.ipv4.conf.eth1.rp_filter=1");
        },
    );
    assert!(r["sysctl.rp_filter"].1["summary"]
        .as_str()
        .unwrap()
        .contains("eth1"));
}

#[test]
fn loose_rp_filter_control_passes() {
    // The control for the case above: the same asymmetric path with loose rp_filter pings fine
    // and the agent does not blame rp_filter.
    prove(
        Fault {
            inject: &[],
            ping: "10.78.0.10",
            ping_works: true,
            expect: &[("sysctl.rp_filter", "ok"), ("route.reply", "warn")],
            consequences: &[],
        },
        |t| {
            t.add_asymmetric_eth1();
            t.sysctl_g("net.ipv4.conf.eth1.rp_filter=2");
        },
    );
}

#[test]
fn icmp_echo6_ignore_all() {
    prove(
        Fault {
            inject: &[],
            ping: GUEST_IP,
            ping_works: true,
            expect: &[("sysctl.icmp_echo6", "fail")],
            consequences: &[],
        },
        |t| {
            assert!(
                t.ping_count("fd77::10", 3, true) > 0,
                "IPv6 ping works before the fault"
            );
            t.sysctl_g("net.ipv6.icmp.echo_ignore_all=1");
            assert_eq!(
                t.ping_count("fd77::10", 3, true),
                0,
                "ground truth: IPv6 ping fails"
            );
        },
    );
}

#[test]
fn echo_replies_rate_limited() {
    let r = prove(
        Fault {
            inject: &[],
            // After the burst the kernel's per-client budget is spent: the next pings get nothing.
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("sysctl.icmp_ratelimit", "fail")],
            consequences: &[],
        },
        |t| {
            // Echo reply (type 0) added to the mask, one reply per 10 s per client.
            t.sysctl_g("net.ipv4.icmp_ratemask=6169");
            t.sysctl_g("net.ipv4.icmp_ratelimit=10000");
            let got = t.ping_count(GUEST_IP, 20, false);
            assert!(
                got <= 10,
                "ground truth: most of 20 pings lose their reply, {got} came back"
            );
        },
    );
    assert!(r["sysctl.icmp_ratelimit"].1["summary"]
        .as_str()
        .unwrap()
        .contains("10000 ms"));
}
