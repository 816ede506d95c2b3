//! `cloud.security_alerts`: Security Center's unhandled alerts for this instance in the last 7
//! days (DescribeSuspEvents, levels serious and suspicious, not dealt with): an urgent
//! (`serious`) one fails, a suspicious one warns, each named with its time and where to read
//! it. A compromised instance is the seed's last cause, and the platform penalises one that
//! attacks others (its traffic is cut), so the in-guest signs of an outbound flood are shown
//! beside it as evidence: the outbound TCP connection rate (`/proc/net/snmp` ActiveOpens) over
//! the window against this instance's own average since boot, and the connection-tracking
//! table's fill. A rate far above the instance's normal is named in the summary; it never
//! decides the verdict alone (a backup or a crawler opens connections too). Skipped where Security
//! Center is not in use or the RAM role may not read it (naming the action).

use serde_json::json;

use super::firewall::shown;
use super::{facts, SECURITY_ALERTS};
use crate::report::Finding;
use crate::snapshot::{Gathered, IcmpCounters, Snapshot};

/// A window's outbound connection rate this many times the since-boot average, and at least
/// this many per second, is "far above normal".
const FLOOD_FACTOR: f64 = 10.0;
const FLOOD_MIN_PER_S: f64 = 50.0;

/// Outbound TCP connections: since boot, the average rate since boot, the rate over the window
/// (with an earlier sample), and the sign, when the window's rate is far above the average.
pub fn outbound_connections(
    now: &IcmpCounters,
    earlier: Option<&IcmpCounters>,
) -> Option<(serde_json::Value, Option<String>)> {
    let opens = now.tcp_active_opens?;
    let average = now
        .uptime_ms
        .filter(|ms| *ms >= 60_000)
        .map(|ms| opens as f64 / (ms as f64 / 1000.0));
    let window = earlier.and_then(|e| {
        let before = e.tcp_active_opens?;
        let secs = (now.at_ms > e.at_ms).then(|| (now.at_ms - e.at_ms) as f64 / 1000.0)?;
        Some((opens.checked_sub(before)? as f64 / secs, secs))
    });
    let sign = match (window, average) {
        (Some((rate, secs)), Some(avg)) if rate >= FLOOD_MIN_PER_S && rate >= avg * FLOOD_FACTOR => {
            Some(format!(
                "the guest opened outbound TCP connections at {rate:.0}/s over the last {secs:.1} s, {:.0}× its average since boot ({avg:.1}/s): a sign of a scan or an outbound attack",
                rate / avg.max(0.01)
            ))
        }
        _ => None,
    };
    let round = |x: f64| (x * 10.0).round() / 10.0;
    Some((
        json!({
            "since_boot": opens,
            "average_per_s_since_boot": average.map(round),
            "per_s_over_window": window.map(|(r, _)| round(r)),
            "far_above_normal": sign.is_some(),
        }),
        sign,
    ))
}

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
    let outbound = s.icmp.ok().ok().and_then(|now| {
        let earlier = s.earlier.as_ref().and_then(|e| e.icmp.as_ref());
        outbound_connections(now, earlier)
    });
    let sign = outbound.as_ref().and_then(|(_, sign)| sign.clone());
    let evidence = json!({"alerts": listed, "window_days": 7, "conntrack": conntrack,
                          "outbound_tcp_connections": outbound.map(|(v, _)| v)});
    let and_sign = sign.map(|s| format!("; {s}")).unwrap_or_default();
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
            ) + &and_sign,
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
            ) + &and_sign,
        )
        .evidence(evidence)
        .remedy(remedy)
    } else {
        Finding::ok(
            SECURITY_ALERTS,
            format!("Security Center has no unhandled urgent or suspicious alert for this instance in the last 7 days{and_sign}"),
        )
        .evidence(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(at_ms: u64, opens: u64, uptime_s: u64) -> IcmpCounters {
        IcmpCounters {
            at_ms,
            tcp_active_opens: Some(opens),
            uptime_ms: Some(uptime_s * 1000),
            ..Default::default()
        }
    }

    #[test]
    fn an_outbound_flood_is_far_above_the_instances_normal() {
        // A day at 1 connection/s, then 2,000 in 2 s.
        let before = counters(1_000_000, 86_400, 86_400);
        let flood = counters(1_002_000, 88_400, 86_402);
        let (v, sign) = outbound_connections(&flood, Some(&before)).unwrap();
        assert_eq!(v["per_s_over_window"], 1000.0);
        let sign = sign.unwrap();
        assert!(
            sign.contains("1000/s") && sign.contains("scan or an outbound attack"),
            "{sign}"
        );
        // The same rate on a box that always works that hard is its normal.
        let busy_before = counters(1_000_000, 86_400_000, 86_400);
        let busy = counters(1_002_000, 86_402_000, 86_402);
        assert_eq!(
            outbound_connections(&busy, Some(&busy_before)).unwrap().1,
            None
        );
        // One sample: counts since boot, no judgement; no counter: nothing.
        let (v, sign) = outbound_connections(&flood, None).unwrap();
        assert_eq!((v["since_boot"].as_u64(), sign), (Some(88_400), None));
        assert!(outbound_connections(&IcmpCounters::default(), None).is_none());
    }
}
