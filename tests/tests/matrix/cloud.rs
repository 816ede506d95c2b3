//! Faults outside the guest, judged by the cloud.* checks. The fake cloud has two halves: the
//! API (`tests/cloud/fake_openapi.py` on the guest's loopback, where Alibaba Cloud's own SDK
//! verifies every request's action, parameters and signature, the security token is checked
//! against the fake metadata's RAM role, and every answer is checked against the SDK's
//! response model) and the data plane — the client
//! namespace, which is the network between the Internet client and the instance, enforces the
//! same change with netfilter. Each case: healthy (every cloud.* check ok, a real ping works)
//! → the cloud changes → the real ping fails → the agent names the cloud-side cause.

use ecs_diag_matrix::matrix::*;
use serde_json::{json, Value};

/// The data plane: what the cloud drops on the way in (echo requests to the instance) and on
/// the way out (its echo replies), or everything addressed to it.
const DROP_REQUESTS: &str =
    "iptables -A OUTPUT -d 10.77.0.10 -p icmp --icmp-type echo-request -j DROP";
const DROP_REPLIES: &str = "iptables -A INPUT -s 10.77.0.10 -p icmp --icmp-type echo-reply -j DROP";
const DROP_ALL: &str = "iptables -A OUTPUT -d 10.77.0.10 -j DROP";

fn cloud_case(
    expect: &'static [(&'static str, &'static str)],
    api: impl FnOnce(&Topology),
    data_plane: &[&str],
) -> (Report, Vec<String>) {
    let mut log = Vec::new();
    let report = prove(
        Fault {
            inject: &[],
            ping: GUEST_IP,
            ping_works: false,
            expect,
            consequences: &[],
        },
        |t| {
            api(t);
            for rule in data_plane {
                t.client(rule);
            }
            // The healthy baseline's requests (the faulted run's follow the same path).
            log = t.openapi_log();
        },
    );
    (report, log)
}

/// Every request the agent made was signed with the role's secret, carried its token, and was
/// one the SDK would send (action, version, parameters), answered with a body its model takes.
fn all_signed(log: &[String]) {
    assert!(!log.is_empty(), "the agent asked the fake cloud nothing");
    assert!(
        log.iter()
            .all(|l| l.ends_with("signed=true token=true sdk=ok")),
        "{log:?}"
    );
}

fn sg_rules(t: &Topology, rules: Value) {
    t.edit_cloud("DescribeSecurityGroupAttribute", |v| {
        v["Permissions"]["Permission"] = rules;
    });
}

#[test]
fn security_group_without_icmp_rule_denies_by_default() {
    let (r, log) = cloud_case(
        &[("cloud.security_group", "fail")],
        |t| {
            sg_rules(
                t,
                json!([{"SecurityGroupRuleId": "sgr-matrix-ssh", "Direction": "ingress", "IpProtocol": "TCP",
                         "PortRange": "22/22", "SourceCidrIp": "0.0.0.0/0", "Policy": "Accept", "Priority": "1"}]),
            )
        },
        &[DROP_REQUESTS],
    );
    all_signed(&log);
    let s = summary(&r, "cloud.security_group");
    assert!(
        s.contains("sg-matrix")
            && s.contains("no rule matched: denied by the normal groups' default"),
        "{s}"
    );
    let remedy = r["cloud.security_group"].1["remedy"].to_string();
    assert!(
        remedy.contains("AuthorizeSecurityGroup") && remedy.contains("198.18.0.2/32"),
        "{remedy}"
    );
}

#[test]
fn security_group_drop_rule_beats_the_accept() {
    let (r, _) = cloud_case(
        &[("cloud.security_group", "fail")],
        |t| {
            t.edit_cloud("DescribeSecurityGroupAttribute", |v| {
                v["Permissions"]["Permission"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"SecurityGroupRuleId": "sgr-matrix-block", "Direction": "ingress", "IpProtocol": "ALL",
                                 "PortRange": "-1/-1", "SourceCidrIp": "198.18.0.0/16", "Policy": "Drop", "Priority": "1"}));
            })
        },
        &[DROP_REQUESTS],
    );
    let s = summary(&r, "cloud.security_group");
    assert!(
        s.contains(
            "sg-matrix rule sgr-matrix-block: priority 1, Drop ALL -1/-1 from 198.18.0.0/16"
        ),
        "{s}"
    );
}

#[test]
fn network_acl_drops_the_reply_on_the_way_out() {
    let (r, _) = cloud_case(
        &[("cloud.network_acl", "fail")],
        |t| {
            t.edit_cloud("DescribeNetworkAclAttributes", |v| {
                v["NetworkAclAttribute"]["EgressAclEntries"]["EgressAclEntry"] = json!([
                    {"NetworkAclEntryId": "nae-matrix-noicmp", "NetworkAclEntryName": "no-icmp-out", "Policy": "drop",
                     "Protocol": "icmp", "DestinationCidrIp": "0.0.0.0/0", "Port": "-1/-1", "EntryType": "custom"},
                    {"NetworkAclEntryId": "nae-matrix-out", "Policy": "accept", "Protocol": "all",
                     "DestinationCidrIp": "0.0.0.0/0", "Port": "-1/-1", "EntryType": "custom"}]);
            })
        },
        &[DROP_REPLIES],
    );
    let s = summary(&r, "cloud.network_acl");
    assert!(
        s.contains("echo reply")
            && s.contains("nacl-matrix outbound entry nae-matrix-noicmp (no-icmp-out)"),
        "{s}"
    );
}

#[test]
fn route_table_without_the_ipv4_gateway() {
    let (r, _) = cloud_case(
        &[("cloud.route", "fail")],
        |t| {
            t.edit_cloud("DescribeRouteEntryList", |v| {
                v["RouteEntrys"]["RouteEntry"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|e| e["DestinationCidrBlock"] != "0.0.0.0/0");
            })
        },
        &[DROP_ALL],
    );
    let s = summary(&r, "cloud.route");
    assert!(
        s.contains("route table vtb-matrix") && s.contains("0.0.0.0/0 → ipv4gw-matrix"),
        "{s}"
    );
    let remedy = r["cloud.route"].1["remedy"].to_string();
    assert!(
        remedy.contains("CreateRouteEntry") && remedy.contains("--NextHopId ipv4gw-matrix"),
        "{remedy}"
    );
}

/// The default route points at another gateway than the VPC's enabled IPv4 gateway (the
/// centralized-control mistake): public replies leave by the wrong way.
#[test]
fn default_route_to_another_gateway_than_the_ipv4_gateway() {
    let (r, log) = cloud_case(
        &[("cloud.route", "fail")],
        |t| {
            t.edit_cloud("DescribeRouteEntryList", |v| {
                for e in v["RouteEntrys"]["RouteEntry"].as_array_mut().unwrap() {
                    if e["DestinationCidrBlock"] == "0.0.0.0/0" {
                        e["NextHops"]["NextHop"] =
                            json!([{"NextHopType": "NatGateway", "NextHopId": "ngw-matrix"}]);
                    }
                }
            })
        },
        &[DROP_ALL],
    );
    all_signed(&log);
    let s = summary(&r, "cloud.route");
    assert!(
        s.contains("NatGateway ngw-matrix, not to IPv4 gateway ipv4gw-matrix"),
        "{s}"
    );
}

/// Cloud Firewall protects the public IP and an inbound policy ahead of the accept-all one
/// drops ICMP from the client.
#[test]
fn cloud_firewall_policy_drops_the_echo_from_the_client() {
    let (r, log) = cloud_case(
        &[("cloud.firewall", "fail")],
        |t| {
            t.edit_cloud("DescribeControlPolicy", |v| {
                let policies = v["Policys"].as_array_mut().unwrap();
                policies[0]["Order"] = json!(2);
                policies.insert(0, json!({"AclUuid": "acl-matrix-no-ping", "Order": 1, "AclAction": "drop", "Direction": "in",
                    "Proto": "ICMP", "SourceType": "net", "Source": "198.18.0.0/16", "DestinationType": "net",
                    "Destination": format!("{PUBLIC_IP}/32"), "DestPortType": "port", "DestPort": "0/0", "Release": "true",
                    "Description": "no ping from the lab"}));
                v["TotalCount"] = json!("2");
            })
        },
        &[DROP_REQUESTS],
    );
    all_signed(&log);
    let s = summary(&r, "cloud.firewall");
    assert!(
        s.contains("policy acl-matrix-no-ping (order 1, no ping from the lab): drop ICMP from 198.18.0.0/16"),
        "{s}"
    );
}

/// Security Center has an urgent alert for this instance, and the platform has cut its
/// traffic (the penalty for an instance that attacks others).
#[test]
fn security_center_urgent_alert() {
    let (r, log) = cloud_case(
        &[("cloud.security_alerts", "fail")],
        |t| {
            t.edit_cloud("DescribeSuspEvents", |v| {
                v["Count"] = json!(1);
                v["SuspEvents"] = json!([{"Id": 4242, "AlarmEventNameDisplay": "Outbound DDoS attack", "AlarmEventName": "ddos_out",
                    "Level": "serious", "LastTime": "2026-12-06 03:04:05", "InstanceId": "i-matrix", "InternetIp": PUBLIC_IP,
                    "EventStatus": 1}]);
            })
        },
        &[DROP_ALL],
    );
    all_signed(&log);
    let s = summary(&r, "cloud.security_alerts");
    assert!(
        s.contains("Outbound DDoS attack (last 2026-12-06 03:04:05)"),
        "{s}"
    );
}

#[test]
fn public_ip_in_blackhole_filtering() {
    let (r, _) = cloud_case(
        &[("cloud.blackhole", "fail")],
        |t| {
            t.edit_cloud("DescribeInstanceIpAddress", |v| {
                v["InstanceList"][0]["IpAddressConfig"][0]["IpStatus"] = json!("blackholed");
            });
            t.edit_cloud("DescribeDdosEventList", |v| {
                *v = json!({"Total": 1, "DdosEventList": {"DdosEvent": [{"DdosType": "blackhole", "DdosStatus": "hole_begin",
                             "StartTime": 1798761600, "EndTime": 1798765200, "UnBlackholeTime": 1798765200}]}});
            });
        },
        &[DROP_ALL],
    );
    let s = summary(&r, "cloud.blackhole");
    assert!(
        s.contains("203.0.113.10 is in Anti-DDoS blackhole filtering")
            && s.contains("until 2027-01-01T01:00:00"),
        "{s}"
    );
}

#[test]
fn instance_locked_for_overdue_payment() {
    let (r, _) = cloud_case(
        &[("cloud.instance", "fail")],
        |t| {
            t.edit_cloud("DescribeInstanceAttribute", |v| {
                v["OperationLocks"]["LockReason"] = json!([{"LockReason": "financial"}]);
            })
        },
        &[DROP_ALL],
    );
    assert!(summary(&r, "cloud.instance").contains("financial (overdue payment)"));
}

#[test]
fn no_public_ip_bound() {
    let (r, _) = cloud_case(
        &[("cloud.public_ip", "fail")],
        |t| {
            t.edit_cloud("DescribeInstanceAttribute", |v| {
                v["PublicIpAddress"]["IpAddress"] = json!([]);
            })
        },
        &[DROP_ALL],
    );
    assert!(summary(&r, "cloud.public_ip").contains("no public IP and no EIP"));
}

/// The cloud answers, but the RAM role may not call one action, or is not attached, or the
/// keys are wrong: unknown naming the action with the policy to grant; skipped with how to
/// attach a role; unknown with the API's refusal — and no ping is needed to tell.
#[test]
fn denied_missing_and_wrong_keys() {
    let t = Topology::new();
    t.edit_cloud("DescribeNetworkAclAttributes", |v| {
        *v = json!({"status": 403, "body": {"Code": "Forbidden.RAM", "Message": "User not authorized to operate on the specified resource."}});
    });
    let r = t.diagnose(Some(CLIENT));
    let (st, f) = &r["cloud.network_acl"];
    assert_eq!(st, "unknown", "{}", show(&r));
    assert!(f["remedy"]
        .to_string()
        .contains("vpc:DescribeNetworkAclAttributes"));
    assert_eq!(r["cloud.security_group"].0, "ok");
    // No RAM role attached.
    t.set_metadata("ram/security-credentials/", None);
    let r = t.diagnose(Some(CLIENT));
    for id in ["cloud.instance", "cloud.security_group", "cloud.blackhole"] {
        let (st, f) = &r[id];
        assert_eq!(st, "skipped", "{id}: {}", show(&r));
        assert!(f["remedy"].to_string().contains("AttachInstanceRamRole"));
    }
    // A role whose keys the cloud does not accept (the fake knows another secret): every
    // request is refused, so a wrong signature cannot pass unnoticed.
    t.set_metadata("ram/security-credentials/", Some(ROLE));
    let doc = json!({"Code": "Success", "AccessKeyId": "STS.matrix-made-up", "AccessKeySecret": "another-made-up-secret",
                     "SecurityToken": ROLE_TOKEN, "Expiration": "2099-01-01T00:00:00Z"});
    t.set_metadata(
        &format!("ram/security-credentials/{ROLE}"),
        Some(&doc.to_string()),
    );
    let before = t.openapi_log().len();
    let r = t.diagnose(Some(CLIENT));
    let (st, f) = &r["cloud.instance"];
    assert_eq!(st, "unknown", "{}", show(&r));
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("SignatureDoesNotMatch"),
        "{f}"
    );
    let log = t.openapi_log();
    assert!(
        log[before..].iter().all(|l| l.contains("signed=false")),
        "{log:?}"
    );
}

/// `watch` names the cloud-side cause of requests that never arrive, instead of the inference.
#[test]
fn watch_names_the_security_group_that_stops_requests() {
    let t = Topology::new();
    assert_healthy(&t);
    sg_rules(&t, json!([]));
    t.client(DROP_REQUESTS);
    assert!(!t.ping(GUEST_IP), "ground truth: nothing reaches the guest");
    let (v, _) = crate::watch::watch_while_pinging(&t, 5);
    assert_eq!(v["verdict"], "not_arriving", "{v:#}");
    let s = v["summary"].as_str().unwrap();
    assert!(
        s.contains("the cloud side stops them: cloud.security_group")
            && s.contains("no rule matched"),
        "{s}"
    );
    assert_eq!(v["cloud_blocks"].as_array().unwrap().len(), 1, "{v:#}");
}

/// `serve` reuses the cloud facts for `cloud.cache_s` (120 s by default) across its 1 s
/// refreshes and reads them afresh on `POST /v1/diagnose`; no output of any command — reports,
/// metrics, history, snapshot, logs, watch — carries the RAM role's secret or token.
#[test]
fn serve_caches_cloud_facts_and_no_output_holds_a_secret() {
    use ecs_diag_matrix::served::Served;
    let t = Topology::new();
    let served = Served::start(&t, "");
    served.wait_for("cloud.security_group", "ok", "start");
    let asked = || t.openapi_log().len();
    let first = asked();
    assert!(first >= 10, "the first refresh read the cloud: {first}");
    // Three more refreshes: the cached facts are used.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    assert_eq!(
        asked(),
        first,
        "refreshes within cache_s ask the cloud nothing"
    );
    // A diagnosis on demand reads the cloud side afresh and sees the change.
    sg_rules(&t, json!([]));
    let report = served.body("POST", "/v1/diagnose").unwrap();
    assert!(
        asked() >= first + 10,
        "POST /v1/diagnose asked the cloud again"
    );
    let v: Value = serde_json::from_str(&report).unwrap();
    let sg = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cloud.security_group")
        .unwrap();
    assert_eq!(sg["status"], "fail", "{sg:#}");

    let mut outputs = vec![report];
    for path in [
        "/v1/report",
        "/metrics",
        "/v1/history",
        "/v1/checks/cloud.instance",
    ] {
        outputs.push(served.body("GET", path).unwrap_or_default());
    }
    outputs.push(served.log());
    let config = t.dir.path().join("config.toml");
    let config = config.to_str().unwrap();
    for args in [
        vec!["check", "--json", "--config", config],
        vec!["check", "--config", config],
        vec!["snapshot", "--config", config],
        vec!["watch", "--json", "--seconds", "1", "--config", config],
        vec!["explain", "cloud.security_group"],
    ] {
        let mut full = vec![agent_bin()];
        full.extend(args);
        let out = t.exec(&t.guest, &full);
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let all = outputs.join("\n");
    assert!(
        all.contains("cloud.security_group"),
        "the outputs were read"
    );
    for secret in [ROLE_SECRET, ROLE_TOKEN] {
        assert!(!all.contains(secret), "an output holds {secret:?}");
    }
}

/// The cloud facts are part of the snapshot (without secrets): `check --from` judges them again
/// with the cloud out of reach.
#[test]
fn a_snapshot_replays_the_cloud_facts() {
    let t = Topology::new();
    sg_rules(&t, json!([]));
    let json = t.snapshot_json();
    let saved = t.dir.path().join("snapshot.json");
    std::fs::write(&saved, &json).unwrap();
    let text = String::from_utf8_lossy(&json);
    assert!(
        text.contains("sgr-matrix") || text.contains("sg-matrix"),
        "{text}"
    );
    // Every later call is refused: the replay must not ask.
    t.write_cloud(&json!({}));
    let before = t.openapi_log().len();
    let out = t.exec(
        &t.guest,
        &[
            agent_bin(),
            "check",
            "--json",
            "--from",
            saved.to_str().unwrap(),
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sg = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cloud.security_group")
        .unwrap();
    assert_eq!(sg["status"], "fail", "{sg:#}");
    assert_eq!(
        t.openapi_log().len(),
        before,
        "a replay asks the cloud nothing"
    );
}

/// Issue 30: a healthy instance with the console's default security group (all outbound
/// allowed, so TCP 25 too), the cloud side on and no mail server reads healthy — exit 0, no
/// warning (the platform's TCP 25 block is evidence); a mail server listening on 0.0.0.0:25
/// makes the same fact a warning that names it.
#[test]
fn default_security_group_reads_healthy_until_a_mail_server_listens() {
    let t = Topology::new();
    t.edit_cloud("DescribeSecurityGroupAttribute", |v| {
        v["Permissions"]["Permission"].as_array_mut().unwrap().push(json!({
            "SecurityGroupRuleId": "sgr-matrix-out-all", "Direction": "egress", "IpProtocol": "ALL",
            "PortRange": "-1/-1", "DestCidrIp": "0.0.0.0/0", "Policy": "Accept", "Priority": "100"}));
    });
    assert!(t.ping(GUEST_IP), "ground truth: the instance answers");
    // diagnose() holds the exit code to the worst status: all ok or skipped is exit 0.
    let r = t.diagnose(Some(CLIENT));
    let noisy: Vec<_> = r
        .iter()
        .filter(|(_, (st, _))| st != "ok" && st != "skipped")
        .map(|(id, (st, f))| format!("{st} {id}: {}", f["summary"]))
        .collect();
    assert!(noisy.is_empty(), "a healthy instance: {noisy:#?}");
    let evidence = r["cloud.security_group"].1["evidence"]["outbound_tcp_25"].to_string();
    assert!(evidence.contains("blocked by the platform"), "{evidence}");
    log_signed(&t);

    // An MTA-shaped listener: TCP 0.0.0.0:25 in the guest.
    let _mta = t.listen_tcp(25);
    let r = t.diagnose(Some(CLIENT));
    let (st, f) = &r["cloud.security_group"];
    assert_eq!(st, "warn", "{}", show(&r));
    let s = f["summary"].as_str().unwrap();
    assert!(
        s.contains("a mail server listens on tcp 0.0.0.0:25")
            && s.contains("sgr-matrix-out-all")
            && s.contains("port 465"),
        "{s}"
    );
}

fn log_signed(t: &Topology) {
    all_signed(&t.openapi_log());
}

/// Issue 30: a mail sender in the guest whose connections to port 25 get no answer (the
/// platform's block, enforced in the client namespace) makes the fact a warning naming the
/// connection; without one, the same default group is ok.
#[test]
fn a_sender_stuck_on_port_25_is_named() {
    let t = Topology::new();
    t.edit_cloud("DescribeSecurityGroupAttribute", |v| {
        v["Permissions"]["Permission"].as_array_mut().unwrap().push(json!({
            "SecurityGroupRuleId": "sgr-matrix-out-all", "Direction": "egress", "IpProtocol": "ALL",
            "PortRange": "-1/-1", "DestCidrIp": "0.0.0.0/0", "Policy": "Accept", "Priority": "100"}));
    });
    // The platform's block of outbound TCP 25, on the way out of the instance.
    t.client("iptables -A INPUT -p tcp --dport 25 -j DROP");
    assert_eq!(t.diagnose(Some(CLIENT))["cloud.security_group"].0, "ok");
    // A sender trying (bash's /dev/tcp; `ip netns exec` execs bash, so killing it ends the
    // attempt): its SYN goes unanswered.
    let mut sender = std::process::Command::new("ip")
        .args(["netns", "exec", &t.guest, "bash", "-c"])
        .arg(format!("exec 3<>/dev/tcp/{CLIENT}/25"))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let r = t.diagnose(Some(CLIENT));
    let _ = sender.kill();
    let _ = sender.wait();
    let (st, f) = &r["cloud.security_group"];
    assert_eq!(st, "warn", "{}", show(&r));
    let s = f["summary"].as_str().unwrap();
    assert!(
        s.contains("outbound connections to port 25 get no answer (10.77.0.10:")
            && s.contains(&format!("→ {CLIENT}:25 (SYN_SENT))")),
        "{s}"
    );
}
