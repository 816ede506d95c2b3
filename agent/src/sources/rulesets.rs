//! Reads the guest's iptables and ip6tables rulesets, both backends: `iptables-nft-save -c` for
//! rules made through iptables-nft, and `iptables-legacy-save -c -t TABLE` for each legacy table
//! the kernel lists in `/proc/net/ip_tables_names` (root-only: the packaged unit hands it to the
//! unprivileged daemon, `sources::held_files`). Each tool runs with a fixed argv,
//! a timeout and its exit status and stderr checked; a missing tool or a permission error is
//! recorded as the reason that ruleset is unknown.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ruleset::iptables::SaveParser;
use crate::snapshot::{Denied, Gathered};

const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::snapshot::Ruleset;

/// Why a tool gave no answer. Each renders as one line: a tool's stderr is folded onto it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The tool said it lacks privilege ("Permission denied", "Operation not permitted").
    #[error("{tool} needs {needs} — run as root")]
    Denied { tool: String, needs: &'static str },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        /// The exit code, where it exited (not killed by a signal).
        code: Option<i32>,
        stderr: String,
    },
    #[error("{command} did not finish within {timeout:?}")]
    TimedOut { command: String, timeout: Duration },
    /// Started, but its output could not be read or parsed.
    #[error("{tool} output: {message}")]
    Output { tool: String, message: String },
    #[error("cannot run {tool}: {message}")]
    Spawn { tool: String, message: String },
}

impl ToolError {
    /// The privilege record for the snapshot, when this is a lack of privilege.
    pub fn denied(&self, source: &str) -> Option<Denied> {
        match self {
            ToolError::Denied { tool, needs } => Some(Denied {
                source: source.to_string(),
                what: tool.clone(),
                needs: needs.to_string(),
            }),
            _ => None,
        }
    }
}

/// The capabilities a ruleset tool needs: CAP_NET_ADMIN for all, and CAP_NET_RAW too for the
/// legacy tools (they read the kernel's tables through a raw socket).
fn needs(tool: &str) -> &'static str {
    let name = tool.rsplit('/').next().unwrap_or(tool);
    if name.contains("legacy") || name == "iptables-save" || name == "ip6tables-save" {
        "CAP_NET_ADMIN and CAP_NET_RAW"
    } else {
        "CAP_NET_ADMIN"
    }
}

/// Whether a failed tool's stderr says it lacked privilege (iptables: "Permission denied (you
/// must be root)"; nft and ipset: "Operation not permitted").
fn says_denied(stderr: &str) -> bool {
    let e = stderr.to_ascii_lowercase();
    e.contains("permission denied")
        || e.contains("operation not permitted")
        || e.contains("you must be root")
}

/// A tool's stderr on one line, at most 300 characters: it goes into one-line summaries.
fn one_line(stderr: &str) -> String {
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    match joined.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}

/// Runs a tool with a fixed argv and hands each line of its stdout to `on_line` as it
/// arrives (so parsing overlaps the tool's own work). `Ok(false)` when the tool is not
/// installed. A failing exit status, a timeout or an `on_line` error is an error naming the
/// tool; stdout is always drained so the tool never blocks on a full pipe.
pub fn run_tool_lines(
    argv: &[&str],
    timeout: Duration,
    mut on_line: impl FnMut(&str) -> Result<(), String>,
) -> Result<bool, ToolError> {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Mutex};

    // Fixed system directories only (sources::tools), never $PATH.
    let Some(program) = super::tools::resolve(argv[0]) else {
        return Ok(false);
    };
    let mut command = Command::new(&program);
    // If the agent dies (or a stop abandons this blocking thread), the tool dies with it
    // instead of lingering as an orphan.
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let mut child = match command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(ToolError::Spawn {
                tool: argv[0].to_string(),
                message: e.to_string(),
            })
        }
    };
    let stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let child = Arc::new(Mutex::new(child));
    let timed_out = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    // The watchdog kills the tool at the deadline, which also ends the stdout loop below.
    let watchdog = {
        let (child, timed_out) = (child.clone(), timed_out.clone());
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                timed_out.store(true, Ordering::SeqCst);
                if let Ok(mut c) = child.lock() {
                    let _ = c.kill();
                }
            }
        })
    };
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let mut failure = None;
    if let Some(out) = stdout {
        let mut reader = std::io::BufReader::with_capacity(1 << 16, out);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if failure.is_none() {
                        if let Err(message) = on_line(line.trim_end_matches('\n')) {
                            failure = Some(ToolError::Output {
                                tool: argv[0].to_string(),
                                message,
                            });
                        }
                    }
                }
                Err(e) => {
                    failure.get_or_insert(ToolError::Output {
                        tool: argv[0].to_string(),
                        message: format!("unreadable: {e}"),
                    });
                    break;
                }
            }
        }
    }
    let _ = done_tx.send(());
    let _ = watchdog.join();
    let status = match child.lock() {
        Ok(mut c) => c.wait(),
        Err(_) => Err(std::io::Error::other("tool state poisoned")),
    };
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default())
        .trim()
        .to_string();
    if timed_out.load(Ordering::SeqCst) {
        return Err(ToolError::TimedOut {
            command: argv.join(" "),
            timeout,
        });
    }
    let status = status.map_err(|e| ToolError::Spawn {
        tool: argv[0].to_string(),
        message: format!("waiting for it: {e}"),
    })?;
    if !status.success() {
        if says_denied(&stderr) {
            return Err(ToolError::Denied {
                tool: argv[0].to_string(),
                needs: needs(argv[0]),
            });
        }
        return Err(ToolError::Failed {
            command: argv.join(" "),
            status: status.to_string(),
            code: status.code(),
            stderr: one_line(&stderr),
        });
    }
    failure.map_or(Ok(true), Err)
}

/// Runs a tool with a fixed argv; its stdout on success, `Ok(None)` when not installed.
pub fn run_tool(argv: &[&str], timeout: Duration) -> Result<Option<String>, ToolError> {
    let mut out = String::new();
    let found = run_tool_lines(argv, timeout, |l| {
        out.push_str(l);
        out.push('\n');
        Ok(())
    })?;
    Ok(found.then_some(out))
}

fn read_one(
    backend: &str,
    family: &str,
    candidates: &[&str],
    tables: Option<&[String]>,
    denied: &Mutex<Vec<Denied>>,
) -> Option<Ruleset> {
    for tool in candidates {
        let mut parser = SaveParser::default();
        let result = match tables {
            None => run_tool_lines(&[tool, "-c"], TOOL_TIMEOUT, |line| parser.feed(line)),
            Some(tables) => {
                let mut result = Ok(true);
                for table in tables {
                    result = run_tool_lines(&[tool, "-c", "-t", table], TOOL_TIMEOUT, |line| {
                        parser.feed(line)
                    });
                    if result != Ok(true) {
                        break;
                    }
                }
                result
            }
        };
        let tables = match result {
            Ok(false) => continue,
            Ok(true) => match parser.finish() {
                Ok(t) => Gathered::Ok(t),
                Err(e) => Gathered::Failed(format!("{tool} output: {e}")),
            },
            Err(e) => {
                record(denied, e.denied("firewall"));
                Gathered::Failed(e.to_string())
            }
        };
        return Some(Ruleset {
            not_read: None,
            nat: None,
            backend: backend.into(),
            family: family.into(),
            tool: tool.to_string(),
            tables,
        });
    }
    None
}

/// One line of `iptables-nft -t TABLE -S -v` as the line `iptables-nft-save -c` prints for
/// it (the same rule text, made by the same code in iptables): `-P CHAIN POLICY -c P B` →
/// `:CHAIN POLICY [P:B]`, `-N CHAIN` → `:CHAIN - [0:0]`, `-A CHAIN … -c P B …` →
/// `[P:B] -A CHAIN … …`. The counters are the last unquoted `-c N N` (printed before the
/// target, whose options may follow).
fn listed_as_saved(line: &str) -> Result<String, String> {
    let line = line.trim();
    let bad = || format!("unexpected line {line:?}");
    // Unquoted words with their byte ranges (iptables quotes with ", escaping with \).
    let mut words: Vec<(usize, usize)> = Vec::new();
    let (mut start, mut quoted, mut escaped) = (None, false, false);
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ' ' && !quoted {
            if let Some(s) = start.take() {
                words.push((s, i));
            }
            continue;
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        words.push((s, line.len()));
    }
    let word = |k: usize| words.get(k).map(|&(a, b)| &line[a..b]);
    let number =
        |w: Option<&str>| w.is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()));
    let counters = (0..words.len())
        .rev()
        .find(|&k| word(k) == Some("-c") && number(word(k + 1)) && number(word(k + 2)));
    let count = |k: usize| {
        format!(
            "[{}:{}]",
            word(k + 1).unwrap_or_default(),
            word(k + 2).unwrap_or_default()
        )
    };
    match word(0) {
        Some("-P") => {
            let (Some(chain), Some(policy), Some(k)) = (word(1), word(2), counters) else {
                return Err(bad());
            };
            Ok(format!(":{chain} {policy} {}", count(k)))
        }
        Some("-N") => Ok(format!(":{} - [0:0]", word(1).ok_or_else(bad)?)),
        Some("-A") => {
            let k = counters.ok_or_else(bad)?;
            let cut_from = words[k].0;
            let cut_to = words[k + 2].1;
            let rest = format!("{}{}", line[..cut_from].trim_end(), &line[cut_to..]);
            Ok(format!("{} {rest}", count(k)))
        }
        _ => Err(bad()),
    }
}

/// The iptables-nft tables of one family, each listed by name (`iptables-nft -t TABLE -S -v`:
/// milliseconds, where `iptables-nft-save` fetches every table and chain of the family: a
/// tenth of a second with kube-proxy's 3,000 nat chains); `nat`, whose rules are never
/// walked, is read over nfnetlink for whether any rule rewrites destinations. None when the
/// lister is not installed or nfnetlink cannot read nat: the caller saves the whole family.
fn read_listed(
    family: &str,
    lister: &str,
    tables: &[&str],
    denied: &Mutex<Vec<Denied>>,
) -> Option<Ruleset> {
    super::tools::resolve(lister)?;
    let nfproto = if family == "ipv4" { 2 } else { 10 };
    let nat = if tables.contains(&"nat") {
        let (rewrites_destination, rules) =
            super::nfnetlink::nat_rewrites(nfproto, TOOL_TIMEOUT).ok()?;
        Some(crate::snapshot::NatTable {
            rules,
            rewrites_destination,
        })
    } else {
        None
    };
    let mut parser = SaveParser::default();
    let mut result = Ok(true);
    let mut native = Vec::new();
    for table in tables.iter().filter(|t| **t != "nat") {
        // Straight from nf_tables where every rule is one iptables_nft prints; else iptables.
        if let Ok(Some(t)) = super::iptables_nft::read_table(nfproto, table, TOOL_TIMEOUT) {
            native.push(t);
            continue;
        }
        let mut fed = parser.feed(&format!("*{table}"));
        if fed.is_ok() {
            result = run_tool_lines(&[lister, "-t", table, "-S", "-v"], TOOL_TIMEOUT, |line| {
                parser.feed(&listed_as_saved(line)?)
            });
            fed = parser.feed("COMMIT");
        }
        if let Err(e) = fed {
            result = Err(ToolError::Output {
                tool: lister.to_string(),
                message: e,
            });
        }
        if result != Ok(true) {
            break;
        }
    }
    let read_natively: Vec<String> = native.iter().map(|t| t.name.clone()).collect();
    let tables = match result {
        Ok(true) => match parser.finish() {
            Ok(mut t) => {
                t.extend(native);
                Gathered::Ok(t)
            }
            Err(e) => Gathered::Failed(format!("{lister} -S output: {e}")),
        },
        Ok(false) => return None,
        Err(e) => {
            record(denied, e.denied("firewall"));
            Gathered::Failed(e.to_string())
        }
    };
    Some(Ruleset {
        backend: "nft".into(),
        family: family.into(),
        tool: lister.to_string(),
        tables,
        not_read: (!read_natively.is_empty()).then(|| {
            format!(
                "not run for {}: read over nfnetlink (every rule one of the plain matches iptables-nft writes natively) and printed as iptables-nft-save prints it",
                read_natively.join(", ")
            )
        }),
        nat,
    })
}

/// The native nftables tables; `Ok(None)` when nft is not installed and no native table
/// exists. `tables` is the table list from nfnetlink (cheap); without it, `nft -j list tables`.
/// Only native tables are dumped: the tables iptables-nft manages can hold 100,000 rules whose
/// JSON would cost seconds, and `iptables-nft-save` already reads them.
pub fn read_nft(
    tables: Option<&[(String, String)]>,
    denied: &Mutex<Vec<Denied>>,
) -> Gathered<Option<crate::ruleset::nft::NftRuleset>> {
    use crate::ruleset::nft::{is_xtables_table, parse_json, parse_table_list, NftRuleset};
    let listed;
    let tables = match tables {
        Some(t) => t,
        None => {
            let list = match run_tool(&["nft", "-j", "list", "tables"], TOOL_TIMEOUT) {
                Ok(None) => return Gathered::Ok(None),
                Ok(Some(text)) => text,
                Err(e) => {
                    record(denied, e.denied("nftables"));
                    return Gathered::Failed(e.to_string());
                }
            };
            listed = match parse_table_list(&list) {
                Ok(t) => t,
                Err(e) => return Gathered::Failed(format!("nft -j list tables: {e}")),
            };
            &listed[..]
        }
    };
    let mut all = NftRuleset::default();
    for (family, name) in tables.iter().filter(|(f, n)| !is_xtables_table(f, n)) {
        // Straight from nf_tables where every rule is one nftables.rs prints; else nft.
        let nfproto = super::nfnetlink::family_number(family);
        if let Ok(Some(t)) = super::nftables::read_table(nfproto, name, TOOL_TIMEOUT) {
            all.read_natively.push(format!("{family} {name}"));
            all.tables.push(t);
            continue;
        }
        match run_tool(&["nft", "-j", "list", "table", family, name], TOOL_TIMEOUT) {
            Ok(Some(text)) => match parse_json(&text) {
                Ok(rs) => all.tables.extend(rs.tables),
                Err(e) => {
                    return Gathered::Failed(format!("nft -j list table {family} {name}: {e}"))
                }
            },
            Ok(None) => {
                return Gathered::Failed(format!(
                "native nftables table {family} {name} exists but nft is not installed to read it"
            ))
            }
            Err(e) => {
                record(denied, e.denied("nftables"));
                return Gathered::Failed(e.to_string());
            }
        }
    }
    Gathered::Ok(Some(all))
}

/// The firewall facts of one gather, and the nf_tables generation they belong to; `serve`
/// keeps the last one and reuses it while the generation is unchanged.
#[derive(Debug, Clone)]
pub struct FirewallFacts {
    /// (family, table, entries, size) of every legacy table: the change signal for legacy.
    pub legacy_signature: Vec<(String, String, u32, u32)>,
    pub firewall: Gathered<Arc<Vec<Ruleset>>>,
    /// Read only when some rule uses `-m set`.
    pub ipsets: Gathered<Option<Arc<Vec<crate::ruleset::ipset::IpSet>>>>,
    pub nftables: Gathered<Option<Arc<crate::ruleset::nft::NftRuleset>>>,
    pub genid: Option<u32>,
    /// What could not be read for lack of privilege.
    pub denied: Vec<Denied>,
}

/// Notes a lack of privilege (once per tool and source).
fn record(denied: &Mutex<Vec<Denied>>, d: Option<Denied>) {
    if let (Some(d), Ok(mut all)) = (d, denied.lock()) {
        if !all.contains(&d) {
            all.push(d);
        }
    }
}

/// Reads both rulesets, or reuses `cache` when nothing changed: same nf_tables generation and
/// no legacy tables (legacy has no change signal, so it is always read). Returns the facts and
/// the generation id they belong to.
pub fn read_all(proc_root: &Path, cache: Option<&FirewallFacts>) -> FirewallFacts {
    let state = super::nfnetlink::nft_state(TOOL_TIMEOUT).ok();
    let names = LegacyNames::read(proc_root);
    // Legacy tables whose signature cannot be read are always read again.
    let legacy = legacy_signature(&names);
    if let (Some(st), Some(c), Some(sig)) = (&state, cache, &legacy) {
        if c.genid == Some(st.genid) && &c.legacy_signature == sig {
            return c.clone();
        }
    }
    let tables = state.as_ref().map(|s| s.tables.clone());
    let denied = Mutex::new(Vec::new());
    // nft runs beside the iptables tools only where both have tables to read: a thread with
    // nothing to do beside it costs more than it saves (a fresh stack, a TLB flush on exit,
    // and on two cores a slice of someone else's time). Native tables are read over
    // nfnetlink in a fraction of a millisecond unless nft itself must be run.
    let some = |native: bool| {
        tables.as_ref().is_none_or(|t| {
            t.iter()
                .any(|(f, n)| crate::ruleset::nft::is_xtables_table(f, n) != native)
        })
    };
    let legacy_tables = legacy.as_ref().is_none_or(|l| !l.is_empty());
    let (firewall, nftables) = if some(true) && (some(false) || legacy_tables) {
        std::thread::scope(|scope| {
            let nft = scope.spawn(|| read_nft(tables.as_deref(), &denied));
            let fw = read(&names, &denied, tables.as_deref());
            (
                fw,
                nft.join()
                    .unwrap_or_else(|_| Gathered::Failed("the nft reader panicked".to_string())),
            )
        })
    } else {
        (
            read(&names, &denied, tables.as_deref()),
            read_nft(tables.as_deref(), &denied),
        )
    };
    let ipsets = read_ipsets(&firewall, &denied);
    let mut denied = denied.into_inner().unwrap_or_default();
    denied.sort();
    FirewallFacts {
        // Unreadable: a signature no kernel reports, so the next refresh reads again.
        legacy_signature: legacy
            .unwrap_or_else(|| vec![("unreadable".into(), String::new(), u32::MAX, u32::MAX)]),
        ipsets,
        firewall: firewall.map(Arc::new),
        nftables: nftables.map(|n| n.map(Arc::new)),
        genid: state.map(|s| s.genid),
        denied,
    }
}

/// `ipset save`, when some rule matches on a set (else nothing to read).
fn read_ipsets(
    firewall: &Gathered<Vec<Ruleset>>,
    denied: &Mutex<Vec<Denied>>,
) -> Gathered<Option<Arc<Vec<crate::ruleset::ipset::IpSet>>>> {
    let uses_sets = firewall.ok().is_ok_and(|rs| {
        rs.iter()
            .filter_map(|r| r.tables.ok().ok())
            .flatten()
            .flat_map(|t| &t.chains)
            .flat_map(|c| &c.rules)
            .any(|r| r.args.iter().any(|a| a == "--match-set"))
    });
    if !uses_sets {
        return Gathered::Ok(None);
    }
    match run_tool(&["ipset", "save"], TOOL_TIMEOUT) {
        Ok(Some(text)) => match crate::ruleset::ipset::parse_save(&text) {
            Ok(sets) => Gathered::Ok(Some(Arc::new(sets))),
            Err(e) => Gathered::Failed(format!("ipset save: {e}")),
        },
        Ok(None) => {
            Gathered::Failed("rules match on ipsets but ipset is not installed".to_string())
        }
        Err(e) => {
            record(denied, e.denied("ipsets"));
            Gathered::Failed(e.to_string())
        }
    }
}

/// A legacy table's entry count and blob size, from `IPT_SO_GET_INFO`/`IP6T_SO_GET_INFO` (what
/// iptables-legacy itself reads first). None when the kernel will not say (no CAP_NET_RAW).
fn legacy_table_info(v6: bool, table: &str) -> Option<(u32, u32)> {
    // struct ipt_getinfo: name[32], valid_hooks, hook_entry[5], underflow[5], num_entries, size.
    const SO_GET_INFO: libc::c_int = 64;
    let mut info = [0u8; 84];
    if table.len() >= 32 {
        return None;
    }
    info[..table.len()].copy_from_slice(table.as_bytes());
    let (domain, level) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_IPV6)
    } else {
        (libc::AF_INET, libc::IPPROTO_IP)
    };
    // SAFETY: socket, getsockopt into a buffer of exactly the length passed, close on every
    // path; no pointer outlives the call.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_RAW, libc::IPPROTO_RAW);
        if fd < 0 {
            return None;
        }
        let mut len = info.len() as libc::socklen_t;
        let r = libc::getsockopt(fd, level, SO_GET_INFO, info.as_mut_ptr().cast(), &mut len);
        libc::close(fd);
        if r != 0 || len as usize != info.len() {
            return None;
        }
    }
    let word = |o: usize| u32::from_ne_bytes([info[o], info[o + 1], info[o + 2], info[o + 3]]);
    Some((word(76), word(80)))
}

/// The kernel's legacy tables of both families (`legacy_tables`), each names file read once
/// a refresh: the signature and the readers of both families all ask it.
pub struct LegacyNames {
    v4: Result<Vec<String>, (String, Option<Denied>)>,
    v6: Result<Vec<String>, (String, Option<Denied>)>,
}

impl LegacyNames {
    pub fn read(proc_root: &Path) -> LegacyNames {
        LegacyNames {
            v4: legacy_tables(proc_root, "ip_tables_names"),
            v6: legacy_tables(proc_root, "ip6_tables_names"),
        }
    }

    /// The tables of one family's names file.
    fn of(&self, v6: bool) -> &Result<Vec<String>, (String, Option<Denied>)> {
        if v6 {
            &self.v6
        } else {
            &self.v4
        }
    }
}

/// The legacy tables and their (entries, size); None if any cannot be read.
fn legacy_signature(names: &LegacyNames) -> Option<Vec<(String, String, u32, u32)>> {
    let mut sig = Vec::new();
    for (family, v6, tables) in [("ipv4", false, &names.v4), ("ipv6", true, &names.v6)] {
        let Ok(tables) = tables else {
            continue;
        };
        for table in tables {
            let (entries, size) = legacy_table_info(v6, table)?;
            sig.push((family.to_string(), table.to_string(), entries, size));
        }
    }
    sig.sort();
    Some(sig)
}

/// The text of `/proc/net/<names_file>`: the descriptor the unit handed over
/// (`sources::held_files`) when reading the real /proc, else the file itself.
fn table_names(proc_root: &Path, names_file: &str) -> std::io::Result<String> {
    if proc_root == Path::new("/proc") {
        if let Some(text) = super::held_files::read(names_file) {
            return text;
        }
    }
    std::fs::read_to_string(proc_root.join("net").join(names_file))
}

/// The kernel's legacy tables for this family (cheap: no tool runs); empty when none. The
/// names file is readable by root only (the unit hands it over): unreadable, the answer is unknown (Err
/// with the reason), never a silent "no legacy rules". Absent (no ip_tables module): none.
fn legacy_tables(
    proc_root: &Path,
    names_file: &str,
) -> Result<Vec<String>, (String, Option<Denied>)> {
    let path = proc_root.join("net").join(names_file);
    match table_names(proc_root, names_file) {
        Ok(s) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err((
            format!(
                "cannot tell whether legacy iptables tables exist: {} is readable by root only and was not handed to this process — run as root; the packaged unit hands it to the daemon (systemd 238 or later): `systemctl restart ecs-diag` if it did not exist when the daemon started",
                path.display()
            ),
            Some(Denied {
                source: "firewall".into(),
                what: path.display().to_string(),
                needs: "root, or the unit's hand-over of the file".into(),
            }),
        )),
        Err(e) => Err((
            format!(
                "cannot tell whether legacy iptables tables exist: {}: {e}",
                path.display()
            ),
            None,
        )),
    }
}

/// The tables iptables-nft makes (and its save tool prints): an nf_tables family `ip` (`ip6`)
/// table by one of these names.
const XTABLES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];

/// Whether nf_tables (asked over nfnetlink) holds a table iptables-nft-save of this nft family
/// would print; None where the kernel was not asked.
fn xtables_exist(nft_tables: Option<&[(String, String)]>, nft_family: &str) -> Option<bool> {
    xtables_of(nft_tables, nft_family).map(|t| !t.is_empty())
}

/// The iptables-nft tables nf_tables (asked over nfnetlink) holds in this nft family, in
/// iptables-save's order; None where the kernel was not asked.
fn xtables_of<'a>(
    nft_tables: Option<&'a [(String, String)]>,
    nft_family: &str,
) -> Option<Vec<&'a str>> {
    let tables = nft_tables?;
    Some(
        XTABLES
            .iter()
            .filter_map(|want| {
                tables
                    .iter()
                    .find(|(f, n)| f == nft_family && n == want)
                    .map(|(_, n)| n.as_str())
            })
            .collect(),
    )
}

/// Every ruleset that can hold rules on this machine. A tool is spawned only for a family and
/// backend whose tables exist: iptables-nft by the nf_tables table list (`nft_tables`, from
/// nfnetlink; None: not known, so the tool runs), legacy by the kernel's names file. Fails as
/// a whole only when no iptables tool is installed at all.
pub fn read(
    names: &LegacyNames,
    denied: &Mutex<Vec<Denied>>,
    nft_tables: Option<&[(String, String)]>,
) -> Gathered<Vec<Ruleset>> {
    let per_family = |family: &str,
                      lister: &str,
                      nft: &str,
                      legacy: &str,
                      plain: &str,
                      names_file: &str| {
        let mut out = Vec::new();
        let nft_family = if family == "ipv4" { "ip" } else { "ip6" };
        let nft_tables_exist = xtables_exist(nft_tables, nft_family);
        if nft_tables_exist == Some(false) && super::tools::resolve(nft).is_some() {
            // Nothing for the tool to print: its process start (most of `check`'s wall time on
            // a host without rules) is saved, and the snapshot says why.
            out.push(Ruleset {
                backend: "nft".into(),
                family: family.into(),
                tool: nft.into(),
                tables: Gathered::Ok(Vec::new()),
                not_read: Some(format!(
                    "not run: nf_tables (nfnetlink) lists no iptables-nft table in family {nft_family}"
                )),
                nat: None,
            });
        } else if let Some(r) = xtables_of(nft_tables, nft_family)
            .and_then(|tables| read_listed(family, lister, &tables, denied))
            .or_else(|| read_one("nft", family, &[nft], None, denied))
        {
            out.push(r);
        }
        let tables = match names.of(family == "ipv6") {
            Ok(t) => t,
            Err((e, d)) => {
                record(denied, d.clone());
                out.push(Ruleset {
                    not_read: None,
                    nat: None,
                    backend: "legacy".into(),
                    family: family.into(),
                    tool: legacy.into(),
                    tables: Gathered::Failed(e.clone()),
                });
                return out;
            }
        };
        if !tables.is_empty() {
            // Older distributions ship only the legacy tool, as plain iptables-save. Each
            // table is dumped by name: without -t the tool reads the root-only names file
            // itself, and a name that is not listed would make the kernel create that table.
            out.extend(read_one(
                "legacy",
                family,
                &[legacy, plain],
                Some(tables),
                denied,
            ));
        } else if out.is_empty() && nft_tables_exist == Some(false) {
            // Only a plain iptables-save, but neither the kernel's legacy tables nor
            // nf_tables hold anything it could print.
            if super::tools::resolve(plain).is_some() {
                out.push(Ruleset {
                    backend: "unknown".into(),
                    family: family.into(),
                    tool: plain.into(),
                    tables: Gathered::Ok(Vec::new()),
                    not_read: Some(format!(
                        "not run: the kernel lists no legacy table ({names_file}) and nf_tables no iptables-nft table in family {nft_family}"
                    )),
                    nat: None,
                });
            }
        } else if out.is_empty() {
            // Neither variant-specific tool: a plain iptables-save is the only reader.
            out.extend(read_one("unknown", family, &[plain], None, denied));
        }
        out
    };
    let v4 = || {
        per_family(
            "ipv4",
            "iptables-nft",
            "iptables-nft-save",
            "iptables-legacy-save",
            "iptables-save",
            "ip_tables_names",
        )
    };
    let v6 = || {
        per_family(
            "ipv6",
            "ip6tables-nft",
            "ip6tables-nft-save",
            "ip6tables-legacy-save",
            "ip6tables-save",
            "ip6_tables_names",
        )
    };
    // A family with no table of either backend runs no tool: it needs no thread of its own.
    let empty = |nft_family: &str| {
        xtables_exist(nft_tables, nft_family) == Some(false)
            && names
                .of(nft_family == "ip6")
                .as_ref()
                .is_ok_and(|t| t.is_empty())
    };
    let out: Vec<Ruleset> = if empty("ip") || empty("ip6") {
        let mut out = v4();
        out.extend(v6());
        out
    } else {
        // The two families are independent: read them side by side.
        std::thread::scope(|scope| {
            let v6 = scope.spawn(v6);
            let mut out = v4();
            out.extend(v6.join().unwrap_or_default());
            out
        })
    };
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
    use std::time::Instant;

    /// Which families' iptables-nft tool has anything to print, by the nf_tables table list:
    /// a native nft table (inet firewalld, ip6 mytable) is not one; unknown runs the tool.
    #[test]
    fn iptables_nft_is_spawned_only_where_its_tables_exist() {
        let t = |f: &str, n: &str| (f.to_string(), n.to_string());
        let firewalld = [t("inet", "firewalld")];
        assert_eq!(xtables_exist(Some(&firewalld), "ip"), Some(false));
        assert_eq!(xtables_exist(Some(&[]), "ip6"), Some(false));
        let docker = [t("ip", "nat"), t("ip", "filter"), t("ip6", "mine")];
        assert_eq!(xtables_exist(Some(&docker), "ip"), Some(true));
        assert_eq!(xtables_exist(Some(&docker), "ip6"), Some(false));
        assert_eq!(xtables_exist(None, "ip"), None);
    }

    /// `iptables-nft -S -v` lines become the lines `iptables-nft-save -c` prints (the matrix
    /// proves it against iptables itself: listed_tables_read_what_iptables_nft_save_prints).
    #[test]
    fn listed_lines_become_saved_lines() {
        let l = |s: &str| listed_as_saved(s);
        assert_eq!(l("-P INPUT DROP -c 5 300").unwrap(), ":INPUT DROP [5:300]");
        assert_eq!(l("-N KUBE-FIREWALL").unwrap(), ":KUBE-FIREWALL - [0:0]");
        assert_eq!(
            l("-A INPUT -c 0 0 -j KUBE-FIREWALL").unwrap(),
            "[0:0] -A INPUT -j KUBE-FIREWALL"
        );
        assert_eq!(
            l("-A KUBE-FIREWALL ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED -c 7 420 -j DROP")
                .unwrap(),
            "[7:420] -A KUBE-FIREWALL ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED -j DROP"
        );
        // Counters-like words inside quotes are words of the rule, not its counters.
        assert_eq!(
            l(r#"-A INPUT -m comment --comment "say \"-c 1 2\"" -c 3 4 -j LOG --log-prefix "-c 5 6 ""#)
                .unwrap(),
            r#"[3:4] -A INPUT -m comment --comment "say \"-c 1 2\"" -j LOG --log-prefix "-c 5 6 ""#
        );
        // A rule without counters, or anything else, is not understood: an error, no guess.
        assert!(l("-A INPUT -j ACCEPT").is_err());
        assert!(l("-P INPUT ACCEPT").is_err());
        assert!(l("-X FOO").is_err());
        assert!(l("").is_err());
    }

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
        // A lack of privilege is recognised and said in one line, naming what is needed.
        let e = run_tool(
            &[
                "sh",
                "-c",
                "echo 'iptables-nft-save v1.8.9: Could not fetch rule set generation id: Permission denied (you must be root)' >&2; exit 4",
            ],
            TOOL_TIMEOUT,
        )
        .unwrap_err();
        assert_eq!(
            e,
            ToolError::Denied {
                tool: "sh".into(),
                needs: "CAP_NET_ADMIN"
            }
        );
        assert_eq!(e.to_string(), "sh needs CAP_NET_ADMIN — run as root");
        assert_eq!(e.denied("firewall").unwrap().needs, "CAP_NET_ADMIN");
        assert_eq!(
            needs("/usr/sbin/iptables-legacy-save"),
            "CAP_NET_ADMIN and CAP_NET_RAW"
        );
        // Any other failure keeps the tool's words, folded onto one line.
        let e = run_tool(
            &["sh", "-c", "printf 'first\\n\\n  second\\n' >&2; exit 3"],
            TOOL_TIMEOUT,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("exit status: 3")
                && text.ends_with("first / second")
                && !text.contains('\n'),
            "{text}"
        );
        assert!(e.denied("firewall").is_none());
        let long = one_line(&"x".repeat(1000));
        assert_eq!(long.chars().count(), 301);
        let started = Instant::now();
        let e = run_tool(&["sleep", "5"], Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("did not finish"), "{e}");
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
        assert_eq!(
            legacy_tables(dir.path(), "ip_tables_names"),
            Ok(vec!["filter".to_string()])
        );
        std::fs::write(dir.path().join("net/ip_tables_names"), "nat\nfilter\n").unwrap();
        assert_eq!(
            legacy_tables(dir.path(), "ip_tables_names"),
            Ok(vec!["nat".to_string(), "filter".to_string()])
        );
        assert_eq!(legacy_tables(dir.path(), "ip6_tables_names"), Ok(vec![]));
        assert_eq!(
            legacy_tables(Path::new("/nonexistent"), "ip_tables_names"),
            Ok(vec![])
        );
        // Unreadable (a directory here; EACCES for an unprivileged user): unknown, with why.
        std::fs::create_dir_all(dir.path().join("net/unreadable")).unwrap();
        let (e, denied) = legacy_tables(dir.path(), "unreadable").unwrap_err();
        assert!(
            e.contains("cannot tell whether legacy iptables tables exist"),
            "{e}"
        );
        assert_eq!(denied, None, "a directory is not a lack of privilege");
    }
}
