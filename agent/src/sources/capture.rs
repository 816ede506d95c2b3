//! Echo requests and replies as they cross the interfaces (for `watch`): an AF_PACKET socket
//! sees packets on the wire side of netfilter — a request seen here but not by the ICMP layer
//! was dropped inside the guest; one never seen here never reached it. A classic BPF filter in
//! the kernel passes only IPv4 ICMP echo request/reply headers, so a busy host costs nothing.
//! Needs CAP_NET_RAW.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One echo packet seen on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoPacket {
    pub ifindex: u32,
    /// Sent by this host (PACKET_OUTGOING); otherwise received.
    pub outgoing: bool,
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    /// 8 request, 0 reply.
    pub icmp_type: u8,
}

pub struct EchoCapture {
    fd: OwnedFd,
}

/// Outgoing packets reach only ETH_P_ALL sockets (the transmit tap); the filter picks IPv4.
const ETH_P_ALL: u16 = 0x0003;

/// IPv4, ICMP (protocol 1), not a later fragment, type 8 or 0: keep 64 bytes; else drop.
fn echo_filter() -> [libc::sock_filter; 12] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    [
        op(0x28, 0, 0, 0xffff_f000), // ldh [SKF_AD_PROTOCOL]  the packet's ethertype
        op(0x15, 0, 9, 0x0800),      // jeq #ETH_P_IP ? : drop
        op(0x30, 0, 0, 9),           // ldb [9]          IP protocol
        op(0x15, 0, 7, 1),           // jeq #1 ? : drop
        op(0x28, 0, 0, 6),           // ldh [6]          flags + fragment offset
        op(0x45, 5, 0, 0x1fff),      // jset #0x1fff ? drop :
        op(0xb1, 0, 0, 0),           // ldxb 4*([0]&0xf) IP header length
        op(0x50, 0, 0, 0),           // ldb [x+0]        ICMP type
        op(0x15, 1, 0, 8),           // jeq #8 ? accept :
        op(0x15, 0, 1, 0),           // jeq #0 ? accept : drop
        op(0x06, 0, 0, 64),          // accept: ret #64
        op(0x06, 0, 0, 0),           // drop: ret #0
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

/// An IPv4 header and the ICMP type after it.
pub fn parse_echo(data: &[u8], ifindex: u32, outgoing: bool) -> Option<EchoPacket> {
    let ihl = usize::from(*data.first()? & 0x0f) * 4;
    if *data.first()? >> 4 != 4 || ihl < 20 || data.get(9) != Some(&1) {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let icmp_type = *data.get(ihl)?;
    if icmp_type != 8 && icmp_type != 0 {
        return None;
    }
    Some(EchoPacket {
        ifindex,
        outgoing,
        source: addr(12)?,
        destination: addr(16)?,
        icmp_type,
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
        assert_eq!(p.source, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.destination, Ipv4Addr::new(10, 77, 0, 10));
        assert_eq!(p.icmp_type, 8);
        assert_eq!(parse_echo(&header(1, 0), 2, true).unwrap().icmp_type, 0);
        assert!(parse_echo(&header(1, 3), 2, false).is_none());
        assert!(parse_echo(&header(6, 8), 2, false).is_none());
        assert!(parse_echo(&header(1, 8)[..15], 2, false).is_none());
        assert!(parse_echo(&[], 2, false).is_none());
    }

    #[test]
    fn filter_jumps_land_inside_the_program() {
        let f = echo_filter();
        for (i, ins) in f.iter().enumerate() {
            if ins.code & 0x07 == 0x05 {
                assert!(i + 1 + (ins.jt as usize) < f.len());
                assert!(i + 1 + (ins.jf as usize) < f.len());
            }
        }
        assert_eq!(f[10].k, 64);
        assert_eq!(f[11].k, 0);
        // Every "drop" jump lands on the last instruction, every "accept" on the one before.
        assert_eq!(1 + 1 + f[1].jf as usize, 11);
        assert_eq!(3 + 1 + f[3].jf as usize, 11);
        assert_eq!(5 + 1 + f[5].jt as usize, 11);
        assert_eq!(8 + 1 + f[8].jt as usize, 10);
        assert_eq!(9 + 1 + f[9].jf as usize, 11);
    }
}
