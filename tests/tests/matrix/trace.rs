//! `ecs-diag trace` on a real multi-hop path — guest → router 1 → router 2 → client, four
//! namespaces joined by veth pairs, the routers forwarding — against the real `mtr` and
//! `traceroute` (Debian's) run on the same path in the same test: the same hops in the same
//! order, and the same hop where loss starts. Faults: router 1 drops 30% of what it forwards
//! (nftables `numgen random`), or router 2 rate-limits its ICMP time-exceeded answers
//! (`net.ipv4.icmp_ratelimit`), which is not loss.

use ecs_diag_matrix::matrix::*;
use serde_json::Value;

/// The four namespaces of one path, deleted when dropped.
struct Path {
    ns: [String; 4],
    dir: tempfile::TempDir,
}

const CLIENT_END: &str = "10.91.3.2";
/// The address each hop answers from, in order (router 1, router 2, the client).
const HOPS: [&str; 3] = ["10.91.1.1", "10.91.2.2", CLIENT_END];

impl Drop for Path {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = run(&["ip", "netns", "del", n]);
        }
    }
}

impl Path {
    fn new() -> Path {
        let tag = format!("{}{}", std::process::id(), unique());
        let ns = ["g", "r1", "r2", "c"].map(|n| format!("tr{n}{tag}"));
        let p = Path {
            ns,
            dir: tempfile::tempdir().unwrap(),
        };
        for n in &p.ns {
            must(&["ip", "netns", "add", n]);
            must(&["ip", "-n", n, "link", "set", "lo", "up"]);
            // No ICMP rate limit unless a case sets one: the probes come faster than 1/s.
            sysctl(n, "net.ipv4.icmp_ratelimit=0");
        }
        let [g, r1, r2, c] = &p.ns;
        for (a, b, net) in [(g, r1, 1), (r1, r2, 2), (r2, c, 3)] {
            let (ea, eb) = (format!("a{net}"), format!("b{net}"));
            must(&[
                "ip", "link", "add", &ea, "netns", a, "type", "veth", "peer", "name", &eb, "netns",
                b,
            ]);
            // The guest is .2 on its link; each router is .1 towards the client: see HOPS.
            let (left, right) = if net == 1 { ("2", "1") } else { ("1", "2") };
            must(&[
                "ip",
                "-n",
                a,
                "addr",
                "add",
                &format!("10.91.{net}.{left}/24"),
                "dev",
                &ea,
            ]);
            must(&[
                "ip",
                "-n",
                b,
                "addr",
                "add",
                &format!("10.91.{net}.{right}/24"),
                "dev",
                &eb,
            ]);
            must(&["ip", "-n", a, "link", "set", &ea, "up"]);
            must(&["ip", "-n", b, "link", "set", &eb, "up"]);
        }
        must(&["ip", "-n", g, "route", "add", "default", "via", "10.91.1.1"]);
        must(&[
            "ip",
            "-n",
            r1,
            "route",
            "add",
            "10.91.3.0/24",
            "via",
            "10.91.2.2",
        ]);
        must(&[
            "ip",
            "-n",
            r2,
            "route",
            "add",
            "10.91.1.0/24",
            "via",
            "10.91.2.1",
        ]);
        must(&["ip", "-n", c, "route", "add", "default", "via", "10.91.3.1"]);
        for r in [r1, r2] {
            sysctl(r, "net.ipv4.ip_forward=1");
        }
        // The agent reads no metadata here (never the real service).
        std::fs::write(
            p.dir.path().join("config.toml"),
            "[metadata]\nmode = \"never\"\n",
        )
        .unwrap();
        p
    }

    fn exec(&self, i: usize, args: &[&str]) -> std::process::Output {
        let mut full = vec!["ip", "netns", "exec", &self.ns[i]];
        full.extend_from_slice(args);
        run(&full)
    }

    fn trace(&self, extra: &[&str]) -> Value {
        let config = self.dir.path().join("config.toml");
        let mut args = vec![
            agent_bin(),
            "trace",
            "--client",
            CLIENT_END,
            "--json",
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = self.exec(0, &args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "trace is not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The real mtr's report from the guest: (hop address, loss %) per hop.
    fn mtr(&self, count: &str) -> Vec<(String, f64)> {
        let out = self.exec(
            0,
            &[
                "mtr", "-n", "-r", "-4", "-c", count, "-i", "0.2", CLIENT_END,
            ],
        );
        assert!(
            out.status.success(),
            "mtr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(".|-- ")?;
                let mut w = rest.split_whitespace();
                let host = w.next()?.to_string();
                let loss = w.next()?.trim_end_matches('%').parse().ok()?;
                Some((host, loss))
            })
            .collect()
    }
}

/// Sets a sysctl inside namespace `ns`.
fn sysctl(ns: &str, setting: &str) {
    must(&["ip", "netns", "exec", ns, "sysctl", "-qw", setting]);
}

fn unique() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn hop_addresses(t: &Value) -> Vec<String> {
    t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["address"].as_str().unwrap_or("???").to_string())
        .collect()
}

/// The first hop from which every hop to the end lost something (1-based), as mtr's numbers say.
fn persisting_from(losses: &[f64]) -> Option<usize> {
    (0..losses.len())
        .find(|&i| losses[i..].iter().all(|l| *l > 0.0))
        .map(|i| i + 1)
}

/// A clean path: every protocol finds the hops traceroute finds, reaches the client, and
/// names no loss.
#[test]
fn icmp_udp_and_tcp_probes_find_the_hops_traceroute_finds() {
    let p = Path::new();
    let out = p.exec(0, &["traceroute", "-n", "-q", "1", "-w", "1", CLIENT_END]);
    let truth: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert_eq!(truth, HOPS, "ground truth: traceroute");
    for proto in [
        &["--protocol", "icmp"][..],
        &["--protocol", "udp"],
        &["--protocol", "tcp", "--port", "80"],
    ] {
        let mut args = proto.to_vec();
        args.extend(["--count", "5"]);
        let t = p.trace(&args);
        assert_eq!(hop_addresses(&t), HOPS, "{proto:?}: {t:#}");
        assert_eq!(t["reached"], true, "{proto:?}: {t:#}");
        assert_eq!(t["loss_starts_at"], Value::Null, "{proto:?}: {t:#}");
        for h in t["hops"].as_array().unwrap() {
            assert_eq!(h["loss_pct"], 0.0, "{proto:?}: {h:#}");
            assert_eq!(h["sent"], 5, "{proto:?}: {h:#}");
        }
    }
}

/// Router 1 drops 30% of what it forwards: hop 1 (itself) answers everything, the loss starts
/// at hop 2 and persists to the client — as mtr's own numbers say on the same path.
#[test]
fn loss_at_a_router_is_named_where_it_starts_as_mtr_shows_it() {
    let p = Path::new();
    for rule in [
        "add table inet lossy",
        "add chain inet lossy through { type filter hook forward priority 0 ; }",
        "add rule inet lossy through numgen random mod 100 < 30 drop",
    ] {
        let mut argv = vec!["nft"];
        argv.extend(rule.split(' '));
        let out = p.exec(1, &argv);
        assert!(
            out.status.success(),
            "nft {rule}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let t = p.trace(&["--count", "30"]);
    assert_eq!(hop_addresses(&t), HOPS, "{t:#}");
    assert_eq!(t["loss_starts_at"], 2, "{t:#}");
    let verdict = t["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("loss starts at hop 2 (10.91.2.2)"),
        "{verdict}"
    );
    // The table a person reads (printed for the record; the JSON above is what is judged).
    let config = p.dir.path().join("config.toml");
    let table = p.exec(
        0,
        &[
            agent_bin(),
            "trace",
            "--client",
            CLIENT_END,
            "--count",
            "10",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    println!("{}", String::from_utf8_lossy(&table.stdout));
    assert_eq!(
        table.status.code(),
        Some(1),
        "loss persisting to the client"
    );
    let mtr = p.mtr("30");
    let hosts: Vec<&str> = mtr.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(hosts, HOPS, "mtr: {mtr:?}");
    let losses: Vec<f64> = mtr.iter().map(|(_, l)| *l).collect();
    assert_eq!(persisting_from(&losses), Some(2), "mtr: {mtr:?}");
}

/// Router 2 answers at most one time-exceeded per 10 s after a burst: its hop loses probes the
/// client behind it answers — rate limiting, not loss, and said so; mtr shows the same shape.
#[test]
fn a_router_that_rate_limits_its_answers_is_not_called_loss() {
    let p = Path::new();
    sysctl(&p.ns[2], "net.ipv4.icmp_ratelimit=10000");
    let t = p.trace(&["--count", "20"]);
    assert_eq!(t["reached"], true, "{t:#}");
    assert_eq!(t["loss_starts_at"], Value::Null, "{t:#}");
    assert_eq!(t["rate_limited"], serde_json::json!([2]), "{t:#}");
    let hops = t["hops"].as_array().unwrap();
    assert!(hops[1]["loss_pct"].as_f64().unwrap() > 0.0, "{t:#}");
    assert_eq!(hops[2]["loss_pct"], 0.0, "{t:#}");
    assert!(
        t["verdict"].as_str().unwrap().contains("rate limiting"),
        "{t:#}"
    );
    let mtr = p.mtr("20");
    assert_eq!(mtr.len(), 3, "mtr: {mtr:?}");
    assert!(
        mtr[1].1 > 0.0 && mtr[2].1 == 0.0,
        "mtr shows it too: {mtr:?}"
    );
}
