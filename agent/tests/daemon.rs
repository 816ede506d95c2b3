//! `ecs-diag serve` as a process: the HTTP API and metrics through real sockets, a real
//! Prometheus scraping it, hostile clients, config reload, a hanging source, shutdown.
//! Everything listens on loopback (or inside a namespace the test creates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The daemon under test: `ECS_DIAG_BIN` when set (`scripts/test` sets it to the static
/// binary the packages ship, whose memory behaviour the flood test measures), else this
/// crate's build.
fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("ECS_DIAG_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_ecs-diag").to_string())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Isolated config: no host /etc, metadata never unless `extra` says otherwise.
fn config_text(dir: &Path, port: u16, extra: &str) -> String {
    let metadata = if extra.contains("[metadata]") {
        ""
    } else {
        "[metadata]\nmode = \"never\"\n"
    };
    // The history goes to the test's directory, never to /var/lib/ecs-diag.
    let state = if extra.contains("state =") {
        String::new()
    } else {
        let _ = std::fs::create_dir_all(dir.join("state"));
        format!("state = \"{}/state\"\n", dir.display())
    };
    // `server.KEY = V` lines of `extra` go into the [server] table.
    let (server, rest): (Vec<&str>, Vec<&str>) =
        extra.lines().partition(|l| l.starts_with("server."));
    let server: String = server
        .iter()
        .map(|l| format!("{}\n", l.trim_start_matches("server.")))
        .collect();
    let extra = if rest.is_empty() {
        String::new()
    } else {
        rest.join("\n") + "\n"
    };
    format!(
        "{metadata}[server]\nlisten = \"127.0.0.1:{port}\"\ndiagnose_min_interval_s = 0\n{server}[paths]\netc = \"{0}/etc\"\nsys = \"{0}/sys\"\n{state}{extra}",
        dir.display()
    )
}

impl Daemon {
    fn start(extra: &str) -> Daemon {
        let d = Daemon::spawn(extra, &[]);
        d.wait_for(
            |d| d.get("/healthz").1.contains("\"fresh\""),
            "first report",
        );
        d
    }

    /// Started and listening; its first report may still be coming (or never come).
    fn spawn(extra: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        // Port 0: the daemon binds a free port and logs it (no race with parallel tests).
        std::fs::write(
            dir.path().join("config.toml"),
            config_text(dir.path(), 0, extra),
        )
        .unwrap();
        let mut child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(dir.path().join("config.toml"))
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let log = stderr.lock().unwrap().clone();
            if let Some(p) = log
                .split("listening on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u16>().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "daemon never listened:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Daemon {
            child,
            port,
            dir,
            stderr,
        }
    }

    fn request(&self, raw: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ))
    }

    fn wait_for(&self, cond: impl Fn(&Daemon) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cond(self)))
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let state = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("State:"))
                    .map(str::to_string)
            });
        panic!(
            "timed out waiting for {what}; daemon {state:?}; log:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    fn signal(&self, sig: &str) {
        assert!(Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success());
    }
}

#[test]
fn promtool_accepts_the_metrics() {
    let d = Daemon::start("");
    let (status, body) = d.get("/metrics");
    assert_eq!(status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is needed");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus server on loopback with a temporary config, killed on drop.
/// Holds the server and its data directory until the test ends.
struct Prometheus(Child, #[allow(dead_code)] tempfile::TempDir);
impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_the_daemon_and_answers_a_query() {
    let d = Daemon::start("[refresh]\ninterval_s = 1\n");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ecs-diag\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n", d.port),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package) is needed");
    let _p = Prometheus(child, dir);
    let query = "ecs_diag_check_status%7Bcheck%3D%22sysctl.icmp_echo%22%2Cstatus%3D%22ok%22%7D";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /api/v1/query?query={query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if let Some((_, body)) = out.split_once("\r\n\r\n") {
                last = body.to_string();
                if let Ok(v) = serde_json::from_str::<Value>(body) {
                    if let Some(r) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                        assert_eq!(r["metric"]["job"], "ecs-diag");
                        assert_eq!(r["value"][1], "1", "sysctl.icmp_echo is ok on this machine");
                        return;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("Prometheus never returned the check status; last answer: {last}");
}

#[test]
fn hostile_clients_do_not_hurt() {
    let d = Daemon::start("");
    // Garbage request line.
    let (status, _) = d.request("\x00\x01 garbage\r\n\r\n");
    assert_eq!(status, 400);
    // Oversized headers.
    let big = "a".repeat(32 * 1024);
    let (status, _) = d.request(&format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"
    ));
    assert_eq!(status, 431);
    // A body where none is expected, larger than allowed.
    let body = "x".repeat(64 * 1024);
    let (status, _) = d.request(&format!("POST /v1/diagnose HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    assert_eq!(status, 413);
    // The same body sent chunked (no length to refuse up front) is bounded alike.
    let chunk = "x".repeat(2000);
    let chunked = format!("{:x}\r\n{chunk}\r\n", chunk.len()).repeat(8) + "0\r\n\r\n";
    let (status, body) = d.request(&format!("POST /v1/diagnose HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked}"));
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("takes no body"), "{body}");
    // Unknown path: JSON 404.
    let (status, body) = d.get("/etc/passwd");
    assert_eq!(status, 404);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());

    // 1,000 idle connections (past server.max_connections), then a health check must
    // still be answered once the idle ones are dropped.
    let rss_before = d.rss_kib();
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    let started = Instant::now();
    while try_get(d.port, "/healthz").map(|r| r.0) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "/healthz unanswered for 15 s with 1000 idle connections"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_during = d.rss_kib();
    drop(idle);
    assert!(
        rss_during < rss_before + 32 * 1024,
        "RSS grew from {rss_before} to {rss_during} KiB"
    );
    // Still alive, never panicked.
    assert_eq!(d.get("/healthz").0, 200);
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn sighup_reloads_and_keeps_the_old_config_when_the_new_one_is_bad() {
    let d = Daemon::start("");
    let cfg = d.dir.path().join("config.toml");
    std::fs::write(&cfg, "[metadata]\nmode = \"sometimes\"\n").unwrap();
    d.signal("-HUP");
    // The error spans several lines and the log is collected line by line: wait for the
    // line that names the bad value, not only the first one.
    d.wait_for(
        |d| d.log().contains("config reload failed") && d.log().contains("sometimes"),
        "reload error naming the bad value",
    );
    let log = d.log();
    assert!(log.contains(cfg.to_str().unwrap()), "{log}");
    assert_eq!(d.get("/healthz").0, 200);
    std::fs::write(
        &cfg,
        config_text(d.dir.path(), 0, "[refresh]\ninterval_s = 1\n"),
    )
    .unwrap();
    d.signal("-HUP");
    d.wait_for(|d| d.log().contains("config reloaded"), "reload");
}

/// A metadata fake whose answers can be made to hang.
fn hanging_metadata(hang: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let hang = hang.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                }
                if hang.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_secs(4));
                    return;
                }
                let (status, body) = if first.contains("/latest/meta-data/mac ") {
                    (200, "00:16:3e:00:00:01")
                } else {
                    (404, "")
                };
                let mut s = s;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

#[test]
fn a_hanging_source_leaves_the_old_report_marked_stale_then_recovers() {
    let hang = Arc::new(AtomicBool::new(false));
    let port = hanging_metadata(hang.clone());
    let d = Daemon::start(&format!(
        "[metadata]\nmode = \"always\"\nurl = \"http://127.0.0.1:{port}\"\ntimeout_ms = 3000\nbudget_ms = 3000\n[refresh]\ninterval_s = 1\ntimeout_s = 1\n"
    ));
    let first: Value = serde_json::from_str(&d.get("/v1/report").1).unwrap();
    assert_eq!(first["stale"], false);
    hang.store(true, Ordering::SeqCst);
    let is_stale = |d: &Daemon| {
        serde_json::from_str::<Value>(&d.get("/v1/report").1).unwrap()["stale"] == true
    };
    d.wait_for(is_stale, "a stale report");
    let stale: Value = serde_json::from_str(&d.get("/v1/report").1).unwrap();
    assert_eq!(
        stale["checks"].as_array().unwrap().len(),
        ecs_diag::checks::catalogue().count(),
        "the previous findings stay served"
    );
    // Stale soon after the hang; "stalled" (503) once 3 intervals pass without a refresh.
    let health = d.get("/healthz").1;
    assert!(
        health.contains("\"stale\"") || health.contains("refresh stalled since"),
        "{health}"
    );
    assert!(d.get("/metrics").1.contains("ecs_diag_report_stale 1"));
    hang.store(false, Ordering::SeqCst);
    d.wait_for(|d| !is_stale(d), "recovery");
    assert!(d.get("/metrics").1.contains("ecs_diag_report_stale 0"));
}

#[test]
fn sigterm_shuts_down_gracefully_and_removes_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ecs-diag.sock");
    let port = 0; // the kernel picks; this test talks over the unix socket
    let cfg_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        cfg_dir.path().join("c.toml"),
        format!("[metadata]\nmode = \"never\"\n[server]\nlisten = \"127.0.0.1:{port}\"\nunix_socket = \"{}\"\n[paths]\netc = \"{1}/etc\"\nsys = \"{1}/sys\"\n", sock.display(), cfg_dir.path().display()),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(cfg_dir.path().join("c.toml"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            answered = out.starts_with("HTTP/1.1 200") && out.contains("\"fresh\"");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered, "served on the unix socket");
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket removed on shutdown");
}

/// In a namespace of its own: a daemon on 0.0.0.0 with an allow-list answers a client from an
/// allowed address and refuses one from another address with 403.
#[test]
fn non_loopback_listener_enforces_the_allow_list() {
    let ns = format!("ecsdiag-allow-{}", std::process::id());
    let run = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    struct Cleanup(String, Option<Child>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(c) = &mut self.1 {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let mut cleanup = Cleanup(ns.clone(), None);
    run(&["ip", "link", "set", "lo", "up"]);
    run(&["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"]);
    run(&["ip", "addr", "add", "10.98.0.1/32", "dev", "lo"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!("[metadata]\nmode = \"never\"\n[server]\nlisten = \"0.0.0.0:9717\"\nallow = [\"10.99.0.0/24\"]\n[paths]\netc = \"{0}/etc\"\nsys = \"{0}/sys\"\n", dir.path().display()),
    )
    .unwrap();
    cleanup.1 = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns, bin(), "serve", "--config"])
            .arg(dir.path().join("c.toml"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // A local connection's source address is the destination address itself.
    let fetch = |addr: &str| {
        let script = format!("exec 3<>/dev/tcp/{addr}/9717 && printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3 && cat <&3");
        Command::new("ip")
            .args(["netns", "exec", &ns, "bash", "-c", &script])
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut allowed = String::new();
    while Instant::now() < deadline && !allowed.starts_with("HTTP/1.1 200") {
        allowed = String::from_utf8_lossy(&fetch("10.99.0.1").stdout).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        allowed.starts_with("HTTP/1.1 200"),
        "allowed client: {allowed}"
    );
    let refused = String::from_utf8_lossy(&fetch("10.98.0.1").stdout).into_owned();
    assert!(
        refused.starts_with("HTTP/1.1 403"),
        "client outside server.allow: {refused}"
    );
    assert!(refused.contains("server.allow"));
}

/// Under systemd (`Type=notify`): READY=1 once the first report is served, WATCHDOG=1 pings at
/// half the watchdog period, STOPPING=1 on SIGTERM — over a real NOTIFY_SOCKET.
#[test]
fn notifies_systemd_readiness_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::fs::write(dir.path().join("c.toml"), config_text(dir.path(), 0, "")).unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("c.toml"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 256];
    let recv = |seen: &mut Vec<String>, buf: &mut [u8]| {
        let n = sock.recv(buf).expect("a notification");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    };
    while !(seen.iter().any(|m| m.contains("READY=1"))
        && seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3)
    {
        recv(&mut seen, &mut buf);
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    while !seen.iter().any(|m| m.contains("STOPPING=1")) {
        recv(&mut seen, &mut buf);
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let ready = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    assert!(
        seen[..ready].iter().all(|m| !m.contains("WATCHDOG")),
        "ready first: {seen:?}"
    );
}

/// The daemon keeps serving when its log pipe breaks (journald restarting, `serve | head`).
#[test]
fn survives_a_broken_log_pipe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        config_text(dir.path(), 0, "[refresh]\ninterval_s = 1\n"),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("c.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the port, then close the pipe: every later log line hits EPIPE.
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port: u16 = first
        .split("listening on http://127.0.0.1:")
        .nth(1)
        .and_then(|p| p.trim().parse().ok())
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500)); // two refreshes log into the broken pipe
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon died on a broken log pipe"
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn refreshes_judge_the_window_since_the_previous_one() {
    let d = Daemon::start("[refresh]\ninterval_s = 1\n[limits]\nbandwidth_mbps = 1000\n");
    // The first report has one sample: since boot. A later one compares with the previous
    // refresh: CPU, bandwidth and drops are rates over about a second.
    d.wait_for(
        |d| {
            let (_, body) = d.get("/v1/checks/load.cpu");
            body.contains("\"window_s\":1.")
        },
        "load.cpu judged over the window between refreshes",
    );
    let (code, body) = d.get("/v1/checks/net.bandwidth");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok", "{v:#}");
    assert!(v["evidence"]["window_s"].as_f64().unwrap() > 0.5, "{v:#}");
    let (_, body) = d.get("/v1/checks/net.drops");
    assert!(body.contains("in the last"), "{body}");
}

/// A helper tool that never answers (through the `[paths] tools` override): no refresh ever
/// completes. `/healthz` turns 503 naming since when, the systemd watchdog goes silent (so
/// systemd restarts the daemon), and SIGTERM still ends the process within 5 s, taking the
/// stuck tool with it.
#[test]
fn a_refresh_that_never_completes_is_reported_and_sigterm_still_exits() {
    let tools = tempfile::tempdir().unwrap();
    // A duration no other process uses, to find leftovers by.
    let nap = format!("{}.5", 3000 + std::process::id() % 1000);
    for tool in [
        "iptables-nft-save",
        "iptables-legacy-save",
        "iptables-save",
        "ip6tables-nft-save",
        "ip6tables-legacy-save",
        "ip6tables-save",
    ] {
        let p = tools.path().join(tool);
        std::fs::write(&p, format!("#!/bin/sh\nexec sleep {nap}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    // A legacy filter table, as the kernel would list it: the hanging tool is run for it (a
    // host with no table at all runs no tool, so nothing would hang).
    let proc_root = tools.path().join("proc");
    std::fs::create_dir_all(proc_root.join("net")).unwrap();
    std::fs::write(proc_root.join("net/ip_tables_names"), "filter\n").unwrap();
    let notify_dir = tempfile::tempdir().unwrap();
    let sock_path = notify_dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let seen: Arc<std::sync::Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let listener = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    seen.lock().unwrap().push((Instant::now(), m));
                }
            }
        })
    };
    let mut d = Daemon::spawn(
        &format!(
            "tools = [\"{}\"]\nproc = \"{}\"\n[refresh]\ninterval_s = 1\ntimeout_s = 1\n",
            tools.path().display(),
            proc_root.display()
        ),
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    d.wait_for(
        |d| {
            let (status, body) = d.get("/healthz");
            status == 503 && body.contains("refresh stalled since")
        },
        "/healthz 503 stalled",
    );
    let stalled_at = Instant::now();
    let health: Value = serde_json::from_str(&d.get("/healthz").1).unwrap();
    assert_eq!(health["status"], "stalled");
    assert!(health["stalled_since"].as_str().unwrap().ends_with('Z'));
    // Nothing to serve yet, and that is said.
    assert_eq!(d.get("/v1/report").0, 503);
    std::thread::sleep(Duration::from_secs(2));
    {
        let seen = seen.lock().unwrap();
        assert!(seen.iter().any(|(_, m)| m.contains("READY=1")), "{seen:?}");
        let pings: Vec<Instant> = seen
            .iter()
            .filter(|(_, m)| m.contains("WATCHDOG=1"))
            .map(|(t, _)| *t)
            .collect();
        assert!(
            !pings.is_empty(),
            "the watchdog was pinged before the stall"
        );
        // A ping may be in flight as the stall is seen; none after that.
        let late = pings
            .iter()
            .filter(|t| **t > stalled_at + Duration::from_millis(500))
            .count();
        assert_eq!(late, 0, "watchdog pinged {late} time(s) while stalled");
    }
    assert!(
        d.log().contains("not pinging the systemd watchdog"),
        "{}",
        d.log()
    );

    let term = Instant::now();
    d.signal("-TERM");
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            term.elapsed() < Duration::from_secs(5),
            "SIGTERM did not end the daemon within 5 s:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{}", d.log());
    stop.store(true, Ordering::SeqCst);
    listener.join().unwrap();
    // The stuck tools died with the daemon (PDEATHSIG), leaving nothing behind.
    std::thread::sleep(Duration::from_millis(500));
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&format!("sleep {nap}")))
        .collect();
    assert!(leftovers.is_empty(), "orphaned tools: {leftovers:?}");
}

/// One GET on a fresh connection with a short deadline: None when the server closed it
/// unanswered (at its connection limit) or did not answer in time.
fn try_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out))
}

/// Issue 11's flood: 3,000 connections that pipeline requests and never read the answers.
/// They are shed (connection limit, then the idle/write timeout), a fresh client is answered
/// within 15 s of the flood's start, RSS stays under 48 MiB, and within 60 s after the flood
/// ends RSS is back under 12 MiB.
#[test]
fn a_slow_reader_flood_is_shed_and_memory_returns() {
    let d = Daemon::start("");
    let pid = d.child.id();
    let rss_of = move || -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                if let Some(r) = rss_of() {
                    peak.fetch_max(r, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let pipelined = "GET /v1/report HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    let flood_start = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..3000 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", d.port)) {
            let _ = s.set_nonblocking(true);
            let _ = s.write(pipelined.as_bytes());
            flood.push(s);
        }
    }
    let (opened, opened_in) = (flood.len(), flood_start.elapsed());
    let answered = loop {
        if let Some((200, _)) = try_get(d.port, "/healthz") {
            break flood_start.elapsed();
        }
        assert!(
            flood_start.elapsed() < Duration::from_secs(15),
            "/healthz not answered within 15 s of the flood's start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let the flood sit until its connections are reaped, then end it.
    std::thread::sleep(Duration::from_secs(12));
    drop(flood);
    let flood_end = Instant::now();
    // The memory bounds are the shipped build's (static, musl, optimised), which scripts/test
    // passes as ECS_DIAG_BIN; a debug glibc build settles near 24 MiB, so for it they are
    // reported, not asserted.
    let shipped = std::env::var_os("ECS_DIAG_BIN").is_some_and(|b| !b.is_empty());
    let settled = loop {
        let rss = rss_of().unwrap();
        if rss < 12 * 1024 {
            break rss;
        }
        if flood_end.elapsed() >= Duration::from_secs(60) {
            assert!(!shipped, "RSS still {rss} KiB 60 s after the flood");
            eprintln!("RSS {rss} KiB 60 s after the flood: not asserted for a test build (set ECS_DIAG_BIN to the shipped binary)");
            break rss;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    sampling.store(false, Ordering::SeqCst);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::SeqCst);
    println!(
        "flood: {} connections opened in {opened_in:?}; /healthz answered after {answered:?}; peak RSS {peak} KiB; {settled} KiB {:?} after the flood",
        opened,
        flood_end.elapsed()
    );
    assert!(!shipped || peak < 48 * 1024, "RSS peaked at {peak} KiB");
    assert!(d.log().contains("server.max_connections"), "{}", d.log());
    assert_eq!(d.get("/healthz").0, 200);
}

/// A burst past `server.max_connections`: every connection the daemon turns away is counted in
/// its log — one line per interval with the count, their sum the number of connections the
/// client saw closed unanswered (a log that said "closed 1" for 244 shed connections once).
#[test]
fn every_shed_connection_is_counted_in_the_log() {
    let d = Daemon::start("server.max_connections = 16");
    // Sixteen idle connections hold every slot (for the 5 s header timeout).
    let holders: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // 300 concurrent diagnoses: each is answered, or closed without an answer (shed).
    let burst: Vec<_> = (0..300)
        .map(|_| {
            let port = d.port;
            std::thread::spawn(move || -> bool {
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                    return true;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                let _ = s.write_all(b"POST /v1/diagnose HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer);
                !answer.starts_with(b"HTTP/")
            })
        })
        .collect();
    let shed = burst
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|shed| *shed)
        .count() as u64;
    drop(holders);
    assert!(shed > 0, "the burst never reached the cap");
    let logged = || -> u64 {
        d.log()
            .lines()
            .filter_map(|l| l.split("closed ").nth(1))
            .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    // Lines come at most every 10 s: within 25 s all of them are out.
    let started = Instant::now();
    while logged() < shed && started.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines = d.log().lines().filter(|l| l.contains("closed ")).count();
    println!(
        "shed {shed} connection(s); the log counted {} in {lines} line(s)",
        logged()
    );
    assert_eq!(logged(), shed, "{}", d.log());
    assert!(
        lines <= 3,
        "one line per interval, not per connection: {lines}"
    );
}

/// Conditions over time: every served finding carries `since`, `/v1/history` lists the
/// transitions, the metrics carry each check's last transition time, and all of it survives a
/// restart (the state directory).
#[test]
fn history_and_since_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let extra = format!("state = \"{}\"\n", state.path().display());
    let first = {
        let d = Daemon::start(&extra);
        let (_, body) = d.get("/v1/report");
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        let checks = report["checks"].as_array().unwrap();
        assert!(checks.iter().all(|c| c["since"].is_string()), "{body}");
        let (code, body) = d.get("/v1/history");
        assert_eq!(code, 200);
        let h: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(h["version"], 1);
        let t = h["transitions"].as_array().unwrap();
        // The first refresh: every check is seen for the first time.
        assert!(t.len() >= checks.len(), "{body}");
        assert!(
            t[0]["from"].is_null() && t[0]["summary"].is_string(),
            "{body}"
        );
        let (_, metrics) = d.get("/metrics");
        assert!(
            metrics.contains(
                "ecs_diag_check_last_transition_timestamp_seconds{check=\"sysctl.icmp_echo\"}"
            ),
            "{metrics}"
        );
        assert!(state.path().join("history.json").exists());
        report
    };
    let d = Daemon::start(&extra);
    let (_, body) = d.get("/v1/checks/sysctl.icmp_echo");
    let now: serde_json::Value = serde_json::from_str(&body).unwrap();
    let before = first["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "sysctl.icmp_echo")
        .unwrap();
    assert_eq!(now["status"], before["status"]);
    assert_eq!(
        now["since"], before["since"],
        "a status held across the restart keeps its since"
    );
    // A garbage history file is a warning and a fresh start, not a failure to serve.
    drop(d);
    std::fs::write(state.path().join("history.json"), "{garbage").unwrap();
    let d = Daemon::start(&extra);
    let log = d.stderr.lock().unwrap().clone();
    assert!(
        log.contains("history.json") && log.contains("fresh history"),
        "{log}"
    );
}
