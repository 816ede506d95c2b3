//! The cloud side against Alibaba Cloud's own SDKs (`tests/cloud/fake_openapi.py`, on the
//! Python that `scripts/prerequisites` installs them into): every action the agent can call
//! exists in the SDK of its product and version; every answer the tests serve — the matrix's
//! cloud and the unit tests' — is one the SDK's response models accept; and the oracle itself
//! refuses what the agent once got wrong (so a pass means something). Loopback only; keys are
//! made up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use ecs_diag::sources::cloud::credentials::Credentials;
use ecs_diag::sources::cloud::openapi::{Budget, Endpoint, OpenApi};
use ecs_diag::sources::cloud::ACTIONS;
use ecs_diag_matrix::matrix::{cloud_doc, sdk_python};
use serde_json::{json, Value};

const FAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cloud/fake_openapi.py");

fn actions(extra: &[(&str, &str)]) -> Value {
    let mut a: Vec<Value> = ACTIONS.iter().map(|a| json!([a.version, a.name])).collect();
    a.extend(extra.iter().map(|(v, n)| json!([v, n])));
    Value::Array(a)
}

/// `fake_openapi.py conform`: its exit status and output.
fn conform(actions: &Value, bodies: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("actions.json"),
        dir.path().join("bodies.json"),
    );
    std::fs::write(&a, actions.to_string()).unwrap();
    std::fs::write(&b, bodies.to_string()).unwrap();
    let out = Command::new(sdk_python())
        .args([FAKE, "conform"])
        .arg(&a)
        .arg(&b)
        .output()
        .expect("run fake_openapi.py conform");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn every_action_and_every_served_answer_is_the_sdks() {
    let (ok, out) = conform(&actions(&[]), &cloud_doc());
    assert!(ok, "the matrix's cloud is not the SDK's:\n{out}");
    assert!(
        out.contains(&format!("{} actions checked, 0 not", ACTIONS.len())),
        "{out}"
    );
    let unit: Value =
        serde_json::from_str(include_str!("../../agent/src/sources/cloud/answers.json")).unwrap();
    let (ok, out) = conform(&actions(&[]), &unit);
    assert!(ok, "the unit tests' answers are not the SDK's:\n{out}");
}

/// Every field the agent's parsers read is one the SDK's response models have, for the actions
/// of that product (a field the model lacks is not in the real answer, so a parser reading it
/// would only ever see it missing). The only other capitalised words are values compared
/// against, listed here.
#[test]
fn every_field_the_agent_reads_is_in_the_sdks_models() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../agent/src/sources/cloud/");
    let file = |ram: &str| match ram {
        "ecs" => "ecs.rs",
        "vpc" => "vpc.rs",
        "yundun-ddos" => "antiddos.rs",
        "yundun-cloudfirewall" => "cloudfw.rs",
        _ => "sas.rs",
    };
    let mut by_file: std::collections::BTreeMap<(&str, &str), Vec<&str>> = Default::default();
    for a in ACTIONS {
        by_file
            .entry((a.version, file(a.ram)))
            .or_default()
            .push(a.name);
    }
    let sources: Vec<Value> = by_file
        .iter()
        .map(|((version, f), actions)| json!([version, format!("{src}{f}"), actions]))
        .collect();
    // NicType values, and Cloud Firewall's "any protocol".
    let spec = json!({"sources": sources, "values": ["Inner", "Outer", "ANY"]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = Command::new(sdk_python())
        .args([FAKE, "fields"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("5 sources checked, 0 fields"), "{text}");
}

/// The oracle can fail: the action, the answer shapes and the parameter the agent once used.
#[test]
fn the_oracle_refuses_what_the_agent_once_got_wrong() {
    let bodies = json!({
        "ListIpv4Gateways": {"Ipv4GatewayModels": {"Ipv4GatewayModel": [{"Ipv4GatewayId": "ipv4gw-x", "Enabled": true}]}},
        "DescribeControlPolicy": {"TotalCount": 1, "Policys": []},
        "DescribeDdosEventList": {"DdosEventList": {"DdosEvent": [{"Ip": "203.0.113.10", "DdosStatus": "hole_begin"}]}},
    });
    let (ok, out) = conform(&actions(&[("2016-04-28", "DescribeIpv4Gateways")]), &bodies);
    assert!(!ok, "{out}");
    for wrong in [
        "has no action DescribeIpv4Gateways",
        "ListIpv4Gateways: ListIpv4GatewaysResponseBody cannot parse it",
        "DescribeControlPolicy.total_count: the SDK declares str",
        "DdosEvent[0].Ip: the response model has no such field",
    ] {
        assert!(out.contains(wrong), "{wrong:?} not in:\n{out}");
    }
}

/// A running fake: a request with a parameter the SDK's request model lacks is refused, one
/// signed with another secret is refused, and a good one is answered — through the agent's own
/// client.
#[test]
fn the_served_fake_checks_parameters_and_signatures_with_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("cloud.json");
    let log = dir.path().join("openapi.log");
    std::fs::write(&doc, cloud_doc().to_string()).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(sdk_python())
        .args([FAKE, "serve", &port.to_string()])
        .arg(&doc)
        .args(["made-up-secret", "made-up-token"])
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    let endpoint = Endpoint::new(&format!("http://127.0.0.1:{port}"));
    let api = OpenApi::new();
    let call = |secret: &str, action: &str, version: &str, params: &[(&str, &str)]| {
        let creds = Credentials::new("STS.made-up", secret, Some("made-up-token"));
        api.call(
            &endpoint,
            &creds,
            action,
            version,
            params,
            &Budget::new(Duration::from_secs(10)),
        )
    };
    let good = call(
        "made-up-secret",
        "ListIpv4Gateways",
        "2016-04-28",
        &[("RegionId", "cn-made-up"), ("VpcId", "vpc-matrix")],
    );
    let wrong_param = call(
        "made-up-secret",
        "DescribeDdosEventList",
        "2017-05-18",
        &[
            ("DdosRegionId", "cn-made-up"),
            ("DdosType", "blackhole"),
            ("InstanceType", "ecs"),
            ("InstanceId", "i-matrix"),
        ],
    );
    let wrong_key = call(
        "another-made-up-secret",
        "ListIpv4Gateways",
        "2016-04-28",
        &[("RegionId", "cn-made-up"), ("VpcId", "vpc-matrix")],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(good.is_ok(), "{good:?}");
    let e = wrong_param.unwrap_err().to_string();
    assert!(e.contains("has no parameter ['DdosType']"), "{e}");
    let e = wrong_key.unwrap_err().to_string();
    assert!(e.contains("SignatureDoesNotMatch"), "{e}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("ListIpv4Gateways signed=true token=true sdk=ok"),
        "{logged}"
    );
}
