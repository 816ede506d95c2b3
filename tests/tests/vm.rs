//! The VM lab (issue 27): the packages on real kernels and real systemd. Each VM is a Debian
//! image built by `tests/vm/image` (its own kernel, systemd, iproute2 and firewall tools from
//! the distribution), booted under qemu with software emulation (TCG: this machine kind's
//! /dev/kvm runs only PVM guests), one at a time, each with a hard timeout. Its NIC is a tap in
//! a namespace this test creates; the real `ping` from that namespace is the ground truth. The
//! guest side (`tests/vm/guest.sh`, on a second disk with the packages) installs the `.deb`
//! with apt-get, reports the unit as systemd runs it, injects each fault, asks the host to
//! ping, and sends the agent's verdicts back over a virtio-serial port; this side judges.
//!
//! Where qemu or the image tools are missing the test fails (scripts/prerequisites installs
//! them): it never skips silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecs_diag_matrix::matrix::{findings, must, run};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The VMs boot one at a time: each takes both cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Vm {
    name: &'static str,
    suite: &'static str,
    arch: &'static str,
    kernel: &'static str,
    systemd: &'static str,
    /// Boot to power-off, at most.
    timeout: Duration,
}

/// The VM's namespace and qemu: killed and deleted when dropped, whatever happened.
struct Lab {
    ns: String,
    qemu: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(q) = self.qemu.as_mut() {
            let _ = q.kill();
            let _ = q.wait();
        }
        let _ = run(&["ip", "netns", "del", &self.ns]);
    }
}

const GUEST: &str = "10.99.0.2";
const CLIENT: &str = "198.18.0.2";

/// The package in target/packages whose name ends with `suffix`.
fn package(suffix: &str) -> PathBuf {
    let dir = root().join("target/packages");
    std::fs::read_dir(&dir)
        .ok()
        .and_then(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(suffix))
        })
        .unwrap_or_else(|| panic!("no *{suffix} in {}: run scripts/package", dir.display()))
}

fn image_dir(vm: &Vm) -> PathBuf {
    root().join(format!("target/vm/{}-{}", vm.suite, vm.arch))
}

/// Every image's build, started together the first time any is wanted (the builds wait on
/// the mirror and on dpkg more than on the CPU; one after the other they take twice as long).
static BUILDS: std::sync::OnceLock<std::sync::Mutex<BTreeMap<&'static str, Option<bool>>>> =
    std::sync::OnceLock::new();

/// Whether `vm`'s image was built (or found cached); waits for its build.
fn built(vm: &Vm) -> bool {
    let builds = BUILDS.get_or_init(|| {
        let mut all = BTreeMap::new();
        for v in VMS {
            all.insert(v.name, None);
        }
        for v in VMS {
            std::thread::spawn(move || {
                let ok = Command::new(root().join("tests/vm/image"))
                    .args([v.suite, v.arch])
                    .arg(image_dir(v))
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if let Some(b) = BUILDS.get() {
                    let mut m = b.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    m.insert(v.name, Some(ok));
                }
            });
        }
        std::sync::Mutex::new(all)
    });
    loop {
        let done = builds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(vm.name)
            .copied()
            .flatten();
        if let Some(ok) = done {
            return ok;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What the guest reported, by name (`system`, `unit`, `check-healthy`, ...).
struct Report {
    results: BTreeMap<String, String>,
    boot_s: f64,
    total_s: f64,
}

impl Report {
    fn text(&self, name: &str) -> &str {
        self.results
            .get(name)
            .unwrap_or_else(|| panic!("the guest sent no {name}: {:?}", self.results.keys()))
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_str(self.text(name))
            .unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {}", self.text(name)))
    }

    /// check id → status, from a `check --json` report.
    fn statuses(&self, name: &str) -> BTreeMap<String, String> {
        findings(&self.json(name))
            .into_iter()
            .map(|(id, (status, _))| (id, status))
            .collect()
    }
}

fn base64_decode(s: &str) -> String {
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds (or finds cached) the image, boots it, serves the guest's requests until it says
/// `end` and powers off; what it reported.
fn boot(vm: &Vm) -> Report {
    // lab() waited for the build.
    let image = image_dir(vm);

    let case = tempfile::tempdir().unwrap();
    let payload = case.path().join("payload");
    std::fs::create_dir(&payload).unwrap();
    std::fs::copy(root().join("tests/vm/guest.sh"), payload.join("guest.sh")).unwrap();
    let deb = package(&format!("_{}.deb", vm.arch));
    std::fs::copy(&deb, payload.join(deb.file_name().unwrap())).unwrap();
    if vm.arch == "amd64" {
        let rpm = package(".x86_64.rpm");
        std::fs::copy(&rpm, payload.join(rpm.file_name().unwrap())).unwrap();
    }
    let disk = case.path().join("payload.img");
    must(&[
        "mke2fs",
        "-q",
        "-t",
        "ext4",
        "-d",
        payload.to_str().unwrap(),
        disk.to_str().unwrap(),
        "64M",
    ]);

    let mut lab = Lab {
        ns: format!("ecsvm{}{}", std::process::id(), vm.arch),
        qemu: None,
    };
    let _ = run(&["ip", "netns", "del", &lab.ns]);
    must(&["ip", "netns", "add", &lab.ns]);
    let ns = lab.ns.clone();
    let ipn = |args: &[&str]| {
        let mut full = vec!["ip", "-n", &ns];
        full.extend_from_slice(args);
        must(&full);
    };
    ipn(&["link", "set", "lo", "up"]);
    ipn(&["tuntap", "add", "dev", "tap0", "mode", "tap"]);
    ipn(&["addr", "add", "10.99.0.1/24", "dev", "tap0"]);
    // The client the pings come from: off the VM's subnet, so its replies need its default
    // route (the route fault).
    ipn(&["addr", "add", &format!("{CLIENT}/32"), "dev", "tap0"]);
    ipn(&["link", "set", "tap0", "up"]);

    let sock = case.path().join("lab.sock");
    let console = root().join(format!("target/vm/{}.console.log", vm.name));
    let (qemu, console_dev, machine): (&str, &str, &[&str]) = if vm.arch == "arm64" {
        (
            "qemu-system-aarch64",
            "ttyAMA0",
            &["-M", "virt", "-cpu", "cortex-a57"],
        )
    } else {
        ("qemu-system-x86_64", "ttyS0", &["-M", "pc"])
    };
    let started = Instant::now();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns, qemu])
        .args(machine)
        .args(["-m", "1024", "-smp", "2", "-display", "none", "-no-reboot"])
        .args(["-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(image.join("vmlinuz"))
        .arg("-initrd")
        .arg(image.join("initrd.img"))
        .arg("-append")
        .arg(format!(
            "root=/dev/vda rw console={console_dev} panic=-1 net.ifnames=0"
        ))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,snapshot=on",
            image.join("root.img").display()
        ))
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", disk.display()))
        .args([
            "-netdev",
            "tap,id=n0,ifname=tap0,script=no,downscript=no",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-device",
            "virtio-serial-pci",
        ])
        .arg("-chardev")
        .arg(format!(
            "socket,id=lab,path={},server=on,wait=off",
            sock.display()
        ))
        .args(["-device", "virtserialport,chardev=lab,name=lab"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{qemu} (scripts/prerequisites installs it): {e}"));
    lab.qemu = Some(child);
    let console_tail = || {
        let text = std::fs::read_to_string(&console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };

    let deadline = started + vm.timeout;
    let stream = loop {
        if let Ok(s) = UnixStream::connect(&sock) {
            break s;
        }
        if let Some(status) = lab.qemu.as_mut().unwrap().try_wait().unwrap() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(
                lab.qemu.as_mut().unwrap().stderr.as_mut().unwrap(),
                &mut err,
            );
            panic!("{}: {qemu} exited at once ({status}): {err}", vm.name);
        }
        assert!(Instant::now() < deadline, "{}: no serial socket", vm.name);
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut results = BTreeMap::new();
    let mut boot_s = None;
    let mut line = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{}: not done within {:?}; console:\n{}",
            vm.name,
            vm.timeout,
            console_tail()
        );
        reader.get_ref().set_read_timeout(Some(left)).unwrap();
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => panic!(
                "{}: the VM went away before it said end; console:\n{}",
                vm.name,
                console_tail()
            ),
            Ok(_) => {}
            Err(e) => panic!("{}: {e}; console:\n{}", vm.name, console_tail()),
        }
        let l = line.trim_end();
        boot_s.get_or_insert(started.elapsed().as_secs_f64());
        if l == "end" {
            break;
        } else if l == "ping" {
            // The ground truth: three echo requests from the client address; any reply is ok.
            let out = run(&[
                "ip", "netns", "exec", &ns, "ping", "-n", "-c", "3", "-i", "0.3", "-W", "1", "-I",
                CLIENT, GUEST,
            ]);
            let answer = if out.status.success() { "ok" } else { "fail" };
            writeln!(writer, "{answer}").unwrap();
        } else if let Some(rest) = l.strip_prefix("json ") {
            let (name, b64) = rest.split_once(' ').unwrap_or((rest, ""));
            results.insert(name.to_string(), base64_decode(b64));
        } else if let Some(text) = l.strip_prefix("say ") {
            eprintln!("{}: {text}", vm.name);
        }
    }
    // It powers off by itself (-no-reboot); a hang there is the timeout's.
    let qemu_child = lab.qemu.as_mut().unwrap();
    while qemu_child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "{}: did not power off",
            vm.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Report {
        results,
        boot_s: boot_s.unwrap_or_default(),
        total_s: started.elapsed().as_secs_f64(),
    }
}

/// Every assertion of the issue on one VM's report; prints the figures for the closing note.
fn judge(vm: &Vm, r: &Report) {
    let system = r.json("system");
    let kernel = system["kernel"].as_str().unwrap();
    let systemd = system["systemd"].as_str().unwrap();
    assert!(
        kernel.starts_with(vm.kernel),
        "{}: kernel {kernel}",
        vm.name
    );
    assert!(
        systemd.starts_with(&format!("systemd {}", vm.systemd)),
        "{}: {systemd}",
        vm.name
    );
    let install = r.text("install");
    assert!(install.contains("apt-get install exit 0"), "{install}");

    // The unit as systemd runs it: active, a dynamic user, only the two capabilities, and the
    // hand-over's descriptor held by the daemon.
    let unit = r.text("unit");
    for want in [
        "ActiveState=active",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(want), "{}: {want}:\n{unit}", vm.name);
    }
    for prop in ["AmbientCapabilities=", "CapabilityBoundingSet="] {
        let line = unit.lines().find(|l| l.starts_with(prop)).unwrap();
        let mut caps: Vec<&str> = line[prop.len()..].split_whitespace().collect();
        caps.sort();
        assert_eq!(
            caps,
            ["cap_net_admin", "cap_net_raw"],
            "{}: {line}",
            vm.name
        );
    }
    let field = |name: &str| {
        unit.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{}: no {name} in\n{unit}", vm.name))
    };
    assert_ne!(field("Uid:")[0], "0", "{}: not root:\n{unit}", vm.name);
    // CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else, effective and ambient.
    assert_eq!(field("CapEff:")[0], "0000000000003000", "{unit}");
    assert_eq!(field("CapAmb:")[0], "0000000000003000", "{unit}");
    assert!(
        unit.contains("/proc/") && unit.contains("/net/ip_tables_names"),
        "{}: the daemon holds no handed-over descriptor:\n{unit}",
        vm.name
    );
    assert!(
        unit.contains("ip_tables_names: handed over"),
        "{}: the hand-over did not run:\n{unit}",
        vm.name
    );

    let http = r.text("http");
    assert!(http.contains("healthz 200"), "{http}");
    assert!(http.contains("metrics 200"), "{http}");
    assert!(
        http.contains("ecs_diag_check_status{check=\"sysctl.icmp_echo\""),
        "{http}"
    );

    // Healthy: the ping works and nothing the guest can judge is unknown where the kernel
    // answers (route.reply and neigh.gateway on arm64 too: qemu-user could not).
    assert_eq!(r.text("ping-healthy").trim(), "ok", "{}", vm.name);
    let healthy = r.statuses("check-healthy");
    for id in [
        "route.reply",
        "neigh.gateway",
        "link.primary",
        "sysctl.icmp_echo",
    ] {
        assert_eq!(
            healthy.get(id).map(String::as_str),
            Some("ok"),
            "{}: {id} healthy: {healthy:?}",
            vm.name
        );
    }
    // Every check it can judge is judged: none fails, none is unknown (the metadata and cloud
    // checks are skipped: not Alibaba Cloud).
    for (id, status) in &healthy {
        assert_ne!(status, "fail", "{}: {id} fails on a healthy VM", vm.name);
        assert_ne!(
            status, "unknown",
            "{}: {id} cannot tell on a booted kernel",
            vm.name
        );
    }

    // Each fault: the ping fails, the agent names it, and it works again once undone.
    let mut faults = vec![
        ("nft", "firewall.icmp_in"),
        ("route", "route.default"),
        ("sysctl", "sysctl.icmp_echo"),
    ];
    if r.results.contains_key("check-iptables-legacy") {
        faults.push(("iptables-legacy", "firewall.icmp_in"));
    }
    for (fault, id) in &faults {
        assert_eq!(
            r.text(&format!("ping-{fault}")).trim(),
            "fail",
            "{}: the {fault} fault holds",
            vm.name
        );
        let s = r.statuses(&format!("check-{fault}"));
        assert_eq!(
            s.get(*id).map(String::as_str),
            Some("fail"),
            "{}: {fault} → {id}: {s:?}",
            vm.name
        );
        if *fault != "sysctl" {
            assert_eq!(
                r.text(&format!("ping-{fault}-undone")).trim(),
                "ok",
                "{}: {fault} undone",
                vm.name
            );
        }
    }
    // The transient timer: armed before the change, and (unconfirmed) it reverted the fix.
    let nft_fix = r.json("fix-nft");
    assert_eq!(
        nft_fix["state"], "awaiting_confirmation",
        "{}: {nft_fix:#}",
        vm.name
    );
    let armed = nft_fix["reverter"].to_string();
    assert!(armed.contains("ecs-diag-revert-"), "{}: {armed}", vm.name);
    let timers = r.text("timer-armed");
    assert!(timers.contains("ecs-diag-revert-"), "{}: {timers}", vm.name);
    assert_eq!(r.text("ping-nft-fixed").trim(), "ok", "{}", vm.name);
    assert_eq!(
        r.text("ping-nft-reverted").trim(),
        "fail",
        "{}: the timer reverted the unconfirmed fix",
        vm.name
    );
    let history = r.json("history-nft");
    let last = history.as_array().and_then(|h| h.last()).unwrap();
    assert_eq!(last["state"], "reverted", "{}: {last:#}", vm.name);

    let fix = r.json("fix-sysctl");
    assert_eq!(fix["state"], "applied", "{}: {fix:#}", vm.name);
    assert_eq!(r.text("ping-sysctl-fixed").trim(), "ok", "{}", vm.name);

    // Purged: nothing left.
    let purge = r.text("purge");
    assert!(purge.contains("apt-get purge exit 0"), "{purge}");
    let left = purge
        .split("--- left\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("unit "))
        .collect::<Vec<_>>();
    assert!(left.is_empty(), "{}: left after purge: {left:?}", vm.name);

    if vm.arch == "amd64" {
        let rpm = r.text("rpm");
        for want in [
            "rpm -i exit 0",
            "after install: enabled active",
            "healthz 200",
            "rpm -V exit 0",
            "rpm -e exit 0",
            "after erase: inactive",
            "rpm -q: package ecs-diag is not installed",
        ] {
            assert!(rpm.contains(want), "{}: {want}:\n{rpm}", vm.name);
        }
    }

    println!(
        "{:<16} kernel {kernel}, {systemd}: first report {:.0} s after start, done {:.0} s",
        vm.name, r.boot_s, r.total_s
    );
    let line: Vec<String> = healthy.iter().map(|(id, s)| format!("{id}={s}")).collect();
    println!("{:<16} healthy: {}", vm.name, line.join(" "));
}

const VMS: &[Vm] = &[
    Vm {
        name: "debian11-amd64",
        suite: "bullseye",
        arch: "amd64",
        kernel: "5.10.",
        systemd: "247",
        timeout: Duration::from_secs(300),
    },
    Vm {
        name: "debian13-amd64",
        suite: "trixie",
        arch: "amd64",
        kernel: "6.12.",
        systemd: "257",
        timeout: Duration::from_secs(400),
    },
    Vm {
        name: "debian11-arm64",
        suite: "bullseye",
        arch: "arm64",
        kernel: "5.10.",
        systemd: "247",
        timeout: Duration::from_secs(400),
    },
];

fn lab(name: &str) {
    let vm = VMS.iter().find(|v| v.name == name).unwrap();
    // The image first (all build together), then the boot, one VM at a time.
    assert!(built(vm), "{}: the image was not built", vm.name);
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let r = boot(vm);
    judge(vm, &r);
}

#[test]
fn debian11_amd64_kernel_5_10_systemd_247() {
    lab("debian11-amd64");
}

#[test]
fn debian13_amd64_kernel_6_12_systemd_257() {
    lab("debian13-amd64");
}

#[test]
fn debian11_arm64_kernel_5_10_systemd_247() {
    lab("debian11-arm64");
}
