//! Reads everything the cloud-side checks judge, in two rounds of parallel calls under one
//! budget: first the instance, its ENIs, its EIPs, the vSwitch, the VPC's IPv4 gateways,
//! whether Cloud Firewall protects the public IP and Security Center's alerts;
//! then, with the ids those name, every security group (kind and rules), the vSwitch's network
//! ACL and its route table, Cloud Firewall's inbound policies (where it protects the IP) and
//! (for a blackholed public IP) when the blackhole ends. The
//! public IP's Anti-DDoS status is read in round one. A call that fails leaves its part `Failed` with the reason (the
//! action the RAM policy lacks, throttling, the budget) and the rest is still gathered.

use serde_json::Value;

use super::credentials::Credentials;
use super::openapi::{Budget, CloudError, Endpoint, OpenApi};
use super::{antiddos, cloudfw, ecs, sas, vpc, Action};
use crate::config::CloudEndpoints;
use crate::snapshot::{CloudFacts, CloudFirewall, DdosState, Gathered, SecurityGroupKind};

/// Where the instance is, from the metadata.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub region: &'a str,
    pub instance_id: &'a str,
    pub vpc_id: Option<&'a str>,
    pub vswitch_id: Option<&'a str>,
    /// The public IP or EIP the metadata names (its Anti-DDoS status is read).
    pub public_ip: Option<std::net::Ipv4Addr>,
    /// The primary private IPv4 (Security Center's search, where there is no public IP).
    pub private_ip: Option<std::net::Ipv4Addr>,
}

/// Each product's endpoint: the config's, else the region's (VPC-internal where the product
/// has one).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub ecs: Endpoint,
    pub vpc: Endpoint,
    pub antiddos: Endpoint,
    pub cloudfw: Endpoint,
    pub sas: Endpoint,
}

impl Endpoints {
    pub fn of(config: &CloudEndpoints, region: &str) -> Endpoints {
        let pick = |given: &Option<String>, default: String| {
            Endpoint::new(given.as_deref().unwrap_or(&default))
        };
        Endpoints {
            ecs: pick(
                &config.ecs,
                format!("https://ecs-vpc.{region}.aliyuncs.com"),
            ),
            vpc: pick(
                &config.vpc,
                format!("https://vpc-vpc.{region}.aliyuncs.com"),
            ),
            antiddos: pick(&config.antiddos, antiddos::default_endpoint(region)),
            cloudfw: pick(&config.cloudfw, cloudfw::default_endpoint(region)),
            sas: pick(&config.sas, sas::default_endpoint(region)),
        }
    }

    /// Where `action` is served.
    fn of_action(&self, action: &Action) -> &Endpoint {
        match action.version {
            ecs::VERSION => &self.ecs,
            vpc::VERSION => &self.vpc,
            antiddos::VERSION => &self.antiddos,
            cloudfw::VERSION => &self.cloudfw,
            _ => &self.sas,
        }
    }
}

fn missing<T>(what: &str) -> Gathered<T> {
    Gathered::Failed(format!("the metadata names no {what}"))
}

/// A call's result from its thread (a panic in it is a failure, not the diagnosis's end).
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, Gathered<T>>) -> Gathered<T> {
    h.join()
        .unwrap_or_else(|_| Gathered::Failed("a cloud call panicked".to_string()))
}

/// The calls of one diagnosis: each names one of [`super::ACTIONS`], its answer parsed or the
/// reason it is not.
struct Calls<'a> {
    api: &'a OpenApi,
    ep: &'a Endpoints,
    creds: &'a Credentials,
    budget: &'a Budget,
}

impl Calls<'_> {
    fn fetch<T>(
        &self,
        action: Action,
        params: &[(&str, &str)],
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Gathered<T> {
        let answer = self
            .api
            .call(
                self.ep.of_action(&action),
                self.creds,
                action.name,
                action.version,
                params,
                self.budget,
            )
            .and_then(|v| {
                parse(&v).map_err(|reason| CloudError::BadAnswer {
                    action: action.name.to_string(),
                    reason,
                })
            });
        match answer {
            Ok(t) => Gathered::Ok(t),
            Err(e) => Gathered::Failed(e.to_string()),
        }
    }
}

/// Security Center's window: the last 7 days, as `TimeStart`/`TimeEnd`.
fn alert_window() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    (
        sas::timestamp(now - time::Duration::days(7)),
        sas::timestamp(now),
    )
}

pub fn gather(
    api: &OpenApi,
    ep: &Endpoints,
    creds: &Credentials,
    place: &Place,
    budget: &Budget,
) -> CloudFacts {
    use super::*;
    let region = place.region;
    let c = Calls {
        api,
        ep,
        creds,
        budget,
    };
    let public_ip = place.public_ip.map(|ip| ip.to_string());
    let private_ip = place.private_ip.map(|ip| ip.to_string());
    let (window_start, window_end) = alert_window();
    // Round one.
    let (instance, enis, eips, vswitch, gateway, ddos, firewall_asset, alerts) =
        std::thread::scope(|s| {
            let instance = s.spawn(|| {
                c.fetch(
                    DESCRIBE_INSTANCE_ATTRIBUTE,
                    &[("InstanceId", place.instance_id)],
                    ecs::parse_instance,
                )
            });
            let enis = s.spawn(|| {
                c.fetch(
                    DESCRIBE_NETWORK_INTERFACES,
                    &[("RegionId", region), ("InstanceId", place.instance_id)],
                    ecs::parse_network_interfaces,
                )
            });
            let eips = s.spawn(|| {
                c.fetch(
                    DESCRIBE_EIP_ADDRESSES,
                    &[
                        ("RegionId", region),
                        ("AssociatedInstanceType", "EcsInstance"),
                        ("AssociatedInstanceId", place.instance_id),
                    ],
                    vpc::parse_eips,
                )
            });
            let vswitch = s.spawn(|| match place.vswitch_id {
                Some(id) => c.fetch(
                    DESCRIBE_VSWITCH_ATTRIBUTES,
                    &[("RegionId", region), ("VSwitchId", id)],
                    vpc::parse_vswitch,
                ),
                None => missing("vswitch-id"),
            });
            let gateway = s.spawn(|| match place.vpc_id {
                Some(id) => c.fetch(
                    LIST_IPV4_GATEWAYS,
                    &[("RegionId", region), ("VpcId", id)],
                    vpc::parse_enabled_ipv4_gateway,
                ),
                None => missing("vpc-id"),
            });
            let ddos = s.spawn(|| match (place.public_ip, &public_ip) {
                (Some(ip), Some(text)) => c.fetch(
                    DESCRIBE_INSTANCE_IP_ADDRESS,
                    &[
                        ("DdosRegionId", region),
                        ("InstanceType", "ecs"),
                        ("InstanceId", place.instance_id),
                        ("InstanceIp", text),
                    ],
                    |v| antiddos::parse_ip_status(v, ip),
                ),
                _ => Gathered::Ok(None),
            });
            let firewall_asset = s.spawn(|| match (place.public_ip, &public_ip) {
                (Some(ip), Some(text)) => c.fetch(
                    DESCRIBE_ASSET_LIST,
                    &[
                        ("CurrentPage", "1"),
                        ("PageSize", "10"),
                        ("SearchItem", text),
                        ("Lang", "en"),
                    ],
                    |v| cloudfw::parse_protect_status(v, ip),
                ),
                _ => Gathered::Ok(None),
            });
            let alerts = s.spawn(|| {
                let Some(address) = public_ip.as_deref().or(private_ip.as_deref()) else {
                    return missing("public or private IPv4 to search Security Center by");
                };
                c.fetch(
                    DESCRIBE_SUSP_EVENTS,
                    &[
                        ("From", "sas"),
                        ("Lang", "en"),
                        ("Levels", "serious,suspicious"),
                        ("Dealed", "N"),
                        ("Remark", address),
                        ("TimeStart", &window_start),
                        ("TimeEnd", &window_end),
                        ("CurrentPage", "1"),
                        ("PageSize", "20"),
                    ],
                    |v| sas::parse_alerts(v, place.instance_id),
                )
            });
            (
                joined(instance),
                joined(enis),
                joined(eips),
                joined(vswitch),
                joined(gateway),
                joined(ddos),
                joined(firewall_asset),
                joined(alerts),
            )
        });
    // The groups of every ENI (the instance's own list where the ENIs are unknown).
    let mut group_ids: Vec<String> = match (&enis, &instance) {
        (Gathered::Ok(e), _) => e
            .iter()
            .flat_map(|e| e.security_group_ids.clone())
            .collect(),
        (_, Gathered::Ok(i)) => i.security_group_ids.clone(),
        _ => Vec::new(),
    };
    group_ids.sort();
    group_ids.dedup();
    // Round two: kinds and rules together (a rule's group kind is joined afterwards).
    let ids_json = serde_json::to_string(&group_ids).unwrap_or_default();
    let (kinds, rules, network_acl, routes, ends_at, policies) = std::thread::scope(|s| {
        let kinds = s.spawn(|| {
            c.fetch(
                DESCRIBE_SECURITY_GROUPS,
                &[("RegionId", region), ("SecurityGroupIds", &ids_json)],
                ecs::parse_security_group_kinds,
            )
        });
        let rules: Vec<_> = group_ids
            .iter()
            .map(|id| {
                let c = &c;
                s.spawn(move || {
                    c.fetch(
                        DESCRIBE_SECURITY_GROUP_ATTRIBUTE,
                        &[
                            ("RegionId", region),
                            ("SecurityGroupId", id),
                            ("Direction", "all"),
                        ],
                        |v| ecs::parse_security_group(v, SecurityGroupKind::Normal),
                    )
                })
            })
            .collect();
        let acl = s.spawn(|| match &vswitch {
            Gathered::Ok((Some(acl), _)) => c.fetch(
                DESCRIBE_NETWORK_ACL_ATTRIBUTES,
                &[("RegionId", region), ("NetworkAclId", acl)],
                |v| vpc::parse_network_acl(v).map(Some),
            ),
            Gathered::Ok((None, _)) => Gathered::Ok(None),
            Gathered::Failed(e) => Gathered::Failed(e.clone()),
        });
        let routes = s.spawn(|| match &vswitch {
            Gathered::Ok((_, table)) => c.fetch(
                DESCRIBE_ROUTE_ENTRY_LIST,
                &[("RegionId", region), ("RouteTableId", table)],
                vpc::parse_route_entries,
            ),
            Gathered::Failed(e) => Gathered::Failed(e.clone()),
        });
        // Only for a blackholed IP: when it is lifted (best effort; unknown is fine).
        let ends_at = s.spawn(|| match (&ddos, &public_ip) {
            (Gathered::Ok(Some(b)), Some(ip)) if b.status == DdosState::Blackholed => c
                .fetch(
                    DESCRIBE_DDOS_EVENT_LIST,
                    &[
                        ("DdosRegionId", region),
                        ("InstanceType", "ecs"),
                        ("InstanceId", place.instance_id),
                        ("InternetIp", ip),
                        ("CurrentPage", "1"),
                        ("PageSize", "10"),
                    ],
                    |v| Ok(antiddos::parse_blackhole_end(v)),
                )
                .into_option()
                .flatten(),
            _ => None,
        });
        // Only where Cloud Firewall protects the IP: its inbound policies.
        let policies = s.spawn(|| match &firewall_asset {
            Gathered::Ok(Some(status)) if matches!(status.as_str(), "open" | "opening") => c.fetch(
                DESCRIBE_CONTROL_POLICY,
                &[
                    ("Direction", "in"),
                    ("CurrentPage", "1"),
                    ("PageSize", "100"),
                    ("Lang", "en"),
                ],
                cloudfw::parse_policies,
            ),
            _ => Gathered::Ok((Vec::new(), false)),
        });
        (
            joined(kinds),
            rules.into_iter().map(joined).collect::<Vec<_>>(),
            joined(acl),
            joined(routes),
            ends_at.join().ok().flatten(),
            joined(policies),
        )
    });
    let security_groups = match (&enis, &instance, kinds) {
        (Gathered::Failed(e), Gathered::Failed(_), _) => Gathered::Failed(e.clone()),
        (_, _, Gathered::Failed(e)) => Gathered::Failed(e),
        (_, _, Gathered::Ok(kinds)) => {
            let mut groups = Vec::with_capacity(rules.len());
            let mut failure = None;
            for r in rules {
                match r {
                    Gathered::Ok(mut g) => {
                        if let Some((_, k)) = kinds.iter().find(|(id, _)| *id == g.id) {
                            g.kind = *k;
                        }
                        groups.push(g);
                    }
                    Gathered::Failed(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            match failure {
                Some(e) => Gathered::Failed(e),
                None => Gathered::Ok(groups),
            }
        }
    };
    let cloud_firewall = match (firewall_asset, policies) {
        (Gathered::Failed(e), _) | (_, Gathered::Failed(e)) => Gathered::Failed(e),
        (Gathered::Ok(status), Gathered::Ok((policies, truncated))) => {
            Gathered::Ok(CloudFirewall {
                ip: place.public_ip,
                protect_status: status,
                policies,
                truncated,
            })
        }
    };
    CloudFacts {
        region: region.to_string(),
        credentials: match &creds.source {
            super::credentials::CredentialSource::RamRole(r) => format!("RAM role {r}"),
            super::credentials::CredentialSource::Environment => "environment".to_string(),
        },
        instance,
        enis,
        security_groups,
        network_acl,
        routes,
        route_table: vswitch.into_option().map(|(_, table)| table),
        ipv4_gateway: gateway,
        eips,
        blackhole: ddos.map(|b| {
            b.map(|mut b| {
                b.ends_at = ends_at;
                b
            })
        }),
        cloud_firewall,
        security_alerts: alerts,
        fetched_at: crate::now_rfc3339(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake;
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// The fake's answers, in the shapes the official SDK's response models accept (the
    /// conformance test checks this file against them).
    const ANSWERS: &str = include_str!("answers.json");

    fn answer(action: &str) -> (u16, String) {
        let doc: Value = serde_json::from_str(ANSWERS).unwrap();
        match doc.get(action) {
            Some(body) => (200, body.to_string()),
            None => (
                404,
                r#"{"Code": "InvalidAction.NotFound", "Message": "no"}"#.into(),
            ),
        }
    }

    fn sg_answer(query: &[(String, String)]) -> (u16, String) {
        let id = query
            .iter()
            .find(|(k, _)| k == "SecurityGroupId")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        (
            200,
            format!(
                r#"{{"SecurityGroupId": "{id}", "Permissions": {{"Permission": [{{"Direction": "ingress", "IpProtocol": "ICMP", "PortRange": "-1/-1", "SourceCidrIp": "0.0.0.0/0", "Policy": "Accept", "Priority": "1"}}]}}}}"#
            ),
        )
    }

    fn place() -> Place<'static> {
        Place {
            region: "cn-made-up",
            instance_id: "i-made-up",
            vpc_id: Some("vpc-made-up"),
            vswitch_id: Some("vsw-made-up"),
            public_ip: Some(std::net::Ipv4Addr::new(203, 0, 113, 10)),
            private_ip: Some(std::net::Ipv4Addr::new(10, 0, 0, 10)),
        }
    }

    fn creds() -> Credentials {
        Credentials::new("STS.made-up", "made-up-secret", Some("made-up-token"))
    }

    /// Everything gathered from one fake serving all three services.
    fn gather_from(endpoint: &Endpoint, place: &Place) -> CloudFacts {
        let ep = Endpoints {
            ecs: endpoint.clone(),
            vpc: endpoint.clone(),
            antiddos: endpoint.clone(),
            cloudfw: endpoint.clone(),
            sas: endpoint.clone(),
        };
        gather(
            &OpenApi::new(),
            &ep,
            &creds(),
            place,
            &Budget::new(Duration::from_secs(10)),
        )
    }

    #[test]
    fn everything_is_gathered_in_two_parallel_rounds() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (f, m) = (in_flight.clone(), most.clone());
        let (endpoint, seen) = fake::serve("made-up-secret", move |action, query| {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            // Long enough for parallel calls to overlap.
            std::thread::sleep(Duration::from_millis(150));
            f.fetch_sub(1, Ordering::SeqCst);
            if action == "DescribeSecurityGroupAttribute" {
                sg_answer(query)
            } else {
                answer(action)
            }
        });
        let facts = gather_from(&endpoint, &place());
        assert_eq!(facts.instance.ok().unwrap().status, "Running");
        let groups = facts.security_groups.ok().unwrap();
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.id.as_str(), g.kind))
                .collect::<Vec<_>>(),
            vec![
                ("sg-a", SecurityGroupKind::Normal),
                ("sg-b", SecurityGroupKind::Enterprise)
            ]
        );
        assert_eq!(
            facts.network_acl.ok().unwrap().as_ref().unwrap().id,
            "nacl-made-up"
        );
        assert_eq!(facts.routes.ok().unwrap().len(), 1);
        assert_eq!(
            facts.ipv4_gateway.ok().unwrap().as_deref(),
            Some("ipv4gw-made-up")
        );
        assert!(facts.eips.ok().unwrap().is_empty());
        let log = seen.lock().unwrap().clone();
        assert_eq!(
            facts.blackhole.ok().unwrap().as_ref().unwrap().status,
            DdosState::Normal
        );
        let fw = facts.cloud_firewall.ok().unwrap();
        assert_eq!(
            (fw.protect_status.as_deref(), fw.policies.len()),
            (Some("open"), 1)
        );
        assert_eq!(facts.security_alerts.ok().unwrap().len(), 0);
        assert_eq!(facts.route_table.as_deref(), Some("vtb-made-up"));
        assert_eq!(log.len(), 14, "{log:?}");
        assert!(log.iter().all(|l| l.ends_with("signed=true")), "{log:?}");
        // Round one's eight calls were in flight together.
        assert!(
            most.load(Ordering::SeqCst) >= 8,
            "at most {} at once",
            most.load(Ordering::SeqCst)
        );
    }

    #[test]
    fn a_denied_action_fails_only_its_part_and_is_named() {
        let (endpoint, _) = fake::serve("made-up-secret", |action, query| match action {
            "DescribeNetworkAclAttributes" => (
                403,
                r#"{"Code": "Forbidden.RAM", "Message": "not authorized"}"#.into(),
            ),
            "DescribeSecurityGroupAttribute" => sg_answer(query),
            a => answer(a),
        });
        let facts = gather_from(&endpoint, &place());
        match &facts.network_acl {
            Gathered::Failed(e) => assert!(
                e.contains("the policy needs DescribeNetworkAclAttributes"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(facts.routes.ok().is_ok() && facts.security_groups.ok().is_ok());
        let shown = format!("{facts:?}");
        for s in creds().secrets() {
            assert!(!shown.contains(s), "a secret in the facts");
        }
        // Without the metadata's ids the parts that need them say so.
        let bare = Place {
            vpc_id: None,
            vswitch_id: None,
            ..place()
        };
        let facts = gather_from(&endpoint, &bare);
        assert!(matches!(&facts.routes, Gathered::Failed(e) if e.contains("vswitch-id")));
        assert!(matches!(&facts.ipv4_gateway, Gathered::Failed(e) if e.contains("vpc-id")));
    }

    /// A blackholed public IP: its status from round one, when it ends from the event list
    /// (asked only then, for that IP), with DdosRegionId instead of RegionId.
    #[test]
    fn a_blackholed_ip_and_when_it_ends() {
        let (endpoint, seen) = fake::serve("made-up-secret", |action, query| {
            let has = |k: &str| query.iter().any(|(q, _)| q == k);
            match action {
                "DescribeInstanceIpAddress" | "DescribeDdosEventList"
                    if has("RegionId") || !has("DdosRegionId") =>
                {
                    (400, r#"{"Code": "MissingDdosRegionId", "Message": "no"}"#.into())
                }
                "DescribeDdosEventList" if !query.contains(&("InternetIp".into(), "203.0.113.10".into())) => {
                    (400, r#"{"Code": "MissingInternetIp", "Message": "no"}"#.into())
                }
                "DescribeInstanceIpAddress" => (200, r#"{"InstanceList": [{"InstanceId": "i-made-up", "IpAddressConfig": [{"InstanceIp": "203.0.113.10", "IpStatus": "blackholed"}]}]}"#.into()),
                "DescribeSecurityGroupAttribute" => sg_answer(query),
                a => answer(a),
            }
        });
        let facts = gather_from(&endpoint, &place());
        let b = facts.blackhole.ok().unwrap().clone().unwrap();
        assert_eq!(
            (b.status, b.ends_at),
            (DdosState::Blackholed, Some(1_800_000_000))
        );
        assert_eq!(seen.lock().unwrap().len(), 15);
        // Without a public IP nothing is asked.
        let no_ip = Place {
            public_ip: None,
            ..place()
        };
        let facts = gather_from(&endpoint, &no_ip);
        assert_eq!(facts.blackhole, Gathered::Ok(None));
    }

    #[test]
    fn default_endpoints_are_the_regions_vpc_internal_ones() {
        let e = Endpoints::of(&CloudEndpoints::default(), "cn-hangzhou");
        assert_eq!(e.ecs.url, "https://ecs-vpc.cn-hangzhou.aliyuncs.com");
        assert_eq!(e.vpc.url, "https://vpc-vpc.cn-hangzhou.aliyuncs.com");
        assert_eq!(e.antiddos.url, "https://antiddos.aliyuncs.com");
        let e = Endpoints::of(
            &CloudEndpoints {
                ecs: Some("http://127.0.0.1:9".into()),
                ..Default::default()
            },
            "cn-hangzhou",
        );
        assert_eq!(e.ecs.url, "http://127.0.0.1:9");
    }
}
