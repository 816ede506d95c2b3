//! dns.resolution against a real DNS server: dnsmasq (Debian's) in the client namespace
//! answers the instance's public IP for one name, another address for a second, NXDOMAIN for a
//! third, and — stopped — nothing at all. Each answer is first proven by a real resolution
//! (`dig`, from the guest namespace, the way the agent asks), then judged by the agent through
//! the guest's own resolv.conf (the case's `[paths] etc`). The ping to the instance works
//! throughout: the seed's "ping the IP works, the domain does not".

use std::process::{Child, Command, Stdio};

use ecs_diag_matrix::matrix::*;
use serde_json::Value;

/// An address the public name must not resolve to (documentation range).
const OTHER_IP: &str = "203.0.113.99";

/// dnsmasq in the client namespace, killed when dropped.
struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dnsmasq(t: &Topology) -> Dnsmasq {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.client,
            "dnsmasq",
            "--keep-in-foreground",
        ])
        .args([
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
        ])
        .args([
            "--pid-file=",
            "--bind-interfaces",
            "--port=53",
            "--local-ttl=300",
        ])
        .arg(format!("--listen-address={CLIENT}"))
        .arg(format!("--address=/right.example/{PUBLIC_IP}"))
        .arg(format!("--address=/wrong.example/{OTHER_IP}"))
        .arg("--local=/nx.example/")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (Debian package dnsmasq-base; scripts/prerequisites installs it)");
    let d = Dnsmasq(child);
    // Listening once it answers.
    let started = std::time::Instant::now();
    while dig(t, "right.example").0 != "NOERROR" {
        assert!(started.elapsed().as_secs() < 10, "dnsmasq never answered");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    d
}

/// The ground truth: `dig` from the guest to the client's nameserver: (status, A answers).
fn dig(t: &Topology, name: &str) -> (String, Vec<String>) {
    let server = format!("@{CLIENT}");
    let out = t.exec(
        &t.guest,
        &[
            "dig",
            &server,
            name,
            "A",
            "+time=1",
            "+tries=1",
            "+noall",
            "+comments",
            "+answer",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return ("no answer".into(), Vec::new());
    }
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("?")
        .to_string();
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains("\tA\t"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    (status, answers)
}

fn judged(t: &Topology, name: &str) -> (String, Value) {
    let r = t.diagnose_with(Some(CLIENT), &["--domain", name]);
    for (id, (status, _)) in &r {
        assert!(
            status != "fail" || id == "dns.resolution",
            "{id} fails for a DNS fault:\n{}",
            show(&r)
        );
    }
    r["dns.resolution"].clone()
}

#[test]
fn a_name_is_judged_by_what_the_guests_resolver_answers() {
    let t = Topology::new();
    std::fs::write(
        t.dir.path().join("etc/resolv.conf"),
        format!("nameserver {CLIENT}\noptions timeout:1 attempts:1\n"),
    )
    .unwrap();
    let _server = dnsmasq(&t);
    assert!(t.ping(GUEST_IP), "the instance itself answers pings");

    // The right address: ok, naming the nameserver and the TTL it gave.
    assert_eq!(
        dig(&t, "right.example"),
        ("NOERROR".into(), vec![PUBLIC_IP.to_string()])
    );
    let (status, f) = judged(&t, "right.example");
    assert_eq!(status, "ok", "{f:#}");
    let name = &f["evidence"]["names"][0];
    assert_eq!(name["resolver"], format!("{CLIENT}:53"), "{f:#}");
    assert_eq!(name["ttl_s"], 300, "{f:#}");
    assert_eq!(name["addresses"][0], PUBLIC_IP, "{f:#}");

    // Another address: fail, naming it.
    assert_eq!(
        dig(&t, "wrong.example"),
        ("NOERROR".into(), vec![OTHER_IP.to_string()])
    );
    let (status, f) = judged(&t, "wrong.example");
    assert_eq!(status, "fail", "{f:#}");
    assert_eq!(f["cause"], "domain_wrong_address", "{f:#}");
    assert!(f["summary"].as_str().unwrap().contains(OTHER_IP), "{f:#}");

    // No such name.
    assert_eq!(dig(&t, "www.nx.example"), ("NXDOMAIN".into(), Vec::new()));
    let (status, f) = judged(&t, "www.nx.example");
    assert_eq!(status, "fail", "{f:#}");
    assert_eq!(f["cause"], "domain_nxdomain", "{f:#}");

    // Nothing answers (the queries are dropped on the way): unknown, within the budget,
    // saying so.
    for rule in [
        "add table inet dnsdrop",
        "add chain inet dnsdrop input { type filter hook input priority -10; }",
        "add rule inet dnsdrop input udp dport 53 drop",
    ] {
        let mut argv = vec!["ip", "netns", "exec", &t.client, "nft"];
        argv.extend(rule.split(' '));
        must(&argv);
    }
    assert_eq!(dig(&t, "right.example").0, "no answer");
    let started = std::time::Instant::now();
    let (status, f) = judged(&t, "right.example");
    assert_eq!(status, "unknown", "{f:#}");
    assert!(
        f["summary"].as_str().unwrap().contains("did not answer"),
        "{f:#}"
    );
    assert!(
        started.elapsed().as_secs() < 15,
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(t.ping(GUEST_IP));
}

/// /etc/hosts comes first (nsswitch's default `files dns`): a stale pin there is what the
/// guest's applications use, whatever DNS says.
#[test]
fn a_stale_pin_in_etc_hosts_is_what_the_guest_resolves() {
    let t = Topology::new();
    std::fs::write(
        t.dir.path().join("etc/resolv.conf"),
        format!("nameserver {CLIENT}\n"),
    )
    .unwrap();
    std::fs::write(
        t.dir.path().join("etc/hosts"),
        format!("127.0.0.1 localhost\n{OTHER_IP} right.example\n"),
    )
    .unwrap();
    let _server = dnsmasq(&t);
    assert_eq!(
        dig(&t, "right.example").1,
        [PUBLIC_IP.to_string()],
        "DNS is right"
    );
    let (status, f) = judged(&t, "right.example");
    assert_eq!(status, "fail", "{f:#}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("pinned in /etc/hosts"),
        "{f:#}"
    );
    assert_eq!(f["evidence"]["names"][0]["source"], "files", "{f:#}");
}
