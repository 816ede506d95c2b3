//! The ECS instance metadata client: what the cloud assigned (primary MAC, each ENI's IP,
//! netmask, gateway, private IPv4s, vSwitch/VPC CIDR), read once per diagnosis.
//!
//! Hardened (token) mode first, plain requests where the token endpoint refuses; every request
//! has a timeout and the whole read a total budget, so a service that hangs cannot hang the
//! agent; a 404 means "not published"; a body that is not what the path promises is an error
//! naming the path. The base URL is injectable so tests talk to a loopback fake.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::config::MetadataConfig;
use crate::snapshot::{InstanceMetadata, MetadataInterface};

const BODY_LIMIT: u64 = 64 * 1024;
const TOKEN_TTL_SECONDS: &str = "300";
const PREFIX: &str = "/latest/meta-data/";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetadataError {
    #[error("metadata service at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("metadata service: {path} answered HTTP {status}")]
    Status { path: String, status: u16 },
    #[error("metadata service: {path}: {reason}")]
    BadAnswer { path: String, reason: String },
    #[error("metadata service: the whole read exceeded its budget of {budget_ms} ms (at {path})")]
    Budget { path: String, budget_ms: u64 },
}

/// Timers fire a little early or late: a timeout this close to the budget is the budget's.
const BUDGET_SLACK: Duration = Duration::from_millis(20);

pub struct MetadataClient {
    base: String,
    timeout: Duration,
    budget: Duration,
    started: Instant,
    agent: ureq::Agent,
    token: Option<String>,
}

impl MetadataClient {
    pub fn new(config: &MetadataConfig) -> MetadataClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // The metadata service is link-local: never through a proxy, never redirected.
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("ecs-diag/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        MetadataClient {
            base: config.url.trim_end_matches('/').to_string(),
            timeout: config.timeout(),
            budget: config.budget(),
            started: Instant::now(),
            agent,
            token: None,
        }
    }

    /// Time left for the next request: the per-request timeout, capped by the budget.
    fn time_left(&self, path: &str) -> Result<Duration, MetadataError> {
        let left = self.budget.saturating_sub(self.started.elapsed());
        if left.is_zero() {
            return Err(MetadataError::Budget {
                path: path.to_string(),
                budget_ms: self.budget.as_millis() as u64,
            });
        }
        Ok(left.min(self.timeout))
    }

    fn transport_error(&self, path: &str, e: ureq::Error) -> MetadataError {
        let reason = match e {
            // The request's timeout was cut short by the budget: say which ran out.
            ureq::Error::Timeout(_) if self.started.elapsed() + BUDGET_SLACK >= self.budget => {
                return MetadataError::Budget {
                    path: path.to_string(),
                    budget_ms: self.budget.as_millis() as u64,
                }
            }
            ureq::Error::Timeout(_) => format!(
                "no answer within {} ms (per-request timeout) for {path}",
                self.timeout.as_millis()
            ),
            ureq::Error::BodyExceedsLimit(n) => {
                return MetadataError::BadAnswer {
                    path: path.to_string(),
                    reason: format!("body larger than {n} bytes"),
                }
            }
            other => format!("{other} (requesting {path})"),
        };
        MetadataError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }

    fn read_body(
        &self,
        path: &str,
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> Result<String, MetadataError> {
        resp.body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => MetadataError::BadAnswer {
                    path: path.to_string(),
                    reason: format!("body larger than {BODY_LIMIT} bytes"),
                },
                ureq::Error::Timeout(_) => self.transport_error(path, e),
                other => MetadataError::BadAnswer {
                    path: path.to_string(),
                    reason: format!("unreadable body: {other}"),
                },
            })
    }

    /// Hardened mode: `PUT /latest/api/token`. A refusal (any HTTP status) means plain mode;
    /// no answer at all means the service is unreachable and the read stops here.
    pub fn acquire_token(&mut self) -> Result<(), MetadataError> {
        let path = "/latest/api/token";
        let timeout = self.time_left(path)?;
        let resp = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("X-aliyun-ecs-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send_empty()
            .map_err(|e| self.transport_error(path, e))?;
        if resp.status().as_u16() == 200 {
            let token = self.read_body(path, resp)?.trim().to_string();
            if !token.is_empty() && token.len() < 1024 && token.is_ascii() {
                self.token = Some(token);
            }
        }
        Ok(())
    }

    /// GET a meta-data path; `Ok(None)` when it is not published (404).
    pub fn get(&self, rel: &str) -> Result<Option<String>, MetadataError> {
        let path = format!("{PREFIX}{rel}");
        let timeout = self.time_left(&path)?;
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("X-aliyun-ecs-metadata-token", t);
        }
        let resp = req
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(|e| self.transport_error(&path, e))?;
        match resp.status().as_u16() {
            200 => Ok(Some(self.read_body(&path, resp)?.trim().to_string())),
            404 => Ok(None),
            status => Err(MetadataError::Status { path, status }),
        }
    }

    fn parsed<T>(
        &self,
        rel: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, MetadataError> {
        match self.get(rel)? {
            None => Ok(None),
            Some(body) if body.is_empty() => Ok(None),
            Some(body) => parse(&body)
                .map(Some)
                .ok_or_else(|| MetadataError::BadAnswer {
                    path: format!("{PREFIX}{rel}"),
                    reason: format!("expected {what}, got {}", excerpt(&body)),
                }),
        }
    }

    fn ipv4(&self, rel: &str) -> Result<Option<Ipv4Addr>, MetadataError> {
        self.parsed(rel, "an IPv4 address", |s| s.parse().ok())
    }

    fn cidr(&self, rel: &str) -> Result<Option<Ipv4Net>, MetadataError> {
        self.parsed(rel, "an IPv4 CIDR block", |s| s.parse().ok())
    }

    fn text(&self, rel: &str) -> Result<Option<String>, MetadataError> {
        self.parsed(rel, "a single-line value", |s| {
            (!s.contains('\n') && s.len() <= 256).then(|| s.to_string())
        })
    }

    /// Reads everything the checks need, once.
    pub fn read(mut self) -> Result<InstanceMetadata, MetadataError> {
        self.acquire_token()?;
        let mac = self
            .parsed("mac", "a MAC address", parse_mac)?
            .ok_or_else(|| MetadataError::BadAnswer {
                path: format!("{PREFIX}mac"),
                reason: "not published (404): cannot tell the primary ENI".to_string(),
            })?;
        let mut md = InstanceMetadata {
            hardened: self.token.is_some(),
            instance_id: self.text("instance-id")?,
            region_id: self.text("region-id")?,
            zone_id: self.text("zone-id")?,
            instance_type: self.text("instance/instance-type")?,
            mac,
            private_ipv4: self.ipv4("private-ipv4")?,
            eipv4: self.ipv4("eipv4")?,
            public_ipv4: self.ipv4("public-ipv4")?,
            vpc_cidr: self.cidr("vpc-cidr-block")?,
            vswitch_cidr: self.cidr("vswitch-cidr-block")?,
            vpc_id: self.text("vpc-id")?,
            vswitch_id: self.text("vswitch-id")?,
            interfaces: Vec::new(),
            max_netbw_egress_kbps: self.parsed(
                "instance/max-netbw-egress",
                "a bandwidth in Kbit/s (a whole number above 0)",
                parse_kbps,
            )?,
            max_netbw_ingress_kbps: self.parsed(
                "instance/max-netbw-ingress",
                "a bandwidth in Kbit/s (a whole number above 0)",
                parse_kbps,
            )?,
        };
        let macs = self
            .parsed(
                "network/interfaces/macs/",
                "one MAC per line",
                parse_mac_list,
            )?
            .unwrap_or_default();
        for mac in macs {
            let dir = format!("network/interfaces/macs/{mac}/");
            let mut eni = MetadataInterface {
                mac: mac.clone(),
                eni_id: self.text(&format!("{dir}network-interface-id"))?,
                primary_ip: self.ipv4(&format!("{dir}primary-ip-address"))?,
                gateway: self.ipv4(&format!("{dir}gateway"))?,
                vswitch_cidr: self.cidr(&format!("{dir}vswitch-cidr-block"))?,
                vpc_cidr: self.cidr(&format!("{dir}vpc-cidr-block"))?,
                private_ipv4s: self
                    .parsed(
                        &format!("{dir}private-ipv4s"),
                        "a JSON array of IPv4 addresses",
                        parse_ipv4_list,
                    )?
                    .unwrap_or_default(),
                ipv6s: self
                    .parsed(
                        &format!("{dir}ipv6s"),
                        "a list of IPv6 addresses ([a,b], quoted or not)",
                        parse_ip_list::<Ipv6Addr>,
                    )?
                    .unwrap_or_default(),
                ipv6_gateway: self.parsed(
                    &format!("{dir}ipv6-gateway"),
                    "an IPv6 address",
                    |s| s.parse().ok(),
                )?,
                vswitch_ipv6_cidr: self.parsed(
                    &format!("{dir}vswitch-ipv6-cidr-block"),
                    "an IPv6 CIDR block",
                    |s| s.parse::<Ipv6Net>().ok(),
                )?,
                ..Default::default()
            };
            let netmask =
                self.parsed(&format!("{dir}netmask"), "a dotted netmask", parse_netmask)?;
            if let Some(p) = netmask {
                eni.prefix_len = Some(p);
                eni.prefix_from = Some("netmask".to_string());
            } else if let Some(c) = eni.vswitch_cidr.or(md.vswitch_cidr) {
                eni.prefix_len = Some(c.prefix_len());
                eni.prefix_from = Some("vswitch-cidr-block".to_string());
            }
            md.interfaces.push(eni);
        }
        Ok(md)
    }
}

fn excerpt(s: &str) -> String {
    let short: String = s.chars().take(60).collect();
    if short.len() < s.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

/// `instance/max-netbw-*`: a whole number of Kbit/s above 0 (at most 10 Tbit/s: anything
/// larger is garbage, not a limit).
pub fn parse_kbps(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&k| k > 0 && k <= 10_000_000_000)
}

pub fn parse_mac(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let parts: Vec<&str> = s.split(':').collect();
    (parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())))
    .then_some(s)
}

/// `network/interfaces/macs/`: one `MAC/` per line.
pub fn parse_mac_list(s: &str) -> Option<Vec<String>> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| parse_mac(l.trim_end_matches('/')))
        .collect()
}

/// `["10.0.0.5","10.0.0.6"]`, and the unquoted `[10.0.0.5, 10.0.0.6]` seen in the wild.
pub fn parse_ipv4_list(s: &str) -> Option<Vec<Ipv4Addr>> {
    parse_ip_list(s)
}

/// A JSON-ish list of addresses, quoted or not (`ipv6s` is published as `[2408:4000::1]`).
pub fn parse_ip_list<T: std::str::FromStr>(s: &str) -> Option<Vec<T>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner
        .split(',')
        .map(|x| x.trim().trim_matches('"'))
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().ok())
        .collect()
}

pub fn parse_netmask(s: &str) -> Option<u8> {
    let bits = u32::from(s.trim().parse::<Ipv4Addr>().ok()?);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    #[test]
    fn parsers() {
        assert_eq!(
            parse_mac("00:16:3E:0A:0B:0C\n").as_deref(),
            Some("00:16:3e:0a:0b:0c")
        );
        assert_eq!(parse_mac("<html>"), None);
        assert_eq!(
            parse_mac_list("00:16:3e:00:00:01/\n00:16:3e:00:00:02/\n")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(parse_mac_list("garbage/"), None);
        let want: Vec<Ipv4Addr> = vec!["10.0.0.5".parse().unwrap(), "10.0.0.6".parse().unwrap()];
        assert_eq!(
            parse_ipv4_list("[\"10.0.0.5\",\"10.0.0.6\"]").unwrap(),
            want
        );
        assert_eq!(parse_ipv4_list("[10.0.0.5, 10.0.0.6]").unwrap(), want);
        assert_eq!(parse_ipv4_list("10.0.0.5"), None);
        let v6: Vec<Ipv6Addr> = parse_ip_list("[2408:4005:300::5, \"2408:4005:300::6\"]").unwrap();
        assert_eq!(v6.len(), 2);
        assert_eq!(parse_ip_list::<Ipv6Addr>("[10.0.0.5]"), None);
        assert_eq!(parse_ip_list::<Ipv6Addr>("[]"), Some(vec![]));
        assert_eq!(parse_netmask("255.255.240.0"), Some(20));
        assert_eq!(parse_netmask("255.0.255.0"), None);
        assert_eq!(parse_kbps("1024000\n"), Some(1_024_000));
        for bad in [
            "0",
            "-5",
            "1.5",
            "10 Gbps",
            "",
            "99999999999999999999",
            "<html>",
        ] {
            assert_eq!(parse_kbps(bad), None, "{bad:?}");
        }
    }

    /// How the fake answers one request.
    #[derive(Clone)]
    enum Answer {
        Body(u16, String),
        Hang,
    }

    /// A loopback metadata fake. `routes` maps "METHOD path" to an answer; anything else is 404.
    /// Requests whose token header differs from `require_token` (when set) get 401.
    fn fake(routes: Vec<(&str, Answer)>, require_token: Option<&str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Arc<HashMap<String, Answer>> = Arc::new(
            routes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        let token = require_token.map(str::to_string);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let routes = routes.clone();
                let token = token.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut first = String::new();
                    let _ = reader.read_line(&mut first);
                    let mut headers = Vec::new();
                    loop {
                        let mut l = String::new();
                        if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                            break;
                        }
                        headers.push(l.to_ascii_lowercase());
                    }
                    let mut parts = first.split_whitespace();
                    let key = format!(
                        "{} {}",
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or("")
                    );
                    let answer = match (&token, key.starts_with("GET")) {
                        (Some(t), true)
                            if !headers.iter().any(|h| {
                                h.trim() == format!("x-aliyun-ecs-metadata-token: {t}")
                            }) =>
                        {
                            Answer::Body(401, String::new())
                        }
                        _ => routes
                            .get(&key)
                            .cloned()
                            .unwrap_or(Answer::Body(404, String::new())),
                    };
                    match answer {
                        Answer::Hang => {
                            let mut buf = [0u8; 1];
                            let _ = stream.read(&mut buf); // until the client gives up
                        }
                        Answer::Body(status, body) => {
                            let _ = write!(
                                stream,
                                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn ok(s: &str) -> Answer {
        Answer::Body(200, s.to_string())
    }

    fn config(url: String) -> MetadataConfig {
        MetadataConfig {
            url,
            timeout_ms: 300,
            budget_ms: 2000,
            ..Default::default()
        }
    }

    const MAC: &str = "00:16:3e:00:00:01";

    fn healthy_routes() -> Vec<(&'static str, Answer)> {
        vec![
            ("GET /latest/meta-data/mac", ok(MAC)),
            ("GET /latest/meta-data/instance-id", ok("i-test")),
            ("GET /latest/meta-data/private-ipv4", ok("10.0.0.5")),
            ("GET /latest/meta-data/network/interfaces/macs/", ok("00:16:3e:00:00:01/\n")),
            ("GET /latest/meta-data/network/interfaces/macs/00:16:3e:00:00:01/primary-ip-address", ok("10.0.0.5")),
            ("GET /latest/meta-data/network/interfaces/macs/00:16:3e:00:00:01/gateway", ok("10.0.0.253")),
            ("GET /latest/meta-data/network/interfaces/macs/00:16:3e:00:00:01/vswitch-cidr-block", ok("10.0.0.0/24")),
            ("GET /latest/meta-data/network/interfaces/macs/00:16:3e:00:00:01/private-ipv4s", ok("[\"10.0.0.5\",\"10.0.0.6\"]")),
            ("GET /latest/meta-data/instance/max-netbw-egress", ok("1024000")),
            // Unquoted, as published.
            ("GET /latest/meta-data/network/interfaces/macs/00:16:3e:00:00:01/ipv6s", ok("[2408:4005:300::5]")),
            ("GET /latest/meta-data/network/interfaces/macs/00:16:3e:00:00:01/ipv6-gateway", ok("2408:4005:300::1")),
            ("GET /latest/meta-data/network/interfaces/macs/00:16:3e:00:00:01/vswitch-ipv6-cidr-block", ok("2408:4005:300::/64")),
        ]
    }

    #[test]
    fn ram_role_credentials_over_hardened_mode() {
        use crate::sources::cloud::credentials::{CredentialSource, Credentials, NoCredentials};
        let doc = r#"{"AccessKeyId":"STS.made-up","AccessKeySecret":"made-up-secret","Expiration":"2026-12-04T18:00:00Z","SecurityToken":"made-up-token","Code":"Success"}"#;
        let url = fake(
            vec![
                ("PUT /latest/api/token", ok("tok123")),
                (
                    "GET /latest/meta-data/ram/security-credentials/",
                    ok("EcsDiagRole"),
                ),
                (
                    "GET /latest/meta-data/ram/security-credentials/EcsDiagRole",
                    ok(doc),
                ),
            ],
            Some("tok123"),
        );
        let c = Credentials::from_ram_role(&mut MetadataClient::new(&config(url))).unwrap();
        assert_eq!(c.source, CredentialSource::RamRole("EcsDiagRole".into()));
        assert_eq!(c.security_token(), Some("made-up-token"));
        // No role attached: the list is not published.
        let url = fake(vec![], None);
        assert_eq!(
            Credentials::from_ram_role(&mut MetadataClient::new(&config(url))),
            Err(NoCredentials::NoRole)
        );
        // Garbage: the error names the path, not the body.
        let url = fake(
            vec![
                (
                    "GET /latest/meta-data/ram/security-credentials/",
                    ok("EcsDiagRole"),
                ),
                (
                    "GET /latest/meta-data/ram/security-credentials/EcsDiagRole",
                    ok("{\"AccessKeySecret\":\"made-up-secret\""),
                ),
            ],
            None,
        );
        match Credentials::from_ram_role(&mut MetadataClient::new(&config(url))) {
            Err(NoCredentials::Failed(e)) => {
                assert!(e.contains("ram/security-credentials/EcsDiagRole"), "{e}");
                assert!(!e.contains("made-up-secret"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // A service that hangs: bounded by the budget.
        let url = fake(
            vec![(
                "GET /latest/meta-data/ram/security-credentials/",
                Answer::Hang,
            )],
            None,
        );
        let started = std::time::Instant::now();
        assert!(matches!(
            Credentials::from_ram_role(&mut MetadataClient::new(&config(url))),
            Err(NoCredentials::Failed(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn hardened_mode_with_netmask_from_vswitch_cidr() {
        let mut routes = healthy_routes();
        routes.push(("PUT /latest/api/token", ok("tok123")));
        let url = fake(routes, Some("tok123"));
        let md = MetadataClient::new(&config(url)).read().unwrap();
        assert!(md.hardened);
        assert_eq!(md.mac, MAC);
        assert_eq!(md.instance_id.as_deref(), Some("i-test"));
        assert_eq!(md.eipv4, None, "404 means not published");
        let eni = md.primary().unwrap();
        assert_eq!(eni.prefix_len, Some(24));
        assert_eq!(eni.prefix_from.as_deref(), Some("vswitch-cidr-block"));
        assert_eq!(eni.private_ipv4s.len(), 2);
        assert_eq!(eni.gateway, Some("10.0.0.253".parse().unwrap()));
        assert_eq!(
            eni.ipv6s,
            vec!["2408:4005:300::5".parse::<Ipv6Addr>().unwrap()]
        );
        assert_eq!(eni.ipv6_gateway, Some("2408:4005:300::1".parse().unwrap()));
        assert_eq!(eni.vswitch_ipv6_cidr.map(|c| c.prefix_len()), Some(64));
        assert_eq!(md.max_netbw_egress_kbps, Some(1_024_000));
        assert_eq!(md.max_netbw_ingress_kbps, None, "not published");
    }

    #[test]
    fn garbage_bandwidth_is_named() {
        let mut routes = healthy_routes();
        routes.retain(|(k, _)| !k.ends_with("max-netbw-egress"));
        routes.push((
            "GET /latest/meta-data/instance/max-netbw-egress",
            ok("fast"),
        ));
        let e = MetadataClient::new(&config(fake(routes, None)))
            .read()
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("instance/max-netbw-egress"), "{text}");
        assert!(text.contains("Kbit/s"), "{text}");
    }

    #[test]
    fn token_endpoint_refused_falls_back_to_plain() {
        let mut routes = healthy_routes();
        routes.push((
            "PUT /latest/api/token",
            Answer::Body(403, "forbidden".into()),
        ));
        let url = fake(routes, None);
        let md = MetadataClient::new(&config(url)).read().unwrap();
        assert!(!md.hardened);
        assert_eq!(
            md.primary().unwrap().primary_ip,
            Some("10.0.0.5".parse().unwrap())
        );
    }

    fn timed_err(url: String) -> (MetadataError, Duration) {
        let start = Instant::now();
        let e = MetadataClient::new(&config(url)).read().unwrap_err();
        (e, start.elapsed())
    }

    #[test]
    fn hanging_service_ends_within_its_timeout() {
        let url = fake(vec![("PUT /latest/api/token", Answer::Hang)], None);
        let (e, took) = timed_err(url);
        assert!(e.to_string().contains("no answer within 300 ms"), "{e}");
        // The read gives up on the first silent request, not after every path.
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn hanging_later_path_is_cut_by_the_budget_or_timeout() {
        let mut routes = healthy_routes();
        routes.retain(|(k, _)| !k.ends_with("/private-ipv4"));
        routes.push(("GET /latest/meta-data/private-ipv4", Answer::Hang));
        let (e, took) = timed_err(fake(routes, None));
        assert!(e.to_string().contains("private-ipv4"), "{e}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    /// With a per-request timeout longer than what is left of the budget, a hanging service
    /// is cut by the budget, and the error says so (not "per-request timeout").
    #[test]
    fn budget_exceeded_names_the_budget() {
        let url = fake(vec![("PUT /latest/api/token", Answer::Hang)], None);
        let mut c = config(url);
        c.timeout_ms = 5000;
        c.budget_ms = 300;
        let e = MetadataClient::new(&c).read().unwrap_err();
        assert!(
            matches!(e, MetadataError::Budget { budget_ms: 300, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("budget of 300 ms"), "{e}");
    }

    #[test]
    fn server_error_names_the_path() {
        let mut routes = healthy_routes();
        routes.retain(|(k, _)| !k.ends_with("/instance-id"));
        routes.push((
            "GET /latest/meta-data/instance-id",
            Answer::Body(500, "oops".into()),
        ));
        let (e, _) = timed_err(fake(routes, None));
        assert_eq!(
            e,
            MetadataError::Status {
                path: "/latest/meta-data/instance-id".into(),
                status: 500
            }
        );
    }

    #[test]
    fn missing_mac_is_a_clear_error() {
        let (e, _) = timed_err(fake(vec![], None));
        assert!(
            e.to_string()
                .contains("/latest/meta-data/mac: not published"),
            "{e}"
        );
    }

    #[test]
    fn garbage_is_rejected_naming_path_and_value() {
        let mut routes = healthy_routes();
        routes.retain(|(k, _)| !k.ends_with("/private-ipv4"));
        routes.push((
            "GET /latest/meta-data/private-ipv4",
            ok("<html>captive portal</html>"),
        ));
        let (e, _) = timed_err(fake(routes, None));
        let s = e.to_string();
        assert!(
            s.contains("/latest/meta-data/private-ipv4")
                && s.contains("expected an IPv4 address")
                && s.contains("captive portal"),
            "{s}"
        );
    }

    #[test]
    fn oversized_body_is_rejected() {
        let big = "0".repeat(200_000);
        let mut routes = healthy_routes();
        routes.retain(|(k, _)| !k.ends_with("/instance-id"));
        routes.push(("GET /latest/meta-data/instance-id", Answer::Body(200, big)));
        let (e, _) = timed_err(fake(routes, None));
        assert!(e.to_string().contains("body larger than"), "{e}");
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (e, took) = timed_err(format!("http://127.0.0.1:{port}"));
        assert!(matches!(e, MetadataError::Unreachable { .. }), "{e}");
        assert!(took < Duration::from_secs(2));
    }
}
