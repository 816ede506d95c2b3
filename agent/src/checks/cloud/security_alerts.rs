//! `cloud.security_alerts`: Security Center's unhandled alerts for this instance in the last 7
//! days (DescribeSuspEvents, levels serious and suspicious, not dealt with): an urgent
//! (`serious`) one fails, a suspicious one warns, each named with its time and where to read
//! it. A compromised instance is the seed's last cause, and the platform penalises one that
//! attacks others (its traffic is cut), so the in-guest signs of an outbound flood — the
//! connection-tracking table's fill — are shown beside it as evidence. Skipped where Security
//! Center is not in use or the RAM role may not read it (naming the action).

use serde_json::json;

use super::firewall::shown;
use super::{facts, SECURITY_ALERTS};
use crate::report::Finding;
use crate::snapshot::{Gathered, Snapshot};

const CONSOLE: &str = "Security Center console → Threat Analysis and Response → Alerts (https://yundun.console.aliyun.com/?p=sas)";

pub fn judge(s: &Snapshot) -> Finding {
    let f = match facts(s, SECURITY_ALERTS) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let alerts = match &f.security_alerts {
        Gathered::Ok(a) => a,
        Gathered::Failed(why) => {
            return super::optional_part_failed(SECURITY_ALERTS, why, "Security Center")
        }
    };
    let conntrack = s
        .conntrack
        .ok()
        .ok()
        .and_then(|c| c.as_ref())
        .map(|c| json!({"entries": c.count, "max": c.max, "fill_percent": (c.count * 100).checked_div(c.max).unwrap_or(0)}));
    let listed: Vec<_> = alerts
        .iter()
        .map(|a| {
            json!({"name": shown(&a.name), "level": a.level, "last_time": a.last_time, "id": a.id, "event_status": a.status})
        })
        .collect();
    let evidence = json!({"alerts": listed, "window_days": 7, "conntrack": conntrack});
    let describe = |level: &str| {
        alerts
            .iter()
            .filter(|a| a.level == level)
            .map(|a| {
                format!(
                    "{} (last {})",
                    shown(&a.name),
                    a.last_time.as_deref().unwrap_or("time not given")
                )
            })
            .collect::<Vec<_>>()
    };
    let (serious, suspicious) = (describe("serious"), describe("suspicious"));
    let remedy = [
        format!("read and handle each alert: {CONSOLE}"),
        "if the instance attacked others, the platform may cut its traffic: isolate it, find the process (Security Center's alert names it), remove it, rotate the keys and passwords it held, and open a ticket to lift the penalty".to_string(),
    ];
    if !serious.is_empty() {
        Finding::fail(
            SECURITY_ALERTS,
            format!(
                "Security Center has {} unhandled urgent alert(s) for this instance in the last 7 days: {}",
                serious.len(),
                serious.join("; ")
            ),
        )
        .evidence(evidence)
        .remedy(remedy)
    } else if !suspicious.is_empty() {
        Finding::warn(
            SECURITY_ALERTS,
            format!(
                "Security Center has {} unhandled suspicious alert(s) for this instance in the last 7 days: {}",
                suspicious.len(),
                suspicious.join("; ")
            ),
        )
        .evidence(evidence)
        .remedy(remedy)
    } else {
        Finding::ok(
            SECURITY_ALERTS,
            "Security Center has no unhandled urgent or suspicious alert for this instance in the last 7 days",
        )
        .evidence(evidence)
    }
}
