//! A loopback OpenAPI fake for the unit tests: it re-signs every request with the secret it
//! knows and refuses a wrong signature (`SignatureDoesNotMatch`), so a test that passes proves
//! the signature; it answers each signed request from `respond(action, query)`. Status 0
//! hangs until the client gives up.

use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::openapi::Endpoint;
use super::received::Received;

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
                let Some(req) = Received::read(&mut reader) else {
                    return;
                };
                let good = req.signed_with(&secret);
                let (action, query) = (req.action().to_string(), req.query.clone());
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
