//! Cloud Firewall (`Cloudfw` 2017-12-07) answers: whether its Internet border protects the
//! public IP (`DescribeAssetList`) and its inbound access-control policies
//! (`DescribeControlPolicy`). Shapes as the official SDK's response models give them.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::text;
use crate::snapshot::ControlPolicy;

pub const VERSION: &str = "2017-12-07";
/// The policies read per diagnosis (one page; the API's largest).
pub const PAGE_SIZE: usize = 100;

/// Cloud Firewall answers at one endpoint for the Chinese mainland and one for the rest.
pub fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") && region != "cn-hongkong" {
        "https://cloudfw.aliyuncs.com".to_string()
    } else {
        "https://cloudfw.ap-southeast-1.aliyuncs.com".to_string()
    }
}

/// DescribeAssetList (searched for `ip`): the asset's `ProtectStatus`; None: Cloud Firewall
/// does not list the IP (not an asset of it, so nothing of it filters the IP).
pub fn parse_protect_status(v: &Value, ip: Ipv4Addr) -> Result<Option<String>, String> {
    let assets = v
        .get("Assets")
        .and_then(Value::as_array)
        .ok_or("DescribeAssetList: the answer has no Assets list")?;
    let wanted = ip.to_string();
    Ok(assets
        .iter()
        .find(|a| text(a, "InternetAddress") == Some(wanted.as_str()))
        .map(|a| {
            text(a, "ProtectStatus")
                .unwrap_or("unknown")
                .to_ascii_lowercase()
        }))
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// DescribeControlPolicy: the policies in evaluation order, and whether more exist than were
/// read (`TotalCount`, a string in the SDK's model).
pub fn parse_policies(v: &Value) -> Result<(Vec<ControlPolicy>, bool), String> {
    let list = v
        .get("Policys")
        .and_then(Value::as_array)
        .ok_or("DescribeControlPolicy: the answer has no Policys list")?;
    let mut policies = list
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let missing = |f: &str| format!("DescribeControlPolicy: policy {} has no {f}", i + 1);
            Ok(ControlPolicy {
                uuid: text(p, "AclUuid")
                    .ok_or_else(|| missing("AclUuid"))?
                    .to_string(),
                order: p
                    .get("Order")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| missing("Order"))?,
                action: text(p, "AclAction")
                    .ok_or_else(|| missing("AclAction"))?
                    .to_ascii_lowercase(),
                proto: text(p, "Proto").unwrap_or("ANY").to_ascii_uppercase(),
                source_type: text(p, "SourceType").unwrap_or("net").to_string(),
                source: text(p, "Source").unwrap_or("").to_string(),
                source_cidrs: strings(p, "SourceGroupCidrs"),
                destination_type: text(p, "DestinationType").unwrap_or("net").to_string(),
                destination: text(p, "Destination").unwrap_or("").to_string(),
                destination_cidrs: strings(p, "DestinationGroupCidrs"),
                dest_port_type: text(p, "DestPortType").unwrap_or("port").to_string(),
                dest_port: text(p, "DestPort").unwrap_or("").to_string(),
                dest_port_ports: strings(p, "DestPortGroupPorts"),
                // `Release` is "true"/"false"; a policy that does not say is enabled.
                enabled: text(p, "Release").is_none_or(|r| !r.eq_ignore_ascii_case("false")),
                description: text(p, "Description").map(str::to_string),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    policies.sort_by_key(|p| p.order);
    let total: usize = text(v, "TotalCount")
        .and_then(|t| t.parse().ok())
        .unwrap_or(policies.len());
    Ok((policies, total > list.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_and_policies() {
        let ip = Ipv4Addr::new(203, 0, 113, 10);
        let v = serde_json::json!({"TotalCount": 2, "Assets": [
            {"InternetAddress": "198.51.100.1", "ProtectStatus": "closed"},
            {"InternetAddress": "203.0.113.10", "ProtectStatus": "open", "BindInstanceId": "i-made-up"}]});
        assert_eq!(
            parse_protect_status(&v, ip).unwrap().as_deref(),
            Some("open")
        );
        let none = serde_json::json!({"TotalCount": 0, "Assets": []});
        assert_eq!(parse_protect_status(&none, ip).unwrap(), None);
        assert!(parse_protect_status(&serde_json::json!({}), ip).is_err());
        let v = serde_json::json!({"TotalCount": "3", "Policys": [
            {"AclUuid": "b", "Order": 2, "AclAction": "accept", "Proto": "ANY", "SourceType": "net", "Source": "0.0.0.0/0",
             "DestinationType": "net", "Destination": "0.0.0.0/0", "DestPortType": "port", "DestPort": "0/0", "Release": "true"},
            {"AclUuid": "a", "Order": 1, "AclAction": "drop", "Proto": "ICMP", "SourceType": "group", "Source": "bad",
             "SourceGroupCidrs": ["198.18.0.0/16"], "DestinationType": "net", "Destination": "0.0.0.0/0", "Release": "false"}]});
        let (p, truncated) = parse_policies(&v).unwrap();
        assert!(truncated);
        assert_eq!((p[0].uuid.as_str(), p[0].enabled), ("a", false));
        assert_eq!(p[0].source_cidrs, vec!["198.18.0.0/16".to_string()]);
        let e = parse_policies(
            &serde_json::json!({"Policys": [{"AclUuid": "x", "AclAction": "drop"}]}),
        )
        .unwrap_err();
        assert!(e.contains("policy 1 has no Order"), "{e}");
    }

    #[test]
    fn endpoints_by_region() {
        assert_eq!(
            default_endpoint("cn-hangzhou"),
            "https://cloudfw.aliyuncs.com"
        );
        assert_eq!(
            default_endpoint("eu-central-1"),
            "https://cloudfw.ap-southeast-1.aliyuncs.com"
        );
    }
}
