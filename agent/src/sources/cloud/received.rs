//! A signed OpenAPI request as a server receives it, and whether its ACS3-HMAC-SHA256
//! signature is right: what the unit tests' loopback fake checks every request against, by
//! signing it again with the secret it knows. (The fault matrix's fake checks with Alibaba
//! Cloud's own SDK instead: `tests/cloud/fake_openapi.py`.)

use std::io::BufRead;

use super::credentials::Credentials;
use super::signature::{sign, Request};

/// Request line, headers (names lower-cased) and the decoded query.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
}

/// Percent-decoding; a malformed escape is kept as it is.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Received {
    /// Reads the request line and headers (the RPC calls have no body).
    pub fn read(reader: &mut impl BufRead) -> Option<Received> {
        let mut first = String::new();
        reader.read_line(&mut first).ok()?;
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                break;
            }
            if let Some((k, v)) = l.trim_end().split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let mut parts = first.split_whitespace();
        let method = parts.next()?.to_string();
        let target = parts.next().unwrap_or("/");
        let query = target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Some(Received {
            method,
            headers,
            query,
        })
    }

    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn action(&self) -> &str {
        self.header("x-acs-action")
    }

    /// Whether the `authorization` header is the signature `secret` makes of this request
    /// (its security token, if any, is part of what is signed).
    pub fn signed_with(&self, secret: &str) -> bool {
        let sent = self.header("authorization");
        // The access key id is named in the header: the one sent is what is signed with.
        let id = sent
            .split("Credential=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("");
        let token = self.header("x-acs-security-token");
        let creds = Credentials::new(id, secret, (!token.is_empty()).then_some(token));
        let want = sign(
            &Request {
                method: &self.method,
                host: self.header("host"),
                path: "/",
                query: self.query.clone(),
                action: self.action(),
                version: self.header("x-acs-version"),
                body: b"",
            },
            &creds,
            self.header("x-acs-date"),
            self.header("x-acs-signature-nonce"),
        );
        want.last().is_some_and(|(_, v)| v == sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_leniently() {
        assert_eq!(decode("a%20b%2Fc"), "a b/c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
