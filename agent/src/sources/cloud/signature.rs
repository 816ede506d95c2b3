//! ACS3-HMAC-SHA256, the current signature of Alibaba Cloud's OpenAPI (V3): a canonical request
//! (method, path, sorted query, the signed `host`/`x-acs-*`/`content-type` headers, the body's
//! SHA-256) is hashed, and its hash signed with the AccessKey secret by HMAC-SHA256. Pure: the
//! caller supplies the date and nonce, so the documentation's worked example is a test.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::credentials::Credentials;

pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// One OpenAPI call to sign (RPC style: path `/`, parameters in the query).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The endpoint's host (and `:port` when not the default), as sent in `host`.
    pub host: &'a str,
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub action: &'a str,
    pub version: &'a str,
    pub body: &'a [u8],
}

/// RFC 3986 percent-encoding as the signature wants it: unreserved characters stay, everything
/// else (space too) becomes `%XX` in upper case.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The query as it is signed and sent: encoded pairs sorted by key (then value).
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The headers to send, `authorization` last. `date` is `YYYY-MM-DDTHH:MM:SSZ` (UTC) and
/// `nonce` unique per request.
pub fn sign(req: &Request, creds: &Credentials, date: &str, nonce: &str) -> Vec<(String, String)> {
    let payload = sha256_hex(req.body);
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), req.host.to_string()),
        ("x-acs-action".into(), req.action.to_string()),
        ("x-acs-content-sha256".into(), payload.clone()),
        ("x-acs-date".into(), date.to_string()),
        ("x-acs-signature-nonce".into(), nonce.to_string()),
        ("x-acs-version".into(), req.version.to_string()),
    ];
    if let Some(token) = creds.security_token() {
        headers.push(("x-acs-security-token".into(), token.to_string()));
    }
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed: String = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let path = req
        .path
        .split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/");
    let canonical_request = format!(
        "{}\n{path}\n{}\n{canonical_headers}\n{signed}\n{payload}",
        req.method,
        canonical_query(&req.query)
    );
    let to_sign = format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()));
    // HMAC accepts a key of any length: new_from_slice cannot fail for Hmac<Sha256>.
    let signature = match Hmac::<Sha256>::new_from_slice(creds.secret().as_bytes()) {
        Ok(mut mac) => {
            mac.update(to_sign.as_bytes());
            hex(&mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    headers.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={},SignedHeaders={signed},Signature={signature}",
            creds.access_key_id
        ),
    ));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Alibaba Cloud's "V3 request structure and signature" page:
    /// RunInstances in cn-shanghai with the placeholder key pair.
    #[test]
    fn the_documented_example_signs_to_the_documented_signature() {
        let creds = Credentials::new("YourAccessKeyId", "YourAccessKeySecret", None);
        let req = Request {
            method: "POST",
            host: "ecs.cn-shanghai.aliyuncs.com",
            path: "/",
            query: vec![
                ("RegionId".into(), "cn-shanghai".into()),
                (
                    "ImageId".into(),
                    "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd".into(),
                ),
            ],
            action: "RunInstances",
            version: "2014-05-26",
            body: b"",
        };
        let headers = sign(
            &req,
            &creds,
            "2023-10-26T10:22:32Z",
            "3156853299f313e23d1673dc12e1703d",
        );
        let auth = &headers.last().unwrap().1;
        assert_eq!(
            auth,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        // A different secret, date or parameter changes it.
        let other = Credentials::new("YourAccessKeyId", "another", None);
        assert_ne!(
            sign(
                &req,
                &other,
                "2023-10-26T10:22:32Z",
                "3156853299f313e23d1673dc12e1703d"
            )
            .last()
            .unwrap()
            .1,
            *auth
        );
    }

    #[test]
    fn a_security_token_is_sent_and_signed() {
        let creds = Credentials::new("STS.id", "secret", Some("token+/="));
        let req = Request {
            method: "POST",
            host: "ecs-vpc.cn-hangzhou.aliyuncs.com",
            path: "/",
            query: vec![],
            action: "DescribeInstanceAttribute",
            version: "2014-05-26",
            body: b"",
        };
        let headers = sign(&req, &creds, "2026-01-01T00:00:00Z", "n");
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-acs-security-token" && v == "token+/="));
        assert!(headers.last().unwrap().1.contains(
            "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version,"
        ));
    }

    #[test]
    fn encoding_and_query_order() {
        assert_eq!(percent_encode("a b*~/é"), "a%20b%2A~%2F%C3%A9");
        let q = canonical_query(&[
            ("b".into(), "2".into()),
            ("a".into(), "x y".into()),
            ("A".into(), String::new()),
        ]);
        assert_eq!(q, "A=&a=x%20y&b=2");
    }
}
