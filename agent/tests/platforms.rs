//! Old platforms degrade, never break: the agent run against `[paths]` roots in the formats
//! of older kernels and distributions (`tests/fixtures/platforms/*/README.md` say which), with
//! their firewall tools as fakes in a `[paths] tools` directory. Checks whose evidence such a
//! system lacks say `skipped`/`unknown` with the reason; the rest judge as usual. Netlink
//! facts come from a fresh network namespace (eth0 up, a default route), so the outcome does
//! not depend on this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ecs-diag");

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn must(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `check --json` on the fixture platform `name`: id → (status, summary, finding).
fn check_on(name: &str) -> BTreeMap<String, (String, String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/platforms")
        .join(name);
    assert!(root.exists(), "{}", root.display());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let r = root.display();
    std::fs::write(
        &cfg,
        format!(
            "[metadata]\nmode = \"never\"\n[paths]\netc = \"{r}/etc\"\nsys = \"{r}/sys\"\nproc = \"{r}/proc\"\ntools = [\"{r}/tools\"]\n"
        ),
    )
    .unwrap();
    let ns = format!("ecsdiag-plat-{}-{name}", std::process::id()).replace('.', "");
    must(&["ip", "netns", "add", &ns]);
    let _ns = Netns(ns.clone());
    for cmd in [
        "ip link set lo up",
        "ip link add eth0 type veth peer name peer0",
        "ip addr add 10.77.0.10/24 dev eth0",
        "ip link set eth0 up",
        "ip link set peer0 up",
        "ip route add default via 10.77.0.1",
    ] {
        let mut a = vec!["ip", "netns", "exec", &ns];
        a.extend(cmd.split(' '));
        must(&a);
    }
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, BIN, "check", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{name}: no report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["summary"].as_str().unwrap().to_string(),
                    c.clone(),
                ),
            )
        })
        .collect()
}

fn expect(r: &BTreeMap<String, (String, String, Value)>, id: &str, status: &str, says: &str) {
    let (s, summary, _) = &r[id];
    assert_eq!(s, status, "{id}: {summary}");
    assert!(
        summary.contains(says),
        "{id} should say {says:?}: {summary}"
    );
}

/// Nothing fails, and nothing is unknown but the passive gateway check (an idle namespace
/// has no neighbour entry): a missing feature is never mistaken for a fault.
fn nothing_broken(platform: &str, r: &BTreeMap<String, (String, String, Value)>) {
    for (id, (status, summary, _)) in r {
        assert_ne!(status, "fail", "{platform}: {id}: {summary}");
        if status == "unknown" {
            assert_eq!(id, "neigh.gateway", "{platform}: {id}: {summary}");
        }
    }
}

#[test]
fn centos7_kernel_3_10_without_psi_nft_or_new_counters() {
    let r = check_on("centos7-3.10");
    nothing_broken("centos7", &r);
    expect(&r, "load.io", "skipped", "no pressure stall information");
    expect(&r, "sysctl.icmp_echo6", "skipped", "before 4.20");
    expect(&r, "net.conntrack", "skipped", "not loaded");
    // Plain iptables-save is the legacy tool there; its rules are judged.
    expect(
        &r,
        "firewall.icmp_in",
        "ok",
        "accepted by filter INPUT rule 2",
    );
    let tool = r["firewall.icmp_in"].2["evidence"].to_string();
    assert!(tool.contains("iptables-save"), "{tool}");
    assert!(
        !tool.contains("iptables-nft-save"),
        "only the [paths] tools directory is searched, not this machine's: {tool}"
    );
    // No OutRateLimit* counters: the live ICMP and rate-limit checks still judge.
    expect(&r, "icmp.live", "ok", "52 echo request(s) arrived");
    expect(&r, "sysctl.icmp_ratelimit", "ok", "not rate-limited");
    for id in [
        "load.cpu",
        "load.memory",
        "load.dstate",
        "net.drops",
        "sysctl.icmp_echo",
    ] {
        assert_eq!(r[id].0, "ok", "{id}: {}", r[id].1);
    }
}

#[test]
fn ubuntu2004_kernel_5_4_legacy_iptables_without_nft() {
    let r = check_on("ubuntu20.04-5.4");
    nothing_broken("ubuntu20.04", &r);
    expect(&r, "load.io", "ok", "no resource stall");
    expect(&r, "sysctl.icmp_echo6", "ok", "answers IPv6 pings");
    expect(&r, "net.conntrack", "ok", "37 of 65536");
    expect(
        &r,
        "firewall.icmp_in",
        "ok",
        "accepted by filter ufw-before-input rule 4",
    );
    expect(&r, "icmp.live", "ok", "52 echo request(s) arrived");
    for id in ["load.cpu", "load.memory", "load.dstate", "net.drops"] {
        assert_eq!(r[id].0, "ok", "{id}: {}", r[id].1);
    }
}
