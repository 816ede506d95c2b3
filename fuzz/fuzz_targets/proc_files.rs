//! `/proc/net/{snmp,snmp6,tcp,udp}`, `/proc/PID/{stat,status}` and `skb:kfree_skb` trace
//! lines: clear errors, never panics.
#![no_main]
use ecs_diag::sources::{kfree_skb, load, snmp, sockets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = load::parse_pid_stat(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = snmp::icmp_from(text, Some(text), 0);
    let _ = snmp::parse_uptime(text);
    let _ = sockets::parse_table(text, "tcp");
    let _ = sockets::parse_table(text, "udp");
    let _ = load::parse_vm_swap(text);
    let _ = kfree_skb::parse_line(text);
    let _ = kfree_skb::parse_lost(text);
});
