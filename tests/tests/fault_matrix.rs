//! The end-to-end fault matrix (DESIGN.md): for each fault, a fresh `guest` namespace (eth0 with
//! the assigned address, a gateway, a loopback fake metadata service) and a `client` namespace
//! at the other end of a veth pair that is also the gateway. Healthy first — a real `ping`
//! works and every check is `ok` — then the fault is injected inside the namespaces, the real
//! `ping` outcome is asserted, and the agent, run inside `guest`, must report the expected
//! verdict on the expected check id and `fail` on no unrelated check.
//!
//! Traffic stays inside the namespaces; every namespace is removed on drop, even when a case
//! fails. Needs root (CI is root), iproute2 and iputils-ping.

// Test harness: a failed set-up step should stop the case loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MAC0: &str = "00:16:3e:00:00:01";
const MAC1: &str = "00:16:3e:00:00:02";
const GUEST_IP: &str = "10.77.0.10";
const SECONDARY_IP: &str = "10.77.0.11";
const GATEWAY: &str = "10.77.0.1";
/// The "outside" client, on the client namespace's loopback: replies to it need the gateway.
const CLIENT: &str = "198.18.0.2";
const METADATA_PORT: u16 = 18080;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The agent binary under test: `ECS_DIAG_BIN` when set (`scripts/test` sets it to the static
/// build the packages ship, so the matrix proves the shipped binary), else this crate's build
/// of the same code.
fn agent_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("ECS_DIAG_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_ecs-diag-under-test").to_string())
    })
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One guest/client pair of namespaces, with its fixture tree and fake metadata service.
struct Topology {
    guest: String,
    client: String,
    dir: tempfile::TempDir,
    metadata: Option<Child>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(mut c) = self.metadata.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.guest, &self.client] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

fn metadata_doc(secondary_eni: bool) -> Value {
    let eni = |mac: &str, ip: &str, ips: Value, gw: &str, cidr: &str, id: &str| {
        let p = format!("network/interfaces/macs/{mac}/");
        vec![
            (format!("{p}primary-ip-address"), json!(ip)),
            (format!("{p}netmask"), json!("255.255.255.0")),
            (format!("{p}gateway"), json!(gw)),
            (format!("{p}private-ipv4s"), json!(ips.to_string())),
            (format!("{p}vswitch-cidr-block"), json!(cidr)),
            (format!("{p}network-interface-id"), json!(id)),
        ]
    };
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in [
        ("mac", MAC0),
        ("instance-id", "i-matrix"),
        ("region-id", "cn-matrix"),
        ("private-ipv4", GUEST_IP),
        ("vswitch-cidr-block", "10.77.0.0/24"),
        ("vpc-cidr-block", "10.0.0.0/8"),
    ] {
        m.insert(k.into(), json!(v));
    }
    let mut macs = format!("{MAC0}/\n");
    m.extend(eni(
        MAC0,
        GUEST_IP,
        json!([GUEST_IP, SECONDARY_IP]),
        GATEWAY,
        "10.77.0.0/24",
        "eni-matrix0",
    ));
    if secondary_eni {
        macs.push_str(&format!("{MAC1}/\n"));
        m.extend(eni(
            MAC1,
            "10.77.2.10",
            json!(["10.77.2.10"]),
            "10.77.2.1",
            "10.77.2.0/24",
            "eni-matrix1",
        ));
    }
    m.insert("network/interfaces/macs/".into(), json!(macs));
    json!(m)
}

impl Topology {
    fn new() -> Topology {
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let t = Topology {
            guest: format!("ecsdiag-g-{id}"),
            client: format!("ecsdiag-c-{id}"),
            dir: tempfile::tempdir().expect("tempdir"),
            metadata: None,
        };
        // The agent runs as an unprivileged user (see `diagnose_with`): it must read the tree.
        std::fs::set_permissions(
            t.dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::copy(agent_bin(), t.dir.path().join("ecs-diag")).unwrap();
        must(&["ip", "netns", "add", &t.guest]);
        must(&["ip", "netns", "add", &t.client]);
        // Deterministic per-namespace sysctls, set before the links exist so they inherit them.
        t.sysctl_g("net.ipv4.conf.all.rp_filter=0");
        t.sysctl_g("net.ipv4.conf.default.rp_filter=0");
        t.sysctl_g("net.ipv4.conf.all.promote_secondaries=1");
        t.sysctl_g("net.ipv4.conf.default.promote_secondaries=1");
        t.sysctl_c("net.ipv4.conf.all.rp_filter=0");
        t.sysctl_c("net.ipv4.conf.default.rp_filter=0");
        t.g(&["ip", "link", "set", "lo", "up"]);
        t.c(&["ip", "link", "set", "lo", "up"]);
        t.g(&[
            "ip", "link", "add", "eth0", "address", MAC0, "type", "veth", "peer", "name", "gw0",
            "netns", &t.client,
        ]);
        t.g(&[
            "ip",
            "addr",
            "add",
            &format!("{GUEST_IP}/24"),
            "dev",
            "eth0",
        ]);
        t.g(&[
            "ip",
            "addr",
            "add",
            &format!("{SECONDARY_IP}/24"),
            "dev",
            "eth0",
        ]);
        t.g(&["ip", "link", "set", "eth0", "up"]);
        t.c(&["ip", "addr", "add", &format!("{GATEWAY}/24"), "dev", "gw0"]);
        t.c(&["ip", "addr", "add", &format!("{CLIENT}/32"), "dev", "lo"]);
        t.c(&["ip", "link", "set", "gw0", "up"]);
        t.g(&[
            "ip", "route", "add", "default", "via", GATEWAY, "dev", "eth0",
        ]);
        // IPv6 too, so the IPv6 checks judge something (nodad: usable at once).
        t.g(&[
            "ip",
            "-6",
            "addr",
            "add",
            "fd77::10/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        t.c(&[
            "ip",
            "-6",
            "addr",
            "add",
            "fd77::1/64",
            "dev",
            "gw0",
            "nodad",
        ]);

        // Fixture roots: DMI says ECS, eth0 is virtio_net, eth0 persisted as DHCP.
        let root = t.dir.path();
        std::fs::create_dir_all(root.join("sys/class/dmi/id")).unwrap();
        std::fs::write(
            root.join("sys/class/dmi/id/product_name"),
            "Alibaba Cloud ECS\n",
        )
        .unwrap();
        std::fs::write(root.join("sys/class/dmi/id/sys_vendor"), "Alibaba Cloud\n").unwrap();
        std::fs::create_dir_all(root.join("sys/bus/virtio/drivers/virtio_net")).unwrap();
        std::fs::create_dir_all(root.join("sys/class/net/eth0/device")).unwrap();
        std::os::unix::fs::symlink(
            root.join("sys/bus/virtio/drivers/virtio_net"),
            root.join("sys/class/net/eth0/device/driver"),
        )
        .unwrap();
        t.write_ifcfg("DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n");
        t.write_metadata(false);
        std::fs::write(
            root.join("config.toml"),
            format!(
                "[metadata]\nmode = \"auto\"\nurl = \"http://127.0.0.1:{METADATA_PORT}\"\ntimeout_ms = 1000\n[paths]\netc = \"{0}/etc\"\nsys = \"{0}/sys\"\n{MACHINE_LOAD_IGNORED}",
                root.display()
            ),
        )
        .unwrap();
        let mut t = t;
        t.start_metadata();
        t
    }

    fn start_metadata(&mut self) {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.guest,
                env!("CARGO_BIN_EXE_fake-metadata"),
            ])
            .arg(METADATA_PORT.to_string())
            .arg(self.dir.path().join("metadata.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fake-metadata");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "fake metadata did not start");
        self.metadata = Some(child);
    }

    fn write_metadata(&self, secondary_eni: bool) {
        std::fs::write(
            self.dir.path().join("metadata.json"),
            metadata_doc(secondary_eni).to_string(),
        )
        .unwrap();
    }

    fn write_ifcfg(&self, text: &str) {
        let d = self.dir.path().join("etc/sysconfig/network-scripts");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ifcfg-eth0"), text).unwrap();
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full)
    }
    fn g(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.guest];
        full.extend_from_slice(args);
        must(&full);
    }
    fn c(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.client];
        full.extend_from_slice(args);
        must(&full);
    }
    fn sysctl_g(&self, kv: &str) {
        self.g(&["sysctl", "-q", "-w", kv]);
    }
    fn sysctl_c(&self, kv: &str) {
        self.c(&["sysctl", "-q", "-w", kv]);
    }

    /// A real ping from the outside client to `target`: did any reply come back?
    fn ping(&self, target: &str) -> bool {
        self.exec(
            &self.client,
            &[
                "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", "-I", CLIENT, target,
            ],
        )
        .status
        .success()
    }

    /// `count` pings at 0.2 s intervals; how many replies came back.
    fn ping_count(&self, target: &str, count: u32, v6: bool) -> u32 {
        let count = count.to_string();
        let mut args = vec!["ping", "-n", "-q", "-c", &count, "-i", "0.2", "-W", "1"];
        if v6 {
            args.push("-6");
        } else {
            args.extend(["-I", CLIENT]);
        }
        args.push(target);
        let out = self.exec(&self.client, &args);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split(", ")
            .find_map(|part| part.strip_suffix(" received"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ping summary in: {text}"))
    }

    /// Runs `ecs-diag check --json` inside the guest, as the packaged unit runs the agent: an
    /// unprivileged user in group root holding only ambient CAP_NET_ADMIN and CAP_NET_RAW,
    /// with no_new_privs — so every verdict below is proven to need nothing more. Returns
    /// id → (status, whole finding).
    fn diagnose(&self, client: Option<&str>) -> BTreeMap<String, (String, Value)> {
        self.diagnose_with(client, &[])
    }

    fn diagnose_with(
        &self,
        client: Option<&str>,
        extra: &[&str],
    ) -> BTreeMap<String, (String, Value)> {
        let config = self.dir.path().join("config.toml");
        let bin = self.dir.path().join("ecs-diag");
        let mut args = vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--groups=0", // SupplementaryGroups=root, as the unit
            "--inh-caps=-all,+net_admin,+net_raw",
            "--ambient-caps=-all,+net_admin,+net_raw",
            "--bounding-set=-all,+net_admin,+net_raw",
            "--no-new-privs",
            bin.to_str().unwrap(),
            "check",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ];
        if let Some(c) = client {
            args.extend(["--client", c]);
        }
        args.extend_from_slice(extra);
        let out = self.exec(&self.guest, &args);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "agent output is not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        // The exit code follows the worst status.
        let statuses: Vec<&str> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["status"].as_str().unwrap())
            .collect();
        let want = if statuses.contains(&"fail") {
            2
        } else if statuses.contains(&"warn") {
            1
        } else if statuses.contains(&"unknown") {
            3
        } else {
            0
        };
        assert_eq!(out.status.code(), Some(want), "exit code for {statuses:?}");
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    (c["status"].as_str().unwrap().to_string(), c.clone()),
                )
            })
            .collect()
    }

    /// A second interface (eth1, 10.78.0.10/24, peer gw1 in the client) whose replies leave by
    /// eth0, the default route: an asymmetric path for traffic arriving on eth1.
    fn add_asymmetric_eth1(&self) {
        self.g(&[
            "ip",
            "link",
            "add",
            "eth1",
            "type",
            "veth",
            "peer",
            "name",
            "gw1",
            "netns",
            &self.client,
        ]);
        self.g(&["ip", "addr", "add", "10.78.0.10/24", "dev", "eth1"]);
        self.g(&["ip", "link", "set", "eth1", "up"]);
        self.c(&["ip", "addr", "add", "10.78.0.1/24", "dev", "gw1"]);
        self.c(&["ip", "link", "set", "gw1", "up"]);
    }

    /// Waits until the guest's neighbour entry for `ip` reaches `state`.
    fn wait_neighbour(&self, ip: &str, state: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let out = self.exec(&self.guest, &["ip", "neigh", "show", ip, "dev", "eth0"]);
            if String::from_utf8_lossy(&out.stdout).contains(state) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }
}

fn show(report: &BTreeMap<String, (String, Value)>) -> String {
    report
        .iter()
        .map(|(id, (st, f))| format!("  {st:<7} {id:<22} {}", f["summary"].as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The healthy baseline every case starts from: pings work and every check is ok.
/// The matrix runs many namespaces at once on a shared 2-core machine: its CPU, memory and disk
/// load is the suite's, not a fault. These thresholds keep the load checks running (their
/// sources must still work: an unknown fails the baseline) without judging that load; the load
/// checks are proven by unit tests and `load_test.rs`. The bandwidth limit lets net.bandwidth
/// judge the window.
const MACHINE_LOAD_IGNORED: &str = "[limits]\nbandwidth_mbps = 10000\n[thresholds]\ncpu_busy_pct = 100\ncpu_saturated_pct = 100\ncpu_iowait_pct = 100\ncpu_steal_pct = 100\ncpu_steal_fail_pct = 100\nload_per_cpu = 1000\npressure_some_pct = 100\npressure_full_pct = 100\npressure_full_fail_pct = 100\nmemory_available_pct = 0\nmemory_available_fail_pct = 0\nswap_pages_per_s = 1e12\noom_kills = 1000000\ndisk_busy_pct = 100\ndstate_processes = 100000\ndstate_fail_processes = 100000\n";

/// The namespaces share this machine's CPUs and disks: a CPU of the test machine at 100%
/// (thresholds cannot go beyond 100%) is not a fault of the guest. The load checks may warn
/// in the healthy baseline; they never fail there (agent/tests/load.rs proves them).
fn machine_load_warning(id: &str, status: &str) -> bool {
    id.starts_with("load.") && status == "warn"
}

fn assert_healthy(t: &Topology) {
    assert!(
        t.ping(GUEST_IP),
        "healthy: ping to the primary IP must work"
    );
    assert!(
        t.ping(SECONDARY_IP),
        "healthy: ping to the secondary IP must work"
    );
    // With a client: over a 1 s window (rates) while a real ping runs, so icmp.live sees it
    // answered; without: one sample, where net.bandwidth has no rate to judge and says so.
    for client in [Some(CLIENT), None] {
        let report = match client {
            Some(_) => std::thread::scope(|scope| {
                let agent = scope.spawn(|| t.diagnose_with(client, &["--window", "1"]));
                std::thread::sleep(Duration::from_millis(200));
                t.ping_count(GUEST_IP, 4, false);
                agent.join().unwrap()
            }),
            None => t.diagnose(client),
        };
        assert_eq!(
            report.len(),
            ecs_diag::checks::catalogue().count(),
            "every check reported:\n{}",
            show(&report)
        );
        let not_ok: Vec<_> = report
            .iter()
            .filter(|(id, (st, _))| {
                st != "ok"
                    && !(client.is_none() && *id == "net.bandwidth" && st == "skipped")
                    && !machine_load_warning(id, st)
            })
            .collect();
        assert!(
            not_ok.is_empty(),
            "healthy (client {client:?}): every check must be ok:\n{}",
            show(&report)
        );
    }
}

/// A fault: how to inject it, what the real ping does then, what the agent must say.
struct Fault {
    /// Address pinged after injection, and whether a reply must come back.
    ping: &'static str,
    ping_works: bool,
    /// (check id, exact status) the agent must report.
    expect: &'static [(&'static str, &'static str)],
    /// Other checks that may also fail as a direct consequence of this fault.
    consequences: &'static [&'static str],
}

fn prove(fault: Fault, inject: impl FnOnce(&Topology)) -> BTreeMap<String, (String, Value)> {
    let t = Topology::new();
    assert_healthy(&t);
    inject(&t);
    assert_eq!(
        t.ping(fault.ping),
        fault.ping_works,
        "ground truth: ping {} after the fault",
        fault.ping
    );
    let report = t.diagnose(Some(CLIENT));
    println!("after the fault:\n{}", show(&report));
    for (id, status) in fault.expect {
        let (got, finding) = &report[*id];
        assert_eq!(got, status, "{id} must be {status}:\n{}", show(&report));
        assert!(!finding["summary"].as_str().unwrap().is_empty());
        if *status == "fail" || *status == "warn" {
            assert!(
                finding["evidence"]
                    .as_object()
                    .is_some_and(|e| !e.is_empty()),
                "{id} has evidence"
            );
            assert!(
                !finding["remedy"].as_array().unwrap().is_empty() || *id == "route.default",
                "{id} has a remedy"
            );
        }
    }
    for (id, (status, _)) in &report {
        if status == "fail" {
            assert!(
                fault.expect.iter().any(|(e, _)| e == id)
                    || fault.consequences.contains(&id.as_str()),
                "unrelated check {id} failed:\n{}",
                show(&report)
            );
        }
    }
    report
}

#[test]
fn healthy_guest_is_all_ok() {
    let t = Topology::new();
    assert_healthy(&t);
}

#[test]
fn primary_admin_down() {
    prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("link.primary", "fail")],
            consequences: &["route.default", "route.reply"],
        },
        |t| t.g(&["ip", "link", "set", "eth0", "down"]),
    );
}

#[test]
fn primary_no_carrier() {
    let r = prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("link.primary", "fail")],
            consequences: &["route.default"],
        },
        |t| t.c(&["ip", "link", "set", "gw0", "down"]),
    );
    assert!(r["link.primary"].1["summary"]
        .as_str()
        .unwrap()
        .contains("no carrier"));
}

#[test]
fn primary_ip_removed() {
    prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("addr.primary", "fail")],
            consequences: &["route.default", "route.reply"],
        },
        |t| {
            t.g(&[
                "ip",
                "addr",
                "del",
                &format!("{GUEST_IP}/24"),
                "dev",
                "eth0",
            ])
        },
    );
}

#[test]
fn wrong_prefix() {
    // A /16 instead of the vSwitch's /24: the gateway is still on-link, so ping works, but the
    // rest of the VPC outside the /24 is unreachable: a warning.
    let r = prove(
        Fault {
            ping: GUEST_IP,
            ping_works: true,
            expect: &[("addr.primary", "warn")],
            consequences: &[],
        },
        |t| {
            t.g(&[
                "ip",
                "addr",
                "del",
                &format!("{GUEST_IP}/24"),
                "dev",
                "eth0",
            ]);
            t.g(&[
                "ip",
                "addr",
                "add",
                &format!("{GUEST_IP}/16"),
                "dev",
                "eth0",
            ]);
            t.g(&[
                "ip", "route", "replace", "default", "via", GATEWAY, "dev", "eth0",
            ]);
        },
    );
    assert!(r["addr.primary"].1["summary"]
        .as_str()
        .unwrap()
        .contains("/16"));
}

#[test]
fn static_ip_differs_from_assigned() {
    let r = prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("addr.primary", "fail"), ("addr.config", "fail")],
            consequences: &[],
        },
        |t| {
            t.g(&[
                "ip",
                "addr",
                "del",
                &format!("{GUEST_IP}/24"),
                "dev",
                "eth0",
            ]);
            t.g(&["ip", "addr", "add", "10.77.0.99/24", "dev", "eth0"]);
            t.g(&[
                "ip", "route", "replace", "default", "via", GATEWAY, "dev", "eth0",
            ]);
            t.write_ifcfg(
                "DEVICE=eth0\nBOOTPROTO=static\nIPADDR=10.77.0.99\nPREFIX=24\nGATEWAY=10.77.0.1\n",
            );
        },
    );
    assert!(r["addr.primary"].1["summary"]
        .as_str()
        .unwrap()
        .contains("10.77.0.99"));
}

#[test]
fn default_route_missing() {
    prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("route.default", "fail"), ("route.reply", "fail")],
            consequences: &[],
        },
        |t| t.g(&["ip", "route", "del", "default"]),
    );
}

#[test]
fn default_route_via_wrong_gateway() {
    let r = prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("route.default", "fail")],
            consequences: &["neigh.gateway"],
        },
        |t| {
            t.g(&[
                "ip",
                "route",
                "replace",
                "default",
                "via",
                "10.77.0.254",
                "dev",
                "eth0",
            ])
        },
    );
    assert!(r["route.default"].1["summary"]
        .as_str()
        .unwrap()
        .contains("10.77.0.254"));
}

#[test]
fn blackhole_route_captures_replies() {
    let r = prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("route.default", "fail"), ("route.reply", "fail")],
            consequences: &[],
        },
        |t| t.g(&["ip", "route", "add", "blackhole", "198.18.0.0/16"]),
    );
    assert!(r["route.default"].1["summary"]
        .as_str()
        .unwrap()
        .contains("blackhole 198.18.0.0/16"));
}

#[test]
fn unreachable_route_in_a_policy_table_captures_replies() {
    prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("route.default", "fail"), ("route.reply", "fail")],
            consequences: &[],
        },
        |t| {
            t.g(&[
                "ip",
                "route",
                "add",
                "unreachable",
                "198.18.0.2/32",
                "table",
                "100",
            ]);
            t.g(&[
                "ip",
                "rule",
                "add",
                "to",
                "198.18.0.0/16",
                "table",
                "100",
                "priority",
                "100",
            ]);
        },
    );
}

#[test]
fn icmp_echo_ignore_all() {
    prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("sysctl.icmp_echo", "fail")],
            consequences: &[],
        },
        |t| t.sysctl_g("net.ipv4.icmp_echo_ignore_all=1"),
    );
}

#[test]
fn secondary_private_ip_not_configured() {
    let r = prove(
        Fault {
            ping: SECONDARY_IP,
            ping_works: false,
            expect: &[("addr.secondary", "fail")],
            consequences: &[],
        },
        |t| {
            t.g(&[
                "ip",
                "addr",
                "del",
                &format!("{SECONDARY_IP}/24"),
                "dev",
                "eth0",
            ])
        },
    );
    assert!(r["addr.secondary"].1["summary"]
        .as_str()
        .unwrap()
        .contains(SECONDARY_IP));
}

#[test]
fn secondary_eni_without_interface() {
    let r = prove(
        Fault {
            ping: "10.77.2.10",
            ping_works: false,
            expect: &[("link.secondary", "fail")],
            consequences: &[],
        },
        |t| {
            // The cloud attached a second ENI (and routes its IP to this instance) but the OS
            // has no interface for it.
            t.write_metadata(true);
            t.c(&["ip", "route", "add", "10.77.2.0/24", "dev", "gw0"]);
        },
    );
    assert!(r["link.secondary"].1["summary"]
        .as_str()
        .unwrap()
        .contains("eni-matrix1"));
}

#[test]
fn strict_rp_filter_with_asymmetric_reply_path() {
    let r = prove(
        Fault {
            ping: "10.78.0.10",
            ping_works: false,
            expect: &[("sysctl.rp_filter", "fail"), ("route.reply", "warn")],
            consequences: &[],
        },
        |t| {
            t.add_asymmetric_eth1();
            t.sysctl_g("net.ipv4.conf.eth1.rp_filter=1");
        },
    );
    assert!(r["sysctl.rp_filter"].1["summary"]
        .as_str()
        .unwrap()
        .contains("eth1"));
}

#[test]
fn loose_rp_filter_control_passes() {
    // The control for the case above: the same asymmetric path with loose rp_filter pings fine
    // and the agent does not blame rp_filter.
    prove(
        Fault {
            ping: "10.78.0.10",
            ping_works: true,
            expect: &[("sysctl.rp_filter", "ok"), ("route.reply", "warn")],
            consequences: &[],
        },
        |t| {
            t.add_asymmetric_eth1();
            t.sysctl_g("net.ipv4.conf.eth1.rp_filter=2");
        },
    );
}

#[test]
fn gateway_neighbour_failed() {
    let t_expect = Fault {
        ping: GUEST_IP,
        ping_works: false,
        expect: &[("neigh.gateway", "fail")],
        consequences: &[],
    };
    let t = Topology::new();
    assert_healthy(&t);
    // The gateway stops answering ARP; the client keeps a static entry for the guest so it
    // never needs to ask (and so never teaches the guest its address).
    let mac = String::from_utf8_lossy(
        &t.exec(&t.guest, &["cat", "/sys/class/net/eth0/address"])
            .stdout,
    )
    .trim()
    .to_string();
    t.sysctl_c("net.ipv4.conf.gw0.arp_ignore=8");
    t.c(&[
        "ip",
        "neigh",
        "replace",
        GUEST_IP,
        "lladdr",
        &mac,
        "dev",
        "gw0",
        "nud",
        "permanent",
    ]);
    t.g(&["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(
        !t.ping(t_expect.ping),
        "ground truth: ping fails when the gateway does not answer ARP"
    );
    assert!(
        t.wait_neighbour(GATEWAY, "FAILED"),
        "the guest's gateway entry reaches FAILED"
    );
    let report = t.diagnose(Some(CLIENT));
    assert_eq!(report["neigh.gateway"].0, "fail", "{}", show(&report));
    assert!(report["neigh.gateway"].1["summary"]
        .as_str()
        .unwrap()
        .contains("FAILED"));
    for (id, (status, _)) in &report {
        assert!(
            status != "fail" || id == "neigh.gateway",
            "unrelated check {id} failed:\n{}",
            show(&report)
        );
    }
}

#[test]
fn icmp_echo6_ignore_all() {
    prove(
        Fault {
            ping: GUEST_IP,
            ping_works: true,
            expect: &[("sysctl.icmp_echo6", "fail")],
            consequences: &[],
        },
        |t| {
            assert!(
                t.ping_count("fd77::10", 3, true) > 0,
                "IPv6 ping works before the fault"
            );
            t.sysctl_g("net.ipv6.icmp.echo_ignore_all=1");
            assert_eq!(
                t.ping_count("fd77::10", 3, true),
                0,
                "ground truth: IPv6 ping fails"
            );
        },
    );
}

#[test]
fn echo_replies_rate_limited() {
    let r = prove(
        Fault {
            // After the burst the kernel's per-client budget is spent: the next pings get nothing.
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("sysctl.icmp_ratelimit", "fail")],
            consequences: &[],
        },
        |t| {
            // Echo reply (type 0) added to the mask, one reply per 10 s per client.
            t.sysctl_g("net.ipv4.icmp_ratemask=6169");
            t.sysctl_g("net.ipv4.icmp_ratelimit=10000");
            let got = t.ping_count(GUEST_IP, 20, false);
            assert!(
                got <= 10,
                "ground truth: most of 20 pings lose their reply, {got} came back"
            );
        },
    );
    assert!(r["sysctl.icmp_ratelimit"].1["summary"]
        .as_str()
        .unwrap()
        .contains("10000 ms"));
}

/// `check --window`: the agent samples the counters while a real ping runs.
fn windowed_check_while_pinging(t: &Topology) -> BTreeMap<String, (String, Value)> {
    std::thread::scope(|scope| {
        let agent = scope.spawn(|| t.diagnose_with(Some(CLIENT), &["--window", "3"]));
        std::thread::sleep(Duration::from_millis(500));
        t.ping_count(GUEST_IP, 8, false);
        agent.join().unwrap()
    })
}

#[test]
fn icmp_live_window_sees_requests_answered_then_unanswered() {
    let t = Topology::new();
    assert_healthy(&t);
    let healthy = windowed_check_while_pinging(&t);
    assert_eq!(healthy["icmp.live"].0, "ok", "{}", show(&healthy));
    assert!(healthy["icmp.live"].1["summary"]
        .as_str()
        .unwrap()
        .contains("all were answered"));

    t.sysctl_g("net.ipv4.icmp_echo_ignore_all=1");
    let report = windowed_check_while_pinging(&t);
    assert_eq!(report["icmp.live"].0, "fail", "{}", show(&report));
    let ev = &report["icmp.live"].1["evidence"];
    assert!(ev["echo_requests_in"].as_u64().unwrap() >= 5, "{ev}");
    assert_eq!(ev["echo_replies_out"], 0);
    for (id, (status, _)) in &report {
        assert!(
            status != "fail" || id == "icmp.live" || id == "sysctl.icmp_echo",
            "unrelated check {id} failed:\n{}",
            show(&report)
        );
    }
}

// ---- Guest firewall (iptables/ip6tables, both backends) ----

fn firewall_case(
    expect: &'static [(&'static str, &'static str)],
    ping_works: bool,
    rules: &[&[&str]],
) -> BTreeMap<String, (String, Value)> {
    let rules: Vec<Vec<String>> = rules
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect();
    prove(
        Fault {
            ping: GUEST_IP,
            ping_works,
            expect,
            consequences: &[],
        },
        move |t| {
            for r in &rules {
                let args: Vec<&str> = r.iter().map(String::as_str).collect();
                t.g(&args);
            }
        },
    )
}

fn summary(r: &BTreeMap<String, (String, Value)>, id: &str) -> String {
    r[id].1["summary"].as_str().unwrap().to_string()
}

#[test]
fn firewall_input_drops_echo_request() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[&[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "icmp",
            "--icmp-type",
            "echo-request",
            "-j",
            "DROP",
        ]],
    );
    let s = summary(&r, "firewall.icmp_in");
    assert!(
        s.contains("rule 1 of filter INPUT") && s.contains("-j DROP"),
        "{s}"
    );
    // The counters show the ground-truth pings hit this rule.
    let hits = r["firewall.icmp_in"].1["evidence"]["rulesets"][0]["decided_by"]["packets"]
        .as_u64()
        .unwrap();
    assert!(hits >= 3, "rule counters moved: {hits}");
}

#[test]
fn firewall_output_drops_echo_reply() {
    firewall_case(
        &[("firewall.icmp_out", "fail")],
        false,
        &[&[
            "iptables",
            "-A",
            "OUTPUT",
            "-p",
            "icmp",
            "--icmp-type",
            "echo-reply",
            "-j",
            "DROP",
        ]],
    );
}

#[test]
fn firewall_input_policy_drop_without_icmp_accept() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[
            &["iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
            &[
                "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
            ],
            &["iptables", "-P", "INPUT", "DROP"],
        ],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("DROP policy of filter INPUT"));
}

#[test]
fn firewall_drop_reached_through_a_user_chain() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[
            &["iptables", "-N", "blocklist"],
            &["iptables", "-A", "blocklist", "-p", "icmp", "-j", "DROP"],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-s",
                "198.18.0.0/16",
                "-j",
                "blocklist",
            ],
        ],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("filter blocklist"));
}

#[test]
fn firewall_drop_only_for_the_client_address() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[&[
            "iptables", "-A", "INPUT", "-s", CLIENT, "-p", "icmp", "-j", "DROP",
        ]],
    );
    assert!(summary(&r, "firewall.icmp_in").contains(CLIENT));
}

#[test]
fn firewall_client_decides_the_verdict() {
    let t = Topology::new();
    assert_healthy(&t);
    t.g(&[
        "iptables", "-A", "INPUT", "-s", CLIENT, "-p", "icmp", "-j", "DROP",
    ]);
    assert!(
        !t.ping(GUEST_IP),
        "ground truth: this client's pings are dropped"
    );
    assert_eq!(t.diagnose(Some(CLIENT))["firewall.icmp_in"].0, "fail");
    // Any other source is let through: without --client the verdict is ok.
    let other = t.diagnose(None);
    assert_eq!(other["firewall.icmp_in"].0, "ok", "{}", show(&other));
}

#[test]
fn firewall_reject_host_prohibited_as_firewalld_does() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[
            &["iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-host-prohibited",
            ],
        ],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("rejects (icmp-host-prohibited)"));
}

#[test]
fn firewall_raw_table_drop() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[&[
            "iptables",
            "-t",
            "raw",
            "-A",
            "PREROUTING",
            "-p",
            "icmp",
            "--icmp-type",
            "8",
            "-j",
            "DROP",
        ]],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("of raw PREROUTING"));
}

#[test]
fn firewall_legacy_backend_drop() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[&["iptables-legacy", "-A", "INPUT", "-p", "icmp", "-j", "DROP"]],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("legacy backend"));
}

#[test]
fn firewall_ip6tables_drops_icmpv6_echo() {
    let r = prove(
        Fault {
            ping: GUEST_IP,
            ping_works: true,
            expect: &[("firewall.icmp6", "fail")],
            consequences: &[],
        },
        |t| {
            assert!(
                t.ping_count("fd77::10", 3, true) > 0,
                "IPv6 ping works before the fault"
            );
            t.g(&[
                "ip6tables",
                "-A",
                "INPUT",
                "-p",
                "ipv6-icmp",
                "--icmpv6-type",
                "echo-request",
                "-j",
                "DROP",
            ]);
            assert_eq!(
                t.ping_count("fd77::10", 3, true),
                0,
                "ground truth: IPv6 ping fails"
            );
        },
    );
    assert!(summary(&r, "firewall.icmp6").contains("ip6tables"));
}

#[test]
fn firewall_drops_that_do_not_touch_icmp_are_ok() {
    firewall_case(
        &[
            ("firewall.icmp_in", "ok"),
            ("firewall.icmp_out", "ok"),
            ("firewall.icmp6", "ok"),
        ],
        true,
        &[
            &[
                "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "23", "-j", "DROP",
            ],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-p",
                "udp",
                "-m",
                "multiport",
                "--dports",
                "137:139,445",
                "-j",
                "DROP",
            ],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-s",
                "203.0.113.0/24",
                "-j",
                "DROP",
            ],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-p",
                "icmp",
                "--icmp-type",
                "timestamp-request",
                "-j",
                "DROP",
            ],
            &[
                "iptables", "-A", "OUTPUT", "-p", "tcp", "--dport", "25", "-j", "REJECT",
            ],
            &[
                "ip6tables",
                "-A",
                "INPUT",
                "-p",
                "tcp",
                "--dport",
                "23",
                "-j",
                "DROP",
            ],
        ],
    );
}

#[test]
fn firewall_icmp_accept_ahead_of_a_catch_all_drop_is_ok() {
    firewall_case(
        &[("firewall.icmp_in", "ok")],
        true,
        &[
            &["iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-p",
                "icmp",
                "--icmp-type",
                "echo-request",
                "-j",
                "ACCEPT",
            ],
            &["iptables", "-A", "INPUT", "-j", "DROP"],
        ],
    );
}

#[test]
fn firewall_native_nft_inet_table_drop() {
    let r = prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("firewall.icmp_in", "fail")],
            consequences: &[],
        },
        |t| {
            t.g(&["nft", "add", "table", "inet", "guard"]);
            t.g(&[
                "nft",
                "add",
                "chain",
                "inet",
                "guard",
                "input",
                "{ type filter hook input priority 0; policy accept; }",
            ]);
            t.g(&[
                "nft",
                "add",
                "rule",
                "inet",
                "guard",
                "input",
                "icmp",
                "type",
                "echo-request",
                "counter",
                "drop",
            ]);
        },
    );
    let s = summary(&r, "firewall.icmp_in");
    assert!(
        s.starts_with("nftables drops") && s.contains("inet guard input"),
        "{s}"
    );
    assert!(r["firewall.icmp_in"].1["remedy"][0]
        .as_str()
        .unwrap()
        .starts_with("nft insert rule inet guard input position"));
}

#[test]
fn firewall_drops_a_listening_port() {
    let t = Topology::new();
    assert_healthy(&t);
    // A TCP service on 0.0.0.0:8080 in the guest.
    let mut service = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.guest,
            env!("CARGO_BIN_EXE_fake-metadata"),
            "8080",
        ])
        .arg(t.dir.path().join("metadata.json"))
        .arg("0.0.0.0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(service.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _service = Kill(service);
    let connect = || {
        t.exec(
            &t.client,
            &[
                "timeout",
                "2",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{GUEST_IP}/8080"),
            ],
        )
        .status
        .success()
    };
    assert!(connect(), "the service answers before the fault");
    let before = t.diagnose(Some(CLIENT));
    assert_eq!(before["firewall.ports"].0, "ok", "{}", show(&before));
    assert!(summary(&before, "firewall.ports").contains("1 listening port"));

    t.g(&[
        "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP",
    ]);
    assert!(!connect(), "ground truth: TCP connect to 8080 fails");
    assert!(t.ping(GUEST_IP), "ping still works");
    let report = t.diagnose(Some(CLIENT));
    assert_eq!(report["firewall.ports"].0, "warn", "{}", show(&report));
    assert!(summary(&report, "firewall.ports").contains("tcp/8080"));
    assert_eq!(
        report["firewall.ports"].1["remedy"][0],
        "iptables -I INPUT 1 -p tcp --dport 8080 -j ACCEPT"
    );
    for (id, (status, _)) in &report {
        assert!(
            status != "fail",
            "unrelated check {id} failed:\n{}",
            show(&report)
        );
    }
}

#[test]
fn firewall_drop_by_ipset_membership() {
    let r = firewall_case(
        &[("firewall.icmp_in", "fail")],
        false,
        &[
            &["ipset", "create", "blocked", "hash:net"],
            &["ipset", "add", "blocked", "198.18.0.0/16"],
            &[
                "iptables",
                "-A",
                "INPUT",
                "-p",
                "icmp",
                "-m",
                "set",
                "--match-set",
                "blocked",
                "src",
                "-j",
                "DROP",
            ],
        ],
    );
    assert!(summary(&r, "firewall.icmp_in").contains("--match-set blocked src"));
}

/// `serve` reuses an unchanged ruleset between refreshes; a change in either backend must
/// still reach the served report (nf_tables generation id; legacy table signature).
#[test]
fn serve_sees_ruleset_changes_in_both_backends() {
    let t = Topology::new();
    assert_healthy(&t);
    let cfg = t.dir.path().join("serve.toml");
    let base = std::fs::read_to_string(t.dir.path().join("config.toml")).unwrap();
    std::fs::write(
        &cfg,
        format!("{base}[server]\nlisten = \"127.0.0.1:0\"\n[refresh]\ninterval_s = 1\n"),
    )
    .unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &t.guest, agent_bin(), "serve", "--config"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _daemon = Kill(child);
    // Keep reading the log (a closed pipe would break the daemon's logging); pass the port on.
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if let Some(p) = line.split("listening on http://127.0.0.1:").nth(1) {
                let _ = port_tx.send(p.trim().parse::<u16>().ok());
            }
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(20))
        .ok()
        .flatten()
        .expect("the daemon logs its port");
    let status = || {
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /v1/checks/firewall.icmp_in HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3 && cat <&3");
        let out = t.exec(&t.guest, &["bash", "-c", &script]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_string))
    };
    let wait_for = |want: &str, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if status().as_deref() == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "firewall.icmp_in never became {want} after {what} (last: {:?})",
            status()
        );
    };
    wait_for("ok", "start");
    t.g(&["iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP"]);
    wait_for("fail", "an iptables-nft rule was added");
    t.g(&["iptables", "-D", "INPUT", "1"]);
    wait_for("ok", "the iptables-nft rule was deleted");
    t.g(&["iptables-legacy", "-A", "INPUT", "-p", "icmp", "-j", "DROP"]);
    wait_for("fail", "an iptables-legacy rule was added");
    t.g(&["iptables-legacy", "-D", "INPUT", "1"]);
    wait_for("ok", "the iptables-legacy rule was deleted");
}

// ---- Packet drops inside the guest ----

#[test]
fn qdisc_drops_everything() {
    let r = prove(
        Fault {
            ping: GUEST_IP,
            ping_works: false,
            expect: &[("net.drops", "fail")],
            // Nothing leaves eth0, so ARP for the gateway fails too.
            consequences: &["neigh.gateway"],
        },
        |t| {
            t.g(&[
                "tc", "qdisc", "replace", "dev", "eth0", "root", "bfifo", "limit", "0",
            ])
        },
    );
    let s = summary(&r, "net.drops");
    assert!(s.contains("bfifo") && s.contains("every packet"), "{s}");
}

// ---- Live attribution: `ecs-diag watch` while the client pings ----

/// Runs `watch --json --client CLIENT` in the guest for 3 s while the client sends `pings`
/// echo requests; returns the verdict JSON and the exit code.
fn watch_while_pinging(t: &Topology, pings: u32) -> (Value, i32) {
    watch_while_pinging_at(t, pings, GUEST_IP, CLIENT)
}

/// The same for any target address of the guest and client source (IPv6 when it has a ':').
fn watch_while_pinging_at(t: &Topology, pings: u32, target: &str, client: &str) -> (Value, i32) {
    let config = t.dir.path().join("config.toml");
    let (out, received) = std::thread::scope(|scope| {
        let agent = scope.spawn(|| {
            t.exec(
                &t.guest,
                &[
                    agent_bin(),
                    "watch",
                    "--json",
                    "--seconds",
                    "3",
                    "--client",
                    client,
                    "--config",
                    config.to_str().unwrap(),
                ],
            )
        });
        // After the capture, the trace table and the first counters are in place.
        std::thread::sleep(Duration::from_millis(1200));
        let received = if pings > 0 {
            t.ping_count(target, pings, target.contains(':'))
        } else {
            0
        };
        (agent.join().unwrap(), received)
    });
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "watch output is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!("watch (ping received {received}/{pings}):\n{v:#}");
    // The trace table is gone afterwards.
    let tables = t.exec(&t.guest, &["nft", "list", "tables"]);
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("ecs_diag_watch"),
        "the trace table must be removed"
    );
    (v, out.status.code().unwrap_or(-1))
}

#[test]
fn watch_sees_requests_arriving_and_answered() {
    let t = Topology::new();
    assert_healthy(&t);
    let (v, code) = watch_while_pinging(&t, 5);
    assert_eq!(v["verdict"], "answered", "{v:#}");
    assert_eq!(code, 0);
    assert!(v["evidence"]["requests_on_wire"].as_u64().unwrap() >= 5);
    assert!(v["evidence"]["replies_on_wire"].as_u64().unwrap() >= 5);
    assert!(v["evidence"]["requests_reached_icmp"].as_u64().unwrap() >= 5);
    assert!(v["sources"][CLIENT]["requests"].as_u64().unwrap() >= 5);
    assert!(v["steps"].to_string().contains("mtr"));
    assert!(v["unavailable"].as_array().unwrap().is_empty(), "{v:#}");
}

#[test]
fn watch_names_the_firewall_rule_that_drops_requests() {
    let t = Topology::new();
    assert_healthy(&t);
    t.g(&[
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "icmp",
        "--icmp-type",
        "echo-request",
        "-j",
        "DROP",
    ]);
    assert!(!t.ping(GUEST_IP), "ground truth: the rule drops pings");
    let (v, code) = watch_while_pinging(&t, 5);
    assert_eq!(v["verdict"], "arriving_not_answered", "{v:#}");
    assert_eq!(code, 2);
    assert!(v["evidence"]["requests_on_wire"].as_u64().unwrap() >= 5);
    assert_eq!(v["evidence"]["requests_reached_icmp"], 0);
    let summary = v["summary"].as_str().unwrap();
    assert!(
        summary.contains("-A INPUT -p icmp -m icmp --icmp-type 8 -j DROP"),
        "the rule is named: {summary}"
    );
    assert!(
        summary.contains("never reached the ICMP layer"),
        "{summary}"
    );
    // Both kinds of evidence: the rule's counter moved, and the nftables trace saw the drop.
    let moved = &v["moved_rules"][0];
    assert_eq!(moved["drops"], true);
    assert!(moved["packets"].as_u64().unwrap() >= 5);
    let traced = &v["traced_drops"][0];
    assert_eq!(traced["chain"], "ip filter INPUT", "{v:#}");
    assert_eq!(traced["source"], CLIENT);
    assert_eq!(traced["packet"], "echo-request");
}

#[test]
fn watch_sees_requests_not_arriving() {
    let t = Topology::new();
    assert_healthy(&t);
    // A security group without an ICMP rule: the client's requests are dropped before the
    // guest (here on the client's side of the link).
    t.c(&[
        "iptables", "-A", "OUTPUT", "-p", "icmp", "-d", GUEST_IP, "-j", "DROP",
    ]);
    assert!(!t.ping(GUEST_IP), "ground truth: nothing reaches the guest");
    let (v, code) = watch_while_pinging(&t, 5);
    assert_eq!(v["verdict"], "not_arriving", "{v:#}");
    assert_eq!(code, 1);
    assert_eq!(v["evidence"]["requests_on_wire"], 0);
    assert_eq!(v["evidence"]["requests_reached_icmp"], 0);
    let steps = v["steps"].to_string();
    for outside in ["security group", "network ACL", "blackhole"] {
        assert!(steps.contains(outside), "{outside} in {steps}");
    }
}

#[test]
fn watch_follows_icmpv6_echo_to_the_ip6tables_rule_that_drops_it() {
    let t = Topology::new();
    assert_healthy(&t);
    let (v, code) = watch_while_pinging_at(&t, 4, "fd77::10", "fd77::1");
    assert_eq!(v["verdict"], "answered", "{v:#}");
    assert_eq!(code, 0);
    assert!(
        v["sources"]["fd77::1"]["requests"].as_u64().unwrap() >= 4,
        "{v:#}"
    );
    t.g(&[
        "ip6tables",
        "-A",
        "INPUT",
        "-p",
        "icmpv6",
        "--icmpv6-type",
        "echo-request",
        "-j",
        "DROP",
    ]);
    assert_eq!(t.ping_count("fd77::10", 2, true), 0, "ground truth");
    let (v, code) = watch_while_pinging_at(&t, 4, "fd77::10", "fd77::1");
    assert_eq!(v["verdict"], "arriving_not_answered", "{v:#}");
    assert_eq!(code, 2);
    assert_eq!(v["traced_drops"][0]["chain"], "ip6 filter INPUT", "{v:#}");
    assert_eq!(v["traced_drops"][0]["source"], "fd77::1");
    assert!(
        v["summary"].as_str().unwrap().contains("ip6tables"),
        "{v:#}"
    );
}
