//! Where the helper tools (`iptables-save`, `nft`, `ipset`, ...) are run from: fixed system
//! directories, never `$PATH`, so a daemon started with a hostile or odd environment cannot be
//! made to run something else. `[paths] tools` overrides the directories (tests point it at
//! fake tools; old or unusual systems at where theirs live).

use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The directories in force. Process-wide because the tools are run from deep inside the
/// sources; it is set from the config at every (re)load, before any source runs.
static DIRS: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());

/// Uses these directories from now on (an empty list means the defaults).
pub fn set_dirs(dirs: &[PathBuf]) {
    if let Ok(mut d) = DIRS.write() {
        *d = dirs.to_vec();
    }
}

fn dirs() -> Vec<PathBuf> {
    let set = DIRS.read().map(|d| d.clone()).unwrap_or_default();
    if set.is_empty() {
        crate::config::DEFAULT_TOOL_DIRS
            .iter()
            .map(PathBuf::from)
            .collect()
    } else {
        set
    }
}

/// The full path of tool `name` in the search directories, if it is there and executable.
/// A name with a `/` is taken as it is.
pub fn resolve(name: &str) -> Option<PathBuf> {
    resolve_in(name, &dirs())
}

fn resolve_in(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The search directories as a person reads them, for "not installed" messages.
pub fn describe() -> String {
    dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_executables_in_the_fixed_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("fake-tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("plain-file");
        std::fs::write(&plain, "").unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let dirs = [PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(resolve_in("fake-tool", &dirs), Some(exe));
        assert_eq!(resolve_in("plain-file", &dirs), None, "not executable");
        assert_eq!(resolve_in("sh", &dirs), None, "$PATH is never searched");
        assert_eq!(resolve_in("/abs/x", &dirs), Some(PathBuf::from("/abs/x")));
        assert!(!is_executable(&plain));
    }
}
