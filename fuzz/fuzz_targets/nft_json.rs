//! `nft -j` JSON: parsing never panics, and whatever parses can be walked and rendered.
#![no_main]
use ecs_diag::ruleset::eval::Packet;
use ecs_diag::ruleset::nft;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = nft::parse_table_list(text);
    if let Ok(rs) = nft::parse_json(text) {
        for t in &rs.tables {
            for c in &t.chains {
                for r in &c.rules {
                    let _ = nft::render(&r.expr);
                }
            }
        }
        for (src, dst) in [("192.0.2.1", "10.0.0.5"), ("2001:db8::1", "fd00::5")] {
            let p = Packet::icmp(src.parse().unwrap(), dst.parse().unwrap(), 8, true, "eth0", vec![]);
            let _ = nft::evaluate(&rs, &p);
        }
    }
});
