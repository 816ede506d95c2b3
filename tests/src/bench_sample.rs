//! `bench/sample.sh` runs this: the CPU cost of one sample of every load and drop source
//! (`ecs_diag::sources::sample`: /proc/stat, loadavg, meminfo, vmstat, pressure, diskstats,
//! every /proc/PID/stat, softnet, conntrack, snmp, netlink links + qdiscs), and of the process
//! scan alone, in this network namespace. Prints figures; asserts nothing.
//!
//!   bench-sample [ITERATIONS]

use std::time::Instant;

/// CPU time (user + system) of this process so far, in microseconds.
fn cpu_us() -> f64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a valid rusage for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(r.ru_utime) + tv(r.ru_stime)
}

fn measure(iterations: u32, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm caches
    let (c0, w0) = (cpu_us(), Instant::now());
    for _ in 0..iterations {
        f();
    }
    (
        (cpu_us() - c0) / f64::from(iterations),
        w0.elapsed().as_secs_f64() * 1e6 / f64::from(iterations),
    )
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let config = ecs_diag::config::Config::default();
    let mut interfaces = 0;
    let mut processes = 0;
    let (sample_cpu, sample_wall) = measure(iterations, || {
        let s = ecs_diag::sources::sample(&config);
        interfaces = s.links.as_ref().map_or(0, Vec::len);
        processes = s.tasks.as_ref().map_or(0, |t| t.processes);
    });
    let proc = std::path::Path::new("/proc");
    let (tasks_cpu, _) = measure(iterations, || {
        let _ = ecs_diag::sources::load::tasks(proc, false);
    });
    // With swap in use every process's status is read as well.
    let (swap_cpu, _) = measure(iterations, || {
        let _ = ecs_diag::sources::load::tasks(proc, true);
    });
    println!(
        "interfaces={interfaces} processes={processes} sample_cpu_us={sample_cpu:.0} sample_wall_us={sample_wall:.0} process_scan_cpu_us={tasks_cpu:.0} process_scan_with_swap_cpu_us={swap_cpu:.0} rest_cpu_us={:.0}",
        sample_cpu - tasks_cpu
    );
}
