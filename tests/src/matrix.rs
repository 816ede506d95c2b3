//! The fault matrix's harness (DESIGN.md): for each fault, a fresh `guest` namespace (eth0 with
//! the assigned address, a gateway, a loopback fake metadata service) and a `client` namespace
//! at the other end of a veth pair that is also the gateway. [`prove`] checks the healthy
//! baseline — a real `ping` works and every check is `ok` — then injects the fault inside the
//! namespaces, asserts the real `ping` outcome, and runs the agent inside `guest`: it must
//! report the expected verdict on the expected check id and `fail` on no unrelated check.
//! The cases are data ([`Fault`]) in `tests/tests/matrix/`, one file per check family.
//!
//! Traffic stays inside the namespaces; every namespace is removed on drop, even when a case
//! fails. Needs root (CI is root), iproute2 and iputils-ping.

// Test harness: a failed set-up step should stop the case loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::new_without_default
)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The agent's report: check id → (status, the whole finding).
pub type Report = BTreeMap<String, (String, Value)>;

/// A `check --json` report as id → (status, finding).
pub fn findings(report: &Value) -> Report {
    report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in the report: {report:#}"))
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                (c["status"].as_str().unwrap().to_string(), c.clone()),
            )
        })
        .collect()
}

pub const MAC0: &str = "00:16:3e:00:00:01";
pub const MAC1: &str = "00:16:3e:00:00:02";
pub const GUEST_IP: &str = "10.77.0.10";
/// The public IP the fake metadata publishes (a documentation address, never contacted).
pub const PUBLIC_IP: &str = "203.0.113.10";
pub const SECONDARY_IP: &str = "10.77.0.11";
pub const GATEWAY: &str = "10.77.0.1";
/// The "outside" client, on the client namespace's loopback: replies to it need the gateway.
pub const CLIENT: &str = "198.18.0.2";
/// The guest's IPv6 address (assigned by the fake metadata).
pub const GUEST_IP6: &str = "fd77::10";
/// The vSwitch IPv6 gateway (the client namespace).
pub const GATEWAY6: &str = "fd77::1";
/// The "outside" IPv6 client, on the client namespace's loopback: replies need the IPv6
/// default route.
pub const CLIENT6: &str = "2001:db8:18::2";
pub const METADATA_PORT: u16 = 18080;
/// The fake OpenAPI's port on the guest's loopback.
pub const OPENAPI_PORT: u16 = 18081;
/// The made-up RAM role and its keys, published by the fake metadata; the fake OpenAPI checks
/// every request's signature and token against them. Any of these in an output is a leak.
pub const ROLE: &str = "EcsDiagMatrixRole";
pub const ROLE_SECRET: &str = "matrix-made-up-secret-5f1d0c";
pub const ROLE_TOKEN: &str = "matrix-made-up-security-token-9a7e31";
/// The security group, network ACL and IPv4 gateway of the fake cloud.
pub const SG: &str = "sg-matrix";
pub const ACL: &str = "nacl-matrix";
pub const IPV4_GW: &str = "ipv4gw-matrix";
/// The Cloud Firewall inbound policy that accepts everything.
pub const CLOUDFW_ACCEPT: &str = "acl-matrix-accept-all";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The Python that has Alibaba Cloud's SDKs (`scripts/prerequisites` installs them and
/// `scripts/test` exports `ECS_DIAG_SDK_PYTHON`; the same default place otherwise).
pub fn sdk_python() -> String {
    if let Ok(p) = std::env::var("ECS_DIAG_SDK_PYTHON") {
        return p;
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
    let p = format!("{cache}/ecs-diag/sdk/bin/python3");
    assert!(
        std::path::Path::new(&p).exists(),
        "{p} is missing: run scripts/prerequisites (it installs Alibaba Cloud's SDKs, the cloud tests' oracle)"
    );
    p
}

/// A binary of this crate, next to the test executable's directory (`target/<profile>/`):
/// integration tests get their paths from cargo at compile time, a library resolves them.
pub fn crate_bin(name: &str) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/matrix-HASH → target/<profile>/NAME
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join(name).to_string_lossy().into_owned()
}

/// The agent binary under test: `ECS_DIAG_BIN` when set (`scripts/test` sets it to the static
/// build the packages ship, so the matrix proves the shipped binary), else this crate's build
/// of the same code.
pub fn agent_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("ECS_DIAG_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| crate_bin("ecs-diag-under-test"))
    })
}

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command that must succeed (its output in the failure message); its stdout.
pub fn must(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One guest/client pair of namespaces, with its fixture tree and fake metadata service.
pub struct Topology {
    pub guest: String,
    pub client: String,
    pub dir: tempfile::TempDir,
    metadata: Option<Child>,
    openapi: Option<Child>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for mut c in [self.metadata.take(), self.openapi.take()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.guest, &self.client] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

pub fn metadata_doc(secondary_eni: bool) -> Value {
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
    // IPv6 on the primary ENI, `ipv6s` unquoted as the real service publishes it.
    let v6 = |mac: &str| {
        let p = format!("network/interfaces/macs/{mac}/");
        vec![
            (format!("{p}ipv6s"), json!(format!("[{GUEST_IP6}]"))),
            (format!("{p}ipv6-gateway"), json!(GATEWAY6)),
            (format!("{p}vswitch-ipv6-cidr-block"), json!("fd77::/64")),
        ]
    };
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in [
        ("mac", MAC0),
        ("instance-id", "i-matrix"),
        ("region-id", "cn-matrix"),
        ("private-ipv4", GUEST_IP),
        // A documentation address: the agent only reports it (no check sends to it).
        ("public-ipv4", PUBLIC_IP),
        // The instance type's bandwidth, Kbit/s: 10 Gbit/s, which net.bandwidth judges
        // against (no limit in the config).
        ("instance/max-netbw-egress", "10000000"),
        ("vswitch-cidr-block", "10.77.0.0/24"),
        ("vpc-cidr-block", "10.0.0.0/8"),
        ("vpc-id", "vpc-matrix"),
        ("vswitch-id", "vsw-matrix"),
        // The attached RAM role and its (made-up) STS keys.
        ("ram/security-credentials/", ROLE),
    ] {
        m.insert(k.into(), json!(v));
    }
    m.insert(
        format!("ram/security-credentials/{ROLE}"),
        json!(json!({
            "Code": "Success",
            "AccessKeyId": "STS.matrix-made-up",
            "AccessKeySecret": ROLE_SECRET,
            "SecurityToken": ROLE_TOKEN,
            "Expiration": "2099-01-01T00:00:00Z",
            "LastUpdated": "2026-01-01T00:00:00Z",
        })
        .to_string()),
    );
    let mut macs = format!("{MAC0}/\n");
    m.extend(eni(
        MAC0,
        GUEST_IP,
        json!([GUEST_IP, SECONDARY_IP]),
        GATEWAY,
        "10.77.0.0/24",
        "eni-matrix0",
    ));
    m.extend(v6(MAC0));
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

/// What the fake cloud answers for a reachable instance, in the documented response shapes:
/// Running, public IP 203.0.113.10, security group sg-matrix accepting ICMP and SSH from
/// anywhere, network ACL nacl-matrix accepting everything both ways, the VPC's IPv4 gateway
/// carrying 0.0.0.0/0, no EIP, Anti-DDoS normal, Cloud Firewall protecting the public IP with
/// one accept-all inbound policy, no Security Center alert. Every body is checked against the
/// SDK's response model when served (and by the conformance test). Keys are actions (or `ACTION PARAM=VALUE`).
/// A listener started by [`Topology::listen_tcp`]: killed when dropped.
pub struct Listening(Child);

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn cloud_doc() -> Value {
    let rule = |id: &str, proto: &str, ports: &str, policy: &str, priority: u32| {
        json!({"SecurityGroupRuleId": id, "Direction": "ingress", "IpProtocol": proto, "PortRange": ports,
               "SourceCidrIp": "0.0.0.0/0", "Policy": policy, "Priority": priority.to_string()})
    };
    let entry = |id: &str, peer_key: &str| {
        json!({"NetworkAclEntryId": id, "Policy": "accept", "Protocol": "all", peer_key: "0.0.0.0/0",
               "Port": "-1/-1", "EntryType": "custom"})
    };
    json!({
        "DescribeInstanceAttribute": {"RequestId": "made-up", "InstanceId": "i-matrix", "Status": "Running",
            "OperationLocks": {"LockReason": []},
            "SecurityGroupIds": {"SecurityGroupId": [SG]},
            "PublicIpAddress": {"IpAddress": [PUBLIC_IP]},
            "EipAddress": {"IpAddress": "", "AllocationId": ""},
            "VpcAttributes": {"VpcId": "vpc-matrix", "VSwitchId": "vsw-matrix", "PrivateIpAddress": {"IpAddress": [GUEST_IP]}}},
        "DescribeNetworkInterfaces": {"NetworkInterfaceSets": {"NetworkInterfaceSet": [
            {"NetworkInterfaceId": "eni-matrix0", "MacAddress": MAC0, "Type": "Primary",
             "SecurityGroupIds": {"SecurityGroupId": [SG]},
             "PrivateIpSets": {"PrivateIpSet": [{"PrivateIpAddress": GUEST_IP, "Primary": true}, {"PrivateIpAddress": SECONDARY_IP, "Primary": false}]}}]}},
        "DescribeSecurityGroups": {"SecurityGroups": {"SecurityGroup": [{"SecurityGroupId": SG, "SecurityGroupType": "normal"}]}},
        "DescribeSecurityGroupAttribute": {"SecurityGroupId": SG, "Permissions": {"Permission": [
            rule("sgr-matrix-icmp", "ICMP", "-1/-1", "Accept", 1),
            rule("sgr-matrix-ssh", "TCP", "22/22", "Accept", 1)]}},
        "DescribeEipAddresses": {"EipAddresses": {"EipAddress": []}, "TotalCount": 0},
        "DescribeVSwitchAttributes": {"VSwitchId": "vsw-matrix", "VpcId": "vpc-matrix", "NetworkAclId": ACL,
            "RouteTable": {"RouteTableId": "vtb-matrix", "RouteTableType": "System"}},
        "ListIpv4Gateways": {"RequestId": "made-up", "TotalCount": "1", "Ipv4GatewayModels": [{"Ipv4GatewayId": IPV4_GW, "Enabled": true, "Status": "Created", "VpcId": "vpc-matrix"}]},
        "DescribeNetworkAclAttributes": {"NetworkAclAttribute": {"NetworkAclId": ACL, "Status": "Available",
            "IngressAclEntries": {"IngressAclEntry": [entry("nae-matrix-in", "SourceCidrIp")]},
            "EgressAclEntries": {"EgressAclEntry": [entry("nae-matrix-out", "DestinationCidrIp")]}}},
        "DescribeRouteEntryList": {"RouteEntrys": {"RouteEntry": [
            {"RouteEntryId": "rte-matrix-default", "DestinationCidrBlock": "0.0.0.0/0", "Status": "Available", "Type": "Custom",
             "NextHops": {"NextHop": [{"NextHopType": "Ipv4Gateway", "NextHopId": IPV4_GW}]}},
            {"RouteEntryId": "rte-matrix-local", "DestinationCidrBlock": "10.77.0.0/24", "Status": "Available", "Type": "System",
             "NextHops": {"NextHop": [{"NextHopType": "local", "NextHopId": ""}]}}]}},
        "DescribeInstanceIpAddress": {"Total": 1, "InstanceList": [{"InstanceId": "i-matrix", "InstanceType": "ecs",
            "IpAddressConfig": [{"InstanceIp": PUBLIC_IP, "IpVersion": "v4", "IpStatus": "normal"}]}]},
        "DescribeDdosEventList": {"RequestId": "made-up", "Total": 0, "DdosEventList": {"DdosEvent": []}},
        "DescribeAssetList": {"RequestId": "made-up", "TotalCount": 1, "Assets": [{"InternetAddress": PUBLIC_IP, "IntranetAddress": GUEST_IP,
            "BindInstanceId": "i-matrix", "ProtectStatus": "open", "IpVersion": 4, "ResourceType": "EcsPublicIP"}]},
        "DescribeControlPolicy": {"RequestId": "made-up", "TotalCount": "1", "PageNo": "1", "PageSize": "100", "Policys": [
            {"AclUuid": CLOUDFW_ACCEPT, "Order": 1, "AclAction": "accept", "Direction": "in", "Proto": "ANY", "SourceType": "net", "Source": "0.0.0.0/0",
             "DestinationType": "net", "Destination": "0.0.0.0/0", "DestPortType": "port", "DestPort": "0/0", "Release": "true", "Description": "allow all"}]},
        "DescribeSuspEvents": {"RequestId": "made-up", "Count": 0, "CurrentPage": 1, "PageSize": 20, "SuspEvents": []},
    })
}

impl Topology {
    pub fn new() -> Topology {
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
            openapi: None,
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
        // IPv6 link-local addresses usable at once (no duplicate address detection): neighbour
        // discovery needs them, and a healthy IPv6 ping must not race their DAD.
        for ns in [&t.guest, &t.client] {
            for kv in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ] {
                must(&["ip", "netns", "exec", ns, "sysctl", "-q", "-w", kv]);
            }
        }
        t.guest("ip link set lo up");
        t.client("ip link set lo up");
        t.g(&[
            "ip", "link", "add", "eth0", "address", MAC0, "type", "veth", "peer", "name", "gw0",
            "netns", &t.client,
        ]);
        t.guest("ip addr add 10.77.0.10/24 dev eth0");
        t.guest("ip addr add 10.77.0.11/24 dev eth0");
        t.guest("ip link set eth0 up");
        t.client("ip addr add 10.77.0.1/24 dev gw0");
        t.client("ip addr add 198.18.0.2/32 dev lo");
        t.client("ip link set gw0 up");
        t.guest("ip route add default via 10.77.0.1 dev eth0");
        // IPv6 too, so the IPv6 checks judge something (nodad: usable at once).
        t.guest("ip -6 addr add fd77::10/64 dev eth0 nodad");
        t.client("ip -6 addr add fd77::1/64 dev gw0 nodad");
        t.client("ip -6 addr add 2001:db8:18::2/128 dev lo nodad");
        t.guest("ip -6 route add default via fd77::1 dev eth0");

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
                "[metadata]\nmode = \"auto\"\nurl = \"http://127.0.0.1:{METADATA_PORT}\"\ntimeout_ms = 1000\n[cloud]\nmode = \"auto\"\n[cloud.endpoints]\necs = \"{api}\"\nvpc = \"{api}\"\nantiddos = \"{api}\"\ncloudfw = \"{api}\"\nsas = \"{api}\"\n[paths]\netc = \"{0}/etc\"\nsys = \"{0}/sys\"\n{MACHINE_LOAD_IGNORED}",
                root.display(),
                api = format!("http://127.0.0.1:{OPENAPI_PORT}"),
            ),
        )
        .unwrap();
        t.write_cloud(&cloud_doc());
        let mut t = t;
        t.start_metadata();
        t.start_openapi();
        t
    }

    /// The fake OpenAPI (`tests/cloud/fake_openapi.py`), on the guest's loopback: Alibaba
    /// Cloud's own SDK verifies every request (action, parameters, signature) and every answer
    /// it serves; it logs each request to `openapi.log`.
    pub fn start_openapi(&mut self) {
        let root = self.dir.path();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.guest, &sdk_python()])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/cloud/fake_openapi.py"
            ))
            .arg("serve")
            .arg(OPENAPI_PORT.to_string())
            .arg(root.join("cloud.json"))
            .args([ROLE_SECRET, ROLE_TOKEN])
            .arg(root.join("openapi.log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fake_openapi.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "fake OpenAPI did not start");
        self.openapi = Some(child);
    }

    /// The case's config with `fix`'s backups in the case's own state directory; its path.
    pub fn fix_config(&self) -> String {
        let base = std::fs::read_to_string(self.dir.path().join("config.toml")).unwrap();
        let state = self.dir.path().join("state");
        let text = base.replace(
            "[paths]\n",
            &format!("[paths]\nstate = \"{}\"\n", state.display()),
        );
        let path = self.dir.path().join("fix.toml");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// A TCP service on 0.0.0.0:`port` in the guest (the fake metadata server, which answers
    /// anything), listening once this returns, until the guard is dropped.
    pub fn listen_tcp(&self, port: u16) -> Listening {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.guest, &crate_bin("fake-metadata")])
            .arg(port.to_string())
            .arg(self.dir.path().join("metadata.json"))
            .arg("0.0.0.0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a listener");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .unwrap();
        Listening(child)
    }

    /// What the fake cloud answers from now on.
    pub fn write_cloud(&self, doc: &Value) {
        std::fs::write(self.dir.path().join("cloud.json"), doc.to_string()).unwrap();
    }

    /// Changes the fake cloud's answer to `action` with `edit`.
    pub fn edit_cloud(&self, action: &str, edit: impl FnOnce(&mut Value)) {
        let path = self.dir.path().join("cloud.json");
        let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut doc[action]);
        self.write_cloud(&doc);
    }

    /// The fake OpenAPI's request log: `ACTION signed=BOOL token=BOOL sdk=ok|WHY` per request.
    pub fn openapi_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("openapi.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn start_metadata(&mut self) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.guest, &crate_bin("fake-metadata")])
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

    pub fn write_metadata(&self, secondary_eni: bool) {
        std::fs::write(
            self.dir.path().join("metadata.json"),
            metadata_doc(secondary_eni).to_string(),
        )
        .unwrap();
    }

    /// Publishes `value` at metadata path `key` (relative to `/latest/meta-data/`), or
    /// withdraws the path (404) with None.
    pub fn set_metadata(&self, key: &str, value: Option<&str>) {
        let path = self.dir.path().join("metadata.json");
        let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let map = doc.as_object_mut().unwrap();
        match value {
            Some(v) => map.insert(key.to_string(), json!(v)),
            None => map.remove(key),
        };
        std::fs::write(&path, doc.to_string()).unwrap();
    }

    pub fn write_ifcfg(&self, text: &str) {
        let d = self.dir.path().join("etc/sysconfig/network-scripts");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ifcfg-eth0"), text).unwrap();
    }

    /// `ecs-diag snapshot` in the guest with this topology's config: its JSON.
    pub fn snapshot_json(&self) -> Vec<u8> {
        let config = self.dir.path().join("config.toml");
        let config = config.to_str().unwrap_or_default();
        self.exec(&self.guest, &[agent_bin(), "snapshot", "--config", config])
            .stdout
    }
    /// The native nftables tables of `ecs-diag snapshot` in the guest.
    pub fn native_nft(&self) -> ecs_diag::ruleset::nft::NftRuleset {
        let snapshot: ecs_diag::snapshot::Snapshot =
            serde_json::from_slice(&self.snapshot_json()).expect("a snapshot");
        let native = snapshot.nftables.ok().expect("nftables read");
        native.as_deref().cloned().expect("native tables")
    }
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full)
    }
    pub fn g(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.guest];
        full.extend_from_slice(args);
        must(&full);
    }
    pub fn c(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.client];
        full.extend_from_slice(args);
        must(&full);
    }
    /// Runs a command (words split on whitespace) inside the guest; it must succeed.
    pub fn guest(&self, cmd: &str) {
        let args: Vec<&str> = cmd.split_whitespace().collect();
        self.g(&args);
    }
    /// Runs a command (words split on whitespace) inside the client; it must succeed.
    pub fn client(&self, cmd: &str) {
        let args: Vec<&str> = cmd.split_whitespace().collect();
        self.c(&args);
    }
    /// Runs one of a fault's injection steps: `guest: CMD`, `client: CMD`, or
    /// `ifcfg: TEXT` (eth0's persisted configuration; `\n` separates lines).
    pub fn step(&self, step: &str) {
        match step.split_once(": ") {
            Some(("guest", cmd)) => self.guest(cmd),
            Some(("client", cmd)) => self.client(cmd),
            Some(("ifcfg", text)) => self.write_ifcfg(&text.replace("\\n", "\n")),
            _ => panic!("fault step {step:?} is not guest:/client:/ifcfg:"),
        }
    }
    pub fn sysctl_g(&self, kv: &str) {
        self.g(&["sysctl", "-q", "-w", kv]);
    }
    pub fn sysctl_c(&self, kv: &str) {
        self.c(&["sysctl", "-q", "-w", kv]);
    }

    /// A real ping from the outside client (CLIENT, or CLIENT6 for an IPv6 target) to
    /// `target`: did any reply come back?
    pub fn ping(&self, target: &str) -> bool {
        let (family, source) = if target.contains(':') {
            ("-6", CLIENT6)
        } else {
            ("-4", CLIENT)
        };
        self.exec(
            &self.client,
            &[
                "ping", family, "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", "-I", source, target,
            ],
        )
        .status
        .success()
    }

    /// `count` pings at 0.2 s intervals; how many replies came back.
    pub fn ping_count(&self, target: &str, count: u32, v6: bool) -> u32 {
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

    /// Runs `ecs-diag check --json` inside the guest, as the packaged unit runs the agent
    /// (`crate::unit`): an unprivileged user holding only ambient CAP_NET_ADMIN and
    /// CAP_NET_RAW, with no_new_privs, handed the root-only /proc files by the unit's
    /// ExecStartPre — so every verdict below is proven to need nothing more. Returns
    /// id → (status, whole finding).
    pub fn diagnose(&self, client: Option<&str>) -> Report {
        self.diagnose_with(client, &[])
    }

    pub fn diagnose_with(&self, client: Option<&str>, extra: &[&str]) -> Report {
        let config = self.dir.path().join("config.toml");
        let bin = self.dir.path().join("ecs-diag");
        let mut args = vec![
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
        let netns = ["ip", "netns", "exec", self.guest.as_str()];
        let store = crate::unit::hand_over(&netns, &bin);
        let out = store.command(&netns, &args).output().unwrap();
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
        // Every warn and fail names its cause (a registered id: the agent drops any other);
        // nothing else does.
        for c in report["checks"].as_array().unwrap() {
            let named = c["cause"].as_str().filter(|s| !s.is_empty());
            match c["status"].as_str() {
                Some("warn" | "fail") => {
                    assert!(named.is_some(), "{} names no cause: {c:#}", c["id"])
                }
                _ => assert!(c.get("cause").is_none(), "{} names a cause: {c:#}", c["id"]),
            }
        }
        findings(&report)
    }

    /// A native nftables table `inet guard` in the guest with an input chain (policy accept),
    /// to which a case adds its rules.
    pub fn add_nft_guard_input(&self) {
        self.guest("nft add table inet guard");
        self.g(&[
            "nft",
            "add",
            "chain",
            "inet",
            "guard",
            "input",
            "{ type filter hook input priority 0; policy accept; }",
        ]);
    }

    /// A second interface (eth1, 10.78.0.10/24, peer gw1 in the client) whose replies leave by
    /// eth0, the default route: an asymmetric path for traffic arriving on eth1.
    pub fn add_asymmetric_eth1(&self) {
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
        self.guest("ip addr add 10.78.0.10/24 dev eth1");
        self.guest("ip link set eth1 up");
        self.client("ip addr add 10.78.0.1/24 dev gw1");
        self.client("ip link set gw1 up");
    }

    /// Waits until the guest's neighbour entry for `ip` reaches `state`.
    pub fn wait_neighbour(&self, ip: &str, state: &str) -> bool {
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

pub fn show(report: &Report) -> String {
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
/// checks are proven by unit tests and `load_test.rs`. net.bandwidth judges the window against
/// the limit the fake metadata publishes.
pub const MACHINE_LOAD_IGNORED: &str = "[thresholds]\ncpu_busy_pct = 100\ncpu_saturated_pct = 100\ncpu_iowait_pct = 100\ncpu_steal_pct = 100\ncpu_steal_fail_pct = 100\nload_per_cpu = 1000\npressure_some_pct = 100\npressure_full_pct = 100\npressure_full_fail_pct = 100\nmemory_available_pct = 0\nmemory_available_fail_pct = 0\nswap_pages_per_s = 1e12\noom_kills = 1000000\ndisk_busy_pct = 100\ndstate_processes = 100000\ndstate_fail_processes = 100000\n";

/// The namespaces share this machine's CPUs and disks: a CPU of the test machine at 100%
/// (thresholds cannot go beyond 100%) is not a fault of the guest. The load checks may warn
/// in the healthy baseline; they never fail there (agent/tests/load.rs proves them).
pub fn machine_load_warning(id: &str, status: &str) -> bool {
    id.starts_with("load.") && status == "warn"
}

pub fn assert_healthy(t: &Topology) {
    assert!(
        t.ping(GUEST_IP),
        "healthy: ping to the primary IP must work"
    );
    assert!(
        t.ping(SECONDARY_IP),
        "healthy: ping to the secondary IP must work"
    );
    assert!(
        t.ping(GUEST_IP6),
        "healthy: ping to the IPv6 address from an off-link client must work"
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
                    // No domain is given in the baseline: nothing to resolve.
                    && !(*id == "dns.resolution" && st == "skipped")
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
pub struct Fault {
    /// The injection, as data: steps for [`Topology::step`], run in order.
    pub inject: &'static [&'static str],
    /// Address pinged after injection, and whether a reply must come back.
    pub ping: &'static str,
    pub ping_works: bool,
    /// (check id, exact status) the agent must report.
    pub expect: &'static [(&'static str, &'static str)],
    /// Other checks that may also fail as a direct consequence of this fault.
    pub consequences: &'static [&'static str],
}

/// Proves a fault whose injection is all data.
pub fn prove_case(fault: Fault) -> Report {
    prove(fault, |_| {})
}

/// Healthy first, then the fault's steps and `inject` (what data cannot say), the ground-truth
/// ping, and the agent's verdicts.
pub fn prove(fault: Fault, inject: impl FnOnce(&Topology)) -> Report {
    let t = Topology::new();
    assert_healthy(&t);
    for step in fault.inject {
        t.step(step);
    }
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

/// A firewall fault: these rule commands in the guest; a summary accessor.
pub fn firewall_case(
    expect: &'static [(&'static str, &'static str)],
    ping_works: bool,
    rules: &[&str],
) -> Report {
    prove(
        Fault {
            inject: &[],
            ping: GUEST_IP,
            ping_works,
            expect,
            consequences: &[],
        },
        |t| {
            for r in rules {
                t.guest(r);
            }
        },
    )
}

pub fn summary(r: &Report, id: &str) -> String {
    r[id].1["summary"].as_str().unwrap().to_string()
}

/// The agent's native nftables table equals what `nft -j list table` gives in the guest
/// (parsed as the agent parses nft's own output): every chain, hook, priority, policy, rule
/// handle and statement, and the named sets; counters no higher than nft's (read after).
pub fn assert_same_nft_table(t: &Topology, ours: &ecs_diag::ruleset::nft::NftTable) {
    let (family, name) = (ours.family.as_str(), ours.name.as_str());
    let out = t.exec(&t.guest, &["nft", "-j", "list", "table", family, name]);
    let oracle = ecs_diag::ruleset::nft::parse_json(&String::from_utf8_lossy(&out.stdout))
        .unwrap()
        .tables
        .remove(0);
    let names = |t: &ecs_diag::ruleset::nft::NftTable| {
        t.chains.iter().map(|c| c.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(ours), names(&oracle), "{family} {name}");
    for (a, b) in ours.chains.iter().zip(&oracle.chains) {
        assert_eq!(
            (&a.hook, a.prio, &a.policy),
            (&b.hook, b.prio, &b.policy),
            "{family} {name} {}",
            a.name
        );
        assert_eq!(a.rules.len(), b.rules.len(), "{family} {name} {}", a.name);
        for (ra, rb) in a.rules.iter().zip(&b.rules) {
            assert_eq!(ra.handle, rb.handle, "{family} {name} {}", a.name);
            let (mut ea, mut eb) = (ra.expr.clone(), rb.expr.clone());
            for (x, y) in ea.iter_mut().zip(eb.iter_mut()) {
                if let (Some(cx), Some(cy)) = (x.get_mut("counter"), y.get_mut("counter")) {
                    assert!(
                        cx["packets"].as_u64() <= cy["packets"].as_u64(),
                        "{cx} {cy}"
                    );
                    *cx = serde_json::Value::Null;
                    *cy = serde_json::Value::Null;
                }
            }
            assert_eq!(ea, eb, "{family} {name} {} handle {}", a.name, ra.handle);
        }
    }
    assert_eq!(ours.sets, oracle.sets, "{family} {name}");
}
