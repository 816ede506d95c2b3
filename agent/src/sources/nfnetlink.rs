//! Asks nf_tables over nfnetlink for the two facts the nft command line makes expensive: which
//! tables exist (`NFT_MSG_GETTABLE`, without the rules — `nft list tables` fetches every rule,
//! seconds with 100,000 iptables-nft rules) and the ruleset generation id (`NFT_MSG_GETGEN`),
//! which changes whenever any nftables or iptables-nft rule changes.

use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NFTA_NAME: u16 = 1;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
/// NFTA_NAT_TYPE and NFTA_TARGET_NAME are both attribute 1 of their expression.
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_TARGET_NAME: u16 = 1;
const NFT_NAT_DNAT: u32 = 1;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;

/// The nf_tables state: generation id and (family, name) of every table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftState {
    pub genid: u32,
    pub tables: Vec<(String, String)>,
}

/// The nfproto number of nft's family name (0 for one the readers do not take).
pub fn family_number(name: &str) -> u8 {
    match name {
        "inet" => 1,
        "ip" => 2,
        "ip6" => 10,
        _ => 0,
    }
}

/// nft's name for an nfproto family number.
pub fn family_name(f: u8) -> String {
    match f {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        other => format!("family{other}"),
    }
}

fn request(msg_type: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&20u32.to_ne_bytes());
    b.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0.
    b.extend_from_slice(&[0, 0, 0, 0]);
    b
}

/// The netlink messages in a datagram: (type, payload after the 16-byte header). Also used by
/// the sock_diag reader.
pub(crate) fn messages(buf: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        if len < 16 || off + len > buf.len() {
            return Err(format!("malformed netlink message (length {len})"));
        }
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        out.push((ty, &buf[off + 16..off + len]));
        off += (len + 3) & !3;
    }
    Ok(out)
}

/// The attribute `want` after the nfgenmsg header.
pub(crate) fn attribute(payload: &[u8], want: u16) -> Option<&[u8]> {
    attributes(payload.get(4..)?)
        .find(|(ty, _)| *ty == want)
        .map(|(_, v)| v)
}

/// The attributes packed in `data` (a message body after its fixed header, or a nested
/// attribute's value): (type without the nested/byte-order flags, value). Stops at the first
/// malformed one.
pub(crate) fn attributes(data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let head = data.get(off..off + 4)?;
        let len = u16::from_ne_bytes([head[0], head[1]]) as usize;
        let ty = u16::from_ne_bytes([head[2], head[3]]) & 0x3fff;
        let value = data.get(off + 4..off + len.max(4))?;
        if len < 4 {
            return None;
        }
        off += (len + 3) & !3;
        Some((ty, value))
    })
}

/// A NUL-terminated netlink string attribute.
pub(crate) fn text(v: &[u8]) -> &[u8] {
    v.split(|c| *c == 0).next().unwrap_or_default()
}

pub(crate) fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

pub(crate) fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// Whether `data` is attributes end to end (a truncated or garbled one is not skipped over).
pub(crate) fn well_formed(data: &[u8]) -> bool {
    let mut off = 0;
    while off < data.len() {
        let Some(head) = data.get(off..off + 4) else {
            return false;
        };
        let len = u16::from_ne_bytes([head[0], head[1]]) as usize;
        if len < 4 || off + len > data.len() {
            return false;
        }
        off += (len + 3) & !3;
    }
    true
}

/// The attributes of an expression's data, by type (later duplicates ignored).
pub(crate) fn fields(data: &[u8]) -> [Option<&[u8]>; 8] {
    let mut f = [None; 8];
    for (ty, v) in attributes(data) {
        if let Some(slot) = f.get_mut(ty as usize) {
            slot.get_or_insert(v);
        }
    }
    f
}

/// A nested NFTA_DATA_VALUE.
pub(crate) fn value(nested: Option<&[u8]>) -> Option<&[u8]> {
    attributes(nested?)
        .find(|(ty, _)| *ty == NFTA_DATA_VALUE)
        .map(|(_, v)| v)
}

/// The network a payload comparison matches: the compared leading bytes of an address
/// (zero-filled to its length) and the prefix length, from the bitwise mask before the
/// comparison (contiguous leading ones only) or else the bytes compared. None for no bytes,
/// more than an address holds, or any other mask.
pub(crate) fn compared_network(
    v6: bool,
    data: &[u8],
    mask: Option<&[u8]>,
) -> Option<(std::net::IpAddr, u32)> {
    let full = if v6 { 16 } else { 4 };
    if data.is_empty() || data.len() > full {
        return None;
    }
    let prefix = match mask {
        None => data.len() as u32 * 8,
        Some(m) => {
            if m.len() != data.len() {
                return None;
            }
            let ones: u32 = m.iter().map(|b| b.count_ones()).sum();
            let bits = m.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
            let width = m.len() as u32 * 8;
            if ones == 0 || bits != (!0u128 >> (128 - ones)) << (width - ones) {
                return None;
            }
            ones
        }
    };
    let mut addr = [0u8; 16];
    addr[..data.len()].copy_from_slice(data);
    let addr = if v6 {
        std::net::IpAddr::from(addr)
    } else {
        std::net::IpAddr::from([addr[0], addr[1], addr[2], addr[3]])
    };
    Some((addr, prefix))
}

/// One NFTA_LIST_ELEM expression: (name, data). Either is empty when absent.
pub(crate) fn expression(elem: &[u8]) -> (&[u8], &[u8]) {
    let (mut name, mut data) = (&[][..], &[][..]);
    for (ty, v) in attributes(elem) {
        match ty {
            NFTA_EXPR_NAME => name = text(v),
            NFTA_EXPR_DATA => data = v,
            _ => {}
        }
    }
    (name, data)
}

/// A rule's NFTA_RULE_EXPRESSIONS as (name, data) pairs, for the readers that print rules;
/// None when any attribute is truncated or garbled (a rule is never half read).
pub(crate) fn expressions(exprs: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if !well_formed(exprs) {
        return None;
    }
    attributes(exprs)
        .map(|(ty, elem)| {
            if ty != NFTA_LIST_ELEM || !well_formed(elem) {
                return None;
            }
            let (name, data) = expression(elem);
            well_formed(data).then_some((name, data))
        })
        .collect()
}

/// Whether a `cmp` or `range` operator (or a lookup's flags) negates: 0 equal, 1 not equal;
/// None for any other (an ordering the readers do not print).
pub(crate) fn negated(op: &[u8]) -> Option<bool> {
    match be32(op)? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Whether one rule message (NEWRULE payload) rewrites the destination: a native `dnat` or
/// `redirect`, or iptables' DNAT, REDIRECT or NETMAP target through the xtables compat layer.
fn rule_rewrites_destination(payload: &[u8]) -> bool {
    let Some(exprs) = attribute(payload, NFTA_RULE_EXPRESSIONS) else {
        return false;
    };
    attributes(exprs)
        .filter(|(ty, _)| *ty == NFTA_LIST_ELEM)
        .any(|(_, elem)| {
            let (name, data) = expression(elem);
            match name {
                b"redir" => true,
                b"nat" => attributes(data).any(|(ty, v)| {
                    ty == NFTA_NAT_TYPE
                        && v.get(..4).is_some_and(|b| {
                            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == NFT_NAT_DNAT
                        })
                }),
                b"target" => attributes(data).any(|(ty, v)| {
                    ty == NFTA_TARGET_NAME && matches!(text(v), b"DNAT" | b"REDIRECT" | b"NETMAP")
                }),
                _ => false,
            }
        })
}

/// Whether the `nat` table of nf_tables family `family` (2 ip, 10 ip6) holds a rule that
/// rewrites the destination (DNAT, REDIRECT, NETMAP), and how many rules it holds. Read over
/// nfnetlink (the kernel filters the dump by table), so a kube-proxy nat table of thousands
/// of chains costs milliseconds, where listing it through iptables-nft costs a tenth of a
/// second or more.
pub fn nat_rewrites(family: u8, timeout: Duration) -> Result<(bool, usize), String> {
    let req = table_dump_request(NFT_MSG_GETRULE, family, NFTA_RULE_TABLE, "nat");
    let (mut rewrites, mut rules) = (false, 0);
    dump(&req, timeout, |ty, p| {
        // Filtered here too: a kernel that ignores the table attribute dumps every table.
        if ty == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)
            && attribute(p, NFTA_RULE_TABLE).map(text) == Some(b"nat")
        {
            rules += 1;
            rewrites |= rule_rewrites_destination(p);
        }
        Ok(())
    })?;
    Ok((rewrites, rules))
}

/// The positive errno of an NLMSG_ERROR payload (0 for an ACK).
pub(crate) fn errno_of(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map(|b| -i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Sends one request and hands each answer's (type, payload) to `on_message` as it arrives,
/// until DONE (a dump) or the first datagram that carried an answer (a single request).
/// Bounded by `deadline`: a dump of 100,000 rules is never held whole.
fn exchange(
    sock: &Socket,
    req: &[u8],
    dump: bool,
    deadline: Instant,
    on_message: impl FnMut(u16, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    sock.send(req, 0)
        .map_err(|e| format!("nfnetlink send: {e}"))?;
    with_recv_buffer(|buf| receive(sock, buf, dump, deadline, on_message))
}

fn receive(
    sock: &Socket,
    buf: &mut Vec<u8>,
    dump: bool,
    deadline: Instant,
    mut on_message: impl FnMut(u16, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut answered = false;
    let mut datagrams = 0;
    loop {
        receive_datagram(sock, buf, deadline)?;
        datagrams += 1;
        if hand_over(buf, &mut answered, &mut on_message)? || (!dump && answered) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("nfnetlink: the dump did not end in time".to_string());
        }
        if dump && datagrams == PIPELINE_AFTER {
            if let Some(done) = receive_pipelined(sock, deadline, &mut on_message) {
                return done;
            }
        }
    }
}

/// Datagrams of one dump received in line before the rest are received on a thread of their
/// own: a dump of hundreds of kilobytes (thousands of rules) is long enough for the overlap
/// to pay for the thread; a firewalld table's dumps never get there.
const PIPELINE_AFTER: usize = 8;

/// Receives the rest of a long dump on a second thread while this one reads each datagram:
/// the kernel builds every datagram inside `recvmsg`, and with 100,000 rules that is nine
/// tenths of the time (it walks the chain from the start to resume each 32 KiB datagram), so
/// reading in line would add the reader's time to the kernel's. Four buffers go round and
/// round, so memory stays bounded however long the dump. `None` when no thread could be
/// started: the caller goes on in line.
fn receive_pipelined(
    sock: &Socket,
    deadline: Instant,
    on_message: &mut impl FnMut(u16, &[u8]) -> Result<(), String>,
) -> Option<Result<(), String>> {
    use std::sync::mpsc;
    const BUFFERS: usize = 4;
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<Vec<u8>, String>>(BUFFERS);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..BUFFERS {
        // Cannot fail: free_rx is alive.
        let _ = free_tx.send(Vec::with_capacity(RECV_BUFFER_SIZE));
    }
    std::thread::scope(|s| {
        let receiver = std::thread::Builder::new()
            .name("nfnetlink-recv".to_string())
            .stack_size(64 << 10)
            .spawn_scoped(s, move || {
                // Ends after the dump's last datagram, at the deadline, or when the reader
                // hangs up (it stopped at an error): each wait below then returns an error.
                while let Ok(mut buf) = free_rx.recv() {
                    let got = receive_datagram(sock, &mut buf, deadline);
                    let last = got.is_err() || ends_exchange(&buf);
                    if full_tx.send(got.map(|()| buf)).is_err() || last {
                        return;
                    }
                }
            });
        if receiver.is_err() {
            return None;
        }
        let mut answered = true;
        let result = loop {
            match full_rx.recv() {
                Ok(Ok(buf)) => match hand_over(&buf, &mut answered, on_message) {
                    Ok(true) => break Ok(()),
                    Ok(false) => {
                        let _ = free_tx.send(buf);
                    }
                    Err(e) => break Err(e),
                },
                Ok(Err(e)) => break Err(e),
                Err(_) => break Err("nfnetlink: the dump ended without its end".to_string()),
            }
        };
        // Hanging up first lets the receiver, wherever it waits, end before the scope joins it.
        drop(full_rx);
        drop(free_tx);
        Some(result)
    })
}

/// Receives one datagram into `buf`, waiting (the socket does not block) until `deadline`.
fn receive_datagram(sock: &Socket, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), String> {
    loop {
        buf.clear();
        match sock.recv(buf, 0) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err("nfnetlink: no answer from the kernel in time".to_string());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(format!("nfnetlink recv: {e}")),
        }
    }
}

/// Hands each answer in a datagram to `on_message`; true when the datagram ended the exchange
/// (DONE), an error when the kernel refused the request or the datagram is malformed.
fn hand_over(
    buf: &[u8],
    answered: &mut bool,
    on_message: &mut impl FnMut(u16, &[u8]) -> Result<(), String>,
) -> Result<bool, String> {
    for (ty, payload) in messages(buf)? {
        match ty {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = errno_of(payload);
                if errno == 0 {
                    continue; // an ACK
                }
                let what = std::io::Error::from_raw_os_error(errno);
                return Err(format!("nf_tables refused the request: {what}"));
            }
            _ => {
                *answered = true;
                on_message(ty, payload)?;
            }
        }
    }
    Ok(false)
}

/// Whether [`hand_over`] ends the exchange at this datagram (DONE, a refusal, or malformed):
/// the receiving thread stops there, as the in-line loop would. Asked of `hand_over` itself,
/// with nothing to hand to, so the two cannot disagree.
fn ends_exchange(buf: &[u8]) -> bool {
    !matches!(hand_over(buf, &mut false, &mut |_, _| Ok(())), Ok(false))
}

/// 64 KiB: the kernel fills a dump datagram up to 32 KiB, more for one large message.
const RECV_BUFFER_SIZE: usize = 1 << 16;

thread_local! {
    /// One receive buffer per thread, reused by every netlink exchange on it: in the static
    /// build each fresh 64 KiB buffer was an mmap, a munmap (a TLB shootdown on the cores of
    /// the process's other threads) and a page fault for every 4 KiB the kernel wrote into it
    /// — for a firewalld table's ten dumps, more than the dumps themselves.
    static RECV_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's netlink receive buffer ([`RECV_BUFFER_SIZE`]); a fresh one if
/// it is in use.
pub(crate) fn with_recv_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    RECV_BUFFER.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.capacity() < RECV_BUFFER_SIZE {
                buf.reserve_exact(RECV_BUFFER_SIZE);
            }
            f(&mut buf)
        }
        Err(_) => f(&mut Vec::with_capacity(RECV_BUFFER_SIZE)),
    })
}

/// A connected, non-blocking NETLINK_NETFILTER socket.
fn open() -> Result<Socket, String> {
    let mut sock = Socket::new(NETLINK_NETFILTER)
        .map_err(|e| format!("cannot open a NETLINK_NETFILTER socket: {e}"))?;
    sock.bind_auto()
        .map_err(|e| format!("nfnetlink bind: {e}"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| format!("nfnetlink connect: {e}"))?;
    sock.set_non_blocking(true)
        .map_err(|e| format!("nfnetlink: {e}"))?;
    Ok(sock)
}

/// A dump request of nf_tables message `msg_type` for nfproto `family`, with one string
/// attribute `attr` = `value` (the table: the kernel, or the caller, filters by it).
pub(crate) fn table_dump_request(msg_type: u16, family: u8, attr: u16, value: &str) -> Vec<u8> {
    dump_request(msg_type, family, &[(attr, value)])
}

/// A dump request of nf_tables message `msg_type` for nfproto `family` with string attributes
/// (a set's elements are asked by table and set name).
pub(crate) fn dump_request(msg_type: u16, family: u8, attrs: &[(u16, &str)]) -> Vec<u8> {
    let mut req = request(msg_type, NLM_F_REQUEST | NLM_F_DUMP, 3);
    req[16] = family;
    for (attr, value) in attrs {
        let len = 4 + value.len() + 1;
        req.extend_from_slice(&(len as u16).to_ne_bytes());
        req.extend_from_slice(&attr.to_ne_bytes());
        req.extend_from_slice(value.as_bytes());
        req.push(0);
        req.resize((req.len() + 3) & !3, 0);
    }
    let total = req.len() as u32;
    req[..4].copy_from_slice(&total.to_ne_bytes());
    req
}

/// One nfnetlink socket for a series of dumps (a table's chains, sets, each set's elements,
/// rules), all bounded by one deadline: a socket per dump costs five system calls more each.
pub(crate) struct Dumps {
    sock: Socket,
    deadline: Instant,
}

impl Dumps {
    pub(crate) fn open(timeout: Duration) -> Result<Dumps, String> {
        Ok(Dumps {
            sock: open()?,
            deadline: Instant::now() + timeout,
        })
    }

    /// Sends a dump request and hands each answer to `on_message` as it arrives, until DONE.
    pub(crate) fn dump(
        &self,
        req: &[u8],
        on_message: impl FnMut(u16, &[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        exchange(&self.sock, req, true, self.deadline, on_message)
    }
}

/// Sends a dump request on a socket of its own and hands each answer to `on_message` as it
/// arrives, until DONE or `timeout`.
pub(crate) fn dump(
    req: &[u8],
    timeout: Duration,
    on_message: impl FnMut(u16, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    exchange(&open()?, req, true, Instant::now() + timeout, on_message)
}

/// Reads the generation id and the table list. Needs CAP_NET_ADMIN, like nft itself.
pub fn nft_state(timeout: Duration) -> Result<NftState, String> {
    let deadline = Instant::now() + timeout;
    let sock = open()?;
    let mut genid = None;
    exchange(
        &sock,
        &request(NFT_MSG_GETGEN, NLM_F_REQUEST, 1),
        false,
        deadline,
        |ty, p| {
            if ty == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN) {
                genid = genid.or(attribute(p, NFTA_NAME)
                    .and_then(|b| Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))));
            }
            Ok(())
        },
    )?;
    let genid = genid.ok_or("nfnetlink: the generation answer carries no id")?;
    let mut tables = Vec::new();
    exchange(
        &sock,
        &request(NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_DUMP, 2),
        true,
        deadline,
        |ty, p| {
            if ty != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE) || p.is_empty() {
                return Ok(());
            }
            let name = attribute(p, NFTA_NAME)
                .map(|b| String::from_utf8_lossy(text(b)).into_owned())
                .ok_or("nfnetlink: a table without a name")?;
            tables.push((family_name(p[0]), name));
            Ok(())
        },
    )?;
    Ok(NftState { genid, tables })
}

/// Builders of nf_tables rule expressions as the kernel dumps them, for the readers' tests.
#[cfg(test)]
pub(crate) mod build {
    /// A netlink attribute, padded.
    pub fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize((a.len() + 3) & !3, 0);
        a
    }

    /// One NFTA_LIST_ELEM expression: its name and data attributes.
    pub fn expr(name: &str, fields: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut data = Vec::new();
        for (ty, v) in fields {
            data.extend(attr(*ty, v));
        }
        let mut name = name.as_bytes().to_vec();
        name.push(0);
        // NFTA_EXPR_NAME, NFTA_EXPR_DATA, in NFTA_LIST_ELEM.
        let mut elem = attr(1, &name);
        elem.extend(attr(2, &data));
        attr(1, &elem)
    }

    pub fn be(n: u32) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    /// A nested NFTA_DATA_VALUE.
    pub fn data(v: &[u8]) -> Vec<u8> {
        attr(super::NFTA_DATA_VALUE, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_attribute_parsing() {
        // A NEWTABLE message for `inet filter`: header, nfgenmsg, NFTA_TABLE_NAME.
        let mut m = Vec::new();
        let name = b"filter\0";
        let attr_len = 4 + name.len();
        let total = 16 + 4 + ((attr_len + 3) & !3);
        m.extend_from_slice(&(total as u32).to_ne_bytes());
        m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE).to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[1, 0, 0, 0]);
        m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        m.extend_from_slice(&NFTA_NAME.to_ne_bytes());
        m.extend_from_slice(name);
        m.resize(total, 0);
        let msgs = messages(&m).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(attribute(msgs[0].1, NFTA_NAME).unwrap(), name);
        assert_eq!(family_name(msgs[0].1[0]), "inet");
        assert!(messages(&[0xff; 20]).is_err());
    }

    /// A datagram of netlink messages (type, payload), as the kernel sends a dump's.
    fn datagram(msgs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut d = Vec::new();
        for (ty, payload) in msgs {
            d.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
            d.extend_from_slice(&ty.to_ne_bytes());
            d.extend_from_slice(&[0; 10]);
            d.extend_from_slice(payload);
            d.resize((d.len() + 3) & !3, 0);
        }
        d
    }

    const NEWRULE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE;

    /// `count` datagrams of three NEWRULE messages numbered from 0, then `end` if any; sent
    /// by a thread of their own (a datagram socket queues only a few) over a socket pair whose
    /// other end is the receiving socket, as nfnetlink's would be.
    fn dump_of(count: u32, end: Option<Vec<u8>>) -> (Socket, std::thread::JoinHandle<()>) {
        use std::os::fd::{FromRawFd, IntoRawFd};
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let sender = std::thread::spawn(move || {
            for d in 0..count {
                let msgs: Vec<_> = (0..3)
                    .map(|i| (NEWRULE, (d * 3 + i).to_ne_bytes().to_vec()))
                    .collect();
                if theirs.send(&datagram(&msgs)).is_err() {
                    return; // the receiver stopped early, as it may
                }
            }
            match end {
                Some(end) => {
                    let _ = theirs.send(&end);
                }
                // Held open a while: a dump that never ends must stop at the deadline.
                None => std::thread::sleep(Duration::from_millis(600)),
            }
        });
        (unsafe { Socket::from_raw_fd(ours.into_raw_fd()) }, sender)
    }

    fn received(
        sock: &Socket,
        timeout: Duration,
        stop_at: Option<u32>,
    ) -> (Vec<u32>, Result<(), String>) {
        let mut got = Vec::new();
        let result = with_recv_buffer(|buf| {
            receive(sock, buf, true, Instant::now() + timeout, |ty, p| {
                assert_eq!(ty, NEWRULE);
                let n = u32::from_ne_bytes(p[..4].try_into().unwrap());
                if Some(n) == stop_at {
                    return Err(format!("the reader stopped at {n}"));
                }
                got.push(n);
                Ok(())
            })
        });
        (got, result)
    }

    #[test]
    fn a_long_dump_is_handed_over_whole_and_in_order_past_the_pipeline_threshold() {
        for datagrams in [1, PIPELINE_AFTER as u32, PIPELINE_AFTER as u32 + 1, 50] {
            let (sock, sender) = dump_of(datagrams, Some(datagram(&[(NLMSG_DONE, vec![0; 4])])));
            let (got, result) = received(&sock, Duration::from_secs(5), None);
            assert_eq!(result, Ok(()));
            assert_eq!(
                got,
                (0..datagrams * 3).collect::<Vec<_>>(),
                "{datagrams} datagrams"
            );
            sender.join().unwrap();
        }
    }

    #[test]
    fn a_refusal_after_the_threshold_ends_the_dump_with_its_errno() {
        let eperm = (-libc::EPERM).to_ne_bytes().to_vec();
        let (sock, sender) = dump_of(20, Some(datagram(&[(NLMSG_ERROR, eperm)])));
        let (got, result) = received(&sock, Duration::from_secs(5), None);
        assert_eq!(got.len(), 60);
        let e = result.unwrap_err();
        assert!(
            e.contains("nf_tables refused the request") && e.contains("not permitted"),
            "{e}"
        );
        sender.join().unwrap();
    }

    #[test]
    fn a_reader_that_stops_mid_dump_ends_the_receiving_thread_too() {
        let (sock, sender) = dump_of(40, Some(datagram(&[(NLMSG_DONE, vec![0; 4])])));
        let (got, result) = received(&sock, Duration::from_secs(5), Some(70));
        assert_eq!(result, Err("the reader stopped at 70".to_string()));
        assert_eq!(got, (0..70).collect::<Vec<_>>());
        sender.join().unwrap();
    }

    #[test]
    fn a_dump_that_never_ends_stops_at_the_deadline() {
        let (sock, sender) = dump_of(12, None);
        let (got, result) = received(&sock, Duration::from_millis(200), None);
        assert_eq!(got.len(), 36);
        let e = result.unwrap_err();
        assert!(e.contains("in time"), "{e}");
        sender.join().unwrap();
    }

    #[test]
    fn a_malformed_datagram_after_the_threshold_is_an_error_not_a_hang() {
        let (sock, sender) = dump_of(10, Some(vec![0xff; 20]));
        let (got, result) = received(&sock, Duration::from_secs(5), None);
        assert_eq!(got.len(), 30);
        assert!(result.unwrap_err().contains("malformed netlink message"));
        sender.join().unwrap();
    }

    #[test]
    fn reads_this_namespace_or_says_why() {
        // As root this answers; without CAP_NET_ADMIN it must say so, not panic or hang.
        match nft_state(Duration::from_secs(2)) {
            Ok(s) => assert!(s.tables.iter().all(|(f, n)| !f.is_empty() && !n.is_empty())),
            Err(e) => assert!(e.contains("nf_tables") || e.contains("nfnetlink"), "{e}"),
        }
    }
}
