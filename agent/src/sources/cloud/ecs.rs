//! ECS API answers, parsed leniently where the documentation's examples disagree (`Priority`
//! as a number or a string, empty strings for absent peers) but never guessing a field the
//! checks need: its absence is an error that names it.

use serde_json::Value;

use super::text;

use crate::snapshot::{
    CloudEni, CloudInstance, Direction, Policy, SecurityGroup, SecurityGroupKind, SecurityGroupRule,
};

pub const VERSION: &str = "2014-05-26";

/// A number given as a number or a string.
fn number(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `Permissions.Permission[]` of DescribeSecurityGroupAttribute, as a [`SecurityGroup`] of
/// `kind` (which DescribeSecurityGroups tells).
pub fn parse_security_group(v: &Value, kind: SecurityGroupKind) -> Result<SecurityGroup, String> {
    let id = text(v, "SecurityGroupId")
        .ok_or("DescribeSecurityGroupAttribute: the answer has no SecurityGroupId")?
        .to_string();
    let list = v
        .get("Permissions")
        .and_then(|p| p.get("Permission"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("DescribeSecurityGroupAttribute {id}: the answer has no Permissions.Permission list"))?;
    let mut rules = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let missing = |field: &str| {
            format!(
                "DescribeSecurityGroupAttribute {id}: rule {} has no {field}",
                i + 1
            )
        };
        let direction = match text(p, "Direction").map(str::to_ascii_lowercase).as_deref() {
            Some("ingress") => Direction::Ingress,
            Some("egress") => Direction::Egress,
            _ => return Err(missing("Direction (ingress or egress)")),
        };
        let policy = match text(p, "Policy").map(str::to_ascii_lowercase).as_deref() {
            Some("accept") => Policy::Accept,
            Some("drop") => Policy::Drop,
            _ => return Err(missing("Policy (Accept or Drop)")),
        };
        let priority = number(p, "Priority")
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| missing("Priority between 1 and 100"))? as u8;
        let (cidr4, cidr6, group, list) = match direction {
            Direction::Ingress => (
                "SourceCidrIp",
                "Ipv6SourceCidrIp",
                "SourceGroupId",
                "SourcePrefixListId",
            ),
            Direction::Egress => (
                "DestCidrIp",
                "Ipv6DestCidrIp",
                "DestGroupId",
                "DestPrefixListId",
            ),
        };
        let peer_cidr = match text(p, cidr4).or_else(|| text(p, cidr6)) {
            Some(c) => Some(
                c.parse()
                    // A single address is published without a prefix length.
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| missing(&format!("valid {cidr4}/{cidr6} (got {c:?})")))?,
            ),
            None => None,
        };
        rules.push(SecurityGroupRule {
            rule_id: text(p, "SecurityGroupRuleId").map(str::to_string),
            direction,
            protocol: text(p, "IpProtocol")
                .ok_or_else(|| missing("IpProtocol"))?
                .to_ascii_uppercase(),
            port_range: text(p, "PortRange").unwrap_or("-1/-1").to_string(),
            peer_cidr,
            peer_group: text(p, group).map(str::to_string),
            peer_prefix_list: text(p, list).map(str::to_string),
            policy,
            priority,
            description: text(p, "Description").map(str::to_string),
        });
    }
    Ok(SecurityGroup { id, kind, rules })
}

/// The strings of `{"Outer": {"Inner": [..]}}` (absent: empty).
fn nested_list(v: &Value, outer: &str, inner: &str) -> Vec<String> {
    v.get(outer)
        .and_then(|o| o.get(inner))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.trim().to_string()),
                    // `LockReason: [{"LockReason": "security"}]`
                    Value::Object(_) => text(x, inner).map(str::to_string),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// DescribeInstanceAttribute's answer.
pub fn parse_instance(v: &Value) -> Result<CloudInstance, String> {
    let missing = |f: &str| format!("DescribeInstanceAttribute: the answer has no {f}");
    let ips = |list: Vec<String>, what: &str| -> Result<Vec<std::net::Ipv4Addr>, String> {
        list.iter()
            .map(|s| {
                s.parse().map_err(|_| {
                    format!("DescribeInstanceAttribute: {what} {s:?} is not an IPv4 address")
                })
            })
            .collect()
    };
    let eip = match v.get("EipAddress").and_then(|e| text(e, "IpAddress")) {
        Some(a) => Some(a.parse().map_err(|_| {
            format!("DescribeInstanceAttribute: EipAddress.IpAddress {a:?} is not an IPv4 address")
        })?),
        None => None,
    };
    let vpc = v.get("VpcAttributes");
    Ok(CloudInstance {
        id: text(v, "InstanceId")
            .ok_or_else(|| missing("InstanceId"))?
            .to_string(),
        status: text(v, "Status")
            .ok_or_else(|| missing("Status"))?
            .to_string(),
        locks: nested_list(v, "OperationLocks", "LockReason"),
        public_ips: ips(
            nested_list(v, "PublicIpAddress", "IpAddress"),
            "PublicIpAddress",
        )?,
        eip,
        vswitch_id: vpc.and_then(|x| text(x, "VSwitchId")).map(str::to_string),
        vpc_id: vpc.and_then(|x| text(x, "VpcId")).map(str::to_string),
        security_group_ids: nested_list(v, "SecurityGroupIds", "SecurityGroupId"),
    })
}

/// DescribeNetworkInterfaces' `NetworkInterfaceSets.NetworkInterfaceSet[]`.
pub fn parse_network_interfaces(v: &Value) -> Result<Vec<CloudEni>, String> {
    let list = v
        .get("NetworkInterfaceSets")
        .and_then(|o| o.get("NetworkInterfaceSet"))
        .and_then(Value::as_array)
        .ok_or("DescribeNetworkInterfaces: the answer has no NetworkInterfaceSets.NetworkInterfaceSet list")?;
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            let id = text(e, "NetworkInterfaceId")
                .ok_or_else(|| format!("DescribeNetworkInterfaces: interface {} has no NetworkInterfaceId", i + 1))?
                .to_string();
            let private_ips = e
                .get("PrivateIpSets")
                .and_then(|p| p.get("PrivateIpSet"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| text(x, "PrivateIpAddress")?.parse().ok()).collect())
                .unwrap_or_default();
            let public_ip = match e.get("AssociatedPublicIp").and_then(|a| text(a, "PublicIpAddress")) {
                Some(a) => Some(a.parse().map_err(|_| format!("DescribeNetworkInterfaces {id}: AssociatedPublicIp {a:?} is not an IPv4 address"))?),
                None => None,
            };
            Ok(CloudEni {
                mac: text(e, "MacAddress").map(str::to_ascii_lowercase),
                security_group_ids: nested_list(e, "SecurityGroupIds", "SecurityGroupId"),
                private_ips,
                public_ip,
                id,
            })
        })
        .collect()
}

/// DescribeSecurityGroups' `SecurityGroups.SecurityGroup[]`: each group's kind.
pub fn parse_security_group_kinds(v: &Value) -> Result<Vec<(String, SecurityGroupKind)>, String> {
    let list = v
        .get("SecurityGroups")
        .and_then(|o| o.get("SecurityGroup"))
        .and_then(Value::as_array)
        .ok_or("DescribeSecurityGroups: the answer has no SecurityGroups.SecurityGroup list")?;
    list.iter()
        .enumerate()
        .map(|(i, g)| {
            let id = text(g, "SecurityGroupId").ok_or_else(|| {
                format!(
                    "DescribeSecurityGroups: group {} has no SecurityGroupId",
                    i + 1
                )
            })?;
            let kind = match text(g, "SecurityGroupType")
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("normal") => SecurityGroupKind::Normal,
                Some("enterprise") => SecurityGroupKind::Enterprise,
                _ => {
                    return Err(format!(
                    "DescribeSecurityGroups: {id} has no SecurityGroupType (normal or enterprise)"
                ))
                }
            };
            Ok((id.to_string(), kind))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the API reference's example answer, with made-up ids.
    const ANSWER: &str = r#"{
      "RequestId": "made-up", "SecurityGroupId": "sg-made-up", "RegionId": "cn-hangzhou",
      "InnerAccessPolicy": "Accept", "VpcId": "vpc-made-up",
      "Permissions": {"Permission": [
        {"SecurityGroupRuleId": "sgr-1", "Direction": "ingress", "SourceCidrIp": "0.0.0.0/0",
         "Ipv6SourceCidrIp": "", "SourceGroupId": "", "SourcePrefixListId": "", "IpProtocol": "TCP",
         "PortRange": "22/22", "Policy": "Accept", "Priority": "1", "NicType": "intranet", "Description": "ssh"},
        {"SecurityGroupRuleId": "sgr-2", "Direction": "ingress", "SourceCidrIp": "", "Ipv6SourceCidrIp": "",
         "SourceGroupId": "sg-peer", "IpProtocol": "ALL", "PortRange": "-1/-1", "Policy": "drop", "Priority": 100},
        {"SecurityGroupRuleId": "sgr-3", "Direction": "egress", "DestCidrIp": "203.0.113.7",
         "IpProtocol": "icmp", "PortRange": "-1/-1", "Policy": "Accept", "Priority": 2},
        {"SecurityGroupRuleId": "sgr-4", "Direction": "ingress", "Ipv6SourceCidrIp": "::/0",
         "IpProtocol": "ICMPv6", "Policy": "Accept", "Priority": "3"}
      ]}}"#;

    #[test]
    fn the_documented_shape_is_parsed_leniently() {
        let v: Value = serde_json::from_str(ANSWER).unwrap();
        let g = parse_security_group(&v, SecurityGroupKind::Normal).unwrap();
        assert_eq!(g.id, "sg-made-up");
        assert_eq!(g.rules.len(), 4);
        let r = &g.rules;
        assert_eq!(
            (r[0].priority, r[0].policy, r[0].protocol.as_str()),
            (1, Policy::Accept, "TCP")
        );
        assert_eq!(r[0].peer_cidr, Some("0.0.0.0/0".parse().unwrap()));
        assert_eq!((r[1].priority, r[1].policy), (100, Policy::Drop));
        assert_eq!(
            (r[1].peer_cidr, r[1].peer_group.as_deref()),
            (None, Some("sg-peer"))
        );
        assert_eq!(r[2].direction, Direction::Egress);
        assert_eq!(r[2].peer_cidr, Some("203.0.113.7/32".parse().unwrap()));
        assert_eq!(r[2].protocol, "ICMP");
        assert_eq!(
            (r[3].protocol.as_str(), r[3].port_range.as_str()),
            ("ICMPV6", "-1/-1")
        );
        assert_eq!(r[3].peer_cidr, Some("::/0".parse().unwrap()));
    }

    #[test]
    fn missing_fields_are_named() {
        for (edit, want) in [
            (r#""Priority": "1""#, "Priority"),
            (
                r#""Direction": "ingress", "SourceCidrIp": "0.0.0.0/0""#,
                "Direction",
            ),
            (r#""Policy": "Accept", "Priority": "1""#, "Policy"),
            (r#""IpProtocol": "TCP""#, "IpProtocol"),
            (r#""SourceCidrIp": "0.0.0.0/0""#, "SourceCidrIp"),
        ] {
            let broken = ANSWER.replacen(
                edit,
                &match want {
                    "Priority" => r#""Priority": "0""#.to_string(),
                    "Direction" => {
                        r#""Direction": "sideways", "SourceCidrIp": "0.0.0.0/0""#.to_string()
                    }
                    "Policy" => r#""Policy": "", "Priority": "1""#.to_string(),
                    "IpProtocol" => r#""IpProtocol": """#.to_string(),
                    _ => r#""SourceCidrIp": "everyone""#.to_string(),
                },
                1,
            );
            let v: Value = serde_json::from_str(&broken).unwrap();
            let e = parse_security_group(&v, SecurityGroupKind::Normal).unwrap_err();
            assert!(e.contains("rule 1") && e.contains(want), "{want}: {e}");
        }
        let e = parse_security_group(
            &serde_json::json!({"SecurityGroupId": "sg-x"}),
            SecurityGroupKind::Normal,
        )
        .unwrap_err();
        assert!(e.contains("Permissions.Permission"), "{e}");
    }

    #[test]
    fn instance_attribute() {
        let v: Value = serde_json::from_str(
            r#"{
          "InstanceId": "i-made-up", "Status": "Stopped",
          "OperationLocks": {"LockReason": [{"LockReason": "financial"}]},
          "PublicIpAddress": {"IpAddress": ["203.0.113.10"]},
          "EipAddress": {"IpAddress": "", "AllocationId": ""},
          "VpcAttributes": {"VSwitchId": "vsw-made-up", "VpcId": "vpc-made-up"},
          "SecurityGroupIds": {"SecurityGroupId": ["sg-a", "sg-b"]}}"#,
        )
        .unwrap();
        let i = parse_instance(&v).unwrap();
        assert_eq!(
            (i.status.as_str(), i.locks.clone()),
            ("Stopped", vec!["financial".to_string()])
        );
        assert_eq!(
            i.public_ips,
            vec!["203.0.113.10".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(i.eip, None, "an empty EIP is none");
        assert_eq!(i.vswitch_id.as_deref(), Some("vsw-made-up"));
        assert_eq!(i.security_group_ids, vec!["sg-a", "sg-b"]);
        let e = parse_instance(&serde_json::json!({"InstanceId": "i-x"})).unwrap_err();
        assert!(e.contains("Status"), "{e}");
        let e = parse_instance(&serde_json::json!({"InstanceId": "i-x", "Status": "Running", "EipAddress": {"IpAddress": "nope"}})).unwrap_err();
        assert!(e.contains("EipAddress.IpAddress"), "{e}");
    }

    #[test]
    fn network_interfaces_and_group_kinds() {
        let v: Value = serde_json::from_str(r#"{"NetworkInterfaceSets": {"NetworkInterfaceSet": [
          {"NetworkInterfaceId": "eni-made-up", "MacAddress": "00:16:3E:00:00:01", "Type": "Primary",
           "SecurityGroupIds": {"SecurityGroupId": ["sg-a"]},
           "PrivateIpSets": {"PrivateIpSet": [{"PrivateIpAddress": "10.77.0.10", "Primary": true}, {"PrivateIpAddress": "10.77.0.11", "Primary": false}]},
           "AssociatedPublicIp": {"PublicIpAddress": "", "AllocationId": ""}}]}}"#).unwrap();
        let enis = parse_network_interfaces(&v).unwrap();
        assert_eq!(enis[0].mac.as_deref(), Some("00:16:3e:00:00:01"));
        assert_eq!(enis[0].security_group_ids, vec!["sg-a"]);
        assert_eq!(enis[0].private_ips.len(), 2);
        assert_eq!(enis[0].public_ip, None);
        let v = serde_json::json!({"SecurityGroups": {"SecurityGroup": [
            {"SecurityGroupId": "sg-a", "SecurityGroupType": "normal"},
            {"SecurityGroupId": "sg-b", "SecurityGroupType": "Enterprise"}]}});
        assert_eq!(
            parse_security_group_kinds(&v).unwrap(),
            vec![
                ("sg-a".to_string(), SecurityGroupKind::Normal),
                ("sg-b".to_string(), SecurityGroupKind::Enterprise)
            ]
        );
        let v =
            serde_json::json!({"SecurityGroups": {"SecurityGroup": [{"SecurityGroupId": "sg-c"}]}});
        assert!(parse_security_group_kinds(&v)
            .unwrap_err()
            .contains("sg-c has no SecurityGroupType"));
    }
}
