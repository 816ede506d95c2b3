//! ecs-diag: tells an ECS instance's owner, with evidence, why its public IP cannot be pinged
//! or reached. Architecture (DESIGN.md): `sources` gather → [`snapshot::Snapshot`] →
//! `checks` judge (pure) → [`report::Report`] → CLI table / JSON.

pub mod checks;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod exit;
pub mod fix;
pub mod glob;
pub mod history;
pub mod http;
pub mod manual;
pub mod metrics;
pub mod report;
pub mod ruleset;
pub mod snapshot;
pub mod sources;
pub mod trace;
pub mod watch;

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Unix milliseconds as RFC 3339 in UTC.
pub fn rfc3339_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}
