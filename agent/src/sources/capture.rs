//! Echo requests and replies as they cross the interfaces (for `watch`): an AF_PACKET socket
//! sees packets on the wire side of netfilter — a request seen here but not by the ICMP layer
//! was dropped inside the guest; one never seen here never reached it. A classic BPF filter in
//! the kernel passes only IPv4 ICMP echo request/reply headers, so a busy host costs nothing.
//! Needs CAP_NET_RAW.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One echo packet seen on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoPacket {
    pub ifindex: u32,
    /// Sent by this host (PACKET_OUTGOING); otherwise received.
    pub outgoing: bool,
    pub source: IpAddr,
    pub destination: IpAddr,
    pub request: bool,
}

pub struct EchoCapture {
    fd: OwnedFd,
}

/// Outgoing packets reach only ETH_P_ALL sockets (the transmit tap); the filter picks IPv4.
const ETH_P_ALL: u16 = 0x0003;

/// IPv4 ICMP echo (protocol 1, not a later fragment, type 8 or 0) or IPv6 ICMPv6 echo (next
/// header 58 right after the fixed header, type 128 or 129): keep 64 bytes; else drop.
fn echo_filter() -> [libc::sock_filter; 18] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    [
        op(0x28, 0, 0, 0xffff_f000), // 0  ldh [SKF_AD_PROTOCOL]  the packet's ethertype
        op(0x15, 0, 8, 0x0800),      // 1  jeq #ETH_P_IP ? : ipv6 (10)
        op(0x30, 0, 0, 9),           // 2  ldb [9]          IP protocol
        op(0x15, 0, 13, 1),          // 3  jeq #1 ? : drop (17)
        op(0x28, 0, 0, 6),           // 4  ldh [6]          flags + fragment offset
        op(0x45, 11, 0, 0x1fff),     // 5  jset #0x1fff ? drop (17) :
        op(0xb1, 0, 0, 0),           // 6  ldxb 4*([0]&0xf) IP header length
        op(0x50, 0, 0, 0),           // 7  ldb [x+0]        ICMP type
        op(0x15, 7, 0, 8),           // 8  jeq #8 ? accept (16) :
        op(0x15, 6, 7, 0),           // 9  jeq #0 ? accept (16) : drop (17)
        op(0x15, 0, 6, 0x86dd),      // 10 jeq #ETH_P_IPV6 ? : drop (17)
        op(0x30, 0, 0, 6),           // 11 ldb [6]          next header
        op(0x15, 0, 4, 58),          // 12 jeq #58 ? : drop (17)
        op(0x30, 0, 0, 40),          // 13 ldb [40]         ICMPv6 type
        op(0x15, 1, 0, 128),         // 14 jeq #128 ? accept (16) :
        op(0x15, 0, 1, 129),         // 15 jeq #129 ? accept (16) : drop (17)
        op(0x06, 0, 0, 64),          // 16 accept: ret #64
        op(0x06, 0, 0, 0),           // 17 drop: ret #0
    ]
}

impl EchoCapture {
    /// Opens the socket on every interface of this network namespace.
    pub fn open() -> Result<EchoCapture, String> {
        // SAFETY: plain socket(2); the result is checked before it is wrapped.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if raw < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => format!(
                    "cannot open a packet socket ({e}): run as root (CAP_NET_RAW) to see echo requests on the interfaces"
                ),
                _ => format!("cannot open a packet socket: {e}"),
            });
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let filter = echo_filter();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `filter`, both alive for the call; the kernel copies them.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(format!(
                "cannot attach the echo filter: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(EchoCapture { fd })
    }

    /// Every echo packet queued since the last call (never blocks).
    pub fn drain(&self) -> Vec<EchoPacket> {
        let mut out = Vec::new();
        let mut buf = [0u8; 128];
        loop {
            // SAFETY: an all-zero sockaddr_ll is valid; recvfrom fills at most `len` bytes.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buffers are valid for the sizes passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut addr as *mut _ as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n <= 0 {
                break;
            }
            let data = &buf[..n as usize];
            if let Some(p) = parse_echo(
                data,
                addr.sll_ifindex as u32,
                addr.sll_pkttype == libc::PACKET_OUTGOING,
            ) {
                out.push(p);
            }
        }
        out
    }
}

/// An IPv4 or IPv6 header and the echo type after it (IPv6: no extension headers, as the
/// filter passes).
pub fn parse_echo(data: &[u8], ifindex: u32, outgoing: bool) -> Option<EchoPacket> {
    let (source, destination, request) = match *data.first()? >> 4 {
        4 => {
            let ihl = usize::from(*data.first()? & 0x0f) * 4;
            if ihl < 20 || data.get(9) != Some(&1) {
                return None;
            }
            let addr = |at: usize| -> Option<IpAddr> {
                let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            };
            let request = match *data.get(ihl)? {
                8 => true,
                0 => false,
                _ => return None,
            };
            (addr(12)?, addr(16)?, request)
        }
        6 => {
            if data.get(6) != Some(&58) {
                return None;
            }
            let addr = |at: usize| -> Option<IpAddr> {
                let b: [u8; 16] = data.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            };
            let request = match *data.get(40)? {
                128 => true,
                129 => false,
                _ => return None,
            };
            (addr(8)?, addr(24)?, request)
        }
        _ => return None,
    };
    Some(EchoPacket {
        ifindex,
        outgoing,
        source,
        destination,
        request,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(proto: u8, icmp_type: u8) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, proto, 0, 0];
        h.extend([198, 18, 0, 2, 10, 77, 0, 10]);
        h.extend([icmp_type, 0, 0, 0]);
        h
    }

    #[test]
    fn parses_echo_headers_only() {
        let p = parse_echo(&header(1, 8), 2, false).unwrap();
        assert_eq!(p.source, "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(p.destination, "10.77.0.10".parse::<IpAddr>().unwrap());
        assert!(p.request);
        assert!(!parse_echo(&header(1, 0), 2, true).unwrap().request);
        assert!(parse_echo(&header(1, 3), 2, false).is_none());
        assert!(parse_echo(&header(6, 8), 2, false).is_none());
        assert!(parse_echo(&header(1, 8)[..15], 2, false).is_none());
        assert!(parse_echo(&[], 2, false).is_none());
    }

    fn header6(next: u8, icmp_type: u8) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, 8, next, 64];
        h.extend("fd77::2".parse::<Ipv6Addr>().unwrap().octets());
        h.extend("fd77::10".parse::<Ipv6Addr>().unwrap().octets());
        h.extend([icmp_type, 0, 0, 0]);
        h
    }

    #[test]
    fn parses_icmpv6_echo() {
        let p = parse_echo(&header6(58, 128), 2, false).unwrap();
        assert_eq!(p.source, "fd77::2".parse::<IpAddr>().unwrap());
        assert_eq!(p.destination, "fd77::10".parse::<IpAddr>().unwrap());
        assert!(p.request);
        assert!(!parse_echo(&header6(58, 129), 2, true).unwrap().request);
        // Neighbour discovery and other ICMPv6 types, and other next headers, are not echo.
        assert!(parse_echo(&header6(58, 135), 2, false).is_none());
        assert!(parse_echo(&header6(6, 128), 2, false).is_none());
    }

    #[test]
    fn filter_jumps_land_inside_the_program() {
        let f = echo_filter();
        let (accept, drop) = (f.len() - 2, f.len() - 1);
        assert_eq!((f[accept].code, f[accept].k), (0x06, 64));
        assert_eq!((f[drop].code, f[drop].k), (0x06, 0));
        let target = |i: usize, off: u8| i + 1 + off as usize;
        for (i, ins) in f.iter().enumerate() {
            if ins.code & 0x07 == 0x05 {
                assert!(
                    target(i, ins.jt) < f.len() && target(i, ins.jf) < f.len(),
                    "{i}"
                );
            }
        }
        // Non-IPv4 goes to the IPv6 branch; every failed test lands on drop, every echo on accept.
        assert_eq!(target(1, f[1].jf), 10);
        for (i, on_false) in [(3, true), (10, true), (12, true), (15, true), (9, true)] {
            assert!(on_false && target(i, f[i].jf) == drop, "{i}");
        }
        assert_eq!(target(5, f[5].jt), drop);
        for i in [8, 9, 14, 15] {
            assert_eq!(target(i, f[i].jt), accept, "{i}");
        }
    }
}
