//! A loopback OpenAPI fake for the unit tests: it re-signs every request with the secret it
//! knows and refuses a wrong signature (`SignatureDoesNotMatch`), so a test that passes proves
//! the signature; it answers each signed request from `respond(action, query)`. Status 0
//! hangs until the client gives up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::credentials::Credentials;
use super::openapi::Endpoint;
use super::signature::{sign, Request};

pub type Respond = dyn Fn(&str, &[(String, String)]) -> (u16, String) + Send + Sync;

/// Answers from `answers` in turn, whatever the action (the last one repeats).
pub fn in_turn(answers: Vec<(u16, String)>) -> impl Fn(&str, &[(String, String)]) -> (u16, String) {
    let queue = Mutex::new(answers.into_iter());
    let last = Mutex::new((500, String::new()));
    move |_, _| {
        let mut last = last.lock().unwrap();
        if let Some(a) = queue.lock().unwrap().next() {
            *last = a;
        }
        last.clone()
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(h, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Starts the fake; the endpoint and the log of `ACTION signed=BOOL` lines.
pub fn serve(
    secret: &str,
    respond: impl Fn(&str, &[(String, String)]) -> (u16, String) + Send + Sync + 'static,
) -> (Endpoint, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let secret = secret.to_string();
    let respond: Arc<Respond> = Arc::new(respond);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (log, secret, respond) = (log.clone(), secret.clone(), respond.clone());
            // One thread per connection: calls made in parallel are answered in parallel.
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
                    if let Some((k, v)) = l.trim_end().split_once(": ") {
                        headers.push((k.to_ascii_lowercase(), v.to_string()));
                    }
                }
                let h = |k: &str| {
                    headers
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let target = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                let query: Vec<(String, String)> = target
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
                let token = h("x-acs-security-token");
                let creds = Credentials::new(
                    "STS.made-up",
                    &secret,
                    (!token.is_empty()).then_some(token.as_str()),
                );
                let (host, action, version) = (h("host"), h("x-acs-action"), h("x-acs-version"));
                let want = sign(
                    &Request {
                        method: "POST",
                        host: &host,
                        path: "/",
                        query: query.clone(),
                        action: &action,
                        version: &version,
                        body: b"",
                    },
                    &creds,
                    &h("x-acs-date"),
                    &h("x-acs-signature-nonce"),
                );
                let good = want.last().map(|(_, v)| v.clone()) == Some(h("authorization"));
                log.lock().unwrap().push(format!("{action} signed={good}"));
                let (status, body) = if good {
                    respond(&action, &query)
                } else {
                    (
                        400,
                        r#"{"Code":"SignatureDoesNotMatch","Message":"bad"}"#.to_string(),
                    )
                };
                if status == 0 {
                    let mut b = [0u8; 1];
                    let _ = stream.read(&mut b);
                    return;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (Endpoint::new(&format!("http://{addr}")), seen)
}
