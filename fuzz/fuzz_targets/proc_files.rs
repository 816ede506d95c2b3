//! `/proc/net/{snmp,snmp6,tcp,udp}` and `/proc/PID/{stat,status}` contents: clear errors,
//! never panics.
#![no_main]
use ecs_diag::sources::{load, snmp, sockets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = load::parse_pid_stat(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = snmp::icmp_from(text, Some(text), 0);
    let _ = sockets::parse_table(text, "tcp");
    let _ = sockets::parse_table(text, "udp");
    let _ = load::parse_vm_swap(text);
});
