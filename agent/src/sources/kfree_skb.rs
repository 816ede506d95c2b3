//! The kernel's own account of dropped packets for `watch`: the `skb:kfree_skb` tracepoint
//! with its drop reason (kernels ≥ 5.17), read through tracefs — no eBPF. A private ftrace
//! instance (`instances/ecs-diag-PID`) keeps the system's own tracing untouched; the event is
//! filtered in the kernel to IPv4 and IPv6 packets (the tracepoint carries no addresses, so
//! drops are counted per reason and kernel function, not per client). Where tracefs is not
//! mounted it is mounted on a private directory for the watch and unmounted afterwards. The
//! instance is removed when the trace stops (also on drop), and one left by a killed run is
//! removed by the next.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Packets the kernel dropped for one reason in one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelDrop {
    /// The kernel's drop reason (`IP_RPFILTER`, `NETFILTER_DROP`, ...).
    pub reason: String,
    /// The function that dropped it (`ip_rcv_finish_core`), or its address on kernels that
    /// print no symbol.
    pub location: String,
    /// `IPv4` or `IPv6`.
    pub protocol: &'static str,
    pub packets: u64,
}

/// One parsed trace line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    pub reason: String,
    pub location: String,
    pub protocol: u16,
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Distinct (reason, location, protocol) kept; more are counted under `OTHER`.
const MAX_KINDS: usize = 64;
/// Bytes read per drain: the per-CPU buffers are small, and a flood must not stall a tick.
const MAX_DRAIN: usize = 1 << 20;
/// A trace line is about 150 bytes; a longer partial line is garbage and is discarded.
const MAX_LINE: usize = 4096;

pub struct KfreeSkbTrace {
    instance: PathBuf,
    /// The private tracefs mount point, when it was not mounted before.
    mounted: Option<PathBuf>,
    pipe: Option<std::fs::File>,
    partial: Vec<u8>,
    counts: BTreeMap<(String, String, u16), u64>,
    /// Events the kernel lost (buffer full) — reported, not guessed.
    pub lost: u64,
}

/// Why drop reasons cannot be read from this tracefs, from its `skb/kfree_skb/format`.
pub fn reasons_supported(tracefs: &Path) -> Result<(), String> {
    let format = tracefs.join("events/skb/kfree_skb/format");
    let text = std::fs::read_to_string(&format).map_err(|e| {
        format!(
            "this kernel has no skb:kfree_skb tracepoint ({}: {e})",
            format.display()
        )
    })?;
    if text.contains("skb_drop_reason reason;") || text.contains("reason: %s") {
        Ok(())
    } else {
        Err(format!(
            "kernel {} has no drop reasons in skb:kfree_skb (added in 5.17)",
            kernel_release()
        ))
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|_| "(unknown release)".to_string())
}

/// Where tracefs is mounted, from `/proc/self/mounts`.
fn mounted_tracefs() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_ascii_whitespace();
        let (_, dir, kind) = (f.next()?, f.next()?, f.next()?);
        (kind == "tracefs").then(|| PathBuf::from(dir.replace("\\040", " ")))
    })
}

fn mount_tracefs(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let target = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{} has a NUL byte", dir.display()))?;
    // SAFETY: every pointer is a valid NUL-terminated string; data may be null.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = std::io::Error::last_os_error();
        let _ = std::fs::remove_dir(dir);
        Err(format!(
            "tracefs is not mounted and mounting it on {} failed: {e} (needs root: CAP_SYS_ADMIN)",
            dir.display()
        ))
    }
}

fn unmount(dir: &Path) {
    if let Ok(target) = CString::new(dir.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid NUL-terminated path.
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

/// Removes `instances/ecs-diag-PID` directories whose process is gone.
fn remove_stale_instances(tracefs: &Path) {
    let Ok(entries) = std::fs::read_dir(tracefs.join("instances")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ecs-diag-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

impl KfreeSkbTrace {
    /// Starts tracing dropped IPv4/IPv6 packets. Err says why drop reasons are unavailable.
    pub fn start() -> Result<KfreeSkbTrace, String> {
        let (tracefs, mounted) = match mounted_tracefs() {
            Some(t) => (t, None),
            None => {
                let dir = PathBuf::from(format!("/run/ecs-diag-tracefs.{}", std::process::id()));
                mount_tracefs(&dir)?;
                (dir.clone(), Some(dir))
            }
        };
        let cleanup = |e: String| {
            if let Some(d) = &mounted {
                unmount(d);
            }
            e
        };
        reasons_supported(&tracefs).map_err(cleanup)?;
        remove_stale_instances(&tracefs);
        let instance = tracefs
            .join("instances")
            .join(format!("ecs-diag-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&instance) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(cleanup(format!(
                    "cannot create the ftrace instance {}: {e}",
                    instance.display()
                )));
            }
        }
        let mut trace = KfreeSkbTrace {
            instance,
            mounted,
            pipe: None,
            partial: Vec::new(),
            counts: BTreeMap::new(),
            lost: 0,
        };
        // From here on, dropping `trace` removes the instance (and the mount).
        let event = trace.instance.join("events/skb/kfree_skb");
        // Small per-CPU buffers: a few seconds of drops between two reads.
        write(&trace.instance.join("buffer_size_kb"), "256")?;
        write(
            &event.join("filter"),
            &format!("protocol == {ETH_P_IP} || protocol == {ETH_P_IPV6}"),
        )?;
        write(&event.join("enable"), "1")?;
        let pipe_path = trace.instance.join("trace_pipe");
        let pipe = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&pipe_path)
            .map_err(|e| format!("cannot open {}: {e}", pipe_path.display()))?;
        trace.pipe = Some(pipe);
        Ok(trace)
    }

    /// Reads what the kernel traced since the last call (bounded per call).
    pub fn drain(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        let mut read = 0;
        while read < MAX_DRAIN {
            let Some(pipe) = self.pipe.as_mut() else {
                return;
            };
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    read += n;
                    self.partial.extend_from_slice(&buf[..n]);
                    self.take_lines();
                }
                // EAGAIN: nothing more now; any other error ends this drain.
                Err(_) => break,
            }
        }
    }

    fn take_lines(&mut self) {
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&self.partial[start..start + end]).into_owned();
            start += end + 1;
            if let Some(lost) = parse_lost(&line) {
                self.lost = self.lost.saturating_add(lost);
            } else if let Some(t) = parse_line(&line) {
                let key = (t.reason, t.location, t.protocol);
                let key = if self.counts.len() < MAX_KINDS || self.counts.contains_key(&key) {
                    key
                } else {
                    (
                        "OTHER".to_string(),
                        "(more kinds than kept)".to_string(),
                        t.protocol,
                    )
                };
                *self.counts.entry(key).or_default() += 1;
            }
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
        }
    }

    /// What was counted so far, the most packets first.
    pub fn drops_so_far(&self) -> Vec<KernelDrop> {
        let mut drops: Vec<KernelDrop> = self
            .counts
            .iter()
            .map(|((reason, location, protocol), n)| KernelDrop {
                reason: reason.clone(),
                location: location.clone(),
                protocol: if *protocol == ETH_P_IPV6 {
                    "IPv6"
                } else {
                    "IPv4"
                },
                packets: *n,
            })
            .collect();
        drops.sort_by_key(|d| std::cmp::Reverse(d.packets));
        drops
    }

    /// Reads the rest, removes the instance and returns the drops.
    pub fn stop(mut self) -> Vec<KernelDrop> {
        self.drain();
        self.drops_so_far()
    }
}

impl Drop for KfreeSkbTrace {
    fn drop(&mut self) {
        // The pipe must be closed before the instance can be removed.
        self.pipe = None;
        let _ = std::fs::write(self.instance.join("events/skb/kfree_skb/enable"), "0");
        let _ = std::fs::remove_dir(&self.instance);
        if let Some(d) = &self.mounted {
            unmount(d);
        }
    }
}

/// `CPU:1 [LOST 12 EVENTS]`: events the kernel could not buffer.
pub fn parse_lost(line: &str) -> Option<u64> {
    let rest = line.split_once("[LOST ")?.1;
    rest.split_ascii_whitespace().next()?.parse().ok()
}

/// `<task>-<pid> [cpu] flags ts: kfree_skb: skbaddr=… rx_sk=… protocol=2048
/// location=ip_rcv_finish_core+0x1a0/0x4b0 reason: IP_RPFILTER`; older kernels print
/// `location=` as an address. One pass over the line.
pub fn parse_line(line: &str) -> Option<TraceLine> {
    let fields = line.split_once("kfree_skb: ")?.1;
    let (fields, reason) = fields.split_once(" reason: ")?;
    let reason = reason.trim();
    if reason.is_empty()
        || !reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    let mut protocol = None;
    let mut location = None;
    for f in fields.split_ascii_whitespace() {
        if let Some(p) = f.strip_prefix("protocol=") {
            protocol = p.parse::<u16>().ok();
        } else if let Some(l) = f.strip_prefix("location=") {
            // The function, without `+offset/size`: one entry per function.
            location = Some(l.split('+').next().unwrap_or(l).to_string());
        }
    }
    Some(TraceLine {
        reason: reason.to_string(),
        location: location?,
        protocol: protocol?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_of_old_and_new_kernels() {
        let new = "          <idle>-0       [001] ..s2.  5621.034351: kfree_skb: skbaddr=00000000a1b2c3d4 rx_sk=0000000000000000 protocol=2048 location=ip_rcv_finish_core+0x1a0/0x4b0 reason: IP_RPFILTER";
        assert_eq!(
            parse_line(new),
            Some(TraceLine {
                reason: "IP_RPFILTER".into(),
                location: "ip_rcv_finish_core".into(),
                protocol: 2048
            })
        );
        // 5.17: no rx_sk, the location an address.
        let old = " ping-77 [000] ..s1. 12.5: kfree_skb: skbaddr=ffff8880 protocol=34525 location=ffffffff81a0b2c3 reason: NETFILTER_DROP";
        let t = parse_line(old).unwrap();
        assert_eq!(
            (t.reason.as_str(), t.location.as_str(), t.protocol),
            ("NETFILTER_DROP", "ffffffff81a0b2c3", 34525)
        );
        // Before 5.17: no reason.
        assert_eq!(
            parse_line(" x-1 [000] 1.0: kfree_skb: skbaddr=1 protocol=2048 location=2"),
            None
        );
        assert_eq!(parse_line("garbage"), None);
        assert_eq!(
            parse_line("kfree_skb: protocol=x location=f reason: A"),
            None
        );
        assert_eq!(
            parse_line("kfree_skb: protocol=1 location=f reason: A B"),
            None
        );
        assert_eq!(parse_lost("CPU:1 [LOST 12 EVENTS]"), Some(12));
        assert_eq!(parse_lost("CPU:1 [LOST x EVENTS]"), None);
        // Pathological: a long line of separators is one pass.
        let long =
            "kfree_skb: ".to_string() + &"protocol=1 location=+ ".repeat(50_000) + " reason: X";
        assert_eq!(parse_line(&long).unwrap().reason, "X");
    }

    #[test]
    fn lines_split_across_reads_and_bounded_kinds() {
        let mut t = KfreeSkbTrace {
            instance: PathBuf::from("/nonexistent/ecs-diag-test"),
            mounted: None,
            pipe: None,
            partial: Vec::new(),
            counts: BTreeMap::new(),
            lost: 0,
        };
        let line = "a-1 [0] 1: kfree_skb: skbaddr=1 protocol=2048 location=ip_rcv_finish_core+0x1/0x2 reason: IP_RPFILTER\n";
        let (a, b) = line.split_at(40);
        t.partial.extend_from_slice(a.as_bytes());
        t.take_lines();
        assert!(t.counts.is_empty());
        t.partial.extend_from_slice(b.as_bytes());
        t.partial.extend_from_slice(line.as_bytes());
        t.partial.extend_from_slice(b"CPU:0 [LOST 3 EVENTS]\n");
        t.take_lines();
        assert_eq!(
            t.drops_so_far(),
            vec![KernelDrop {
                reason: "IP_RPFILTER".into(),
                location: "ip_rcv_finish_core".into(),
                protocol: "IPv4",
                packets: 2
            }]
        );
        assert_eq!(t.lost, 3);
        for i in 0..200 {
            t.partial.extend_from_slice(
                format!("kfree_skb: protocol=34525 location=f{i} reason: R\n").as_bytes(),
            );
        }
        t.take_lines();
        let drops = t.drops_so_far();
        assert_eq!(drops.len(), MAX_KINDS + 1, "{drops:?}");
        assert_eq!(drops.iter().map(|d| d.packets).sum::<u64>(), 202);
        // A partial line that never ends is dropped, not kept growing.
        t.partial.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
        t.take_lines();
        assert!(t.partial.is_empty());
    }

    #[test]
    fn kernels_without_the_tracepoint_or_reasons_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = reasons_supported(dir.path()).unwrap_err();
        assert!(e.contains("no skb:kfree_skb tracepoint"), "{e}");
        let format = dir.path().join("events/skb/kfree_skb");
        std::fs::create_dir_all(&format).unwrap();
        // 5.4's format: no reason.
        std::fs::write(
            format.join("format"),
            "name: kfree_skb\nformat:\n\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:unsigned short protocol;\toffset:24;\tsize:2;\tsigned:0;\n\nprint fmt: \"skbaddr=%p protocol=%u location=%p\", REC->skbaddr, REC->protocol, REC->location\n",
        )
        .unwrap();
        let e = reasons_supported(dir.path()).unwrap_err();
        assert!(e.contains("added in 5.17"), "{e}");
        std::fs::write(
            format.join("format"),
            "\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;\n",
        )
        .unwrap();
        assert_eq!(reasons_supported(dir.path()), Ok(()));
    }
}
