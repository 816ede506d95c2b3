//! Fixes for the kernel parameters the `sysctl.*` checks fail on: `icmp_echo_ignore_all`
//! (IPv4, `sysctl.icmp_echo`) and `echo_ignore_all` (IPv6, `sysctl.icmp_echo6`), now and after
//! a reboot. The running value is written under `[paths] proc`; the persisted one by editing
//! the exact sysctl.d / sysctl.conf line that wins (commented with why), or, where the winner is
//! a vendor file or a glob, by an explicit line in `/etc/sysctl.d/zz-ecs-diag.conf`. Every plan
//! is checked before it is offered: with the planned files, systemd-sysctl's order must give
//! the wanted value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Change, Plan};
use crate::config::PathsConfig;
use crate::snapshot::Snapshot;
use crate::sources::sysctl as source;

/// The file an explicit setting goes to when the winner cannot be edited in place.
pub const OVERRIDE_FILE: &str = "sysctl.d/zz-ecs-diag.conf";

/// Files as the plans made so far will leave them: a second fix in the same file edits the
/// first one's result.
pub type Pending = BTreeMap<PathBuf, String>;

/// What to set, and why.
pub struct Setting<'a> {
    pub key: &'a str,
    pub want: &'a str,
    pub why: &'a str,
    /// Persist the value even where no file sets the key (the boot default may be the fault,
    /// as `conf.default.rp_filter` is for a new interface).
    pub always_persist: bool,
}

/// The plan that makes `key` `want` now and after reboot, or why there is none.
pub fn plan(
    s: &Snapshot,
    paths: &PathsConfig,
    pending: &mut Pending,
    check: &'static str,
    key: &str,
    want: &str,
    why: &str,
) -> Result<Plan, String> {
    plan_settings(
        s,
        paths,
        pending,
        check,
        &[Setting {
            key,
            want,
            why,
            always_persist: false,
        }],
    )
}

/// The plan for several settings of one check.
pub fn plan_settings(
    s: &Snapshot,
    paths: &PathsConfig,
    pending: &mut Pending,
    check: &'static str,
    settings: &[Setting],
) -> Result<Plan, String> {
    let mut changes = Vec::new();
    for set in settings {
        changes.extend(setting_changes(s, paths, pending, set)?);
    }
    if changes.is_empty() {
        return Err("already set now and after reboot".to_string());
    }
    Ok(Plan {
        check,
        why: settings
            .iter()
            .map(|set| format!("{} = {} ({})", set.key, set.want, set.why))
            .collect::<Vec<_>>()
            .join("; "),
        changes,
        cuts_connectivity: false,
    })
}

fn setting_changes(
    s: &Snapshot,
    paths: &PathsConfig,
    pending: &mut Pending,
    set: &Setting,
) -> Result<Vec<Change>, String> {
    let (key, want, why) = (set.key, set.want, set.why);
    let sysctls = s
        .sysctls
        .ok()
        .map_err(|e| format!("cannot read the sysctls: {e}"))?;
    let Some(current) = sysctls.get(key) else {
        return Err(format!("{key} was not read"));
    };
    let mut changes = Vec::new();
    match (&current.now, current.absent) {
        (_, true) => return Err(format!("this kernel has no {key}")),
        (Some(now), _) if now != want => changes.push(Change::Sysctl {
            key: key.to_string(),
            path: proc_path(&paths.proc, key),
            from: now.clone(),
            to: want.to_string(),
        }),
        (Some(_), _) => {}
        (None, _) => {
            return Err(format!(
                "cannot read {key} now: {}",
                current.error.as_deref().unwrap_or("unknown error")
            ))
        }
    }
    if let Some(edit) = persisted_edit(paths, pending, key, want, why, set.always_persist)? {
        if let Change::File { path, after, .. } = &edit {
            pending.insert(path.clone(), after.clone());
        }
        changes.push(edit);
    }
    if changes.is_empty() {
        return Err(format!("{key} is already {want} now and after reboot"));
    }
    Ok(changes)
}

/// `/proc/sys/net/ipv4/icmp_echo_ignore_all` for `net.ipv4.icmp_echo_ignore_all`.
pub fn proc_path(proc_root: &Path, key: &str) -> PathBuf {
    proc_root.join("sys").join(key.replace('.', "/"))
}

/// The file edit that makes `key` `want` after reboot (None: it already is, or nothing sets
/// it and the kernel default is what is wanted).
fn persisted_edit(
    paths: &PathsConfig,
    pending: &Pending,
    key: &str,
    want: &str,
    why: &str,
    always_persist: bool,
) -> Result<Option<Change>, String> {
    // A file systemd-sysctl reads but this reader cannot (a byte that is not UTF-8, over
    // 1 MiB) could set the old value again at boot unseen: refused, not guessed past.
    for f in source::sysctl_files(paths) {
        if pending.contains_key(&f) {
            continue;
        }
        match crate::sources::read_config_file(&f) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "{} cannot be read as text ({e}): systemd-sysctl applies it at boot, so what {key} becomes then cannot be told; repair or remove that file first",
                    super::journal::shown_path(&f)
                ))
            }
        }
    }
    // The winner as the files are (with the earlier plans' edits), read now.
    let winner = match source::after_reboot(&simulate(paths, pending), key) {
        Some(w) if w.value == want => return Ok(None),
        Some(w) => Some(w),
        // Nothing persists it: the kernel's default applies at boot (0 for the echo knobs).
        None if !always_persist => return Ok(None),
        None => None,
    };
    let winner_path = winner.as_ref().map(|w| PathBuf::from(&w.file));
    let in_etc = winner_path
        .as_ref()
        .is_some_and(|p| p.starts_with(&paths.etc));
    let text = match (
        &winner_path,
        winner_path.as_ref().and_then(|p| pending.get(p)),
    ) {
        (_, Some(t)) => t.clone(),
        (Some(p), None) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
        }
        (None, None) => String::new(),
    };
    let line_no = winner.as_ref().map_or(0, |w| w.line);
    let winning_line = text
        .lines()
        .nth(line_no.saturating_sub(1))
        .unwrap_or_default()
        .to_string();
    let explicit = winner.is_some()
        && !crate::glob::is_pattern(
            winning_line
                .split_once('=')
                .map(|(k, _)| k.trim().trim_start_matches('-'))
                .unwrap_or_default(),
        );
    let note = format!("# ecs-diag fix: {why}");
    let (path, before, after) =
        if let (true, true, Some(winner_path)) = (in_etc, explicit, winner_path) {
            // Edit the winning line itself: commented out, the wanted value after it.
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let i = line_no - 1;
            lines[i] = format!("# {}", lines[i]);
            lines.insert(i + 1, note);
            lines.insert(i + 2, format!("{key} = {want}"));
            let mut after = lines.join("\n");
            if text.ends_with('\n') {
                after.push('\n');
            }
            (winner_path, Some(text), after)
        } else {
            let path = paths.etc.join(OVERRIDE_FILE);
            let before = match pending.get(&path) {
                Some(t) => Some(t.clone()),
                None => std::fs::read_to_string(&path).ok(),
            };
            let mut after = before.clone().unwrap_or_default();
            if !after.is_empty() && !after.ends_with('\n') {
                after.push('\n');
            }
            let overrides = winner
                .as_ref()
                .map(|w| format!(" (overrides {}:{})", w.file, w.line))
                .unwrap_or_default();
            after.push_str(&format!("{note}{overrides}\n{key} = {want}\n"));
            (path, before, after)
        };
    // Prove it: with the planned file, what does boot set?
    let mut with = pending.clone();
    with.insert(path.clone(), after.clone());
    let planned = simulate(paths, &with);
    match source::after_reboot(&planned, key) {
        Some(p) if p.value == want => Ok(Some(Change::File {
            path,
            before,
            after,
        })),
        other => Err(format!(
            "editing {} would not make {key} {want} after reboot ({}): change it by hand",
            path.display(),
            other
                .map(|p| format!("{}:{} still sets {}", p.file, p.line, p.value))
                .unwrap_or_else(|| "nothing would set it".into())
        )),
    }
}

/// Every persisted setting in systemd-sysctl's order, the `pending` files as planned.
fn simulate(paths: &PathsConfig, pending: &Pending) -> Vec<source::SysctlSetting> {
    let mut files = source::sysctl_files(paths);
    for path in pending.keys() {
        if !files.iter().any(|f| f == path) {
            // A new file in /etc/sysctl.d: ordered by name among the others, before
            // sysctl.conf (always last).
            let last = files.len().saturating_sub(1);
            let name = path.file_name();
            let at = files[..last]
                .iter()
                .position(|f| f.file_name() > name)
                .unwrap_or(last);
            files.insert(at, path.clone());
        }
    }
    files
        .iter()
        .filter_map(|f| {
            let t = match pending.get(f) {
                Some(t) => t.clone(),
                None => crate::sources::read_config_file(f).ok()?,
            };
            Some(source::parse_sysctl_file(&t, &f.display().to_string()))
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::healthy;
    use crate::snapshot::{Gathered, Sysctl};

    const KEY: &str = "net.ipv4.icmp_echo_ignore_all";

    /// A fixture tree `root/etc`, `root/usr/lib`, with `files` (path under root, text), and a
    /// snapshot whose sysctl is 1 now and whatever the files say after reboot.
    fn setup(files: &[(&str, &str)]) -> (tempfile::TempDir, PathsConfig, Snapshot) {
        let root = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let path = root.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let paths = PathsConfig {
            etc: root.path().join("etc"),
            proc: root.path().join("proc"),
            ..Default::default()
        };
        let mut s = healthy();
        let settings = source::read_settings(&paths);
        if let Gathered::Ok(m) = &mut s.sysctls {
            let entry = m.entry(KEY.to_string()).or_insert_with(|| Sysctl {
                now: None,
                error: None,
                absent: false,
                after_reboot: None,
            });
            entry.now = Some("1".into());
            entry.after_reboot = source::after_reboot(&settings, KEY);
        }
        (root, paths, s)
    }

    fn file_change(p: &Plan) -> (&Path, Option<&str>, &str) {
        p.changes
            .iter()
            .find_map(|c| match c {
                Change::File {
                    path,
                    before,
                    after,
                } => Some((path.as_path(), before.as_deref(), after.as_str())),
                _ => None,
            })
            .unwrap()
    }

    fn planned(paths: &PathsConfig, s: &Snapshot) -> Result<Plan, String> {
        plan(
            s,
            paths,
            &mut Pending::new(),
            "sysctl.icmp_echo",
            KEY,
            "0",
            "pings were ignored",
        )
    }

    #[test]
    fn the_winning_line_in_etc_is_edited_in_place() {
        let (_root, paths, s) = setup(&[(
            "etc/sysctl.d/90-noping.conf",
            "# hardening\nnet.ipv4.icmp_echo_ignore_all = 1\nnet.ipv4.tcp_syncookies = 1\n",
        )]);
        let p = planned(&paths, &s).unwrap();
        assert!(
            matches!(&p.changes[0], Change::Sysctl { from, to, path, .. }
            if from == "1" && to == "0" && path.ends_with("sys/net/ipv4/icmp_echo_ignore_all"))
        );
        let (path, before, after) = file_change(&p);
        assert!(path.ends_with("etc/sysctl.d/90-noping.conf"));
        assert!(before.is_some());
        assert_eq!(
            after,
            "# hardening\n# net.ipv4.icmp_echo_ignore_all = 1\n# ecs-diag fix: pings were ignored\nnet.ipv4.icmp_echo_ignore_all = 0\nnet.ipv4.tcp_syncookies = 1\n"
        );
    }

    #[test]
    fn a_vendor_file_or_a_glob_is_overridden_in_etc() {
        let (_root, paths, s) = setup(&[(
            "usr/lib/sysctl.d/50-vendor.conf",
            "net.ipv4.icmp_echo_ignore_all = 1\n",
        )]);
        let p = planned(&paths, &s).unwrap();
        let (path, before, after) = file_change(&p);
        assert!(path.ends_with("etc/sysctl.d/zz-ecs-diag.conf"), "{path:?}");
        assert_eq!(before, None);
        assert!(after.contains("overrides") && after.ends_with(&format!("{KEY} = 0\n")));
        // A glob in /etc is not commented out (it sets other keys too): overridden as well.
        let (_root, paths, s) = setup(&[(
            "etc/sysctl.d/60-glob.conf",
            "net.ipv4.icmp_echo_ignore_* = 1\n",
        )]);
        let p = planned(&paths, &s).unwrap();
        assert!(file_change(&p).0.ends_with("etc/sysctl.d/zz-ecs-diag.conf"));
    }

    #[test]
    fn a_plan_that_would_not_win_at_boot_is_refused() {
        // A vendor file ordered after zz-ecs-diag.conf would still win.
        let (_root, paths, s) = setup(&[(
            "usr/lib/sysctl.d/zzz-late.conf",
            "net.ipv4.icmp_echo_ignore_all = 1\n",
        )]);
        let e = planned(&paths, &s).unwrap_err();
        assert!(
            e.contains("would not make") && e.contains("zzz-late.conf"),
            "{e}"
        );
    }

    #[test]
    fn runtime_only_and_nothing_to_do() {
        let (_root, paths, s) = setup(&[]);
        let p = planned(&paths, &s).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert!(matches!(p.changes[0], Change::Sysctl { .. }));
        let (_root, paths, mut s) = setup(&[]);
        if let Gathered::Ok(m) = &mut s.sysctls {
            m.get_mut(KEY).unwrap().now = Some("0".into());
        }
        assert!(planned(&paths, &s).unwrap_err().contains("already 0"));
        if let Gathered::Ok(m) = &mut s.sysctls {
            m.get_mut(KEY).unwrap().absent = true;
        }
        assert!(planned(&paths, &s).unwrap_err().contains("no net.ipv4"));
    }

    /// Two keys in one file: the second plan edits the first one's result, so applied in order
    /// both hold.
    /// A sysctl.d file with a byte that is not UTF-8, or over 1 MiB, is not skipped: the
    /// plan is refused, naming it (systemd-sysctl would still apply it at boot).
    #[test]
    fn an_unreadable_sysctl_file_refuses_the_plan() {
        for bytes in [
            b"net.ipv4.icmp_echo_ignore_all = 1\n# caf\xe9\n".to_vec(),
            vec![b'#'; 2 * 1024 * 1024],
        ] {
            let (_dir, paths, s) = setup(&[]);
            let f = paths.etc.join("sysctl.d/50-odd.conf");
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, &bytes).unwrap();
            let e = planned(&paths, &s).unwrap_err();
            assert!(e.contains("50-odd.conf cannot be read as text"), "{e}");
        }
    }

    #[test]
    fn two_fixes_in_one_file_compose() {
        let (_root, paths, mut s) = setup(&[(
            "etc/sysctl.d/90-noping.conf",
            "net.ipv4.icmp_echo_ignore_all = 1\nnet.ipv6.icmp.echo_ignore_all = 1\n",
        )]);
        let six = "net.ipv6.icmp.echo_ignore_all";
        if let Gathered::Ok(m) = &mut s.sysctls {
            m.insert(
                six.into(),
                Sysctl {
                    now: Some("1".into()),
                    error: None,
                    absent: false,
                    after_reboot: None,
                },
            );
        }
        let mut pending = Pending::new();
        let a = plan(&s, &paths, &mut pending, "sysctl.icmp_echo", KEY, "0", "x").unwrap();
        let b = plan(&s, &paths, &mut pending, "sysctl.icmp_echo6", six, "0", "y").unwrap();
        let (_, _, first) = file_change(&a);
        let (_, before, last) = file_change(&b);
        assert_eq!(before, Some(first));
        assert!(
            last.contains(&format!("\n{KEY} = 0\n")) && last.ends_with(&format!("{six} = 0\n")),
            "{last}"
        );
    }
}
