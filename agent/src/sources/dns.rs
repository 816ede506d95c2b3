//! How this guest resolves a name, the way its applications do (glibc's `getaddrinfo`):
//! `/etc/nsswitch.conf`'s `hosts:` order — `files` (`/etc/hosts`) and `dns` (`resolve`, the
//! systemd-resolved stub, is reached through the nameserver resolv.conf names) — then the
//! nameservers of `/etc/resolv.conf` in order, with its `search` list for a name with fewer
//! dots than `ndots`. A and AAAA are asked separately, each query bounded by a timeout and all
//! of them by one budget. The messages are hickory-proto's; the exchange (one UDP datagram
//! each way, the reply matched by id and question) is ours, so the resolver asked, its
//! answer code and the TTL are known.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::RData;
/// The name and record types [`answer_of`] takes (hickory-proto's).
pub use hickory_proto::rr::{Name, RecordType};

use crate::config::{DnsConfig, PathsConfig};
use crate::snapshot::{Gathered, Resolution};

/// Whether `name` is a name that can be asked: at most 253 characters, labels of 1–63 of
/// letters, digits, `-` and `_`, separated by dots (a trailing dot allowed).
pub fn valid_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() || bare.len() > 253 {
        return Err("expected a domain name of 1 to 253 characters".into());
    }
    for label in bare.split('.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label {label:?}: expected 1 to 63 letters, digits, '-' or '_' (an internationalised name in its xn-- form)"
            ));
        }
    }
    Ok(())
}

/// The parts of resolv.conf that decide where a name is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    pub timeout: Duration,
    pub attempts: u32,
}

/// Parses resolv.conf as glibc does: `nameserver` (the first three), `search`/`domain` (the
/// last one wins), `options ndots: timeout: attempts:`; anything else ignored. Linear.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut rc = ResolvConf {
        nameservers: Vec::new(),
        search: Vec::new(),
        ndots: 1,
        timeout: Duration::from_secs(5),
        attempts: 2,
    };
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                    if rc.nameservers.len() < 3 {
                        rc.nameservers.push(ip);
                    }
                }
            }
            Some("search") | Some("domain") => {
                rc.search = words.take(6).map(str::to_string).collect();
            }
            Some("options") => {
                for o in words {
                    let (k, v) = o.split_once(':').unwrap_or((o, ""));
                    let n = v.parse::<u64>().ok();
                    match (k, n) {
                        ("ndots", Some(n)) => rc.ndots = n.min(15) as usize,
                        ("timeout", Some(n)) => rc.timeout = Duration::from_secs(n.clamp(1, 30)),
                        ("attempts", Some(n)) => rc.attempts = n.clamp(1, 5) as u32,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // glibc: no nameserver line means the local one.
    if rc.nameservers.is_empty() {
        rc.nameservers.push(IpAddr::from([127, 0, 0, 1]));
    }
    rc
}

/// The sources of `hosts:` in nsswitch.conf, in order (`files dns` when absent).
pub fn parse_nsswitch_hosts(text: &str) -> Vec<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(rest) = line.strip_prefix("hosts:") {
            return rest
                .split_whitespace()
                // `[NOTFOUND=return]` actions are not sources.
                .filter(|w| !w.starts_with('['))
                .map(str::to_string)
                .collect();
        }
    }
    vec!["files".into(), "dns".into()]
}

/// The addresses `/etc/hosts` gives `name` (case-insensitive, aliases included).
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let want = name.trim_end_matches('.');
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        if words.any(|w| w.trim_end_matches('.').eq_ignore_ascii_case(want)) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// What one query to one nameserver answered.
#[derive(Debug)]
pub struct Answer {
    pub code: ResponseCode,
    pub addresses: Vec<IpAddr>,
    pub ttl: Option<u32>,
}

/// One query, one datagram each way: the first reply whose id and question match, or an
/// error (timeout, unreachable, garbage).
fn exchange(
    server: SocketAddr,
    name: &Name,
    kind: RecordType,
    timeout: Duration,
) -> Result<Answer, String> {
    let id = (crate::unix_ms() as u16) ^ (std::process::id() as u16) ^ u16::from(kind);
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    msg.add_query(Query::query(name.clone(), kind));
    let bytes = msg
        .to_vec()
        .map_err(|e| format!("cannot build the query: {e}"))?;
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.connect(server)
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    sock.send(&bytes)
        .map_err(|e| format!("cannot send to {server}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let silent = || format!("{server} did not answer within {} ms", timeout.as_millis());
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(silent());
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| format!("socket: {e}"))?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(silent())
            }
            Err(e) => return Err(format!("{server}: {e}")),
        };
        // Not ours or not a reply: keep waiting for the one that is.
        if let Some(answer) = answer_of(&buf[..n], id, name, kind) {
            return Ok(answer);
        }
    }
}

/// The answer in a DNS reply to query `id` for `name`/`kind`; None when the bytes are not that
/// reply (another query's, a stray datagram, garbage). Any bytes are safe.
pub fn answer_of(bytes: &[u8], id: u16, name: &Name, kind: RecordType) -> Option<Answer> {
    let reply = Message::from_vec(bytes).ok()?;
    if reply.id() != id
        || reply.message_type() != MessageType::Response
        || reply.queries().first().map(|q| (q.name(), q.query_type())) != Some((name, kind))
    {
        return None;
    }
    let mut addresses = Vec::new();
    let mut ttl: Option<u32> = None;
    for r in reply.answers() {
        let ip = match r.data() {
            RData::A(a) if kind == RecordType::A => IpAddr::V4(a.0),
            RData::AAAA(a) if kind == RecordType::AAAA => IpAddr::V6(a.0),
            _ => continue,
        };
        ttl = Some(ttl.map_or(r.ttl(), |t| t.min(r.ttl())));
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    Some(Answer {
        code: reply.response_code(),
        addresses,
        ttl,
    })
}

/// The names to ask for `name`: with fewer dots than `ndots`, each search domain first.
fn candidates(name: &str, rc: &ResolvConf) -> Vec<String> {
    let bare = name.trim_end_matches('.');
    let searched: Vec<String> = rc.search.iter().map(|d| format!("{bare}.{d}")).collect();
    if name.ends_with('.') {
        vec![bare.to_string()]
    } else if bare.matches('.').count() < rc.ndots {
        searched.into_iter().chain([bare.to_string()]).collect()
    } else {
        std::iter::once(bare.to_string()).chain(searched).collect()
    }
}

/// Resolves one name through DNS as the resolver library would; `deadline` bounds it.
fn resolve_dns(name: &str, rc: &ResolvConf, per_query: Duration, deadline: Instant) -> Resolution {
    let mut out = Resolution {
        name: name.to_string(),
        source: "dns".into(),
        ..Default::default()
    };
    let mut errors = Vec::new();
    for asked in candidates(name, rc) {
        let Ok(fqdn) = Name::from_ascii(format!("{asked}.")) else {
            continue;
        };
        let mut found_name = false;
        let mut last_code = None;
        for kind in [RecordType::A, RecordType::AAAA] {
            'servers: for _ in 0..rc.attempts {
                for ns in &rc.nameservers {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        errors.push("the DNS budget ran out".to_string());
                        break 'servers;
                    }
                    let server = SocketAddr::new(*ns, 53);
                    match exchange(server, &fqdn, kind, per_query.min(left).min(rc.timeout)) {
                        Ok(a) => {
                            out.resolver = Some(server.to_string());
                            out.asked = Some(asked.clone());
                            last_code = Some(a.code);
                            // SERVFAIL and REFUSED: the next nameserver may do better.
                            if matches!(a.code, ResponseCode::ServFail | ResponseCode::Refused) {
                                errors.push(format!("{server} answered {}", a.code));
                                continue;
                            }
                            if a.code == ResponseCode::NoError {
                                found_name = true;
                            }
                            out.ttl_s = match (out.ttl_s, a.ttl) {
                                (Some(x), Some(y)) => Some(x.min(y)),
                                (x, y) => x.or(y),
                            };
                            out.addresses.extend(a.addresses);
                            break 'servers;
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
        if let Some(code) = last_code {
            out.rcode = Some(code_name(code));
        }
        // glibc stops at the first candidate that exists.
        if found_name {
            return out;
        }
    }
    if out.rcode.is_none() {
        errors.dedup();
        out.error = Some(errors.join("; "));
    }
    out
}

/// The answer code as dig prints it.
fn code_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// Resolves every name of `[dns] domains` (the CLI adds `--domain` there) the way the guest
/// does, each once; empty when there are none. A name that cannot even be asked says why in
/// its own entry.
pub fn resolve_all(paths: &PathsConfig, config: &DnsConfig) -> Gathered<Vec<Resolution>> {
    let mut seen = std::collections::HashSet::new();
    let names: Vec<&String> = config.domains.iter().filter(|n| seen.insert(*n)).collect();
    if names.is_empty() {
        return Gathered::Ok(Vec::new());
    }
    let nsswitch = super::read_config_file(&paths.etc.join("nsswitch.conf"))
        .map(|t| parse_nsswitch_hosts(&t))
        .unwrap_or_else(|_| vec!["files".into(), "dns".into()]);
    let hosts = super::read_config_file(&paths.etc.join("hosts")).unwrap_or_default();
    let resolv = match super::read_config_file(&paths.etc.join("resolv.conf")) {
        Ok(t) => Ok(parse_resolv_conf(&t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(parse_resolv_conf("")),
        Err(e) => Err(format!(
            "cannot read {}: {e}",
            paths.etc.join("resolv.conf").display()
        )),
    };
    let deadline = Instant::now() + Duration::from_millis(config.budget_ms);
    let per_query = Duration::from_millis(config.timeout_ms);
    let mut out = Vec::new();
    for name in names {
        if let Err(e) = valid_name(name) {
            out.push(Resolution {
                name: name.clone(),
                error: Some(e),
                ..Default::default()
            });
            continue;
        }
        let mut r = None;
        for source in &nsswitch {
            match source.as_str() {
                "files" => {
                    let found = hosts_lookup(&hosts, name);
                    if !found.is_empty() {
                        r = Some(Resolution {
                            name: name.clone(),
                            source: "files".into(),
                            resolver: Some(paths.etc.join("hosts").display().to_string()),
                            addresses: found,
                            ..Default::default()
                        });
                        break;
                    }
                }
                "dns" | "resolve" => {
                    r = Some(match &resolv {
                        Ok(rc) => resolve_dns(name, rc, per_query, deadline),
                        Err(e) => Resolution {
                            name: name.clone(),
                            source: "dns".into(),
                            error: Some(e.clone()),
                            ..Default::default()
                        },
                    });
                    break;
                }
                _ => {}
            }
        }
        out.push(r.unwrap_or_else(|| Resolution {
            name: name.clone(),
            source: "none".into(),
            error: Some(format!(
                "not in /etc/hosts, and nsswitch.conf's hosts line ({}) asks no DNS",
                nsswitch.join(" ")
            )),
            ..Default::default()
        }));
    }
    Gathered::Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_as_glibc_reads_it() {
        let rc = parse_resolv_conf(
            "# made up\nnameserver 100.100.2.136\nnameserver 100.100.2.138 # second\nnameserver bogus\nsearch a.example b.example\noptions timeout:2 attempts:3 ndots:2 rotate\n",
        );
        assert_eq!(
            rc.nameservers,
            [
                IpAddr::from([100, 100, 2, 136]),
                IpAddr::from([100, 100, 2, 138])
            ]
        );
        assert_eq!(rc.search, ["a.example", "b.example"]);
        assert_eq!((rc.ndots, rc.timeout.as_secs(), rc.attempts), (2, 2, 3));
        assert_eq!(
            parse_resolv_conf("").nameservers,
            [IpAddr::from([127, 0, 0, 1])]
        );
        // Garbage and a huge line: no panic, defaults.
        let junk =
            "options ndots:99999999999999999999 timeout:x\n".repeat(1000) + &"\u{0}".repeat(10_000);
        assert_eq!(parse_resolv_conf(&junk).ndots, 1);
    }

    #[test]
    fn nsswitch_and_hosts() {
        assert_eq!(
            parse_nsswitch_hosts(
                "passwd: files\nhosts:  files [NOTFOUND=return] resolve dns # x\n"
            ),
            ["files", "resolve", "dns"]
        );
        assert_eq!(parse_nsswitch_hosts(""), ["files", "dns"]);
        let hosts = "127.0.0.1 localhost\n203.0.113.7 www.example.com www # pinned\nbad line\n";
        assert_eq!(
            hosts_lookup(hosts, "WWW.example.com."),
            [IpAddr::from([203, 0, 113, 7])]
        );
        assert!(hosts_lookup(hosts, "example.com").is_empty());
    }

    #[test]
    fn names_are_checked_and_searched_as_ndots_says() {
        assert!(valid_name("www.example.com").is_ok());
        assert!(valid_name("www.example.com.").is_ok());
        for bad in ["", "a..b", "-x y", &"a".repeat(64), "http://x"] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
        let rc = parse_resolv_conf("search corp.example\n");
        assert_eq!(candidates("www", &rc), ["www.corp.example", "www"]);
        assert_eq!(
            candidates("www.example.com", &rc),
            ["www.example.com", "www.example.com.corp.example"]
        );
        assert_eq!(candidates("www.example.com.", &rc), ["www.example.com"]);
    }

    #[test]
    fn a_silent_nameserver_is_bounded_by_the_budget() {
        // A UDP socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let name = Name::from_ascii("www.example.com.").unwrap();
        let started = Instant::now();
        let e = exchange(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &name,
            RecordType::A,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(e.contains("did not answer within 200 ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
