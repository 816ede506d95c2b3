//! `icmp.live`: do echo requests reach the kernel, and are they answered? From two samples of
//! `/proc/net/snmp` (InEchos, OutEchoReps): an earlier sample (`check --window`, the previous
//! refresh) or, with one sample, the counters since boot. Requests arriving unanswered point
//! inside the guest; none arriving points outside it (security group, network ACL, route,
//! blackhole filtering). [`attribute`] is that judgement, shared with `ecs-diag watch`, which
//! adds packet capture, firewall rule counters and nftables traces to the same evidence.

use serde::Serialize;
use serde_json::json;

use crate::checks::firewall::{ECHO_IN, ECHO_OUT};
use crate::checks::{Cause, Check, Context};
use crate::report::{Finding, Subject};
use crate::snapshot::Snapshot;

pub const LIVE: &str = "icmp.live";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: LIVE,
        decides: "echo requests reach the kernel and are answered: /proc/net/snmp InEchos against OutEchoReps over a window (check --window, serve); counts since boot are reported, not judged",
        evidence: &["/proc/net/snmp and /proc/net/snmp6 ICMP counters (over the window, else since boot)", "firewall.icmp_in's verdict, when it drops echo requests"],
        causes: &[
            Cause { id: "echo_unanswered", cause: "requests arrive but are not answered", remedy: "the guest drops or ignores them: see the failing sysctl.*, route.* and firewall.* checks; ecs-diag watch" },
            Cause { id: "echo_not_arriving", cause: "no request arrives", remedy: "outside the guest: security group, network ACL, public IP binding or blackhole filtering; mtr from the client" },
        ],
        judge: |s, c| live(s, c),
    },
];

/// Console steps for a block outside the guest.
/// The checks that can stop an echo request from being answered: `watch` names these (and no
/// other warnings) as the guest's reasons.
pub const ECHO_PATH: &[&str] = &[
    "link.primary",
    "addr.primary",
    "route.default",
    "route.reply",
    "neigh.gateway",
    "sysctl.icmp_echo",
    "sysctl.icmp_echo6",
    "sysctl.rp_filter",
    "sysctl.icmp_ratelimit",
    "firewall.icmp_in",
    "firewall.icmp_out",
    "firewall.icmp6",
    "net.drops",
    "net.conntrack",
];

pub fn outside_steps() -> Vec<String> {
    vec![
        "security group: ECS console → instance → Security Groups → inbound rules must allow ICMP (IPv4) from the client, with no higher-priority deny".to_string(),
        "network ACL: VPC console → vSwitch of this instance → Network ACL → inbound and outbound rules must allow ICMP".to_string(),
        "EIP / public IP: check it is bound to this instance and not in a blackhole (Security Center / Anti-DDoS console shows blackhole filtering)".to_string(),
        "from the client: mtr -n <public-ip> to see where packets stop".to_string(),
    ]
}

/// Where echo requests stop: the three answers `watch` and `icmp.live` give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// They arrive and are answered: the problem is on the way back or at the client.
    Answered,
    /// They arrive and (some) go unanswered: the guest drops or ignores them.
    ArrivingNotAnswered,
    /// None arrives: the block is outside the guest.
    NotArriving,
}

/// What was counted over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EchoEvidence {
    /// `in the last 10.0 s`, `since boot`.
    pub window: String,
    /// Requests seen on the interfaces, before the firewall (packet capture); None: no capture.
    pub requests_on_wire: Option<u64>,
    /// Requests the ICMP layer counted (`InEchos`): past the firewall.
    pub requests_reached_icmp: u64,
    /// Replies the ICMP layer sent (`OutEchoReps`).
    pub replies_sent: u64,
    /// Replies seen leaving an interface (after the OUTPUT firewall and the qdisc).
    pub replies_on_wire: Option<u64>,
    /// Firewall rules (or traced verdicts) that dropped echo packets in the window, or, without
    /// live evidence, the rule the ruleset says drops them.
    pub dropped_by: Vec<String>,
    /// The failing `cloud.*` verdicts (security group, network ACL, route, public IP,
    /// blackhole): named instead of the inference "outside the guest" when nothing arrives.
    pub cloud_blocks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribution {
    pub arrival: Arrival,
    pub requests: u64,
    pub replies: u64,
    pub summary: String,
    /// Where they stop and what to do, most specific first.
    pub steps: Vec<String>,
}

/// Console and command steps when echo requests arrive and are answered.
pub fn path_steps() -> Vec<String> {
    vec![
        "the instance answers: the replies are lost on the way back or the client filters them".to_string(),
        "from the client: mtr -n <public-ip>   (where do the probes stop?)".to_string(),
        "from this instance: ecs-diag trace --client <client-ip>   (the return path, hop by hop: where loss starts, which router only rate-limits)".to_string(),
        "check the client's own firewall and its network's ICMP policy; try another client or network".to_string(),
    ]
}

/// The verdict from the evidence; `guest_causes` are the failing checks' summaries (why the
/// guest does not answer).
pub fn attribute(e: &EchoEvidence, guest_causes: &[String]) -> Attribution {
    let requests = e.requests_on_wire.unwrap_or(0).max(e.requests_reached_icmp);
    let replies = e.replies_on_wire.unwrap_or(e.replies_sent);
    let since = &e.window;
    if requests == 0 {
        let mut steps = Vec::new();
        let mut summary = format!("no echo request reached this instance {since}");
        if !e.dropped_by.is_empty() {
            summary.push_str(&format!(
                ", but the guest firewall would drop them before they are counted ({}): fix that first",
                e.dropped_by.join("; ")
            ));
            steps.extend(e.dropped_by.iter().map(|d| format!("guest firewall: {d}")));
        } else if !e.cloud_blocks.is_empty() {
            summary.push_str(&format!(
                ": the cloud side stops them: {}",
                e.cloud_blocks.join("; ")
            ));
            steps.extend(e.cloud_blocks.iter().cloned());
        } else {
            summary.push_str(": they are dropped before the guest (security group, network ACL, route to the public IP, or blackhole filtering)");
        }
        steps.extend(outside_steps());
        return Attribution {
            arrival: Arrival::NotArriving,
            requests,
            replies,
            summary,
            steps,
        };
    }
    if replies >= requests {
        return Attribution {
            arrival: Arrival::Answered,
            requests,
            replies,
            summary: format!("{requests} echo request(s) arrived {since} and all were answered"),
            steps: path_steps(),
        };
    }
    let unanswered = requests - replies;
    let mut summary =
        format!("{unanswered} of {requests} echo request(s) arriving {since} went unanswered");
    let mut steps = Vec::new();
    if let Some(wire) = e.requests_on_wire {
        if wire > e.requests_reached_icmp {
            summary.push_str(&format!(
                "; {} arrived on the interface but never reached the ICMP layer (dropped by the firewall, reverse-path filter or a full backlog)",
                wire - e.requests_reached_icmp
            ));
        }
    }
    if e.requests_reached_icmp > e.replies_sent {
        summary.push_str(&format!(
            "; the kernel answered {} of the {} it received (icmp_echo_ignore_all, rate limit)",
            e.replies_sent, e.requests_reached_icmp
        ));
    }
    if let Some(out) = e.replies_on_wire {
        if e.replies_sent > out {
            summary.push_str(&format!(
                "; {} replies were sent but never left the interface (OUTPUT firewall, qdisc)",
                e.replies_sent - out
            ));
        }
    }
    if !e.dropped_by.is_empty() {
        summary.push_str(&format!("; dropped by {}", e.dropped_by.join("; ")));
        steps.extend(e.dropped_by.iter().map(|d| format!("guest firewall: {d}")));
    }
    steps.extend(guest_causes.iter().cloned());
    Attribution {
        arrival: Arrival::ArrivingNotAnswered,
        requests,
        replies,
        summary,
        steps,
    }
}

/// The guest firewall's own verdict on an echo request, when it drops one: ICMP counters never
/// see such requests, so "none arrived" must not be blamed on the outside.
fn static_firewall_drop(ctx: &Context) -> Vec<String> {
    match ctx.finding(crate::checks::firewall::ICMP_IN) {
        Some(f) if f.status == crate::report::Status::Fail => vec![f.summary.clone()],
        _ => Vec::new(),
    }
}

pub fn live(s: &Snapshot, ctx: &Context) -> Finding {
    let now = match s.icmp.ok() {
        Ok(c) => c,
        Err(e) => return Finding::unknown(LIVE, format!("cannot read ICMP counters: {e}")),
    };
    // The earlier sample's counters; `icmp_previous` is where snapshots recorded them before
    // there was an earlier sample (replays of those still work).
    let previous = s
        .earlier
        .as_ref()
        .and_then(|e| e.icmp.as_ref())
        .or(s.icmp_previous.as_ref());
    let windowed = previous.is_some();
    let (counts, since) = match previous {
        Some(p) => (
            now.since(p),
            format!(
                "in the last {:.1} s",
                now.at_ms.saturating_sub(p.at_ms) as f64 / 1000.0
            ),
        ),
        None => (Some(now.since_boot()), "since boot".to_string()),
    };
    let Some(counts) = counts else {
        return Finding::unknown(LIVE, "the ICMP counters went backwards between samples (counter reset); judge again on the next sample")
            .evidence(json!({"before": previous, "now": now}));
    };
    let (requests, replies) = (counts.requests, counts.replies);
    let e = EchoEvidence {
        window: since.clone(),
        requests_reached_icmp: requests,
        replies_sent: replies,
        // Only needed to explain "none arrived"; the walk is not repeated otherwise.
        dropped_by: if requests == 0 {
            static_firewall_drop(ctx)
        } else {
            Vec::new()
        },
        cloud_blocks: crate::checks::cloud::blocking(ctx.earlier),
        ..Default::default()
    };
    let a = attribute(&e, &[]);
    let evidence = json!({
        "window": since, "echo_requests_in": requests, "echo_replies_out": replies,
        "rate_limited_host": counts.rate_limited_host, "in_errors": counts.in_errors,
        "verdict": a.arrival, "firewall_drops": e.dropped_by, "cloud_blocks": e.cloud_blocks,
    });
    match a.arrival {
        // The firewall in force now drops them: that is a present cause, whatever the window.
        Arrival::NotArriving if !e.dropped_by.is_empty() => Finding::warn(LIVE, a.summary).cause("echo_not_arriving")
            .evidence(evidence)
            .remedy(a.steps)
            .relies_on([Subject::FirewallPath(ECHO_IN)]),
        // The cloud side proves why none arrives: named, not inferred.
        Arrival::NotArriving if !e.cloud_blocks.is_empty() => Finding::warn(LIVE, a.summary).cause("echo_not_arriving")
            .evidence(evidence)
            .remedy(a.steps),
        Arrival::NotArriving if windowed => Finding::skipped(
            LIVE,
            format!("no echo request arrived {since}: ping the public IP while `ecs-diag watch` runs"),
        )
        .evidence(evidence),
        // Nobody pinging a healthy box is not a problem: nothing to judge.
        Arrival::NotArriving => Finding::skipped(
            LIVE,
            "no echo request has reached this instance's kernel since boot: nothing to judge (if you are pinging it, run `ecs-diag watch` meanwhile: it tells whether they are dropped before the guest)",
        )
        .evidence(evidence),
        // Since boot, unanswered requests may have a cause fixed long ago: report the counts,
        // judge only a window.
        _ if !windowed => Finding::ok(
            LIVE,
            format!(
                "since boot {requests} echo request(s) arrived and {replies} were answered (counts since boot judge nothing now: `ecs-diag check --window 10` while pinging, or `ecs-diag watch`)"
            ),
        )
        .evidence(evidence),
        Arrival::Answered => Finding::ok(LIVE, a.summary).evidence(evidence),
        Arrival::ArrivingNotAnswered => {
            let summary = format!("{}: the guest itself drops or ignores them", a.summary);
            let remedy = vec![
                "see the failing sysctl.*, route.* and firewall.* checks of this report for the cause"
                    .to_string(),
                "live: ecs-diag watch --seconds 20 while pinging from the client".to_string(),
            ];
            let f = if replies == 0 {
                Finding::fail(LIVE, summary).cause("echo_unanswered")
            } else {
                Finding::warn(LIVE, summary).cause("echo_unanswered")
            };
            // Arriving and unanswered: the echo sysctl, the firewall on either way, the reply
            // route and the link it leaves by are each enough.
            f.evidence(evidence)
                .remedy(remedy)
                .relies_on([
                    Subject::Sysctl("net.ipv4.icmp_echo_ignore_all".into()),
                    Subject::FirewallPath(ECHO_IN),
                    Subject::FirewallPath(ECHO_OUT),
                    Subject::ReplyRoute(4),
                    Subject::DefaultRoute(4),
                ])
                .relies_on(super::primary_link(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    /// `icmp.live` on a fixture changed by `edit`, judged after the checks before it (it reads
    /// `firewall.icmp_in`'s finding).
    fn judge_live(edit: impl FnOnce(&mut Snapshot)) -> Finding {
        let mut s = healthy();
        edit(&mut s);
        crate::checks::evaluate(&s, &criteria())
            .into_iter()
            .find(|f| f.id == LIVE)
            .unwrap()
    }
    use crate::report::Status;
    use crate::snapshot::{Gathered, IcmpCounters};

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
        assert_eq!(judge_live(|_| {}).status, Status::Ok);
        // Never pinged: a healthy box, nothing to judge (exit 0), the fact as evidence.
        let f = judge_live(samples(None, counters(0, 0, 0)));
        assert_eq!(f.status, Status::Skipped);
        assert!(f.summary.contains("since boot"), "{}", f.summary);
        assert_eq!(f.evidence["echo_requests_in"], 0);
        assert_eq!(f.evidence["window"], "since boot");
        // Unanswered since boot may be a cause fixed long ago: counts reported, not judged.
        let f = judge_live(samples(None, counters(0, 10, 4)));
        assert_eq!(f.status, Status::Ok);
        assert!(
            f.summary
                .starts_with("since boot 10 echo request(s) arrived and 4 were answered"),
            "{}",
            f.summary
        );
        assert!(f.summary.contains("--window"), "{}", f.summary);
    }

    fn evidence(wire: Option<u64>, icmp: u64, sent: u64, out: Option<u64>) -> EchoEvidence {
        EchoEvidence {
            window: "in the last 10.0 s".into(),
            requests_on_wire: wire,
            requests_reached_icmp: icmp,
            replies_sent: sent,
            replies_on_wire: out,
            dropped_by: vec![],
            cloud_blocks: vec![],
        }
    }

    #[test]
    fn attribution_verdicts() {
        let a = attribute(&evidence(Some(5), 5, 5, Some(5)), &[]);
        assert_eq!(a.arrival, Arrival::Answered);
        assert!(a.steps.iter().any(|s| s.contains("mtr")));
        let a = attribute(&evidence(Some(0), 0, 0, Some(0)), &[]);
        assert_eq!(a.arrival, Arrival::NotArriving);
        assert!(a.steps.iter().any(|s| s.contains("security group")));
        // Seen on the wire, never counted by ICMP: dropped in between, and the rule is named.
        let mut e = evidence(Some(5), 0, 0, Some(0));
        e.dropped_by = vec!["filter INPUT #1 `-A INPUT -p icmp -j DROP`".into()];
        let a = attribute(&e, &["firewall.icmp_in (fail): ...".to_string()]);
        assert_eq!(a.arrival, Arrival::ArrivingNotAnswered);
        assert!(
            a.summary.contains("never reached the ICMP layer"),
            "{}",
            a.summary
        );
        assert!(
            a.summary.contains("-A INPUT -p icmp -j DROP"),
            "{}",
            a.summary
        );
        assert_eq!(a.steps.len(), 2);
        // Counted and answered by the kernel, but the replies never left: OUTPUT or qdisc.
        let a = attribute(&evidence(Some(4), 4, 4, Some(0)), &[]);
        assert_eq!(a.arrival, Arrival::ArrivingNotAnswered);
        assert!(
            a.summary.contains("never left the interface"),
            "{}",
            a.summary
        );
        // The kernel ignored them (icmp_echo_ignore_all).
        let a = attribute(&evidence(None, 4, 0, None), &[]);
        assert!(a.summary.contains("answered 0 of the 4"), "{}", a.summary);
        // No capture: the kernel counters alone.
        assert_eq!(
            attribute(&evidence(None, 3, 3, None), &[]).arrival,
            Arrival::Answered
        );
    }

    #[test]
    fn a_firewall_that_drops_before_counting_is_not_blamed_on_the_outside() {
        let f = judge_live(|s| {
            samples(None, counters(0, 0, 0))(s);
            s.firewall = Gathered::Ok(std::sync::Arc::new(vec![crate::snapshot::Ruleset {
                not_read: None,
                nat: None,
                backend: "nft".into(),
                family: "ipv4".into(),
                tool: "iptables-nft-save".into(),
                tables: Gathered::Ok(
                    crate::ruleset::iptables::parse_save(
                        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p icmp -j DROP\nCOMMIT\n",
                    )
                    .unwrap(),
                ),
            }]));
        });
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary.contains("guest firewall would drop them"),
            "{}",
            f.summary
        );
        // The firewall finding is the cause: its remedy first, then this one's own steps.
        assert_eq!(f.caused_by, ["firewall.icmp_in"]);
        assert!(
            f.remedy[0].starts_with("first fix firewall.icmp_in: iptables -I INPUT 1"),
            "{:?}",
            f.remedy
        );
        assert!(f.remedy[1].starts_with("guest firewall"), "{:?}", f.remedy);
    }

    #[test]
    fn the_earlier_sample_supplies_the_earlier_counters() {
        let f = judge_live(|s| {
            s.icmp = Gathered::Ok(counters(5000, 15, 4));
            s.earlier = Some(Box::new(crate::snapshot::Sample {
                icmp: Some(counters(0, 10, 4)),
                ..Default::default()
            }));
        });
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(f.summary.contains("last 5.0 s"), "{}", f.summary);
    }

    #[test]
    fn windowed() {
        let f = judge_live(samples(Some(counters(0, 10, 4)), counters(5000, 15, 9)));
        assert_eq!(f.status, Status::Ok);
        assert!(f.summary.contains("last 5.0 s"), "{}", f.summary);
        assert_eq!(
            judge_live(samples(Some(counters(0, 10, 4)), counters(5000, 15, 4))).status,
            Status::Fail
        );
        assert_eq!(
            judge_live(samples(Some(counters(0, 10, 4)), counters(5000, 15, 6))).status,
            Status::Warn
        );
        assert_eq!(
            judge_live(samples(Some(counters(0, 10, 4)), counters(5000, 10, 4))).status,
            Status::Skipped
        );
        assert_eq!(
            judge_live(samples(Some(counters(0, 10, 4)), counters(5000, 3, 4))).status,
            Status::Unknown
        );
        assert_eq!(
            judge_live(|s| s.icmp = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }
}
