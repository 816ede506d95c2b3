//! Reads the listening sockets — TCP sockets in LISTEN and unconnected UDP sockets, with the
//! address they are bound to: the services a client might be trying to reach. Asked of
//! NETLINK_SOCK_DIAG with a state filter (as `ss -l` does), because `/proc/net/tcp` walks every
//! connection bucket (milliseconds per read on large-memory hosts); `/proc/net` is the fallback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::snapshot::Gathered;

pub use crate::snapshot::Listener;

/// The kernel prints each 32-bit word of the (network-order) address as a host-order integer
/// in hex; on the little-endian machines ECS runs, its bytes come back with `to_le_bytes`.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    // Hex digits only: the slicing below is by bytes (a multi-byte character once panicked it).
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
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

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
const TCP_CLOSE: u32 = 7;

/// One socket as sock_diag tells it: local and remote address and port.
#[derive(Debug, Clone, Copy)]
struct DiagSocket {
    local: IpAddr,
    sport: u16,
    remote: IpAddr,
    dport: u16,
}

/// One sock_diag dump: sockets of `family`/`protocol` in the `states` bitmask, as listeners.
fn diag_dump(
    sock: &mut netlink_sys::Socket,
    family: u8,
    protocol: u8,
    states: u32,
) -> Result<Vec<Listener>, String> {
    let proto = if protocol == 6 { "tcp" } else { "udp" };
    Ok(diag_sockets(sock, family, protocol, states)?
        .into_iter()
        .map(|d| Listener {
            proto: proto.to_string(),
            address: d.local,
            port: d.sport,
        })
        .collect())
}

const TCP_SYN_SENT: u32 = 2;

/// Outbound TCP connections to port 25 still waiting for an answer (SYN_SENT): a mail sender
/// the platform's default block of outbound TCP 25 is stopping. `local → remote:25` for each.
/// Dumping SYN_SENT walks every bucket of the kernel's connection hash (262,144 on a 24 GiB
/// host: about a millisecond per family), so a family is asked only when `sockstat` counts
/// more of its TCP sockets than `listeners` has listening ones: with none beyond the
/// listeners (an instance nobody can reach has no sessions), no socket can be connecting.
pub fn smtp_attempts(
    proc_root: &Path,
    listeners: &Gathered<Vec<Listener>>,
) -> Gathered<Vec<String>> {
    let sockstat = |file: &str| std::fs::read_to_string(proc_root.join("net").join(file)).ok();
    let mut out = Vec::new();
    let mut sock = None;
    for (family, file, label) in [(2u8, "sockstat", "TCP:"), (10, "sockstat6", "TCP6:")] {
        if !may_be_connecting(sockstat(file).as_deref(), label, listeners, family == 2) {
            continue;
        }
        let asked = match &mut sock {
            Some(sock) => diag_sockets(sock, family, 6, 1 << TCP_SYN_SENT),
            None => diag_socket()
                .and_then(|s| diag_sockets(sock.insert(s), family, 6, 1 << TCP_SYN_SENT)),
        };
        match asked {
            Ok(all) => out.extend(all.into_iter().filter(|d| d.dport == 25).map(|d| {
                let show = |a: IpAddr, p: u16| match a {
                    IpAddr::V4(a) => format!("{a}:{p}"),
                    IpAddr::V6(a) => format!("[{a}]:{p}"),
                };
                format!(
                    "{} → {} (SYN_SENT)",
                    show(d.local, d.sport),
                    show(d.remote, d.dport)
                )
            })),
            Err(e) => return Gathered::Failed(e),
        }
    }
    out.sort();
    out.dedup();
    Gathered::Ok(out)
}

/// Whether a family may have a TCP socket that is not listening: its `sockstat` `inuse` count
/// (every TCP socket of that family in the connection or listening hash; not time-wait, not
/// merely bound) exceeds its listening sockets. Unreadable or unparsable: it may.
fn may_be_connecting(
    sockstat: Option<&str>,
    label: &str,
    listeners: &Gathered<Vec<Listener>>,
    v4: bool,
) -> bool {
    let Gathered::Ok(listening) = listeners else {
        return true;
    };
    let listening = listening
        .iter()
        .filter(|l| l.proto == "tcp" && l.address.is_ipv4() == v4)
        .count();
    let in_use = sockstat.and_then(|text| {
        let line = text.lines().find(|l| l.starts_with(label))?;
        let mut words = line.split_whitespace();
        words.find(|w| *w == "inuse")?;
        words.next()?.parse::<usize>().ok()
    });
    in_use.is_none_or(|n| n > listening)
}

/// A sock_diag socket: its dumps are asked one after another, each read to its end.
fn diag_socket() -> Result<netlink_sys::Socket, String> {
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};
    let mut sock = Socket::new(NETLINK_SOCK_DIAG).map_err(|e| format!("sock_diag socket: {e}"))?;
    sock.bind_auto()
        .map_err(|e| format!("sock_diag bind: {e}"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| format!("sock_diag connect: {e}"))?;
    Ok(sock)
}

/// One sock_diag dump on `sock`: sockets of `family`/`protocol` in the `states` bitmask.
fn diag_sockets(
    sock: &mut netlink_sys::Socket,
    family: u8,
    protocol: u8,
    states: u32,
) -> Result<Vec<DiagSocket>, String> {
    // nlmsghdr (16) + inet_diag_req_v2 (56): family, protocol, ext, pad, states, sockid (48).
    let mut req = Vec::with_capacity(72);
    req.extend_from_slice(&72u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(1u16 | 0x300).to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
    req.extend_from_slice(&[0; 8]);
    req.extend_from_slice(&[family, protocol, 0, 0]);
    req.extend_from_slice(&states.to_ne_bytes());
    req.extend_from_slice(&[0; 48]);
    sock.send(&req, 0)
        .map_err(|e| format!("sock_diag send: {e}"))?;
    let mut out = Vec::new();
    super::nfnetlink::with_recv_buffer(|buf| loop {
        buf.clear();
        sock.recv(buf, 0)
            .map_err(|e| format!("sock_diag recv: {e}"))?;
        for (ty, msg) in super::nfnetlink::messages(buf).map_err(|e| format!("sock_diag: {e}"))? {
            match ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let errno = super::nfnetlink::errno_of(msg);
                    return Err(format!(
                        "sock_diag: {}",
                        std::io::Error::from_raw_os_error(errno)
                    ));
                }
                // inet_diag_msg: family, state, timer, retrans, then sockid: sport (be16),
                // dport (be16), src (16 bytes), dst (16 bytes), ...
                _ if msg.len() >= 40 => {
                    let addr = |at: usize| {
                        if msg[0] == 10 {
                            let mut a = [0u8; 16];
                            a.copy_from_slice(&msg[at..at + 16]);
                            IpAddr::V6(Ipv6Addr::from(a))
                        } else {
                            IpAddr::V4(Ipv4Addr::new(
                                msg[at],
                                msg[at + 1],
                                msg[at + 2],
                                msg[at + 3],
                            ))
                        }
                    };
                    out.push(DiagSocket {
                        local: addr(8),
                        sport: u16::from_be_bytes([msg[4], msg[5]]),
                        remote: addr(24),
                        dport: u16::from_be_bytes([msg[6], msg[7]]),
                    });
                }
                _ => {}
            }
        }
    })
}

/// Listening TCP and unconnected UDP sockets, from sock_diag.
fn read_diag() -> Result<Vec<Listener>, String> {
    let mut all = Vec::new();
    let mut sock = diag_socket()?;
    for family in [2u8, 10] {
        all.extend(diag_dump(&mut sock, family, 6, 1 << TCP_LISTEN)?);
        // UDP: unconnected sockets (a connected one has a remote port).
        all.extend(diag_dump(&mut sock, family, 17, 1 << TCP_CLOSE)?);
    }
    Ok(all)
}

pub fn read(proc_root: &Path) -> Gathered<Vec<Listener>> {
    // The default /proc is the running kernel's: ask it over netlink. A fixture root is read
    // as files.
    if proc_root == Path::new("/proc") {
        if let Ok(mut all) = read_diag() {
            all.sort();
            all.dedup();
            return Gathered::Ok(all);
        }
    }
    read_proc(proc_root)
}

fn read_proc(proc_root: &Path) -> Gathered<Vec<Listener>> {
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
    fn sock_diag_agrees_with_proc() {
        // Both readers see the same listening sockets on this machine.
        // sock_diag dumps need no privileges, so this must answer anywhere the suite runs.
        let mut diag = read_diag().unwrap();
        diag.sort();
        diag.dedup();
        let from_proc = read_proc(Path::new("/proc"));
        let from_proc = from_proc.ok().unwrap();
        for l in from_proc.iter().filter(|l| l.proto == "tcp") {
            assert!(diag.contains(l), "{l:?} missing from sock_diag {diag:?}");
        }
    }

    /// Found by a 10-minute run of the proc_files fuzz target: a 32-byte address field with a
    /// multi-byte character was sliced inside it.
    #[test]
    fn a_non_hex_address_is_an_error_not_a_panic() {
        let line = "hdr\n0 0A0A\u{2}\0\0\u{bf}>>>>>>\0\u{8}>>>>>>>K\0\0\0>>>>:1 x 0A\n";
        assert!(parse_table(line, "tcp").is_err());
        let wide = format!("hdr\n 0: {}:0016 0:0 0A\n", "é".repeat(16));
        assert!(parse_table(&wide, "tcp").is_err());
    }

    #[test]
    fn connecting_sockets_are_looked_for_only_beyond_the_listeners() {
        let tcp = |a: &str| Listener {
            proto: "tcp".into(),
            address: a.parse().unwrap(),
            port: 22,
        };
        let udp = Listener {
            proto: "udp".into(),
            ..tcp("0.0.0.0")
        };
        let listeners = Gathered::Ok(vec![tcp("0.0.0.0"), tcp("::"), udp]);
        let stat = |n: u32| {
            format!(
                "sockets: used 9\nTCP: inuse {n} orphan 0 tw 1 alloc 4 mem 1\nUDP: inuse 1 mem 0\n"
            )
        };
        // Only the listener itself: nothing can be connecting.
        assert!(!may_be_connecting(Some(&stat(1)), "TCP:", &listeners, true));
        // One socket more than the listeners (a session, or a sender in SYN_SENT): ask.
        assert!(may_be_connecting(Some(&stat(2)), "TCP:", &listeners, true));
        // Per family: the IPv6 listener is not counted against IPv4's sockets.
        assert!(!may_be_connecting(
            Some("TCP6: inuse 1\n"),
            "TCP6:",
            &listeners,
            false
        ));
        assert!(may_be_connecting(
            Some("TCP6: inuse 2\n"),
            "TCP6:",
            &listeners,
            false
        ));
        assert!(may_be_connecting(
            Some("TCP6: inuse 1\n"),
            "TCP6:",
            &Gathered::Ok(vec![]),
            false
        ));
        // Anything not known for sure: ask.
        assert!(may_be_connecting(None, "TCP:", &listeners, true));
        assert!(may_be_connecting(
            Some("TCP: inuse x\n"),
            "TCP:",
            &listeners,
            true
        ));
        assert!(may_be_connecting(
            Some("TCP: orphan 0\n"),
            "TCP:",
            &listeners,
            true
        ));
        assert!(may_be_connecting(
            Some(&stat(0)),
            "TCP:",
            &Gathered::Failed("no".into()),
            true
        ));
        // The running kernel answers either way.
        assert!(smtp_attempts(Path::new("/proc"), &read(Path::new("/proc")))
            .ok()
            .is_ok());
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
