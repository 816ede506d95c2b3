//! Anti-DDoS Origin Basic (`antiddos-public`) answers: whether the instance's public IP is in
//! blackhole filtering, and when the blackhole ends, in the shapes of the official SDK's
//! response models. The status words differ between actions (`blackholed`, `mitigating`,
//! `normal` for an IP; `normal`/`abnormal` for an instance; `hole_begin`, `defense_begin` in
//! events), so all of them are read; an unknown word is kept as it is, never guessed.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::text;
use crate::snapshot::{Blackhole, DdosState};

pub const VERSION: &str = "2017-05-18";

/// Regions whose Anti-DDoS basic API has its own endpoint (the SDKs' endpoint table); the
/// others answer at the central one.
const REGIONAL: &[&str] = &[
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-southeast-6",
    "cn-chengdu",
    "cn-guangzhou",
    "cn-heyuan",
    "cn-huhehaote",
    "cn-wulanchabu",
    "cn-zhangjiakou",
    "eu-central-1",
    "eu-west-1",
    "me-east-1",
    "rus-west-1",
];

pub fn default_endpoint(region: &str) -> String {
    if REGIONAL.contains(&region) {
        format!("https://antiddos-openapi.{region}.aliyuncs.com")
    } else {
        "https://antiddos.aliyuncs.com".to_string()
    }
}

fn state_of(word: &str) -> DdosState {
    match word.to_ascii_lowercase().as_str() {
        "normal" | "hole_end" | "defense_end" => DdosState::Normal,
        "blackhole" | "blackholed" | "hole_begin" => DdosState::Blackholed,
        // `abnormal` is the instance-level word for "under DDoS attack" (the SDK's
        // InstanceStatus); the IP-level word says whether it is scrubbed or blackholed.
        "defense" | "mitigating" | "defense_begin" | "abnormal" => DdosState::Scrubbing,
        _ => DdosState::Other(word.to_string()),
    }
}

/// DescribeInstanceIpAddress: the status of `ip` (None: the answer does not list it, e.g. an
/// instance without a public IP). The shape is the SDK's response model's: `InstanceList[]`,
/// each with `IpAddressConfig[]` (`InstanceIp`, `IpStatus`) and the instance's
/// `InstanceStatus`.
pub fn parse_ip_status(v: &Value, ip: Ipv4Addr) -> Result<Option<Blackhole>, String> {
    let instances = v
        .get("InstanceList")
        .and_then(Value::as_array)
        .ok_or("DescribeInstanceIpAddress: the answer has no InstanceList list")?;
    let wanted = ip.to_string();
    for instance in instances {
        let configs = instance
            .get("IpAddressConfig")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for c in configs {
            if text(c, "InstanceIp") != Some(wanted.as_str()) {
                continue;
            }
            let word = text(c, "IpStatus")
                .or_else(|| text(instance, "InstanceStatus"))
                .ok_or_else(|| format!("DescribeInstanceIpAddress: {wanted} has no IpStatus"))?;
            return Ok(Some(Blackhole {
                ip,
                status: state_of(word),
                ends_at: None,
            }));
        }
    }
    Ok(None)
}

/// DescribeDdosEventList (asked for the public IP with `InternetIp`): when the current
/// blackhole ends, as Unix seconds (`UnBlackholeTime`, else the event's `EndTime`), if the
/// answer says. The events carry no IP of their own (the request filtered them); a blackhole
/// event is one whose `DdosType` or `DdosStatus` says so.
pub fn parse_blackhole_end(v: &Value) -> Option<u64> {
    v.get("DdosEventList")
        .and_then(|l| l.get("DdosEvent"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|e| {
            [text(e, "DdosType"), text(e, "DdosStatus")]
                .into_iter()
                .flatten()
                .any(|w| {
                    w.eq_ignore_ascii_case("blackhole") || state_of(w) == DdosState::Blackholed
                })
        })
        .filter_map(|e| {
            ["UnBlackholeTime", "EndTime"]
                .iter()
                .find_map(|k| match e.get(*k) {
                    Some(Value::Number(n)) => n.as_u64(),
                    Some(Value::String(s)) => s.trim().parse().ok(),
                    _ => None,
                })
        })
        .filter(|t| *t > 0)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    #[test]
    fn ip_status_in_the_sdks_shape() {
        let nested: Value = serde_json::from_str(r#"{"Total": 1, "InstanceList": [{"InstanceId": "i-made-up", "InstanceType": "ecs", "InstanceStatus": "normal",
            "IpAddressConfig": [{"InstanceIp": "198.51.100.1", "IpStatus": "normal"}, {"InstanceIp": "203.0.113.10", "IpStatus": "blackholed"}]}]}"#).unwrap();
        let b = parse_ip_status(&nested, IP).unwrap().unwrap();
        assert_eq!(b.status, DdosState::Blackholed);
        let scrubbing: Value = serde_json::from_str(r#"{"InstanceList": [{"IpAddressConfig": [{"InstanceIp": "203.0.113.10", "IpStatus": "mitigating"}]}]}"#).unwrap();
        assert_eq!(
            parse_ip_status(&scrubbing, IP).unwrap().unwrap().status,
            DdosState::Scrubbing
        );
        let other: Value = serde_json::from_str(
            r#"{"InstanceList": [{"IpAddressConfig": [{"InstanceIp": "203.0.113.10", "IpStatus": "Frozen"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            parse_ip_status(&other, IP).unwrap().unwrap().status,
            DdosState::Other("Frozen".into())
        );
        let absent: Value = serde_json::from_str(r#"{"InstanceList": []}"#).unwrap();
        assert_eq!(parse_ip_status(&absent, IP).unwrap(), None);
        assert!(parse_ip_status(&serde_json::json!({}), IP).is_err());
        // A wrapped list is not the API's shape.
        let wrapped: Value = serde_json::from_str(r#"{"InstanceList": {"Instance": []}}"#).unwrap();
        assert!(parse_ip_status(&wrapped, IP).is_err());
        let no_status: Value = serde_json::from_str(
            r#"{"InstanceList": [{"IpAddressConfig": [{"InstanceIp": "203.0.113.10"}]}]}"#,
        )
        .unwrap();
        assert!(parse_ip_status(&no_status, IP)
            .unwrap_err()
            .contains("no IpStatus"));
    }

    #[test]
    fn blackhole_end_from_the_event_list() {
        let v: Value = serde_json::from_str(r#"{"Total": 2, "DdosEventList": {"DdosEvent": [
            {"DdosType": "blackhole", "DdosStatus": "hole_begin", "StartTime": 1700000000, "UnBlackholeTime": 1700009000},
            {"DdosType": "defense", "DdosStatus": "defense_end", "EndTime": 1900000000}]}}"#).unwrap();
        assert_eq!(parse_blackhole_end(&v), Some(1_700_009_000));
        let no_blackhole: Value = serde_json::from_str(
            r#"{"DdosEventList": {"DdosEvent": [{"DdosType": "defense", "EndTime": 1700001234}]}}"#,
        )
        .unwrap();
        assert_eq!(parse_blackhole_end(&no_blackhole), None);
        assert_eq!(parse_blackhole_end(&serde_json::json!({})), None);
    }

    #[test]
    fn abnormal_is_under_attack() {
        let v: Value = serde_json::from_str(
            r#"{"InstanceList": [{"InstanceId": "i-made-up", "InstanceStatus": "abnormal",
            "IpAddressConfig": [{"InstanceIp": "203.0.113.10"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            parse_ip_status(&v, IP).unwrap().unwrap().status,
            DdosState::Scrubbing
        );
    }

    #[test]
    fn endpoints_by_region() {
        assert_eq!(
            default_endpoint("cn-hangzhou"),
            "https://antiddos.aliyuncs.com"
        );
        assert_eq!(
            default_endpoint("eu-central-1"),
            "https://antiddos-openapi.eu-central-1.aliyuncs.com"
        );
    }
}
