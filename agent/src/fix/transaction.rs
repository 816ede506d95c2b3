//! One fix as a transaction, in the order it happens:
//!
//! 1. under the lock (never held while a person is asked), any unfinished earlier fix is
//!    recovered ([`journal::recover`]);
//! 2. the journal is begun: the intent, every change with its before-image, each touched
//!    ruleset as its save tool prints it and a copy of each file — fsynced, 0600 in a 0700
//!    directory — before anything changes (`journaled`);
//! 3. for a change that can cut connectivity, the safety net is armed before the first change
//!    (`armed`): a systemd transient timer where systemd runs this namespace, else a detached
//!    reverter whose pid and start time are recorded;
//! 4. each change is made and recorded as made (`change-N`);
//! 5. after a settle the checks are run again (`verified`); anything not `ok` rolls every
//!    change back;
//! 6. the final state is saved (`saved`): applied, or awaiting confirmation until
//!    `confirm_by`, which the reverter enforces.
//!
//! A restore (rollback, revert, undo, recovery) touches a file or a kernel parameter only if
//! it still holds what the fix wrote; newer content is kept, saved beside the backup, and the
//! restore is recorded as failed (and can be retried) — never silently overwritten. The step
//! names in parentheses are the crash points of the test harness (`ECS_DIAG_FIX_CRASH_AT`).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::journal::{self, crash_point, shown, shown_path, Identity, Journal, ProcessId};
use super::{
    change_json, firewall, print_json, run_command, run_command_output, run_reload, Change,
    FixOptions, Plan, Record, Reverter, State, EXIT_NOPERM, EXIT_ROLLED_BACK,
};
use crate::config::{Config, PathsConfig};
use crate::report::Status;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn fixes_dir(paths: &PathsConfig) -> PathBuf {
    paths.state.join("fixes")
}

/// Held while a fix is applied, reverted or undone: a second run refuses instead of
/// interleaving.
pub struct Lock(#[allow(dead_code)] std::fs::File);

pub fn lock(paths: &PathsConfig) -> Result<Lock, String> {
    lock_with(paths, libc::LOCK_EX | libc::LOCK_NB)
}

/// Waits for the lock (the reverter: a fix being applied or undone finishes first).
fn lock_waiting(paths: &PathsConfig) -> Result<Lock, String> {
    lock_with(paths, libc::LOCK_EX)
}

fn lock_with(paths: &PathsConfig, how: libc::c_int) -> Result<Lock, String> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let dir = fixes_dir(paths);
    journal::private_dir(&dir).map_err(|e| format!("cannot create {}: {e}", shown_path(&dir)))?;
    let path = dir.join("lock");
    // Never through a symlink: the lock file is created where it is named.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(journal::BACKUP_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", shown_path(&path)))?;
    // SAFETY: flock on a descriptor this function owns; it is released when the file closes.
    let r = unsafe { libc::flock(file.as_raw_fd(), how) };
    if r != 0 {
        return Err(format!(
            "another `ecs-diag fix` is running ({} is locked): wait for it to finish",
            shown_path(&path)
        ));
    }
    Ok(Lock(file))
}

/// The roots a fix may write files beneath.
fn roots(paths: &PathsConfig) -> Vec<&Path> {
    vec![paths.etc.as_path()]
}

/// A new file's mode: that of a file beside it with the same extension (netplan files may be
/// root-only, as cloud-init writes them, or readable, as the admin chose), else 0644.
pub fn new_file_mode(path: &Path) -> u32 {
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

/// Writes a configuration file a fix changes: resolved beneath the roots, identity kept.
pub fn write_config(path: &Path, text: &str, roots: &[&Path]) -> Result<(), String> {
    let real = journal::resolve_within(path, roots)?;
    journal::write_durable(
        &real,
        text.as_bytes(),
        Identity::KeepOr(new_file_mode(&real)),
    )
}

pub fn apply_one(c: &Change, roots: &[&Path]) -> Result<(), String> {
    match c {
        Change::Sysctl { path, to, key, .. } => std::fs::write(path, format!("{to}\n"))
            .map_err(|e| format!("cannot set {key} ({}): {e}", shown_path(path))),
        Change::File { path, after, .. } => write_config(path, after, roots),
        Change::Command { argv, .. } => run_command(argv),
        Change::Reload { argv, .. } => run_reload(argv),
        Change::NftInsert { .. } => run_command(&firewall::nft_insert_argv(c)),
    }
}

/// Keeps newer content found where a restore would write: saved beside the backup.
fn keep_newer(dir: &Path, path: &Path, now: &[u8]) -> String {
    let name = format!(
        "{}.newer",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into())
    );
    match journal::write_durable(&dir.join(&name), now, Identity::Private) {
        Ok(()) => format!(
            "its content now is saved as {}",
            shown_path(&dir.join(name))
        ),
        Err(e) => format!("its content now could not be saved: {e}"),
    }
}

/// Undoes one change if it still stands as the fix left it; the line says what was restored,
/// or (Err) why not — newer content is kept.
fn restore_one(c: &Change, dir: &Path, roots: &[&Path]) -> Result<String, String> {
    match c {
        Change::Sysctl {
            path,
            from,
            to,
            key,
        } => {
            let now = std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("cannot read {key} ({}): {e}", shown_path(path)))?;
            if now == *from {
                return Ok(format!("{key} = {from} (as before already)"));
            }
            if now != *to {
                return Err(format!(
                    "{key} is {} now, not the {to} the fix set: kept",
                    shown(&now)
                ));
            }
            std::fs::write(path, format!("{from}\n"))
                .map(|_| format!("{key} = {from}"))
                .map_err(|e| format!("cannot restore {key} ({}): {e}", shown_path(path)))
        }
        Change::File {
            path,
            before,
            after,
        } => {
            let show = shown_path(path);
            let now = match std::fs::read(path) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("cannot read {show}: {e}")),
            };
            if now.as_deref() == before.as_deref().map(str::as_bytes) {
                return Ok(format!("{show} as before already"));
            }
            if now.as_deref() != Some(after.as_bytes()) {
                let kept = now
                    .as_deref()
                    .map(|n| keep_newer(dir, path, n))
                    .unwrap_or_else(|| "it was removed since".to_string());
                return Err(format!(
                    "{show} changed since the fix: kept, not overwritten ({kept})"
                ));
            }
            match before {
                Some(b) => write_config(path, b, roots)
                    .map(|_| format!("{show} restored"))
                    .map_err(|e| format!("cannot restore {show}: {e}")),
                None => journal::remove_durable(path)
                    .map(|_| format!("{show} removed (it did not exist)"))
                    .map_err(|e| format!("cannot remove {show}: {e}")),
            }
        }
        Change::Command {
            what, undo, stands, ..
        } => {
            // Compare before restore, as for files: a change that no longer stands (removed
            // since, or a rollback already made) has nothing to undo. A probe that cannot
            // tell leaves it to the undo itself.
            if let Some(Ok(false)) = stands.as_ref().map(super::stands) {
                return Ok(format!("{what}: as before already (nothing to undo)"));
            }
            run_command(undo)
                .map(|_| format!("{what} undone ({})", undo.join(" ")))
                .map_err(|e| format!("cannot undo {what}: {e}"))
        }
        Change::NftInsert {
            family,
            table,
            chain,
            comment,
            ..
        } => match firewall::nft_delete_commented(family, table, chain, comment) {
            Ok(Some(h)) => Ok(format!(
                "nft rule {comment:?} (handle {h}) deleted from {family} {table} {chain}"
            )),
            Ok(None) => Ok(format!(
                "nft rule {comment:?}: as before already (no rule carries it in {family} {table} {chain})"
            )),
            Err(e) => Err(format!("cannot delete the nft rule {comment:?}: {e}")),
        },
        Change::Reload { what, argv } => run_reload(argv)
            .map(|_| format!("{what} after restoring ({})", argv.join(" ")))
            .map_err(|e| format!("cannot {what}: {e}")),
    }
}

/// Restores `changes` in reverse order, then runs each reload once so the manager loads the
/// restored files. A file two changes of the fix wrote is restored once, from the first
/// before-image, if it holds the last after-image. Every line says what was restored, or
/// `NOT RESTORED: why`.
pub fn restore(changes: &[Change], dir: &Path, roots: &[&Path]) -> Vec<String> {
    // The same file twice: one change from the first `before` to the last `after`.
    let mut merged: Vec<Change> = Vec::new();
    for c in changes {
        if let Change::File { path, after, .. } = c {
            if let Some(Change::File { after: a, .. }) = merged
                .iter_mut()
                .find(|m| matches!(m, Change::File { path: p, .. } if p == path))
            {
                *a = after.clone();
                continue;
            }
        }
        merged.push(c.clone());
    }
    let mut said: Vec<String> = merged
        .iter()
        .rev()
        .filter(|c| !matches!(c, Change::Reload { .. }))
        .map(|c| restore_one(c, dir, roots).unwrap_or_else(|e| format!("NOT RESTORED: {e}")))
        .collect();
    let mut reloaded: Vec<&Vec<String>> = Vec::new();
    for c in &merged {
        if let Change::Reload { argv, .. } = c {
            if !reloaded.contains(&argv) {
                reloaded.push(argv);
                said.push(
                    restore_one(c, dir, roots).unwrap_or_else(|e| format!("NOT RESTORED: {e}")),
                );
            }
        }
    }
    said
}

/// Rolls back a fix that stopped after `done` changes: the change that was in flight first (a
/// file or a kernel parameter is compared as always; a command may not have run, so an undo
/// that finds nothing to undo is said, not failed), then every change made, in reverse.
pub fn roll_back(changes: &[Change], done: usize, dir: &Path, roots: &[&Path]) -> Vec<String> {
    // A write the stop cut short leaves its temporary file: it goes first.
    journal::clean_tmp(changes);
    let mut said = Vec::new();
    if let Some(c) = changes.get(done) {
        match c {
            Change::Reload { .. } => {}
            Change::File { .. } | Change::Sysctl { .. } => said.push(
                restore_one(c, dir, roots).unwrap_or_else(|e| format!("NOT RESTORED: {e}")),
            ),
            Change::Command { .. } | Change::NftInsert { .. } => {
                said.push(restore_one(c, dir, roots).unwrap_or_else(|e| {
                    format!("the change in flight when the fix stopped was not made (its undo found nothing to undo: {e})")
                }))
            }
        }
    }
    said.extend(restore(&changes[..done.min(changes.len())], dir, roots));
    said
}

fn failures(said: &[String]) -> Option<String> {
    let failed: Vec<&str> = said
        .iter()
        .filter(|l| l.starts_with("NOT RESTORED"))
        .map(String::as_str)
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// The rulesets a fix's firewall changes touch, as their save tools print them: (file name in
/// the backup, argv). `iptables-nft` → `iptables-nft-save`; a native nft change → `nft list
/// ruleset`.
pub fn ruleset_dumps(changes: &[Change]) -> Vec<(String, Vec<String>)> {
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

/// The backups people read beside the record: each touched ruleset as its save tool prints
/// it, and each file as it was.
fn back_up(j: &Journal) -> Result<(), String> {
    for (name, argv) in ruleset_dumps(&j.record.changes) {
        let text = run_command_output(&argv)
            .map_err(|e| format!("cannot back up the ruleset ({}): {e}", argv.join(" ")))?;
        j.keep(&name, text.as_bytes())?;
    }
    for (i, c) in j.record.changes.iter().enumerate() {
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
            j.keep(&name, before.as_bytes())?;
        }
    }
    Ok(())
}

/// `20261204T182059.045Z`: sortable; made unique by [`Journal::begin`].
fn stamp() -> String {
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

/// How long a change is left to settle before the checks are run again: a carrier coming up,
/// and whatever resets a setting behind the fix's back (a configuration agent, a network
/// manager re-applying its own) within that time, is seen by the verification, not missed by
/// a re-check made microseconds after the write.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether this process shares PID 1's network and mount namespaces: only then does a
/// systemd transient timer revert the same network and files (a test namespace, a container
/// or `ip netns exec` would have PID 1 revert the host's).
fn systemd_runs_here() -> bool {
    let same = |ns: &str| {
        let a = std::fs::read_link(format!("/proc/self/ns/{ns}")).ok();
        let b = std::fs::read_link(format!("/proc/1/ns/{ns}")).ok();
        a.is_some() && a == b
    };
    Path::new("/run/systemd/system").is_dir() && same("net") && same("mnt")
}

/// Arms the safety net of fix `id`, before its first change: a transient timer where systemd
/// runs here (it survives the fix process, the SSH session and logind's KillUserProcesses),
/// else a detached reverter in its own session.
fn arm_reverter(
    config_path: Option<&Path>,
    id: &str,
    revert_after: u64,
) -> Result<Reverter, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut args: Vec<String> = vec![
        "fix".into(),
        "--revert-pending".into(),
        id.into(),
        // The reverter polls the journal from a second on (`--revert-after` takes 1 s at
        // least); the deadline itself is the journal's `confirm_by`.
        "--revert-after".into(),
        "1".into(),
    ];
    if let Some(c) = config_path {
        args.push("--config".into());
        args.push(c.to_string_lossy().into_owned());
    }
    if systemd_runs_here() {
        let unit = format!("ecs-diag-revert-{}", id.replace(['.', ':'], "-"));
        let mut argv = vec![
            "systemd-run".to_string(),
            "--quiet".into(),
            "--collect".into(),
            format!("--unit={unit}"),
            format!("--on-active={revert_after}"),
            "--timer-property=AccuracySec=100ms".into(),
            exe.to_string_lossy().into_owned(),
        ];
        argv.extend(args);
        run_command(&argv).map_err(|e| format!("cannot arm the revert timer: {e}"))?;
        return Ok(Reverter::Timer { unit });
    }
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the reverter: {e}"))?;
    ProcessId::of(child.id())
        .map(Reverter::Process)
        .ok_or_else(|| "the reverter ended at once".to_string())
}

/// Applies the plans (the caller holds the lock and has recovered earlier fixes).
pub fn apply(
    config: &Config,
    opts: &FixOptions,
    plans: Vec<Plan>,
    criteria: &crate::checks::Criteria,
) -> i32 {
    let fixes = fixes_dir(&config.paths);
    let roots = roots(&config.paths);
    let cuts = plans.iter().any(|p| p.cuts_connectivity);
    let record = Record {
        id: String::new(),
        applied_at: crate::now_rfc3339(),
        checks: plans.iter().map(|p| p.check.to_string()).collect(),
        state: State::Applying,
        changes: plans.iter().flat_map(|p| p.changes.clone()).collect(),
        done: 0,
        owner: ProcessId::this(),
        reverter: None,
        confirm_by: None,
        failure: None,
    };
    let mut j = match Journal::begin(&fixes, record, &stamp()).and_then(|j| back_up(&j).map(|_| j))
    {
        Ok(j) => j,
        Err(e) => {
            eprintln!("ecs-diag: {e}; nothing was changed");
            return crate::exit::OSERR;
        }
    };
    let id = j.record.id.clone();
    crash_point("journaled");
    if cuts {
        match arm_reverter(opts.config_path.as_deref(), &id, opts.revert_after) {
            Ok(r) => j.record.reverter = Some(r),
            Err(e) => {
                j.record.state = State::RolledBack;
                j.record.failure = Some(e.clone());
                let _ = j.save_final();
                eprintln!("ecs-diag: {e}: no safety net, so nothing was changed");
                return crate::exit::OSERR;
            }
        }
        if let Err(e) = j.save() {
            eprintln!("ecs-diag: {e}; nothing was changed (the reverter finds nothing to do)");
            return crate::exit::OSERR;
        }
        crash_point("armed");
    }
    let mut failure = None;
    for i in 0..j.record.changes.len() {
        if let Err(e) = apply_one(&j.record.changes[i], &roots) {
            failure = Some(e);
            break;
        }
        if let Err(e) = j.step(i + 1) {
            failure = Some(e);
            break;
        }
        crash_point(&format!("change-{}", i + 1));
    }
    let verified: Vec<(String, Status, String)> = if failure.is_none() {
        std::thread::sleep(SETTLE);
        let snapshot = crate::sources::take_snapshot(config, opts.client, None);
        crate::checks::evaluate(&snapshot, criteria)
            .into_iter()
            .filter(|f| j.record.checks.contains(&f.id))
            .map(|f| (f.id.clone(), f.status, f.summary.clone()))
            .collect()
    } else {
        Vec::new()
    };
    crash_point("verified");
    let all_ok = failure.is_none()
        && !verified.is_empty()
        && verified.iter().all(|(_, s, _)| *s == Status::Ok);
    let mut restored = Vec::new();
    if all_ok {
        j.record.state = if cuts {
            State::AwaitingConfirmation
        } else {
            State::Applied
        };
        j.record.confirm_by = cuts.then(|| crate::unix_ms() / 1000 + opts.revert_after);
    } else {
        // Everything made so far, and the change that failed (it may have half-happened).
        restored = roll_back(&j.record.changes, j.record.done, &j.dir, &roots);
        j.record.failure = failures(&restored);
        j.record.state = if j.record.failure.is_some() {
            State::RevertFailed
        } else {
            State::RolledBack
        };
    }
    if let Err(e) = j.save_final() {
        // The journal still says `applying`: the reverter or the next run would roll it back
        // later. Do it now, and say so, rather than report a success the record contradicts.
        let said = restore(&j.record.changes, &j.dir, &roots);
        j.record.failure = Some(format!("{e}; rolled back: {}", said.join("; ")));
        j.record.state = if failures(&said).is_some() {
            State::RevertFailed
        } else {
            State::RolledBack
        };
        let recorded = match j.save() {
            Ok(()) => format!("recorded as {}", state_name(j.record.state)),
            // Each restore compares first, so running it again finds nothing left to undo.
            Err(_) => "the journal still says applying: the next ecs-diag run (or the reverter) finds it rolled back and records that".to_string(),
        };
        eprintln!(
            "ecs-diag: {}: the fix cannot be recorded, so it was rolled back ({recorded}): {}",
            shown(&e),
            shown(&said.join("; "))
        );
        return EXIT_ROLLED_BACK;
    }
    crash_point("saved");
    let reason = failure.clone().unwrap_or_else(|| {
        verified
            .iter()
            .filter(|(_, s, _)| *s != Status::Ok)
            .map(|(id, s, why)| format!("{id} is {} after the fix: {why}", s.as_str()))
            .collect::<Vec<_>>()
            .join("; ")
    });
    let r = &j.record;
    if opts.json {
        print_json(&json!({
            "version": 1,
            "applied": all_ok,
            "id": id,
            "state": r.state,
            "checks": r.checks,
            "changes": r.changes.iter().map(change_json).collect::<Vec<_>>(),
            "verified": verified.iter().map(|(id, s, why)| json!({"check": id, "status": s.as_str(), "summary": why})).collect::<Vec<_>>(),
            "rolled_back_because": (!all_ok).then_some(&reason),
            "restored": restored,
            "backup": j.dir,
            "revert_after_s": cuts.then_some(opts.revert_after),
            "reverter": r.reverter,
        }));
    } else if r.state == State::AwaitingConfirmation {
        println!(
            "Applied fix {id}: {} now ok. It can cut connectivity: it is reverted in {} s unless you run `ecs-diag fix --confirm {id}` (from a new session, to prove you still have access). Backup: {}",
            r.checks.join(", "),
            opts.revert_after,
            shown_path(&j.dir)
        );
    } else if all_ok {
        println!(
            "Applied fix {id}: {} now ok. Backup: {} (undo: ecs-diag fix --undo {id})",
            r.checks.join(", "),
            shown_path(&j.dir)
        );
    } else {
        println!("Rolled back fix {id}: {}", shown(&reason));
        for l in &restored {
            println!("    {}", shown(l));
        }
    }
    if all_ok {
        0
    } else {
        EXIT_ROLLED_BACK
    }
}

/// Fix `id`'s record, read from its own directory (the reverter asks five times a second: it
/// does not read every other fix). An id that is not a plain name finds nothing.
fn record_of(paths: &PathsConfig, id: &str) -> Option<Record> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return None;
    }
    let text = std::fs::read_to_string(fixes_dir(paths).join(id).join("record.json")).ok()?;
    serde_json::from_str::<Record>(&text)
        .ok()
        .filter(|r| r.id == id)
}

/// The reverter of fix `id` (started before its first change): waits while the fix is being
/// applied by a live process; rolls it back if that process died; reverts it at `confirm_by`
/// unless it was confirmed; ends once the fix is settled either way.
pub fn revert_pending(config: &Config, id: &str, seconds: u64) -> i32 {
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    let fixes = fixes_dir(&config.paths);
    let roots = roots(&config.paths);
    loop {
        let Some(record) = record_of(&config.paths, id) else {
            return crate::exit::NOINPUT;
        };
        let now = crate::unix_ms() / 1000;
        let due = match record.state {
            State::Applying => record.owner.is_none_or(|o| !o.alive()),
            State::AwaitingConfirmation => record.confirm_by.is_none_or(|t| now >= t),
            _ => return 0,
        };
        if !due {
            std::thread::sleep(std::time::Duration::from_millis(200));
            continue;
        }
        let Ok(_lock) = lock_waiting(&config.paths) else {
            return crate::exit::OSERR;
        };
        // Under the lock, as it stands now (a --confirm may have come first).
        let Some(mut record) = record_of(&config.paths, id) else {
            return crate::exit::NOINPUT;
        };
        let dir = fixes.join(id);
        let said = match record.state {
            State::Applying if record.owner.is_none_or(|o| !o.alive()) => {
                roll_back(&record.changes, record.done, &dir, &roots)
            }
            State::AwaitingConfirmation if record.confirm_by.is_none_or(|t| now >= t) => {
                restore(&record.changes, &dir, &roots)
            }
            State::Applying | State::AwaitingConfirmation => continue,
            _ => return 0,
        };
        record.failure = failures(&said);
        record.state = match (record.state, record.failure.is_some()) {
            (_, true) => State::RevertFailed,
            (State::Applying, false) => State::RolledBack,
            (_, false) => State::Reverted,
        };
        return match journal::save_record(&dir, &record) {
            Ok(()) => 0,
            Err(_) => crate::exit::OSERR,
        };
    }
}

/// What `--confirm` and `--undo` start with: root, the lock, recovery, and fix `id`'s record;
/// else the line said and the exit code.
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
    say_recovered(&recover(&config.paths));
    match record_of(&config.paths, id) {
        Some(r) => Ok((lock, r)),
        None => {
            eprintln!(
                "ecs-diag: no fix {:?} in {} (`ecs-diag fix --history` lists them)",
                shown(id),
                shown_path(&fixes_dir(&config.paths))
            );
            Err(crate::exit::NOINPUT)
        }
    }
}

/// Recovers unfinished fixes (the caller holds the lock and is root).
pub fn recover(paths: &PathsConfig) -> Vec<String> {
    let roots = roots(paths);
    journal::recover(&fixes_dir(paths), |record, dir| match record.state {
        State::Applying => roll_back(&record.changes, record.done, dir, &roots),
        _ => restore(&record.changes, dir, &roots),
    })
}

pub fn say_recovered(lines: &[String]) {
    for l in lines {
        eprintln!("ecs-diag: {}", shown(l));
    }
}

/// At the start of `check` and `serve`: as root, finishes any fix a crash left unfinished;
/// otherwise nothing (the lock and the journal are root's).
pub fn recover_at_start(paths: &PathsConfig) {
    if !is_root() || !fixes_dir(paths).is_dir() {
        return;
    }
    if let Ok(_lock) = lock(paths) {
        say_recovered(&recover(paths));
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
            "ecs-diag: fix {} does not await confirmation (it is {})",
            shown(id),
            state_name(record.state)
        );
        return crate::exit::USAGE;
    }
    record.state = State::Applied;
    if let Err(e) = journal::save_record(&fixes_dir(&config.paths).join(&record.id), &record) {
        eprintln!("ecs-diag: {e}");
        return crate::exit::OSERR;
    }
    // The timer is no longer needed (the reverter would find nothing to do anyway).
    if let Some(Reverter::Timer { unit }) = &record.reverter {
        let _ = run_command(&["systemctl".into(), "stop".into(), format!("{unit}.timer")]);
    }
    if json {
        print_json(&json!({"version": 1, "id": record.id, "state": record.state}));
    } else {
        println!("Confirmed fix {}: it stays.", record.id);
    }
    0
}

pub fn state_name(s: State) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `ecs-diag fix --history [--json]`: every fix, oldest first, with whether its reverter is
/// alive and why a restore failed; a damaged record is shown as damaged.
pub fn history(config: &Config, json: bool) -> i32 {
    if is_root() {
        if let Ok(_lock) = lock(&config.paths) {
            say_recovered(&recover(&config.paths));
        }
    }
    let all = journal::found(&fixes_dir(&config.paths));
    let reverter = |r: &Record| {
        let pending = matches!(r.state, State::Applying | State::AwaitingConfirmation);
        r.reverter.as_ref().filter(|_| pending).map(|rv| {
            let mut v = json!({"kind": rv.kind(), "alive": rv.alive()});
            match rv {
                Reverter::Process(p) => v["pid"] = json!(p.pid),
                Reverter::Timer { unit } => v["unit"] = json!(unit),
            }
            v
        })
    };
    if json {
        print_json(&json!(all
            .iter()
            .map(|f| match f {
                journal::Found::Record(r) => json!({"id": r.id, "applied_at": r.applied_at, "checks": r.checks,
                    "state": r.state, "failure": r.failure, "reverter": reverter(r), "confirm_by": r.confirm_by}),
                journal::Found::Damaged { id, why } => json!({"id": id, "state": "damaged", "failure": why}),
            })
            .collect::<Vec<_>>()));
        return 0;
    }
    if all.is_empty() {
        println!("No fix has been applied.");
    }
    for f in &all {
        match f {
            journal::Found::Record(r) => {
                let mut line = format!(
                    "{}  {}  {:<21}  {}",
                    r.id,
                    r.applied_at,
                    state_name(r.state),
                    r.checks.join(", ")
                );
                if let Some(v) = reverter(r) {
                    line.push_str(&format!(
                        "  (reverter: {} {})",
                        v["kind"].as_str().unwrap_or("?"),
                        if v["alive"] == true {
                            "alive"
                        } else {
                            "NOT running"
                        }
                    ));
                }
                if let Some(why) = &r.failure {
                    line.push_str(&format!("\n    {}", shown(why)));
                }
                println!("{line}");
            }
            journal::Found::Damaged { id, why } => {
                println!("{}  damaged: {}", shown(id), shown(why));
            }
        }
    }
    0
}

/// `ecs-diag fix --undo ID [--json]`: restores what the fix changed wherever it still stands
/// as the fix left it; anything changed since is kept (saved beside the backup) and the undo
/// is recorded as failed, to be retried once that is settled.
pub fn undo(config: &Config, id: &str, json: bool) -> i32 {
    let (_lock, mut record) = match held_record(config, id, "--undo", "/proc/sys and /etc") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let dir = fixes_dir(&config.paths).join(&record.id);
    if !matches!(
        record.state,
        State::Applied | State::AwaitingConfirmation | State::UndoFailed | State::RevertFailed
    ) {
        eprintln!(
            "ecs-diag: fix {} is {}: nothing to undo",
            record.id,
            state_name(record.state)
        );
        return crate::exit::USAGE;
    }
    let roots = roots(&config.paths);
    let restored = restore(&record.changes, &dir, &roots);
    record.failure = failures(&restored);
    record.state = if record.failure.is_some() {
        State::UndoFailed
    } else {
        State::Undone
    };
    let saved = journal::save_record(&dir, &record);
    if json {
        print_json(
            &json!({"version": 1, "id": record.id, "state": record.state, "restored": restored, "failure": record.failure}),
        );
    } else {
        println!("Undid fix {}:", record.id);
        for r in &restored {
            println!("    {}", shown(r));
        }
    }
    if let Err(e) = saved {
        eprintln!("ecs-diag: {e}");
        return crate::exit::OSERR;
    }
    if record.failure.is_some() {
        EXIT_ROLLED_BACK
    } else {
        0
    }
}
