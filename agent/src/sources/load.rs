//! Load counters from `/proc`: CPU time (`stat`, `loadavg`), memory (`meminfo`, `vmstat`),
//! pressure stall information (`pressure/*`, absent on kernels without PSI), disk activity
//! (`diskstats`) and processes in D state (`PID/stat`). Parsers take text so they are tested on
//! saved files; readers name the file in every error.

use std::io::Read;
use std::path::Path;

use crate::snapshot::{
    CpuSample, CpuTimes, Disk, Gathered, MemorySample, Pressure, PressureLine, Task, TaskSample,
    TaskUsage,
};

fn read(proc_root: &Path, rel: &str) -> Result<String, String> {
    let path = proc_root.join(rel);
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn named<T>(proc_root: &Path, rel: &str, r: Result<T, String>) -> Gathered<T> {
    match r {
        Ok(v) => Gathered::Ok(v),
        Err(e) => Gathered::Failed(format!("{}: {e}", proc_root.join(rel).display())),
    }
}

/// `/proc/stat` `cpu` lines and `/proc/loadavg`.
pub fn cpu(proc_root: &Path) -> Gathered<CpuSample> {
    let stat = match read(proc_root, "stat") {
        Ok(t) => t,
        Err(e) => return Gathered::Failed(e),
    };
    let loadavg = match read(proc_root, "loadavg") {
        Ok(t) => t,
        Err(e) => return Gathered::Failed(e),
    };
    let parsed = parse_stat(&stat).and_then(|mut s| {
        s.loadavg = parse_loadavg(&loadavg)?;
        Ok(s)
    });
    named(proc_root, "stat", parsed)
}

pub fn parse_stat(text: &str) -> Result<CpuSample, String> {
    let mut sample = CpuSample::default();
    let mut total = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(name) = words.next().filter(|n| n.starts_with("cpu")) else {
            continue;
        };
        let v: Vec<u64> = words
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("not numbers: {line:?}"))?;
        // user nice system idle iowait irq softirq steal (guest columns are inside user/nice);
        // kernels before 2.6.11 lack steal.
        if v.len() < 7 {
            return Err(format!("expected at least 7 CPU time columns: {line:?}"));
        }
        let t = CpuTimes {
            user: v[0],
            nice: v[1],
            system: v[2],
            idle: v[3],
            iowait: v[4],
            irq: v[5],
            softirq: v[6],
            steal: v.get(7).copied().unwrap_or(0),
        };
        match name.strip_prefix("cpu").filter(|n| !n.is_empty()) {
            None => total = Some(t),
            Some(n) => {
                let n = n.parse().map_err(|_| format!("odd CPU name {name:?}"))?;
                sample.per_cpu.push((n, t));
            }
        }
    }
    sample.total = total.ok_or("no aggregate `cpu` line")?;
    Ok(sample)
}

pub fn parse_loadavg(text: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("expected three load averages: {:?}", text.trim()))?;
    match v[..] {
        [a, b, c] => Ok([a, b, c]),
        _ => Err(format!("expected three load averages: {:?}", text.trim())),
    }
}

/// `/proc/meminfo` and `/proc/vmstat`.
pub fn memory(proc_root: &Path) -> Gathered<MemorySample> {
    let (meminfo, vmstat) = match (read(proc_root, "meminfo"), read(proc_root, "vmstat")) {
        (Ok(m), Ok(v)) => (m, v),
        (Err(e), _) | (_, Err(e)) => return Gathered::Failed(e),
    };
    named(proc_root, "meminfo", parse_memory(&meminfo, &vmstat))
}

pub fn parse_memory(meminfo: &str, vmstat: &str) -> Result<MemorySample, String> {
    let kb = |key: &str| -> Result<Option<u64>, String> {
        for line in meminfo.lines() {
            if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
                let n = rest.split_whitespace().next().unwrap_or("");
                return n
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{key}: not a number: {line:?}"));
            }
        }
        Ok(None)
    };
    let vm = |key: &str| -> Result<Option<u64>, String> {
        for line in vmstat.lines() {
            let mut w = line.split_whitespace();
            if w.next() == Some(key) {
                let n = w.next().unwrap_or("");
                return n
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("vmstat {key}: not a number: {line:?}"));
            }
        }
        Ok(None)
    };
    Ok(MemorySample {
        total_kb: kb("MemTotal")?.ok_or("no MemTotal")?,
        available_kb: kb("MemAvailable")?,
        swap_total_kb: kb("SwapTotal")?.unwrap_or(0),
        swap_free_kb: kb("SwapFree")?.unwrap_or(0),
        swap_in: vm("pswpin")?.unwrap_or(0),
        swap_out: vm("pswpout")?.unwrap_or(0),
        oom_kills: vm("oom_kill")?,
    })
}

/// `/proc/pressure/{cpu,memory,io}`; `Ok(None)` when the kernel has no PSI (the directory is
/// missing, or reading says EOPNOTSUPP because it was booted with `psi=0`).
pub fn pressure(proc_root: &Path) -> Gathered<Option<Pressure>> {
    let dir = proc_root.join("pressure");
    if !dir.is_dir() {
        return Gathered::Ok(None);
    }
    let mut p = Pressure::default();
    for resource in ["cpu", "memory", "io"] {
        let path = dir.join(resource);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Gathered::Ok(None),
            Err(e) => return Gathered::Failed(format!("cannot read {}: {e}", path.display())),
        };
        let (some, full) = match parse_pressure(&text) {
            Ok(v) => v,
            Err(e) => return Gathered::Failed(format!("{}: {e}", path.display())),
        };
        match resource {
            "cpu" => p.cpu_some = some,
            "memory" => (p.memory_some, p.memory_full) = (some, full),
            _ => (p.io_some, p.io_full) = (some, full),
        }
    }
    Gathered::Ok(Some(p))
}

/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and the same for `full`.
pub fn parse_pressure(text: &str) -> Result<(Option<PressureLine>, Option<PressureLine>), String> {
    let mut some = None;
    let mut full = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let kind = words.next().unwrap_or("");
        let mut pl = PressureLine::default();
        let mut seen = 0;
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("expected key=value: {line:?}"))?;
            let bad = || format!("{k}: not a number: {line:?}");
            match k {
                "avg10" => pl.avg10 = v.parse().map_err(|_| bad())?,
                "avg60" => pl.avg60 = v.parse().map_err(|_| bad())?,
                "total" => pl.total_us = v.parse().map_err(|_| bad())?,
                _ => continue,
            }
            seen += 1;
        }
        if seen < 3 {
            return Err(format!("expected avg10, avg60 and total: {line:?}"));
        }
        match kind {
            "some" => some = Some(pl),
            "full" => full = Some(pl),
            _ => return Err(format!("expected `some` or `full`: {line:?}")),
        }
    }
    Ok((some, full))
}

pub fn disks(proc_root: &Path) -> Gathered<Vec<Disk>> {
    match read(proc_root, "diskstats") {
        Ok(t) => named(proc_root, "diskstats", parse_diskstats(&t)),
        Err(e) => Gathered::Failed(e),
    }
}

/// Whole disks that have done I/O: partitions (their disk counts them too), and loop/ram
/// devices that never did I/O, are left out.
pub fn parse_diskstats(text: &str) -> Result<Vec<Disk>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 14 {
            return Err(format!("expected at least 14 columns: {line:?}"));
        }
        let n = |i: usize| -> Result<u64, String> {
            w[i].parse()
                .map_err(|_| format!("column {}: not a number: {line:?}", i + 1))
        };
        let name = w[2];
        let (reads, writes, in_flight, io_ticks_ms) = (n(3)?, n(7)?, n(11)?, n(12)?);
        if reads + writes == 0 || is_partition(name) {
            continue;
        }
        out.push(Disk {
            name: name.to_string(),
            reads,
            writes,
            io_ticks_ms,
            in_flight,
        });
    }
    Ok(out)
}

/// `vda1`, `sda2`, `nvme0n1p1`, `mmcblk0p1` are partitions; `vda`, `nvme0n1`, `dm-0` are not.
fn is_partition(name: &str) -> bool {
    let digits_end = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if digits_end.len() == name.len() {
        return false;
    }
    if name.starts_with("nvme") || name.starts_with("mmcblk") {
        return digits_end.ends_with('p');
    }
    ["sd", "vd", "xvd", "hd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Every process's state, CPU time and memory from `/proc/PID/stat` (and `VmSwap` from
/// `/proc/PID/status` when `read_swap`: the system has swap in use, else it is 0 for all and
/// not worth a second read per process); processes that exit while being read are skipped
/// (they are gone, not an error). On the live `/proc`, the agent itself and the helper tools
/// it runs (`iptables-save` waiting on the kernel is briefly in D state) are never counted as
/// stuck.
pub fn tasks(proc_root: &Path, read_swap: bool) -> Gathered<TaskSample> {
    tasks_except(proc_root, own_process(proc_root), read_swap)
}

/// The agent's own pid where `proc_root` is the live /proc (it and its helper tools are never
/// counted as stuck); a fixture root has none.
pub fn own_process(proc_root: &Path) -> Option<u32> {
    (proc_root == Path::new("/proc")).then(std::process::id)
}

/// `tasks`, leaving out process `own` and its children from the stuck ones.
pub fn tasks_except(proc_root: &Path, own: Option<u32>, read_swap: bool) -> Gathered<TaskSample> {
    match TaskScan::new(proc_root, own, read_swap) {
        Ok(scan) => Gathered::Ok(scan.finish()),
        Err(e) => Gathered::Failed(e),
    }
}

/// One reading of every `/proc/PID` (`tasks`), shared by whichever threads have time: the
/// longest single source (tens of microseconds a process), and the only one that divides, so
/// threads that finish their own sources early take processes from it instead of idling.
/// Each process is claimed once (an atomic cursor over the listing), each thread keeps its
/// own part, and `finish` merges the parts in pid order: the sample is the same whoever
/// read what.
pub struct TaskScan {
    proc_root: std::path::PathBuf,
    own: Option<u32>,
    read_swap: bool,
    page_kib: u64,
    ticks_per_s: u64,
    pids: Vec<u32>,
    next: std::sync::atomic::AtomicUsize,
    parts: std::sync::Mutex<Vec<TaskSample>>,
}

impl TaskScan {
    /// Lists the processes (`own` and its children are never counted as stuck); reads none.
    pub fn new(proc_root: &Path, own: Option<u32>, read_swap: bool) -> Result<TaskScan, String> {
        let entries = std::fs::read_dir(proc_root)
            .map_err(|e| format!("cannot list {}: {e}", proc_root.display()))?;
        let pids = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
            .collect();
        // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
        let (hz, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Ok(TaskScan {
            proc_root: proc_root.to_path_buf(),
            own,
            read_swap,
            // USER_HZ is 100 on every Linux ABI; sysconf only fails on a broken libc.
            ticks_per_s: u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100),
            page_kib: u64::try_from(page)
                .ok()
                .filter(|p| *p >= 1024)
                .unwrap_or(4096)
                / 1024,
            pids,
            next: std::sync::atomic::AtomicUsize::new(0),
            parts: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Reads processes not yet claimed until none is left.
    pub fn help(&self) {
        use std::sync::atomic::Ordering;
        let mut part = TaskSample::default();
        let mut path = self.proc_root.clone();
        // One open and one read per process into a reused buffer: a stat line is at most 52
        // numbers after a command of at most 64 bytes.
        let mut buf = [0u8; 1024];
        let mut status = String::new();
        // Relaxed: the cursor only hands out distinct indices; the parts are published
        // through the mutex.
        while let Some(&pid) = self.pids.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            path.push(pid.to_string());
            self.read_process(pid, &mut path, &mut buf, &mut status, &mut part);
            path.pop();
        }
        if part.processes > 0 {
            // A poisoned lock only means another helper panicked; its part is still whole
            // or absent, and this one is not lost.
            let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            parts.push(part);
        }
    }

    /// `path` is `/proc/PID`; adds what it says to `part`.
    fn read_process(
        &self,
        pid: u32,
        path: &mut std::path::PathBuf,
        buf: &mut [u8],
        status: &mut String,
        part: &mut TaskSample,
    ) {
        path.push("stat");
        let n = std::fs::File::open(&*path).and_then(|mut f| f.read(buf));
        path.pop();
        let Some(stat) = n.ok().and_then(|n| parse_pid_stat(&buf[..n])) else {
            return;
        };
        part.processes += 1;
        let ours = self.own.is_some_and(|o| pid == o || stat.ppid == Some(o));
        if stat.state == 'D' && !ours {
            path.push("wchan");
            let wchan = std::fs::read_to_string(&*path)
                .ok()
                .filter(|w| !w.is_empty() && w != "0");
            path.pop();
            part.dstate.push(Task {
                pid,
                command: stat.command.clone(),
                wchan,
            });
        }
        if let Some(u) = stat.usage {
            let swap_kib = if self.read_swap {
                path.push("status");
                status.clear();
                let read = std::fs::File::open(&*path).and_then(|mut f| {
                    // Bounded: a status file is about 1.5 KiB.
                    (&mut f).take(16 * 1024).read_to_string(status)
                });
                path.pop();
                read.ok().and_then(|_| parse_vm_swap(status))
            } else {
                None
            };
            part.usage.push(TaskUsage {
                pid,
                command: stat.command,
                start_ticks: u.start_ticks,
                cpu_ticks: u.cpu_ticks,
                rss_kib: u.rss_pages.saturating_mul(self.page_kib),
                swap_kib,
            });
        }
    }

    /// Reads what no helper did, then merges every part in pid order. Called once every
    /// helper has returned (their threads joined); a part pushed later would be left out.
    pub fn finish(&self) -> TaskSample {
        self.help();
        let parts = std::mem::take(&mut *self.parts.lock().unwrap_or_else(|p| p.into_inner()));
        let mut sample = TaskSample {
            ticks_per_s: self.ticks_per_s,
            ..TaskSample::default()
        };
        for part in parts {
            sample.processes += part.processes;
            sample.dstate.extend(part.dstate);
            sample.usage.extend(part.usage);
        }
        sample.dstate.sort_by_key(|t| t.pid);
        sample.usage.sort_by_key(|t| t.pid);
        sample
    }
}

/// What one `/proc/PID/stat` line says.
#[derive(Debug, Clone, PartialEq)]
pub struct PidStat {
    pub command: String,
    pub state: char,
    pub ppid: Option<u32>,
    /// Absent when the line is cut short before the RSS field.
    pub usage: Option<PidUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PidUsage {
    /// utime + stime, in ticks.
    pub cpu_ticks: u64,
    pub start_ticks: u64,
    pub rss_pages: u64,
}

/// `PID (comm) S PPID ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24) ...`: the
/// command may itself contain spaces and parentheses, so the fields are the words after the
/// last `)`. One pass over the line.
pub fn parse_pid_stat(stat: &[u8]) -> Option<PidStat> {
    let open = stat.iter().position(|b| *b == b'(')?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let command = String::from_utf8_lossy(stat.get(open + 1..close)?).into_owned();
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field n of the man page is fields[n - 3] here (state is field 3).
    let mut number = [None::<u64>; 22];
    for (slot, word) in number.iter_mut().zip(fields) {
        *slot = word.parse().ok();
    }
    let ppid = number[0].and_then(|p| u32::try_from(p).ok());
    let usage = (|| {
        Some(PidUsage {
            cpu_ticks: number[14 - 4]?.saturating_add(number[15 - 4]?),
            start_ticks: number[22 - 4]?,
            rss_pages: number[24 - 4]?,
        })
    })();
    Some(PidStat {
        command,
        state,
        ppid,
        usage,
    })
}

/// `VmSwap:      123 kB` from `/proc/PID/status` (absent for kernel threads).
pub fn parse_vm_swap(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmSwap:"))?;
    line.split_ascii_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_and_without_steal() {
        let s = parse_stat("cpu  10 1 5 100 4 0 2 3 0 0\ncpu0 5 0 2 50 2 0 1 2 0 0\ncpu1 5 1 3 50 2 0 1 1 0 0\nintr 1 2 3\nctxt 5\n").unwrap();
        assert_eq!(s.total.steal, 3);
        assert_eq!(s.total.busy(), 18);
        assert_eq!(s.total.total(), 125);
        assert_eq!(s.per_cpu.len(), 2);
        assert_eq!(s.per_cpu[1].0, 1);
        // 2.6 kernels: 7 columns, no steal.
        let s = parse_stat("cpu 1 2 3 4 5 6 7\n").unwrap();
        assert_eq!(s.total.steal, 0);
        assert!(parse_stat("cpu 1 2 x\n").unwrap_err().contains("cpu 1 2 x"));
        assert!(parse_stat("intr 1\n").unwrap_err().contains("no aggregate"));
        assert!(parse_stat("cpu 1 2 3\n")
            .unwrap_err()
            .contains("at least 7"));
    }

    #[test]
    fn loadavg_and_memory() {
        assert_eq!(
            parse_loadavg("0.24 0.69 0.79 1/80 10743\n").unwrap(),
            [0.24, 0.69, 0.79]
        );
        assert!(parse_loadavg("0.24\n").is_err());
        let m = parse_memory(
            "MemTotal:       2000000 kB\nMemFree: 10 kB\nMemAvailable:    500000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
            "pswpin 7\npswpout 9\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(
            (
                m.total_kb,
                m.available_kb,
                m.swap_in,
                m.swap_out,
                m.oom_kills
            ),
            (2000000, Some(500000), 7, 9, Some(2))
        );
        // Old kernels: no MemAvailable, no oom_kill.
        let m = parse_memory("MemTotal: 100 kB\n", "pswpin 0\n").unwrap();
        assert_eq!((m.available_kb, m.oom_kills), (None, None));
        assert!(parse_memory("MemFree: 1 kB\n", "")
            .unwrap_err()
            .contains("MemTotal"));
        assert!(parse_memory("MemTotal: lots kB\n", "")
            .unwrap_err()
            .contains("MemTotal"));
    }

    #[test]
    fn pressure_lines() {
        let (some, full) = parse_pressure("some avg10=1.50 avg60=0.89 avg300=3.21 total=278216906\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert_eq!(some.unwrap().avg10, 1.5);
        assert_eq!(some.unwrap().total_us, 278216906);
        assert_eq!(full.unwrap().avg10, 0.0);
        // Kernels before 5.13 have no `full` line for cpu.
        let (some, full) =
            parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert!(some.is_some() && full.is_none());
        assert!(parse_pressure("some avg10=x avg60=0 total=0\n").is_err());
        assert!(parse_pressure("half avg10=0 avg60=0 total=0\n").is_err());
    }

    #[test]
    fn diskstats_keeps_whole_disks_with_io() {
        let text = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 253       0 vda 1000 0 8000 500 2000 0 16000 900 1 1500 1400 0 0 0 0 0 0\n 253       1 vda1 900 0 7000 400 2000 0 16000 900 0 1400 1300\n 259 0 nvme0n1 5 0 0 0 5 0 0 0 0 10 10\n 259 1 nvme0n1p1 5 0 0 0 5 0 0 0 0 10 10\n 252 0 dm-0 3 0 0 0 0 0 0 0 0 1 1\n";
        let d = parse_diskstats(text).unwrap();
        let names: Vec<_> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vda", "nvme0n1", "dm-0"]);
        assert_eq!(
            (d[0].reads, d[0].writes, d[0].in_flight, d[0].io_ticks_ms),
            (1000, 2000, 1, 1500)
        );
        assert!(parse_diskstats("8 0 sda 1 2\n").is_err());
    }

    #[test]
    fn pid_stat_with_odd_command_names() {
        let real = b"4242 (sh) R 1 4242 4242 0 -1 4194304 105 0 0 0 1234 56 0 0 20 0 1 0 987654 2555904 220 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let p = parse_pid_stat(real).unwrap();
        assert_eq!((p.command.as_str(), p.state, p.ppid), ("sh", 'R', Some(1)));
        assert_eq!(
            p.usage,
            Some(PidUsage {
                cpu_ticks: 1290,
                start_ticks: 987654,
                rss_pages: 220
            })
        );
        let odd = parse_pid_stat(b"7 (a) b) (c) D 1 2").unwrap();
        assert_eq!(
            (odd.command.as_str(), odd.state, odd.ppid),
            ("a) b) (c", 'D', Some(1))
        );
        // Cut short before the RSS: state and parent, no usage.
        assert_eq!(odd.usage, None);
        assert_eq!(parse_pid_stat(b"7 (x) D").unwrap().ppid, None);
        assert_eq!(parse_pid_stat(b"garbage"), None);
        assert_eq!(parse_pid_stat(b"1 (x)"), None);
        assert_eq!(parse_pid_stat(b"1 (x) \xff"), None);
        // Pathological: a long run of parentheses and spaces is one pass.
        let mut long = b"1 (".to_vec();
        long.extend(b") (".repeat(100_000));
        long.extend(b") S 1");
        assert_eq!(parse_pid_stat(&long).unwrap().state, 'S');
        assert_eq!(parse_vm_swap("Name:\tx\nVmSwap:\t     512 kB\n"), Some(512));
        assert_eq!(parse_vm_swap("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vm_swap("VmSwap: lots\n"), None);
    }

    #[test]
    fn a_scan_shared_by_threads_reads_each_process_once_and_equals_one_reader() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for pid in 1..=300u32 {
            std::fs::create_dir_all(p.join(pid.to_string())).unwrap();
            let state = if pid % 7 == 0 { 'D' } else { 'S' };
            std::fs::write(
                p.join(format!("{pid}/stat")),
                format!(
                    "{pid} (p{pid}) {state} 1 0 0 0 0 0 0 0 0 0 {pid} 1 0 0 0 0 1 0 5 0 {pid} 0"
                ),
            )
            .unwrap();
        }
        let alone = tasks_except(p, None, false).ok().unwrap().clone();
        assert_eq!(alone.processes, 300);
        assert_eq!(alone.dstate.len(), 42);
        assert_eq!(alone.usage.len(), 300);
        let scan = TaskScan::new(p, None, false).unwrap();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| scan.help());
            }
        });
        let shared = scan.finish();
        assert_eq!(shared, alone);
        // Once finished, nothing is left to read or merge again.
        assert_eq!(scan.finish().processes, 0);
    }

    #[test]
    fn fixture_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("stat"),
            "cpu 1 0 1 10 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0\n",
        )
        .unwrap();
        std::fs::write(p.join("loadavg"), "3.00 2.00 1.00 2/100 9\n").unwrap();
        std::fs::create_dir_all(p.join("100")).unwrap();
        std::fs::write(p.join("100/stat"), "100 (flush-253:0) D 2 0").unwrap();
        std::fs::write(p.join("100/wchan"), "io_schedule").unwrap();
        std::fs::create_dir_all(p.join("101")).unwrap();
        std::fs::write(p.join("101/stat"), "101 (sshd) S 1 0").unwrap();
        // A process that exited between listing and reading.
        std::fs::create_dir_all(p.join("102")).unwrap();
        let cpu = cpu(p);
        assert_eq!(cpu.ok().unwrap().loadavg, [3.0, 2.0, 1.0]);
        let t = tasks(p, false);
        let t = t.ok().unwrap();
        assert_eq!(t.processes, 2);
        assert_eq!(
            t.dstate,
            vec![Task {
                pid: 100,
                command: "flush-253:0".into(),
                wchan: Some("io_schedule".into())
            }]
        );
        // The agent (pid 50 here) and its helper are never counted.
        for (pid, stat) in [
            ("50", "50 (ecs-diag) D 1 0"),
            ("103", "103 (iptables-save) D 50 0"),
        ] {
            std::fs::create_dir_all(p.join(pid)).unwrap();
            std::fs::write(p.join(pid).join("stat"), stat).unwrap();
        }
        let theirs = tasks_except(p, Some(50), false);
        let theirs = theirs.ok().unwrap();
        assert_eq!(theirs.dstate.len(), 1, "{:?}", theirs.dstate);
        assert_eq!(theirs.dstate[0].pid, 100);
        let all = tasks(p, false);
        assert_eq!(
            all.ok().unwrap().dstate.len(),
            3,
            "a fixture root has no own pid"
        );
        // No PSI on this kernel: not an error.
        assert_eq!(pressure(p), Gathered::Ok(None));
        std::fs::create_dir_all(p.join("pressure")).unwrap();
        std::fs::write(
            p.join("pressure/cpu"),
            "some avg10=50.00 avg60=0 avg300=0 total=1\n",
        )
        .unwrap();
        let e = pressure(p);
        assert!(
            matches!(&e, Gathered::Failed(m) if m.contains("pressure/memory")),
            "{e:?}"
        );
        // Unreadable files name themselves.
        let m = memory(p);
        assert!(
            matches!(&m, Gathered::Failed(m) if m.contains("meminfo")),
            "{m:?}"
        );
        std::fs::write(p.join("diskstats"), "garbage\n").unwrap();
        assert!(matches!(disks(p), Gathered::Failed(m) if m.contains("diskstats")));
    }
}
