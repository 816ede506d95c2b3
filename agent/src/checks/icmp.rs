//! `icmp.live`: do echo requests reach the kernel, and are they answered? From two samples of
//! `/proc/net/snmp` (InEchos, OutEchoReps): an earlier sample (`check --window`, the previous
//! refresh) or, with one sample, the counters since boot. Requests arriving unanswered point
//! inside the guest; none arriving points outside it (security group, network ACL, route,
//! blackhole filtering).

use serde_json::json;

use crate::report::Finding;
use crate::snapshot::{IcmpCounters, Snapshot};

pub const LIVE: &str = "icmp.live";

/// Console steps for a block outside the guest.
pub fn outside_steps() -> Vec<String> {
    vec![
        "security group: ECS console → instance → Security Groups → inbound rules must allow ICMP (IPv4) from the client, with no higher-priority deny".to_string(),
        "network ACL: VPC console → vSwitch of this instance → Network ACL → inbound and outbound rules must allow ICMP".to_string(),
        "EIP / public IP: check it is bound to this instance and not in a blackhole (Security Center / Anti-DDoS console shows blackhole filtering)".to_string(),
        "from the client: mtr -n <public-ip> to see where packets stop".to_string(),
    ]
}

pub fn live(s: &Snapshot) -> Finding {
    let now = match s.icmp.ok() {
        Ok(c) => c,
        Err(e) => return Finding::unknown(LIVE, format!("cannot read ICMP counters: {e}")),
    };
    let boot = IcmpCounters::default();
    let (before, since) = match &s.icmp_previous {
        Some(p) => (
            p,
            format!(
                "in the last {:.1} s",
                now.at_ms.saturating_sub(p.at_ms) as f64 / 1000.0
            ),
        ),
        None => (&boot, "since boot".to_string()),
    };
    let windowed = s.icmp_previous.is_some();
    if now.in_echos < before.in_echos || now.out_echo_reps < before.out_echo_reps {
        return Finding::unknown(LIVE, "the ICMP counters went backwards between samples (counter reset); judge again on the next sample")
            .evidence(json!({"before": before, "now": now}));
    }
    let requests = now.in_echos - before.in_echos;
    let replies = now.out_echo_reps - before.out_echo_reps;
    let rate_limited = match (now.out_rate_limit_host, before.out_rate_limit_host) {
        (Some(n), Some(b)) => Some(n.saturating_sub(b)),
        (Some(n), None) if !windowed => Some(n),
        _ => None,
    };
    let evidence = json!({
        "window": since, "echo_requests_in": requests, "echo_replies_out": replies,
        "rate_limited_host": rate_limited, "in_errors": now.in_errors.saturating_sub(before.in_errors),
    });
    if requests == 0 {
        if windowed {
            return Finding::skipped(LIVE, format!("no echo request arrived {since}: ping the public IP while `ecs-diag check --window 10` runs"))
                .evidence(evidence);
        }
        return Finding::warn(LIVE, "no echo request has reached this instance's kernel since boot: if you are pinging it, the packets are dropped before the guest (security group, network ACL, public IP binding or blackhole)")
            .evidence(evidence)
            .remedy(outside_steps());
    }
    if replies >= requests {
        return Finding::ok(
            LIVE,
            format!("{requests} echo request(s) arrived {since} and all were answered"),
        )
        .evidence(evidence);
    }
    let unanswered = requests - replies;
    let summary = format!("{unanswered} of {requests} echo request(s) arriving {since} went unanswered: the guest itself drops or ignores them");
    let remedy = vec![
        "see the failing sysctl.*, route.* and addr.* checks of this report for the cause"
            .to_string(),
        "live: ecs-diag check --window 10 while pinging from the client".to_string(),
    ];
    if windowed && replies == 0 {
        return Finding::fail(LIVE, summary)
            .evidence(evidence)
            .remedy(remedy);
    }
    Finding::warn(LIVE, summary)
        .evidence(evidence)
        .remedy(remedy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::report::Status;
    use crate::snapshot::Gathered;

    fn counters(at_ms: u64, in_echos: u64, out: u64) -> IcmpCounters {
        IcmpCounters {
            at_ms,
            in_echos,
            out_echo_reps: out,
            ..Default::default()
        }
    }

    fn samples(before: Option<IcmpCounters>, now: IcmpCounters) -> impl FnOnce(&mut Snapshot) {
        move |s| {
            s.icmp = Gathered::Ok(now);
            s.icmp_previous = before;
        }
    }

    #[test]
    fn since_boot() {
        assert_eq!(judge(live, |_| {}).status, Status::Ok);
        let f = judge(live, samples(None, counters(0, 0, 0)));
        assert_eq!(f.status, Status::Warn);
        assert!(f.summary.contains("since boot"));
        assert!(f.remedy[0].contains("security group"));
        let f = judge(live, samples(None, counters(0, 10, 4)));
        assert_eq!(f.status, Status::Warn);
        assert!(f.summary.starts_with("6 of 10"), "{}", f.summary);
    }

    #[test]
    fn windowed() {
        let f = judge(
            live,
            samples(Some(counters(0, 10, 4)), counters(5000, 15, 9)),
        );
        assert_eq!(f.status, Status::Ok);
        assert!(f.summary.contains("last 5.0 s"), "{}", f.summary);
        assert_eq!(
            judge(
                live,
                samples(Some(counters(0, 10, 4)), counters(5000, 15, 4))
            )
            .status,
            Status::Fail
        );
        assert_eq!(
            judge(
                live,
                samples(Some(counters(0, 10, 4)), counters(5000, 15, 6))
            )
            .status,
            Status::Warn
        );
        assert_eq!(
            judge(
                live,
                samples(Some(counters(0, 10, 4)), counters(5000, 10, 4))
            )
            .status,
            Status::Skipped
        );
        assert_eq!(
            judge(
                live,
                samples(Some(counters(0, 10, 4)), counters(5000, 3, 4))
            )
            .status,
            Status::Unknown
        );
        assert_eq!(
            judge(live, |s| s.icmp = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }
}
