//! Counters of one moment (CPU, memory, disks, tasks, qdiscs, softnet, conntrack, ICMP) and
//! their increase over a window: every rate a check judges is computed by these methods.

use serde::{Deserialize, Serialize};

use super::network::Link;
use super::Snapshot;

/// A counter's increase from `before` to `now`. `wraps32`: the kernel keeps it in 32 bits, so
/// a smaller value below 2^32 is one wrap, not a reset. None: it went backwards (a reset, or
/// another machine's sample).
pub fn increase(now: u64, before: u64, wraps32: bool) -> Option<u64> {
    if now >= before {
        Some(now - before)
    } else if wraps32 && before <= u64::from(u32::MAX) && now <= u64::from(u32::MAX) {
        Some(now + (u64::from(u32::MAX) - before) + 1)
    } else {
        None
    }
}

/// The counters of one moment that rates are computed from: kept from one refresh to the next
/// in `serve`, taken before the window in `check --window` and on each tick of `watch`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Sample {
    pub at_ms: u64,
    pub cpu: Option<CpuSample>,
    pub memory: Option<MemorySample>,
    pub disks: Option<Vec<Disk>>,
    pub tasks: Option<TaskSample>,
    /// Links with their counters (matched by index and name: a recreated link is a new one).
    pub links: Option<Vec<Link>>,
    pub qdiscs: Option<Vec<Qdisc>>,
    pub softnet: Option<Vec<SoftnetCpu>>,
    #[serde(default)]
    pub conntrack: Option<Conntrack>,
    pub icmp: Option<IcmpCounters>,
}

impl Sample {
    /// The counters of a snapshot, for the next one to compare with.
    pub fn of(s: &Snapshot) -> Sample {
        Sample {
            at_ms: s.at_ms,
            cpu: s.cpu.ok().ok().cloned(),
            memory: s.memory.ok().ok().cloned(),
            disks: s.disks.ok().ok().cloned(),
            tasks: s.tasks.ok().ok().cloned(),
            links: s.links.ok().ok().cloned(),
            qdiscs: s.qdiscs.ok().ok().cloned(),
            softnet: s.softnet.ok().ok().cloned(),
            conntrack: s.conntrack.ok().ok().cloned().flatten(),
            icmp: s.icmp.ok().ok().cloned(),
        }
    }

    /// Seconds between this sample and a later one (None if not later).
    pub fn seconds_to(&self, later_ms: u64) -> Option<f64> {
        (later_ms > self.at_ms).then(|| (later_ms - self.at_ms) as f64 / 1000.0)
    }
}

/// CPU time in clock ticks (USER_HZ) since boot, as `/proc/stat` counts it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    /// Time the hypervisor ran something else while this vCPU wanted to run.
    pub steal: u64,
}

impl CpuTimes {
    /// Every tick (guest time is already inside user/nice).
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
    /// Ticks spent doing work (not idle, not waiting for I/O, not stolen).
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }
    /// `self - earlier`, field by field; None when any counter went backwards (CPU went
    /// offline and back, or a different machine's sample).
    pub fn since(&self, earlier: &CpuTimes) -> Option<CpuTimes> {
        Some(CpuTimes {
            user: self.user.checked_sub(earlier.user)?,
            nice: self.nice.checked_sub(earlier.nice)?,
            system: self.system.checked_sub(earlier.system)?,
            idle: self.idle.checked_sub(earlier.idle)?,
            iowait: self.iowait.checked_sub(earlier.iowait)?,
            irq: self.irq.checked_sub(earlier.irq)?,
            softirq: self.softirq.checked_sub(earlier.softirq)?,
            steal: self.steal.checked_sub(earlier.steal)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CpuSample {
    pub total: CpuTimes,
    /// By CPU number (`cpu0`, `cpu1`, ...; offline CPUs are absent).
    pub per_cpu: Vec<(u32, CpuTimes)>,
    /// 1, 5 and 15 minute load averages.
    pub loadavg: [f64; 3],
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MemorySample {
    pub total_kb: u64,
    /// None on kernels before 3.14 (no MemAvailable).
    pub available_kb: Option<u64>,
    pub swap_total_kb: u64,
    pub swap_free_kb: u64,
    /// Pages swapped in and out since boot.
    pub swap_in: u64,
    pub swap_out: u64,
    /// None on kernels before 4.13 (no `oom_kill` in vmstat).
    pub oom_kills: Option<u64>,
}

/// One line of a `/proc/pressure` file: share of time some (or all) tasks were stalled.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct PressureLine {
    pub avg10: f64,
    pub avg60: f64,
    /// Microseconds stalled since boot.
    pub total_us: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct Pressure {
    pub cpu_some: Option<PressureLine>,
    pub memory_some: Option<PressureLine>,
    pub memory_full: Option<PressureLine>,
    pub io_some: Option<PressureLine>,
    pub io_full: Option<PressureLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Disk {
    pub name: String,
    pub reads: u64,
    pub writes: u64,
    /// Milliseconds the device had I/O in flight (a 32-bit counter in the kernel: it wraps).
    pub io_ticks_ms: u64,
    /// Requests in flight now.
    pub in_flight: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TaskSample {
    /// Processes seen.
    pub processes: u64,
    /// Those in uninterruptible sleep.
    pub dstate: Vec<Task>,
    /// Every process's CPU time and memory, for naming the top users (load.cpu, load.memory).
    /// Absent in snapshots written before it was gathered.
    #[serde(default)]
    pub usage: Vec<TaskUsage>,
    /// Clock ticks per second (USER_HZ) the CPU times are counted in.
    #[serde(default)]
    pub ticks_per_s: u64,
}

/// One process's CPU time and memory (`/proc/PID/stat`, `/proc/PID/status`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TaskUsage {
    pub pid: u32,
    pub command: String,
    /// When it started (ticks after boot): a pid reused within a window is another process.
    pub start_ticks: u64,
    /// User plus system CPU time, in ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    /// `VmSwap`; read only while the system has swap in use.
    pub swap_kib: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub pid: u32,
    pub command: String,
    /// The kernel function it sleeps in (`/proc/PID/wchan`), where readable.
    pub wchan: Option<String>,
}

/// A queueing discipline and its counters (netlink tc stats).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Qdisc {
    pub ifindex: u32,
    pub kind: String,
    /// `root` or the parent handle as `major:minor`.
    pub parent: String,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub backlog: u64,
}

/// One CPU's line of `/proc/net/softnet_stat`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SoftnetCpu {
    pub processed: u64,
    /// Backlog full: packets dropped before the stack saw them.
    pub dropped: u64,
    /// The softirq ran out of budget with work left.
    pub time_squeeze: u64,
}

/// Connection tracking table fill and failures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Conntrack {
    pub count: u64,
    pub max: u64,
    pub insert_failed: u64,
    pub drop: u64,
    pub early_drop: u64,
}

/// ICMP counters from `/proc/net/snmp` and `/proc/net/snmp6`, at one moment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct IcmpCounters {
    /// Milliseconds since the Unix epoch when read.
    pub at_ms: u64,
    pub in_msgs: u64,
    pub in_errors: u64,
    pub in_echos: u64,
    pub out_echo_reps: u64,
    /// Kernels ≥ 6.0 only.
    pub out_rate_limit_global: Option<u64>,
    pub out_rate_limit_host: Option<u64>,
    pub in_echos6: Option<u64>,
    pub out_echo_replies6: Option<u64>,
    /// `Tcp: ActiveOpens`: outbound TCP connections attempted since boot (a flood or scan from
    /// a compromised instance shows here first).
    #[serde(default)]
    pub tcp_active_opens: Option<u64>,
    /// Milliseconds since boot when read (`/proc/uptime`): turns since-boot counts into an
    /// average rate.
    #[serde(default)]
    pub uptime_ms: Option<u64>,
}

impl MemorySample {
    /// Pages swapped in and out since `before`; None if the counters went backwards.
    pub fn swap_pages_since(&self, before: &MemorySample) -> Option<u64> {
        Some(
            increase(self.swap_in, before.swap_in, false)?
                + increase(self.swap_out, before.swap_out, false)?,
        )
    }

    /// OOM kills since `before`; None where the kernel does not count them or they reset.
    pub fn oom_kills_since(&self, before: &MemorySample) -> Option<u64> {
        increase(self.oom_kills?, before.oom_kills?, false)
    }
}

impl Disk {
    /// Share of `window_s` the disk had I/O in flight since `before` (its tick counter is
    /// 32-bit and wraps); None if it reset.
    pub fn busy_pct_since(&self, before: &Disk, window_s: f64) -> Option<f64> {
        let ticks = increase(self.io_ticks_ms, before.io_ticks_ms, true)?;
        Some((ticks as f64 / (window_s * 1000.0) * 100.0).min(100.0))
    }
}

impl Qdisc {
    /// This qdisc's counters since `before` (the same qdisc earlier); None if they reset.
    pub fn since(&self, before: &Qdisc) -> Option<Qdisc> {
        Some(Qdisc {
            packets: increase(self.packets, before.packets, false)?,
            drops: increase(self.drops, before.drops, false)?,
            overlimits: increase(self.overlimits, before.overlimits, false)?,
            ..self.clone()
        })
    }
}

impl SoftnetCpu {
    /// One CPU's counters since `before`. They are 32-bit and wrap; one that went backwards
    /// further than a wrap counts as 0.
    pub fn since(&self, before: &SoftnetCpu) -> SoftnetCpu {
        let d = |now, b| increase(now, b, true).unwrap_or(0);
        SoftnetCpu {
            processed: d(self.processed, before.processed),
            dropped: d(self.dropped, before.dropped),
            time_squeeze: d(self.time_squeeze, before.time_squeeze),
        }
    }
}

/// Connection-tracking failures over a window (or since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConntrackFailures {
    pub drop: u64,
    pub early_drop: u64,
    pub insert_failed: u64,
}

impl Conntrack {
    /// Failures since boot.
    pub fn failures(&self) -> ConntrackFailures {
        ConntrackFailures {
            drop: self.drop,
            early_drop: self.early_drop,
            insert_failed: self.insert_failed,
        }
    }

    /// Failures since `before` (a counter that went backwards counts 0).
    pub fn failures_since(&self, before: &Conntrack) -> ConntrackFailures {
        ConntrackFailures {
            drop: self.drop.saturating_sub(before.drop),
            early_drop: self.early_drop.saturating_sub(before.early_drop),
            insert_failed: self.insert_failed.saturating_sub(before.insert_failed),
        }
    }
}

/// Echo traffic the ICMP layers counted over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EchoCounts {
    /// IPv4 echo requests received (`InEchos`).
    pub requests: u64,
    /// IPv4 echo replies sent (`OutEchoReps`).
    pub replies: u64,
    /// ICMPv6 echo requests and replies, where the kernel counts them.
    pub requests6: Option<u64>,
    pub replies6: Option<u64>,
    /// Replies suppressed by the per-host rate limit (kernels ≥ 6.0).
    pub rate_limited_host: Option<u64>,
    pub in_errors: u64,
}

impl EchoCounts {
    /// IPv4 and IPv6 requests together.
    pub fn all_requests(&self) -> u64 {
        self.requests + self.requests6.unwrap_or(0)
    }
    /// IPv4 and IPv6 replies together.
    pub fn all_replies(&self) -> u64 {
        self.replies + self.replies6.unwrap_or(0)
    }
}

impl IcmpCounters {
    /// The counts since boot.
    pub fn since_boot(&self) -> EchoCounts {
        EchoCounts {
            requests: self.in_echos,
            replies: self.out_echo_reps,
            requests6: self.in_echos6,
            replies6: self.out_echo_replies6,
            rate_limited_host: self.out_rate_limit_host,
            in_errors: self.in_errors,
        }
    }

    /// The counts since `before`. None when the IPv4 echo counters went backwards (a counter
    /// reset: judge again on the next sample); other counters that went backwards count 0,
    /// and one that only this sample has is not known for the window.
    pub fn since(&self, before: &IcmpCounters) -> Option<EchoCounts> {
        let opt = |n: Option<u64>, b: Option<u64>| Some(n?.saturating_sub(b?));
        Some(EchoCounts {
            requests: increase(self.in_echos, before.in_echos, false)?,
            replies: increase(self.out_echo_reps, before.out_echo_reps, false)?,
            requests6: opt(self.in_echos6, before.in_echos6),
            replies6: opt(self.out_echo_replies6, before.out_echo_replies6),
            rate_limited_host: opt(self.out_rate_limit_host, before.out_rate_limit_host),
            in_errors: self.in_errors.saturating_sub(before.in_errors),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increase_handles_wrap_and_reset() {
        assert_eq!(increase(10, 4, false), Some(6));
        assert_eq!(increase(4, 10, false), None);
        assert_eq!(increase(4, u64::from(u32::MAX), true), Some(5));
        assert_eq!(increase(4, u64::from(u32::MAX) + 9, true), None);
    }

    #[test]
    fn deltas_of_each_sample_type() {
        let q = |p, d| Qdisc {
            kind: "tbf".into(),
            packets: p,
            drops: d,
            ..Default::default()
        };
        assert_eq!(
            q(10, 4).since(&q(3, 1)).map(|d| (d.packets, d.drops)),
            Some((7, 3))
        );
        assert_eq!(q(1, 0).since(&q(3, 1)), None);
        let sn = |d| SoftnetCpu {
            dropped: d,
            ..Default::default()
        };
        assert_eq!(sn(2).since(&sn(u64::from(u32::MAX))).dropped, 3);
        let disk = |t| Disk {
            io_ticks_ms: t,
            ..Default::default()
        };
        assert_eq!(disk(6000).busy_pct_since(&disk(1000), 10.0), Some(50.0));
        let mem = |i, o, k| MemorySample {
            swap_in: i,
            swap_out: o,
            oom_kills: k,
            ..Default::default()
        };
        assert_eq!(
            mem(10, 5, Some(2)).swap_pages_since(&mem(4, 1, Some(1))),
            Some(10)
        );
        assert_eq!(mem(10, 5, Some(2)).oom_kills_since(&mem(4, 1, None)), None);
        let ct = |d| Conntrack {
            drop: d,
            ..Default::default()
        };
        assert_eq!(ct(5).failures_since(&ct(2)).drop, 3);
        assert_eq!(ct(1).failures_since(&ct(2)).drop, 0);
        let ic = |at_ms, e, r, e6| IcmpCounters {
            at_ms,
            in_echos: e,
            out_echo_reps: r,
            in_echos6: e6,
            ..Default::default()
        };
        let d = ic(2, 10, 7, Some(4)).since(&ic(1, 4, 4, Some(1))).unwrap();
        assert_eq!((d.requests, d.replies, d.requests6), (6, 3, Some(3)));
        assert_eq!(d.all_requests(), 9);
        assert_eq!(ic(2, 1, 7, None).since(&ic(1, 4, 4, None)), None);
        assert_eq!(ic(2, 10, 7, Some(4)).since_boot().requests6, Some(4));
    }
}
