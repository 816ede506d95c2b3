//! Checks: pure functions of a snapshot, one file per family (`link.rs` holds `link.primary`,
//! `link.secondary`, `link.driver`, ...), each listing its checks in `CHECKS`; [`catalogue`] is
//! all of them in report order.

// A check's early return is its finding (`Result<_, Finding>`): one per check and refresh,
// never in a loop, so its size does not matter and boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod addr;
pub mod causality;
pub mod cloud;
pub mod dns;
pub mod firewall;
pub mod icmp;
pub mod link;
pub mod load;
pub mod neigh;
pub mod net;
pub mod route;
pub mod sysctl;

use serde_json::Value;

use crate::config::{Limits, Thresholds};
use crate::report::{Finding, Report, Status, Subject, REPORT_VERSION};
use crate::snapshot::Snapshot;

/// One entry of the catalogue: the stable id (also its metric label), what it decides, the
/// evidence it reads, the causes it can name with their remedies (`ecs-diag checks` and
/// `ecs-diag explain` print these), and the function that judges. Each family's file lists its
/// own in `CHECKS`, next to the functions.
pub struct Check {
    pub id: &'static str,
    /// One line: the question it answers.
    pub decides: &'static str,
    /// The facts it reads.
    pub evidence: &'static [&'static str],
    /// What it can name as the cause, each with its remedy.
    pub causes: &'static [Cause],
    pub judge: fn(&Snapshot, &Context) -> Finding,
}

/// A cause a check can name and what fixes it.
pub struct Cause {
    /// Stable, snake_case: the finding's `cause` and the `cause` label of
    /// `ecs_diag_check_cause` (one of a fixed set, so a fleet can alert and group on it).
    pub id: &'static str,
    pub cause: &'static str,
    pub remedy: &'static str,
}

/// What the load and network checks judge against besides the facts: the effective thresholds
/// and limits (from the config in force, never from the snapshot, so `check --from` judges a
/// replayed snapshot by the `--config` given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Criteria {
    pub thresholds: Thresholds,
    pub limits: Limits,
}

impl Criteria {
    pub fn of(config: &crate::config::Config) -> Criteria {
        Criteria {
            thresholds: config.thresholds.clone(),
            limits: config.limits.clone(),
        }
    }
}

/// A check's inputs besides the snapshot.
pub struct Context<'a> {
    pub criteria: &'a Criteria,
    /// The findings of the checks before this one in the catalogue (`icmp.live` reads whether
    /// the firewall drops echo requests from here instead of judging the ruleset again).
    pub earlier: &'a [Finding],
}

impl Context<'_> {
    /// The earlier finding with this id, if it was judged already.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.earlier.iter().find(|f| f.id == id)
    }
}

/// The families in report order. A new check goes into its family's `CHECKS`; a new family is
/// one file and one line here.
const FAMILIES: &[&[Check]] = &[
    link::CHECKS,
    addr::CHECKS,
    route::CHECKS,
    neigh::CHECKS,
    sysctl::CHECKS,
    firewall::CHECKS,
    load::CHECKS,
    net::CHECKS,
    cloud::CHECKS,
    dns::CHECKS,
    icmp::CHECKS,
];

/// Every check, in report order.
pub fn catalogue() -> impl Iterator<Item = &'static Check> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// The check with this id.
pub fn find(id: &str) -> Option<&'static Check> {
    catalogue().find(|c| c.id == id)
}

/// A finding from lists of reasons: fail if any fail reason (all reasons in the summary), else
/// warn if any warn reason, else ok.
pub(crate) fn from_reasons(
    id: &'static str,
    fails: Vec<String>,
    warns: Vec<String>,
    ok: String,
    evidence: Value,
    remedy: Vec<String>,
) -> Finding {
    if !fails.is_empty() {
        let all: Vec<String> = fails.into_iter().chain(warns).collect();
        return Finding::fail(id, all.join("; "))
            .evidence(evidence)
            .remedy(remedy);
    }
    if !warns.is_empty() {
        return Finding::warn(id, warns.join("; "))
            .evidence(evidence)
            .remedy(remedy);
    }
    Finding::ok(id, ok).evidence(evidence)
}

/// Judges a snapshot with every check, in catalogue order.
pub fn evaluate(snapshot: &Snapshot, criteria: &Criteria) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for check in catalogue() {
        let f = (check.judge)(
            snapshot,
            &Context {
                criteria,
                earlier: &findings,
            },
        );
        findings.push(classified(check, f));
    }
    causality::link_consequences(&mut findings);
    findings
}

/// The finding with its cause checked against its check's registry: only a warn or fail names
/// one; a check with a single cause names it; an id its check does not register is a bug,
/// dropped rather than exported as a metric label (debug builds stop on it).
fn classified(check: &Check, mut f: Finding) -> Finding {
    if !matches!(f.status, Status::Warn | Status::Fail) {
        f.cause = None;
        return f;
    }
    match &f.cause {
        Some(c) if check.causes.iter().any(|k| k.id == c) => {}
        Some(c) => {
            debug_assert!(false, "{}: cause {c} is not registered", check.id);
            f.cause = None;
        }
        None => {
            if let [only] = check.causes {
                f.cause = Some(only.id.to_string());
            }
        }
    }
    f
}

pub fn report(snapshot: &Snapshot, criteria: &Criteria, started: std::time::Instant) -> Report {
    let checks = evaluate(snapshot, criteria);
    Report {
        version: REPORT_VERSION,
        generated_at: crate::now_rfc3339(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        stale: false,
        checks,
    }
}

use std::net::IpAddr;

use crate::snapshot::{Address, Link, Route, TABLE_MAIN};

/// The primary interface as a [`Subject`] (what link.primary judges and others rely on).
pub(crate) fn primary_link(s: &Snapshot) -> Option<Subject> {
    primary_interface(s)
        .ok()
        .map(|p| Subject::Link(p.link.name.clone()))
}

/// The assigned primary private IP as a [`Subject`] (what addr.primary judges).
pub(crate) fn assigned_primary(s: &Snapshot) -> Option<Subject> {
    s.metadata
        .ok()
        .and_then(|m| m.primary())
        .and_then(|e| e.primary_ip)
        .map(|ip| Subject::Address(IpAddr::V4(ip)))
}

/// Which interface is primary and how we know.
#[derive(Debug)]
pub struct Primary<'a> {
    pub link: &'a Link,
    /// `metadata MAC`, `default route`, or `only addressed interface`.
    pub chosen_by: &'static str,
}

/// Why the primary interface could not be named.
#[derive(Debug, PartialEq)]
pub enum NoPrimary {
    /// The links could not be read.
    Links(String),
    /// Metadata names a MAC that no interface has.
    MacMissing(String),
    /// No metadata, no default route, no addressed interface.
    Unknowable,
}

/// DESIGN.md: the metadata MAC's interface, else the default-route device.
pub fn primary_interface(s: &Snapshot) -> Result<Primary<'_>, NoPrimary> {
    let links = s.links.ok().map_err(|e| NoPrimary::Links(e.to_string()))?;
    if let Some(md) = s.metadata.ok() {
        return link_with_mac(links, &md.mac)
            .map(|link| Primary {
                link,
                chosen_by: "metadata MAC",
            })
            .ok_or_else(|| NoPrimary::MacMissing(md.mac.clone()));
    }
    if let Some(link) = default_routes_v4(s)
        .first()
        .and_then(|r| r.oif.or_else(|| r.nexthops.first().map(|h| h.oif)))
        .and_then(|oif| links.iter().find(|l| l.index == oif))
    {
        return Ok(Primary {
            link,
            chosen_by: "default route",
        });
    }
    let addrs = s.addresses.ok().map(Vec::as_slice).unwrap_or_default();
    crate::snapshot::reply_sources(links, addrs)
        .first()
        .and_then(|a| links.iter().find(|l| l.index == a.ifindex))
        .map(|link| Primary {
            link,
            chosen_by: "only addressed interface",
        })
        .ok_or(NoPrimary::Unknowable)
}

/// The OS interface with this MAC (metadata MACs are lower-case; compare case-insensitively).
pub fn link_with_mac<'a>(links: &'a [Link], mac: &str) -> Option<&'a Link> {
    let mut with_mac = links.iter().filter(|l| {
        l.mac
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(mac))
    });
    let first = with_mac.next()?;
    // A bridge or bond takes its first port's MAC: the ENI is the port.
    let is_controller = |l: &Link| links.iter().any(|p| p.controller == Some(l.index));
    if !is_controller(first) {
        return Some(first);
    }
    Some(with_mac.find(|l| !is_controller(l)).unwrap_or(first))
}

/// The finding for a check that cannot proceed without the primary interface.
pub fn no_primary(id: &str, why: NoPrimary) -> Finding {
    match why {
        NoPrimary::Links(e) => Finding::unknown(id, format!("cannot read the interfaces: {e}")),
        NoPrimary::MacMissing(mac) => Finding::unknown(
            id,
            format!("no interface has the primary ENI's MAC {mac} (see link.primary)"),
        ),
        NoPrimary::Unknowable => Finding::unknown(
            id,
            "cannot tell which interface is primary: no metadata, no default route, no addressed interface",
        ),
    }
}

/// For checks comparing with what the cloud assigned: the metadata, or the finding to return —
/// `skipped` where it was deliberately not asked (not ECS, `mode = "never"`), `unknown` where
/// asking failed (timeout, garbage, ...), each with the reason.
pub fn assigned_values<'a>(
    s: &'a Snapshot,
    id: &str,
    what: &str,
) -> Result<&'a crate::snapshot::InstanceMetadata, Finding> {
    use crate::snapshot::MetadataState;
    match &s.metadata {
        MetadataState::Ok(m) => Ok(m),
        MetadataState::NotProbed { reason } => Err(Finding::skipped(
            id,
            format!("{what}: instance metadata not consulted ({reason})"),
        )),
        MetadataState::Failed { reason } => Err(Finding::unknown(
            id,
            format!("{what}: cannot read the assigned values: {reason}"),
        )),
    }
}

/// Default routes of one family in the main table, best (lowest metric) first.
fn default_routes(s: &Snapshot, v6: bool) -> Vec<&Route> {
    let mut v: Vec<&Route> = s
        .routes
        .ok()
        .map(|rs| {
            rs.iter()
                .filter(|r| {
                    r.table == TABLE_MAIN && r.is_default() && r.destination.addr().is_ipv6() == v6
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|r| r.metric.unwrap_or(0));
    v
}

/// IPv4 default routes of the main table, best (lowest metric) first.
pub fn default_routes_v4(s: &Snapshot) -> Vec<&Route> {
    default_routes(s, false)
}

/// IPv6 default routes of the main table, best (lowest metric) first.
pub fn default_routes_v6(s: &Snapshot) -> Vec<&Route> {
    default_routes(s, true)
}

/// The IPv6 addresses the cloud assigned to the primary ENI (metadata `ipv6s`).
pub fn assigned_ipv6s(s: &Snapshot) -> Vec<std::net::Ipv6Addr> {
    s.metadata
        .ok()
        .and_then(|m| m.primary())
        .map(|e| e.ipv6s.clone())
        .unwrap_or_default()
}

/// Whether this instance uses IPv6 beyond its own link, so its IPv6 routes and gateway are
/// judged: the cloud assigned it IPv6 addresses, it has an IPv6 default route, or the client
/// is an IPv6 address. An instance with only link-local or on-link IPv6 is not judged.
pub fn ipv6_in_use(s: &Snapshot) -> bool {
    !assigned_ipv6s(s).is_empty()
        || !default_routes_v6(s).is_empty()
        || s.client.is_some_and(|c| c.is_ipv6())
}

/// One finding from an IPv4 verdict and an IPv6 one (None: IPv6 not judged). The worse
/// status leads with its summary and remedy; both summaries are kept; the IPv6 evidence goes
/// under `ipv6`.
pub(crate) fn with_ipv6(v4: Finding, v6: Option<Finding>) -> Finding {
    let Some(v6) = v6 else { return v4 };
    let mut out = v4;
    if !out.evidence.is_object() {
        out.evidence = serde_json::json!({});
    }
    out.evidence["ipv6"] = v6.evidence;
    if v6.status > out.status && v6.status >= Status::Warn {
        out.summary = if out.status == Status::Ok {
            v6.summary
        } else {
            format!("{}; {}", v6.summary, out.summary)
        };
        out.status = v6.status;
        // The worse verdict names the cause.
        out.cause = v6.cause.or(out.cause);
        out.remedy = v6.remedy.into_iter().chain(out.remedy).collect();
    } else {
        out.summary = format!("{}; {}", out.summary, v6.summary);
        out.cause = out.cause.or(v6.cause);
        out.remedy.extend(v6.remedy);
    }
    out
}

pub fn link_name(s: &Snapshot, index: u32) -> String {
    s.links
        .ok()
        .ok()
        .and_then(|ls| ls.iter().find(|l| l.index == index))
        .map(|l| l.name.clone())
        .unwrap_or_else(|| format!("if{index}"))
}

/// Global IPv4 addresses on an interface.
pub fn ipv4_on(s: &Snapshot, ifindex: u32) -> Vec<&Address> {
    s.addresses
        .ok()
        .map(|v| {
            v.iter()
                .filter(|a| a.ifindex == ifindex && a.address.is_ipv4() && a.scope == "global")
                .collect()
        })
        .unwrap_or_default()
}

/// The address replies are judged for: `--client`, else the stand-in the lookups used.
pub fn reply_target(s: &Snapshot) -> IpAddr {
    s.reply_target()
}

/// The reply target, as a person reads it.
pub fn target_label(s: &Snapshot) -> String {
    match s.client {
        Some(IpAddr::V4(c)) => format!("client {c}"),
        _ => format!("an Internet client (stand-in {})", reply_target(s)),
    }
}

#[cfg(test)]
pub mod fixture;

#[cfg(test)]
mod registry_tests {
    use super::*;

    /// Ids are unique, each entry says what it decides, reads and can name, and each judge
    /// answers under its own id, in catalogue order.
    #[test]
    fn the_registry_is_complete_and_each_judge_answers_for_its_id() {
        let ids: Vec<&str> = catalogue().map(|c| c.id).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "duplicate ids in {ids:?}");
        for c in catalogue() {
            assert!(!c.decides.is_empty(), "{}", c.id);
            assert!(!c.evidence.is_empty(), "{}", c.id);
            assert!(!c.causes.is_empty(), "{}", c.id);
            assert!(c
                .causes
                .iter()
                .all(|k| !k.cause.is_empty() && !k.remedy.is_empty()));
        }
        let judged: Vec<String> = evaluate(&fixture::healthy(), &fixture::criteria())
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(judged, ids);
        assert!(find("sysctl.icmp_echo").is_some());
        assert!(find("sysctl").is_none());
    }
}

#[cfg(test)]
mod cause_tests {
    use super::fixture::*;
    use super::*;
    use crate::report::Status;

    /// Every warn and fail of a whole evaluation names a cause its check registers, on a
    /// spread of faults (single-cause checks are named by `classified`, the others at their
    /// verdict); ok findings name none; cause ids are unique within a check.
    #[test]
    fn every_warn_and_fail_names_a_registered_cause() {
        type Edit = Box<dyn Fn(&mut Snapshot)>;
        let faults: Vec<(&str, Edit)> = vec![
            ("link down", Box::new(|s| links(s)[1].admin_up = false)),
            (
                "no default route",
                Box::new(|s| routes(s).retain(|r| !r.is_default())),
            ),
            (
                "echo ignored",
                Box::new(|s| {
                    sysctls(s).insert("net.ipv4.icmp_echo_ignore_all".into(), sysctl("1"));
                }),
            ),
            ("address missing", Box::new(|s| addresses(s).clear())),
            // A merged IPv4 + IPv6 verdict (addr.primary, route.default) keeps the cause.
            (
                "IPv6 address missing",
                Box::new(|s| {
                    crate::checks::fixture::with_ipv6(s);
                    addresses(s).retain(|a| !a.address.is_ipv6());
                }),
            ),
            (
                "IPv6 default route missing",
                Box::new(|s| {
                    crate::checks::fixture::with_ipv6(s);
                    remove_ipv6_default(s);
                }),
            ),
        ];
        let mut named = 0;
        for (what, edit) in faults {
            let mut s = healthy();
            edit(&mut s);
            for f in evaluate(&s, &criteria()) {
                let check = find(&f.id).unwrap();
                match f.status {
                    Status::Warn | Status::Fail => {
                        let cause = f.cause.as_deref().unwrap_or_else(|| {
                            panic!(
                                "{what}: {} is {:?} and names no cause: {}",
                                f.id, f.status, f.summary
                            )
                        });
                        assert!(
                            check.causes.iter().any(|c| c.id == cause),
                            "{what}: {}: {cause}",
                            f.id
                        );
                        named += 1;
                    }
                    _ => assert_eq!(f.cause, None, "{what}: {}", f.id),
                }
            }
        }
        assert!(named >= 4, "the faults were seen: {named}");
        for c in catalogue() {
            let mut ids: Vec<&str> = c.causes.iter().map(|k| k.id).collect();
            assert!(!ids.is_empty(), "{} registers no cause", c.id);
            assert!(
                ids.iter().all(|i| !i.is_empty()
                    && i.chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')),
                "{}: {ids:?}",
                c.id
            );
            ids.sort();
            let n = ids.len();
            ids.dedup();
            assert_eq!(ids.len(), n, "{}: a cause id twice", c.id);
        }
    }
}
