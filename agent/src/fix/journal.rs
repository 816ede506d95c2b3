//! The fix transaction's durable half: how a file is written so that a crash, a power loss or a
//! signal leaves the old or the new bytes and never a lost file (temporary file beside it,
//! fsync, rename, fsync of the directory; mode, owner, group and extended attributes kept;
//! symlinks written through only inside the `[paths]` roots; hard links refused), the journal
//! of one fix (`fixes/ID/record.json`: the intent and every before-image, written before the
//! first change; each step recorded as it completes), backups readable by root alone, and the
//! recovery any later run makes of a transaction that did not finish.
//!
//! Reading order for an audit: [`write_durable`] (one file), [`Journal`] (one fix),
//! [`recover`] (what a later run does), then `super::apply` (the order of the steps).

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Record, State};

/// Backups and journals: readable and writable by root alone.
pub const BACKUP_FILE_MODE: u32 = 0o600;
pub const BACKUP_DIR_MODE: u32 = 0o700;
/// The suffix of a temporary file: a crash may leave one, which recovery removes.
pub const TMP_SUFFIX: &str = ".ecs-diag-tmp";

/// Names from the system in a line a person reads: control characters escaped, so a crafted
/// file name cannot print a fake command line.
pub fn shown(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A path in a line a person reads.
pub fn shown_path(p: &Path) -> String {
    shown(&p.to_string_lossy())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` (and its parents) as 0700; an existing one is made 0700 too.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(BACKUP_DIR_MODE))
}

/// Where `path` really is, if writing it stays inside `roots`: a symlink is followed (each
/// link, to its end) and its target must be beneath one of the roots (canonical); the parent
/// directory too. Refused otherwise, naming both.
pub fn resolve_within(path: &Path, roots: &[&Path]) -> Result<PathBuf, String> {
    let canonical_roots: Vec<PathBuf> = roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let beneath = |p: &Path| canonical_roots.iter().any(|r| p.starts_with(r));
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A new file (or a dangling link): its directory must be beneath a root.
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(format!(
                    "{} is a symlink to a file that does not exist: refused",
                    shown_path(path)
                ));
            }
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(format!("{} has no directory", shown_path(path)));
            };
            match std::fs::canonicalize(parent) {
                Ok(p) => p.join(name),
                // The directory is made later, beneath the root it is named under.
                Err(_) if beneath(&absolute(parent)) => path.to_path_buf(),
                Err(e) => return Err(format!("cannot resolve {}: {e}", shown_path(parent))),
            }
        }
        Err(e) => return Err(format!("cannot resolve {}: {e}", shown_path(path))),
    };
    if !canonical_roots.is_empty() && !beneath(&real) {
        return Err(format!(
            "{} resolves to {}, outside {}: refused (a symlink out of the configured roots)",
            shown_path(path),
            shown_path(&real),
            roots
                .iter()
                .map(|r| shown_path(r))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(real)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The extended attributes of `path` (SELinux labels, ACLs): name → value.
fn xattrs(path: &Path) -> Vec<(CString, Vec<u8>)> {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: the buffer is as long as passed; the path is NUL-terminated.
    let n = unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|name| {
            let name = CString::new(name).ok()?;
            let mut value = vec![0u8; 64 * 1024];
            // SAFETY: as above.
            let len = unsafe {
                libc::lgetxattr(
                    c_path.as_ptr(),
                    name.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            (len >= 0).then(|| {
                value.truncate(len as usize);
                (name, value)
            })
        })
        .collect()
}

/// Test-only fault injection: `ECS_DIAG_FIX_CRASH_AT=STEP` kills this process with SIGKILL
/// when it reaches STEP (the crash-point harness names every step boundary of a fix).
/// `ECS_DIAG_FIX_PAUSE_AT=STEP` stops it there (SIGSTOP) until a test, having changed the
/// world under it (filled the disk, made it read-only), sends SIGCONT.
pub fn crash_point(step: &str) {
    if std::env::var("ECS_DIAG_FIX_CRASH_AT").is_ok_and(|s| s == step) {
        // SAFETY: kill to our own pid; SIGKILL cannot be caught, so nothing runs after it.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    if std::env::var("ECS_DIAG_FIX_PAUSE_AT").is_ok_and(|s| s == step) {
        // SAFETY: a signal to our own pid; execution resumes here on SIGCONT.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGSTOP);
        }
    }
}

/// How a file is written: its identity kept (the file's own, or `mode` for a new one).
#[derive(Debug, Clone, Copy)]
pub enum Identity {
    /// Keep the existing file's mode, owner, group and extended attributes; a new file gets
    /// this mode.
    KeepOr(u32),
    /// Exactly this mode, owned by the writer (backups: 0600).
    Private,
}

/// Writes `bytes` to `path` whole and durably: a temporary file beside it (created
/// exclusively, 0600), written and fsynced, given the old file's mode, owner, group and
/// extended attributes, renamed over it, and the directory fsynced. A crash leaves the old or
/// the new file and at most a `*.ecs-diag-tmp` beside it, which [`recover`] removes. The
/// path must already be resolved (see [`resolve_within`]); a file with several hard links is
/// refused (a rename would split them).
pub fn write_durable(path: &Path, bytes: &[u8], identity: Identity) -> Result<(), String> {
    let show = shown_path(path);
    let dir = path
        .parent()
        .ok_or_else(|| format!("{show} has no directory"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", shown_path(dir)))?;
    let old = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(format!("{show} is a symlink: resolve it before writing"))
        }
        Ok(m) if !m.is_file() => return Err(format!("{show} is not a regular file")),
        Ok(m) if m.nlink() > 1 && matches!(identity, Identity::KeepOr(_)) => {
            return Err(format!(
            "{show} has {} hard links: replacing it would split them; refused (edit it by hand)",
            m.nlink()
        ))
        }
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {show}: {e}")),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{show} has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(TMP_SUFFIX);
    let tmp = dir.join(tmp_name);
    // A leftover of a crashed run is ours to replace.
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(BACKUP_FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        match (identity, &old) {
            (Identity::KeepOr(_), Some(m)) => {
                std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
                f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
                for (name, value) in xattrs(path) {
                    use std::os::unix::io::AsRawFd;
                    // SAFETY: a descriptor we own, a NUL-terminated name, a buffer of the
                    // length passed. A label the kernel refuses is left as the directory's.
                    unsafe {
                        libc::fsetxattr(
                            f.as_raw_fd(),
                            name.as_ptr(),
                            value.as_ptr().cast(),
                            value.len(),
                            0,
                        );
                    }
                }
            }
            (Identity::KeepOr(mode), None) => {
                f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            (Identity::Private, _) => {
                f.set_permissions(std::fs::Permissions::from_mode(BACKUP_FILE_MODE))?;
            }
        }
        f.sync_all()?;
        drop(f);
        crash_point(match identity {
            Identity::KeepOr(_) => "file-written",
            Identity::Private => "journal-written",
        });
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {show}: {e}")
    })
}

/// Removes `path` durably (the directory fsynced).
pub fn remove_durable(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    /// Clock ticks after boot (`/proc/PID/stat` field 22).
    pub start: u64,
}

impl ProcessId {
    fn start_of(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields count after the last ')'.
        let rest = stat.rsplit_once(')')?.1;
        rest.split_whitespace().nth(19)?.parse().ok()
    }

    pub fn of(pid: u32) -> Option<ProcessId> {
        Some(ProcessId {
            pid,
            start: Self::start_of(pid)?,
        })
    }

    pub fn this() -> Option<ProcessId> {
        Self::of(std::process::id())
    }

    /// Whether this very process still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        let state = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().chars().next())
            })
            .flatten();
        Self::start_of(self.pid) == Some(self.start) && !matches!(state, Some('Z') | Some('X'))
    }
}

/// The room a fix's directory sets aside for its final record (see [`Journal::save_final`]).
const RESERVE: &str = "reserve";

/// One fix's journal: its directory (0700) under `fixes/`, the record (intent, before-images,
/// steps done, state) and a copy of each file as it was, for people.
pub struct Journal {
    pub dir: PathBuf,
    pub record: Record,
}

impl Journal {
    /// Makes the fix's directory with a unique id (the caller holds the lock: the wall-clock
    /// millisecond, then `-2`, `-3`... if taken) and writes the intent durably, before
    /// anything changes.
    pub fn begin(fixes: &Path, mut record: Record, stamp: &str) -> Result<Journal, String> {
        private_dir(fixes).map_err(|e| format!("cannot create {}: {e}", shown_path(fixes)))?;
        let mut n = 1;
        let dir = loop {
            let id = if n == 1 {
                stamp.to_string()
            } else {
                format!("{stamp}-{n}")
            };
            let dir = fixes.join(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    record.id = id;
                    break dir;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(format!("cannot create {}: {e}", shown_path(&dir))),
            }
        };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(BACKUP_DIR_MODE))
            .map_err(|e| format!("cannot protect {}: {e}", shown_path(&dir)))?;
        let journal = Journal { dir, record };
        journal.save()?;
        sync_dir(fixes).map_err(|e| format!("cannot sync {}: {e}", shown_path(fixes)))?;
        // Room for the final record, set aside now: a disk that fills while the fix runs
        // (logs, another process) cannot stop the outcome being recorded.
        let size = serde_json::to_vec(&journal.record).map_or(0, |v| v.len());
        write_durable(
            &journal.dir.join(RESERVE),
            &vec![0u8; 64 * 1024 + 2 * size],
            Identity::Private,
        )
        .map_err(|e| format!("cannot set aside room for the record: {e}"))?;
        Ok(journal)
    }

    /// The record's final state, durably: the room set aside at the start is given back
    /// first, so a full disk still has space for it.
    pub fn save_final(&self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.dir.join(RESERVE));
        self.save()
    }

    /// Writes a backup file (0600) into the fix's directory.
    pub fn keep(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        write_durable(&self.dir.join(name), bytes, Identity::Private)
    }

    /// The record, durably.
    pub fn save(&self) -> Result<(), String> {
        save_record(&self.dir, &self.record)
    }

    /// Records that the first `done` changes are made, durably, before the next one starts.
    pub fn step(&mut self, done: usize) -> Result<(), String> {
        self.record.done = done;
        self.save()
    }
}

pub fn save_record(dir: &Path, record: &Record) -> Result<(), String> {
    let text = serde_json::to_string_pretty(record).map_err(|e| e.to_string())?;
    write_durable(
        &dir.join("record.json"),
        (text + "\n").as_bytes(),
        Identity::Private,
    )
    .map_err(|e| format!("cannot write the journal in {}: {e}", shown_path(dir)))
}

/// A fix's directory as found: its record, or why it cannot be read (shown, never hidden).
pub enum Found {
    Record(Record),
    Damaged { id: String, why: String },
}

/// Every fix under `fixes/`, oldest first; a damaged record is listed as damaged.
pub fn found(fixes: &Path) -> Vec<Found> {
    let mut out: Vec<Found> = std::fs::read_dir(fixes)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let id = e.file_name().to_string_lossy().into_owned();
            let path = e.path().join("record.json");
            match std::fs::read_to_string(&path) {
                Ok(text) => match serde_json::from_str::<Record>(&text) {
                    Ok(r) => Found::Record(r),
                    Err(err) => Found::Damaged {
                        id,
                        why: format!("{} is damaged: {err}", shown_path(&path)),
                    },
                },
                Err(err) => Found::Damaged {
                    id,
                    why: format!("cannot read {}: {err}", shown_path(&path)),
                },
            }
        })
        .collect();
    let key = |f: &Found| match f {
        Found::Record(r) => (r.applied_at.clone(), r.id.clone()),
        Found::Damaged { id, .. } => (String::new(), id.clone()),
    };
    out.sort_by_key(key);
    out
}

/// What a later run does with a fix that did not finish: one `Applying` whose process is gone
/// is rolled back (every change made, and the one in flight, restored where it still equals
/// what the fix wrote); one `AwaitingConfirmation` whose revert deadline passed with no live
/// reverter is reverted. Temporary files of its writes are removed. Returns what it said.
pub fn recover(fixes: &Path, restore: impl Fn(&Record, &Path) -> Vec<String>) -> Vec<String> {
    let mut said = Vec::new();
    // A crash while the journal itself was written: its temporary file goes; a directory
    // whose record was never written saw no change, and goes too.
    for e in std::fs::read_dir(fixes).into_iter().flatten().flatten() {
        let dir = e.path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(TMP_SUFFIX) || name == RESERVE {
                let _ = std::fs::remove_file(f.path());
            }
        }
        if !dir.join("record.json").exists() && std::fs::remove_dir(&dir).is_ok() {
            said.push(format!(
                "removed {}: a fix that died before its journal was written (nothing had changed)",
                shown_path(&dir)
            ));
        }
    }
    for f in found(fixes) {
        let Found::Record(mut record) = f else {
            continue;
        };
        let dir = fixes.join(&record.id);
        let owner_gone = record.owner.is_none_or(|o| !o.alive());
        let overdue = record
            .confirm_by
            .is_some_and(|t| crate::unix_ms() / 1000 >= t)
            && record.reverter.as_ref().is_none_or(|r| !r.alive());
        let (act, what) = match record.state {
            State::Applying if owner_gone => (true, "rolled back"),
            State::AwaitingConfirmation if overdue => (true, "reverted"),
            _ => (false, ""),
        };
        if !act {
            continue;
        }
        clean_tmp(&record.changes);
        let lines = restore(&record, &dir);
        let failed: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("NOT RESTORED"))
            .collect();
        record.state = match (record.state, failed.is_empty()) {
            (State::Applying, true) => State::RolledBack,
            (_, true) => State::Reverted,
            _ => State::RevertFailed,
        };
        record.failure = (!failed.is_empty()).then(|| {
            failed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        });
        let saved = save_record(&dir, &record);
        said.push(format!(
            "recovered fix {} (it did not finish: {}): {what}: {}{}",
            record.id,
            if record.confirm_by.is_some() && what == "reverted" {
                "not confirmed in time, and its reverter is gone"
            } else {
                "its process ended before it was done"
            },
            if lines.is_empty() {
                "nothing had changed".to_string()
            } else {
                lines.join("; ")
            },
            saved.err().map(|e| format!(" ({e})")).unwrap_or_default()
        ));
    }
    said
}

/// Removes the temporary files a crashed write may have left beside the fix's files.
pub fn clean_tmp(changes: &[super::Change]) {
    for c in changes {
        if let super::Change::File { path, .. } = c {
            if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
                let mut tmp = std::ffi::OsString::from(".");
                tmp.push(name);
                tmp.push(TMP_SUFFIX);
                let _ = std::fs::remove_file(dir.join(tmp));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_keeps_mode_and_owner_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("keyfile.nmconnection");
        std::fs::write(&f, "psk=secret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&f, Some(12345), Some(23456)).ok();
        let before = std::fs::metadata(&f).unwrap();
        write_durable(
            &f,
            b"psk=secret\naddress2=10.0.0.2/24\n",
            Identity::KeepOr(0o644),
        )
        .unwrap();
        let after = std::fs::metadata(&f).unwrap();
        assert_eq!(after.mode() & 0o7777, 0o600);
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A new file gets the mode given; a private one 0600.
        let new = dir.path().join("new.conf");
        write_durable(&new, b"x\n", Identity::KeepOr(0o644)).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().mode() & 0o777, 0o644);
        let backup = dir.path().join("backup");
        write_durable(&backup, b"x\n", Identity::Private).unwrap();
        assert_eq!(std::fs::metadata(&backup).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn hard_links_and_symlinks_out_of_the_roots_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir_all(etc.join("sysctl.d")).unwrap();
        let f = etc.join("sysctl.d/a.conf");
        std::fs::write(&f, "x\n").unwrap();
        std::fs::hard_link(&f, etc.join("sysctl.d/b.conf")).unwrap();
        let e = write_durable(&f, b"y\n", Identity::KeepOr(0o644)).unwrap_err();
        assert!(e.contains("2 hard links"), "{e}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "x\n");
        // A symlink to a file inside the root is written through; one outside is refused.
        let target = etc.join("real.conf");
        std::fs::write(&target, "x\n").unwrap();
        let link = etc.join("sysctl.d/link.conf");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let real = resolve_within(&link, &[&etc]).unwrap();
        assert_eq!(real, std::fs::canonicalize(&target).unwrap());
        let evil = outside.path().join("passwd");
        std::fs::write(&evil, "root\n").unwrap();
        let bad = etc.join("sysctl.d/evil.conf");
        std::os::unix::fs::symlink(&evil, &bad).unwrap();
        let e = resolve_within(&bad, &[&etc]).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        // A directory symlink out of the root, with a new file beneath it.
        std::os::unix::fs::symlink(outside.path(), etc.join("netplan")).unwrap();
        let e = resolve_within(&etc.join("netplan/99-ecs-diag.yaml"), &[&etc]).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        // And a symlink is never written as itself.
        assert!(write_durable(&link, b"z\n", Identity::KeepOr(0o644)).is_err());
    }

    #[test]
    fn names_with_control_characters_are_escaped() {
        assert_eq!(shown("a\nrm -rf /\x1b[2J"), "a\\nrm -rf /\\u{1b}[2J");
    }

    #[test]
    fn a_process_is_told_from_a_later_one_with_its_pid() {
        let me = ProcessId::this().unwrap();
        assert!(me.alive());
        let older = ProcessId {
            start: me.start.wrapping_sub(1),
            ..me
        };
        assert!(!older.alive());
    }
}
