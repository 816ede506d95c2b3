//! Which findings are consequences of others. Each finding declares what it judges and what
//! its verdict relies on (the device, the default route, the sysctl, the firewall path named in
//! its evidence); a finding that is not ok and relies on something a failing finding judges is
//! that finding's consequence (a warning is not enough to explain another verdict). `caused_by` names the root causes only (a
//! consequence of a consequence points at the root), and the root's remedy goes first in the
//! consequence's remedy so nobody applies the wrong fix. Statuses are not changed: the exit
//! code and the metrics stay those of the verdicts.

use std::collections::BTreeSet;

use crate::report::{Finding, Status};

/// Fills `caused_by` and puts the root remedies first. `findings` is in catalogue order.
pub fn link_consequences(findings: &mut [Finding]) {
    let direct: Vec<Vec<usize>> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| direct_causes(findings, i, f))
        .collect();
    let roots: Vec<BTreeSet<usize>> = (0..findings.len())
        .map(|i| {
            let mut out = BTreeSet::new();
            let mut seen = BTreeSet::new();
            collect_roots(&direct, i, &mut seen, &mut out);
            out.remove(&i);
            // A cycle has no root: name the direct causes instead.
            if out.is_empty() {
                out.extend(direct[i].iter().copied());
            }
            out
        })
        .collect();
    let ids: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
    for (i, causes) in roots.into_iter().enumerate() {
        if causes.is_empty() {
            continue;
        }
        let first: Vec<String> = causes
            .iter()
            .filter_map(|&c| {
                let step = findings[c].remedy.first()?;
                Some(format!("first fix {}: {step}", ids[c]))
            })
            .collect();
        let f = &mut findings[i];
        f.caused_by = causes.iter().map(|&c| ids[c].clone()).collect();
        f.remedy.splice(0..0, first);
    }
}

/// The findings that `f` (at `i`) directly follows from.
fn direct_causes(all: &[Finding], i: usize, f: &Finding) -> Vec<usize> {
    if matches!(f.status, Status::Ok | Status::Skipped) || f.relies_on.is_empty() {
        return Vec::new();
    }
    all.iter()
        .enumerate()
        .filter(|&(j, cause)| {
            j != i
                && cause.status == Status::Fail
                && cause.judges.iter().any(|s| f.relies_on.contains(s))
                // Two findings relying on each other's subjects explain nothing about each other.
                && !f.judges.iter().any(|s| cause.relies_on.contains(s))
        })
        .map(|(j, _)| j)
        .collect()
}

/// The roots reachable from `i`: findings with no cause of their own. `seen` stops cycles.
fn collect_roots(
    direct: &[Vec<usize>],
    i: usize,
    seen: &mut BTreeSet<usize>,
    out: &mut BTreeSet<usize>,
) {
    if !seen.insert(i) {
        return;
    }
    let causes = &direct[i];
    if causes.is_empty() {
        out.insert(i);
        return;
    }
    for &c in causes {
        collect_roots(direct, c, seen, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::report::Subject;
    use crate::snapshot::{Gathered, IcmpCounters, LookupOutcome, Snapshot};

    fn judged(edit: impl FnOnce(&mut Snapshot)) -> Vec<Finding> {
        let mut s = healthy();
        edit(&mut s);
        crate::checks::evaluate(&s, &criteria())
    }

    fn by_id<'a>(fs: &'a [Finding], id: &str) -> &'a Finding {
        fs.iter().find(|f| f.id == id).unwrap()
    }

    /// What the kernel leaves when eth0 goes down: its routes and neighbours gone, reply
    /// lookups refused.
    fn link_down(s: &mut Snapshot) {
        links(s)[1].admin_up = false;
        links(s)[1].operstate = "down".into();
        routes(s).clear();
        s.neighbours = Gathered::Ok(vec![]);
        s.reply_lookups = Gathered::Ok(
            ["10.77.0.10", "10.77.0.11"]
                .iter()
                .map(|src| {
                    let mut l = lookup(src, 2, "unicast");
                    l.outcome = LookupOutcome::Refused {
                        errno: 101,
                        meaning: "no route to the destination (ENETUNREACH)".into(),
                    };
                    l
                })
                .collect(),
        );
    }

    #[test]
    fn healthy_has_no_consequences() {
        for f in judged(|_| {}) {
            assert!(f.caused_by.is_empty(), "{}: {:?}", f.id, f.caused_by);
        }
    }

    #[test]
    fn link_down_explains_the_route_the_reply_and_the_neighbour() {
        let fs = judged(link_down);
        let link = by_id(&fs, "link.primary");
        assert_eq!(link.status, Status::Fail);
        assert!(link.caused_by.is_empty());
        for id in ["route.default", "route.reply", "neigh.gateway"] {
            let f = by_id(&fs, id);
            assert_ne!(f.status, Status::Ok, "{id}");
            // Roots only: route.reply follows route.default, which follows the link.
            assert_eq!(f.caused_by, ["link.primary"], "{id}");
        }
        // The root's remedy first, then the finding's own.
        let route = by_id(&fs, "route.default");
        assert_eq!(
            route.remedy[0],
            format!("first fix link.primary: {}", link.remedy[0])
        );
        assert!(
            route.remedy[1].starts_with("ip route replace default"),
            "{:?}",
            route.remedy
        );
        // Statuses are untouched: the exit code and the metrics stay the verdicts'.
        assert_eq!(route.status, Status::Fail);
    }

    #[test]
    fn a_missing_default_route_explains_the_reply_route_only() {
        let fs = judged(|s| {
            routes(s).retain(|r| r.destination.prefix_len() != 0);
            s.reply_lookups = Gathered::Ok(vec![{
                let mut l = lookup("10.77.0.10", 2, "unicast");
                l.outcome = LookupOutcome::Refused {
                    errno: 101,
                    meaning: "no route".into(),
                };
                l
            }]);
        });
        assert!(by_id(&fs, "route.default").caused_by.is_empty());
        assert_eq!(by_id(&fs, "route.reply").caused_by, ["route.default"]);
        assert!(by_id(&fs, "link.primary").caused_by.is_empty());
    }

    #[test]
    fn unanswered_echo_points_at_the_sysctl_that_ignores_it() {
        let fs = judged(|s| {
            sysctls(s).insert("net.ipv4.icmp_echo_ignore_all".into(), sysctl("1"));
            s.icmp_previous = Some(IcmpCounters {
                at_ms: 0,
                ..Default::default()
            });
            s.icmp = Gathered::Ok(IcmpCounters {
                at_ms: 5_000,
                in_echos: 5,
                ..Default::default()
            });
        });
        let live = by_id(&fs, "icmp.live");
        assert_eq!(live.status, Status::Fail);
        assert_eq!(live.caused_by, ["sysctl.icmp_echo"]);
        assert!(
            live.remedy[0].starts_with("first fix sysctl.icmp_echo: "),
            "{:?}",
            live.remedy
        );
    }

    fn finding(id: &str, status: Status, judges: &[&str], relies: &[&str]) -> Finding {
        let link = |n: &&str| Subject::Link(n.to_string());
        Finding::new(id, status, id)
            .remedy([format!("fix {id}")])
            .judges(judges.iter().map(link))
            .relies_on(relies.iter().map(link))
    }

    #[test]
    fn only_failures_explain_and_only_non_ok_findings_are_explained() {
        let mut fs = vec![
            finding("a", Status::Warn, &["x"], &[]),
            finding("b", Status::Fail, &["y"], &["x"]),
            finding("c", Status::Ok, &[], &["y"]),
            finding("d", Status::Unknown, &[], &["y"]),
        ];
        link_consequences(&mut fs);
        assert!(fs[1].caused_by.is_empty(), "a warning explains nothing");
        assert!(
            fs[2].caused_by.is_empty(),
            "an ok finding needs no explanation"
        );
        assert_eq!(fs[3].caused_by, ["b"]);
        assert_eq!(fs[3].remedy, ["first fix b: fix b", "fix d"]);
    }

    #[test]
    fn mutual_reliance_and_cycles_terminate() {
        let mut fs = vec![
            finding("a", Status::Fail, &["x"], &["y"]),
            finding("b", Status::Fail, &["y"], &["x"]),
            finding("c", Status::Fail, &["z"], &["x", "y"]),
        ];
        link_consequences(&mut fs);
        assert!(fs[0].caused_by.is_empty());
        assert!(fs[1].caused_by.is_empty());
        assert_eq!(fs[2].caused_by, ["a", "b"]);
        // A longer cycle (a → b → c → a, no mutual pair) has no root: each names its direct
        // cause.
        let mut fs = vec![
            finding("a", Status::Fail, &["x"], &["z"]),
            finding("b", Status::Fail, &["y"], &["x"]),
            finding("c", Status::Fail, &["z"], &["y"]),
        ];
        link_consequences(&mut fs);
        assert_eq!(fs[0].caused_by, ["c"]);
        assert_eq!(fs[1].caused_by, ["a"]);
        assert_eq!(fs[2].caused_by, ["b"]);
    }
}
