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

use std::io::{BufReader, Write};
use std::net::TcpListener;

use ecs_diag::sources::cloud::received::Received;
use serde_json::Value;

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
            let Some(req) = Received::read(&mut BufReader::new(read_half)) else {
                return;
            };
            let (action, query) = (req.action().to_string(), req.query.clone());
            let signed = req.signed_with(&secret);
            let token_ok = req.header("x-acs-security-token") == token;
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
