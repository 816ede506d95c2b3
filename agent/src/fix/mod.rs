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
pub mod journal;
pub mod network;
pub mod sysctl;
pub mod transaction;

pub use transaction::{confirm, history, recover_at_start, revert_pending, undo};
use transaction::{fixes_dir, is_root};

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
pub const EXIT_NOPERM: i32 = crate::exit::NOPERM;

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
        /// Asks whether the change still stands, so a restore undoes only what is there
        /// (a rule deleted since, or a rollback already made, is said, not failed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stands: Option<Probe>,
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

/// A read-only command that tells whether a change still stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    pub argv: Vec<String>,
    /// It stands when the command prints something (`ip route show …`); otherwise when it
    /// exits 0 and not when it exits 1 (`iptables -C`, `firewall-cmd --query-rich-rule`).
    pub prints: bool,
}

/// Whether `p`'s change still stands; Err when the probe cannot tell.
pub(crate) fn stands(p: &Probe) -> Result<bool, String> {
    let args: Vec<&str> = p.argv.iter().map(String::as_str).collect();
    match crate::sources::rulesets::run_tool(&args, std::time::Duration::from_secs(10)) {
        Ok(Some(out)) => Ok(!p.prints || !out.trim().is_empty()),
        Ok(None) => Err(format!("{} is not installed", p.argv[0])),
        Err(crate::sources::rulesets::ToolError::Failed { code: Some(1), .. }) if !p.prints => {
            Ok(false)
        }
        Err(e) => Err(e.to_string()),
    }
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
    /// Being applied: the journal holds every before-image and how many changes are made. A
    /// run that died here is rolled back by its reverter or by the next run.
    Applying,
    Applied,
    /// Applied, verified, and reverted at `confirm_by` unless `--confirm ID` comes first.
    AwaitingConfirmation,
    /// Not confirmed in time: everything was restored.
    Reverted,
    /// Verification failed or a change failed: everything was restored.
    RolledBack,
    Undone,
    /// A rollback or revert could not restore everything (`failure` says what): retry with
    /// `--undo ID`.
    RevertFailed,
    /// An undo could not restore everything (`failure` says what): retry with `--undo ID`.
    UndoFailed,
}

/// The safety net of a fix that can cut connectivity, armed before its first change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reverter {
    /// A systemd transient timer (`systemd-run --on-active`): survives the fix process, the
    /// SSH session and logind's KillUserProcesses.
    Timer { unit: String },
    /// A detached process in its own session (where systemd does not run this namespace).
    Process(journal::ProcessId),
}

impl Reverter {
    pub fn kind(&self) -> &'static str {
        match self {
            Reverter::Timer { .. } => "systemd timer",
            Reverter::Process(_) => "process",
        }
    }

    pub fn alive(&self) -> bool {
        match self {
            Reverter::Process(p) => p.alive(),
            Reverter::Timer { unit } => run_command(&[
                "systemctl".into(),
                "is-active".into(),
                "--quiet".into(),
                format!("{unit}.timer"),
            ])
            .is_ok(),
        }
    }
}

/// A fix as journaled under `fixes/ID/record.json`: the intent, every change with its
/// before-image, how far it got, and who enforces its revert.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    pub applied_at: String,
    pub checks: Vec<String>,
    pub state: State,
    pub changes: Vec<Change>,
    /// How many of `changes` were made (each recorded as it completes).
    #[serde(default)]
    pub done: usize,
    /// The process applying it (a dead owner of an `applying` fix means a crash).
    #[serde(default)]
    pub owner: Option<journal::ProcessId>,
    #[serde(default)]
    pub reverter: Option<Reverter>,
    /// Unix seconds: when an unconfirmed fix is reverted.
    #[serde(default)]
    pub confirm_by: Option<u64>,
    /// Why a restore failed (what was kept, and where its content was saved).
    #[serde(default)]
    pub failure: Option<String>,
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

pub(crate) fn change_json(c: &Change) -> serde_json::Value {
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
        Change::Command {
            what, argv, undo, ..
        } => {
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
pub(crate) fn run_command(argv: &[String]) -> Result<(), String> {
    run_command_output(argv).map(|_| ())
}

/// The same, with its output.
pub(crate) fn run_command_output(argv: &[String]) -> Result<String, String> {
    run_command_within(argv, std::time::Duration::from_secs(10))
}

/// A firewall manager's reload (ufw: a Python program restoring every table) may take a
/// while on a loaded machine: it gets longer than a single command.
pub(crate) fn run_reload(argv: &[String]) -> Result<(), String> {
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

pub(crate) fn print_json(v: &serde_json::Value) {
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

/// The failing checks of a fresh diagnosis, the plans that fix them and the ones that have
/// none (with why).
type Planned = (
    Vec<crate::report::Finding>,
    Vec<Plan>,
    Vec<(String, String)>,
);

fn make_plans(config: &Config, opts: &FixOptions, criteria: &crate::checks::Criteria) -> Planned {
    let snapshot = crate::sources::take_snapshot(config, opts.client, None);
    let failing: Vec<crate::report::Finding> = crate::checks::evaluate(&snapshot, criteria)
        .into_iter()
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
    (failing, plans, no_fix)
}

/// Whether two plans make the same changes (an nft rule's marking comment is unique per
/// planning, so it is not compared).
fn same_plans(a: &[Plan], b: &[Plan]) -> bool {
    let unmarked = |plans: &[Plan]| -> Vec<Plan> {
        plans
            .iter()
            .cloned()
            .map(|mut p| {
                for c in &mut p.changes {
                    if let Change::NftInsert { comment, .. } = c {
                        comment.clear();
                    }
                }
                p
            })
            .collect()
    };
    unmarked(a) == unmarked(b)
}

/// `ecs-diag fix [--check ID]... [--client ADDR] [--apply] [--yes] [--json]`: plans without
/// the lock (a person may take a while to answer); then, under the lock, recovers any
/// unfinished fix, plans again, and applies only if the plan is the one shown.
pub fn run(config: &Config, opts: &FixOptions) -> i32 {
    for id in &opts.checks {
        if crate::checks::find(id).is_none() {
            eprintln!(
                "ecs-diag: unknown check id {:?}; `ecs-diag checks` lists them",
                journal::shown(id)
            );
            return crate::exit::USAGE;
        }
    }
    if opts.apply && !is_root() {
        eprintln!(
            "ecs-diag: fix --apply needs root: it writes /proc/sys, /etc and the backups under {}",
            journal::shown_path(&fixes_dir(&config.paths))
        );
        return EXIT_NOPERM;
    }
    // With --yes nobody is asked: the lock is taken and earlier fixes recovered before the
    // one plan, which is then applied as made. Without it the lock waits for the answer.
    let unattended = if opts.apply && opts.yes {
        match lock_and_recover(config) {
            Ok(l) => Some(l),
            Err(code) => return code,
        }
    } else {
        None
    };
    let criteria = crate::checks::Criteria::of(config);
    let (failing, plans, no_fix) = make_plans(config, opts, &criteria);
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
        out.push_str(&plan_text(&plans));
        for (id, why) in &no_fix {
            out.push_str(&format!("Not fixed {id}: {}\n", journal::shown(why)));
        }
        if !opts.apply && !plans.is_empty() {
            out.push_str("Nothing was changed. Run again with --apply to back up, apply, re-check and roll back if the checks are not ok.\n");
        }
        print!("{out}");
    }
    if !opts.apply || plans.is_empty() {
        return 0;
    }
    if unattended.is_some() {
        return transaction::apply(config, opts, plans, &criteria);
    }
    if !confirmed() {
        println!("Nothing was changed.");
        return 0;
    }
    let _lock = match lock_and_recover(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // What was shown is what is applied: anything that changed while the question was open
    // (an edit, another fix) makes a new plan, shown, and nothing applied.
    let (_, again, _) = make_plans(config, opts, &criteria);
    if !same_plans(&again, &plans) {
        eprint!(
            "ecs-diag: the system changed while the plan was shown; nothing was changed. The plan now:\n{}Run again to apply it.\n",
            plan_text(&again)
        );
        return EXIT_ROLLED_BACK;
    }
    transaction::apply(config, opts, again, &criteria)
}

/// The fix lock, with any unfinished earlier fix recovered under it; else the exit code.
fn lock_and_recover(config: &Config) -> Result<transaction::Lock, i32> {
    let lock = transaction::lock(&config.paths).map_err(|e| {
        eprintln!("ecs-diag: {e}");
        crate::exit::OSERR
    })?;
    transaction::say_recovered(&transaction::recover(&config.paths));
    Ok(lock)
}

/// The plans as a person reads them: each check, why, and every change (commands, diffs),
/// names from the system escaped.
fn plan_text(plans: &[Plan]) -> String {
    let mut out = String::new();
    for p in plans {
        out.push_str(&format!("Fix {}: {}\n", p.check, journal::shown(&p.why)));
        for c in &p.changes {
            for l in describe(c).lines() {
                out.push_str(&format!("    {}\n", journal::shown(l)));
            }
        }
    }
    out
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
        let roots = [dir.path()];
        for c in &changes {
            transaction::apply_one(c, &roots).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let said = transaction::restore(&changes, dir.path(), &roots);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(said.len(), 2, "one reload for two: {said:?}");
        assert!(said[1].starts_with("reload after restoring"), "{said:?}");
        assert!(
            transaction::ruleset_dumps(&changes).is_empty(),
            "not ufw: no dump"
        );
        let ufw = vec![Change::Reload {
            what: "ufw reload".into(),
            argv: vec!["ufw".into(), "reload".into()],
        }];
        let names: Vec<String> = transaction::ruleset_dumps(&ufw)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["iptables-save.before", "ip6tables-save.before"]);
        // firewalld: both views of every zone, once for a runtime and a permanent change.
        let rich = |permanent: bool| Change::Command {
            what: "rich rule".into(),
            argv: ["firewall-cmd", if permanent { "--permanent" } else { "-q" }]
                .map(String::from)
                .to_vec(),
            undo: vec![],
            stands: None,
        };
        let dumps = transaction::ruleset_dumps(&[rich(false), rich(true)]);
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
        assert_eq!(transaction::new_file_mode(&new), 0o644, "no sibling");
        let base = dir.path().join("50-cloud-init.yaml");
        std::fs::write(&base, "network: {}\n").unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        assert_eq!(transaction::new_file_mode(&new), 0o600);
        transaction::write_config(&new, "network: {}\n", &[dir.path()]).unwrap();
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
        let roots = [dir.path()];
        for c in &changes {
            transaction::apply_one(c, &roots).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&knob).unwrap(), "0\n");
        assert!(created.exists());
        let backup = tempfile::tempdir().unwrap();
        let restored = transaction::restore(&changes, backup.path(), &roots);
        assert_eq!(restored.len(), 3, "{restored:?}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
        assert_eq!(std::fs::read_to_string(&knob).unwrap(), "1\n");
        assert!(!created.exists());
    }

    /// A restore touches only what still holds what the fix wrote: an edit made since (an
    /// admin's, or a later fix's) is kept and saved beside the backup, the knob someone set
    /// since is left, and both are said; a second restore after settling them finishes.
    #[test]
    fn a_restore_keeps_what_changed_since_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let backup = tempfile::tempdir().unwrap();
        let roots = [dir.path()];
        let file = dir.path().join("90-x.conf");
        std::fs::write(&file, "k = 1\n").unwrap();
        let knob = dir.path().join("knob");
        std::fs::write(&knob, "1\n").unwrap();
        let changes = vec![
            Change::Sysctl {
                key: "k".into(),
                path: knob.clone(),
                from: "1".into(),
                to: "0".into(),
            },
            Change::File {
                path: file.clone(),
                before: Some("k = 1\n".into()),
                after: "k = 0\n".into(),
            },
        ];
        for c in &changes {
            transaction::apply_one(c, &roots).unwrap();
        }
        std::fs::write(&file, "k = 0\n# the admin's line\n").unwrap();
        std::fs::write(&knob, "5\n").unwrap();
        let said = transaction::restore(&changes, backup.path(), &roots);
        assert!(
            said.iter().all(|l| l.starts_with("NOT RESTORED")),
            "{said:?}"
        );
        assert!(
            said.join(" ").contains("changed since the fix: kept"),
            "{said:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "k = 0\n# the admin's line\n"
        );
        assert_eq!(
            std::fs::read_to_string(backup.path().join("90-x.conf.newer")).unwrap(),
            "k = 0\n# the admin's line\n"
        );
        assert_eq!(std::fs::read_to_string(&knob).unwrap(), "5\n");
        // Settled by hand back to what the fix wrote: the retry restores both.
        std::fs::write(&file, "k = 0\n").unwrap();
        std::fs::write(&knob, "0\n").unwrap();
        let said = transaction::restore(&changes, backup.path(), &roots);
        assert!(!said.iter().any(|l| l.starts_with("NOT")), "{said:?}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "k = 1\n");
        assert_eq!(std::fs::read_to_string(&knob).unwrap(), "1\n");
        // Restored already: nothing to do, nothing failed.
        let said = transaction::restore(&changes, backup.path(), &roots);
        assert!(
            said.iter().all(|l| l.contains("before already")),
            "{said:?}"
        );
    }

    #[test]
    fn a_second_run_is_refused_while_one_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PathsConfig {
            state: dir.path().to_path_buf(),
            ..Default::default()
        };
        let first = transaction::lock(&paths).unwrap();
        let e = transaction::lock(&paths).err().unwrap();
        assert!(e.contains("another `ecs-diag fix` is running"), "{e}");
        drop(first);
        assert!(transaction::lock(&paths).is_ok());
        // The lock file is never opened through a symlink.
        let dir2 = tempfile::tempdir().unwrap();
        let paths2 = PathsConfig {
            state: dir2.path().to_path_buf(),
            ..Default::default()
        };
        std::fs::create_dir_all(dir2.path().join("fixes")).unwrap();
        let victim = dir2.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir2.path().join("fixes/lock")).unwrap();
        assert!(transaction::lock(&paths2).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    }

    fn record(id: &str, at: &str, state: State) -> Record {
        Record {
            id: id.into(),
            applied_at: at.into(),
            checks: vec!["sysctl.icmp_echo".into()],
            state,
            changes: vec![],
            done: 0,
            owner: None,
            reverter: None,
            confirm_by: None,
            failure: None,
        }
    }

    /// Oldest first; ids unique even within one millisecond; backups private; a damaged
    /// record is listed as damaged, not hidden.
    #[test]
    fn history_ids_backups_and_damage() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = PathsConfig {
            state: dir.path().to_path_buf(),
            ..Default::default()
        };
        let fixes = fixes_dir(&paths);
        let b = journal::Journal::begin(
            &fixes,
            record("", "2026-01-02T00:00:00Z", State::Applied),
            "T1",
        )
        .unwrap();
        let a = journal::Journal::begin(
            &fixes,
            record("", "2026-01-01T00:00:00Z", State::Applied),
            "T1",
        )
        .unwrap();
        assert_eq!((b.record.id.as_str(), a.record.id.as_str()), ("T1", "T1-2"));
        a.keep("0-x.conf", b"secret\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fixes), 0o700);
        assert_eq!(mode(&a.dir), 0o700);
        assert_eq!(mode(&a.dir.join("0-x.conf")), 0o600);
        assert_eq!(mode(&a.dir.join("record.json")), 0o600);
        std::fs::create_dir(fixes.join("T0")).unwrap();
        std::fs::write(fixes.join("T0/record.json"), "{ not json").unwrap();
        let found: Vec<String> = journal::found(&fixes)
            .into_iter()
            .map(|f| match f {
                journal::Found::Record(r) => r.id,
                journal::Found::Damaged { id, why } => {
                    assert!(why.contains("damaged"), "{why}");
                    format!("damaged {id}")
                }
            })
            .collect();
        assert_eq!(found, ["damaged T0", "T1-2", "T1"]);
    }

    /// A later run rolls back an `applying` fix whose process is gone (the change in flight
    /// included), and leaves one whose process lives.
    #[test]
    fn recovery_rolls_back_what_a_dead_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let knob = dir.path().join("knob");
        std::fs::write(&knob, "0\n").unwrap();
        let file = etc.join("a.conf");
        std::fs::write(&file, "new\n").unwrap();
        std::fs::write(etc.join(".a.conf.ecs-diag-tmp"), "half").unwrap();
        let paths = PathsConfig {
            state: dir.path().join("state"),
            etc: etc.clone(),
            ..Default::default()
        };
        let mut r = record("", "2026-01-01T00:00:00Z", State::Applying);
        r.changes = vec![
            Change::Sysctl {
                key: "k".into(),
                path: knob.clone(),
                from: "1".into(),
                to: "0".into(),
            },
            Change::File {
                path: file.clone(),
                before: Some("old\n".into()),
                after: "new\n".into(),
            },
        ];
        // Died after the first change was recorded, while the file was being written.
        r.done = 1;
        r.owner = Some(journal::ProcessId {
            pid: std::process::id(),
            start: 0,
        });
        let j = journal::Journal::begin(&fixes_dir(&paths), r.clone(), "T").unwrap();
        let said = transaction::recover(&paths);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("rolled back"), "{said:?}");
        assert_eq!(std::fs::read_to_string(&knob).unwrap(), "1\n");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old\n");
        assert!(!etc.join(".a.conf.ecs-diag-tmp").exists());
        let back = journal::found(&fixes_dir(&paths));
        assert!(matches!(&back[0], journal::Found::Record(r) if r.state == State::RolledBack));
        assert!(transaction::recover(&paths).is_empty(), "once");
        // A live owner is left alone.
        let mut live = r;
        live.owner = journal::ProcessId::this();
        drop(j);
        journal::Journal::begin(&fixes_dir(&paths), live, "U").unwrap();
        assert!(transaction::recover(&paths).is_empty());
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
