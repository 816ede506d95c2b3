//! `ecs-diag serve` running inside a case's guest namespace, with a tiny HTTP client that asks
//! it from inside the same namespace (bash's /dev/tcp: no client binary to install).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::matrix::{agent_bin, Topology};

/// The daemon; killed and reaped on drop, even when a case fails.
pub struct Served<'t> {
    t: &'t Topology,
    child: Child,
    pub port: u16,
    /// Everything the daemon logged so far.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl<'t> Served<'t> {
    /// Starts `serve` in the guest with the case's config plus `extra` TOML (a 1 s refresh
    /// unless `extra` says otherwise) and waits for its listening line.
    pub fn start(t: &'t Topology, extra: &str) -> Served<'t> {
        let cfg = t.dir.path().join("serve.toml");
        let base = std::fs::read_to_string(t.dir.path().join("config.toml")).unwrap();
        let refresh = if extra.contains("[refresh]") {
            ""
        } else {
            "[refresh]\ninterval_s = 1\n"
        };
        // The history stays in the case's directory, never in /var/lib/ecs-diag.
        let state = t.dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        // `[paths]` is the base config's; the extra tables follow.
        let base = base.replace(
            "[paths]\n",
            &format!("[paths]\nstate = \"{}\"\n", state.display()),
        );
        assert!(
            base.contains("state = "),
            "the case config has a [paths] table"
        );
        std::fs::write(
            &cfg,
            format!("{base}[server]\nlisten = \"127.0.0.1:0\"\n{refresh}{extra}"),
        )
        .unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &t.guest, agent_bin(), "serve", "--config"])
            .arg(&cfg)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        // Keep reading the log (a closed pipe would break the daemon's logging); pass the
        // port on.
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in
                std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok)
            {
                if let Some(p) = line.split("listening on http://127.0.0.1:").nth(1) {
                    let _ = port_tx.send(p.trim().parse::<u16>().ok());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let port = port_rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        let mut served = Served {
            t,
            child,
            port: 0,
            log,
        };
        served.port = port.expect("the daemon logs its port");
        served
    }

    /// `GET path`: the body as JSON, or None (not answering yet, not JSON).
    pub fn get(&self, path: &str) -> Option<Value> {
        serde_json::from_str(&self.body("GET", path)?).ok()
    }

    /// `METHOD path` (no request body): the response body as text, or None.
    pub fn body(&self, method: &str, path: &str) -> Option<String> {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{} && printf '{method} {path} HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n' >&3 && cat <&3",
            self.port
        );
        let out = self.t.exec(&self.t.guest, &["bash", "-c", &script]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The served status of one check.
    pub fn status(&self, id: &str) -> Option<String> {
        self.get(&format!("/v1/checks/{id}"))
            .and_then(|v| v["status"].as_str().map(str::to_string))
    }

    /// Waits (up to 20 s) until check `id` is served with status `want`; panics naming `what`.
    pub fn wait_for(&self, id: &str, want: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(v) = self.get(&format!("/v1/checks/{id}")) {
                if v["status"] == want {
                    return v;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{id} never became {want} after {what} (last: {:?})",
            self.get(&format!("/v1/checks/{id}"))
        );
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
