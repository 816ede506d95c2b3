//! One read-only OpenAPI call (RPC style): signed with ACS3-HMAC-SHA256, bounded by a deadline
//! shared by all calls of a diagnosis, its body capped, throttling backed off within the
//! deadline, and every refusal turned into an error that names the action — never the keys.
//! Endpoints are `https://` (the region's VPC-internal endpoints; rustls, certificates checked
//! against the system trust store) or, for tests, plain `http://` to loopback (the config
//! refuses plain http elsewhere).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::credentials::Credentials;
use super::signature::{canonical_query, sign, Request};

/// Answers larger than this are refused (the largest, a security group's rules, is far below).
const BODY_LIMIT: u64 = 4 * 1024 * 1024;
/// Throttled calls are retried this many times, if the deadline allows.
const THROTTLE_RETRIES: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// The RAM policy does not allow the action (`Forbidden*`, `NoPermission`).
    #[error("{action}: not permitted to the RAM role ({code}); the policy needs {action}")]
    Denied { action: String, code: String },
    #[error("{action}: throttled by the API ({code}) until the budget ran out")]
    Throttled { action: String, code: String },
    #[error("{action}: the cloud calls' budget of {budget_ms} ms ran out")]
    Budget { action: String, budget_ms: u64 },
    #[error("{action}: cannot reach {endpoint}: {reason}")]
    Transport {
        action: String,
        endpoint: String,
        reason: String,
    },
    #[error("{action}: the API refused the call: {code}: {message}")]
    Api {
        action: String,
        code: String,
        message: String,
    },
    #[error("{action}: unusable answer: {reason}")]
    BadAnswer { action: String, reason: String },
}

/// One service's endpoint: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
}

impl Endpoint {
    pub fn new(url: &str) -> Endpoint {
        Endpoint {
            url: url.trim_end_matches('/').to_string(),
        }
    }
    /// `host[:port]` as signed and sent in `host`.
    pub fn authority(&self) -> &str {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }
}

/// A shared deadline for every call of one diagnosis.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub started: Instant,
    pub total: Duration,
}

impl Budget {
    pub fn new(total: Duration) -> Budget {
        Budget {
            started: Instant::now(),
            total,
        }
    }
    pub fn left(&self) -> Duration {
        self.total.saturating_sub(self.started.elapsed())
    }
}

/// Unique per request (the API rejects a replayed nonce): this process, the time and a count,
/// hashed.
fn nonce() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{}:{now}:{n}", std::process::id());
    super::signature::sha256_hex(seed.as_bytes())[..32].to_string()
}

/// The signature's date, `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn now_utc() -> String {
    super::sas::utc_text(time::OffsetDateTime::now_utc(), 'T') + "Z"
}

/// An API error body: `{"Code": ..., "Message": ...}`.
fn error_code(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(|s| s.chars().take(200).collect::<String>())
            .unwrap_or_default()
    };
    (text("Code"), text("Message"))
}

/// What an API error code means for the caller.
pub fn classify(action: &str, status: u16, code: &str, message: &str) -> CloudError {
    let action = action.to_string();
    if code.starts_with("Throttling") || status == 429 {
        return CloudError::Throttled {
            action,
            code: code.to_string(),
        };
    }
    if code.starts_with("Forbidden") || code.contains("NoPermission") || code == "NoAuth" {
        return CloudError::Denied {
            action,
            code: code.to_string(),
        };
    }
    CloudError::Api {
        action,
        code: if code.is_empty() {
            format!("HTTP {status}")
        } else {
            code.to_string()
        },
        message: message.to_string(),
    }
}

pub struct OpenApi {
    agent: ureq::Agent,
}

impl Default for OpenApi {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenApi {
    pub fn new() -> OpenApi {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("ecs-diag/", env!("CARGO_PKG_VERSION")))
            // The system's trust store (the distribution's CA bundle), not a bundled list.
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build()
            .into();
        OpenApi { agent }
    }

    /// Calls `action` of API `version` at `endpoint` with `params`; the JSON answer.
    pub fn call(
        &self,
        endpoint: &Endpoint,
        creds: &Credentials,
        action: &str,
        version: &str,
        params: &[(&str, &str)],
        budget: &Budget,
    ) -> Result<serde_json::Value, CloudError> {
        let query: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut attempt = 0;
        loop {
            let left = budget.left();
            if left.is_zero() {
                return Err(CloudError::Budget {
                    action: action.to_string(),
                    budget_ms: budget.total.as_millis() as u64,
                });
            }
            let req = Request {
                method: "POST",
                host: endpoint.authority(),
                path: "/",
                query: query.clone(),
                action,
                version,
                body: b"",
            };
            let headers = sign(&req, creds, &now_utc(), &nonce());
            let url = format!("{}/?{}", endpoint.url, canonical_query(&query));
            let mut r = self.agent.post(&url);
            for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
                r = r.header(k, v);
            }
            let resp = r
                .config()
                .timeout_global(Some(left))
                .build()
                .send_empty()
                .map_err(|e| match e {
                    ureq::Error::Timeout(_) => CloudError::Budget {
                        action: action.to_string(),
                        budget_ms: budget.total.as_millis() as u64,
                    },
                    other => CloudError::Transport {
                        action: action.to_string(),
                        endpoint: endpoint.url.clone(),
                        reason: other.to_string(),
                    },
                })?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .with_config()
                .limit(BODY_LIMIT)
                .read_to_string()
                .map_err(|e| CloudError::BadAnswer {
                    action: action.to_string(),
                    reason: match e {
                        ureq::Error::BodyExceedsLimit(n) => format!("larger than {n} bytes"),
                        other => format!("unreadable body: {other}"),
                    },
                })?;
            if status == 200 {
                return serde_json::from_str(&body).map_err(|_| CloudError::BadAnswer {
                    action: action.to_string(),
                    reason: format!("expected JSON, got {} bytes that are not", body.len()),
                });
            }
            let (code, message) = error_code(&body);
            match classify(action, status, &code, &message) {
                CloudError::Throttled { .. } if attempt < THROTTLE_RETRIES => {
                    attempt += 1;
                    let pause = Duration::from_millis(200 << attempt).min(budget.left());
                    std::thread::sleep(pause);
                }
                e => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::super::fake;

    fn fake(secret: &str, answers: Vec<(u16, String)>) -> (Endpoint, Arc<Mutex<Vec<String>>>) {
        fake::serve(secret, fake::in_turn(answers))
    }

    fn creds() -> Credentials {
        Credentials::new("STS.made-up", "made-up-secret", Some("made-up-token"))
    }

    #[test]
    fn a_signed_call_is_answered_and_a_wrong_secret_is_refused() {
        let (ep, seen) = fake(
            "made-up-secret",
            vec![(200, r#"{"Status":"Running"}"#.into())],
        );
        let api = OpenApi::new();
        let budget = Budget::new(Duration::from_secs(3));
        let v = api
            .call(
                &ep,
                &creds(),
                "DescribeInstanceAttribute",
                "2014-05-26",
                &[("InstanceId", "i-made up")],
                &budget,
            )
            .unwrap();
        assert_eq!(v["Status"], "Running");
        let wrong = Credentials::new("STS.made-up", "not-the-secret", Some("made-up-token"));
        let e = api
            .call(
                &ep,
                &wrong,
                "DescribeInstanceAttribute",
                "2014-05-26",
                &[],
                &budget,
            )
            .unwrap_err();
        assert!(
            matches!(&e, CloudError::Api { code, .. } if code == "SignatureDoesNotMatch"),
            "{e}"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                "DescribeInstanceAttribute signed=true",
                "DescribeInstanceAttribute signed=false"
            ]
        );
        for s in creds().secrets() {
            assert!(!e.to_string().contains(s));
        }
    }

    #[test]
    fn refusals_throttling_and_budget() {
        let api = OpenApi::new();
        let (ep, _) = fake(
            "made-up-secret",
            vec![(
                403,
                r#"{"Code":"Forbidden.RAM","Message":"User not authorized"}"#.into(),
            )],
        );
        let e = api
            .call(
                &ep,
                &creds(),
                "DescribeSecurityGroupAttribute",
                "2014-05-26",
                &[],
                &Budget::new(Duration::from_secs(3)),
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("the policy needs DescribeSecurityGroupAttribute"),
            "{e}"
        );
        // Throttled twice, then answered: backed off within the budget.
        let (ep, seen) = fake(
            "made-up-secret",
            vec![
                (
                    400,
                    r#"{"Code":"Throttling.User","Message":"slow down"}"#.into(),
                ),
                (
                    400,
                    r#"{"Code":"Throttling.User","Message":"slow down"}"#.into(),
                ),
                (200, "{}".into()),
            ],
        );
        assert!(api
            .call(
                &ep,
                &creds(),
                "DescribeVSwitchAttributes",
                "2016-04-28",
                &[],
                &Budget::new(Duration::from_secs(5))
            )
            .is_ok());
        assert_eq!(seen.lock().unwrap().len(), 3);
        // An endpoint that hangs: the call ends with the budget.
        let (ep, _) = fake("made-up-secret", vec![(0, String::new())]);
        let started = Instant::now();
        let e = api
            .call(
                &ep,
                &creds(),
                "DescribeEipAddresses",
                "2016-04-28",
                &[],
                &Budget::new(Duration::from_millis(300)),
            )
            .unwrap_err();
        assert!(matches!(e, CloudError::Budget { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Garbage is named; an https endpoint that does not answer is a transport error.
        let (ep, _) = fake("made-up-secret", vec![(200, "<html>".into())]);
        let e = api
            .call(
                &ep,
                &creds(),
                "DescribeNetworkInterfaces",
                "2014-05-26",
                &[],
                &Budget::new(Duration::from_secs(3)),
            )
            .unwrap_err();
        assert!(e.to_string().contains("expected JSON"), "{e}");
        let e = api
            .call(
                &Endpoint::new("https://127.0.0.1:1"),
                &creds(),
                "X",
                "1",
                &[],
                &Budget::new(Duration::from_secs(1)),
            )
            .unwrap_err();
        assert!(
            matches!(&e, CloudError::Transport { endpoint, .. } if endpoint == "https://127.0.0.1:1"),
            "{e}"
        );
        assert_eq!(
            Endpoint::new("http://127.0.0.1:8080/").authority(),
            "127.0.0.1:8080"
        );
    }

    /// A loopback TLS endpoint whose self-signed certificate no system trust store holds: the
    /// handshake happens and the certificate is refused, so the keys are never sent to it.
    #[test]
    fn an_untrusted_certificate_is_refused() {
        use std::sync::Arc;
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![der], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(0));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let conn = rustls::ServerConnection::new(server.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut buf = [0u8; 1024];
                if tls.read(&mut buf).unwrap_or(0) > 0 {
                    *seen.lock().unwrap() += 1;
                }
            }
        });
        let e = OpenApi::new()
            .call(
                &Endpoint::new(&format!("https://{addr}")),
                &creds(),
                "DescribeInstanceAttribute",
                "2014-05-26",
                &[],
                &Budget::new(Duration::from_secs(3)),
            )
            .unwrap_err();
        assert!(matches!(e, CloudError::Transport { .. }), "{e}");
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            *requests.lock().unwrap(),
            0,
            "no request reached the untrusted endpoint"
        );
    }
}
