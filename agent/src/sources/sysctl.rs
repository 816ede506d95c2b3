//! Reads sysctls now (`/proc/sys`) and the value they get at boot from `sysctl.d` and
//! `/etc/sysctl.conf`, with systemd-sysctl's precedence: a file in `/etc/sysctl.d` masks the
//! same name in `/run`, `/usr/local/lib`, `/usr/lib` and `/lib`; files apply in name order, later
//! settings win; `/etc/sysctl.conf` applies last (as `sysctl --system` does); a key named
//! explicitly beats a glob pattern matching it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::config::PathsConfig;
use crate::snapshot::{Gathered, PersistedSysctl, Sysctl};

/// One `key = value` line of a sysctl configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct SysctlSetting {
    pub key: String,
    pub value: String,
    pub file: String,
    pub line: usize,
}

/// systemd writes keys with `/` or `.`; with `/` the dots are literal (interface names).
fn normalise_key(key: &str) -> String {
    if key.contains('/') {
        key.chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect()
    } else {
        key.to_string()
    }
}

pub fn parse_sysctl_file(text: &str, file: &str) -> Vec<SysctlSetting> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        // A leading '-' only means "ignore errors when applying".
        let key = key.trim().trim_start_matches('-');
        if key.is_empty() {
            continue;
        }
        out.push(SysctlSetting {
            key: normalise_key(key),
            value: value.split_whitespace().collect::<Vec<_>>().join(" "),
            file: file.to_string(),
            line: i + 1,
        });
    }
    out
}

/// The configuration files in the order systemd-sysctl applies them.
pub fn sysctl_files(paths: &PathsConfig) -> Vec<PathBuf> {
    let root = paths.root();
    let dirs = [
        paths.etc.join("sysctl.d"),
        root.join("run/sysctl.d"),
        root.join("usr/local/lib/sysctl.d"),
        root.join("usr/lib/sysctl.d"),
        root.join("lib/sysctl.d"),
    ];
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut seen_dirs = HashSet::new();
    for dir in dirs {
        // /lib is often a symlink to /usr/lib: read each real directory once.
        let real = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
        if !seen_dirs.insert(real) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                by_name.entry(name).or_insert_with(|| e.path());
            }
        }
    }
    let mut files: Vec<PathBuf> = by_name.into_values().collect();
    files.push(paths.etc.join("sysctl.conf"));
    files
}

/// The value `name` gets at boot from `settings` (in application order), if any.
pub fn after_reboot(settings: &[SysctlSetting], name: &str) -> Option<PersistedSysctl> {
    let pick = |explicit: bool| {
        settings
            .iter()
            .rev()
            .find(|s| {
                let glob = crate::glob::is_pattern(&s.key);
                if explicit {
                    !glob && s.key == name
                } else {
                    glob && crate::glob::sysctl_match(&s.key, name)
                }
            })
            .map(|s| PersistedSysctl {
                value: s.value.clone(),
                file: s.file.clone(),
                line: s.line,
            })
    };
    pick(true).or_else(|| pick(false))
}

pub fn read_settings(paths: &PathsConfig) -> Vec<SysctlSetting> {
    sysctl_files(paths)
        .iter()
        .filter_map(|p| {
            let text = super::read_config_file(p).ok()?;
            Some(parse_sysctl_file(&text, &p.display().to_string()))
        })
        .flatten()
        .collect()
}

/// Why a running value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// This kernel has no such parameter.
    Absent(String),
    /// It exists but could not be read (permissions, I/O).
    Unreadable(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Absent(e) | ReadError::Unreadable(e) => f.write_str(e),
        }
    }
}

pub fn read_now(proc_root: &Path, name: &str) -> Result<String, ReadError> {
    let path = proc_root.join("sys").join(name.replace('.', "/"));
    match std::fs::read_to_string(&path) {
        Ok(v) => Ok(v.split_whitespace().collect::<Vec<_>>().join(" ")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::Absent(format!(
            "{} does not exist on this kernel",
            path.display()
        ))),
        Err(e) => Err(ReadError::Unreadable(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

pub fn sysctls(paths: &PathsConfig, names: &[String]) -> Gathered<BTreeMap<String, Sysctl>> {
    let settings = read_settings(paths);
    let map = names
        .iter()
        .map(|name| {
            let (now, error, absent) = match read_now(&paths.proc, name) {
                Ok(v) => (Some(v), None, false),
                Err(e) => (None, Some(e.to_string()), matches!(e, ReadError::Absent(_))),
            };
            let s = Sysctl {
                now,
                error,
                absent,
                after_reboot: after_reboot(&settings, name),
            };
            (name.clone(), s)
        })
        .collect();
    Gathered::Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn parses_comments_dashes_and_slashes() {
        let s = parse_sysctl_file(
            "# c\n; c\nnet.ipv4.icmp_echo_ignore_all = 1\n-net.ipv4.conf.all.rp_filter=2\nnet/ipv4/conf/eth0.100/rp_filter = 1\nbogus\n",
            "f",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].key, "net.ipv4.icmp_echo_ignore_all");
        assert_eq!((s[0].value.as_str(), s[0].line), ("1", 3));
        assert_eq!(s[1].key, "net.ipv4.conf.all.rp_filter");
        assert_eq!(s[2].key, "net.ipv4.conf.eth0/100.rp_filter");
    }

    /// Issue 11's reproducer: this line in any sysctl.d file wedged the daemon.
    #[test]
    fn a_star_run_in_a_key_is_linear() {
        let text = include_str!("../../tests/fixtures/sysctl/star-run.conf");
        let settings = parse_sysctl_file(text, "star-run.conf");
        assert_eq!(settings.len(), 3);
        assert_eq!(
            after_reboot(&settings, "net.ipv4.conf.eth0.rp_filter"),
            None
        );
        let echo = after_reboot(&settings, "net.ipv4.icmp_echo_ignore_all").unwrap();
        assert_eq!((echo.value.as_str(), echo.line), ("1", 4));
    }

    #[test]
    fn precedence_follows_systemd_sysctl() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let paths = PathsConfig {
            etc: root.join("etc"),
            sys: root.join("sys"),
            proc: root.join("proc"),
            ..Default::default()
        };
        // Vendor default, masked by a same-named file in /etc.
        write(
            &root.join("usr/lib/sysctl.d/50-default.conf"),
            "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.icmp_echo_ignore_all = 1\n",
        );
        write(
            &root.join("etc/sysctl.d/50-default.conf"),
            "net.ipv4.conf.*.rp_filter = 2\n",
        );
        write(
            &root.join("usr/lib/sysctl.d/60-x.conf"),
            "net.ipv4.conf.all.rp_filter = 1\n",
        );
        write(
            &root.join("run/sysctl.d/70-y.conf"),
            "net.ipv4.conf.*.rp_filter = 0\n",
        );
        write(
            &root.join("etc/sysctl.conf"),
            "net.ipv6.icmp.echo_ignore_all=1\n",
        );
        let settings = read_settings(&paths);

        // Masked vendor file: its echo setting is gone.
        assert_eq!(
            after_reboot(&settings, "net.ipv4.icmp_echo_ignore_all"),
            None
        );
        // Explicit key beats a later glob.
        let all = after_reboot(&settings, "net.ipv4.conf.all.rp_filter").unwrap();
        assert_eq!(all.value, "1");
        assert!(all.file.ends_with("60-x.conf"));
        // Among globs, the last applied wins.
        assert_eq!(
            after_reboot(&settings, "net.ipv4.conf.eth0.rp_filter")
                .unwrap()
                .value,
            "0"
        );
        // sysctl.conf applies last.
        let v6 = after_reboot(&settings, "net.ipv6.icmp.echo_ignore_all").unwrap();
        assert!(v6.file.ends_with("etc/sysctl.conf"));
    }

    #[test]
    fn reads_now_and_reports_missing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        write(&proc_root.join("sys/net/ipv4/icmp_echo_ignore_all"), "1\n");
        let paths = PathsConfig {
            etc: dir.path().join("etc"),
            sys: dir.path().join("sys"),
            proc: proc_root,
            ..Default::default()
        };
        let g = sysctls(
            &paths,
            &[
                "net.ipv4.icmp_echo_ignore_all".into(),
                "net.ipv6.icmp.echo_ignore_all".into(),
            ],
        );
        let m = g.ok().unwrap();
        assert_eq!(m["net.ipv4.icmp_echo_ignore_all"].now.as_deref(), Some("1"));
        assert!(m["net.ipv6.icmp.echo_ignore_all"]
            .error
            .as_ref()
            .unwrap()
            .contains("does not exist"));
    }
}
