//! The `ecs-diag` binary as users and scripts run it: exit codes, JSON contract, clear errors
//! for bad input, replay of a saved snapshot, degraded sources, no root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ecs-diag");
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/echo-ignored.snapshot.json"
);

fn ecs_diag(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_config(dir: &Path, text: &str) -> String {
    let p = dir.join("config.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A config that never probes metadata and reads no host configuration files.
fn isolated(dir: &Path, extra: &str) -> String {
    write_config(
        dir,
        &format!(
            "[metadata]\nmode = \"never\"\n[paths]\netc = \"{0}/etc\"\nsys = \"{0}/sys\"\n{extra}",
            dir.display()
        ),
    )
}

fn statuses(report: &Value) -> std::collections::BTreeMap<String, String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn replays_a_saved_snapshot_with_the_contract_json() {
    let out = ecs_diag(&["check", "--json", "--from", FIXTURE]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failing check exits 2; {}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["version"], 1);
    assert!(report["generated_at"].as_str().unwrap().contains('T'));
    assert!(report["duration_ms"].as_f64().is_some());
    let s = statuses(&report);
    assert_eq!(s.len(), ecs_diag::checks::catalogue().count());
    assert_eq!(s["sysctl.icmp_echo"], "fail");
    assert_eq!(
        s["addr.primary"], "skipped",
        "no metadata: comparisons are skipped"
    );
    let echo = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "sysctl.icmp_echo")
        .unwrap();
    assert_eq!(echo["evidence"]["now"], "1");
    assert_eq!(
        echo["remedy"][0],
        "sysctl -w net.ipv4.icmp_echo_ignore_all=0"
    );
}

#[test]
fn table_has_no_colour_when_not_a_terminal() {
    let out = ecs_diag(&["check", "--from", FIXTURE]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("STATUS"));
    assert!(text.contains("→ sysctl -w net.ipv4.icmp_echo_ignore_all=0"));
    assert!(!text.contains('\x1b'));
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    // `script` (util-linux) runs the command on a pseudo-terminal.
    let on_tty = |no_color: bool| {
        let mut c = Command::new("script");
        c.args([
            "-qec",
            &format!("{BIN} check --from {FIXTURE}"),
            "/dev/null",
        ]);
        c.env_remove("NO_COLOR").env("COLUMNS", "100");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let o = c
            .output()
            .expect("script (util-linux) is needed for this test");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let painted = on_tty(false);
    assert!(painted.contains("\x1b[1;31mfail"), "{painted}");
    assert!(!on_tty(true).contains('\x1b'));
}

#[test]
fn table_wraps_to_columns_and_stays_whole_when_piped() {
    let whole = String::from_utf8(ecs_diag(&["check", "--from", FIXTURE]).stdout).unwrap();
    assert!(whole.lines().any(|l| l.chars().count() > 100), "{whole}");
    let o = Command::new(BIN)
        .args(["check", "--from", FIXTURE])
        .env("COLUMNS", "72")
        .output()
        .unwrap();
    let wrapped = String::from_utf8(o.stdout).unwrap();
    for line in wrapped.lines() {
        // Only a single word longer than the column may exceed it.
        assert!(
            line.chars().count() <= 72 || !line.trim().contains(' '),
            "{line:?}"
        );
    }
    let words = |t: &str| t.split_whitespace().filter(|w| !w.ends_with("ms")).count();
    assert!(words(&wrapped) > 50 && words(&wrapped) == words(&whole));
}

#[test]
fn nagios_and_prometheus_formats() {
    let o = ecs_diag(&["check", "--from", FIXTURE, "--format", "nagios"]);
    // The fixture's echo is ignored: CRITICAL, and the plugin state is the exit code.
    assert_eq!(o.status.code(), Some(2));
    let line = String::from_utf8(o.stdout).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with("ECS-DIAG CRITICAL - sysctl.icmp_echo: "),
        "{line}"
    );
    let (_, perf) = line.split_once(" | ").unwrap();
    assert!(
        perf.starts_with("fail=") && perf.contains(" duration="),
        "{perf}"
    );

    let o = ecs_diag(&["check", "--from", FIXTURE, "--format", "prometheus"]);
    assert_eq!(o.status.code(), Some(2));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("ecs_diag_check_status{check=\"sysctl.icmp_echo\",status=\"fail\"} 1"),
        "{text}"
    );
    // The cause, as a label a fleet can alert and group on (promtool checks it below).
    assert!(
        text.contains(
            "ecs_diag_check_cause{check=\"sysctl.icmp_echo\",cause=\"echo_ignored_now\"} 1"
        ),
        "{text}"
    );
    assert!(!text.contains("# EOF"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is needed");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // --json is --format json; both at once is a usage error.
    let a = ecs_diag(&["check", "--from", FIXTURE, "--json"]);
    let b = ecs_diag(&["check", "--from", FIXTURE, "--format", "json"]);
    let strip = |o: &Output| {
        let mut v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["generated_at"] = Value::Null;
        v["duration_ms"] = Value::Null;
        v
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(strip(&a)["stale"], false, "stale is always present");
    let o = ecs_diag(&["check", "--from", FIXTURE, "--json", "--format", "table"]);
    assert_eq!(o.status.code(), Some(64));
}

#[test]
fn client_must_match_the_snapshot() {
    let out = ecs_diag(&["check", "--from", FIXTURE, "--client", "192.0.2.99"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("198.18.0.2"), "{}", stderr(&out));
}

#[test]
fn bad_config_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[metadata]\nmode = \"sometimes\"\n");
    let out = ecs_diag(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(78));
    let e = stderr(&out);
    assert!(
        e.contains(&cfg) && e.contains("sometimes") && e.contains("always"),
        "{e}"
    );

    let cfg = write_config(dir.path(), "[metadata]\ntimeout_ms = 0\n");
    let e = stderr(&ecs_diag(&["check", "--config", &cfg]));
    assert!(e.contains("metadata.timeout_ms"), "{e}");

    let out = ecs_diag(&["check", "--config", "/nonexistent/ecs-diag.toml"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("/nonexistent/ecs-diag.toml"));

    // Out of range: the key, the value and the range, for check and serve alike.
    let cfg = write_config(dir.path(), "[thresholds]\ncpu_busy_pct = 150\n");
    for cmd in ["check", "serve"] {
        let out = ecs_diag(&[cmd, "--config", &cfg]);
        assert_eq!(out.status.code(), Some(78), "{cmd}");
        let e = stderr(&out);
        assert!(
            e.contains("thresholds.cpu_busy_pct = 150") && e.contains("between 0 and 100"),
            "{cmd}: {e}"
        );
    }
}

#[test]
fn unreadable_or_garbage_snapshot_is_a_clear_error() {
    let out = ecs_diag(&["check", "--from", "/nonexistent/s.json"]);
    assert_eq!(out.status.code(), Some(66));
    assert!(stderr(&out).contains("/nonexistent/s.json"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    std::fs::write(&p, "{\"not\": \"a snapshot\"").unwrap();
    let out = ecs_diag(&["check", "--from", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66));
    assert!(
        stderr(&out).contains("is not an ecs-diag snapshot"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_64() {
    assert_eq!(ecs_diag(&["check", "--bogus"]).status.code(), Some(64));
    assert_eq!(
        ecs_diag(&["check", "--client", "not-an-ip"]).status.code(),
        Some(64)
    );
    assert_eq!(ecs_diag(&["--help"]).status.code(), Some(0));
}

#[test]
fn snapshot_round_trips_through_check_from() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = isolated(dir.path(), "");
    let snap = ecs_diag(&["snapshot", "--config", &cfg]);
    assert!(snap.status.success(), "{}", stderr(&snap));
    let p = dir.path().join("snap.json");
    std::fs::write(&p, &snap.stdout).unwrap();
    let out = ecs_diag(&["check", "--json", "--from", p.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = statuses(&report);
    assert_eq!(s.len(), ecs_diag::checks::catalogue().count());
    // Metadata was not probed: its comparisons say so instead of guessing.
    assert_eq!(s["link.secondary"], "skipped");
    assert_eq!(s["addr.secondary"], "skipped");
    let snap: Value = serde_json::from_slice(&snap.stdout).unwrap();
    assert!(snap["metadata"]["not_probed"]["reason"]
        .as_str()
        .unwrap()
        .contains("never"));
}

#[test]
fn unreadable_proc_makes_the_affected_checks_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = isolated(dir.path(), "proc = \"/nonexistent-proc\"\n");
    let out = ecs_diag(&["check", "--json", "--config", &cfg]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let find = |id: &str| checks.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(find("icmp.live")["status"], "unknown");
    assert!(find("icmp.live")["summary"]
        .as_str()
        .unwrap()
        .contains("/nonexistent-proc/net/snmp"));
    assert_eq!(find("sysctl.icmp_echo")["status"], "unknown");
    assert!(find("sysctl.icmp_echo")["summary"]
        .as_str()
        .unwrap()
        .contains("/nonexistent-proc/sys"));
    // Netlink-based checks still judge.
    assert_ne!(find("link.primary")["status"], "unknown");
}

#[test]
fn metadata_service_that_is_down_turns_comparisons_unknown() {
    let dir = tempfile::tempdir().unwrap();
    // A closed loopback port: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = write_config(
        dir.path(),
        &format!("[metadata]\nmode = \"always\"\nurl = \"http://127.0.0.1:{port}\"\ntimeout_ms = 300\n[paths]\netc = \"{0}/etc\"\nsys = \"{0}/sys\"\n", dir.path().display()),
    );
    let out = ecs_diag(&["snapshot", "--config", &cfg]);
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = snap["metadata"]["failed"]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    let p = dir.path().join("snap.json");
    std::fs::write(&p, &out.stdout).unwrap();
    let report: Value = serde_json::from_slice(
        &ecs_diag(&["check", "--json", "--from", p.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let s = statuses(&report);
    assert_eq!(s["link.secondary"], "unknown");
    assert_eq!(s["addr.secondary"], "unknown");
}

/// An isolated config that user nobody can read (as `isolated` with no extra text).
fn isolated_for_nobody(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let cfg = isolated(dir, "");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    cfg
}

#[test]
fn runs_without_root() {
    // As nobody: netlink and /proc still work; nothing panics; a report comes out.
    let dir = tempfile::tempdir().unwrap();
    let cfg = isolated_for_nobody(dir.path());
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "check",
            "--json",
            "--config",
            &cfg,
        ])
        .output();
    let Ok(out) = out else {
        panic!("setpriv (util-linux) is needed for this test");
    };
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report as nobody ({e}): {}", stderr(&out)));
    assert_eq!(
        statuses(&report).len(),
        ecs_diag::checks::catalogue().count()
    );
    // No tool's raw stderr: every summary is one line.
    for c in report["checks"].as_array().unwrap() {
        assert!(!c["summary"].as_str().unwrap().contains('\n'), "{c:#}");
    }
    if ecs_diag::sources::tools::resolve("iptables-nft-save").is_none() {
        return;
    }
    // The table ends with one line per source that needs privileges, saying which.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["check", "--config", &cfg])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let (_, note) = table
        .split_once("Not readable without privileges")
        .unwrap_or_else(|| panic!("no privileges note:\n{table}"));
    let firewall: Vec<&str> = note
        .lines()
        .filter(|l| l.trim_start().starts_with("firewall: "))
        .collect();
    assert_eq!(firewall.len(), 1, "{note}");
    assert!(
        firewall[0].contains("iptables-nft-save")
            && firewall[0].contains("CAP_NET_ADMIN")
            && firewall[0].ends_with("— run as root"),
        "{note}"
    );
    assert!(
        !table.contains("you must be root"),
        "raw tool stderr:\n{table}"
    );
    assert!(!table.contains("\nnetlink:"), "raw tool stderr:\n{table}");
    assert!(
        table.contains("cannot read the ruleset without privileges"),
        "{table}"
    );
}

#[test]
fn watch_rejects_bad_arguments_and_config_before_touching_anything() {
    let o = ecs_diag(&["watch", "--seconds", "0"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    let o = ecs_diag(&["watch", "--client", "not-an-ip"]);
    assert_eq!(o.status.code(), Some(64));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[thresholds]\ncpu_busy_pct = \"high\"\n");
    let o = ecs_diag(&["watch", "--config", &config]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("cpu_busy_pct"), "{}", stderr(&o));
}

#[test]
fn watch_without_pings_says_nothing_arrived() {
    // Nothing pings from 192.0.2.77: the verdict is "not arriving" (exit 1).
    // --no-trace: tests never change the root namespace's firewall (the trace table is proven
    // inside the fault matrix's namespaces).
    let dir = tempfile::tempdir().unwrap();
    let config = isolated(dir.path(), "");
    // In a new, empty network namespace (unshare -n): no other host can ping it meanwhile.
    let o = Command::new("unshare")
        .args(["-n", BIN])
        .args([
            "watch",
            "--json",
            "--no-trace",
            "--seconds",
            "1",
            "--client",
            "192.0.2.77",
            "--config",
            &config,
        ])
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|l| l["version"] == 1), "{lines:#?}");
    assert_eq!(lines[0]["type"], "start");
    assert_eq!(lines[0]["client"], "192.0.2.77");
    assert_eq!(lines[1]["type"], "tick");
    let v = lines.last().unwrap().clone();
    assert_eq!(v["type"], "verdict");
    assert_eq!(v["verdict"], "not_arriving", "{v:#}");
    // The path suggestion names the client: this instance's own trace towards it.
    assert!(
        v["steps"]
            .to_string()
            .contains("ecs-diag trace --client 192.0.2.77"),
        "{v:#}"
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["evidence"]["requests_on_wire"], 0);
    let tables = Command::new("nft").args(["list", "tables"]).output();
    if let Ok(t) = tables {
        assert!(!String::from_utf8_lossy(&t.stdout).contains("ecs_diag_watch"));
    }
}

#[test]
fn watch_reads_at_a_glance() {
    // As a table, in an empty network namespace: the header names what is watched, each
    // second's totals add up, and the verdict is told as soon as it is known (3 s of nothing).
    let dir = tempfile::tempdir().unwrap();
    let config = isolated(dir.path(), "");
    let o = Command::new("unshare")
        .args(["-n", BIN])
        .args([
            "watch",
            "--no-trace",
            "--seconds",
            "3",
            "--client",
            "192.0.2.77",
        ])
        .args(["--config", &config])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ecs-diag watch: ")
            && lines[0].contains("echo requests from 192.0.2.77"),
        "{text}"
    );
    let ticks: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("requests seen"))
        .collect();
    assert_eq!(ticks.len(), 3, "{text}");
    assert_eq!(
        ticks[2].trim(),
        "3 s  requests seen 0 = answered 0 + dropped by rules 0 + unanswered 0"
    );
    let so_far = text
        .find("→ so far: no echo request arrives")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        so_far < text.find("verdict: NOT ARRIVING").unwrap(),
        "{text}"
    );
    // Nothing about load or disks: only the echo path's checks.
    assert!(!text.contains("load."), "{text}");
}

#[test]
fn watch_without_privileges_says_what_it_could_not_see() {
    let dir = tempfile::tempdir().unwrap();
    let config = isolated(dir.path(), "");
    // Root without capabilities (an unprivileged uid could not reach a clone under /root).
    // In a new network namespace (unshare -n): no other host can ping it meanwhile.
    let o = Command::new("unshare")
        .args([
            "-n",
            "setpriv",
            "--bounding-set=-all",
            "--inh-caps=-all",
            BIN,
        ])
        .args(["watch", "--json", "--seconds", "1", "--config", &config])
        .output()
        .unwrap();
    let v: Value = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no verdict line: {}", stderr(&o)));
    let unavailable = v["unavailable"].to_string();
    assert!(unavailable.contains("packet capture"), "{unavailable}");
    assert!(unavailable.contains("CAP_NET_RAW"), "{unavailable}");
    assert!(
        v["summary"].as_str().unwrap().contains("run as root"),
        "{v:#}"
    );
}

/// A binary found on a fleet names the source it came from.
#[test]
fn version_names_the_git_revision() {
    let out = ecs_diag(&["--version"]);
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let rev = String::from_utf8_lossy(&git.stdout).trim().to_string();
    assert!(
        git.status.success() && rev.len() == 12,
        "this test runs in a git checkout"
    );
    assert_eq!(
        version.trim(),
        format!("ecs-diag {} (git {rev})", env!("CARGO_PKG_VERSION"))
    );
}

/// `check --from` judges a replayed snapshot by the thresholds of the `--config` given, not by
/// whatever config the snapshot was taken with.
#[test]
fn check_from_judges_by_the_given_config() {
    let dir = tempfile::tempdir().unwrap();
    let plain = isolated(dir.path(), "");
    let snap = ecs_diag(&["snapshot", "--config", &plain]);
    assert!(snap.status.success(), "{}", stderr(&snap));
    let path = dir.path().join("s.json");
    std::fs::write(&path, &snap.stdout).unwrap();
    let path = path.to_str().unwrap();
    let judge = |config: &str| {
        let out = ecs_diag(&["check", "--json", "--from", path, "--config", config]);
        statuses(&serde_json::from_slice(&out.stdout).unwrap())["load.memory"].clone()
    };
    let strict_dir = tempfile::tempdir().unwrap();
    // Available memory is always below 100% of the total: a fail by these thresholds.
    let strict = isolated(
        strict_dir.path(),
        "[thresholds]\nmemory_available_pct = 100\nmemory_available_fail_pct = 100\n",
    );
    assert_eq!(judge(&strict), "fail");
    let lax_dir = tempfile::tempdir().unwrap();
    let lax = isolated(
        lax_dir.path(),
        "[thresholds]\nmemory_available_pct = 0\nmemory_available_fail_pct = 0\nswap_pages_per_s = 1e12\noom_kills = 1000000000\n",
    );
    assert_eq!(judge(&lax), "ok");
}

#[test]
fn check_from_names_a_report_and_refuses_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let report = ecs_diag(&["check", "--json", "--from", FIXTURE]);
    let path = dir.path().join("report.json");
    std::fs::write(&path, &report.stdout).unwrap();
    let out = ecs_diag(&["check", "--from", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66));
    assert!(
        stderr(&out).contains("is a report, not a snapshot")
            && stderr(&out).contains("ecs-diag snapshot"),
        "{}",
        stderr(&out)
    );
    let out = ecs_diag(&["check", "--from", FIXTURE, "--window", "2"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("--window"), "{}", stderr(&out));
}

/// `checks` and `explain` print the registry: every id, and one check's evidence and causes.
#[test]
fn checks_and_explain_print_the_registry() {
    let out = ecs_diag(&["checks", "--json"]);
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let registered: Vec<&str> = ecs_diag::checks::catalogue().map(|c| c.id).collect();
    assert_eq!(ids, registered);
    let table = String::from_utf8(ecs_diag(&["checks"]).stdout).unwrap();
    assert_eq!(table.lines().count(), registered.len());
    assert!(table.contains("sysctl.icmp_echo"));
    let out = ecs_diag(&["explain", "sysctl.icmp_echo"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Evidence:") && text.contains("icmp_echo_ignore_all=0"),
        "{text}"
    );
    let out = ecs_diag(&["explain", "route.default", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "route.default");
    assert!(!v["causes"].as_array().unwrap().is_empty());
    let out = ecs_diag(&["explain", "route"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("route.default"), "{}", stderr(&out));
}

/// Each command's `--help` says what it does, its files, exit status and examples, and equals
/// its snapshot in tests/fixtures/help (`UPDATE_SNAPSHOTS=1` rewrites them after a deliberate
/// change).
#[test]
fn help_texts_teach_and_match_their_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/help");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let registered: Vec<String> = ecs_diag::cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    assert_eq!(
        registered,
        ["check", "serve", "watch", "trace", "fix", "snapshot", "checks", "explain"]
    );
    for cmd in &registered {
        assert!(ecs_diag::manual::of(cmd).is_some(), "{cmd} has no manual");
        let out = ecs_diag(&[cmd, "--help"]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for part in ["Exit status:", "Examples:", "See also:"] {
            assert!(text.contains(part), "{cmd} --help lacks {part}\n{text}");
        }
        let path = dir.join(format!("{cmd}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
        assert!(want == text, "{cmd} --help differs from {}", path.display());
    }
    // The daemon's help names its defaults and signals; watch's its privileges.
    let serve = String::from_utf8(ecs_diag(&["serve", "--help"]).stdout).unwrap();
    assert!(
        serve.contains("127.0.0.1:9717") && serve.contains("SIGHUP") && serve.contains("/healthz")
    );
    let watch = String::from_utf8(ecs_diag(&["watch", "--help"]).stdout).unwrap();
    assert!(watch.contains("CAP_NET_RAW") && watch.contains("CAP_NET_ADMIN"));
}

/// The unit's hand-over outside systemd: one line saying what it is for, exit 71, nothing
/// opened or sent.
#[test]
fn hand_over_outside_the_unit_says_what_it_is_for() {
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-diag"))
        .arg("hand-over")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(71));
    let err = stderr(&out);
    assert!(
        err.contains("NOTIFY_SOCKET is not set")
            && err.contains("ExecStartPre")
            && err.lines().count() == 1,
        "{err}"
    );
    // Hidden from the help: operators never run it.
    let help = String::from_utf8_lossy(&ecs_diag(&["--help"]).stdout).to_string();
    assert!(!help.contains("hand-over"), "{help}");
}

/// `trace` as nobody (no CAP_NET_RAW): a clear message and exit 77, no probe sent, no panic.
#[test]
fn trace_without_raw_sockets_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = isolated_for_nobody(dir.path());
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args([
            "trace",
            "--client",
            "127.0.0.1",
            "--count",
            "1",
            "--config",
            &cfg,
        ])
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("it needs CAP_NET_RAW (run it as root)"),
        "{}",
        stderr(&out)
    );
    // IPv6 clients are refused up front, naming what does it instead.
    let out = ecs_diag(&["trace", "--client", "2001:db8::1", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("mtr -6"), "{}", stderr(&out));
}
