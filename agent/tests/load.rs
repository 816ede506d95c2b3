//! `load.cpu` against a real CPU load: a busy loop pinned to one CPU (killed when the test
//! ends, even on failure) while `check --window 2` samples.

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
    let _busy = BusyLoop(cmd.spawn().expect("sh"));
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
}
