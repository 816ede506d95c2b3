//! `net.drops`, `net.conntrack`: is the guest dropping packets itself — a queueing discipline
//! that drops (everything), interface drops and errors, softnet backlog overflow — or is the
//! connection-tracking table full (new flows, pings included, are then dropped)? Evidence:
//! netlink tc and link statistics, `/proc/net/softnet_stat`, nf_conntrack counters. Counters
//! are judged over the window between two samples (`check --window`, refreshes in `serve`), or
//! since the interface (or boot) began with one sample. `net.bandwidth`: throughput against the
//! instance's bandwidth limit.

use serde_json::json;

use crate::checks::from_reasons;
use crate::checks::{Cause, Check, Criteria};
use crate::report::{Finding, Subject};
use crate::snapshot::{Link, LinkStats, Qdisc, Snapshot, SoftnetCpu};

pub const BANDWIDTH: &str = "net.bandwidth";
pub const DROPS: &str = "net.drops";
pub const CONNTRACK: &str = "net.conntrack";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: BANDWIDTH,
        decides: "throughput in each direction stays below the instance's bandwidth limit",
        evidence: &["netlink link byte counters over the window", "limits.bandwidth_mbps, else the metadata's instance/max-netbw-egress and -ingress (Kbit/s)", "threshold bandwidth_pct"],
        causes: &[
            Cause { id: "bandwidth_at_limit", cause: "traffic at the bandwidth limit: packets, pings included, are dropped by the cloud", remedy: "find the traffic (iftop, nethogs); raise the bandwidth or change the instance type" },
        ],
        judge: |s, c| bandwidth(s, c.criteria),
    },
    Check {
        id: DROPS,
        decides: "the guest does not drop packets itself: qdisc drops, interface drops and errors, softnet backlog overflow",
        evidence: &["netlink tc qdisc statistics", "netlink link statistics", "/proc/net/softnet_stat"],
        causes: &[
            Cause { id: "qdisc_drops", cause: "a qdisc drops packets (or everything)", remedy: "tc -s qdisc show dev IF; tc qdisc del dev IF root" },
            Cause { id: "interface_drops", cause: "interface drops or errors", remedy: "ip -s link show dev IF; ethtool -S IF" },
            Cause { id: "softnet_backlog_overflow", cause: "softnet backlog overflow", remedy: "sysctl -w net.core.netdev_max_backlog=10000" },
        ],
        judge: |s, c| drops(s, c.criteria),
    },
    Check {
        id: CONNTRACK,
        decides: "the connection-tracking table is not full and does not drop new flows",
        evidence: &["nf_conntrack count and max", "conntrack drop, early_drop and insert_failed counters"],
        causes: &[
            Cause { id: "conntrack_full", cause: "the conntrack table is (nearly) full", remedy: "sysctl -w net.netfilter.nf_conntrack_max=N (persist it in /etc/sysctl.d)" },
        ],
        judge: |s, c| conntrack(s, c.criteria),
    },
];

/// The counters judged: their increase over the window (`check --window`, between refreshes),
/// or, with one sample, their totals since each interface or qdisc began.
struct Counters {
    since: String,
    links: Vec<(Link, Option<LinkStats>)>,
    qdiscs: Vec<Qdisc>,
    softnet_dropped: Option<u64>,
    time_squeeze: Option<u64>,
    /// Interfaces whose counters went backwards or that vanished: not judged.
    not_compared: Vec<String>,
}

/// Each link's counter increase against the earlier sample. A link (index and name) absent
/// from it appeared within the window, so its totals are all within the window.
fn link_counters(
    links: &[Link],
    earlier: Option<&[Link]>,
) -> (Vec<(Link, Option<LinkStats>)>, Vec<String>) {
    // Links without statistics are listed with None.
    let mut out = Vec::new();
    let mut not_compared = Vec::new();
    for l in links.iter().filter(|l| !l.loopback) {
        let Some(now) = &l.stats else {
            out.push((l.clone(), None));
            continue;
        };
        let before = earlier.and_then(|e| {
            e.iter()
                .find(|b| b.index == l.index && b.name == l.name)
                .and_then(|b| b.stats.as_ref())
        });
        match before {
            None => out.push((l.clone(), Some(now.clone()))),
            Some(b) => match now.since(b) {
                Some(d) => out.push((l.clone(), Some(d))),
                None => not_compared.push(format!("{}: counters went backwards (reset)", l.name)),
            },
        }
    }
    if let Some(e) = earlier {
        for b in e.iter().filter(|b| !b.loopback) {
            if !links.iter().any(|l| l.index == b.index && l.name == b.name) {
                not_compared.push(format!("{}: vanished within the window", b.name));
            }
        }
    }
    (out, not_compared)
}

fn counters(s: &Snapshot, links: &[Link], qdiscs: &[Qdisc]) -> Counters {
    let earlier = s.earlier.as_deref();
    let window = earlier.and_then(|e| e.seconds_to(s.at_ms));
    let (earlier_links, since) = match (earlier, window) {
        (Some(e), Some(w)) if e.links.is_some() => {
            (e.links.as_deref(), format!("in the last {w:.1} s"))
        }
        _ => (None, "since each interface came up".to_string()),
    };
    let (links, not_compared) = link_counters(links, earlier_links);
    let earlier_qdiscs = earlier_links.and(earlier.and_then(|e| e.qdiscs.as_deref()));
    let qdiscs = qdiscs
        .iter()
        .filter_map(|q| {
            let before = earlier_qdiscs.and_then(|e| {
                e.iter()
                    .find(|b| b.ifindex == q.ifindex && b.parent == q.parent && b.kind == q.kind)
            });
            match before {
                // New within the window (or one sample): its totals are what it did.
                None => Some(q.clone()),
                Some(b) => q.since(b),
            }
        })
        .collect();
    let softnet = s.softnet.ok().ok();
    let earlier_softnet = earlier_links.and(earlier.and_then(|e| e.softnet.as_deref()));
    let softnet_sum = |f: fn(&SoftnetCpu) -> u64| {
        softnet.map(|now| {
            now.iter()
                .enumerate()
                .map(|(i, c)| match earlier_softnet.and_then(|e| e.get(i)) {
                    Some(b) => f(&c.since(b)),
                    None => f(c),
                })
                .sum::<u64>()
        })
    };
    Counters {
        since,
        links,
        qdiscs,
        softnet_dropped: softnet_sum(|c| c.dropped),
        time_squeeze: softnet_sum(|c| c.time_squeeze),
        not_compared,
    }
}

pub fn drops(s: &Snapshot, c: &Criteria) -> Finding {
    let (Ok(links), Ok(qdiscs)) = (s.links.ok(), s.qdiscs.ok()) else {
        let why = [s.links.ok().err(), s.qdiscs.ok().err()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
        return Finding::unknown(
            DROPS,
            format!("cannot read interface or qdisc statistics: {why}"),
        );
    };
    let th = &c.thresholds;
    let c = counters(s, links, qdiscs);
    let since = &c.since;
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut remedy = Vec::new();
    let mut seen = Vec::new();
    // A qdisc that drops everything is an attribute of the link (link.primary judges it).
    let mut dropping_links = Vec::new();
    // The cause of each reason, in the order found (the first names the finding's cause).
    let mut causes: Vec<&'static str> = Vec::new();
    for (l, st) in &c.links {
        for q in c
            .qdiscs
            .iter()
            .filter(|q| q.ifindex == l.index && q.drops > 0)
        {
            seen.push(json!({"interface": l.name, "qdisc": q.kind, "parent": q.parent, "sent": q.packets, "dropped": q.drops, "overlimits": q.overlimits}));
            let total = q.packets + q.drops;
            if q.packets == 0 {
                causes.push("qdisc_drops");
                fails.push(format!(
                    "qdisc {} ({}) on {} dropped every packet it was given {since} ({} dropped, 0 sent)",
                    q.kind, q.parent, l.name, q.drops
                ));
                remedy.push(format!("tc -s qdisc show dev {}; tc qdisc del dev {} root   (back to the default qdisc)", l.name, l.name));
                dropping_links.push(Subject::Link(l.name.clone()));
            } else if q.drops as f64 * 100.0 / total as f64 >= th.link_drops_pct {
                causes.push("qdisc_drops");
                warns.push(format!(
                    "qdisc {} on {} dropped {} of {} packets {since}",
                    q.kind, l.name, q.drops, total
                ));
                remedy.push(format!(
                    "tc -s qdisc show dev {}: a shaping qdisc's rate or a queue limit is too low",
                    l.name
                ));
            }
        }
        let Some(st) = st else { continue };
        let bad = st.rx_dropped + st.tx_dropped + st.rx_errors + st.tx_errors;
        let total = st.rx_packets + st.tx_packets + bad;
        seen.push(json!({"interface": l.name, "stats": st}));
        if bad >= th.link_drops && bad as f64 * 100.0 / total.max(1) as f64 >= th.link_drops_pct {
            causes.push("interface_drops");
            warns.push(format!(
                "{} dropped or errored {bad} of {total} packets {since}",
                l.name
            ));
            remedy.push(format!("ip -s link show dev {0}; ethtool -S {0}: compare with the instance type's bandwidth and PPS limits", l.name));
        }
    }
    let softnet_dropped = c.softnet_dropped;
    if let Some(d) = softnet_dropped.filter(|d| *d > 0) {
        causes.push("softnet_backlog_overflow");
        warns.push(format!(
            "the softnet backlog overflowed {since}: {d} packets dropped before the stack saw them"
        ));
        remedy.push(
            "sysctl -w net.core.netdev_max_backlog=10000 (and persist it in /etc/sysctl.d)"
                .to_string(),
        );
    }
    let evidence = json!({
        "counted": since, "counters": seen, "softnet_dropped": softnet_dropped,
        "softnet_time_squeeze": c.time_squeeze, "not_compared": c.not_compared,
    });
    from_reasons(
        DROPS,
        fails,
        warns,
        format!("no queueing discipline, interface or softnet backlog dropped packets {since}"),
        evidence,
        remedy,
    )
    .cause(causes.first().copied().unwrap_or("interface_drops"))
    .relies_on(dropping_links)
}

/// The bandwidth limit per direction, Mbit/s, and where it came from.
#[derive(Debug, PartialEq)]
pub struct BandwidthLimit {
    pub in_mbps: f64,
    pub out_mbps: f64,
    pub from: &'static str,
}

/// The config's `limits.bandwidth_mbps` (both directions) overrides the metadata's instance
/// type limits (`instance/max-netbw-egress`, and `-ingress` where published; Kbit/s).
pub fn bandwidth_limit(s: &Snapshot, c: &Criteria) -> Option<BandwidthLimit> {
    if let Some(b) = c.limits.bandwidth_mbps {
        return Some(BandwidthLimit {
            in_mbps: b,
            out_mbps: b,
            from: "limits.bandwidth_mbps in the config",
        });
    }
    let md = s.metadata.ok()?;
    let out = md.max_netbw_egress_kbps? as f64 / 1000.0;
    Some(match md.max_netbw_ingress_kbps {
        Some(i) => BandwidthLimit {
            in_mbps: i as f64 / 1000.0,
            out_mbps: out,
            from: "metadata instance/max-netbw-egress and max-netbw-ingress",
        },
        // The instance type's limit applies per direction: the egress figure stands for both.
        None => BandwidthLimit {
            in_mbps: out,
            out_mbps: out,
            from: "metadata instance/max-netbw-egress (for both directions: no ingress published)",
        },
    })
}

/// `net.bandwidth`: each interface's throughput over the window against the instance's limit
/// ([`bandwidth_limit`]). Cloud limits apply per direction, so rx and tx are judged apart.
pub fn bandwidth(s: &Snapshot, c: &Criteria) -> Finding {
    let links = match s.links.ok() {
        Ok(l) => l,
        Err(e) => {
            return Finding::unknown(BANDWIDTH, format!("cannot read interface counters: {e}"))
        }
    };
    let earlier = s.earlier.as_deref();
    let (Some(window), Some(earlier_links)) = (
        earlier.and_then(|e| e.seconds_to(s.at_ms)),
        earlier.and_then(|e| e.links.as_deref()),
    ) else {
        return Finding::skipped(BANDWIDTH, "one sample cannot measure throughput: run `ecs-diag check --window 5`, or read it from the daemon (it compares refreshes)");
    };
    let (counted, not_compared) = link_counters(links, Some(earlier_links));
    let th = &c.thresholds;
    let limit = bandwidth_limit(s, c);
    let mut rates = Vec::new();
    let mut over = Vec::new();
    let mut near = Vec::new();
    for (l, d) in &counted {
        let Some(d) = d else { continue };
        let rx = d.rx_bytes as f64 * 8.0 / window / 1e6;
        let tx = d.tx_bytes as f64 * 8.0 / window / 1e6;
        rates.push(json!({"interface": l.name, "rx_mbps": (rx * 100.0).round() / 100.0, "tx_mbps": (tx * 100.0).round() / 100.0}));
        let Some(limit) = &limit else { continue };
        for (dir, v, limit) in [("in", rx, limit.in_mbps), ("out", tx, limit.out_mbps)] {
            let share = v * 100.0 / limit;
            let text = format!(
                "{} {dir} {v:.1} Mbit/s = {share:.0}% of the {limit} Mbit/s limit",
                l.name
            );
            if share >= 100.0 {
                over.push(text);
            } else if share >= th.bandwidth_pct {
                near.push(text);
            }
        }
    }
    let evidence = json!({
        "window_s": window, "interfaces": rates, "not_compared": not_compared,
        "limit_mbps": limit.as_ref().map(|l| l.out_mbps),
        "limit_in_mbps": limit.as_ref().map(|l| l.in_mbps),
        "limit_out_mbps": limit.as_ref().map(|l| l.out_mbps),
        "limit_from": limit.as_ref().map(|l| l.from),
    });
    let Some(limit) = limit else {
        return Finding::skipped(BANDWIDTH, "no bandwidth limit known: the metadata publishes none (instance/max-netbw-egress) and limits.bandwidth_mbps is not set in the config (ECS console → instance → bandwidth)")
            .evidence(evidence);
    };
    let mut remedy = vec![
        "iftop -i eth0 or nethogs: which connections use the bandwidth".to_string(),
        "raise the instance's public bandwidth (ECS console → instance → Modify bandwidth) or the instance type's internal bandwidth".to_string(),
    ];
    if c.limits.bandwidth_mbps.is_none() {
        // The metadata gives the instance type's (internal) limit; a public IP's bandwidth
        // is bought separately and is often lower.
        remedy.push("the limit judged is the instance type's; if the public bandwidth is lower, set limits.bandwidth_mbps to it".to_string());
    }
    if !over.is_empty() {
        return Finding::fail(
            BANDWIDTH,
            format!(
                "{}: the cloud drops what exceeds the limit, pings included",
                over.join("; ")
            ),
        )
        .evidence(evidence)
        .remedy(remedy);
    }
    if !near.is_empty() {
        return Finding::warn(BANDWIDTH, format!("near saturation: {}", near.join("; ")))
            .evidence(evidence)
            .remedy(remedy);
    }
    let limit_text = if limit.in_mbps == limit.out_mbps {
        format!("{} Mbit/s", limit.out_mbps)
    } else {
        format!("{} Mbit/s in, {} Mbit/s out", limit.in_mbps, limit.out_mbps)
    };
    Finding::ok(
        BANDWIDTH,
        format!(
            "every interface below {}% of the {limit_text} limit ({}) over {window:.1} s",
            th.bandwidth_pct, limit.from
        ),
    )
    .evidence(evidence)
}

pub fn conntrack(s: &Snapshot, c: &Criteria) -> Finding {
    let ct = match s.conntrack.ok() {
        Err(e) => {
            return Finding::unknown(
                CONNTRACK,
                format!("cannot read connection tracking counters: {e}"),
            )
        }
        Ok(None) => {
            return Finding::skipped(
                CONNTRACK,
                "connection tracking is not loaded: no table to fill up",
            )
        }
        Ok(Some(ct)) => ct,
    };
    let evidence = json!(ct);
    let fill = if ct.max == 0 {
        0.0
    } else {
        ct.count as f64 / ct.max as f64
    };
    let remedy = vec![
        format!(
            "sysctl -w net.netfilter.nf_conntrack_max={}   (persist it in /etc/sysctl.d)",
            (ct.max * 2).max(65536)
        ),
        "conntrack -S; conntrack -L | awk '{print $1}' | sort | uniq -c   (what fills it)"
            .to_string(),
    ];
    let pct = fill * 100.0;
    let th = &c.thresholds;
    if pct >= th.conntrack_fail_pct {
        return Finding::fail(CONNTRACK, format!("the connection tracking table is {pct:.0}% full ({} of {}): new flows, pings included, are dropped", ct.count, ct.max))
            .evidence(evidence)
            .remedy(remedy);
    }
    if pct >= th.conntrack_pct {
        return Finding::warn(
            CONNTRACK,
            format!(
                "the connection tracking table is {pct:.0}% full ({} of {})",
                ct.count, ct.max
            ),
        )
        .evidence(evidence)
        .remedy(remedy);
    }
    // Failures since boot, or within the window when there is an earlier sample.
    let (failures, since) = match s.earlier.as_deref().and_then(|e| e.conntrack.as_ref()) {
        Some(b) => (ct.failures_since(b), "in the window"),
        None => (ct.failures(), "since boot"),
    };
    if failures.drop + failures.early_drop + failures.insert_failed > 0 {
        return Finding::warn(
            CONNTRACK,
            format!(
                "the table was full: {} dropped, {} early drops, {} insert failures {since}",
                failures.drop, failures.early_drop, failures.insert_failed
            ),
        )
        .evidence(evidence)
        .remedy(remedy);
    }
    Finding::ok(
        CONNTRACK,
        format!(
            "connection tracking table {pct:.1}% full ({} of {})",
            ct.count, ct.max
        ),
    )
    .evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    /// These checks judge against criteria: the fixtures' own.
    fn judge(
        check: fn(&Snapshot, &Criteria) -> Finding,
        edit: impl FnOnce(&mut Snapshot),
    ) -> Finding {
        judge_by(check, criteria(), edit)
    }
    use crate::report::Status;
    use crate::snapshot::{Conntrack, Gathered, LinkStats, Qdisc, SoftnetCpu};

    fn qdisc(packets: u64, drops: u64) -> impl FnOnce(&mut Snapshot) {
        move |s| {
            s.qdiscs = Gathered::Ok(vec![Qdisc {
                ifindex: 2,
                kind: "bfifo".into(),
                parent: "root".into(),
                packets,
                drops,
                ..Default::default()
            }])
        }
    }

    #[test]
    fn drops_paths() {
        assert_eq!(judge(drops, |_| {}).status, Status::Ok);
        let f = judge(drops, qdisc(0, 12));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("bfifo") && f.summary.contains("every packet"),
            "{}",
            f.summary
        );
        assert!(f.remedy[0].contains("tc qdisc del dev eth0 root"));
        // The qdisc is eth0's attribute: a failing link.primary is this finding's cause.
        assert_eq!(f.relies_on, vec![Subject::Link("eth0".into())]);
        assert!(judge(drops, qdisc(1000, 50)).relies_on.is_empty());
        assert_eq!(judge(drops, qdisc(1000, 50)).status, Status::Warn);
        assert_eq!(judge(drops, qdisc(100_000, 5)).status, Status::Ok);
        // A few interface drops are normal; many, in proportion, are not.
        let stats = |dropped| {
            move |s: &mut Snapshot| {
                links(s)[1].stats = Some(LinkStats {
                    rx_packets: 50_000,
                    tx_packets: 50_000,
                    rx_dropped: dropped,
                    ..Default::default()
                })
            }
        };
        assert_eq!(judge(drops, stats(20)).status, Status::Ok);
        assert_eq!(judge(drops, stats(5_000)).status, Status::Warn);
        assert_eq!(
            judge(drops, |s| s.softnet = Gathered::Ok(vec![SoftnetCpu {
                processed: 9,
                dropped: 3,
                time_squeeze: 1
            }]))
            .status,
            Status::Warn
        );
        assert_eq!(
            judge(drops, |s| s.qdiscs = Gathered::Failed("EPERM".into())).status,
            Status::Unknown
        );
    }

    fn with_stats(rx_bytes: u64, tx_bytes: u64, rx_dropped: u64) -> LinkStats {
        LinkStats {
            rx_packets: 50_000,
            tx_packets: 50_000,
            rx_bytes,
            tx_bytes,
            rx_dropped,
            ..Default::default()
        }
    }

    /// eth0's counters `before` (10 s earlier) and now.
    fn windowed(before: LinkStats, now: LinkStats) -> impl FnOnce(&mut Snapshot) {
        move |s| {
            s.at_ms = 20_000;
            let mut earlier_links = links(s).clone();
            earlier_links[1].stats = Some(before);
            links(s)[1].stats = Some(now);
            s.earlier = Some(Box::new(crate::snapshot::Sample {
                at_ms: 10_000,
                links: Some(earlier_links),
                qdiscs: Some(vec![]),
                softnet: Some(vec![SoftnetCpu {
                    processed: 90,
                    dropped: 0,
                    time_squeeze: 0,
                }]),
                ..Default::default()
            }));
        }
    }

    /// Without `limits.bandwidth_mbps`, the metadata's instance type limits are judged: egress
    /// for both directions, or ingress apart where published; the config still overrides.
    #[test]
    fn bandwidth_limit_from_metadata() {
        let mut c = criteria();
        c.limits.bandwidth_mbps = None;
        let with_md = |egress: Option<u64>, ingress: Option<u64>| {
            move |s: &mut Snapshot| {
                metadata(s).max_netbw_egress_kbps = egress;
                metadata(s).max_netbw_ingress_kbps = ingress;
                // 200 Mbit/s in, 40 Mbit/s out over 10 s.
                windowed(with_stats(0, 0, 0), with_stats(250_000_000, 50_000_000, 0))(s);
            }
        };
        // 1 Gbit/s egress, no ingress: both directions at 1000 Mbit/s.
        let f = judge_by(bandwidth, c.clone(), with_md(Some(1_000_000), None));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert_eq!(f.evidence["limit_in_mbps"], 1000.0);
        assert!(
            f.summary
                .contains("1000 Mbit/s limit (metadata instance/max-netbw-egress"),
            "{}",
            f.summary
        );
        // 100 Mbit/s ingress published: 200 Mbit/s in is over it; out (40 of 1000) is fine.
        let f = judge_by(
            bandwidth,
            c.clone(),
            with_md(Some(1_000_000), Some(100_000)),
        );
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary
                .contains("eth0 in 200.0 Mbit/s = 200% of the 100 Mbit/s limit"),
            "{}",
            f.summary
        );
        assert!(!f.summary.contains("eth0 out"), "{}", f.summary);
        assert!(
            f.remedy
                .iter()
                .any(|r| r.contains("public bandwidth is lower")),
            "{:?}",
            f.remedy
        );
        // 220 Mbit/s egress: 200 in is 91%, near saturation.
        let f = judge_by(bandwidth, c.clone(), with_md(Some(220_000), None));
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        // The config overrides the metadata.
        let mut cfg = c.clone();
        cfg.limits.bandwidth_mbps = Some(10_000.0);
        let f = judge_by(bandwidth, cfg, with_md(Some(100_000), Some(100_000)));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert_eq!(
            f.evidence["limit_from"],
            "limits.bandwidth_mbps in the config"
        );
        // Metadata that failed or was not asked: no limit, measured but not judged.
        let f = judge_by(bandwidth, c, |s| {
            metadata_failed(s);
            windowed(with_stats(0, 0, 0), with_stats(250_000_000, 0, 0))(s);
        });
        assert_eq!(f.status, Status::Skipped, "{}", f.summary);
    }

    #[test]
    fn bandwidth_paths() {
        // One sample: no rate.
        let f = judge(bandwidth, |_| {});
        assert_eq!(f.status, Status::Skipped);
        assert!(f.summary.contains("--window"));
        // 1000 Mbit/s limit; 10 s window; 125 MB = 100 Mbit/s.
        let f = judge(
            bandwidth,
            windowed(with_stats(0, 0, 0), with_stats(125_000_000, 10, 0)),
        );
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert_eq!(f.evidence["interfaces"][0]["rx_mbps"], 100.0);
        let f = judge(
            bandwidth,
            windowed(with_stats(0, 0, 0), with_stats(10, 1_150_000_000, 0)),
        );
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        assert!(f.summary.contains("eth0 out 920.0 Mbit/s"), "{}", f.summary);
        let f = judge(
            bandwidth,
            windowed(with_stats(0, 0, 0), with_stats(1_300_000_000, 0, 0)),
        );
        assert_eq!(f.status, Status::Fail);
        // No limit known: measured, not judged.
        let mut c = criteria();
        c.limits.bandwidth_mbps = None;
        let f = judge_by(
            bandwidth,
            c,
            windowed(with_stats(0, 0, 0), with_stats(1_300_000_000, 0, 0)),
        );
        assert_eq!(f.status, Status::Skipped);
        assert!(f.summary.contains("max-netbw-egress"), "{}", f.summary);
        assert_eq!(f.evidence["interfaces"][0]["rx_mbps"], 1040.0);
        // Counters that went backwards (the NIC was reset): not compared, not a huge rate.
        let f = judge(
            bandwidth,
            windowed(with_stats(5_000_000_000, 0, 0), with_stats(10, 0, 0)),
        );
        assert_eq!(f.status, Status::Ok);
        assert!(f.evidence["not_compared"][0]
            .as_str()
            .unwrap()
            .contains("eth0"));
        assert_eq!(
            judge(bandwidth, |s| s.links = Gathered::Failed("EPERM".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn drops_over_a_window() {
        // 5,000 drops since boot, none in the window: ok.
        let f = judge(
            drops,
            windowed(with_stats(0, 0, 5_000), with_stats(0, 0, 5_000)),
        );
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert!(f.summary.contains("in the last 10.0 s"), "{}", f.summary);
        // Interfaces appearing and vanishing between samples.
        let f = judge(drops, |s| {
            windowed(with_stats(0, 0, 0), with_stats(0, 0, 0))(s);
            let e = s.earlier.as_mut().unwrap();
            e.links.as_mut().unwrap()[1].name = "eth9".into();
            e.links.as_mut().unwrap()[1].index = 9;
            // eth0 is new: its counters are all within the window.
            links(s)[1].stats = Some(with_stats(0, 0, 5_000));
        });
        assert_eq!(f.status, Status::Warn, "{}", f.summary);
        assert!(f.evidence["not_compared"][0]
            .as_str()
            .unwrap()
            .contains("eth9: vanished"));
        // A bfifo added within the window that dropped all it was given.
        let f = judge(drops, |s| {
            windowed(with_stats(0, 0, 0), with_stats(0, 0, 0))(s);
            qdisc(0, 12)(s);
        });
        assert_eq!(f.status, Status::Fail);
        // A qdisc that dropped in the past but not in the window.
        let f = judge(drops, |s| {
            windowed(with_stats(0, 0, 0), with_stats(0, 0, 0))(s);
            qdisc(0, 12)(s);
            let e = s.earlier.as_mut().unwrap();
            e.qdiscs = Some(s.qdiscs.ok().unwrap().clone());
        });
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        // softnet_stat is 32-bit: a wrap is a small increase, not a reset.
        let f = judge(drops, |s| {
            windowed(with_stats(0, 0, 0), with_stats(0, 0, 0))(s);
            s.earlier.as_mut().unwrap().softnet = Some(vec![SoftnetCpu {
                processed: 0,
                dropped: u64::from(u32::MAX),
                time_squeeze: 0,
            }]);
            s.softnet = Gathered::Ok(vec![SoftnetCpu {
                processed: 0,
                dropped: 3,
                time_squeeze: 0,
            }]);
        });
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.evidence["softnet_dropped"], 4);
    }

    #[test]
    fn conntrack_paths() {
        assert_eq!(judge(conntrack, |_| {}).status, Status::Ok);
        let set = |count, max, drop| {
            move |s: &mut Snapshot| {
                s.conntrack = Gathered::Ok(Some(Conntrack {
                    count,
                    max,
                    drop,
                    ..Default::default()
                }))
            }
        };
        let f = judge(conntrack, set(65_500, 65_536, 0));
        assert_eq!(f.status, Status::Fail);
        assert!(f.remedy[0].contains("nf_conntrack_max=131072"));
        assert_eq!(
            judge(conntrack, set(50_000, 65_536, 0)).status,
            Status::Warn
        );
        assert_eq!(judge(conntrack, set(10, 65_536, 7)).status, Status::Warn);
        // Drops before the window do not count in it.
        let f = judge(conntrack, |s| {
            set(10, 65_536, 7)(s);
            s.earlier = Some(Box::new(crate::snapshot::Sample {
                conntrack: Some(Conntrack {
                    count: 10,
                    max: 65_536,
                    drop: 7,
                    ..Default::default()
                }),
                ..Default::default()
            }));
        });
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        // Thresholds from the config.
        let mut c = criteria();
        c.thresholds.conntrack_pct = 80.0;
        let f = judge_by(conntrack, c, set(50_000, 65_536, 0));
        assert_eq!(f.status, Status::Ok);
        assert_eq!(
            judge(conntrack, |s| s.conntrack = Gathered::Ok(None)).status,
            Status::Skipped
        );
        assert_eq!(
            judge(conntrack, |s| s.conntrack = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }
}
