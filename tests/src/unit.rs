//! Runs the agent as the packaged unit (systemd/ecs-diag.service) does, on a machine without
//! systemd as init: the privileges come from the unit file itself, and the unit's
//! `ExecStartPre=+… hand-over` is run as root against a stand-in for systemd's notify socket
//! and file-descriptor store, which then passes the stored descriptors to the unprivileged
//! agent as systemd would (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`, from fd 3).

// Test harness: a failure here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// The packaged unit's text.
pub fn unit_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/ecs-diag.service"),
    )
    .expect("systemd/ecs-diag.service is readable")
}

fn directive(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// `setpriv` arguments giving exactly the unit's privileges: an unprivileged user (DynamicUser;
/// 65534 here) in no supplementary group unless the unit names one, holding the unit's ambient
/// capabilities, bounded to them, with no_new_privs.
pub fn unit_privileges() -> Vec<String> {
    let unit = unit_text();
    assert!(unit.lines().any(|l| l == "DynamicUser=yes"));
    assert!(unit.lines().any(|l| l == "NoNewPrivileges=yes"));
    let bounding = directive(&unit, "CapabilityBoundingSet").expect("the unit bounds capabilities");
    let ambient = directive(&unit, "AmbientCapabilities").expect("the unit grants capabilities");
    let caps = |set: &str| {
        set.split_whitespace()
            .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let groups = match directive(&unit, "SupplementaryGroups") {
        Some(g) if g.trim() == "root" => "--groups=0".to_string(),
        Some(g) => panic!("the harness knows no group {g}"),
        None => "--clear-groups".to_string(),
    };
    vec![
        "setpriv".into(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        groups,
        format!("--inh-caps=-all,{}", caps(&ambient)),
        format!("--ambient-caps=-all,{}", caps(&ambient)),
        format!("--bounding-set=-all,{}", caps(&bounding)),
        "--no-new-privs".into(),
    ]
}

/// The descriptors the unit's hand-over stored, as systemd's store holds them: name → fd.
pub struct FdStore {
    pub fds: Vec<(String, OwnedFd)>,
}

/// Runs the unit's `ExecStartPre=+` line (with `bin` for /usr/bin/ecs-diag, after `prefix`,
/// e.g. `ip netns exec NS`) as root, as systemd would, and applies what it sends to the notify
/// socket to a fresh store. Panics if the unit has no such line or it fails.
pub fn hand_over(prefix: &[&str], bin: &Path) -> FdStore {
    let unit = unit_text();
    let line = directive(&unit, "ExecStartPre").expect("the unit has an ExecStartPre");
    let line = line
        .strip_prefix('+')
        .expect("the hand-over runs with full privileges (+)");
    let line = line.replace("/usr/bin/ecs-diag", bin.to_str().unwrap());
    let words: Vec<&str> = line.split_whitespace().collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend(&words);
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .env("NOTIFY_SOCKET", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    socket.set_nonblocking(true).unwrap();
    let mut store = FdStore { fds: Vec::new() };
    loop {
        use sendfd::RecvWithFd;
        let mut bytes = [0u8; 4096];
        let mut raw: [RawFd; 8] = [-1; 8];
        let (n, nfds) = match socket.recv_with_fd(&mut bytes, &mut raw) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("notify socket: {e}"),
        };
        // SAFETY: recvmsg just installed these descriptors in this process; nothing else owns them.
        let fds: Vec<OwnedFd> = raw[..nfds]
            .iter()
            .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) })
            .collect();
        let text = String::from_utf8_lossy(&bytes[..n]).to_string();
        let tags: Vec<&str> = text.lines().collect();
        let name = tags
            .iter()
            .find_map(|t| t.strip_prefix("FDNAME="))
            .unwrap_or("stored")
            .to_string();
        if tags.contains(&"FDSTOREREMOVE=1") {
            store.fds.retain(|(n, _)| *n != name);
        }
        if tags.contains(&"FDSTORE=1") {
            store
                .fds
                .extend(fds.into_iter().map(|fd| (name.clone(), fd)));
        }
    }
    store
}

impl FdStore {
    pub fn names(&self) -> Vec<&str> {
        self.fds.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// `prefix… <the unit's privileges> args…`, started as systemd starts the service: the
    /// stored descriptors at fd 3 onwards, named in LISTEN_FDNAMES, for this very process
    /// (LISTEN_PID, set by a shell that then execs, keeping its pid).
    pub fn command(&self, prefix: &[&str], args: &[&str]) -> Command {
        let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        argv.extend([
            "sh".into(),
            "-c".into(),
            "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"".into(),
            "sh".into(),
        ]);
        argv.extend(unit_privileges());
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        command.env("LISTEN_FDS", self.fds.len().to_string());
        command.env("LISTEN_FDNAMES", self.names().join(":"));
        let mut from = [-1 as RawFd; 8];
        assert!(self.fds.len() <= from.len());
        for (i, (_, fd)) in self.fds.iter().enumerate() {
            from[i] = fd.as_raw_fd();
        }
        let n = self.fds.len();
        // SAFETY: only fcntl and dup2 (async-signal-safe) between fork and exec, on
        // descriptors this process owns. Each goes first to a high close-on-exec copy so that
        // placing one at 3.. cannot overwrite another still to be placed.
        unsafe {
            command.pre_exec(move || {
                let mut high = [-1 as RawFd; 8];
                for (h, fd) in high.iter_mut().zip(&from).take(n) {
                    *h = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                    if *h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (target, h) in (3..).zip(&high[..n]) {
                    if libc::dup2(*h, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        command
    }
}
