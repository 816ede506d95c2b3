//! The cloud side: credentials from the instance RAM role (or the `ALIBABA_CLOUD_*`
//! variables), the ACS3-HMAC-SHA256 signature, bounded read-only OpenAPI calls over HTTPS, and
//! the facts the `cloud.*` checks judge, gathered in two parallel rounds under `[cloud]`'s
//! budget. [`read`] decides whether to ask at all.

pub mod antiddos;
pub mod cloudfw;
pub mod credentials;
pub mod ecs;
pub mod facts;
#[cfg(test)]
pub(crate) mod fake;
pub mod openapi;
#[cfg(test)]
pub(crate) mod received;
pub mod sas;
pub mod signature;
pub mod vpc;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::config::{CloudMode, Config};
use crate::snapshot::{CloudState, MetadataState};
use credentials::{Credentials, NoCredentials};

/// A non-empty string field, trimmed (the API sends `""` for absent values).
pub(crate) fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One OpenAPI action the agent calls: the RAM service prefix that grants it, the product's
/// API version and the action's name. Every call names one of [`ACTIONS`], so the shipped RAM
/// policy (`packaging/ram-policy.json`) can be held to exactly these, and the conformance test
/// checks each against Alibaba Cloud's own SDK for that product and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub ram: &'static str,
    pub version: &'static str,
    pub name: &'static str,
}

impl Action {
    /// `service:Action`, as a RAM policy names it.
    pub fn permission(&self) -> String {
        format!("{}:{}", self.ram, self.name)
    }
}

const fn ecs_action(name: &'static str) -> Action {
    Action {
        ram: "ecs",
        version: ecs::VERSION,
        name,
    }
}
const fn vpc_action(name: &'static str) -> Action {
    Action {
        ram: "vpc",
        version: vpc::VERSION,
        name,
    }
}
const fn ddos_action(name: &'static str) -> Action {
    Action {
        ram: "yundun-ddos",
        version: antiddos::VERSION,
        name,
    }
}

pub const DESCRIBE_INSTANCE_ATTRIBUTE: Action = ecs_action("DescribeInstanceAttribute");
pub const DESCRIBE_NETWORK_INTERFACES: Action = ecs_action("DescribeNetworkInterfaces");
pub const DESCRIBE_SECURITY_GROUPS: Action = ecs_action("DescribeSecurityGroups");
pub const DESCRIBE_SECURITY_GROUP_ATTRIBUTE: Action = ecs_action("DescribeSecurityGroupAttribute");
pub const DESCRIBE_VSWITCH_ATTRIBUTES: Action = vpc_action("DescribeVSwitchAttributes");
pub const DESCRIBE_NETWORK_ACL_ATTRIBUTES: Action = vpc_action("DescribeNetworkAclAttributes");
pub const DESCRIBE_ROUTE_ENTRY_LIST: Action = vpc_action("DescribeRouteEntryList");
pub const LIST_IPV4_GATEWAYS: Action = vpc_action("ListIpv4Gateways");
pub const DESCRIBE_EIP_ADDRESSES: Action = vpc_action("DescribeEipAddresses");
pub const DESCRIBE_INSTANCE_IP_ADDRESS: Action = ddos_action("DescribeInstanceIpAddress");
pub const DESCRIBE_DDOS_EVENT_LIST: Action = ddos_action("DescribeDdosEventList");
pub const DESCRIBE_ASSET_LIST: Action = Action {
    ram: "yundun-cloudfirewall",
    version: cloudfw::VERSION,
    name: "DescribeAssetList",
};
pub const DESCRIBE_CONTROL_POLICY: Action = Action {
    ram: "yundun-cloudfirewall",
    version: cloudfw::VERSION,
    name: "DescribeControlPolicy",
};
pub const DESCRIBE_SUSP_EVENTS: Action = Action {
    ram: "yundun-sas",
    version: sas::VERSION,
    name: "DescribeSuspEvents",
};

/// Every action the agent can call (read-only, all of them).
pub const ACTIONS: &[Action] = &[
    DESCRIBE_INSTANCE_ATTRIBUTE,
    DESCRIBE_NETWORK_INTERFACES,
    DESCRIBE_SECURITY_GROUPS,
    DESCRIBE_SECURITY_GROUP_ATTRIBUTE,
    DESCRIBE_VSWITCH_ATTRIBUTES,
    DESCRIBE_NETWORK_ACL_ATTRIBUTES,
    DESCRIBE_ROUTE_ENTRY_LIST,
    LIST_IPV4_GATEWAYS,
    DESCRIBE_EIP_ADDRESSES,
    DESCRIBE_INSTANCE_IP_ADDRESS,
    DESCRIBE_DDOS_EVENT_LIST,
    DESCRIBE_ASSET_LIST,
    DESCRIBE_CONTROL_POLICY,
    DESCRIBE_SUSP_EVENTS,
];

/// How to give the instance a RAM role, for a `skipped` verdict.
pub const ATTACH_ROLE: &str = "attach a RAM role to the instance (console: Instance > More > Instance Settings > Attach/Detach RAM Role; or `aliyun ecs AttachInstanceRamRole --RegionId REGION --RamRoleName ROLE --InstanceIds '[\"INSTANCE\"]'`) whose policy allows the actions in /usr/share/ecs-diag/ram-policy.json";

/// The RAM role's keys, kept between diagnoses until shortly before they expire (the daemon
/// would otherwise fetch them on every refresh).
static ROLE_KEYS: Mutex<Option<Credentials>> = Mutex::new(None);

fn role_credentials(config: &Config) -> Result<Credentials, NoCredentials> {
    let now = time::OffsetDateTime::now_utc();
    if let Ok(held) = ROLE_KEYS.lock() {
        if let Some(c) = held.as_ref().filter(|c| !c.needs_refresh(now)) {
            return Ok(c.clone());
        }
    }
    let mut client = super::metadata::MetadataClient::new(&config.metadata);
    let fresh = Credentials::from_ram_role(&mut client)?;
    if let Ok(mut held) = ROLE_KEYS.lock() {
        *held = Some(fresh.clone());
    }
    Ok(fresh)
}

/// Reads the cloud side where `[cloud]` allows it: `auto` asks on Alibaba Cloud (`on_ecs`, from
/// DMI) with keys from the environment or an attached RAM role; `always` asks wherever the
/// metadata service answered; `never` does not ask. The region, instance, vSwitch and VPC come
/// from the metadata.
pub fn read(config: &Config, metadata: &MetadataState, on_ecs: Result<(), String>) -> CloudState {
    let not_probed = |reason: String| CloudState::NotProbed { reason };
    match (config.cloud.mode, on_ecs) {
        (CloudMode::Never, _) => {
            return not_probed("cloud.mode = \"never\" in the config".to_string())
        }
        (CloudMode::Auto, Err(why)) => {
            return not_probed(format!(
                "{why}; set cloud.mode = \"always\" to read the cloud side anyway"
            ))
        }
        _ => {}
    }
    let md = match metadata {
        MetadataState::Ok(m) => m,
        MetadataState::NotProbed { reason } => {
            return not_probed(format!(
                "the cloud API needs the instance's region and id from the metadata service, which was not asked ({reason})"
            ))
        }
        MetadataState::Failed { reason } => {
            return CloudState::Failed {
                reason: format!(
                    "the cloud API needs the instance's region and id from the metadata service: {reason}"
                ),
            }
        }
    };
    let (Some(region), Some(instance_id)) = (md.region_id.as_deref(), md.instance_id.as_deref())
    else {
        return CloudState::Failed {
            reason: "the metadata service names no region-id or instance-id".to_string(),
        };
    };
    let creds = match Credentials::from_env(|k| std::env::var(k).ok()) {
        Some(c) => c,
        None => match role_credentials(config) {
            Ok(c) => c,
            Err(NoCredentials::NoRole) => {
                return not_probed(format!(
                    "no RAM role is attached to the instance (the metadata service lists none) and no ALIBABA_CLOUD_ACCESS_KEY_ID is set: {ATTACH_ROLE}"
                ))
            }
            Err(NoCredentials::Failed(why)) => {
                return CloudState::Failed {
                    reason: format!("cannot read the RAM role's keys: {why}"),
                }
            }
        },
    };
    let place = facts::Place {
        region,
        instance_id,
        vpc_id: md.vpc_id.as_deref(),
        vswitch_id: md.vswitch_id.as_deref(),
        public_ip: md.eipv4.or(md.public_ipv4),
        private_ip: md.private_ipv4,
    };
    let endpoints = facts::Endpoints::of(&config.cloud.endpoints, region);
    let budget = openapi::Budget::new(Duration::from_millis(config.cloud.budget_ms));
    CloudState::Ok(facts::gather(
        &openapi::OpenApi::new(),
        &endpoints,
        &creds,
        &place,
        &budget,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped RAM policy grants exactly the actions the code can call: one missing would
    /// make its check `unknown` on every instance, one extra grants what is never used.
    #[test]
    fn the_ram_policy_grants_exactly_the_callable_actions() {
        let policy: serde_json::Value =
            serde_json::from_str(crate::checks::cloud::RAM_POLICY).unwrap();
        let mut granted: Vec<String> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().iter())
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let mut callable: Vec<String> = ACTIONS.iter().map(Action::permission).collect();
        granted.sort();
        callable.sort();
        assert_eq!(granted, callable);
        let read_only = |a: &String| {
            let name = a.split(':').nth(1).unwrap_or("");
            ["Describe", "List", "Get"]
                .iter()
                .any(|p| name.starts_with(p))
        };
        assert!(granted.iter().all(read_only), "{granted:?}");
    }
}
