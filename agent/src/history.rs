//! Conditions over time (`serve`): when each check last changed status — `since` on every
//! served finding and `ecs_diag_check_last_transition_timestamp_seconds` — and the last N
//! transitions with their summaries (`GET /v1/history`). Kept across restarts in
//! `paths.state` (the unit's StateDirectory, `/var/lib/ecs-diag`), written atomically after
//! each refresh that changed a status. A missing, unreadable or garbage file starts a fresh
//! history with a warning: history is a convenience, never a reason not to serve.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report::{Report, Status};

/// The file inside the state directory.
pub const FILE: &str = "history.json";
const FILE_VERSION: u32 = 1;
/// A history file is a few hundred transitions: anything far larger is not ours.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Summaries are kept to this many characters in the log.
const MAX_SUMMARY_CHARS: usize = 300;

/// One change of a check's status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transition {
    /// RFC 3339.
    pub at: String,
    pub at_unix_ms: u64,
    pub check: String,
    /// None: the first time this history saw the check.
    pub from: Option<Status>,
    pub to: Status,
    pub summary: String,
}

/// A check's status now and since when (Unix ms).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Current {
    pub status: Status,
    pub since_ms: u64,
}

/// The state kept across restarts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct History {
    version: u32,
    current: BTreeMap<String, Current>,
    transitions: VecDeque<Transition>,
    /// How many transitions are kept (`server.history_entries`).
    #[serde(skip)]
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            version: FILE_VERSION,
            capacity: capacity.max(1),
            ..Default::default()
        }
    }

    /// The history in `dir`, or a fresh one and why the file could not be used (None when
    /// there simply was none yet).
    pub fn load(dir: &Path, capacity: usize) -> (History, Option<String>) {
        let path = dir.join(FILE);
        let text = match std::fs::File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (History::new(capacity), None)
            }
            Err(e) => return fresh(capacity, &path, &e.to_string()),
            Ok(f) => {
                let mut text = String::new();
                match f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text) {
                    Err(e) => return fresh(capacity, &path, &e.to_string()),
                    Ok(n) if n as u64 > MAX_FILE_BYTES => {
                        return fresh(capacity, &path, "larger than 4 MiB")
                    }
                    Ok(_) => text,
                }
            }
        };
        match serde_json::from_str::<History>(&text) {
            Ok(h) if h.version == FILE_VERSION => {
                let mut h = History { capacity, ..h };
                h.capacity = capacity.max(1);
                h.trim();
                (h, None)
            }
            Ok(h) => fresh(
                capacity,
                &path,
                &format!("version {} (expected {FILE_VERSION})", h.version),
            ),
            Err(e) => fresh(capacity, &path, &format!("not a history file ({e})")),
        }
    }

    /// Writes the history to `dir` atomically (a temporary file renamed over the old one),
    /// creating `dir` (mode 0700) when it is missing: systemd before 235 has no
    /// StateDirectory= to create it.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join(FILE);
        if !dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let tmp: PathBuf = dir.join(format!(".{FILE}.tmp"));
        let body = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Records the report's statuses at `now_ms`, sets each finding's `since`, and says
    /// whether any status changed (then the history should be saved).
    pub fn observe(&mut self, report: &mut Report, now_ms: u64) -> bool {
        let mut changed = false;
        for f in &mut report.checks {
            let current = self.current.get(&f.id).copied();
            let since_ms = match current {
                Some(c) if c.status == f.status => c.since_ms,
                _ => {
                    changed = true;
                    self.current.insert(
                        f.id.clone(),
                        Current {
                            status: f.status,
                            since_ms: now_ms,
                        },
                    );
                    self.transitions.push_back(Transition {
                        at: crate::rfc3339_ms(now_ms),
                        at_unix_ms: now_ms,
                        check: f.id.clone(),
                        from: current.map(|c| c.status),
                        to: f.status,
                        summary: f.summary.chars().take(MAX_SUMMARY_CHARS).collect(),
                    });
                    now_ms
                }
            };
            f.since = Some(crate::rfc3339_ms(since_ms));
        }
        self.trim();
        changed
    }

    /// When check `id` last changed status (Unix ms).
    pub fn since_ms(&self, id: &str) -> Option<u64> {
        self.current.get(id).map(|c| c.since_ms)
    }

    /// The kept transitions, oldest first.
    pub fn transitions(&self) -> impl Iterator<Item = &Transition> {
        self.transitions.iter()
    }

    fn trim(&mut self) {
        while self.transitions.len() > self.capacity {
            self.transitions.pop_front();
        }
    }
}

fn fresh(capacity: usize, path: &Path, why: &str) -> (History, Option<String>) {
    (
        History::new(capacity),
        Some(format!(
            "{}: {why}: starting a fresh history",
            path.display()
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Finding, REPORT_VERSION};

    fn report(statuses: &[(&str, Status)]) -> Report {
        Report {
            version: REPORT_VERSION,
            generated_at: String::new(),
            duration_ms: 1.0,
            stale: false,
            checks: statuses
                .iter()
                .map(|(id, s)| Finding::new(id, *s, format!("{id} is {}", s.as_str())))
                .collect(),
        }
    }

    #[test]
    fn since_moves_only_when_the_status_changes() {
        let mut h = History::new(256);
        let mut r = report(&[("a", Status::Ok), ("b", Status::Ok)]);
        assert!(h.observe(&mut r, 1_000));
        assert_eq!(r.checks[0].since.as_deref(), Some("1970-01-01T00:00:01Z"));
        let mut r = report(&[("a", Status::Ok), ("b", Status::Fail)]);
        assert!(h.observe(&mut r, 5_000));
        assert_eq!(h.since_ms("a"), Some(1_000), "unchanged: since stays");
        assert_eq!(h.since_ms("b"), Some(5_000));
        assert_eq!(r.checks[1].since.as_deref(), Some("1970-01-01T00:00:05Z"));
        let mut r = report(&[("a", Status::Ok), ("b", Status::Fail)]);
        assert!(
            !h.observe(&mut r, 9_000),
            "nothing changed: nothing to save"
        );
        let t: Vec<_> = h.transitions().collect();
        assert_eq!(t.len(), 3);
        assert_eq!((t[2].from, t[2].to), (Some(Status::Ok), Status::Fail));
        assert_eq!(t[2].summary, "b is fail");
        assert_eq!(t[0].from, None, "first seen");
    }

    #[test]
    fn bounded_oldest_dropped() {
        let mut h = History::new(3);
        for i in 0..10u64 {
            let s = if i % 2 == 0 { Status::Ok } else { Status::Warn };
            h.observe(&mut report(&[("a", s)]), i * 1000);
        }
        let t: Vec<_> = h.transitions().collect();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].at_unix_ms, 7_000);
        assert_eq!(t[2].at_unix_ms, 9_000);
    }

    #[test]
    fn survives_a_restart_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let (mut h, warning) = History::load(dir.path(), 256);
        assert!(warning.is_none(), "no file yet is not a problem");
        h.observe(&mut report(&[("a", Status::Fail)]), 2_000);
        h.save(dir.path()).unwrap();
        let (mut back, warning) = History::load(dir.path(), 256);
        assert!(warning.is_none(), "{warning:?}");
        assert_eq!(back.since_ms("a"), Some(2_000));
        // The status held across the restart: since is still the original change.
        let mut r = report(&[("a", Status::Fail)]);
        assert!(!back.observe(&mut r, 60_000));
        assert_eq!(r.checks[0].since.as_deref(), Some("1970-01-01T00:00:02Z"));
        // A smaller capacity after a config change trims on load.
        for (i, s) in [Status::Ok, Status::Fail, Status::Ok]
            .into_iter()
            .enumerate()
        {
            back.observe(&mut report(&[("a", s)]), 70_000 + i as u64);
        }
        back.save(dir.path()).unwrap();
        assert_eq!(History::load(dir.path(), 2).0.transitions().count(), 2);

        for garbage in [
            "{",
            "[]",
            "{\"version\": 99, \"current\": {}, \"transitions\": []}",
        ] {
            std::fs::write(dir.path().join(FILE), garbage).unwrap();
            let (h, warning) = History::load(dir.path(), 256);
            assert_eq!(h.transitions().count(), 0);
            let w = warning.unwrap();
            assert!(
                w.contains("history.json") && w.contains("fresh history"),
                "{w}"
            );
        }
        // A missing directory is created, private (systemd < 235 has no StateDirectory=).
        use std::os::unix::fs::PermissionsExt;
        let state = dir.path().join("var/lib/ecs-diag");
        History::new(1).save(&state).unwrap();
        assert!(state.join(FILE).is_file());
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // One that cannot be created is an error naming it, not a panic.
        let blocked = dir.path().join(FILE).join("sub");
        let e = History::new(1).save(&blocked).unwrap_err();
        assert!(
            e.contains("cannot create") && e.contains("history.json/sub"),
            "{e}"
        );
    }
}
