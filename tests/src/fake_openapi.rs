//! A loopback fake of the Alibaba Cloud OpenAPI (ECS, VPC and Anti-DDoS RPC actions) for the
//! fault matrix, run inside the guest namespace:
//! `fake-openapi PORT FILE.json SECRET TOKEN LOG`.
//!
//! Every request must be signed (ACS3-HMAC-SHA256) with SECRET and carry TOKEN as its
//! security token: the fake signs the request again with what it knows and answers
//! `SignatureDoesNotMatch` (400) or `InvalidSecurityToken` (400) otherwise, so a case whose
//! agent gets a cloud verdict has proven the signature. Each request is logged to LOG as
//! `ACTION signed=BOOL token=BOOL`.
//!
//! FILE.json maps an action (or `ACTION PARAM=VALUE`, the more specific first) to its answer:
//! a JSON body (200), or `{"status": N, "body": {...}}`. The file is re-read on every request,
//! so a test changes what the cloud says by rewriting it. Keys are made up; nothing leaves the
//! namespace. Prints `ready` once listening.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use ecs_diag::sources::cloud::credentials::Credentials;
use ecs_diag::sources::cloud::signature::{sign, Request};
use serde_json::Value;

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
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

fn answer(file: &str, action: &str, query: &[(String, String)]) -> (u16, String) {
    let doc: Value = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => return (500, format!(r#"{{"Code":"FakeBroken","Message":"{e}"}}"#)),
    };
    let specific = query
        .iter()
        .map(|(k, v)| format!("{action} {k}={v}"))
        .find(|k| doc.get(k).is_some());
    let entry = specific
        .as_deref()
        .and_then(|k| doc.get(k))
        .or_else(|| doc.get(action));
    match entry {
        Some(e) if e.get("status").is_some() => (
            e["status"].as_u64().unwrap_or(500) as u16,
            e["body"].to_string(),
        ),
        Some(e) => (200, e.to_string()),
        None => (
            404,
            format!(
                r#"{{"Code":"InvalidAction.NotFound","Message":"the fake does not know {action}"}}"#
            ),
        ),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: fake-openapi PORT FILE.json SECRET TOKEN LOG");
        std::process::exit(64);
    }
    let (file, secret, token, log) = (&args[2], &args[3], &args[4], &args[5]);
    let listener = match TcpListener::bind(format!("127.0.0.1:{}", args[1])) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-openapi: bind 127.0.0.1:{}: {e}", args[1]);
            std::process::exit(71);
        }
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        let (file, secret, token, log) = (file.clone(), secret.clone(), token.clone(), log.clone());
        // One thread per connection: the agent's calls come in parallel.
        std::thread::spawn(move || {
            let Ok(read_half) = stream.try_clone() else {
                return;
            };
            let mut reader = BufReader::new(read_half);
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                return;
            }
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
            let sent_token = h("x-acs-security-token");
            let creds = Credentials::new(
                "STS.matrix-made-up",
                &secret,
                (!sent_token.is_empty()).then_some(sent_token.as_str()),
            );
            let (host, action, version) = (h("host"), h("x-acs-action"), h("x-acs-version"));
            let want = sign(
                &Request {
                    method: first.split_whitespace().next().unwrap_or("POST"),
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
            let signed = want.last().map(|(_, v)| v.clone()) == Some(h("authorization"));
            let token_ok = sent_token == token;
            // One write per line (O_APPEND): the calls come in parallel.
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&log)
            {
                let line = format!("{action} signed={signed} token={token_ok}\n");
                let _ = f.write_all(line.as_bytes());
            }
            let (status, body) = if !signed {
                (400, r#"{"Code":"SignatureDoesNotMatch","Message":"the request signature does not match"}"#.to_string())
            } else if !token_ok {
                (400, r#"{"Code":"InvalidSecurityToken.Mismatch","Message":"the security token is not the role's"}"#.to_string())
            } else {
                answer(&file, &action, &query)
            };
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
    }
}
