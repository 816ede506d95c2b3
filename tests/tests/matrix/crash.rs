//! The crash-point harness of `ecs-diag fix` (issue 25): each kind of fix is killed with
//! SIGKILL at every step boundary of its transaction (`ECS_DIAG_FIX_CRASH_AT`:
//! `journal-written` inside the journal's first write, `journaled`,
//! `armed`, `change-N`, `file-written` inside a file's write, `verified`, `saved`), then:
//! the system is entirely old or entirely new, `--history` says which (the next run — or the
//! reverter armed before the first change — recovered the unfinished transaction), no
//! temporary file is left, and where the fix completed, `--undo` restores the old state byte
//! for byte, file mode included. Every case runs in its own namespaces and temp roots.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;

use ecs_diag_matrix::matrix::*;
use serde_json::Value;

/// Where the agent runs: the guest namespace, with ufw's configuration bound over /etc/ufw
/// (a private mount namespace), or with firewalld's private bus.
enum Runner {
    Guest,
    Ufw,
    Firewalld(super::fix::Firewalld),
}

impl Runner {
    fn run(&self, t: &Topology, argv: &[&str]) -> Output {
        match self {
            Runner::Guest => t.exec(&t.guest, argv),
            Runner::Ufw => super::fix::in_ufw(t, argv),
            Runner::Firewalld(fw) => fw.cmd(t, argv),
        }
    }
}

/// `ecs-diag fix ARGS` in the guest, with `env` (`NAME=VALUE`) set.
fn fix_in(t: &Topology, r: &Runner, args: &[&str], env: &[String]) -> Output {
    let config = t.fix_config();
    let mut argv = vec!["env"];
    argv.extend(env.iter().map(String::as_str));
    argv.extend([agent_bin(), "fix", "--config", &config]);
    argv.extend_from_slice(args);
    r.run(t, &argv)
}

fn fix(t: &Topology, args: &[&str], crash_at: Option<&str>) -> Output {
    let env: Vec<String> = crash_at
        .map(|s| format!("ECS_DIAG_FIX_CRASH_AT={s}"))
        .into_iter()
        .collect();
    fix_in(t, &Runner::Guest, args, &env)
}

fn history_in(t: &Topology, r: &Runner) -> Vec<Value> {
    let out = fix_in(t, r, &["--history", "--json"], &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "history is not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v.as_array().unwrap().clone()
}

fn history(t: &Topology) -> Vec<Value> {
    history_in(t, &Runner::Guest)
}

/// The last fix's state once nothing is pending (the reverter or this history's recovery
/// has acted on a killed run).
fn settled_in(t: &Topology, r: &Runner) -> (String, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let h = history_in(t, r);
        let last = h.last().cloned().unwrap_or(Value::Null);
        let state = last["state"].as_str().unwrap_or("none").to_string();
        if state != "applying" || std::time::Instant::now() > deadline {
            return (state, last);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn settled(t: &Topology) -> (String, Value) {
    settled_in(t, &Runner::Guest)
}

/// The last fix's state as its journal says (read directly, no ecs-diag run), once it is
/// not `applying`, or after `within_s`.
fn record_state_within(t: &Topology, within_s: u64) -> String {
    let fixes = t.dir.path().join("state/fixes");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(within_s);
    loop {
        let mut dirs: Vec<_> = std::fs::read_dir(&fixes)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        let state = dirs
            .last()
            .and_then(|d| std::fs::read_to_string(d.join("record.json")).ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["state"].as_str().map(str::to_string))
            .unwrap_or_else(|| "none".into());
        if state != "applying" || std::time::Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Files whose names end in the temporary suffix, anywhere under the case's tree.
fn temp_files(t: &Topology) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![t.dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".ecs-diag-tmp") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// One kind of fix: its fault, what it reads of the system, its crash points.
struct Kind {
    name: &'static str,
    /// Makes the fault; where the agent must run to see it as the system does.
    inject: fn(&Topology) -> Runner,
    /// Everything the fix may touch, as text (files with their mode).
    state: fn(&Topology) -> String,
    steps: &'static [&'static str],
    /// The address the real ping proves the fault and the fix on.
    target: &'static str,
}

const NOPING: &str = "etc/sysctl.d/90-noping.conf";

/// A file of the case's tree (`rel` under it): its content and mode, or that it is absent.
fn file_state(t: &Topology, rel: &str) -> String {
    let path = t.dir.path().join(rel);
    let mode = std::fs::metadata(&path)
        .map(|m| format!("{:o}", m.permissions().mode() & 0o7777))
        .ok();
    format!(
        "file={:?} mode={mode:?}",
        std::fs::read_to_string(&path).ok()
    )
}

/// eth0's IPv4 addresses (`ip -br`).
fn eth0_ipv4(t: &Topology) -> String {
    let a = t.exec(&t.guest, &["ip", "-4", "-br", "addr", "show", "eth0"]);
    String::from_utf8_lossy(&a.stdout).trim().to_string()
}

/// The crash points of a connectivity-risky fix of two changes, one a file write: an address
/// and its file, or ufw's before.rules and its reload.
const TWO_CHANGES_AND_A_FILE: &[&str] = &[
    "journaled",
    "armed",
    "change-1",
    "file-written",
    "change-2",
    "verified",
    "saved",
];
/// The crash points of a connectivity-risky fix of one command.
const ONE_COMMAND: &[&str] = &["journaled", "armed", "change-1", "verified", "saved"];

fn sysctl_fault(t: &Topology) {
    let path = t.dir.path().join(NOPING);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        "# hardening (made up)\nnet.ipv4.icmp_echo_ignore_all = 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    t.sysctl_g("net.ipv4.icmp_echo_ignore_all=1");
}

fn sysctl_state(t: &Topology) -> String {
    let o = t.exec(&t.guest, &["sysctl", "-n", "net.ipv4.icmp_echo_ignore_all"]);
    format!(
        "now={} {}",
        String::from_utf8_lossy(&o.stdout).trim(),
        file_state(t, NOPING)
    )
}

fn route_fault(t: &Topology) {
    t.guest("ip route del default");
}

fn routes(t: &Topology) -> String {
    let o = t.exec(&t.guest, &["ip", "route", "show"]);
    let l = t.exec(&t.guest, &["ip", "-br", "link", "show", "eth0"]);
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&l.stdout)
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn link_fault(t: &Topology) {
    t.guest("ip link set eth0 down");
}

fn iptables_fault(t: &Topology) {
    t.guest("iptables -A INPUT -p tcp --dport 22 -j ACCEPT");
    t.guest("iptables -A INPUT -p icmp --icmp-type echo-request -j DROP");
}

fn iptables_state(t: &Topology) -> String {
    let out = t.exec(&t.guest, &["iptables-save"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.starts_with(':') {
                l.split(" [").next().unwrap_or(l).to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const IFCFG: &str = "etc/sysconfig/network-scripts/ifcfg-eth0";

fn secondary_fault(t: &Topology) {
    t.guest("ip addr del 10.77.0.11/24 dev eth0");
}

fn secondary_state(t: &Topology) -> String {
    format!("{} {}", eth0_ipv4(t), file_state(t, IFCFG))
}

const KEYFILE: &str = "etc/NetworkManager/system-connections/eth0.nmconnection";

/// eth0 by a NetworkManager keyfile that holds a secret, so root-only (0600).
fn keyfile_fault(t: &Topology) {
    let etc = t.dir.path().join("etc");
    std::fs::remove_file(etc.join("sysconfig/network-scripts/ifcfg-eth0")).unwrap();
    let keyfile = t.dir.path().join(KEYFILE);
    std::fs::create_dir_all(keyfile.parent().unwrap()).unwrap();
    std::fs::write(
        &keyfile,
        "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[802-1x]\npassword=made-up\n\n[ipv4]\nmethod=auto\n",
    )
    .unwrap();
    std::fs::set_permissions(&keyfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    secondary_fault(t);
}

fn keyfile_state(t: &Topology) -> String {
    format!("{} {}", eth0_ipv4(t), file_state(t, KEYFILE))
}

/// eth0 by netplan: the fix adds a drop-in (a new file), which undo removes.
fn netplan_fault(t: &Topology) {
    let etc = t.dir.path().join("etc");
    std::fs::remove_file(etc.join("sysconfig/network-scripts/ifcfg-eth0")).unwrap();
    std::fs::create_dir_all(etc.join("netplan")).unwrap();
    std::fs::write(
        etc.join("netplan/50-cloud-init.yaml"),
        format!("network:\n  version: 2\n  ethernets:\n    primary:\n      match:\n        macaddress: {MAC0}\n      set-name: eth0\n      dhcp4: true\n"),
    )
    .unwrap();
    secondary_fault(t);
}

fn netplan_state(t: &Topology) -> String {
    let dir = t.dir.path().join("etc/netplan");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap().permissions().mode() & 0o7777;
            format!(
                "{} {m:o} {:?}",
                e.file_name().to_string_lossy(),
                std::fs::read_to_string(e.path()).ok()
            )
        })
        .collect();
    files.sort();
    format!("{} {files:?}", eth0_ipv4(t))
}

fn nft_fault(t: &Topology) {
    t.add_nft_guard_input();
    t.guest("nft add rule inet guard input tcp dport 22 accept");
    t.guest("nft add rule inet guard input icmp type echo-request drop");
}

fn nft_state(t: &Topology) -> String {
    let out = t.exec(&t.guest, &["nft", "list", "table", "inet", "guard"]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs the kind's fix, killed at each step in turn, in a fresh topology per step.
fn harness(kind: &Kind) -> Vec<String> {
    let mut table = Vec::new();
    for step in kind.steps {
        let t = Topology::new();
        let r = (kind.inject)(&t);
        assert!(
            !t.ping(kind.target),
            "{}: ground truth: the fault holds",
            kind.name
        );
        let old = (kind.state)(&t);
        let out = fix_in(
            &t,
            &r,
            &[
                "--client",
                CLIENT,
                "--apply",
                "--yes",
                "--json",
                "--revert-after",
                "120",
            ],
            &[format!("ECS_DIAG_FIX_CRASH_AT={step}")],
        );
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{} killed at {step}: it was not killed there (exit {:?}): {}{}",
            kind.name,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Where a reverter was armed, it alone (no later run) settles a killed fix.
        if kind.steps.contains(&"armed") && !["journal-written", "journaled"].contains(step) {
            let alone = record_state_within(&t, 5);
            assert!(
                matches!(
                    alone.as_str(),
                    "rolled_back" | "applied" | "awaiting_confirmation"
                ),
                "{} at {step}: the reverter left it {alone}",
                kind.name
            );
        }
        let (state, entry) = settled_in(&t, &r);
        let now = (kind.state)(&t);
        let leftovers = temp_files(&t);
        assert!(
            leftovers.is_empty(),
            "{} at {step}: {leftovers:?}",
            kind.name
        );
        let outcome = if *step == "saved" {
            // The fix was complete and recorded: entirely new, and undo gives the old back.
            assert!(
                matches!(state.as_str(), "applied" | "awaiting_confirmation"),
                "{} at {step}: {entry:#}",
                kind.name
            );
            assert_ne!(now, old, "{} at {step}: the fix is in place", kind.name);
            assert!(
                t.ping(kind.target),
                "{} at {step}: the fix works",
                kind.name
            );
            let id = entry["id"].as_str().unwrap().to_string();
            let undo = fix_in(&t, &r, &["--undo", &id], &[]);
            assert_eq!(
                undo.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&undo.stderr)
            );
            assert_eq!(
                (kind.state)(&t),
                old,
                "{} at {step}: undo restores it",
                kind.name
            );
            format!("new ({state}); undo → old")
        } else if *step == "journal-written" {
            // Killed while its journal was first written: nothing had changed, and the
            // half-written journal is gone.
            assert_eq!(state, "none", "{} at {step}: {entry:#}", kind.name);
            assert_eq!(now, old, "{} at {step}: entirely old", kind.name);
            "old (never began)".to_string()
        } else {
            assert_eq!(state, "rolled_back", "{} at {step}: {entry:#}", kind.name);
            assert_eq!(now, old, "{} at {step}: entirely old", kind.name);
            assert!(
                !t.ping(kind.target),
                "{} at {step}: still the fault",
                kind.name
            );
            "old (rolled_back)".to_string()
        };
        table.push(format!("{:<22} {:<13} {outcome}", kind.name, step));
    }
    println!("{}", table.join("\n"));
    table
}

#[test]
fn crash_sysctl_and_its_file() {
    harness(&Kind {
        name: "sysctl + sysctl.d",
        inject: |t| {
            sysctl_fault(t);
            Runner::Guest
        },
        state: sysctl_state,
        steps: &[
            "journal-written",
            "journaled",
            "change-1",
            "file-written",
            "change-2",
            "verified",
            "saved",
        ],
        target: GUEST_IP,
    });
}

#[test]
fn crash_route() {
    harness(&Kind {
        name: "route",
        inject: |t| {
            route_fault(t);
            Runner::Guest
        },
        state: routes,
        steps: ONE_COMMAND,
        target: GUEST_IP,
    });
}

#[test]
fn crash_link_and_route() {
    harness(&Kind {
        name: "link + route (multi)",
        inject: |t| {
            link_fault(t);
            Runner::Guest
        },
        state: routes,
        steps: &[
            "journaled",
            "armed",
            "change-1",
            "change-2",
            "verified",
            "saved",
        ],
        target: GUEST_IP,
    });
}

#[test]
fn crash_iptables() {
    harness(&Kind {
        name: "iptables",
        inject: |t| {
            iptables_fault(t);
            Runner::Guest
        },
        state: iptables_state,
        steps: ONE_COMMAND,
        target: GUEST_IP,
    });
}

#[test]
fn crash_nft() {
    harness(&Kind {
        name: "nft",
        inject: |t| {
            nft_fault(t);
            Runner::Guest
        },
        state: nft_state,
        steps: ONE_COMMAND,
        target: GUEST_IP,
    });
}

/// The reverter is visible in `--history`; killed, history says it is not running, and once
/// the fix's deadline has passed the next run reverts the unconfirmed fix itself.
#[test]
fn a_killed_reverter_is_shown_and_the_next_run_reverts_in_its_place() {
    let t = Topology::new();
    route_fault(&t);
    let old = routes(&t);
    let out = fix(
        &t,
        &[
            "--client",
            CLIENT,
            "--apply",
            "--yes",
            "--json",
            "--revert-after",
            "3",
        ],
        None,
    );
    let applied: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    let entry = history(&t).last().cloned().unwrap();
    assert_eq!(entry["reverter"]["alive"], true, "{entry:#}");
    let pid = entry["reverter"]["pid"].as_u64().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let entry = history(&t).last().cloned().unwrap();
    assert_eq!(entry["reverter"]["alive"], false, "{entry:#}");
    assert!(
        t.ping(GUEST_IP),
        "not reverted yet: nothing runs the deadline"
    );
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (state, entry) = settled(&t);
    assert_eq!(state, "reverted", "{entry:#}");
    assert_eq!(routes(&t), old);
    assert!(!t.ping(GUEST_IP));
}

/// The lock is not held while a person decides, and what is applied is what was shown: an
/// edit made while the prompt waits makes a new plan, shown, and nothing is applied.
#[test]
fn an_edit_made_during_the_prompt_is_not_overwritten() {
    use std::io::Write;
    let t = Topology::new();
    sysctl_fault(&t);
    let config = t.fix_config();
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.guest,
            agent_bin(),
            "fix",
            "--config",
            &config,
        ])
        .args(["--client", CLIENT, "--apply"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The plan is shown and the question asked; meanwhile another fix may run (no lock) and
    // an admin edits the file.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let other = fix(&t, &["--history"], None);
    assert_eq!(
        other.status.code(),
        Some(0),
        "the lock is free while the prompt waits"
    );
    let path = t.dir.path().join(NOPING);
    let edited =
        "# hardening (made up)\nnet.ipv4.icmp_echo_ignore_all = 1\n# the admin's own line\n";
    std::fs::write(&path, edited).unwrap();
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the system changed while the plan was shown"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    assert!(history(&t).is_empty(), "nothing applied");
}

/// An admin's edit after a fix is kept by --undo (saved beside the backup), the undo is
/// recorded as failed with the reason, and once settled a retry finishes it.
#[test]
fn undo_keeps_an_edit_made_since_and_can_be_retried() {
    let t = Topology::new();
    sysctl_fault(&t);
    let old = sysctl_state(&t);
    let out = fix(
        &t,
        &["--client", CLIENT, "--apply", "--yes", "--json"],
        None,
    );
    let applied: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(applied["state"], "applied", "{applied:#}");
    let id = applied["id"].as_str().unwrap().to_string();
    let path = t.dir.path().join(NOPING);
    let fixed = std::fs::read_to_string(&path).unwrap();
    let edited = format!("{fixed}# the admin's line\n");
    std::fs::write(&path, &edited).unwrap();
    let undo = fix(&t, &["--undo", &id, "--json"], None);
    assert_eq!(undo.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&undo.stdout).unwrap();
    assert_eq!(v["state"], "undo_failed", "{v:#}");
    assert!(
        v["failure"]
            .as_str()
            .unwrap()
            .contains("changed since the fix: kept"),
        "{v:#}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        edited,
        "the edit is kept"
    );
    let newer = t
        .dir
        .path()
        .join(format!("state/fixes/{id}/90-noping.conf.newer"));
    assert_eq!(std::fs::read_to_string(&newer).unwrap(), edited);
    let mode = std::fs::metadata(&newer).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "what is kept is private");
    // Settled by hand: the retry restores everything, file mode included.
    std::fs::write(&path, &fixed).unwrap();
    let retry = fix(&t, &["--undo", &id], None);
    assert_eq!(
        retry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&retry.stdout)
    );
    assert_eq!(sysctl_state(&t), old);
}

#[test]
fn crash_secondary_ip_and_its_ifcfg() {
    harness(&Kind {
        name: "secondary IP + ifcfg",
        inject: |t| {
            secondary_fault(t);
            Runner::Guest
        },
        state: secondary_state,
        steps: TWO_CHANGES_AND_A_FILE,
        target: SECONDARY_IP,
    });
}

#[test]
fn crash_secondary_ip_and_a_root_only_networkmanager_keyfile() {
    harness(&Kind {
        name: "secondary IP + NM",
        inject: |t| {
            keyfile_fault(t);
            Runner::Guest
        },
        state: keyfile_state,
        steps: TWO_CHANGES_AND_A_FILE,
        target: SECONDARY_IP,
    });
}

#[test]
fn crash_secondary_ip_and_a_netplan_drop_in() {
    harness(&Kind {
        name: "secondary IP + netplan",
        inject: |t| {
            netplan_fault(t);
            Runner::Guest
        },
        state: netplan_state,
        steps: TWO_CHANGES_AND_A_FILE,
        target: SECONDARY_IP,
    });
}

fn ufw_state(t: &Topology) -> String {
    format!(
        "{}\n{}",
        file_state(t, "etc/ufw/before.rules"),
        super::fix::ruleset(t)
    )
}

/// ufw: the accept written into ufw's before.rules, then `ufw reload`.
#[test]
fn crash_ufw() {
    harness(&Kind {
        name: "ufw",
        inject: |t| {
            super::fix::ufw_fault(t);
            Runner::Ufw
        },
        state: ufw_state,
        steps: TWO_CHANGES_AND_A_FILE,
        target: GUEST_IP,
    });
}

/// firewalld's runtime ruleset and its permanent default zone (the `.xml` firewalld writes;
/// not the `.old` copy it keeps of the one before).
fn firewalld_state(t: &Topology) -> String {
    let out = t.exec(&t.guest, &["nft", "list", "ruleset"]);
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        file_state(t, "etc/firewalld/zones/public.xml")
    )
}

/// firewalld: runtime and permanent rich rules for IPv4 and IPv6 (four commands).
#[test]
fn crash_firewalld() {
    harness(&Kind {
        name: "firewalld",
        inject: |t| {
            let fw = super::fix::Firewalld::start(t);
            for args in [
                &[
                    "firewall-cmd",
                    "--permanent",
                    "--add-icmp-block=echo-request",
                ][..],
                &["firewall-cmd", "--add-icmp-block=echo-request"],
            ] {
                fw.must(t, args);
            }
            Runner::Firewalld(fw)
        },
        state: firewalld_state,
        steps: &[
            "journaled",
            "armed",
            "change-1",
            "change-2",
            "change-3",
            "change-4",
            "verified",
            "saved",
        ],
        target: GUEST_IP,
    });
}

/// The case's journals (`state/fixes`) on a tmpfs of its own (1 MiB), so a test can fill it
/// under a running fix; unmounted when dropped.
struct StateMount(std::path::PathBuf);

impl StateMount {
    fn new(t: &Topology) -> StateMount {
        let dir = t.dir.path().join("state/fixes");
        std::fs::create_dir_all(&dir).unwrap();
        must(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=1m,mode=0700",
            "ecs-diag-state",
            dir.to_str().unwrap(),
        ]);
        StateMount(dir)
    }
}

impl Drop for StateMount {
    fn drop(&mut self) {
        let _ = run(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

/// `ecs-diag fix ARGS` stopped at `step` (`ECS_DIAG_FIX_PAUSE_AT`); `meanwhile` changes the
/// world under it (given its pid), then it continues to the end.
fn fix_paused(t: &Topology, args: &[&str], step: &str, meanwhile: impl FnOnce(&str)) -> Output {
    use std::process::{Command, Stdio};
    let config = t.fix_config();
    let child = Command::new("ip")
        .args(["netns", "exec", &t.guest, "env"])
        .arg(format!("ECS_DIAG_FIX_PAUSE_AT={step}"))
        .args([agent_bin(), "fix", "--config", &config])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // ip netns exec and env exec the next: the child's pid is the fix's.
    let pid = child.id().to_string();
    let started = std::time::Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, r)| &r[..1]);
        if state == Some("T") {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the fix never reached {step}: {stat}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    meanwhile(&pid);
    must(&["kill", "-CONT", &pid]);
    child.wait_with_output().unwrap()
}

const ROUTE_FIX: &[&str] = &[
    "--client",
    CLIENT,
    "--apply",
    "--yes",
    "--json",
    "--revert-after",
    "120",
];

/// The disk fills while the fix runs (here: between its verification and its final record):
/// the room the journal set aside at the start takes the final record, so the outcome is
/// recorded and true.
#[test]
fn a_disk_that_fills_during_the_fix_still_takes_its_record() {
    let t = Topology::new();
    route_fault(&t);
    let state = StateMount::new(&t);
    let filler = state.0.join("filler");
    let out = fix_paused(&t, ROUTE_FIX, "verified", |_| {
        // dd stops at ENOSPC: the file system is full.
        let _ = run(&[
            "dd",
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=4k",
        ]);
        let df = must(&["df", "--output=avail", state.0.to_str().unwrap()]);
        assert_eq!(df.lines().last().map(str::trim), Some("0"), "full: {df}");
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let applied: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(applied["state"], "awaiting_confirmation", "{applied:#}");
    let id = applied["id"].as_str().unwrap().to_string();
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(state.0.join(format!("{id}/record.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["state"], "awaiting_confirmation",
        "the record says so"
    );
    assert!(t.ping(GUEST_IP), "the fix works");
    std::fs::remove_file(&filler).unwrap();
    let confirmed = fix(&t, &["--confirm", &id], None);
    assert_eq!(
        confirmed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&confirmed.stderr)
    );
    assert_eq!(settled(&t).0, "applied");
}

/// The fix's journal directory turns read-only (as ext4 does on an I/O error; here a
/// read-only bind mount over it) before the final record: the fix rolls itself back and says
/// the record could not be written; nothing is left changed, the reverter and the next run
/// find nothing left to undo (no "revert failed" from undoing twice), the record then says
/// rolled back, and `--confirm` refuses rather than claim a fix that is not there stays.
#[test]
fn a_final_record_that_cannot_be_written_rolls_the_fix_back() {
    let t = Topology::new();
    route_fault(&t);
    let old = routes(&t);
    let fixes = t.dir.path().join("state/fixes");
    let out = fix_paused(&t, ROUTE_FIX, "verified", |pid| {
        let dir = std::fs::read_dir(&fixes)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_dir())
            .unwrap();
        let d = dir.to_str().unwrap();
        // In the fix's own mount namespace (ip netns exec made it), which its reverter
        // shares; later runs start from the case's and see the directory writable again.
        must(&[
            "nsenter", "-t", pid, "-m", "mount", "--bind", "-o", "ro", d, d,
        ]);
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the fix cannot be recorded, so it was rolled back")
            && stderr.contains("the journal still says applying"),
        "{stderr}"
    );
    assert_eq!(routes(&t), old, "entirely old");
    assert!(!t.ping(GUEST_IP), "the fault is back");
    // The reverter finds its fix rolled back already, and cannot record that either.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(routes(&t), old);
    let (state_name, entry) = settled(&t);
    assert_eq!(state_name, "rolled_back", "{entry:#}");
    let id = entry["id"].as_str().unwrap().to_string();
    let confirm = fix(&t, &["--confirm", &id], None);
    let said = String::from_utf8_lossy(&confirm.stderr);
    assert_eq!(confirm.status.code(), Some(64), "{said}");
    assert!(said.contains("does not await confirmation"), "{said}");
    assert_eq!(routes(&t), old);
}
