//! Reads the listening sockets from `/proc/net/{tcp,tcp6,udp,udp6}`: TCP sockets in LISTEN and
//! unconnected UDP sockets, with the address they are bound to — the services a client might
//! be trying to reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::snapshot::Gathered;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    /// `tcp` or `udp`.
    pub proto: String,
    pub address: IpAddr,
    pub port: u16,
}

/// The kernel prints each 32-bit word of the (network-order) address as a host-order integer
/// in hex; on the little-endian machines ECS runs, its bytes come back with `to_le_bytes`.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_le_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(&hex[i * 8..i * 8 + 8])?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// Parses one `/proc/net/{tcp,udp}[6]` table; `proto` is `tcp` or `udp`.
pub fn parse_table(text: &str, proto: &str) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let bad = || format!("line {}: unexpected {proto} socket entry {line:?}", n + 1);
        let (local, remote, state) = (f[1], f[2], f[3]);
        let listening = match proto {
            "tcp" => state == "0A",
            // UDP: unconnected (state 07, no remote port).
            _ => state == "07" && remote.ends_with(":0000"),
        };
        if !listening {
            continue;
        }
        let (addr, port) = local.split_once(':').ok_or_else(bad)?;
        out.push(Listener {
            proto: proto.to_string(),
            address: parse_addr(addr).ok_or_else(bad)?,
            port: u16::from_str_radix(port, 16).map_err(|_| bad())?,
        });
    }
    Ok(out)
}

pub fn read(proc_root: &Path) -> Gathered<Vec<Listener>> {
    let mut all = Vec::new();
    for (file, proto) in [
        ("tcp", "tcp"),
        ("tcp6", "tcp"),
        ("udp", "udp"),
        ("udp6", "udp"),
    ] {
        let path = proc_root.join("net").join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse_table(&text, proto) {
                Ok(v) => all.extend(v),
                Err(e) => return Gathered::Failed(format!("{}: {e}", path.display())),
            },
            // No IPv6 on this kernel: no tcp6/udp6.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.ends_with('6') => {}
            Err(e) => return Gathered::Failed(format!("cannot read {}: {e}", path.display())),
        }
    }
    all.sort();
    all.dedup();
    Gathered::Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Saved from a 6.1 kernel.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 100 0 0 10 0
   2: 0A4D000A:0016 0200A8C0:D431 01 00000000:00000000 02:000A7B5F 00000000     0        0 1236 4 0000000000000000 20 4 29 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
   1: 000077FD000000000000000010000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98 1 0000000000000000 100 0 0 10 0
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 555 2 0000000000000000 0
  101: 0A4D000A:9C40 0101A8C0:0035 01 00000000:00000000 00:00000000 00000000     0        0 556 2 0000000000000000 0
";

    #[test]
    fn listening_sockets_only() {
        let t = parse_table(TCP, "tcp").unwrap();
        assert_eq!(t.len(), 2, "the established connection is not listening");
        assert_eq!(
            t[0],
            Listener {
                proto: "tcp".into(),
                address: "0.0.0.0".parse().unwrap(),
                port: 22
            }
        );
        assert_eq!(t[1].address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(t[1].port, 8080);
        let t6 = parse_table(TCP6, "tcp").unwrap();
        assert_eq!(t6[0].address, "::".parse::<IpAddr>().unwrap());
        assert_eq!(t6[1].address, "fd77::10".parse::<IpAddr>().unwrap());
        assert_eq!(t6[1].port, 443);
        let u = parse_table(UDP, "udp").unwrap();
        assert_eq!(
            u,
            vec![Listener {
                proto: "udp".into(),
                address: "0.0.0.0".parse().unwrap(),
                port: 68
            }]
        );
    }

    #[test]
    fn garbage_names_the_line() {
        let e = parse_table("hdr\n 0: zz:0016 00000000:0000 0A\n", "tcp").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(read(Path::new("/nonexistent"))
            .ok()
            .unwrap_err()
            .contains("/nonexistent/net/tcp"));
    }
}
