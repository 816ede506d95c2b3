//! `/proc/net/{snmp,snmp6,tcp,udp}`, `/proc/PID/{stat,status}` and `skb:kfree_skb` trace
//! lines, and the packets that come off the network: the ICMP answers to `trace`'s probes and
//! DNS replies, and the nf_tables rule expressions iptables_nft and nftables print (with an
//! anonymous set made of the same bytes): clear errors, never panics.
#![no_main]
use ecs_diag::sources::{dns, iptables_nft, kfree_skb, load, nftables, probes, snmp, sockets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = load::parse_pid_stat(data);
    let _ = iptables_nft::print_rule(data, false);
    let _ = iptables_nft::print_rule(data, true);
    let mut sets = std::collections::HashMap::new();
    sets.insert(
        "__set0".to_string(),
        nftables::AnonymousSet {
            interval: data.first().is_some_and(|b| b & 1 == 1),
            elements: data
                .chunks(4)
                .map(|c| (c.to_vec(), c[0] & 2 == 2))
                .collect(),
        },
    );
    for family in [1, 2, 10] {
        let _ = nftables::rule_json(data, family, &sets);
    }
    let _ = probes::parse_icmp(data);
    if let Ok(name) = dns::Name::from_ascii("www.example.com.") {
        for kind in [dns::RecordType::A, dns::RecordType::AAAA] {
            let id = data
                .get(..2)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            let _ = dns::answer_of(data, id, &name, kind);
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = snmp::icmp_from(text, Some(text), 0);
    let _ = snmp::parse_uptime(text);
    let _ = sockets::parse_table(text, "tcp");
    let _ = sockets::parse_table(text, "udp");
    let _ = load::parse_vm_swap(text);
    let _ = kfree_skb::parse_line(text);
    let _ = kfree_skb::parse_lost(text);
});
