//! `load.cpu` and `load.memory` against real load: a busy loop pinned to one CPU, a process
//! holding 256 MiB (each killed when its test ends, even on failure) while `check` samples;
//! each check names the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Kills the busy loop when dropped.
struct BusyLoop(Child);

impl Drop for BusyLoop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn a_saturated_cpu_makes_load_cpu_warn_and_names_it() {
    let cpu = cpus() - 1;
    // The affinity is set in the child before it execs the shell, so the child killed on drop
    // is the loop itself (`timeout`/`taskset` leave their command running when they are
    // killed); PDEATHSIG ends it with this test's thread even if the test process is killed.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "while :; do :; done"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: sched_setaffinity and prctl are async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let busy = BusyLoop(cmd.spawn().expect("sh"));
    let pid = busy.0.id();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[metadata]\nmode = \"never\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-diag"))
        .args(["check", "--json", "--window", "2", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "load.cpu")
        .unwrap()
        .clone();
    println!("{f:#}");
    assert_eq!(f["status"], "warn", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("cpu{cpu} ")), "{summary}");
    let per_cpu = f["evidence"]["per_cpu"].as_array().unwrap();
    let busy = per_cpu
        .iter()
        .find(|c| c["cpu"] == cpu)
        .map(|c| c["busy_pct"].as_f64().unwrap())
        .unwrap();
    assert!(busy >= 95.0, "cpu{cpu} busy {busy}%");
    // The loop is named, first, with its share of one CPU over the window.
    let top = &f["evidence"]["top_cpu"][0];
    assert_eq!(top["pid"], pid, "{f:#}");
    assert_eq!(top["command"], "sh", "{f:#}");
    assert!(top["cpu_pct"].as_f64().unwrap() >= 90.0, "{f:#}");
    assert!(
        summary.contains(&format!("top by CPU over the window: sh (pid {pid})")),
        "{summary}"
    );
}

fn check(config_text: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-diag"))
        .args(["check", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["checks"].as_array().unwrap().clone()
}

#[test]
fn load_memory_names_the_process_holding_the_memory() {
    // 256 MiB of a string perl keeps until it is killed (perl-base is essential on Debian).
    let mut cmd = Command::new("perl");
    cmd.args([
        "-e",
        "my $x = 'a' x (256 * 1024 * 1024); $| = 1; print qq(ready\n); sleep 600",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut holder = BusyLoop(cmd.spawn().expect("perl"));
    let pid = holder.0.id();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.0.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready, "ready\n");
    // Memory pressure is not faked: the test asserts the attribution an operator reads (the
    // evidence's top list), which is there whatever the status.
    let checks = check("[metadata]\nmode = \"never\"\n");
    let f = checks.iter().find(|c| c["id"] == "load.memory").unwrap();
    println!("{f:#}");
    let top = f["evidence"]["top_rss"].as_array().unwrap();
    let mine = top
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("perl (pid {pid}) not in {top:#?}"));
    assert_eq!(mine["command"], "perl");
    let rss = mine["rss_mib"].as_f64().unwrap();
    // Perl builds the string in a copy: at least the 256 MiB, and what the kernel says in
    // VmRSS (read independently here) within a MiB.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let vm_rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss >= 256.0, "rss {rss} MiB");
    assert!(
        (rss - vm_rss_kib / 1024.0).abs() < 1.0,
        "rss {rss} MiB, VmRSS {vm_rss_kib} KiB"
    );
}
