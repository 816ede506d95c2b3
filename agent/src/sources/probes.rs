//! Active path probes for `ecs-diag trace` (never `check` or `serve`): IPv4 packets towards the
//! client with increasing TTL — ICMP echo requests, UDP datagrams or TCP SYNs — and the ICMP
//! answers read from a raw socket (time exceeded from each router, echo reply / port
//! unreachable / SYN-ACK or RST from the destination). A probe is matched to its answer by the
//! ICMP id and sequence, or by the source port the router quotes back. Needs CAP_NET_RAW.
//! Bounded: `rounds × max_hops` probes, each round waits at most `wait`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol as SockProto, SockAddr, Socket, Type};

/// What is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Icmp,
    Udp,
    Tcp,
}

/// One probe and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub round: u32,
    pub ttl: u8,
    /// Who answered (a router's time exceeded, or the destination).
    pub from: Option<Ipv4Addr>,
    pub rtt_ms: Option<f64>,
    /// The destination itself answered.
    pub reached: bool,
}

/// How to probe.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dest: Ipv4Addr,
    pub protocol: Protocol,
    /// UDP: the first destination port (traceroute's 33434, one more per probe); TCP: the port.
    pub port: Option<u16>,
    pub rounds: u32,
    pub max_hops: u8,
    /// How long a round waits for its answers.
    pub wait: Duration,
}

/// The ICMP message a raw IPv4 socket hands over, parsed as far as matching needs.
#[derive(Debug, PartialEq)]
pub struct IcmpAnswer {
    pub from: Ipv4Addr,
    pub icmp_type: u8,
    pub code: u8,
    /// Echo reply: (id, seq).
    pub echo: Option<(u16, u16)>,
    /// Time exceeded / unreachable: the quoted packet's destination and protocol, and its
    /// ICMP (id, seq) or transport source port.
    pub quoted_dest: Option<Ipv4Addr>,
    pub quoted_proto: Option<u8>,
    pub quoted_echo: Option<(u16, u16)>,
    pub quoted_src_port: Option<u16>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn v4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::new(
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ))
}

/// Parses an IPv4 packet carrying ICMP (as a raw socket reads it); None if it is not one.
/// Every index is checked: any byte string is safe, and the work is linear in its length.
pub fn parse_icmp(packet: &[u8]) -> Option<IcmpAnswer> {
    let ihl = usize::from(*packet.first()? & 0x0f) * 4;
    if *packet.first()? >> 4 != 4 || ihl < 20 || *packet.get(9)? != 1 {
        return None;
    }
    let from = v4(packet, 12)?;
    let icmp = packet.get(ihl..)?;
    let (icmp_type, code) = (*icmp.first()?, *icmp.get(1)?);
    let mut a = IcmpAnswer {
        from,
        icmp_type,
        code,
        echo: None,
        quoted_dest: None,
        quoted_proto: None,
        quoted_echo: None,
        quoted_src_port: None,
    };
    match icmp_type {
        0 => a.echo = Some((be16(icmp, 4)?, be16(icmp, 6)?)),
        3 | 11 => {
            let inner = icmp.get(8..)?;
            let inner_ihl = usize::from(*inner.first()? & 0x0f) * 4;
            if inner_ihl < 20 {
                return Some(a);
            }
            a.quoted_dest = v4(inner, 16);
            a.quoted_proto = inner.get(9).copied();
            let transport = inner.get(inner_ihl..).unwrap_or_default();
            match a.quoted_proto {
                Some(1) => a.quoted_echo = be16(transport, 4).zip(be16(transport, 6)),
                Some(6 | 17) => a.quoted_src_port = be16(transport, 0),
                _ => {}
            }
        }
        _ => {}
    }
    Some(a)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"ecs-diag trace probe....");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// A probe in flight: how its answer will be recognised, and the answer once it came.
struct InFlight {
    round: u32,
    ttl: u8,
    sent: Instant,
    /// ICMP: (id, seq); UDP/TCP: the local port.
    key: Key,
    /// TCP: its socket (a SYN-ACK or RST completes the connect).
    tcp: Option<Socket>,
    answer: Option<Probe>,
}

impl InFlight {
    fn new(round: u32, ttl: u8, sent: Instant, key: Key, tcp: Option<Socket>) -> InFlight {
        InFlight {
            round,
            ttl,
            sent,
            key,
            tcp,
            answer: None,
        }
    }

    fn waiting(&self) -> bool {
        self.answer.is_none()
    }

    /// Records the answer from `from`, timed now.
    fn answered(&mut self, from: Ipv4Addr, reached: bool) {
        self.answer = Some(Probe {
            round: self.round,
            ttl: self.ttl,
            from: Some(from),
            rtt_ms: Some(self.sent.elapsed().as_secs_f64() * 1000.0),
            reached,
        });
    }

    /// The answer, or the probe unanswered.
    fn outcome(self) -> Probe {
        self.answer.unwrap_or(Probe {
            round: self.round,
            ttl: self.ttl,
            from: None,
            rtt_ms: None,
            reached: false,
        })
    }
}

/// A UDP or TCP socket for one probe: its TTL set, bound to a port of its own (the port the
/// routers quote back).
fn port_socket(kind: Type, proto: SockProto, ttl: u8, what: &str) -> Result<(Socket, u16), String> {
    let s = Socket::new(Domain::IPV4, kind, Some(proto))
        .map_err(|e| format!("cannot open a {what} socket: {e}"))?;
    s.set_ttl_v4(u32::from(ttl))
        .map_err(|e| format!("cannot set the TTL: {e}"))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
        .map_err(|e| format!("cannot bind a {what} socket: {e}"))?;
    let port = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(0, |a| a.port());
    Ok((s, port))
}

#[derive(PartialEq)]
enum Key {
    Echo(u16, u16),
    Port(u16),
}

/// Without CAP_NET_RAW the raw socket cannot be opened: this says so.
pub const NEEDS_RAW: &str = "trace sends probes with chosen TTLs and reads the routers' ICMP answers on a raw socket: it needs CAP_NET_RAW (run it as root)";

/// Sends every probe of `plan` and collects what answered each.
pub fn run(plan: &Plan) -> Result<Vec<Probe>, String> {
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(SockProto::ICMPV4)).map_err(|e| {
        if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
            NEEDS_RAW.to_string()
        } else {
            format!("cannot open a raw ICMP socket: {e}")
        }
    })?;
    raw.set_nonblocking(true)
        .map_err(|e| format!("raw socket: {e}"))?;
    let id = (std::process::id() & 0xffff) as u16;
    let dest = SockAddr::from(SocketAddrV4::new(plan.dest, 0));
    let mut out = Vec::new();
    let mut last_ttl = plan.max_hops;
    for round in 0..plan.rounds {
        let mut flight: Vec<InFlight> = Vec::new();
        for ttl in 1..=last_ttl {
            let sent = Instant::now();
            let seq = ((round as u16) << 8) | u16::from(ttl);
            flight.push(match plan.protocol {
                Protocol::Icmp => {
                    raw.set_ttl_v4(u32::from(ttl))
                        .map_err(|e| format!("cannot set the TTL: {e}"))?;
                    // A send refused (no route) is a probe that gets no answer.
                    let _ = raw.send_to(&echo_request(id, seq), &dest);
                    InFlight::new(round, ttl, sent, Key::Echo(id, seq), None)
                }
                Protocol::Udp => {
                    let (s, local) = port_socket(Type::DGRAM, SockProto::UDP, ttl, "UDP")?;
                    // A given port is kept (a firewall may pass only it); else traceroute's
                    // 33434 and up.
                    let port = plan.port.unwrap_or(33434 + seq % 1000);
                    let to = SockAddr::from(SocketAddrV4::new(plan.dest, port));
                    let _ = s.send_to(b"ecs-diag trace probe", &to);
                    InFlight::new(round, ttl, sent, Key::Port(local), None)
                }
                Protocol::Tcp => {
                    let (s, local) = port_socket(Type::STREAM, SockProto::TCP, ttl, "TCP")?;
                    s.set_nonblocking(true)
                        .map_err(|e| format!("socket: {e}"))?;
                    let to = SockAddr::from(SocketAddrV4::new(plan.dest, plan.port.unwrap_or(80)));
                    // EINPROGRESS: the SYN is on its way.
                    let _ = s.connect(&to);
                    InFlight::new(round, ttl, sent, Key::Port(local), Some(s))
                }
            });
            // Spaced a little, as mtr does, so a router's ICMP rate limit is not hit by us
            // alone; what answers meanwhile is read as it comes.
            let spacing = Instant::now() + Duration::from_millis(5);
            collect(&raw, plan, &mut flight, spacing);
            std::thread::sleep(spacing.saturating_duration_since(Instant::now()));
        }
        let deadline = Instant::now() + plan.wait;
        collect(&raw, plan, &mut flight, deadline);
        let probes: Vec<Probe> = flight.into_iter().map(InFlight::outcome).collect();
        // Later rounds stop at the destination's distance, as mtr does.
        if let Some(t) = probes.iter().filter(|p| p.reached).map(|p| p.ttl).min() {
            last_ttl = last_ttl.min(t);
        }
        out.extend(probes);
    }
    // Probes beyond the destination's distance (first rounds) are not hops.
    out.retain(|p| p.ttl <= last_ttl);
    Ok(out)
}

/// Reads answers (the raw socket, and the destination's SYN-ACK or RST on a TCP probe's
/// socket) until every probe in `flight` is answered or `deadline`, each matched to its probe
/// as it arrives, so its RTT is the probe's own.
fn collect(raw: &Socket, plan: &Plan, flight: &mut [InFlight], deadline: Instant) {
    while flight.iter().any(InFlight::waiting) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds = vec![libc::pollfd {
            fd: raw.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let tcp_index: Vec<usize> = flight
            .iter()
            .enumerate()
            .filter(|(_, f)| f.tcp.is_some() && f.waiting())
            .map(|(i, _)| i)
            .collect();
        for &i in &tcp_index {
            if let Some(s) = &flight[i].tcp {
                fds.push(libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                });
            }
        }
        let ms = left.as_millis().min(1000) as libc::c_int;
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms.max(1)) };
        if n < 0 {
            continue;
        }
        // Destination answered a TCP SYN (SYN-ACK: connected; RST: refused). Any other
        // error is the router's ICMP the raw socket matches: the socket leaves the poll
        // set, the probe stays open for that match.
        for (k, &i) in tcp_index.iter().enumerate() {
            if fds[k + 1].revents == 0 {
                continue;
            }
            let f = &mut flight[i];
            let err = f.tcp.as_ref().and_then(|s| s.take_error().ok().flatten());
            let reached = match &err {
                None => true,
                Some(e) => e.raw_os_error() == Some(libc::ECONNREFUSED),
            };
            f.tcp = None;
            if reached {
                f.answered(plan.dest, true);
            }
        }
        if fds[0].revents & libc::POLLIN == 0 {
            continue;
        }
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
        while let Ok(len) = raw.recv(&mut buf) {
            // SAFETY: recv initialised the first `len` bytes.
            let bytes: Vec<u8> = buf[..len]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            let Some(a) = parse_icmp(&bytes) else {
                continue;
            };
            let key = match (a.icmp_type, plan.protocol) {
                (0, Protocol::Icmp) if a.from == plan.dest => a.echo.map(|(i, s)| Key::Echo(i, s)),
                (3 | 11, _) if a.quoted_dest == Some(plan.dest) => match plan.protocol {
                    Protocol::Icmp => a.quoted_echo.map(|(i, s)| Key::Echo(i, s)),
                    _ => a.quoted_src_port.map(Key::Port),
                },
                _ => None,
            };
            let Some(key) = key else { continue };
            if let Some(f) = flight.iter_mut().find(|f| f.waiting() && f.key == key) {
                f.answered(a.from, a.from == plan.dest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_header(proto: u8, src: [u8; 4], dst: [u8; 4], payload_len: usize) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    #[test]
    fn time_exceeded_quoting_an_echo_and_a_udp_probe() {
        let inner_echo = [
            ip_header(1, [10, 0, 0, 2], [198, 18, 0, 2], 8),
            echo_request(7, 0x0203)[..8].to_vec(),
        ]
        .concat();
        let icmp = [vec![11, 0, 0, 0, 0, 0, 0, 0], inner_echo].concat();
        let packet = [ip_header(1, [10, 0, 1, 1], [10, 0, 0, 2], icmp.len()), icmp].concat();
        let a = parse_icmp(&packet).unwrap();
        assert_eq!(a.from, Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(
            (a.icmp_type, a.quoted_dest, a.quoted_echo),
            (11, Some(Ipv4Addr::new(198, 18, 0, 2)), Some((7, 0x0203)))
        );
        let udp = vec![0x9c, 0x40, 0x82, 0x9a, 0, 8, 0, 0];
        let inner = [ip_header(17, [10, 0, 0, 2], [198, 18, 0, 2], 8), udp].concat();
        let icmp = [vec![3, 3, 0, 0, 0, 0, 0, 0], inner].concat();
        let packet = [
            ip_header(1, [198, 18, 0, 2], [10, 0, 0, 2], icmp.len()),
            icmp,
        ]
        .concat();
        let a = parse_icmp(&packet).unwrap();
        assert_eq!(
            (a.icmp_type, a.code, a.quoted_src_port),
            (3, 3, Some(40000))
        );
    }

    #[test]
    fn an_echo_reply_and_garbage() {
        let reply = [
            ip_header(1, [198, 18, 0, 2], [10, 0, 0, 2], 8),
            vec![0, 0, 0, 0, 0, 7, 0, 9],
        ]
        .concat();
        assert_eq!(parse_icmp(&reply).unwrap().echo, Some((7, 9)));
        for junk in [&[][..], &[0x45][..], &[0x4f; 30][..], &[0x60; 60][..]] {
            let _ = parse_icmp(junk);
        }
        // Truncated at every length: never a panic.
        for n in 0..reply.len() {
            let _ = parse_icmp(&reply[..n]);
        }
        assert_eq!(
            checksum(&echo_request(1, 1)),
            0,
            "a valid checksum sums to zero"
        );
    }
}
