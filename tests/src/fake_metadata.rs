//! A loopback fake of the ECS instance metadata service for the fault matrix, run inside the
//! guest namespace: `fake-metadata PORT FILE.json [BIND-ADDRESS]` (default 127.0.0.1; the
//! matrix also uses it as an ordinary TCP service on 0.0.0.0), where the JSON maps meta-data paths
//! (relative to `/latest/meta-data/`) to bodies. The file is re-read on every request, so a
//! test changes what the cloud "assigned" by rewriting it. `PUT /latest/api/token` answers a token, and
//! GETs must carry it (hardened mode). Prints `ready` once listening.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

const TOKEN: &str = "matrix-token";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !(3..=4).contains(&args.len()) {
        eprintln!("usage: fake-metadata PORT FILE.json [BIND-ADDRESS]");
        std::process::exit(64);
    }
    let load = || -> Result<HashMap<String, String>, String> {
        std::fs::read_to_string(&args[2])
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    };
    if let Err(e) = load() {
        eprintln!("fake-metadata: {}: {e}", args[2]);
        std::process::exit(66);
    }
    let bind = args.get(3).map(String::as_str).unwrap_or("127.0.0.1");
    let listener = match TcpListener::bind(format!("{bind}:{}", args[1])) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-metadata: bind {bind}:{}: {e}", args[1]);
            std::process::exit(71);
        }
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => continue,
        });
        let mut first = String::new();
        if reader.read_line(&mut first).is_err() {
            continue;
        }
        let mut has_token = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if line.to_ascii_lowercase().trim() == format!("x-aliyun-ecs-metadata-token: {TOKEN}") {
                has_token = true;
            }
        }
        let mut parts = first.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (status, body) = match (method, path.strip_prefix("/latest/meta-data/")) {
            ("PUT", _) if path == "/latest/api/token" => (200, TOKEN.to_string()),
            ("GET", Some(_)) if !has_token => (401, String::new()),
            ("GET", Some(rel)) => match load().unwrap_or_default().get(rel) {
                Some(b) => (200, b.clone()),
                None => (404, String::new()),
            },
            _ => (404, String::new()),
        };
        let mut s = stream;
        let _ = write!(
            s,
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
