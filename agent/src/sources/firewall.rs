//! Reads the guest's iptables and ip6tables rulesets, both backends: `iptables-nft-save -c` for
//! rules made through iptables-nft, and `iptables-legacy-save -c` only where the kernel has
//! legacy tables (`/proc/net/ip_tables_names` is not empty). Each tool runs with a fixed argv,
//! a timeout and its exit status and stderr checked; a missing tool or a permission error is
//! recorded as the reason that ruleset is unknown.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::firewall::iptables::{parse_save, Table};
use crate::snapshot::Gathered;

const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// One saved ruleset: which backend and family, read by which tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ruleset {
    /// `nft` or `legacy`.
    pub backend: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub tool: String,
    pub tables: Gathered<Vec<Table>>,
}

/// Runs a tool with a fixed argv; stdout on success, else an error naming the tool and what it
/// said. `Ok(None)` when the tool is not installed.
pub fn run_tool(argv: &[&str], timeout: Duration) -> Result<Option<String>, String> {
    let mut child = match Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot run {}: {e}", argv[0])),
    };
    // Drain both pipes on threads so a large ruleset cannot fill a pipe and stall the tool.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let started = Instant::now();
    let mut poll = Duration::from_micros(100);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {timeout:?}",
                    argv.join(" ")
                ));
            }
            Ok(None) => {
                // Most tools finish in a few milliseconds: poll fast first, then back off.
                std::thread::sleep(poll);
                poll = (poll * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("waiting for {}: {e}", argv[0])),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default())
        .trim()
        .to_string();
    if !status.success() {
        return Err(format!("{} failed ({status}): {stderr}", argv.join(" ")));
    }
    String::from_utf8(stdout)
        .map(Some)
        .map_err(|_| format!("{} printed invalid UTF-8", argv[0]))
}

fn read_one(backend: &str, family: &str, candidates: &[&str]) -> Option<Ruleset> {
    for tool in candidates {
        match run_tool(&[tool, "-c"], TOOL_TIMEOUT) {
            Ok(None) => continue,
            Ok(Some(text)) => {
                return Some(Ruleset {
                    backend: backend.into(),
                    family: family.into(),
                    tool: tool.to_string(),
                    tables: match parse_save(&text) {
                        Ok(t) => Gathered::Ok(t),
                        Err(e) => Gathered::Failed(format!("{tool} output: {e}")),
                    },
                })
            }
            Err(e) => {
                return Some(Ruleset {
                    backend: backend.into(),
                    family: family.into(),
                    tool: tool.to_string(),
                    tables: Gathered::Failed(e),
                })
            }
        }
    }
    None
}

/// The native nftables ruleset (`nft -j list ruleset`); `Ok(None)` when nft is not installed.
pub fn read_nft() -> Gathered<Option<crate::firewall::nft::NftRuleset>> {
    match run_tool(&["nft", "-j", "list", "ruleset"], TOOL_TIMEOUT) {
        Ok(None) => Gathered::Ok(None),
        Ok(Some(text)) => match crate::firewall::nft::parse_json(&text) {
            Ok(rs) => Gathered::Ok(Some(rs)),
            Err(e) => Gathered::Failed(format!("nft -j list ruleset: {e}")),
        },
        Err(e) => Gathered::Failed(e),
    }
}

/// Whether the kernel has legacy tables for this family (cheap: no tool runs).
fn legacy_in_use(proc_root: &Path, names_file: &str) -> bool {
    std::fs::read_to_string(proc_root.join("net").join(names_file))
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false)
}

/// Every ruleset that can hold rules on this machine. Fails as a whole only when no iptables
/// tool is installed at all.
pub fn read(proc_root: &Path) -> Gathered<Vec<Ruleset>> {
    // The two families are independent: read them side by side.
    let per_family = |family: &str, nft: &str, legacy: &str, plain: &str, names: &str| {
        let mut out = Vec::new();
        if let Some(r) = read_one("nft", family, &[nft]) {
            out.push(r);
        }
        if legacy_in_use(proc_root, names) {
            // Older distributions ship only the legacy tool, as plain iptables-save.
            out.extend(read_one("legacy", family, &[legacy, plain]));
        } else if out.is_empty() {
            // Neither variant-specific tool: a plain iptables-save is the only reader.
            out.extend(read_one("unknown", family, &[plain]));
        }
        out
    };
    let out: Vec<Ruleset> = std::thread::scope(|scope| {
        let v6 = scope.spawn(|| {
            per_family(
                "ipv6",
                "ip6tables-nft-save",
                "ip6tables-legacy-save",
                "ip6tables-save",
                "ip6_tables_names",
            )
        });
        let mut v4 = per_family(
            "ipv4",
            "iptables-nft-save",
            "iptables-legacy-save",
            "iptables-save",
            "ip_tables_names",
        );
        v4.extend(v6.join().unwrap_or_default());
        v4
    });
    let any_tool = !out.is_empty();
    if !any_tool {
        return Gathered::Failed(
            "no iptables-save is installed (package iptables): the firewall rules cannot be read"
                .to_string(),
        );
    }
    Gathered::Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_runner_reports_status_stderr_and_timeouts() {
        assert_eq!(
            run_tool(&["true"], TOOL_TIMEOUT).unwrap().as_deref(),
            Some("")
        );
        assert_eq!(
            run_tool(&["ecs-diag-no-such-tool"], TOOL_TIMEOUT).unwrap(),
            None
        );
        let e = run_tool(
            &[
                "sh",
                "-c",
                "echo 'Permission denied (you must be root)' >&2; exit 4",
            ],
            TOOL_TIMEOUT,
        )
        .unwrap_err();
        assert!(
            e.contains("you must be root") && e.contains("exit status: 4"),
            "{e}"
        );
        let started = Instant::now();
        let e = run_tool(&["sleep", "5"], Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        // A large output does not stall on a full pipe.
        let big = run_tool(&["sh", "-c", "yes x | head -c 1000000"], TOOL_TIMEOUT)
            .unwrap()
            .unwrap();
        assert_eq!(big.len(), 1_000_000);
    }

    #[test]
    fn legacy_signal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/ip_tables_names"), "filter\n").unwrap();
        std::fs::write(dir.path().join("net/ip6_tables_names"), "").unwrap();
        assert!(legacy_in_use(dir.path(), "ip_tables_names"));
        assert!(!legacy_in_use(dir.path(), "ip6_tables_names"));
        assert!(!legacy_in_use(Path::new("/nonexistent"), "ip_tables_names"));
    }
}
