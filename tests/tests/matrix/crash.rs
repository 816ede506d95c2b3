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

/// The case's config with the fix backups in its own state directory.
fn config(t: &Topology) -> String {
    let base = std::fs::read_to_string(t.dir.path().join("config.toml")).unwrap();
    let state = t.dir.path().join("state");
    let text = base.replace(
        "[paths]\n",
        &format!("[paths]\nstate = \"{}\"\n", state.display()),
    );
    let path = t.dir.path().join("fix.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn fix(t: &Topology, args: &[&str], crash_at: Option<&str>) -> Output {
    let config = config(t);
    let mut argv = vec!["env"];
    let var;
    if let Some(step) = crash_at {
        var = format!("ECS_DIAG_FIX_CRASH_AT={step}");
        argv.push(&var);
    }
    argv.extend([agent_bin(), "fix", "--config", &config]);
    argv.extend_from_slice(args);
    t.exec(&t.guest, &argv)
}

fn history(t: &Topology) -> Vec<Value> {
    let out = fix(t, &["--history", "--json"], None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "history is not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v.as_array().unwrap().clone()
}

/// The last fix's state once nothing is pending (the reverter or this history's recovery
/// has acted on a killed run).
fn settled(t: &Topology) -> (String, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let h = history(t);
        let last = h.last().cloned().unwrap_or(Value::Null);
        let state = last["state"].as_str().unwrap_or("none").to_string();
        if state != "applying" || std::time::Instant::now() > deadline {
            return (state, last);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
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
    inject: fn(&Topology),
    /// Everything the fix may touch, as text (files with their mode).
    state: fn(&Topology) -> String,
    steps: &'static [&'static str],
}

const NOPING: &str = "etc/sysctl.d/90-noping.conf";

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
    let path = t.dir.path().join(NOPING);
    let mode = std::fs::metadata(&path)
        .map(|m| format!("{:o}", m.permissions().mode() & 0o7777))
        .ok();
    format!(
        "now={} file={:?} mode={mode:?}",
        String::from_utf8_lossy(&o.stdout).trim(),
        std::fs::read_to_string(&path).ok()
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
        (kind.inject)(&t);
        assert!(
            !t.ping(GUEST_IP),
            "{}: ground truth: the fault holds",
            kind.name
        );
        let old = (kind.state)(&t);
        let out = fix(
            &t,
            &[
                "--client",
                CLIENT,
                "--apply",
                "--yes",
                "--json",
                "--revert-after",
                "120",
            ],
            Some(step),
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
        let (state, entry) = settled(&t);
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
            assert!(t.ping(GUEST_IP), "{} at {step}: the fix works", kind.name);
            let id = entry["id"].as_str().unwrap().to_string();
            let undo = fix(&t, &["--undo", &id], None);
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
                !t.ping(GUEST_IP),
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
        inject: sysctl_fault,
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
    });
}

#[test]
fn crash_route() {
    harness(&Kind {
        name: "route",
        inject: route_fault,
        state: routes,
        steps: &["journaled", "armed", "change-1", "verified", "saved"],
    });
}

#[test]
fn crash_link_and_route() {
    harness(&Kind {
        name: "link + route (multi)",
        inject: link_fault,
        state: routes,
        steps: &[
            "journaled",
            "armed",
            "change-1",
            "change-2",
            "verified",
            "saved",
        ],
    });
}

#[test]
fn crash_iptables() {
    harness(&Kind {
        name: "iptables",
        inject: iptables_fault,
        state: iptables_state,
        steps: &["journaled", "armed", "change-1", "verified", "saved"],
    });
}

#[test]
fn crash_nft() {
    harness(&Kind {
        name: "nft",
        inject: nft_fault,
        state: nft_state,
        steps: &["journaled", "armed", "change-1", "verified", "saved"],
    });
}
