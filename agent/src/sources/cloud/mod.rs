//! The cloud side: credentials from the instance RAM role (or the `ALIBABA_CLOUD_*`
//! variables), the ACS3-HMAC-SHA256 signature, bounded read-only OpenAPI calls over HTTPS, and
//! the facts the `cloud.*` checks judge, gathered in two parallel rounds under `[cloud]`'s
//! budget. [`read`] decides whether to ask at all.

pub mod antiddos;
pub mod credentials;
pub mod ecs;
pub mod facts;
#[cfg(test)]
pub(crate) mod fake;
pub mod openapi;
pub mod received;
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
