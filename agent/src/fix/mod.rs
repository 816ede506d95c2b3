//! `ecs-diag fix`: remediation of the causes a diagnosis proved, never more. It diagnoses,
//! plans a change for each failing check that has a safe automatic fix (the exact commands and
//! a unified diff of each file), and changes nothing without `--apply`. Applying backs up
//! everything it touches under `[paths] state`/fixes/ID/ first (nothing is changed when the
//! backup cannot be written), applies, diagnoses again and rolls everything back unless each
//! fixed check is `ok`. A fix that can cut connectivity (link, address, route, firewall) then
//! awaits `--confirm ID`; a detached reverter restores it after `--revert-after` otherwise.
//! `--history` lists applied fixes and `--undo ID` restores a backup. One run at a time (a lock
//! file). Only the CLI fixes: the daemon and HTTP never change anything.
//!
//! Fixers: `sysctl.icmp_echo`, `sysctl.icmp_echo6`, `sysctl.rp_filter` ([`sysctl`]);
//! `link.primary`, `route.default`, `addr.primary` (IPv6), `addr.secondary` ([`network`]); `firewall.icmp_in`,
//! `firewall.icmp_out`, `firewall.icmp6` ([`firewall`]). Every other check says it has no
//! automatic fix.

pub mod firewall;
pub mod network;
pub mod sysctl;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{Config, PathsConfig};
use crate::report::Status;
use crate::snapshot::Snapshot;

/// Exit codes of `fix` besides 0 (planned, applied and verified) and the shared ones.
pub const EXIT_ROLLED_BACK: i32 = 1;
/// sysexits' EX_NOPERM: not root.
pub const EXIT_NOPERM: i32 = 77;

/// One change a fix makes, with what it was before: the record of an applied fix is its own
/// backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A running kernel parameter (`/proc/sys/...`).
    Sysctl {
        key: String,
        path: PathBuf,
        from: String,
        to: String,
    },
    /// A configuration file, whole (None before: it did not exist).
    File {
        path: PathBuf,
        before: Option<String>,
        after: String,
    },
    /// A command (fixed argv, run from the tool directories) and the one that undoes it.
    Command {
        what: String,
        argv: Vec<String>,
        undo: Vec<String>,
    },
    /// A command that makes a firewall manager load the files changed before it (`ufw
    /// reload`): run where it stands when applying, and again once everything is restored.
    Reload { what: String, argv: Vec<String> },
    /// A native nftables rule inserted (before rule `before`, else first in the chain), tagged
    /// with `comment`: nft deletes only by handle, which is known once the rule exists, so the
    /// undo finds the rule by its comment.
    NftInsert {
        family: String,
        table: String,
        chain: String,
        before: Option<u64>,
        /// The rule's statements, nft syntax, ending in `accept`.
        rule: Vec<String>,
        comment: String,
    },
}

/// What fixes one failing check, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub check: &'static str,
    pub why: String,
    pub changes: Vec<Change>,
    /// Firewall, route, link or address changes: applied with a timed revert.
    pub cuts_connectivity: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Being applied (a run that died here left the backup; `--undo` restores it).
    Applying,
    Applied,
    /// Applied, verified, and reverted unless `--confirm ID` comes within `--revert-after`.
    AwaitingConfirmation,
    /// Not confirmed in time: everything was restored.
    Reverted,
    /// Verification failed or a change failed: everything was restored.
    RolledBack,
    Undone,
}

/// An applied fix as kept under `fixes/ID/record.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    pub applied_at: String,
    pub checks: Vec<String>,
    pub state: State,
    pub changes: Vec<Change>,
}

pub struct FixOptions {
    pub checks: Vec<String>,
    pub client: Option<IpAddr>,
    pub apply: bool,
    pub yes: bool,
    pub json: bool,
    /// Seconds a fix that can cut connectivity waits for `--confirm` before it is reverted.
    pub revert_after: u64,
    /// The config file given, for the reverter process.
    pub config_path: Option<PathBuf>,
}

/// The fixer of a check, if it has one; `pending` holds the files as the earlier plans of
/// this run leave them.
fn plan_for(
    finding: &crate::report::Finding,
    s: &Snapshot,
    paths: &PathsConfig,
    pending: &mut sysctl::Pending,
) -> Option<Result<Plan, String>> {
    match finding.id.as_str() {
        crate::checks::sysctl::ICMP_ECHO => Some(sysctl::plan(
            s,
            paths,
            pending,
            crate::checks::sysctl::ICMP_ECHO,
            "net.ipv4.icmp_echo_ignore_all",
            "0",
            "the kernel ignored every IPv4 echo request",
        )),
        crate::checks::sysctl::ICMP_ECHO6 => Some(sysctl::plan(
            s,
            paths,
            pending,
            crate::checks::sysctl::ICMP_ECHO6,
            "net.ipv6.icmp.echo_ignore_all",
            "0",
            "the kernel ignored every IPv6 echo request",
        )),
        crate::checks::sysctl::RP_FILTER => Some(rp_filter(finding, s, paths, pending)),
        crate::checks::link::PRIMARY => Some(network::link_up(s)),
        crate::checks::addr::SECONDARY => Some(network::secondary_ips(finding, s, pending)),
        crate::checks::addr::PRIMARY => Some(network::primary_ipv6(s)),
        crate::checks::firewall::ICMP_IN | crate::checks::firewall::ICMP_OUT => Some(
            firewall::accept_echo(finding, s.client, &paths.etc, pending),
        ),
        crate::checks::firewall::ICMP6 => {
            Some(firewall::accept_icmp6(s, s.client, &paths.etc, pending))
        }
        crate::checks::route::DEFAULT => Some(network::default_route(s)),
        _ => None,
    }
}

/// Loose reverse-path filtering (2) on exactly the interfaces the finding proved strict and
/// asymmetric: the kernel applies the larger of `conf.all` and `conf.IF`, so 2 on the
/// interface is loose whatever `conf.all` says, and no other interface changes.
fn rp_filter(
    finding: &crate::report::Finding,
    s: &Snapshot,
    paths: &PathsConfig,
    pending: &mut sysctl::Pending,
) -> Result<Plan, String> {
    let ifs: Vec<&str> = finding.evidence["strict_asymmetric"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if ifs.is_empty() {
        return Err("the finding names no interface".to_string());
    }
    if let Some(odd) = ifs.iter().find(|i| i.contains('.') || i.contains('/')) {
        return Err(format!(
            "interface {odd} has a '.' or '/' in its name: set its rp_filter by hand"
        ));
    }
    let keys: Vec<String> = ifs
        .iter()
        .map(|i| format!("net.ipv4.conf.{i}.rp_filter"))
        .collect();
    let settings: Vec<sysctl::Setting> = keys
        .iter()
        .map(|key| sysctl::Setting {
            key,
            want: "2",
            why: "strict reverse-path filtering dropped traffic whose reply leaves by another interface",
            always_persist: true,
        })
        .collect();
    sysctl::plan_settings(
        s,
        paths,
        pending,
        crate::checks::sysctl::RP_FILTER,
        &settings,
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn fixes_dir(paths: &PathsConfig) -> PathBuf {
    paths.state.join("fixes")
}

/// Held while a fix is applied or undone: a second run refuses instead of interleaving.
struct Lock(#[allow(dead_code)] std::fs::File);

fn lock(paths: &PathsConfig) -> Result<Lock, String> {
    lock_with(paths, libc::LOCK_EX | libc::LOCK_NB)
}

/// Waits for the lock (the reverter: a fix being applied or undone finishes first).
fn lock_waiting(paths: &PathsConfig) -> Result<Lock, String> {
    lock_with(paths, libc::LOCK_EX)
}

fn lock_with(paths: &PathsConfig, how: libc::c_int) -> Result<Lock, String> {
    use std::os::unix::io::AsRawFd;
    let dir = fixes_dir(paths);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; it is released when the file closes.
    let r = unsafe { libc::flock(file.as_raw_fd(), how) };
    if r != 0 {
        return Err(format!(
            "another `ecs-diag fix` is running ({} is locked): wait for it to finish",
            path.display()
        ));
    }
    Ok(Lock(file))
}

/// A unified diff of one contiguous change (what a fix makes): one hunk with up to three
/// lines of context.
pub fn unified_diff(path: &Path, before: Option<&str>, after: &str) -> String {
    let a: Vec<&str> = before.map(|b| b.lines().collect()).unwrap_or_default();
    let b: Vec<&str> = after.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let start = prefix.saturating_sub(3);
    let (a_end, b_end) = (
        (a.len() - suffix + 3).min(a.len()),
        (b.len() - suffix + 3).min(b.len()),
    );
    let name = path.display();
    let mut out = if before.is_some() {
        format!("--- {name}\n+++ {name}\n")
    } else {
        format!("--- /dev/null\n+++ {name}\n")
    };
    let range = |from: usize, to: usize| {
        if to > from {
            format!("{},{}", from + 1, to - from)
        } else {
            format!("{from},0")
        }
    };
    out.push_str(&format!(
        "@@ -{} +{} @@\n",
        range(start, a_end),
        range(start, b_end)
    ));
    for l in &a[start..prefix] {
        out.push_str(&format!(" {l}\n"));
    }
    for l in &a[prefix..a.len() - suffix] {
        out.push_str(&format!("-{l}\n"));
    }
    for l in &b[prefix..b.len() - suffix] {
        out.push_str(&format!("+{l}\n"));
    }
    for l in &a[a.len() - suffix..a_end] {
        out.push_str(&format!(" {l}\n"));
    }
    out
}

/// How a change reads in a plan: the command, or the diff.
fn describe(c: &Change) -> String {
    match c {
        Change::Sysctl { key, from, to, .. } => {
            format!("sysctl -w {key}={to}    # now {from}\n")
        }
        Change::File {
            path,
            before,
            after,
        } => unified_diff(path, before.as_deref(), after),
        Change::Command { argv, undo, .. } => {
            format!(
                "{}    # undone by: {}\n",
                shell_line(argv),
                shell_line(undo)
            )
        }
        Change::NftInsert { .. } => format!("{}\n", firewall::nft_insert_argv(c).join(" ")),
        Change::Reload { argv, .. } => {
            format!("{}    # run again after an undo\n", argv.join(" "))
        }
    }
}

fn change_json(c: &Change) -> serde_json::Value {
    match c {
        Change::Sysctl { key, from, to, .. } => {
            json!({"kind": "sysctl", "key": key, "from": from, "to": to, "command": format!("sysctl -w {key}={to}")})
        }
        Change::File {
            path,
            before,
            after,
        } => {
            json!({"kind": "file", "path": path, "diff": unified_diff(path, before.as_deref(), after)})
        }
        Change::Command { what, argv, undo } => {
            json!({"kind": "command", "what": what, "command": shell_line(argv), "undo": shell_line(undo)})
        }
        Change::NftInsert { comment, .. } => {
            json!({"kind": "command", "what": comment, "command": firewall::nft_insert_argv(c).join(" "), "undo": format!("nft delete rule … handle <the rule commented {comment:?}>")})
        }
        Change::Reload { what, argv } => {
            json!({"kind": "command", "what": what, "command": argv.join(" "), "undo": format!("{} (after the files are restored)", argv.join(" "))})
        }
    }
}

/// A command as a person would paste it into a shell: arguments quoted where they need it
/// (a firewalld rich rule has spaces and quotes).
pub(crate) fn shell_line(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str))
        // Only an argument with a NUL byte cannot be quoted, and no plan makes one.
        .unwrap_or_else(|_| argv.join(" "))
}

/// Runs a fix's command (fixed argv, from the tool directories, bounded in time).
fn run_command(argv: &[String]) -> Result<(), String> {
    run_command_output(argv).map(|_| ())
}

/// The same, with its output.
fn run_command_output(argv: &[String]) -> Result<String, String> {
    run_command_within(argv, std::time::Duration::from_secs(10))
}

/// A firewall manager's reload (ufw: a Python program restoring every table) may take a
/// while on a loaded machine: it gets longer than a single command.
fn run_reload(argv: &[String]) -> Result<(), String> {
    run_command_within(argv, std::time::Duration::from_secs(60)).map(|_| ())
}

fn run_command_within(argv: &[String], within: std::time::Duration) -> Result<String, String> {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    match crate::sources::rulesets::run_tool(&args, within) {
        Ok(Some(out)) => Ok(out),
        Ok(None) => Err(format!(
            "{} is not installed in {}",
            args.first().copied().unwrap_or("?"),
            crate::sources::tools::describe()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes `text` to `path` whole: a temporary file beside it, then a rename, so a crash leaves
/// the old or the new file, never half of one. The mode of the old file is kept.
/// A new file's mode: that of a file beside it with the same extension (netplan files may be
/// root-only, as cloud-init writes them, or readable, as the admin chose), else 0644.
fn new_file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let (Some(dir), Some(ext)) = (path.parent(), path.extension()) else {
        return 0o644;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0o644;
    };
    let mut siblings: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != path && p.extension() == Some(ext) && p.is_file())
        .collect();
    siblings.sort();
    siblings
        .first()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0o644, |m| m.permissions().mode() & 0o777)
}

fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("ecs-diag-{}", std::process::id()));
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or_else(|_| new_file_mode(path));
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

fn apply_one(c: &Change) -> Result<(), String> {
    match c {
        Change::Sysctl { path, to, key, .. } => std::fs::write(path, format!("{to}\n"))
            .map_err(|e| format!("cannot set {key} ({}): {e}", path.display())),
        Change::File { path, after, .. } => {
            write_file(path, after).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        Change::Command { argv, .. } => run_command(argv),
        Change::Reload { argv, .. } => run_reload(argv),
        Change::NftInsert { .. } => run_command(&firewall::nft_insert_argv(c)),
    }
}

/// Undoes one change; the line says what was restored.
fn restore_one(c: &Change) -> Result<String, String> {
    match c {
        Change::Sysctl {
            path, from, key, ..
        } => std::fs::write(path, format!("{from}\n"))
            .map(|_| format!("{key} = {from}"))
            .map_err(|e| format!("cannot restore {key} ({}): {e}", path.display())),
        Change::File {
            path,
            before: Some(before),
            ..
        } => write_file(path, before)
            .map(|_| format!("{} restored", path.display()))
            .map_err(|e| format!("cannot restore {}: {e}", path.display())),
        Change::File {
            path, before: None, ..
        } => match std::fs::remove_file(path) {
            Ok(()) => Ok(format!("{} removed (it did not exist)", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(format!("{} already gone", path.display()))
            }
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        },
        Change::Command { what, undo, .. } => run_command(undo)
            .map(|_| format!("{what} undone ({})", undo.join(" ")))
            .map_err(|e| format!("cannot undo {what}: {e}")),
        Change::NftInsert {
            family,
            table,
            chain,
            comment,
            ..
        } => firewall::nft_delete_commented(family, table, chain, comment)
            .map(|h| {
                format!("nft rule {comment:?} (handle {h}) deleted from {family} {table} {chain}")
            })
            .map_err(|e| format!("cannot delete the nft rule {comment:?}: {e}")),
        Change::Reload { what, argv } => run_reload(argv)
            .map(|_| format!("{what} after restoring ({})", argv.join(" ")))
            .map_err(|e| format!("cannot {what}: {e}")),
    }
}

/// A file as this run's earlier plans leave it, else as it is (None: it does not exist).
pub(crate) fn pending_text(
    path: &Path,
    pending: &sysctl::Pending,
) -> Result<Option<String>, String> {
    if let Some(t) = pending.get(path) {
        return Ok(Some(t.clone()));
    }
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Restores `changes` in reverse order, then runs each reload once so the manager loads the
/// restored files; every line says what was restored or could not be.
fn restore(changes: &[Change]) -> Vec<String> {
    let mut said: Vec<String> = changes
        .iter()
        .rev()
        .filter(|c| !matches!(c, Change::Reload { .. }))
        .map(|c| restore_one(c).unwrap_or_else(|e| format!("NOT RESTORED: {e}")))
        .collect();
    let mut reloaded: Vec<&Vec<String>> = Vec::new();
    for c in changes {
        if let Change::Reload { argv, .. } = c {
            if !reloaded.contains(&argv) {
                reloaded.push(argv);
                said.push(restore_one(c).unwrap_or_else(|e| format!("NOT RESTORED: {e}")));
            }
        }
    }
    said
}

fn save(dir: &Path, record: &Record) -> Result<(), String> {
    let text = serde_json::to_string_pretty(record).map_err(|e| e.to_string())?;
    write_file(&dir.join("record.json"), &(text + "\n"))
        .map_err(|e| format!("cannot write the backup in {}: {e}", dir.display()))
}

/// The rulesets a fix's firewall changes touch, as their save tools print them: (file name in
/// the backup, argv). `iptables-nft` → `iptables-nft-save`; a native nft change → `nft list
/// ruleset`.
fn ruleset_dumps(changes: &[Change]) -> Vec<(String, Vec<String>)> {
    let mut dumps: Vec<(String, Vec<String>)> = Vec::new();
    for c in changes {
        let argv: Vec<String> = match c {
            Change::Command { argv, .. }
                if argv[0].starts_with("iptables") || argv[0].starts_with("ip6tables") =>
            {
                vec![format!("{}-save", argv[0])]
            }
            Change::NftInsert { .. } => ["nft", "list", "ruleset"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            // firewalld: its runtime and permanent view of every zone.
            Change::Command { argv, .. } if argv[0] == "firewall-cmd" => {
                for (name, args) in [
                    (
                        "firewall-cmd-list-all-zones.before",
                        &["--list-all-zones"][..],
                    ),
                    (
                        "firewall-cmd-permanent-list-all-zones.before",
                        &["--permanent", "--list-all-zones"],
                    ),
                ] {
                    if !dumps.iter().any(|(n, _)| n == name) {
                        let mut argv = vec!["firewall-cmd".to_string()];
                        argv.extend(args.iter().map(|a| a.to_string()));
                        dumps.push((name.to_string(), argv));
                    }
                }
                continue;
            }
            // ufw loads both families from its files.
            Change::Reload { argv, .. } if argv[0] == "ufw" => {
                for save in ["iptables-save", "ip6tables-save"] {
                    let name = format!("{save}.before");
                    if !dumps.iter().any(|(n, _)| *n == name) {
                        dumps.push((name, vec![save.to_string()]));
                    }
                }
                continue;
            }
            _ => continue,
        };
        let name = format!("{}.before", argv.join("-"));
        if !dumps.iter().any(|(n, _)| *n == name) {
            dumps.push((name, argv));
        }
    }
    dumps
}

/// The backup of a fix about to be applied: the record (which holds every old value and old
/// file), a copy of each file as it was and each touched ruleset as its save tool prints it,
/// for people.
fn back_up(dir: &Path, record: &Record) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, argv) in ruleset_dumps(&record.changes) {
        let text = run_command_output(&argv)
            .map_err(|e| format!("cannot back up the ruleset ({}): {e}", argv.join(" ")))?;
        write_file(&dir.join(name), &text)
            .map_err(|e| format!("cannot write the backup in {}: {e}", dir.display()))?;
    }
    for (i, c) in record.changes.iter().enumerate() {
        if let Change::File {
            path,
            before: Some(before),
            ..
        } = c
        {
            let name = format!(
                "{i}-{}",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            write_file(&dir.join(name), before)
                .map_err(|e| format!("cannot write the backup in {}: {e}", dir.display()))?;
        }
    }
    save(dir, record)
}

/// `20261204T182059.045Z`: sortable, and unique (one fix at a time, milliseconds apart).
fn new_id() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn print_json(v: &serde_json::Value) {
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
}

/// Asks on the terminal; anything but y/yes is no.
fn confirmed() -> bool {
    print!("Apply these changes? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// `ecs-diag fix [--check ID]... [--client ADDR] [--apply] [--yes] [--json]`.
pub fn run(config: &Config, opts: &FixOptions) -> i32 {
    for id in &opts.checks {
        if crate::checks::find(id).is_none() {
            eprintln!("ecs-diag: unknown check id {id:?}; `ecs-diag checks` lists them");
            return crate::exit::USAGE;
        }
    }
    if opts.apply && !is_root() {
        eprintln!(
            "ecs-diag: fix --apply needs root: it writes /proc/sys, /etc and the backups under {}",
            fixes_dir(&config.paths).display()
        );
        return EXIT_NOPERM;
    }
    let _lock = if opts.apply {
        match lock(&config.paths) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("ecs-diag: {e}");
                return crate::exit::OSERR;
            }
        }
    } else {
        None
    };
    let criteria = crate::checks::Criteria::of(config);
    let snapshot = crate::cli::take_snapshot(config, opts.client, None);
    let findings = crate::checks::evaluate(&snapshot, &criteria);
    let failing: Vec<&crate::report::Finding> = findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .filter(|f| opts.checks.is_empty() || opts.checks.contains(&f.id))
        .collect();
    let mut plans = Vec::new();
    let mut no_fix = Vec::new();
    let mut pending = sysctl::Pending::new();
    for f in &failing {
        match plan_for(f, &snapshot, &config.paths, &mut pending) {
            Some(Ok(p)) => plans.push(p),
            Some(Err(why)) => no_fix.push((f.id.clone(), why)),
            None => no_fix.push((
                f.id.clone(),
                "no automatic fix: follow the remedy `ecs-diag check` prints".to_string(),
            )),
        }
    }
    if opts.json && !opts.apply {
        print_json(&json!({
            "version": 1,
            "applied": false,
            "plans": plans.iter().map(|p| json!({"check": p.check, "why": p.why, "changes": p.changes.iter().map(change_json).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "not_fixed": no_fix.iter().map(|(id, why)| json!({"check": id, "why": why})).collect::<Vec<_>>(),
        }));
        return 0;
    }
    if !opts.json {
        let mut out = String::new();
        if failing.is_empty() {
            out.push_str("No check fails: nothing to fix.\n");
        }
        for p in &plans {
            out.push_str(&format!("Fix {}: {}\n", p.check, p.why));
            for c in &p.changes {
                for l in describe(c).lines() {
                    out.push_str(&format!("    {l}\n"));
                }
            }
        }
        for (id, why) in &no_fix {
            out.push_str(&format!("Not fixed {id}: {why}\n"));
        }
        if !opts.apply && !plans.is_empty() {
            out.push_str("Nothing was changed. Run again with --apply to back up, apply, re-check and roll back if the checks are not ok.\n");
        }
        print!("{out}");
    }
    if !opts.apply || plans.is_empty() {
        return 0;
    }
    if !opts.yes && !confirmed() {
        println!("Nothing was changed.");
        return 0;
    }
    apply(config, opts, plans, &criteria)
}

/// How long a change is left to settle before the checks are run again: a carrier coming up,
/// and whatever resets a setting behind the fix's back (a configuration agent, a network
/// manager re-applying its own) within that time, is seen by the verification, not missed by
/// a re-check made microseconds after the write.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

fn apply(
    config: &Config,
    opts: &FixOptions,
    plans: Vec<Plan>,
    criteria: &crate::checks::Criteria,
) -> i32 {
    let id = new_id();
    let dir = fixes_dir(&config.paths).join(&id);
    let mut record = Record {
        id: id.clone(),
        applied_at: crate::now_rfc3339(),
        checks: plans.iter().map(|p| p.check.to_string()).collect(),
        state: State::Applying,
        changes: plans.iter().flat_map(|p| p.changes.clone()).collect(),
    };
    if let Err(e) = back_up(&dir, &record) {
        eprintln!("ecs-diag: {e}; nothing was changed");
        return crate::exit::OSERR;
    }
    let mut done = 0;
    let mut failure = None;
    for c in &record.changes {
        match apply_one(c) {
            Ok(()) => done += 1,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let verified: Vec<(String, Status, String)> = if failure.is_none() {
        std::thread::sleep(SETTLE);
        let snapshot = crate::cli::take_snapshot(config, opts.client, None);
        crate::checks::evaluate(&snapshot, criteria)
            .into_iter()
            .filter(|f| record.checks.contains(&f.id))
            .map(|f| (f.id.clone(), f.status, f.summary.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let all_ok = failure.is_none()
        && !verified.is_empty()
        && verified.iter().all(|(_, s, _)| *s == Status::Ok);
    let restored = if all_ok {
        Vec::new()
    } else {
        restore(&record.changes[..done])
    };
    let cuts = plans.iter().any(|p| p.cuts_connectivity);
    record.state = match (all_ok, cuts) {
        (true, false) => State::Applied,
        (true, true) => State::AwaitingConfirmation,
        (false, _) => State::RolledBack,
    };
    let saved = save(&dir, &record);
    let reverter = (record.state == State::AwaitingConfirmation).then(|| spawn_reverter(opts, &id));
    if let Some(Err(e)) = &reverter {
        // Without a reverter the safety net is gone: undo now rather than risk a lock-out.
        let restored = restore(&record.changes);
        record.state = State::RolledBack;
        let _ = save(&dir, &record);
        eprintln!(
            "ecs-diag: cannot start the timed revert ({e}); rolled back: {}",
            restored.join("; ")
        );
        return EXIT_ROLLED_BACK;
    }
    let reason = failure.clone().unwrap_or_else(|| {
        verified
            .iter()
            .filter(|(_, s, _)| *s != Status::Ok)
            .map(|(id, s, why)| format!("{id} is {} after the fix: {why}", s.as_str()))
            .collect::<Vec<_>>()
            .join("; ")
    });
    if opts.json {
        print_json(&json!({
            "version": 1,
            "applied": all_ok,
            "id": id,
            "state": record.state,
            "checks": record.checks,
            "changes": record.changes.iter().map(change_json).collect::<Vec<_>>(),
            "verified": verified.iter().map(|(id, s, why)| json!({"check": id, "status": s.as_str(), "summary": why})).collect::<Vec<_>>(),
            "rolled_back_because": (!all_ok).then_some(&reason),
            "restored": restored,
            "backup": dir,
            "revert_after_s": cuts.then_some(opts.revert_after),
        }));
    } else if record.state == State::AwaitingConfirmation {
        println!(
            "Applied fix {id}: {} now ok. It can cut connectivity: it is reverted in {} s unless you run `ecs-diag fix --confirm {id}` (from a new session, to prove you still have access). Backup: {}",
            record.checks.join(", "),
            opts.revert_after,
            dir.display()
        );
    } else if all_ok {
        println!(
            "Applied fix {id}: {} now ok. Backup: {} (undo: ecs-diag fix --undo {id})",
            record.checks.join(", "),
            dir.display()
        );
    } else {
        println!("Rolled back fix {id}: {reason}");
        for r in &restored {
            println!("    {r}");
        }
    }
    if let Err(e) = saved {
        eprintln!("ecs-diag: {e}");
    }
    if all_ok {
        0
    } else {
        EXIT_ROLLED_BACK
    }
}

/// Starts the detached process that reverts fix `id` after `--revert-after` unless it is
/// confirmed: its own session, so it survives the terminal (and the SSH connection) closing.
fn spawn_reverter(opts: &FixOptions, id: &str) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["fix", "--revert-pending", id, "--revert-after"])
        .arg(opts.revert_after.to_string());
    if let Some(c) = &opts.config_path {
        cmd.arg("--config").arg(c);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map(|_| ())
        .map_err(|e| format!("cannot start the reverter: {e}"))
}

/// The reverter: after `seconds`, restores fix `id` if it still awaits confirmation.
pub fn revert_pending(config: &Config, id: &str, seconds: u64) -> i32 {
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    let _lock = match lock_waiting(&config.paths) {
        Ok(l) => l,
        Err(_) => return crate::exit::OSERR,
    };
    let Some(mut record) = records(&config.paths).into_iter().find(|r| r.id == id) else {
        return crate::exit::NOINPUT;
    };
    if record.state != State::AwaitingConfirmation {
        return 0;
    }
    let _ = restore(&record.changes);
    record.state = State::Reverted;
    let dir = fixes_dir(&config.paths).join(id);
    match save(&dir, &record) {
        Ok(()) => 0,
        Err(_) => crate::exit::OSERR,
    }
}

/// What `--confirm` and `--undo` start with: root, the lock, and fix `id`'s record; else the
/// line said and the exit code.
fn held_record(
    config: &Config,
    id: &str,
    option: &str,
    writes: &str,
) -> Result<(Lock, Record), i32> {
    if !is_root() {
        eprintln!("ecs-diag: fix {option} needs root: it writes {writes}");
        return Err(EXIT_NOPERM);
    }
    let lock = lock(&config.paths).map_err(|e| {
        eprintln!("ecs-diag: {e}");
        crate::exit::OSERR
    })?;
    match records(&config.paths).into_iter().find(|r| r.id == id) {
        Some(r) => Ok((lock, r)),
        None => {
            eprintln!(
                "ecs-diag: no fix {id:?} in {} (`ecs-diag fix --history` lists them)",
                fixes_dir(&config.paths).display()
            );
            Err(crate::exit::NOINPUT)
        }
    }
}

/// `ecs-diag fix --confirm ID`: keeps a fix that awaits confirmation.
pub fn confirm(config: &Config, id: &str, json: bool) -> i32 {
    let (_lock, mut record) = match held_record(config, id, "--confirm", "the fix's record") {
        Ok(r) => r,
        Err(code) => return code,
    };
    if record.state != State::AwaitingConfirmation {
        eprintln!(
            "ecs-diag: fix {id} does not await confirmation (it is {})",
            state_name(record.state)
        );
        return crate::exit::USAGE;
    }
    record.state = State::Applied;
    if let Err(e) = save(&fixes_dir(&config.paths).join(id), &record) {
        eprintln!("ecs-diag: {e}");
        return crate::exit::OSERR;
    }
    if json {
        print_json(&json!({"version": 1, "id": id, "state": record.state}));
    } else {
        println!("Confirmed fix {id}: it stays.");
    }
    0
}

fn state_name(s: State) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn records(paths: &PathsConfig) -> Vec<Record> {
    let mut out: Vec<Record> = std::fs::read_dir(fixes_dir(paths))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("record.json")).ok()?;
            serde_json::from_str(&text).ok()
        })
        .collect();
    out.sort_by(|a, b| (&a.applied_at, &a.id).cmp(&(&b.applied_at, &b.id)));
    out
}

/// `ecs-diag fix --history [--json]`: applied fixes, oldest first.
pub fn history(config: &Config, json: bool) -> i32 {
    let all = records(&config.paths);
    if json {
        print_json(&json!(all
            .iter()
            .map(|r| json!({"id": r.id, "applied_at": r.applied_at, "checks": r.checks, "state": r.state}))
            .collect::<Vec<_>>()));
        return 0;
    }
    if all.is_empty() {
        println!("No fix has been applied.");
    }
    for r in &all {
        println!(
            "{}  {}  {:<11}  {}",
            r.id,
            r.applied_at,
            state_name(r.state),
            r.checks.join(", ")
        );
    }
    0
}

/// `ecs-diag fix --undo ID [--json]`: restores what the fix changed, if nothing else changed
/// it since.
pub fn undo(config: &Config, id: &str, json: bool) -> i32 {
    let (_lock, mut record) = match held_record(config, id, "--undo", "/proc/sys and /etc") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let dir = fixes_dir(&config.paths).join(id);
    if !matches!(
        record.state,
        State::Applied | State::Applying | State::AwaitingConfirmation
    ) {
        eprintln!("ecs-diag: fix {id} is {:?}: nothing to undo", record.state);
        return crate::exit::USAGE;
    }
    // Something changed since the fix: restoring would throw that away. (A file two fixes of
    // the run edited is compared with the last edit.)
    let mut last: std::collections::BTreeMap<&Path, &str> = std::collections::BTreeMap::new();
    for c in &record.changes {
        if let Change::File { path, after, .. } = c {
            last.insert(path, after);
        }
    }
    for (path, after) in last {
        let now = std::fs::read_to_string(path).ok();
        if now.as_deref() != Some(after) && record.state == State::Applied {
            eprintln!(
                "ecs-diag: {} changed since fix {id}: not undone (its backup is in {})",
                path.display(),
                dir.display()
            );
            return crate::exit::USAGE;
        }
    }
    let restored = restore(&record.changes);
    record.state = State::Undone;
    let saved = save(&dir, &record);
    if json {
        print_json(&json!({"version": 1, "id": id, "state": record.state, "restored": restored}));
    } else {
        println!("Undid fix {id}:");
        for r in &restored {
            println!("    {r}");
        }
    }
    if let Err(e) = saved {
        eprintln!("ecs-diag: {e}");
        return crate::exit::OSERR;
    }
    if restored.iter().any(|r| r.starts_with("NOT RESTORED")) {
        EXIT_ROLLED_BACK
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_of_a_replaced_and_an_added_line() {
        let before = "a\nb\nc\nd\ne\nf\n";
        let after = "a\nb\nc\n# d\nnew\ne\nf\n";
        let d = unified_diff(Path::new("/etc/x.conf"), Some(before), after);
        assert_eq!(
            d,
            "--- /etc/x.conf\n+++ /etc/x.conf\n@@ -1,6 +1,7 @@\n a\n b\n c\n-d\n+# d\n+new\n e\n f\n"
        );
        let d = unified_diff(Path::new("/etc/new.conf"), None, "k = 0\n");
        assert_eq!(
            d,
            "--- /dev/null\n+++ /etc/new.conf\n@@ -0,0 +1,1 @@\n+k = 0\n"
        );
    }

    /// A reload runs where it stands when applying, and once more at the very end of a
    /// restore, after the files it loads are back.
    #[test]
    fn a_reload_runs_again_after_the_files_are_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("before.rules");
        std::fs::write(&path, "old\n").unwrap();
        let reload = Change::Reload {
            what: "reload".into(),
            argv: vec!["true".into()],
        };
        let changes = vec![
            Change::File {
                path: path.clone(),
                before: Some("old\n".into()),
                after: "new\n".into(),
            },
            reload.clone(),
            reload,
        ];
        for c in &changes {
            apply_one(c).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let said = restore(&changes);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(said.len(), 2, "one reload for two: {said:?}");
        assert!(said[1].starts_with("reload after restoring"), "{said:?}");
        assert!(ruleset_dumps(&changes).is_empty(), "not ufw: no dump");
        let ufw = vec![Change::Reload {
            what: "ufw reload".into(),
            argv: vec!["ufw".into(), "reload".into()],
        }];
        let names: Vec<String> = ruleset_dumps(&ufw).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["iptables-save.before", "ip6tables-save.before"]);
        // firewalld: both views of every zone, once for a runtime and a permanent change.
        let rich = |permanent: bool| Change::Command {
            what: "rich rule".into(),
            argv: ["firewall-cmd", if permanent { "--permanent" } else { "-q" }]
                .map(String::from)
                .to_vec(),
            undo: vec![],
        };
        let dumps = ruleset_dumps(&[rich(false), rich(true)]);
        assert_eq!(
            dumps
                .iter()
                .map(|(_, argv)| shell_line(argv))
                .collect::<Vec<_>>(),
            [
                "firewall-cmd --list-all-zones",
                "firewall-cmd --permanent --list-all-zones"
            ]
        );
    }

    #[test]
    fn a_new_file_takes_the_mode_of_its_siblings() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("99-ecs-diag.yaml");
        assert_eq!(new_file_mode(&new), 0o644, "no sibling");
        let base = dir.path().join("50-cloud-init.yaml");
        std::fs::write(&base, "network: {}\n").unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        assert_eq!(new_file_mode(&new), 0o600);
        write_file(&new, "network: {}\n").unwrap();
        assert_eq!(
            std::fs::metadata(&new).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_change_is_applied_and_restored_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sysctl.d/90-x.conf");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let before = "net.ipv4.icmp_echo_ignore_all=1\n# no newline after this";
        std::fs::write(&file, before).unwrap();
        let knob = dir.path().join("knob");
        std::fs::write(&knob, "1\n").unwrap();
        let created = dir.path().join("sysctl.d/zz.conf");
        let changes = vec![
            Change::Sysctl {
                key: "k".into(),
                path: knob.clone(),
                from: "1".into(),
                to: "0".into(),
            },
            Change::File {
                path: file.clone(),
                before: Some(before.into()),
                after: "changed\n".into(),
            },
            Change::File {
                path: created.clone(),
                before: None,
                after: "k = 0\n".into(),
            },
        ];
        for c in &changes {
            apply_one(c).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&knob).unwrap(), "0\n");
        assert!(created.exists());
        let restored = restore(&changes);
        assert_eq!(restored.len(), 3, "{restored:?}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
        assert_eq!(std::fs::read_to_string(&knob).unwrap(), "1\n");
        assert!(!created.exists());
    }

    #[test]
    fn a_second_run_is_refused_while_one_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PathsConfig {
            state: dir.path().to_path_buf(),
            ..Default::default()
        };
        let first = lock(&paths).unwrap();
        let e = lock(&paths).err().unwrap();
        assert!(e.contains("another `ecs-diag fix` is running"), "{e}");
        drop(first);
        assert!(lock(&paths).is_ok());
    }

    #[test]
    fn history_is_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PathsConfig {
            state: dir.path().to_path_buf(),
            ..Default::default()
        };
        for (id, at) in [("b", "2026-01-02T00:00:00Z"), ("a", "2026-01-01T00:00:00Z")] {
            back_up(
                &fixes_dir(&paths).join(id),
                &Record {
                    id: id.into(),
                    applied_at: at.into(),
                    checks: vec!["sysctl.icmp_echo".into()],
                    state: State::Applied,
                    changes: vec![],
                },
            )
            .unwrap();
        }
        let ids: Vec<String> = records(&paths).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn rp_filter_plans_loose_mode_on_the_named_interfaces_only() {
        use crate::snapshot::{Gathered, Sysctl};
        let root = tempfile::tempdir().unwrap();
        let paths = PathsConfig {
            etc: root.path().join("etc"),
            proc: root.path().join("proc"),
            ..Default::default()
        };
        let mut s = crate::checks::fixture::healthy();
        if let Gathered::Ok(m) = &mut s.sysctls {
            m.insert(
                "net.ipv4.conf.eth1.rp_filter".into(),
                Sysctl {
                    now: Some("1".into()),
                    error: None,
                    absent: false,
                    after_reboot: None,
                },
            );
        }
        let finding = |ifs: serde_json::Value| {
            crate::report::Finding::fail("sysctl.rp_filter", "x")
                .evidence(json!({"strict_asymmetric": ifs}))
        };
        let p = rp_filter(
            &finding(json!(["eth1"])),
            &s,
            &paths,
            &mut Default::default(),
        )
        .unwrap();
        assert!(matches!(&p.changes[0], Change::Sysctl { key, to, .. }
            if key == "net.ipv4.conf.eth1.rp_filter" && to == "2"));
        // Persisted even though no file sets it: the boot default may be strict.
        assert!(
            matches!(&p.changes[1], Change::File { path, before: None, after }
            if path.ends_with("sysctl.d/zz-ecs-diag.conf") && after.ends_with("net.ipv4.conf.eth1.rp_filter = 2\n"))
        );
        assert_eq!(p.changes.len(), 2);
        let e = rp_filter(
            &finding(json!(["eth0.100"])),
            &s,
            &paths,
            &mut Default::default(),
        )
        .unwrap_err();
        assert!(e.contains("by hand"), "{e}");
        assert!(rp_filter(&finding(json!([])), &s, &paths, &mut Default::default()).is_err());
    }
}
