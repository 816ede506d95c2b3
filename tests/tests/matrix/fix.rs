//! `ecs-diag fix` against real faults in the guest namespace: the plan changes nothing, the
//! applied fix makes the real ping work and the checks ok, `--undo` restores the faulty state
//! byte for byte; a fix whose verification fails is rolled back; a second run, no root and an
//! unwritable backup change nothing. Files live in the case's fixture tree ([paths] etc) and
//! the backups in its state directory; sysctls are the guest namespace's own.

use std::process::Output;

use ecs_diag_matrix::matrix::*;
use serde_json::Value;

const NOPING: &str = "etc/sysctl.d/90-noping.conf";
const NOPING_TEXT: &str =
    "# hardening (made up)\nnet.ipv4.icmp_echo_ignore_all = 1\nnet.ipv6.icmp.echo_ignore_all = 1\n";

/// The fix command exited 0; its stderr says why when it did not.
#[track_caller]
fn exited_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ecs-diag fix --config CONFIG [--client CLIENT] ARGS`: the client for a plan or an apply,
/// not for --history, --undo or --confirm.
fn fix_argv<'a>(config: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut full = vec![agent_bin(), "fix", "--config", config];
    if !["--history", "--undo", "--confirm"]
        .iter()
        .any(|a| args.contains(a))
    {
        full.extend(["--client", CLIENT]);
    }
    full.extend_from_slice(args);
    full
}

fn fix(t: &Topology, args: &[&str]) -> Output {
    let config = t.fix_config();
    t.exec(&t.guest, &fix_argv(&config, args))
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The guest's state a fix may touch: both sysctls and the sysctl.d file.
fn state(t: &Topology) -> (String, String, Option<Vec<u8>>) {
    let read = |k: &str| {
        let o = t.exec(&t.guest, &["sysctl", "-n", k]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    (
        read("net.ipv4.icmp_echo_ignore_all"),
        read("net.ipv6.icmp.echo_ignore_all"),
        std::fs::read(t.dir.path().join(NOPING)).ok(),
    )
}

/// Both echo knobs on, now and in a sysctl.d file: two causes, IPv4 and IPv6 pings fail.
fn inject(t: &Topology) {
    let path = t.dir.path().join(NOPING);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, NOPING_TEXT).unwrap();
    t.sysctl_g("net.ipv4.icmp_echo_ignore_all=1");
    t.sysctl_g("net.ipv6.icmp.echo_ignore_all=1");
    assert!(!t.ping(GUEST_IP), "ground truth: IPv4 ping fails");
    assert!(!t.ping(GUEST_IP6), "ground truth: IPv6 ping fails");
}

#[test]
fn echo_ignored_now_and_at_boot_is_planned_applied_verified_and_undone() {
    let t = Topology::new();
    assert_healthy(&t);
    inject(&t);
    let faulty = state(&t);

    // The plan changes nothing, and shows the commands and the diff.
    let out = fix(&t, &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sysctl -w net.ipv4.icmp_echo_ignore_all=0")
            && text.contains("-net.ipv4.icmp_echo_ignore_all = 1")
            && text.contains("+net.ipv4.icmp_echo_ignore_all = 0")
            && text.contains("Nothing was changed"),
        "{text}"
    );
    let plan = json_of(&fix(&t, &["--json"]));
    let planned: Vec<&str> = plan["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned,
        ["sysctl.icmp_echo", "sysctl.icmp_echo6"],
        "{plan:#}"
    );
    assert_eq!(state(&t), faulty, "the plan changed nothing");

    // Both causes fixed in one run: the real pings work, the checks are ok.
    let applied = json_of(&fix(&t, &["--apply", "--yes", "--json"]));
    assert_eq!(applied["applied"], true, "{applied:#}");
    assert_eq!(applied["state"], "applied");
    assert!(
        t.ping(GUEST_IP) && t.ping(GUEST_IP6),
        "pings work after the fix"
    );
    let r = t.diagnose(Some(CLIENT));
    assert_eq!(r["sysctl.icmp_echo"].0, "ok", "{}", show(&r));
    assert_eq!(r["sysctl.icmp_echo6"].0, "ok", "{}", show(&r));
    let file = String::from_utf8(std::fs::read(t.dir.path().join(NOPING)).unwrap()).unwrap();
    assert!(
        file.contains("# net.ipv4.icmp_echo_ignore_all = 1\n# ecs-diag fix:"),
        "{file}"
    );

    let id = applied["id"].as_str().unwrap().to_string();
    let history = json_of(&fix(&t, &["--history", "--json"]));
    assert_eq!(history[0]["id"], id.as_str(), "{history:#}");
    assert_eq!(history[0]["state"], "applied");
    assert_eq!(
        history[0]["checks"],
        serde_json::json!(["sysctl.icmp_echo", "sysctl.icmp_echo6"])
    );

    // Undo: the faulty state, byte for byte.
    let out = fix(&t, &["--undo", &id]);
    exited_ok(&out);
    assert_eq!(state(&t), faulty, "undo restores the fault byte for byte");
    assert!(!t.ping(GUEST_IP), "and the ping fails again");
    let history = json_of(&fix(&t, &["--history", "--json"]));
    assert_eq!(history[0]["state"], "undone");
}

/// Something resets the knob behind the fix's back (a configuration agent, say): the re-check,
/// a settling second after the write, sees the check still failing and everything is rolled
/// back. (Without the wait, a loaded machine let the fix write and re-read before the loop
/// ran again, and the fix "succeeded".)
#[test]
fn a_fix_whose_verification_fails_is_rolled_back() {
    let t = Topology::new();
    inject(&t);
    let faulty = state(&t);
    let mut fighter = std::process::Command::new("ip")
        .args(["netns", "exec", &t.guest, "sh", "-c"])
        // A tight loop of shell builtins: the value is back to 1 microseconds after the fix.
        .arg("while :; do echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all; done")
        .spawn()
        .unwrap();
    // Only once the loop is seen at work (it sets back a 0 written here) is the fix run: it
    // must not win the race against the loop's start.
    let started = std::time::Instant::now();
    loop {
        t.sysctl_g("net.ipv4.icmp_echo_ignore_all=0");
        std::thread::sleep(std::time::Duration::from_millis(50));
        if state(&t).0 == "1" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the fighting loop never started"
        );
    }
    let out = fix(
        &t,
        &["--apply", "--yes", "--json", "--check", "sysctl.icmp_echo"],
    );
    let _ = fighter.kill();
    let _ = fighter.wait();
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["state"], "rolled_back", "{v:#}");
    assert!(
        v["rolled_back_because"]
            .as_str()
            .unwrap()
            .contains("sysctl.icmp_echo is fail after the fix"),
        "{v:#}"
    );
    assert!(
        v["restored"]
            .to_string()
            .contains("90-noping.conf restored"),
        "{v:#}"
    );
    assert_eq!(state(&t), faulty);
}

/// A second run while one holds the lock, no root, and a backup that cannot be written: each
/// refuses with one line and changes nothing.
#[test]
fn refusals_change_nothing() {
    let t = Topology::new();
    inject(&t);
    let faulty = state(&t);
    let config = t.fix_config();
    let lock_dir = t.dir.path().join("state/fixes");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg(lock_dir.join("lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = fix(&t, &["--apply", "--yes"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(71));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another `ecs-diag fix` is running"));

    // The case's copy of the agent, which the unprivileged user can read.
    let bin = t.dir.path().join("ecs-diag");
    let out = t.exec(
        &t.guest,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin.to_str().unwrap(),
            "fix",
            "--apply",
            "--yes",
            "--config",
            &config,
        ],
    );
    assert_eq!(out.status.code(), Some(77));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));

    // The state directory is a file: the backup cannot be written.
    std::fs::remove_dir_all(t.dir.path().join("state")).unwrap();
    std::fs::write(t.dir.path().join("state"), "not a directory").unwrap();
    let out = fix(&t, &["--apply", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(71),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create"));
    assert_eq!(state(&t), faulty, "nothing changed");
}

/// Strict rp_filter on a second interface whose replies leave by eth0: the fix makes exactly
/// that interface loose, now and at boot; undo makes it strict again.
#[test]
fn strict_rp_filter_is_made_loose_on_the_named_interface_only() {
    let t = Topology::new();
    t.add_asymmetric_eth1();
    t.sysctl_g("net.ipv4.conf.eth1.rp_filter=1");
    assert!(
        !t.ping("10.78.0.10"),
        "ground truth: strict rp_filter drops it"
    );
    let read = |k: &str| {
        let o = t.exec(&t.guest, &["sysctl", "-n", k]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let before = (
        read("net.ipv4.conf.eth0.rp_filter"),
        read("net.ipv4.conf.all.rp_filter"),
    );
    let applied = json_of(&fix(
        &t,
        &["--apply", "--yes", "--json", "--check", "sysctl.rp_filter"],
    ));
    assert_eq!(applied["state"], "applied", "{applied:#}");
    assert!(t.ping("10.78.0.10"), "the ping works after the fix");
    assert_eq!(read("net.ipv4.conf.eth1.rp_filter"), "2");
    assert_eq!(
        (
            read("net.ipv4.conf.eth0.rp_filter"),
            read("net.ipv4.conf.all.rp_filter")
        ),
        before,
        "no other interface changed"
    );
    let persisted = t.dir.path().join("etc/sysctl.d/zz-ecs-diag.conf");
    let text = std::fs::read_to_string(&persisted).unwrap();
    assert!(
        text.ends_with("net.ipv4.conf.eth1.rp_filter = 2\n"),
        "{text}"
    );
    let id = applied["id"].as_str().unwrap().to_string();
    let out = fix(&t, &["--undo", &id]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(read("net.ipv4.conf.eth1.rp_filter"), "1");
    assert!(!persisted.exists(), "the file the fix created is removed");
    assert!(!t.ping("10.78.0.10"), "undone: strict again");
}

fn wait_for_state(t: &Topology, id: &str, want: &str, within_s: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(within_s);
    loop {
        let history = json_of(&fix(t, &["--history", "--json"]));
        let entry = history
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == id)
            .cloned()
            .unwrap_or(Value::Null);
        if entry["state"] == want || std::time::Instant::now() > deadline {
            return entry;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// A missing default route is added via the metadata's gateway with a timed revert: not
/// confirmed, it is taken away again after --revert-after, and the ping fails as before.
#[test]
fn an_unconfirmed_route_fix_is_reverted() {
    let t = Topology::new();
    t.guest("ip route del default");
    assert!(!t.ping(GUEST_IP), "ground truth: no route back");
    let applied = json_of(&fix(
        &t,
        &["--apply", "--yes", "--json", "--revert-after", "3"],
    ));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert_eq!(applied["checks"], serde_json::json!(["route.default"]));
    assert!(
        applied["changes"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with("ip route add default via 10.77.0.1 dev eth0"),
        "{applied:#}"
    );
    assert!(t.ping(GUEST_IP), "the fix works");
    let id = applied["id"].as_str().unwrap().to_string();
    let entry = wait_for_state(&t, &id, "reverted", 15);
    assert_eq!(entry["state"], "reverted", "{entry:#}");
    assert!(!t.ping(GUEST_IP), "reverted: the route is gone again");
}

/// Two causes, one of which can cut connectivity: both fixed in one run, confirmed in time
/// (so kept), then undone back to the faulty state.
#[test]
fn a_confirmed_fix_stays_and_undo_restores_both_causes() {
    let t = Topology::new();
    t.guest("ip route del default");
    t.sysctl_g("net.ipv4.icmp_echo_ignore_all=1");
    assert!(!t.ping(GUEST_IP));
    let applied = json_of(&fix(
        &t,
        &["--apply", "--yes", "--json", "--revert-after", "4"],
    ));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert_eq!(
        applied["checks"],
        serde_json::json!(["route.default", "sysctl.icmp_echo"])
    );
    let id = applied["id"].as_str().unwrap().to_string();
    let out = fix(&t, &["--confirm", &id]);
    exited_ok(&out);
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert!(
        t.ping(GUEST_IP),
        "confirmed: still works after --revert-after"
    );
    assert_eq!(wait_for_state(&t, &id, "applied", 1)["state"], "applied");
    let out = fix(&t, &["--undo", &id]);
    exited_ok(&out);
    let routes = t.exec(&t.guest, &["ip", "route", "show", "default"]);
    assert!(routes.stdout.is_empty(), "undone: no default route");
    assert!(!t.ping(GUEST_IP));
}

/// The guest's iptables ruleset without the save tool's comments and counters.
pub(crate) fn ruleset(t: &Topology) -> String {
    let out = t.exec(&t.guest, &["iptables-save"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.split_once(" [") {
            Some((chain, _)) if l.starts_with(':') => chain.to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SSH_RULE: &str = "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT";

/// The guest's ip6tables ruleset without comments and counters.
fn ruleset6(t: &Topology) -> String {
    let out = t.exec(&t.guest, &["ip6tables-save"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.split_once(" [") {
            Some((chain, _)) if l.starts_with(':') => chain.to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// IPv6, two blocked packets: echo requests and the router's neighbour solicitations are
/// dropped (neighbour caches flushed, so the gateway must ask again). One fix inserts an
/// accept before each drop (the IPv4 --client restricts neither), the IPv6 ping works and
/// firewall.icmp6 is ok, the SSH rule stays; undo restores the ruleset rule for rule.
#[test]
fn blocked_ipv6_echo_and_neighbour_discovery_are_both_accepted() {
    let t = Topology::new();
    t.guest("ip6tables -A INPUT -p tcp --dport 22 -j ACCEPT");
    t.guest("ip6tables -A INPUT -p ipv6-icmp --icmpv6-type echo-request -j DROP");
    t.guest("ip6tables -A INPUT -p ipv6-icmp --icmpv6-type neighbour-solicitation -j DROP");
    t.client("ip -6 neigh flush all");
    t.guest("ip -6 neigh flush all");
    assert!(!t.ping(GUEST_IP6), "ground truth: the IPv6 ping fails");
    let faulty = ruleset6(&t);
    let plan = json_of(&fix(&t, &["--json"]));
    assert_eq!(plan["plans"][0]["check"], "firewall.icmp6", "{plan:#}");
    assert_eq!(ruleset6(&t), faulty, "the plan changed no rule");
    let applied = json_of(&fix(
        &t,
        &["--apply", "--yes", "--json", "--revert-after", "60"],
    ));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert!(t.ping(GUEST_IP6), "the IPv6 ping works after the fix");
    let now = ruleset6(&t);
    assert!(now.contains(SSH_RULE), "the SSH rule stays:\n{now}");
    for accept in [
        "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT",
        "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
    ] {
        assert!(now.contains(accept), "{accept} in:\n{now}");
    }
    let r = t.diagnose(Some(CLIENT));
    assert_eq!(r["firewall.icmp6"].0, "ok", "{}", show(&r));
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(fix(&t, &["--confirm", &id]).status.code(), Some(0));
    assert_eq!(fix(&t, &["--undo", &id]).status.code(), Some(0));
    assert_eq!(ruleset6(&t), faulty, "undo restores the ruleset");
    assert!(!t.ping(GUEST_IP6), "the fault is back");
}

fn firewall_fault(t: &Topology) {
    t.guest("iptables -A INPUT -p tcp --dport 22 -j ACCEPT");
    t.guest("iptables -A INPUT -p icmp --icmp-type echo-request -j DROP");
    assert!(!t.ping(GUEST_IP), "ground truth: the firewall drops it");
}

/// A rule dropping echo requests: the plan changes no rule; the fix inserts an ACCEPT for the
/// client's echo just before it (the SSH rule stays), the ping works; confirmed, then undone
/// to the faulty ruleset rule for rule.
#[test]
fn a_dropping_rule_gets_an_accept_before_it_and_the_ssh_rule_stays() {
    let t = Topology::new();
    firewall_fault(&t);
    let faulty = ruleset(&t);
    let plan = json_of(&fix(&t, &["--json"]));
    assert_eq!(plan["plans"][0]["check"], "firewall.icmp_in", "{plan:#}");
    assert_eq!(ruleset(&t), faulty, "the plan changed no rule");
    let applied = json_of(&fix(
        &t,
        &["--apply", "--yes", "--json", "--revert-after", "60"],
    ));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert!(t.ping(GUEST_IP), "the ping works after the fix");
    let now = ruleset(&t);
    assert!(
        now.contains(SSH_RULE),
        "the SSH rule is never removed:\n{now}"
    );
    assert!(
        now.contains("-A INPUT -s 198.18.0.2/32 -p icmp -m icmp --icmp-type 8 -j ACCEPT"),
        "{now}"
    );
    let r = t.diagnose(Some(CLIENT));
    assert_eq!(r["firewall.icmp_in"].0, "ok", "{}", show(&r));
    let id = applied["id"].as_str().unwrap().to_string();
    // The ruleset as it was is in the backup, as its save tool printed it.
    let backup = t.dir.path().join("state/fixes").join(&id);
    let saved = std::fs::read_dir(&backup)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("-save.before"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap_or_default();
    assert!(saved.contains("--icmp-type 8 -j DROP"), "{saved}");
    assert_eq!(fix(&t, &["--confirm", &id]).status.code(), Some(0));
    assert_eq!(fix(&t, &["--undo", &id]).status.code(), Some(0));
    assert_eq!(ruleset(&t), faulty, "undo restores the ruleset");
}

/// Not confirmed: the inserted rule is taken out again after --revert-after.
#[test]
fn an_unconfirmed_firewall_fix_is_reverted() {
    let t = Topology::new();
    firewall_fault(&t);
    let faulty = ruleset(&t);
    let applied = json_of(&fix(
        &t,
        &["--apply", "--yes", "--json", "--revert-after", "2"],
    ));
    assert!(t.ping(GUEST_IP));
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(wait_for_state(&t, &id, "reverted", 15)["state"], "reverted");
    assert_eq!(ruleset(&t), faulty);
    assert!(!t.ping(GUEST_IP));
}

/// An assigned secondary private IP missing from eth0: added now and to eth0's ifcfg file (the
/// case's persisted configuration), confirmed; undo takes both away again.
#[test]
fn a_missing_secondary_ip_is_added_now_and_persisted() {
    let t = Topology::new();
    t.guest("ip addr del 10.77.0.11/24 dev eth0");
    assert!(!t.ping(SECONDARY_IP));
    let ifcfg = t
        .dir
        .path()
        .join("etc/sysconfig/network-scripts/ifcfg-eth0");
    let before = std::fs::read(&ifcfg).unwrap();
    let applied = json_of(&fix(&t, &["--apply", "--yes", "--json"]));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert_eq!(applied["checks"], serde_json::json!(["addr.secondary"]));
    assert!(
        t.ping(SECONDARY_IP),
        "the secondary IP answers after the fix"
    );
    let text = std::fs::read_to_string(&ifcfg).unwrap();
    assert!(text.ends_with("IPADDR1=10.77.0.11\nPREFIX1=24\n"), "{text}");
    let r = t.diagnose(Some(CLIENT));
    for id in ["addr.secondary", "addr.config", "addr.primary"] {
        assert_eq!(r[id].0, "ok", "{id}: {}", show(&r));
    }
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(fix(&t, &["--confirm", &id]).status.code(), Some(0));
    assert_eq!(fix(&t, &["--undo", &id]).status.code(), Some(0));
    assert_eq!(
        std::fs::read(&ifcfg).unwrap(),
        before,
        "the file byte for byte"
    );
    assert!(!t.ping(SECONDARY_IP), "undone");
}

/// Runs `args` in the guest with ufw's configuration from the case's tree: a private mount
/// namespace binds the case's `etc/ufw` (the [paths] etc the fix edits) over /etc/ufw and its
/// copy of /etc/default/ufw (no kernel modules to load), so ufw never touches the machine's own.
pub(crate) fn in_ufw(t: &Topology, args: &[&str]) -> Output {
    let etc = t.dir.path().join("etc");
    let script = format!(
        "mount --bind {} /etc/ufw && mount --bind {} /etc/default/ufw && exec \"$@\"",
        etc.join("ufw").display(),
        etc.join("default/ufw").display()
    );
    let mut full = vec![
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
        "ip",
        "netns",
        "exec",
        &t.guest,
    ];
    full.extend_from_slice(args);
    run(&full)
}

const UFW_ECHO: &str = "-A ufw-before-input -p icmp --icmp-type echo-request -j ACCEPT";

/// ufw enabled in the guest (default deny incoming, SSH allowed), with the echo-request accept
/// taken out of before.rules as a hardening guide might: the ping fails.
pub(crate) fn ufw_fault(t: &Topology) {
    let etc = t.dir.path().join("etc");
    let out = run(&["cp", "-a", "/etc/ufw", etc.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "ufw is installed (scripts/prerequisites)"
    );
    std::fs::write(etc.join("ufw/sysctl.conf"), "").unwrap();
    let before = std::fs::read_to_string(etc.join("ufw/before.rules")).unwrap();
    assert!(before.contains(UFW_ECHO), "{before}");
    std::fs::write(
        etc.join("ufw/before.rules"),
        before.replace(&format!("{UFW_ECHO}\n"), ""),
    )
    .unwrap();
    std::fs::create_dir_all(etc.join("default")).unwrap();
    let defaults = std::fs::read_to_string("/etc/default/ufw").unwrap();
    let defaults: String = defaults
        .lines()
        .map(|l| {
            if l.starts_with("IPT_MODULES=") {
                "IPT_MODULES=\"\""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(etc.join("default/ufw"), defaults + "\n").unwrap();
    for cmd in [
        &["ufw", "--force", "enable"][..],
        &["ufw", "allow", "22/tcp"],
    ] {
        let out = in_ufw(t, cmd);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!t.ping(GUEST_IP), "ground truth: ufw drops the echo");
}

/// ufw manages the rules: the fix puts the accept in ufw's own before.rules (so ufw keeps it)
/// and runs `ufw reload` — the plan changes nothing, the ping works after, the SSH rule stays,
/// undo restores before.rules byte for byte and reloads, and the ping fails again.
#[test]
fn a_ufw_ruleset_gets_the_accept_in_before_rules() {
    let t = Topology::new();
    ufw_fault(&t);
    let rules = t.dir.path().join("etc/ufw/before.rules");
    let faulty_file = std::fs::read(&rules).unwrap();
    let faulty = ruleset(&t);
    let r = t.diagnose(Some(CLIENT));
    assert_eq!(r["firewall.icmp_in"].0, "fail", "{}", show(&r));
    let config = t.fix_config();
    let fix_ufw = |args: &[&str]| in_ufw(&t, &fix_argv(&config, args));
    let plan = json_of(&fix_ufw(&["--json"]));
    assert_eq!(plan["plans"][0]["check"], "firewall.icmp_in", "{plan:#}");
    assert_eq!(
        std::fs::read(&rules).unwrap(),
        faulty_file,
        "the plan changed no file"
    );
    assert_eq!(ruleset(&t), faulty, "the plan changed no rule");
    let applied = json_of(&fix_ufw(&["--apply", "--yes", "--json"]));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert!(t.ping(GUEST_IP), "the ping works after the fix");
    let text = std::fs::read_to_string(&rules).unwrap();
    assert!(
        text.contains(
            "-A ufw-before-input -p icmp --icmp-type echo-request -s 198.18.0.2 -j ACCEPT"
        ),
        "{text}"
    );
    let now = ruleset(&t);
    assert!(
        now.contains("-A ufw-user-input -p tcp -m tcp --dport 22 -j ACCEPT"),
        "the SSH rule stays:\n{now}"
    );
    let r = t.diagnose(Some(CLIENT));
    assert_eq!(r["firewall.icmp_in"].0, "ok", "{}", show(&r));
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(fix_ufw(&["--confirm", &id]).status.code(), Some(0));
    let out = fix_ufw(&["--undo", &id]);
    exited_ok(&out);
    assert_eq!(
        std::fs::read(&rules).unwrap(),
        faulty_file,
        "before.rules byte for byte"
    );
    assert_eq!(ruleset(&t), faulty, "ufw reloaded the restored file");
    assert!(!t.ping(GUEST_IP), "the fault is back");
}

/// firewalld running in the guest as on a RHEL-family image: on its own D-Bus system bus (a
/// private dbus-daemon listening in the case directory, which `firewall-cmd` and the agent
/// reach through DBUS_SYSTEM_BUS_ADDRESS), with its configuration copied into the case
/// (`--system-config`) and a private /run, so nothing of the machine's own is touched. Both
/// processes are killed when this is dropped (declare it after the Topology).
pub(crate) struct Firewalld {
    /// `DBUS_SYSTEM_BUS_ADDRESS=…` of the private bus, as `env` takes it.
    bus_env: String,
    etc: std::path::PathBuf,
    daemons: Vec<std::process::Child>,
}

impl Firewalld {
    pub(crate) fn start(t: &Topology) -> Firewalld {
        use std::process::{Command, Stdio};
        let etc = t.dir.path().join("etc/firewalld");
        let out = run(&["cp", "-a", "/etc/firewalld", etc.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "firewalld is installed (scripts/prerequisites)"
        );
        let socket = t.dir.path().join("system_bus_socket");
        let bus = format!("unix:path={}", socket.display());
        let conf = t.dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!("<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>system</type><listen>{bus}</listen><auth>EXTERNAL</auth><policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/><allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>\n"),
        )
        .unwrap();
        let mut fw = Firewalld {
            bus_env: format!("DBUS_SYSTEM_BUS_ADDRESS={bus}"),
            etc: etc.clone(),
            daemons: Vec::new(),
        };
        // Its warnings (an fd limit it may not raise) go to the case, not the test output.
        let bus_log = t.dir.path().join("dbus.log");
        fw.daemons.push(
            Command::new("dbus-daemon")
                .args(["--nofork", "--nopidfile", "--config-file"])
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&bus_log).unwrap())
                .spawn()
                .expect("dbus-daemon"),
        );
        let started = std::time::Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed().as_secs() < 20,
                "the private bus never listened: {}",
                std::fs::read_to_string(&bus_log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = std::fs::File::create(t.dir.path().join("firewalld.log")).unwrap();
        // ip netns exec, unshare and sh each exec the next: the child is firewalld itself.
        fw.daemons.push(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &t.guest,
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                ])
                .args(["sh", "-c", "mount -t tmpfs tmpfs /run && exec \"$@\"", "sh"])
                .args([
                    "firewalld",
                    "--nofork",
                    "--nopid",
                    "--log-target",
                    "console",
                ])
                .arg("--system-config")
                .arg(&etc)
                .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("firewalld"),
        );
        while fw.cmd(t, &["firewall-cmd", "--state"]).status.code() != Some(0) {
            assert!(
                started.elapsed().as_secs() < 90,
                "firewalld never ran: {}",
                std::fs::read_to_string(t.dir.path().join("firewalld.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        fw
    }

    /// `args` as a command line in the guest with firewalld's bus, for `run` or `must`.
    fn in_guest<'a>(&'a self, t: &'a Topology, args: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec!["env", &self.bus_env, "ip", "netns", "exec", &t.guest];
        full.extend_from_slice(args);
        full
    }

    pub(crate) fn cmd(&self, t: &Topology, args: &[&str]) -> Output {
        run(&self.in_guest(t, args))
    }

    pub(crate) fn must(&self, t: &Topology, args: &[&str]) -> String {
        must(&self.in_guest(t, args))
    }

    /// The runtime ruleset firewalld made and its permanent configuration of every zone.
    fn state(&self, t: &Topology) -> (String, String) {
        (
            self.must(t, &["nft", "list", "ruleset"]),
            self.must(t, &["firewall-cmd", "--permanent", "--list-all-zones"]),
        )
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().rev() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// firewalld blocks the echo request with an ICMP block in the default zone (runtime and
/// permanent, as `--add-icmp-block=echo-request` hardening does): the IPv4 and IPv6 pings fail
/// (two causes: icmp_in and icmp6). The plan changes nothing; one fix adds lowest-priority rich
/// rules accepting echo (IPv4 from the client, IPv6 from any) in that zone, at runtime and
/// permanently, so both pings work, both checks are ok, the SSH service stays, and a
/// `firewall-cmd --reload` keeps them; undo restores the ruleset and the permanent
/// configuration as they were.
#[test]
fn a_firewalld_icmp_block_is_passed_by_a_rich_rule_it_keeps() {
    let t = Topology::new();
    let fw = Firewalld::start(&t);
    for args in [
        &[
            "firewall-cmd",
            "--permanent",
            "--add-icmp-block=echo-request",
        ][..],
        &["firewall-cmd", "--add-icmp-block=echo-request"],
    ] {
        fw.must(&t, args);
    }
    assert!(
        !t.ping(GUEST_IP),
        "ground truth: firewalld rejects the echo"
    );
    assert!(!t.ping(GUEST_IP6), "ground truth: over IPv6 as well");
    // firewalld's own ruleset is read over nfnetlink, equal to nft's listing of it.
    let native = t.native_nft();
    assert_eq!(native.read_natively, ["inet firewalld"], "{native:?}");
    for table in &native.tables {
        assert_same_nft_table(&t, table);
    }
    let faulty = fw.state(&t);
    let zone_file = fw.etc.join("zones/public.xml");
    let faulty_zone = std::fs::read(&zone_file).unwrap();
    let r = t.diagnose(Some(CLIENT));
    for id in ["firewall.icmp_in", "firewall.icmp6"] {
        let f = &r[id];
        assert_eq!(f.0, "fail", "{id}: {}", show(&r));
        assert_eq!(f.1["evidence"]["manager"], "firewalld", "{}", f.1);
    }
    let config = t.fix_config();
    let fix_fw = |args: &[&str]| fw.cmd(&t, &fix_argv(&config, args));
    let plan = fix_fw(&[]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("firewall-cmd --permanent --zone public --add-rich-rule 'rule priority=\"-32768\" family=\"ipv4\" source address=\"198.18.0.2\" icmp-type name=\"echo-request\" accept'"),
        "{text}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert_eq!(fw.state(&t), faulty, "the plan changed nothing");
    let applied = json_of(&fix_fw(&["--apply", "--yes", "--json"]));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert!(t.ping(GUEST_IP), "the ping works after the fix");
    assert!(t.ping(GUEST_IP6), "the IPv6 ping too: one run fixed both");
    let r = t.diagnose(Some(CLIENT));
    for id in ["firewall.icmp_in", "firewall.icmp6"] {
        assert_eq!(r[id].0, "ok", "{id}: {}", show(&r));
    }
    let id = applied["id"].as_str().unwrap().to_string();
    let backup = t.dir.path().join("state/fixes").join(&id);
    assert_eq!(
        std::fs::read_to_string(backup.join("firewall-cmd-permanent-list-all-zones.before"))
            .unwrap(),
        faulty.1,
        "the backup holds the permanent configuration as it was"
    );
    assert_eq!(fix_fw(&["--confirm", &id]).status.code(), Some(0));
    let services = fw.must(&t, &["firewall-cmd", "--zone", "public", "--list-services"]);
    assert!(
        services.contains("ssh"),
        "the SSH service stays: {services}"
    );
    // Kept by firewalld: its own reload rebuilds the ruleset from the permanent configuration.
    fw.must(&t, &["firewall-cmd", "--reload"]);
    assert!(
        t.ping(GUEST_IP) && t.ping(GUEST_IP6),
        "the pings still work after firewall-cmd --reload"
    );
    let zone = std::fs::read_to_string(&zone_file).unwrap();
    assert!(zone.contains("priority=\"-32768\""), "{zone}");
    let out = fix_fw(&["--undo", &id]);
    exited_ok(&out);
    assert_eq!(
        fw.state(&t),
        faulty,
        "ruleset and permanent zones as they were"
    );
    assert_eq!(
        std::fs::read(&zone_file).unwrap(),
        faulty_zone,
        "firewalld wrote the zone file back byte for byte"
    );
    assert!(!t.ping(GUEST_IP), "the fault is back");
    assert!(!t.ping(GUEST_IP6), "over IPv6 as well");
}

/// eth0 configured by netplan as cloud-init writes it (matched by MAC, DHCP) instead of ifcfg:
/// the missing secondary IP is added now and in a netplan drop-in under the same id, which
/// netplan itself merges into eth0's configuration (`netplan generate` on the case's tree:
/// DHCP and the address); addr.config stays ok; undo removes the drop-in.
#[test]
fn a_missing_secondary_ip_is_persisted_for_netplan() {
    let t = Topology::new();
    let etc = t.dir.path().join("etc");
    std::fs::remove_file(etc.join("sysconfig/network-scripts/ifcfg-eth0")).unwrap();
    std::fs::create_dir_all(etc.join("netplan")).unwrap();
    std::fs::write(
        etc.join("netplan/50-cloud-init.yaml"),
        format!("network:\n  version: 2\n  ethernets:\n    primary:\n      match:\n        macaddress: {MAC0}\n      set-name: eth0\n      dhcp4: true\n"),
    )
    .unwrap();
    t.guest("ip addr del 10.77.0.11/24 dev eth0");
    assert!(!t.ping(SECONDARY_IP));
    let applied = json_of(&fix(&t, &["--apply", "--yes", "--json"]));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert!(
        t.ping(SECONDARY_IP),
        "the secondary IP answers after the fix"
    );
    let dropin = etc.join("netplan/99-ecs-diag.yaml");
    let text = std::fs::read_to_string(&dropin).unwrap();
    assert!(
        text.contains("primary:") && text.contains("10.77.0.11/24"),
        "{text}"
    );
    // The mode of the file beside it (0644 here, so the unit's user can read both).
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dropin).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // Netplan's own reading of the two files: eth0 keeps DHCP and gains the address.
    let out = run(&[
        "netplan",
        "generate",
        "--root-dir",
        t.dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let networkd = std::fs::read_to_string(
        t.dir
            .path()
            .join("run/systemd/network/10-netplan-primary.network"),
    )
    .unwrap();
    assert!(
        networkd.contains("Address=10.77.0.11/24") && networkd.contains("DHCP=ipv4"),
        "{networkd}"
    );
    let r = t.diagnose(Some(CLIENT));
    for id in ["addr.secondary", "addr.config"] {
        assert_eq!(r[id].0, "ok", "{id}: {}", show(&r));
    }
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(fix(&t, &["--confirm", &id]).status.code(), Some(0));
    assert_eq!(fix(&t, &["--undo", &id]).status.code(), Some(0));
    assert!(!dropin.exists(), "undo removes the drop-in");
    assert!(!t.ping(SECONDARY_IP), "undone");
}

/// eth0 configured by a NetworkManager keyfile (DHCP): the secondary IP goes in as
/// addressN= of its [ipv4] section; addr.config stays ok; undo restores it byte for byte.
#[test]
fn a_missing_secondary_ip_is_persisted_for_networkmanager() {
    let t = Topology::new();
    let etc = t.dir.path().join("etc");
    std::fs::remove_file(etc.join("sysconfig/network-scripts/ifcfg-eth0")).unwrap();
    let keyfile = etc.join("NetworkManager/system-connections/eth0.nmconnection");
    std::fs::create_dir_all(keyfile.parent().unwrap()).unwrap();
    let before = "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n";
    std::fs::write(&keyfile, before).unwrap();
    t.guest("ip addr del 10.77.0.11/24 dev eth0");
    assert!(!t.ping(SECONDARY_IP));
    let applied = json_of(&fix(&t, &["--apply", "--yes", "--json"]));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert!(
        t.ping(SECONDARY_IP),
        "the secondary IP answers after the fix"
    );
    let text = std::fs::read_to_string(&keyfile).unwrap();
    assert!(
        text.contains("[ipv4]\nmethod=auto\n# ecs-diag fix: secondary private IP assigned by the cloud\naddress1=10.77.0.11/24\n"),
        "{text}"
    );
    let r = t.diagnose(Some(CLIENT));
    for id in ["addr.secondary", "addr.config"] {
        assert_eq!(r[id].0, "ok", "{id}: {}", show(&r));
    }
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(fix(&t, &["--confirm", &id]).status.code(), Some(0));
    assert_eq!(fix(&t, &["--undo", &id]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&keyfile).unwrap(),
        before,
        "byte for byte"
    );
    assert!(!t.ping(SECONDARY_IP), "undone");
}

/// The primary link set down takes with it both default routes and the static IPv6 address:
/// three causes (link.primary, addr.primary, route.default), all fixed in one run — the link
/// up, the assigned IPv6 address back, then both routes via the metadata's gateways. Both
/// pings work; undo sets the link down again.
#[test]
fn a_downed_primary_link_and_what_it_took_with_it_are_all_fixed() {
    let t = Topology::new();
    assert!(t.ping(GUEST_IP6), "IPv6 works before the fault");
    t.guest("ip link set eth0 down");
    assert!(!t.ping(GUEST_IP), "ground truth: the link is down");
    let applied = json_of(&fix(&t, &["--apply", "--yes", "--json"]));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert_eq!(
        applied["checks"],
        serde_json::json!(["link.primary", "addr.primary", "route.default"]),
        "{applied:#}"
    );
    assert!(t.ping(GUEST_IP), "the IPv4 ping works after the fix");
    // The address is tentative until duplicate address detection ends (about a second).
    let v6 = (0..5).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(500));
        t.ping(GUEST_IP6)
    });
    assert!(v6, "the IPv6 ping works after the fix");
    let r = t.diagnose(Some(CLIENT));
    for id in ["link.primary", "addr.primary", "route.default"] {
        assert_eq!(r[id].0, "ok", "{id}: {}", show(&r));
    }
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(fix(&t, &["--confirm", &id]).status.code(), Some(0));
    assert_eq!(fix(&t, &["--undo", &id]).status.code(), Some(0));
    let link = t.exec(&t.guest, &["ip", "-o", "link", "show", "eth0"]);
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains(",UP"),
        "undone: eth0 is down again"
    );
    assert!(!t.ping(GUEST_IP));
}

/// The guest's native nftables ruleset without counter values.
fn nft_ruleset(t: &Topology) -> String {
    let out = t.exec(&t.guest, &["nft", "list", "ruleset"]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .split(" packets ")
        .map(|part| {
            // "3 bytes 252 drop" → "drop": the counter's numbers go.
            let words: Vec<&str> = part.split(' ').collect();
            if words.len() > 3 && words[1] == "bytes" {
                words[3..].join(" ")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" packets ")
}

/// A native nftables rule dropping echo requests: a tagged ACCEPT goes in before it (by
/// handle); undo deletes exactly that rule.
#[test]
fn a_native_nft_drop_gets_an_accept_before_it_by_handle() {
    let t = Topology::new();
    t.add_nft_guard_input();
    t.guest("nft add rule inet guard input tcp dport 22 accept");
    t.guest("nft add rule inet guard input icmp type echo-request counter drop");
    assert!(!t.ping(GUEST_IP));
    let faulty = nft_ruleset(&t);
    let applied = json_of(&fix(&t, &["--apply", "--yes", "--json"]));
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    assert!(t.ping(GUEST_IP), "the ping works after the fix");
    let now = nft_ruleset(&t);
    assert!(
        now.contains("tcp dport 22 accept"),
        "the SSH rule stays: {now}"
    );
    assert!(
        now.contains("ip saddr 198.18.0.2 icmp type echo-request accept comment \"ecs-diag fix firewall.icmp_in"),
        "{now}"
    );
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(fix(&t, &["--confirm", &id]).status.code(), Some(0));
    let out = fix(&t, &["--undo", &id]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        nft_ruleset(&t),
        faulty,
        "undo deletes exactly the fix's rule"
    );
    assert!(!t.ping(GUEST_IP));
}

/// Makes a directory immutable (even root cannot create or rename in it) until dropped, so a
/// fix fails half-way; the flag is removed even when the case fails.
struct Immutable(std::path::PathBuf);
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// The running value is changed, then the sysctl.d file cannot be written: everything done so
/// far is rolled back, and the output says what was restored.
#[test]
fn a_fix_that_fails_half_way_is_rolled_back() {
    let t = Topology::new();
    inject(&t);
    let faulty = state(&t);
    let dir = t.dir.path().join("etc/sysctl.d");
    let status = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "chattr +i (ext4 /tmp) is needed");
    let guard = Immutable(dir);
    let out = fix(
        &t,
        &["--apply", "--yes", "--json", "--check", "sysctl.icmp_echo"],
    );
    drop(guard);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["state"], "rolled_back", "{v:#}");
    assert!(
        v["rolled_back_because"]
            .as_str()
            .unwrap()
            .contains("cannot write"),
        "{v:#}"
    );
    // The running value is restored; the file that could not be written is checked too
    // (the change in flight) and found as it was.
    let restored = v["restored"].to_string();
    assert!(
        restored.contains("net.ipv4.icmp_echo_ignore_all = 1")
            && restored.contains("as before already"),
        "{v:#}"
    );
    assert_eq!(state(&t), faulty);
}
