//! `load.cpu`, `load.memory`, `load.io`, `load.dstate`: is the instance too starved to answer
//! — CPUs saturated or stolen by the hypervisor, memory exhausted or swapping, tasks stalled on
//! I/O, processes stuck in D state? With an earlier sample (`check --window`, the previous
//! refresh) they judge the rates between the two; with one sample, the kernel's own averages
//! (load average, PSI avg10) and counters since boot. Thresholds come from the config.

use serde_json::{json, Value};

use crate::checks::from_reasons;
use crate::checks::{Cause, Check, Criteria};
use crate::report::Finding;
use crate::snapshot::{CpuTimes, PressureLine, Snapshot, TaskUsage};

pub const CPU: &str = "load.cpu";
pub const MEMORY: &str = "load.memory";
pub const IO: &str = "load.io";
pub const DSTATE: &str = "load.dstate";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: CPU,
        decides: "the CPUs are not saturated, waiting on I/O or stolen by the hypervisor, and tasks do not queue for a CPU",
        evidence: &["/proc/stat CPU times (over the window, else the load average)", "/proc/pressure/cpu (some avg10)", "/proc/PID/stat CPU time over the window (the top processes, named when it is not ok)", "thresholds cpu_*_pct, load_per_cpu and pressure_some_pct"],
        causes: &[
            Cause { id: "cpu_saturated", cause: "all CPUs busy, or one CPU saturated (softirq work waits)", remedy: "find the busy processes (top); a larger instance type" },
            Cause { id: "cpu_steal", cause: "CPU steal: the hypervisor runs something else", remedy: "burstable instance out of CPU credits, or an oversubscribed host: change the instance type" },
        ],
        judge: |s, c| cpu(s, c.criteria),
    },
    Check {
        id: MEMORY,
        decides: "memory is not exhausted: MemAvailable above its thresholds, no heavy swapping, no OOM kills",
        evidence: &["/proc/meminfo, /proc/vmstat (swap pages, oom_kill)", "/proc/PID/stat RSS and /proc/PID/status VmSwap (the top processes, named when it is not ok)", "thresholds memory_available_*, swap_pages_per_s, oom_kills"],
        causes: &[
            Cause { id: "memory_exhausted", cause: "little memory available, swapping or OOM kills", remedy: "find the processes using memory (ps aux --sort=-rss); add memory or stop them" },
        ],
        judge: |s, c| memory(s, c.criteria),
    },
    Check {
        id: IO,
        decides: "tasks are not stalled on I/O or memory: PSI some/full, disk busy time (CPU pressure is load.cpu's)",
        evidence: &["/proc/pressure/{memory,io}", "/proc/diskstats over the window"],
        causes: &[
            Cause { id: "io_stall", cause: "tasks stall on I/O, a disk is busy most of the window", remedy: "iostat -x 1; find the process (iotop); the disk's IOPS/throughput limit" },
        ],
        judge: |s, c| io(s, c.criteria),
    },
    Check {
        id: DSTATE,
        decides: "no processes stuck in uninterruptible sleep (D state) across the window",
        evidence: &["/proc/PID/stat and wchan of every process (the agent's own excluded)"],
        causes: &[
            Cause { id: "dstate_processes", cause: "processes stuck in D state (hung NFS, a failing disk)", remedy: "cat /proc/PID/stack; check the mounts and disks they wait on" },
        ],
        judge: |s, c| dstate(s, c.criteria),
    },
];

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// How many processes a top list names.
const TOP: usize = 5;

/// The processes that used the most CPU over the window, in % of one CPU (as `top` counts:
/// a process with busy threads on two CPUs is 200%): CPU ticks between the two samples of the
/// same process (same pid and start time); one that started within the window counts all its
/// ticks. Without an earlier per-process sample, why not.
fn top_cpu(s: &Snapshot) -> Result<Vec<Value>, &'static str> {
    let now = s
        .tasks
        .ok()
        .map_err(|_| "the process list could not be read")?;
    let earlier = s.earlier.as_ref().and_then(|e| e.tasks.as_ref());
    let (Some(earlier), Some(w)) = (earlier, window_s(s)) else {
        return Err("CPU use per process needs a window: run `ecs-diag check --window 5`");
    };
    if now.usage.is_empty() || earlier.usage.is_empty() || now.ticks_per_s == 0 {
        return Err("no per-process CPU times in the samples");
    }
    let mut used: Vec<(f64, &TaskUsage)> = now
        .usage
        .iter()
        .map(|u| {
            // Both lists are sorted by pid (the source sorts them).
            let before = earlier
                .usage
                .binary_search_by_key(&u.pid, |e| e.pid)
                .ok()
                .map(|i| &earlier.usage[i])
                .filter(|e| e.start_ticks == u.start_ticks);
            let ticks = u
                .cpu_ticks
                .saturating_sub(before.map_or(0, |e| e.cpu_ticks));
            (ticks as f64 * 100.0 / now.ticks_per_s as f64 / w, u)
        })
        .filter(|(pct, _)| *pct >= 0.1)
        .collect();
    used.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.pid.cmp(&b.1.pid)));
    Ok(used
        .into_iter()
        .take(TOP)
        .map(|(pct, u)| json!({"pid": u.pid, "command": u.command, "cpu_pct": round1(pct)}))
        .collect())
}

/// The processes holding the most resident memory, and (where any is swapped out) the most
/// swap; MiB rounded to one decimal.
fn top_memory(s: &Snapshot) -> Result<(Vec<Value>, Vec<Value>), &'static str> {
    let now = s
        .tasks
        .ok()
        .map_err(|_| "the process list could not be read")?;
    if now.usage.is_empty() {
        return Err("no per-process memory in the sample");
    }
    let mib = |kib: u64| round1(kib as f64 / 1024.0);
    let entry = |u: &TaskUsage| {
        json!({"pid": u.pid, "command": u.command, "rss_mib": mib(u.rss_kib),
               "swap_mib": u.swap_kib.map(mib)})
    };
    let mut by_rss: Vec<&TaskUsage> = now.usage.iter().filter(|u| u.rss_kib > 0).collect();
    by_rss.sort_by(|a, b| b.rss_kib.cmp(&a.rss_kib).then(a.pid.cmp(&b.pid)));
    let mut by_swap: Vec<&TaskUsage> = now
        .usage
        .iter()
        .filter(|u| u.swap_kib.is_some_and(|k| k > 0))
        .collect();
    by_swap.sort_by(|a, b| b.swap_kib.cmp(&a.swap_kib).then(a.pid.cmp(&b.pid)));
    Ok((
        by_rss.into_iter().take(TOP).map(entry).collect(),
        by_swap.into_iter().take(TOP).map(entry).collect(),
    ))
}

/// `command (pid N) value` for the first three of a top list, for a summary.
fn name_top(list: &[Value], key: &str, unit: &str) -> String {
    list.iter()
        .take(3)
        .map(|p| {
            format!(
                "{} (pid {}) {}{unit}",
                p["command"].as_str().unwrap_or("?"),
                p["pid"],
                p[key]
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The window in seconds between the earlier sample and this snapshot, if there is one.
fn window_s(s: &Snapshot) -> Option<f64> {
    s.earlier.as_ref().and_then(|e| e.seconds_to(s.at_ms))
}

fn shares(d: &CpuTimes) -> (f64, f64, f64) {
    let t = d.total();
    (pct(d.busy(), t), pct(d.iowait, t), pct(d.steal, t))
}

pub fn cpu(s: &Snapshot, c: &Criteria) -> Finding {
    let now = match s.cpu.ok() {
        Ok(c) => c,
        Err(e) => return Finding::unknown(CPU, format!("cannot read CPU times: {e}")),
    };
    let th = &c.thresholds;
    let cpus = now.per_cpu.len().max(1);
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut remedy =
        vec!["top -H -o %CPU (or pidstat -u 1 5): which processes use the CPU".to_string()];
    let earlier = s.earlier.as_ref().and_then(|e| e.cpu.as_ref());
    let window = earlier
        .and_then(|e| now.total.since(&e.total))
        .filter(|d| d.total() > 0);
    let evidence;
    // Steal over its threshold: the remedy names the host, not this instance's processes.
    let stolen;
    match (window, earlier) {
        (Some(d), Some(e)) => {
            let (busy, iowait, steal) = shares(&d);
            let mut per_cpu = Vec::new();
            let mut saturated = Vec::new();
            for (n, t) in &now.per_cpu {
                let Some(d) = e
                    .per_cpu
                    .iter()
                    .find(|(m, _)| m == n)
                    .and_then(|(_, b)| t.since(b))
                    .filter(|d| d.total() > 0)
                else {
                    // Came online (or its counters reset) within the window.
                    continue;
                };
                let b = pct(d.busy(), d.total());
                per_cpu.push(json!({"cpu": n, "busy_pct": round1(b)}));
                if b >= th.cpu_saturated_pct {
                    saturated.push(format!("cpu{n} {b:.0}%"));
                }
            }
            evidence = json!({
                "window_s": window_s(s), "busy_pct": round1(busy), "iowait_pct": round1(iowait),
                "steal_pct": round1(steal), "per_cpu": per_cpu, "loadavg": now.loadavg, "cpus": cpus,
            });
            stolen = steal >= th.cpu_steal_pct;
            if steal >= th.cpu_steal_fail_pct {
                fails.push(format!("the hypervisor took {steal:.0}% of this instance's CPU time (steal): the host is oversubscribed"));
            } else if steal >= th.cpu_steal_pct {
                warns.push(format!(
                    "{steal:.0}% of CPU time was stolen by the hypervisor"
                ));
            }
            if busy >= th.cpu_busy_pct {
                warns.push(format!("the CPUs were {busy:.0}% busy"));
            }
            if !saturated.is_empty() {
                warns.push(format!(
                    "saturated: {} (packets that CPU's softirq handles wait)",
                    saturated.join(", ")
                ));
            }
            if iowait >= th.cpu_iowait_pct {
                warns.push(format!("{iowait:.0}% of CPU time waited for I/O"));
            }
        }
        _ => {
            let (busy, iowait, steal) = shares(&now.total);
            let per_cpu_load = now.loadavg[0] / cpus as f64;
            evidence = json!({
                "since": "boot", "busy_pct": round1(busy), "iowait_pct": round1(iowait),
                "steal_pct": round1(steal), "loadavg": now.loadavg, "cpus": cpus,
            });
            stolen = steal >= th.cpu_steal_pct;
            if stolen {
                warns.push(format!(
                    "{steal:.0}% of CPU time since boot was stolen by the hypervisor"
                ));
            }
            if per_cpu_load >= th.load_per_cpu {
                warns.push(format!(
                    "the 1-minute load average {:.2} is {per_cpu_load:.1} per CPU ({cpus} CPUs)",
                    now.loadavg[0]
                ));
            }
        }
    }
    // CPU pressure (PSI cpu some, avg10): runnable tasks waited for a CPU. It is this check's,
    // not load.io's.
    let cpu_pressure = s
        .pressure
        .ok()
        .ok()
        .copied()
        .flatten()
        .and_then(|p| p.cpu_some);
    if let Some(l) = cpu_pressure.filter(|l| l.avg10 >= th.pressure_some_pct) {
        warns.push(format!(
            "cpu some: tasks waited for a CPU {:.0}% of the last 10 s (CPU pressure)",
            l.avg10
        ));
    }
    let mut evidence = evidence;
    evidence["cpu_pressure_avg10"] = json!(cpu_pressure.map(|p| p.avg10));
    match top_cpu(s) {
        Ok(top) => {
            // Named only when something is wrong: it is the operator's next question.
            let wrong = !fails.is_empty() || !warns.is_empty();
            if wrong && !top.is_empty() {
                warns.push(format!(
                    "top by CPU over the window: {}",
                    name_top(&top, "cpu_pct", "%")
                ));
            }
            evidence["top_cpu"] = json!(top);
        }
        Err(why) => evidence["top_cpu_unavailable"] = json!(why),
    }
    if stolen {
        remedy.push("steal time: the physical host is contended — burstable instances (t5/t6) may be out of CPU credits (ECS console → instance → monitoring); otherwise move to an instance type with dedicated vCPUs".to_string());
    }
    let ok = match window {
        Some(d) => format!(
            "CPUs {:.0}% busy, {:.0}% steal over the window",
            shares(&d).0,
            shares(&d).2
        ),
        None => format!(
            "load average {:.2} on {cpus} CPUs; {:.1}% steal since boot",
            now.loadavg[0],
            shares(&now.total).2
        ),
    };
    from_reasons(CPU, fails, warns, ok, evidence, remedy).cause(if stolen {
        "cpu_steal"
    } else {
        "cpu_saturated"
    })
}

pub fn memory(s: &Snapshot, c: &Criteria) -> Finding {
    let now = match s.memory.ok() {
        Ok(m) => m,
        Err(e) => return Finding::unknown(MEMORY, format!("cannot read memory counters: {e}")),
    };
    let th = &c.thresholds;
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let available = now.available_kb.map(|a| pct(a, now.total_kb));
    if let Some(a) = available {
        if a < th.memory_available_fail_pct {
            fails.push(format!("only {a:.1}% of memory is available ({} MiB of {} MiB): the kernel is about to kill processes", now.available_kb.unwrap_or(0) / 1024, now.total_kb / 1024));
        } else if a < th.memory_available_pct {
            warns.push(format!(
                "only {a:.1}% of memory is available ({} MiB)",
                now.available_kb.unwrap_or(0) / 1024
            ));
        }
    }
    let earlier = s.earlier.as_ref().and_then(|e| e.memory.as_ref());
    let window = window_s(s);
    let mut swap_rate = None;
    let oom_kills;
    let oom_since;
    match (earlier, window) {
        (Some(e), Some(w)) => {
            if let Some(pages) = now.swap_pages_since(e) {
                let r = pages as f64 / w;
                swap_rate = Some(round1(r));
                if r >= th.swap_pages_per_s {
                    warns.push(format!("swapping {r:.0} pages/s"));
                }
            }
            oom_kills = now.oom_kills_since(e);
            oom_since = "in the window";
        }
        _ => {
            oom_kills = now.oom_kills;
            oom_since = "since boot";
        }
    }
    if let Some(k) = oom_kills.filter(|k| *k >= th.oom_kills && *k > 0) {
        warns.push(format!(
            "the OOM killer killed {k} process(es) {oom_since} (dmesg | grep -i 'killed process' names them)"
        ));
    }
    let evidence = json!({
        "total_mib": now.total_kb / 1024, "available_mib": now.available_kb.map(|a| a / 1024),
        "available_pct": available.map(round1), "swap_total_mib": now.swap_total_kb / 1024,
        "swap_used_mib": now.swap_total_kb.saturating_sub(now.swap_free_kb) / 1024,
        "swap_pages_per_s": swap_rate, "oom_kills": oom_kills, "oom_kills_counted": oom_since,
        "window_s": window,
    });
    let mut evidence = evidence;
    match top_memory(s) {
        Ok((rss, swap)) => {
            let wrong = !fails.is_empty() || !warns.is_empty();
            if wrong {
                if !rss.is_empty() {
                    warns.push(format!("top by RSS: {}", name_top(&rss, "rss_mib", " MiB")));
                }
                if !swap.is_empty() {
                    warns.push(format!(
                        "top by swap: {}",
                        name_top(&swap, "swap_mib", " MiB")
                    ));
                }
            }
            evidence["top_rss"] = json!(rss);
            evidence["top_swap"] = json!(swap);
        }
        Err(why) => evidence["top_unavailable"] = json!(why),
    }
    let remedy = vec![
        "ps aux --sort=-rss | head: which processes hold the memory".to_string(),
        "dmesg -T | grep -i -E 'out of memory|killed process'".to_string(),
        "upgrade the instance type or add memory limits to the largest services".to_string(),
    ];
    let ok = match available {
        Some(a) => format!("{a:.0}% of memory available, no OOM kills {oom_since}"),
        None => format!("no MemAvailable on this kernel; no OOM kills {oom_since}"),
    };
    from_reasons(MEMORY, fails, warns, ok, evidence, remedy)
}

pub fn io(s: &Snapshot, c: &Criteria) -> Finding {
    let th = &c.thresholds;
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut judged = false;
    let mut reasons = Vec::new();
    let pressure = match s.pressure.ok() {
        Ok(Some(p)) => {
            judged = true;
            // CPU pressure is load.cpu's: waiting for a CPU is not a disk problem.
            let lines: [(&str, &str, Option<PressureLine>, bool); 4] = [
                ("memory some", "memory", p.memory_some, false),
                ("memory full", "memory", p.memory_full, true),
                ("io some", "I/O", p.io_some, false),
                ("io full", "I/O", p.io_full, true),
            ];
            for (name, what, line, full) in lines {
                let Some(l) = line else { continue };
                let text = if full {
                    format!(
                        "{name}: every task was stalled on {what} {:.0}% of the last 10 s",
                        l.avg10
                    )
                } else {
                    format!(
                        "{name}: tasks waited for {what} {:.0}% of the last 10 s",
                        l.avg10
                    )
                };
                if full && l.avg10 >= th.pressure_full_fail_pct {
                    fails.push(text);
                } else if l.avg10
                    >= if full {
                        th.pressure_full_pct
                    } else {
                        th.pressure_some_pct
                    }
                {
                    warns.push(text);
                }
            }
            json!(p)
        }
        Ok(None) => {
            reasons.push("this kernel has no pressure stall information (PSI; RHEL 8 family kernels need psi=1 on the kernel command line)".to_string());
            json!("not available on this kernel")
        }
        Err(e) => {
            reasons.push(format!("cannot read PSI: {e}"));
            json!(e)
        }
    };
    let earlier = s.earlier.as_ref().and_then(|e| e.disks.as_ref());
    let mut disks = Vec::new();
    match (s.disks.ok(), earlier, window_s(s)) {
        (Ok(now), Some(before), Some(w)) => {
            judged = true;
            for d in now {
                let Some(b) = before.iter().find(|b| b.name == d.name) else {
                    continue;
                };
                let Some(busy) = d.busy_pct_since(b, w) else {
                    continue;
                };
                disks.push(
                    json!({"disk": d.name, "busy_pct": round1(busy), "in_flight": d.in_flight}),
                );
                if busy >= th.disk_busy_pct {
                    warns.push(format!("disk {} was busy {busy:.0}% of the window", d.name));
                }
            }
        }
        (Err(e), _, _) => reasons.push(format!("cannot read disk counters: {e}")),
        _ => reasons.push("one sample cannot give disk busy time".to_string()),
    }
    let evidence = json!({"pressure": pressure, "disks": disks, "window_s": window_s(s), "not_judged": reasons});
    if !judged {
        if s.pressure.ok().is_err() || s.disks.ok().is_err() {
            return Finding::unknown(IO, reasons.join("; ")).evidence(evidence);
        }
        return Finding::skipped(
            IO,
            format!(
                "{}; run `ecs-diag check --window 5` to measure disk busy time",
                reasons.join("; ")
            ),
        )
        .evidence(evidence);
    }
    let remedy = vec![
        "iostat -x 1 5 (sysstat): which disk is saturated; iotop -o: which process".to_string(),
        "cat /proc/pressure/*: which resource tasks wait for".to_string(),
        "a cloud disk at its IOPS/throughput limit: ECS console → disks → monitoring; upgrade the disk category (ESSD PL) or the instance type".to_string(),
    ];
    from_reasons(
        IO,
        fails,
        warns,
        "no resource stall and no saturated disk".to_string(),
        evidence,
        remedy,
    )
}

pub fn dstate(s: &Snapshot, c: &Criteria) -> Finding {
    let now = match s.tasks.ok() {
        Ok(t) => t,
        Err(e) => return Finding::unknown(DSTATE, format!("cannot read process states: {e}")),
    };
    let th = &c.thresholds;
    let earlier = s.earlier.as_ref().and_then(|e| e.tasks.as_ref());
    // With two samples only processes in D state in both count: a moment of disk I/O is normal.
    let (stuck, counted) = match earlier {
        Some(e) => (
            now.dstate
                .iter()
                .filter(|t| {
                    e.dstate
                        .iter()
                        .any(|b| b.pid == t.pid && b.command == t.command)
                })
                .collect::<Vec<_>>(),
            "in D state in both samples",
        ),
        None => (now.dstate.iter().collect(), "in D state now"),
    };
    let listed: Vec<String> = stuck
        .iter()
        .take(20)
        .map(|t| match &t.wchan {
            Some(w) => format!("{} ({}, in {w})", t.pid, t.command),
            None => format!("{} ({})", t.pid, t.command),
        })
        .collect();
    let evidence = json!({
        "processes": now.processes, "dstate_now": now.dstate, "counted": counted,
        "stuck": stuck.len(), "window_s": window_s(s),
    });
    let n = stuck.len() as u64;
    let summary = format!(
        "{n} process(es) {counted} (uninterruptible sleep): {}",
        listed.join(", ")
    );
    let remedy = vec![
        "cat /proc/PID/stack (as root) for each: the kernel path it is stuck in".to_string(),
        "dmesg -T | grep -i 'blocked for more than': hung-task reports name the disk or NFS mount".to_string(),
        "a stuck NFS/NAS mount or a failing cloud disk is the usual cause: check the disk's status in the ECS console".to_string(),
    ];
    if n >= th.dstate_fail_processes && n > 0 {
        return Finding::fail(DSTATE, summary)
            .evidence(evidence)
            .remedy(remedy);
    }
    if n >= th.dstate_processes && n > 0 {
        return Finding::warn(DSTATE, summary)
            .evidence(evidence)
            .remedy(remedy);
    }
    Finding::ok(
        DSTATE,
        format!(
            "{n} of {} processes {counted} (warns from {})",
            now.processes, th.dstate_processes
        ),
    )
    .evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::snapshot::Disk;

    /// These checks judge against criteria: the fixtures' own.
    fn judge(
        check: fn(&Snapshot, &Criteria) -> Finding,
        edit: impl FnOnce(&mut Snapshot),
    ) -> Finding {
        judge_by(check, criteria(), edit)
    }
    use crate::report::Status;
    use crate::snapshot::{CpuSample, Gathered, MemorySample, Pressure, Sample, Task, TaskSample};

    fn times(busy: u64, idle: u64, iowait: u64, steal: u64) -> CpuTimes {
        CpuTimes {
            user: busy,
            idle,
            iowait,
            steal,
            ..Default::default()
        }
    }

    fn cpu_sample(per_cpu: Vec<(u32, CpuTimes)>, load1: f64) -> CpuSample {
        let mut total = CpuTimes::default();
        for (_, t) in &per_cpu {
            total.user += t.user;
            total.idle += t.idle;
            total.iowait += t.iowait;
            total.steal += t.steal;
        }
        CpuSample {
            total,
            per_cpu,
            loadavg: [load1, 0.0, 0.0],
        }
    }

    /// Snapshot with `before` as the earlier sample 10 s ago and `now` as the current one.
    fn window(s: &mut Snapshot, f: impl FnOnce(&mut Sample)) {
        s.at_ms = 20_000;
        let mut e = Sample {
            at_ms: 10_000,
            ..Default::default()
        };
        f(&mut e);
        s.earlier = Some(Box::new(e));
    }

    #[test]
    fn cpu_one_sample() {
        let f = judge(cpu, |_| {});
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        let f = judge(cpu, |s| {
            s.cpu = Gathered::Ok(cpu_sample(
                vec![(0, times(10, 90, 0, 0)), (1, times(10, 90, 0, 0))],
                5.0,
            ))
        });
        assert_eq!(f.status, Status::Warn);
        assert!(f.summary.contains("2.5 per CPU"), "{}", f.summary);
        // Chronic steal since boot.
        let f = judge(cpu, |s| {
            s.cpu = Gathered::Ok(cpu_sample(vec![(0, times(10, 70, 0, 20))], 0.1))
        });
        assert_eq!(f.status, Status::Warn);
        assert!(f.remedy.iter().any(|r| r.contains("credits")));
        let f = judge(cpu, |s| {
            s.cpu = Gathered::Failed("cannot read /x/stat: ENOENT".into())
        });
        assert_eq!(f.status, Status::Unknown);
        assert!(f.summary.contains("/x/stat"));
    }

    #[test]
    fn cpu_window_rates_and_per_cpu_saturation() {
        let before = cpu_sample(
            vec![(0, times(100, 900, 0, 0)), (1, times(100, 900, 0, 0))],
            0.0,
        );
        let set = |now: CpuSample, before: CpuSample| {
            move |s: &mut Snapshot| {
                s.cpu = Gathered::Ok(now);
                window(s, |e| e.cpu = Some(before));
            }
        };
        // Idle window.
        let idle = cpu_sample(
            vec![(0, times(110, 1890, 0, 0)), (1, times(110, 1890, 0, 0))],
            9.0,
        );
        let f = judge(cpu, set(idle, before.clone()));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        // cpu1 saturated, the machine as a whole half busy: warn and name the CPU.
        let one = cpu_sample(
            vec![(0, times(110, 1890, 0, 0)), (1, times(1090, 910, 0, 0))],
            1.0,
        );
        let f = judge(cpu, set(one, before.clone()));
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        assert!(f.summary.contains("cpu1 99%"), "{}", f.summary);
        assert!(!f.summary.contains("cpu0"), "{}", f.summary);
        // Half the time stolen: fail.
        let stolen = cpu_sample(
            vec![(0, times(600, 1000, 0, 700)), (1, times(600, 1000, 0, 700))],
            1.0,
        );
        assert_eq!(judge(cpu, set(stolen, before.clone())).status, Status::Fail);
        // A CPU that came online in the window is left out, not divided by zero.
        let hotplug = cpu_sample(
            vec![
                (0, times(110, 1890, 0, 0)),
                (1, times(110, 1890, 0, 0)),
                (2, times(5, 5, 0, 0)),
            ],
            0.0,
        );
        let f = judge(cpu, set(hotplug, before.clone()));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert_eq!(f.evidence["per_cpu"].as_array().unwrap().len(), 2);
        // Counters that went backwards (a different boot): judged on one sample instead.
        let reset = cpu_sample(vec![(0, times(1, 9, 0, 0))], 0.0);
        let f = judge(cpu, set(reset, before));
        assert_eq!(f.status, Status::Ok);
        assert_eq!(f.evidence["since"], "boot");
        // Thresholds come from the config.
        let one = cpu_sample(
            vec![(0, times(110, 1890, 0, 0)), (1, times(1090, 910, 0, 0))],
            1.0,
        );
        let before = cpu_sample(
            vec![(0, times(100, 900, 0, 0)), (1, times(100, 900, 0, 0))],
            0.0,
        );
        let mut c = criteria();
        c.thresholds.cpu_saturated_pct = 99.5;
        let f = judge_by(cpu, c, set(one, before));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
    }

    fn mem(total: u64, available: Option<u64>, swap: (u64, u64), oom: Option<u64>) -> MemorySample {
        MemorySample {
            total_kb: total,
            available_kb: available,
            swap_in: swap.0,
            swap_out: swap.1,
            oom_kills: oom,
            ..Default::default()
        }
    }

    #[test]
    fn memory_paths() {
        assert_eq!(judge(memory, |_| {}).status, Status::Ok);
        let set = |m: MemorySample| move |s: &mut Snapshot| s.memory = Gathered::Ok(m);
        assert_eq!(
            judge(memory, set(mem(1000, Some(50), (0, 0), Some(0)))).status,
            Status::Warn
        );
        let f = judge(memory, set(mem(1000, Some(10), (0, 0), Some(0))));
        assert_eq!(f.status, Status::Fail);
        assert!(f.remedy.iter().any(|r| r.contains("killed process")));
        let f = judge(memory, set(mem(1000, Some(800), (0, 0), Some(2))));
        assert_eq!(f.status, Status::Warn);
        assert!(f.summary.contains("since boot"), "{}", f.summary);
        // Old kernel: no MemAvailable, no oom_kill: judged on what there is.
        assert_eq!(
            judge(memory, set(mem(1000, None, (0, 0), None))).status,
            Status::Ok
        );
        assert_eq!(
            judge(memory, |s| s.memory = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn memory_window() {
        let run = |now: MemorySample, before: MemorySample| {
            judge(memory, move |s| {
                s.memory = Gathered::Ok(now);
                window(s, |e| e.memory = Some(before));
            })
        };
        // OOM kills before the window do not count in it.
        let f = run(
            mem(1000, Some(800), (0, 0), Some(5)),
            mem(1000, Some(800), (0, 0), Some(5)),
        );
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        let f = run(
            mem(1000, Some(800), (0, 0), Some(6)),
            mem(1000, Some(800), (0, 0), Some(5)),
        );
        assert_eq!(f.status, Status::Warn);
        assert!(f.summary.contains("in the window"));
        // 20,000 pages in 10 s.
        let f = run(
            mem(1000, Some(800), (15_000, 5_000), Some(0)),
            mem(1000, Some(800), (0, 0), Some(0)),
        );
        assert_eq!(f.status, Status::Warn);
        assert!(f.summary.contains("2000 pages/s"), "{}", f.summary);
        // A counter that went backwards gives no rate rather than a huge one.
        let f = run(
            mem(1000, Some(800), (0, 0), Some(0)),
            mem(1000, Some(800), (50, 50), Some(0)),
        );
        assert_eq!(f.status, Status::Ok);
    }

    fn psi(avg10: f64) -> Option<PressureLine> {
        Some(PressureLine {
            avg10,
            ..Default::default()
        })
    }

    #[test]
    fn io_pressure_paths() {
        let f = judge(io, |_| {});
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        let set = |p: Pressure| move |s: &mut Snapshot| s.pressure = Gathered::Ok(Some(p));
        let f = judge(
            io,
            set(Pressure {
                io_some: psi(55.0),
                ..Default::default()
            }),
        );
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary.contains("io some: tasks waited for I/O 55%"),
            "{}",
            f.summary
        );
        // CPU pressure is not an I/O problem: load.io stays ok, load.cpu warns and says so.
        let cpu_queued = set(Pressure {
            cpu_some: psi(60.0),
            ..Default::default()
        });
        let f = judge(io, cpu_queued);
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        let f = judge(
            cpu,
            set(Pressure {
                cpu_some: psi(60.0),
                ..Default::default()
            }),
        );
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        assert!(
            f.summary
                .contains("tasks waited for a CPU 60% of the last 10 s (CPU pressure)"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["cpu_pressure_avg10"], 60.0);
        let f = judge(
            io,
            set(Pressure {
                io_full: psi(25.0),
                ..Default::default()
            }),
        );
        assert_eq!(f.status, Status::Warn);
        let f = judge(
            io,
            set(Pressure {
                memory_full: psi(80.0),
                ..Default::default()
            }),
        );
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("memory full"));
        // No PSI and one sample: nothing to judge on.
        let f = judge(io, |s| s.pressure = Gathered::Ok(None));
        assert_eq!(f.status, Status::Skipped);
        assert!(
            f.summary.contains("psi=1") && f.summary.contains("--window"),
            "{}",
            f.summary
        );
        let f = judge(io, |s| {
            s.pressure = Gathered::Failed("EACCES".into());
            s.disks = Gathered::Failed("EACCES".into());
        });
        assert_eq!(f.status, Status::Unknown);
    }

    fn disk(name: &str, ticks: u64) -> Disk {
        Disk {
            name: name.into(),
            reads: 1,
            writes: 1,
            io_ticks_ms: ticks,
            in_flight: 0,
        }
    }

    #[test]
    fn io_busy_disks_without_psi() {
        let run = |now: Vec<Disk>, before: Vec<Disk>| {
            judge(io, move |s| {
                s.pressure = Gathered::Ok(None);
                s.disks = Gathered::Ok(now);
                window(s, |e| e.disks = Some(before));
            })
        };
        let f = run(vec![disk("vda", 2_000)], vec![disk("vda", 1_000)]);
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert_eq!(f.evidence["disks"][0]["busy_pct"], 10.0);
        let f = run(vec![disk("vda", 10_500)], vec![disk("vda", 1_000)]);
        assert_eq!(f.status, Status::Warn);
        assert!(f.summary.contains("vda"));
        // io_ticks is 32-bit in the kernel: a wrap is 9.6 s of a 10 s window, not a reset.
        let f = run(
            vec![disk("vda", 5_000)],
            vec![disk("vda", u64::from(u32::MAX) - 4_599)],
        );
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        // A disk that appeared or vanished in the window is not judged.
        let f = run(vec![disk("vdb", 9_999)], vec![disk("vda", 1)]);
        assert_eq!(f.status, Status::Ok);
        assert!(f.evidence["disks"].as_array().unwrap().is_empty());
    }

    fn task(pid: u32, command: &str) -> Task {
        Task {
            pid,
            command: command.into(),
            wchan: Some("rpc_wait_bit_killable".into()),
        }
    }

    #[test]
    fn dstate_paths() {
        assert_eq!(judge(dstate, |_| {}).status, Status::Ok);
        let set = |d: Vec<Task>| {
            move |s: &mut Snapshot| {
                s.tasks = Gathered::Ok(TaskSample {
                    processes: 100,
                    dstate: d,
                    ..Default::default()
                })
            }
        };
        assert_eq!(judge(dstate, set(vec![task(1, "a")])).status, Status::Ok);
        let three: Vec<Task> = (1..=3).map(|p| task(p, "df")).collect();
        let f = judge(dstate, set(three.clone()));
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary.contains("1 (df, in rpc_wait_bit_killable)"),
            "{}",
            f.summary
        );
        let many: Vec<Task> = (1..=25).map(|p| task(p, "df")).collect();
        assert_eq!(judge(dstate, set(many)).status, Status::Fail);
        // With two samples only the processes stuck in both count.
        let f = judge(dstate, |s| {
            set(three.clone())(s);
            window(s, |e| {
                e.tasks = Some(TaskSample {
                    processes: 100,
                    dstate: vec![task(1, "df"), task(9, "kworker")],
                    ..Default::default()
                })
            });
        });
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert_eq!(f.evidence["stuck"], 1);
        let f = judge(dstate, |s| {
            set(three.clone())(s);
            window(s, |e| {
                e.tasks = Some(TaskSample {
                    processes: 100,
                    dstate: three,
                    ..Default::default()
                })
            });
        });
        assert_eq!(f.status, Status::Warn);
        assert_eq!(
            judge(dstate, |s| s.tasks = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    fn usage(pid: u32, command: &str, start: u64, cpu: u64, rss_kib: u64) -> TaskUsage {
        TaskUsage {
            pid,
            command: command.into(),
            start_ticks: start,
            cpu_ticks: cpu,
            rss_kib,
            swap_kib: None,
        }
    }

    fn usage_sample(usage: Vec<TaskUsage>) -> TaskSample {
        TaskSample {
            processes: usage.len() as u64,
            usage,
            ticks_per_s: 100,
            ..Default::default()
        }
    }

    #[test]
    fn cpu_names_the_top_processes_over_the_window() {
        let before = cpu_sample(vec![(0, times(100, 900, 0, 0))], 0.0);
        let busy = cpu_sample(vec![(0, times(1090, 910, 0, 0))], 1.0);
        // 10 s window at 100 ticks/s: 1000 ticks is 100% of a CPU.
        let earlier_tasks = usage_sample(vec![
            usage(10, "spin", 5, 1_000, 100),
            usage(11, "sshd", 5, 50, 100),
            // pid 12 was another process before: its ticks are not subtracted from the new one.
            usage(12, "old", 5, 9_000, 100),
        ]);
        let now_tasks = usage_sample(vec![
            usage(10, "spin", 5, 1_980, 100),
            usage(11, "sshd", 5, 51, 100),
            usage(12, "make", 900, 300, 100),
            // Started within the window: all its ticks count.
            usage(13, "cc1", 950, 150, 100),
            usage(14, "idle", 5, 0, 100),
        ]);
        let f = judge(cpu, |s| {
            s.cpu = Gathered::Ok(busy.clone());
            s.tasks = Gathered::Ok(now_tasks.clone());
            window(s, |e| {
                e.cpu = Some(before.clone());
                e.tasks = Some(earlier_tasks.clone());
            });
        });
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        let top = f.evidence["top_cpu"].as_array().unwrap();
        let got: Vec<(u64, f64)> = top
            .iter()
            .map(|p| (p["pid"].as_u64().unwrap(), p["cpu_pct"].as_f64().unwrap()))
            .collect();
        assert_eq!(got, vec![(10, 98.0), (12, 30.0), (13, 15.0), (11, 0.1)]);
        assert!(
            f.summary
                .contains("top by CPU over the window: spin (pid 10) 98.0%, make (pid 12) 30.0%"),
            "{}",
            f.summary
        );
        // An idle box lists them in evidence but does not name them in an ok summary.
        let idle = cpu_sample(vec![(0, times(110, 1890, 0, 0))], 0.0);
        let f = judge(cpu, |s| {
            s.cpu = Gathered::Ok(idle);
            s.tasks = Gathered::Ok(now_tasks.clone());
            window(s, |e| {
                e.cpu = Some(before.clone());
                e.tasks = Some(earlier_tasks.clone());
            });
        });
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert!(!f.summary.contains("top by CPU"), "{}", f.summary);
        assert_eq!(f.evidence["top_cpu"][0]["pid"], 10);
        // One sample: no per-process rate, and the evidence says how to get one.
        let f = judge(cpu, |s| s.tasks = Gathered::Ok(now_tasks.clone()));
        assert!(
            f.evidence["top_cpu_unavailable"]
                .as_str()
                .unwrap()
                .contains("--window"),
            "{}",
            f.evidence
        );
        // The process list unreadable: the CPU is still judged.
        let f = judge(cpu, |s| {
            s.cpu = Gathered::Ok(busy.clone());
            s.tasks = Gathered::Failed("cannot list /proc".into());
            window(s, |e| e.cpu = Some(before.clone()));
        });
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        assert!(f.evidence["top_cpu_unavailable"].is_string());
    }

    #[test]
    fn memory_names_the_top_processes_by_rss_and_swap() {
        let mut tasks = usage_sample(vec![
            usage(1, "systemd", 1, 0, 12_000),
            usage(2, "kthreadd", 1, 0, 0),
            usage(300, "java", 50, 0, 3 * 1024 * 1024),
            usage(301, "mysqld", 50, 0, 1024 * 1024),
        ]);
        tasks.usage[3].swap_kib = Some(512 * 1024);
        tasks.usage[2].swap_kib = Some(0);
        let low = mem(4 * 1024 * 1024, Some(100 * 1024), (1024 * 1024, 0), Some(0));
        let f = judge(memory, |s| {
            s.memory = Gathered::Ok(low.clone());
            s.tasks = Gathered::Ok(tasks.clone());
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary.contains(
                "top by RSS: java (pid 300) 3072.0 MiB, mysqld (pid 301) 1024.0 MiB, systemd (pid 1) 11.7 MiB"
            ),
            "{}",
            f.summary
        );
        assert!(
            f.summary
                .contains("top by swap: mysqld (pid 301) 512.0 MiB"),
            "{}",
            f.summary
        );
        // Kernel threads hold no memory and are not listed.
        assert_eq!(f.evidence["top_rss"].as_array().unwrap().len(), 3);
        assert_eq!(f.evidence["top_swap"].as_array().unwrap().len(), 1);
        // Healthy: listed in evidence only.
        let f = judge(memory, |s| s.tasks = Gathered::Ok(tasks.clone()));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert!(!f.summary.contains("top by"), "{}", f.summary);
        assert_eq!(f.evidence["top_rss"][0]["pid"], 300);
        // No process list: memory still judged, and the evidence says why there is no list.
        let f = judge(memory, |s| {
            s.memory = Gathered::Ok(low.clone());
            s.tasks = Gathered::Failed("cannot list /proc".into());
        });
        assert_eq!(f.status, Status::Fail);
        assert!(!f.summary.contains("top by"));
        assert!(f.evidence["top_unavailable"].is_string());
    }
}
