//! The root-only /proc files the unprivileged daemon is handed already open.
//!
//! Which legacy iptables tables exist is in `/proc/net/ip_tables_names` and
//! `ip6_tables_names`, readable by root and group root only. The packaged unit runs
//! `ecs-diag hand-over` as root just before the daemon (`ExecStartPre=+`): it opens the two
//! files and puts them in systemd's file-descriptor store, and systemd passes them to the
//! daemon (`LISTEN_FDS`, `LISTEN_FDNAMES`). The kernel checks a /proc file's permission when it
//! is opened, so the daemon re-reads a handed descriptor from offset 0 for the current list
//! without being in group root, and can read nothing else through it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::OnceLock;

/// The files handed over, by their name in /proc/net (also their name in the store).
pub const FILES: [&str; 2] = ["ip_tables_names", "ip6_tables_names"];

/// A names list is a few words: more than this is not one.
const MAX_LEN: usize = 64 * 1024;

static HELD: OnceLock<Vec<(&'static str, File)>> = OnceLock::new();

/// Takes the descriptors the service manager passed under the names in [`FILES`]; any other
/// passed descriptor is left alone. Nothing passed (not started by systemd, or LISTEN_PID is
/// another process's) is not an error. Call once, at startup.
pub fn adopt() -> Result<usize, String> {
    let passed = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("the descriptors systemd passed (LISTEN_FDS, LISTEN_FDNAMES): {e}"))?;
    let mut held = Vec::new();
    for (fd, name) in passed {
        if let Some(known) = FILES.iter().find(|f| **f == name) {
            // SAFETY: the service manager passed this descriptor to this very process
            // (LISTEN_PID matched) under a name only `hand-over` gives; nothing else owns it.
            held.push((*known, unsafe { File::from_raw_fd(fd) }));
        }
    }
    let n = held.len();
    // A second call finds the first's set: the descriptors are adopted once.
    let _ = HELD.set(held);
    Ok(n)
}

/// The current content of the handed file `name`; None when it was not handed over.
pub fn read(name: &str) -> Option<io::Result<String>> {
    // After a restart the store may pass an older descriptor too: the last is the newest.
    let (_, file) = HELD.get()?.iter().rev().find(|(n, _)| *n == name)?;
    Some(read_from_start(file))
}

/// Reads a /proc file from offset 0 at every call (seq files regenerate their text), at most
/// [`MAX_LEN`] bytes.
fn read_from_start(file: &File) -> io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = file.read_at(&mut buf, out.len() as u64)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > MAX_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("longer than {MAX_LEN} bytes: not a list of table names"),
            ));
        }
    }
    String::from_utf8(out).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "not UTF-8: not a list of table names",
        )
    })
}

/// `ecs-diag hand-over`: opens each of [`FILES`] under `proc_root/net` and stores it with the
/// service manager (`NOTIFY_SOCKET`), replacing what the store held under that name (a
/// descriptor from before an ip_tables module reload reads nothing). A file that does not
/// exist (its module is not loaded) is left out. Returns one line per file.
pub fn hand_over(proc_root: &Path) -> Result<Vec<String>, String> {
    use sd_notify::NotifyState;
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Err("NOTIFY_SOCKET is not set: hand-over is run by the packaged unit (ExecStartPre=+), which passes the files on to the daemon".into());
    }
    let mut said = Vec::new();
    for name in FILES {
        let path = proc_root.join("net").join(name);
        sd_notify::notify(&[NotifyState::FdStoreRemove, NotifyState::FdName(name)])
            .map_err(|e| format!("cannot reach systemd at NOTIFY_SOCKET: {e}"))?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                said.push(format!(
                    "{}: absent (its module is not loaded): not handed over",
                    path.display()
                ));
                continue;
            }
            Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
        };
        // FDPOLL=0: a /proc file never hangs up; systemd need not watch it.
        sd_notify::notify_with_fds(
            &[
                NotifyState::FdStore,
                NotifyState::FdName(name),
                NotifyState::Custom("FDPOLL=0"),
            ],
            &[file.as_fd()],
        )
        .map_err(|e| format!("cannot pass {} to systemd: {e}", path.display()))?;
        said.push(format!("{}: handed over", path.display()));
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_held_file_is_read_afresh_from_the_start_each_time() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"filter\n").unwrap();
        assert_eq!(read_from_start(&f).unwrap(), "filter\n");
        f.write_all(b"nat\n").unwrap();
        assert_eq!(read_from_start(&f).unwrap(), "filter\nnat\n");
    }

    #[test]
    fn a_file_too_long_or_not_text_is_refused_naming_what_was_expected() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![b'a'; MAX_LEN + 10]).unwrap();
        let e = read_from_start(&f).unwrap_err().to_string();
        assert!(e.contains("not a list of table names"), "{e}");
        let mut g = tempfile::tempfile().unwrap();
        g.write_all(&[0xff, 0xfe]).unwrap();
        let e = read_from_start(&g).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn nothing_is_held_unless_handed_over() {
        // No LISTEN_PID for this process in the test runner: nothing adopted, no error.
        assert_eq!(adopt(), Ok(0));
        assert!(read("ip_tables_names").is_none());
    }
}
