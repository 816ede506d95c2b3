//! `iptables-save` / `ipset save` text: parsing never panics, and whatever parses can be walked.
#![no_main]
use ecs_diag::ruleset::eval::{evaluate_with_sets, Packet, L4};
use ecs_diag::ruleset::{ipset, iptables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sets = ipset::parse_save(text).unwrap_or_default();
    if let Ok(tables) = iptables::parse_save(text) {
        let local = vec!["10.0.0.5".parse().unwrap()];
        for inbound in [true, false] {
            let p = Packet::icmp("192.0.2.1".parse().unwrap(), "10.0.0.5".parse().unwrap(), 8, inbound, "eth0", local.clone());
            let _ = evaluate_with_sets(&tables, &sets, &p);
        }
        let p = Packet::connect("192.0.2.1".parse().unwrap(), "10.0.0.5".parse().unwrap(), L4::Tcp, 22, "eth0", local);
        let _ = evaluate_with_sets(&tables, &sets, &p);
    }
});
