//! VPC API answers: the vSwitch's network ACL and its route table entries, parsed leniently
//! (upper or lower case, empty strings for absent fields) without guessing a field the checks
//! need.

use serde_json::Value;

use super::text;

use crate::snapshot::{AclEntry, CloudEip, CloudRoute, NetworkAcl, Policy};

pub const VERSION: &str = "2016-04-28";

fn entries<'a>(acl: &'a Value, outer: &str, inner: &str) -> &'a [Value] {
    acl.get(outer)
        .and_then(|o| o.get(inner))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// DescribeNetworkAclAttributes' `NetworkAclAttribute`.
pub fn parse_network_acl(v: &Value) -> Result<NetworkAcl, String> {
    let acl = v
        .get("NetworkAclAttribute")
        .ok_or("DescribeNetworkAclAttributes: the answer has no NetworkAclAttribute")?;
    let id = text(acl, "NetworkAclId")
        .ok_or("DescribeNetworkAclAttributes: the answer has no NetworkAclId")?
        .to_string();
    let parse = |list: &[Value], ingress: bool| -> Result<Vec<AclEntry>, String> {
        let (side, peer) = if ingress {
            ("inbound", "SourceCidrIp")
        } else {
            ("outbound", "DestinationCidrIp")
        };
        list.iter()
            .enumerate()
            .map(|(i, e)| {
                let missing = |f: &str| {
                    format!(
                        "DescribeNetworkAclAttributes {id}: {side} entry {} has no {f}",
                        i + 1
                    )
                };
                let policy = match text(e, "Policy").map(str::to_ascii_lowercase).as_deref() {
                    Some("accept") => Policy::Accept,
                    Some("drop") => Policy::Drop,
                    _ => return Err(missing("Policy (accept or drop)")),
                };
                let cidr = text(e, peer).ok_or_else(|| missing(peer))?;
                Ok(AclEntry {
                    entry_id: text(e, "NetworkAclEntryId").map(str::to_string),
                    name: text(e, "NetworkAclEntryName").map(str::to_string),
                    policy,
                    protocol: text(e, "Protocol")
                        .ok_or_else(|| missing("Protocol"))?
                        .to_ascii_lowercase(),
                    peer_cidr: cidr
                        .parse()
                        .map_err(|_| missing(&format!("valid {peer} (got {cidr:?})")))?,
                    port_range: text(e, "Port").unwrap_or("-1/-1").to_string(),
                    entry_type: text(e, "EntryType").map(str::to_string),
                })
            })
            .collect()
    };
    Ok(NetworkAcl {
        ingress: parse(entries(acl, "IngressAclEntries", "IngressAclEntry"), true)?,
        egress: parse(entries(acl, "EgressAclEntries", "EgressAclEntry"), false)?,
        id,
    })
}

/// DescribeRouteEntryList's `RouteEntrys.RouteEntry[]` (the API's spelling), each with its
/// first next hop.
pub fn parse_route_entries(v: &Value) -> Result<Vec<CloudRoute>, String> {
    let list = v
        .get("RouteEntrys")
        .and_then(|o| o.get("RouteEntry"))
        .and_then(Value::as_array)
        .ok_or("DescribeRouteEntryList: the answer has no RouteEntrys.RouteEntry list")?;
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let missing =
                |f: &str| format!("DescribeRouteEntryList: route entry {} has no {f}", i + 1);
            let dst =
                text(r, "DestinationCidrBlock").ok_or_else(|| missing("DestinationCidrBlock"))?;
            let hop = r
                .get("NextHops")
                .and_then(|h| h.get("NextHop"))
                .and_then(Value::as_array)
                .and_then(|a| a.first());
            Ok(CloudRoute {
                destination: dst
                    .parse()
                    .map_err(|_| missing(&format!("valid DestinationCidrBlock (got {dst:?})")))?,
                next_hop_type: hop
                    .and_then(|h| text(h, "NextHopType"))
                    .or_else(|| text(r, "NextHopType"))
                    .unwrap_or("local")
                    .to_string(),
                next_hop_id: hop.and_then(|h| text(h, "NextHopId")).map(str::to_string),
                status: text(r, "Status").map(str::to_string),
            })
        })
        .collect()
}

/// DescribeEipAddresses' `EipAddresses.EipAddress[]`.
pub fn parse_eips(v: &Value) -> Result<Vec<CloudEip>, String> {
    let list = v
        .get("EipAddresses")
        .and_then(|o| o.get("EipAddress"))
        .and_then(Value::as_array)
        .ok_or("DescribeEipAddresses: the answer has no EipAddresses.EipAddress list")?;
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            let missing = |f: &str| format!("DescribeEipAddresses: EIP {} has no {f}", i + 1);
            let ip = text(e, "IpAddress").ok_or_else(|| missing("IpAddress"))?;
            Ok(CloudEip {
                allocation_id: text(e, "AllocationId")
                    .ok_or_else(|| missing("AllocationId"))?
                    .to_string(),
                ip: ip
                    .parse()
                    .map_err(|_| missing(&format!("valid IpAddress (got {ip:?})")))?,
                status: text(e, "Status")
                    .ok_or_else(|| missing("Status"))?
                    .to_string(),
                bound_to: text(e, "InstanceId").map(str::to_string),
            })
        })
        .collect()
}

/// ListIpv4Gateways' `Ipv4GatewayModels[]` (a bare list, as the SDK's response model has
/// it): the enabled gateway's id.
pub fn parse_enabled_ipv4_gateway(v: &Value) -> Result<Option<String>, String> {
    let list = v
        .get("Ipv4GatewayModels")
        .and_then(Value::as_array)
        .ok_or("ListIpv4Gateways: the answer has no Ipv4GatewayModels list")?;
    Ok(list
        .iter()
        .find(|g| g.get("Enabled").and_then(Value::as_bool) == Some(true))
        .and_then(|g| text(g, "Ipv4GatewayId"))
        .map(str::to_string))
}

/// DescribeVSwitchAttributes: the vSwitch's network ACL (None: it has none) and route table.
pub fn parse_vswitch(v: &Value) -> Result<(Option<String>, String), String> {
    let route_table = v
        .get("RouteTable")
        .and_then(|r| text(r, "RouteTableId"))
        .ok_or("DescribeVSwitchAttributes: the answer has no RouteTable.RouteTableId")?;
    Ok((
        text(v, "NetworkAclId").map(str::to_string),
        route_table.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_acl_answer() {
        let v: Value = serde_json::from_str(r#"{"RequestId": "made-up", "NetworkAclAttribute": {
          "NetworkAclId": "nacl-made-up", "Status": "Available",
          "IngressAclEntries": {"IngressAclEntry": [
            {"NetworkAclEntryId": "nae-1", "NetworkAclEntryName": "no-ping", "Policy": "drop", "Protocol": "icmp", "SourceCidrIp": "0.0.0.0/0", "Port": "-1/-1", "EntryType": "custom"},
            {"NetworkAclEntryId": "nae-2", "Policy": "Accept", "Protocol": "ALL", "SourceCidrIp": "0.0.0.0/0", "Port": "-1/-1", "EntryType": "system"}]},
          "EgressAclEntries": {"EgressAclEntry": [
            {"NetworkAclEntryId": "nae-3", "Policy": "accept", "Protocol": "tcp", "DestinationCidrIp": "0.0.0.0/0", "Port": "443/443"}]}}}"#).unwrap();
        let acl = parse_network_acl(&v).unwrap();
        assert_eq!(acl.id, "nacl-made-up");
        assert_eq!(acl.ingress.len(), 2);
        assert_eq!(
            (acl.ingress[0].policy, acl.ingress[0].name.as_deref()),
            (Policy::Drop, Some("no-ping"))
        );
        assert_eq!(
            (acl.ingress[1].protocol.as_str(), acl.ingress[1].policy),
            ("all", Policy::Accept)
        );
        assert_eq!(acl.egress[0].port_range, "443/443");
        let broken = serde_json::json!({"NetworkAclAttribute": {"NetworkAclId": "nacl-x",
            "EgressAclEntries": {"EgressAclEntry": [{"Policy": "accept", "Protocol": "all"}]}}});
        let e = parse_network_acl(&broken).unwrap_err();
        assert!(
            e.contains("outbound entry 1 has no DestinationCidrIp"),
            "{e}"
        );
    }

    #[test]
    fn route_entries_answer() {
        let v: Value = serde_json::from_str(r#"{"RouteEntrys": {"RouteEntry": [
            {"DestinationCidrBlock": "10.77.0.0/24", "Type": "System", "Status": "Available", "NextHops": {"NextHop": []}},
            {"DestinationCidrBlock": "0.0.0.0/0", "Status": "Available", "NextHops": {"NextHop": [{"NextHopType": "Ipv4Gateway", "NextHopId": "ipv4gw-made-up"}]}}]}}"#).unwrap();
        let r = parse_route_entries(&v).unwrap();
        assert_eq!(r[0].next_hop_type, "local");
        assert_eq!(
            (r[1].next_hop_type.as_str(), r[1].next_hop_id.as_deref()),
            ("Ipv4Gateway", Some("ipv4gw-made-up"))
        );
        assert!(parse_route_entries(&serde_json::json!({})).is_err());
        let e = parse_route_entries(&serde_json::json!({"RouteEntrys": {"RouteEntry": [{"DestinationCidrBlock": "default"}]}})).unwrap_err();
        assert!(e.contains("DestinationCidrBlock"), "{e}");
    }

    #[test]
    fn eips_and_ipv4_gateways() {
        let v = serde_json::json!({"EipAddresses": {"EipAddress": [
            {"AllocationId": "eip-made-up", "IpAddress": "203.0.113.10", "Status": "InUse", "InstanceId": "i-made-up"},
            {"AllocationId": "eip-idle", "IpAddress": "203.0.113.11", "Status": "Available", "InstanceId": ""}]}});
        let eips = parse_eips(&v).unwrap();
        assert_eq!(
            (eips[0].status.as_str(), eips[0].bound_to.as_deref()),
            ("InUse", Some("i-made-up"))
        );
        assert_eq!(eips[1].bound_to, None);
        let e = parse_eips(&serde_json::json!({"EipAddresses": {"EipAddress": [{"AllocationId": "x", "IpAddress": "x", "Status": "InUse"}]}})).unwrap_err();
        assert!(e.contains("IpAddress"), "{e}");
        let v = serde_json::json!({"TotalCount": "2", "Ipv4GatewayModels": [
            {"Ipv4GatewayId": "ipv4gw-off", "Enabled": false}, {"Ipv4GatewayId": "ipv4gw-on", "Enabled": true}]});
        assert_eq!(
            parse_enabled_ipv4_gateway(&v).unwrap().as_deref(),
            Some("ipv4gw-on")
        );
        let none = serde_json::json!({"TotalCount": "0", "Ipv4GatewayModels": []});
        assert_eq!(parse_enabled_ipv4_gateway(&none).unwrap(), None);
        // The shape the agent once assumed (a wrapped list) is not the API's.
        let wrapped = serde_json::json!({"Ipv4GatewayModels": {"Ipv4GatewayModel": []}});
        assert!(parse_enabled_ipv4_gateway(&wrapped).is_err());
    }
}
