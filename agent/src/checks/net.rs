//! `net.drops`, `net.conntrack`: is the guest dropping packets itself — a queueing discipline
//! that drops (everything), interface drops and errors, softnet backlog overflow — or is the
//! connection-tracking table full (new flows, pings included, are then dropped)? Evidence:
//! netlink tc and link statistics, `/proc/net/softnet_stat`, nf_conntrack counters. Counters
//! are since the interface (or boot) began; rates over a window are issue 5's next step.

use serde_json::json;

use crate::report::Finding;
use crate::snapshot::Snapshot;

pub const DROPS: &str = "net.drops";
pub const CONNTRACK: &str = "net.conntrack";

/// Interface drops + errors warn only past both of these (a few drops are normal).
const LINK_DROP_MIN: u64 = 1000;
const LINK_DROP_RATIO: f64 = 0.01;

pub fn drops(s: &Snapshot) -> Finding {
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
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut remedy = Vec::new();
    let mut seen = Vec::new();
    for l in links.iter().filter(|l| !l.loopback) {
        for q in qdiscs
            .iter()
            .filter(|q| q.ifindex == l.index && q.drops > 0)
        {
            seen.push(json!({"interface": l.name, "qdisc": q.kind, "parent": q.parent, "sent": q.packets, "dropped": q.drops, "overlimits": q.overlimits}));
            let total = q.packets + q.drops;
            if q.packets == 0 {
                fails.push(format!(
                    "qdisc {} ({}) on {} dropped every packet it was given ({} dropped, 0 sent)",
                    q.kind, q.parent, l.name, q.drops
                ));
                remedy.push(format!("tc -s qdisc show dev {}; tc qdisc del dev {} root   (back to the default qdisc)", l.name, l.name));
            } else if q.drops as f64 / total as f64 >= LINK_DROP_RATIO {
                warns.push(format!(
                    "qdisc {} on {} dropped {} of {} packets",
                    q.kind, l.name, q.drops, total
                ));
                remedy.push(format!(
                    "tc -s qdisc show dev {}: a shaping qdisc's rate or a queue limit is too low",
                    l.name
                ));
            }
        }
        if let Some(st) = &l.stats {
            let bad = st.rx_dropped + st.tx_dropped + st.rx_errors + st.tx_errors;
            let total = st.rx_packets + st.tx_packets + bad;
            seen.push(json!({"interface": l.name, "stats": st}));
            if bad >= LINK_DROP_MIN && bad as f64 / total.max(1) as f64 >= LINK_DROP_RATIO {
                warns.push(format!(
                    "{} dropped or errored {bad} of {total} packets",
                    l.name
                ));
                remedy.push(format!("ip -s link show dev {0}; ethtool -S {0}: compare with the instance type's bandwidth and PPS limits", l.name));
            }
        }
    }
    let softnet_dropped: Option<u64> = s
        .softnet
        .ok()
        .ok()
        .map(|v| v.iter().map(|c| c.dropped).sum());
    if let Some(d) = softnet_dropped.filter(|d| *d > 0) {
        warns.push(format!(
            "the softnet backlog overflowed: {d} packets dropped before the stack saw them"
        ));
        remedy.push(
            "sysctl -w net.core.netdev_max_backlog=10000 (and persist it in /etc/sysctl.d)"
                .to_string(),
        );
    }
    let evidence = json!({"counters": seen, "softnet_dropped": softnet_dropped});
    if !fails.is_empty() {
        return Finding::fail(DROPS, fails.join("; "))
            .evidence(evidence)
            .remedy(remedy);
    }
    if !warns.is_empty() {
        return Finding::warn(DROPS, warns.join("; "))
            .evidence(evidence)
            .remedy(remedy);
    }
    Finding::ok(
        DROPS,
        "no queueing discipline, interface or softnet backlog is dropping packets",
    )
    .evidence(evidence)
}

pub fn conntrack(s: &Snapshot) -> Finding {
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
    if fill >= 0.95 {
        return Finding::fail(CONNTRACK, format!("the connection tracking table is {pct:.0}% full ({} of {}): new flows, pings included, are dropped", ct.count, ct.max))
            .evidence(evidence)
            .remedy(remedy);
    }
    if fill >= 0.75 {
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
    if ct.drop + ct.early_drop + ct.insert_failed > 0 {
        return Finding::warn(CONNTRACK, format!("the table was full before: {} dropped, {} early drops, {} insert failures since boot", ct.drop, ct.early_drop, ct.insert_failed))
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
