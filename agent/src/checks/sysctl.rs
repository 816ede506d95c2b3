//! `sysctl.icmp_echo`, `sysctl.icmp_echo6`, `sysctl.rp_filter`, `sysctl.icmp_ratelimit`: kernel
//! parameters that make the guest ignore, filter or throttle pings. Evidence: the running value
//! (`/proc/sys`), the value after reboot (sysctl.d precedence) and, for `rp_filter`, the kernel's
//! reply-route lookups per interface.

use serde_json::json;

use super::{ipv4_on, link_name, target_label};
use crate::checks::{Cause, Check};
use crate::report::{Finding, Subject};
use crate::snapshot::{LookupOutcome, Snapshot, Sysctl};

pub const ICMP_ECHO: &str = "sysctl.icmp_echo";
pub const ICMP_ECHO6: &str = "sysctl.icmp_echo6";

/// Present whenever the kernel has IPv6 at all (gathered with the other sysctls).
const IPV6_PRESENT: &str = "net.ipv6.conf.all.disable_ipv6";
pub const RP_FILTER: &str = "sysctl.rp_filter";
pub const ICMP_RATELIMIT: &str = "sysctl.icmp_ratelimit";

/// This family's checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: ICMP_ECHO,
        decides: "the kernel answers IPv4 echo requests: net.ipv4.icmp_echo_ignore_all is 0 now and after reboot",
        evidence: &["/proc/sys/net/ipv4/icmp_echo_ignore_all", "sysctl.conf and sysctl.d files, in systemd-sysctl's precedence"],
        causes: &[
            Cause { id: "echo_ignored_now", cause: "echo requests are ignored now", remedy: "sysctl -w net.ipv4.icmp_echo_ignore_all=0" },
            Cause { id: "echo_ignored_at_boot", cause: "a sysctl.d or sysctl.conf line sets it to 1 at boot", remedy: "edit the winning file and line the evidence names" },
        ],
        judge: |s, _| {
            icmp_echo(s).judges([Subject::Sysctl("net.ipv4.icmp_echo_ignore_all".into())])
        },
    },
    Check {
        id: ICMP_ECHO6,
        decides: "the kernel answers IPv6 echo requests: net.ipv6.icmp.echo_ignore_all is 0 now and after reboot",
        evidence: &["/proc/sys/net/ipv6/icmp/echo_ignore_all", "sysctl.conf and sysctl.d files"],
        causes: &[
            Cause { id: "echo6_ignored_now", cause: "IPv6 echo requests are ignored now", remedy: "sysctl -w net.ipv6.icmp.echo_ignore_all=0" },
            Cause { id: "echo_ignored_at_boot", cause: "a sysctl.d or sysctl.conf line sets it to 1 at boot", remedy: "edit the winning file and line the evidence names" },
        ],
        judge: |s, _| {
            icmp_echo6(s).judges([Subject::Sysctl("net.ipv6.icmp.echo_ignore_all".into())])
        },
    },
    Check {
        id: RP_FILTER,
        decides: "strict reverse-path filtering does not drop requests on a multi-homed instance whose replies would leave by another interface",
        evidence: &["net.ipv4.conf.{all,IF}.rp_filter", "the kernel's reply-route lookups per interface"],
        causes: &[
            Cause { id: "strict_rp_filter", cause: "strict rp_filter on an interface whose replies route out of another", remedy: "sysctl -w net.ipv4.conf.IF.rp_filter=2 net.ipv4.conf.all.rp_filter=2 (loose mode), or add policy routes" },
        ],
        judge: |s, _| rp_filter(s),
    },
    Check {
        id: ICMP_RATELIMIT,
        decides: "echo replies are not throttled: icmp_ratemask does not include echo reply, or icmp_ratelimit is 0",
        evidence: &["net.ipv4.icmp_ratelimit, net.ipv4.icmp_ratemask, net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst", "OutRateLimit counters (kernels ≥ 6.0)"],
        causes: &[
            Cause { id: "echo_reply_rate_limited", cause: "echo replies are in the rate mask", remedy: "sysctl -w net.ipv4.icmp_ratemask=6168 (the default, without echo reply)" },
        ],
        judge: |s, _| icmp_ratelimit(s),
    },
];

/// A sysctl's running value, or the finding that says why it is unknown.
fn value<'a>(s: &'a Snapshot, id: &str, name: &str) -> Result<(&'a Sysctl, &'a str), Finding> {
    let map = s
        .sysctls
        .ok()
        .map_err(|e| Finding::unknown(id, format!("cannot read sysctls: {e}")))?;
    let entry = map
        .get(name)
        .ok_or_else(|| Finding::unknown(id, format!("{name} was not gathered")))?;
    match (&entry.now, &entry.error) {
        (Some(v), _) => Ok((entry, v.as_str())),
        (None, e) => Err(Finding::unknown(
            id,
            format!("cannot read {name}: {}", e.as_deref().unwrap_or("no value")),
        )),
    }
}

fn persisted_evidence(entry: &Sysctl) -> serde_json::Value {
    match &entry.after_reboot {
        Some(p) => json!({"value": p.value, "file": p.file, "line": p.line}),
        None => json!(null),
    }
}

/// `*.echo_ignore_all`: 1 means the kernel ignores every echo request.
fn echo_ignore(s: &Snapshot, id: &str, name: &str, family: &str) -> Finding {
    let absent = s
        .sysctls
        .ok()
        .is_ok_and(|m| m.get(name).is_some_and(|e| e.absent));
    let (entry, now) = match value(s, id, name) {
        Ok(v) => v,
        Err(_) if family == "IPv6" && absent => {
            // Kernels before 4.20 have IPv6 but not this knob: nothing can make them ignore
            // IPv6 pings. Without even disable_ipv6, IPv6 itself is off.
            let has_ipv6 = s
                .sysctls
                .ok()
                .is_ok_and(|m| m.get(IPV6_PRESENT).is_some_and(|e| e.now.is_some()));
            return Finding::skipped(
                id,
                if has_ipv6 {
                    format!("this kernel (before 4.20) has no {name}: it cannot be set to ignore IPv6 pings")
                } else {
                    format!("IPv6 is disabled on this kernel ({name} does not exist)")
                },
            )
            .evidence(json!({"sysctl": name, "exists": false, "ipv6": has_ipv6}));
        }
        Err(f) => return f,
    };
    let after = entry.after_reboot.as_ref();
    let evidence = json!({"sysctl": name, "now": now, "after_reboot": persisted_evidence(entry)});
    let fix_file = match after {
        Some(p) if p.value != "0" => format!(
            "persist it: change line {} of {} to `{name} = 0`",
            p.line, p.file
        ),
        _ => format!("persist it: echo '{name} = 0' > /etc/sysctl.d/99-allow-ping.conf"),
    };
    if now != "0" {
        return Finding::fail(
            id,
            format!("{name} = {now}: the kernel ignores every {family} ping"),
        )
        .cause(if id == ICMP_ECHO6 {
            "echo6_ignored_now"
        } else {
            "echo_ignored_now"
        })
        .evidence(evidence)
        .remedy([format!("sysctl -w {name}=0"), fix_file]);
    }
    if let Some(p) = after.filter(|p| p.value != "0") {
        return Finding::warn(
            id,
            format!(
                "{name} is 0 now but {}:{} sets {} at boot: pings stop after a reboot",
                p.file, p.line, p.value
            ),
        )
        .cause("echo_ignored_at_boot")
        .evidence(evidence)
        .remedy([fix_file]);
    }
    Finding::ok(id, format!("{name} = 0: the kernel answers {family} pings")).evidence(evidence)
}

pub fn icmp_echo(s: &Snapshot) -> Finding {
    echo_ignore(s, ICMP_ECHO, "net.ipv4.icmp_echo_ignore_all", "IPv4")
}

pub fn icmp_echo6(s: &Snapshot) -> Finding {
    echo_ignore(s, ICMP_ECHO6, "net.ipv6.icmp.echo_ignore_all", "IPv6")
}

pub fn rp_filter(s: &Snapshot) -> Finding {
    let (all_entry, all) = match value(s, RP_FILTER, "net.ipv4.conf.all.rp_filter") {
        Ok(v) => v,
        Err(f) => return f,
    };
    let _ = all_entry;
    let all: u8 = all.parse().unwrap_or(0);
    let links = match s.links.ok() {
        Ok(l) => l,
        Err(e) => return Finding::unknown(RP_FILTER, format!("cannot read the interfaces: {e}")),
    };
    let addressed: Vec<_> = links
        .iter()
        .filter(|l| !l.loopback && !ipv4_on(s, l.index).is_empty())
        .collect();
    let lookups = s.reply_lookups.ok().ok();
    let mut per_if = Vec::new();
    let mut strict_asym = Vec::new();
    let mut unknown = Vec::new();
    for l in &addressed {
        let name = format!("net.ipv4.conf.{}.rp_filter", l.name);
        let own: u8 = match value(s, RP_FILTER, &name) {
            Ok((_, v)) => v.parse().unwrap_or(0),
            Err(f) => {
                unknown.push(f.summary);
                continue;
            }
        };
        // The kernel applies the larger of conf.all and conf.<if>.
        let effective = all.max(own);
        per_if.push(json!({"interface": l.name, "own": own, "effective": effective}));
        if effective != 1 {
            continue;
        }
        // rp_filter is IPv4's.
        for lk in lookups
            .into_iter()
            .flatten()
            .filter(|lk| lk.source_ifindex == l.index && lk.source.is_ipv4())
        {
            let out = match &lk.outcome {
                LookupOutcome::Route { oif, .. } => *oif,
                LookupOutcome::Refused { .. } => None,
            };
            if out != Some(l.index) {
                let leaves = out
                    .map(|o| link_name(s, o))
                    .unwrap_or_else(|| "nowhere".into());
                strict_asym.push((l.name.clone(), lk.source, leaves));
            }
        }
    }
    let mut strict_ifs: Vec<&str> = strict_asym.iter().map(|(i, _, _)| i.as_str()).collect();
    strict_ifs.dedup();
    let evidence = json!({"conf.all": all, "interfaces": per_if, "multi_homed": addressed.len() > 1,
                          "strict_asymmetric": strict_ifs});
    if let Some((ifname, src, leaves)) = strict_asym.first() {
        return Finding::fail(RP_FILTER, format!("strict rp_filter on {ifname} drops pings from {} to {src}: the route back leaves by {leaves}, not {ifname}", target_label(s)))
            .evidence(evidence)
            .remedy([
                format!("sysctl -w net.ipv4.conf.{ifname}.rp_filter=2 net.ipv4.conf.all.rp_filter=2   (loose mode)"),
                format!("or route replies from {src} back out of {ifname}: ip rule add from {src} table 100; ip route add default via <gateway> dev {ifname} table 100"),
                "persist it in /etc/sysctl.d/ (e.g. net.ipv4.conf.all.rp_filter = 2)".to_string(),
            ]);
    }
    if !unknown.is_empty() {
        return Finding::unknown(RP_FILTER, unknown.join("; ")).evidence(evidence);
    }
    if lookups.is_none() && addressed.len() > 1 {
        return Finding::unknown(RP_FILTER, "multi-homed, but the reply-route lookups are missing: cannot tell whether strict rp_filter drops traffic").evidence(evidence);
    }
    Finding::ok(
        RP_FILTER,
        if addressed.len() > 1 {
            "reverse-path filtering passes traffic on every interface".to_string()
        } else {
            "single-homed: reverse-path filtering cannot drop pings".to_string()
        },
    )
    .evidence(evidence)
}

pub fn icmp_ratelimit(s: &Snapshot) -> Finding {
    let (limit, mask) = match (
        value(s, ICMP_RATELIMIT, "net.ipv4.icmp_ratelimit"),
        value(s, ICMP_RATELIMIT, "net.ipv4.icmp_ratemask"),
    ) {
        (Ok((_, l)), Ok((_, m))) => (l, m),
        (Err(f), _) | (_, Err(f)) => return f,
    };
    let (Ok(limit_ms), Ok(mask)) = (limit.parse::<u64>(), mask.parse::<u64>()) else {
        return Finding::unknown(
            ICMP_RATELIMIT,
            format!("unexpected values: icmp_ratelimit {limit:?}, icmp_ratemask {mask:?}"),
        );
    };
    let counters = s.icmp.ok().ok();
    // The global limiter (all clients together); older snapshots lack the burst.
    let global = |name: &str| {
        value(s, ICMP_RATELIMIT, name)
            .ok()
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let (per_sec, burst) = (
        global("net.ipv4.icmp_msgs_per_sec"),
        global("net.ipv4.icmp_msgs_burst"),
    );
    let evidence = json!({
        "icmp_ratelimit_ms": limit_ms, "icmp_ratemask": mask,
        "echo_reply_in_mask": mask & 1 == 1,
        "per_client_burst": PEER_BURST,
        "icmp_msgs_per_sec": per_sec, "icmp_msgs_burst": burst,
        "out_rate_limit_host": counters.and_then(|c| c.out_rate_limit_host),
        "out_rate_limit_global": counters.and_then(|c| c.out_rate_limit_global),
    });
    // Bit 0 of the mask is ICMP type 0, echo reply: only then are replies rate-limited (by
    // both the per-client and the global limiter; types outside the mask skip both).
    if mask & 1 == 0 || limit_ms == 0 {
        return Finding::ok(
            ICMP_RATELIMIT,
            "echo replies are not rate-limited (icmp_ratemask leaves type 0 out)",
        )
        .evidence(evidence);
    }
    let fixed = mask & !1;
    let remedy = [
        format!("sysctl -w net.ipv4.icmp_ratemask={fixed}"),
        format!("persist it: echo 'net.ipv4.icmp_ratemask = {fixed}' > /etc/sysctl.d/99-icmp-ratemask.conf"),
    ];
    let mut rate = format!(
        "echo replies are rate-limited to one per {limit_ms} ms per client after a burst of {PEER_BURST} (icmp_ratelimit)"
    );
    if let (Some(per_sec), Some(burst)) = (per_sec, burst) {
        rate.push_str(&format!(
            " and to {per_sec}/s after a burst of {burst} across all clients (icmp_msgs_per_sec, icmp_msgs_burst)"
        ));
    }
    if limit_ms > 1000 {
        return Finding::fail(
            ICMP_RATELIMIT,
            format!("{rate}: a ping every second loses most replies"),
        )
        .evidence(evidence)
        .remedy(remedy);
    }
    Finding::warn(
        ICMP_RATELIMIT,
        format!("{rate}: fast or flood pings lose replies"),
    )
    .evidence(evidence)
    .remedy(remedy)
}

/// The per-client token bucket holds this many replies (the kernel's XRLIM_BURST_FACTOR).
const PEER_BURST: u64 = 6;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::report::Status;
    use crate::snapshot::{Gathered, Link, PersistedSysctl};

    fn set(name: &'static str, v: &'static str) -> impl FnOnce(&mut Snapshot) {
        move |s| {
            sysctls(s).insert(name.into(), sysctl(v));
        }
    }

    #[test]
    fn echo_paths() {
        assert_eq!(judge(icmp_echo, |_| {}).status, Status::Ok);
        let f = judge(icmp_echo, set("net.ipv4.icmp_echo_ignore_all", "1"));
        assert_eq!(f.status, Status::Fail);
        assert_eq!(f.remedy[0], "sysctl -w net.ipv4.icmp_echo_ignore_all=0");
        let f = judge(icmp_echo, |s| {
            sysctls(s)
                .get_mut("net.ipv4.icmp_echo_ignore_all")
                .unwrap()
                .after_reboot = Some(PersistedSysctl {
                value: "1".into(),
                file: "/etc/sysctl.conf".into(),
                line: 7,
            });
        });
        assert_eq!(f.status, Status::Warn);
        assert!(f.summary.contains("/etc/sysctl.conf:7"));
        assert!(f.remedy[0].contains("line 7 of /etc/sysctl.conf"));
        let f = judge(icmp_echo, |s| {
            sysctls(s).insert(
                "net.ipv4.icmp_echo_ignore_all".into(),
                crate::snapshot::Sysctl {
                    now: None,
                    error: Some("permission denied".into()),
                    after_reboot: None,
                    absent: false,
                },
            );
        });
        assert_eq!(f.status, Status::Unknown);
        assert!(f.summary.contains("permission denied"));
        assert_eq!(
            judge(icmp_echo, |s| s.sysctls = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    /// The kernel has no `net.ipv6.icmp.echo_ignore_all` (IPv6 off, or a kernel before 4.20).
    fn echo6_knob_absent(s: &mut Snapshot) {
        sysctls(s).insert(
            "net.ipv6.icmp.echo_ignore_all".into(),
            crate::snapshot::Sysctl {
                now: None,
                error: Some(
                    "/proc/sys/net/ipv6/icmp/echo_ignore_all does not exist on this kernel".into(),
                ),
                after_reboot: None,
                absent: true,
            },
        );
    }

    #[test]
    fn echo6_paths() {
        assert_eq!(judge(icmp_echo6, |_| {}).status, Status::Ok);
        assert_eq!(
            judge(icmp_echo6, set("net.ipv6.icmp.echo_ignore_all", "1")).status,
            Status::Fail
        );
        let f = judge(icmp_echo6, echo6_knob_absent);
        assert_eq!(f.status, Status::Skipped);
        assert!(f.summary.contains("IPv6 is disabled"), "{}", f.summary);
        // IPv6 present, the knob absent: a kernel before 4.20.
        let f = judge(icmp_echo6, |s| {
            echo6_knob_absent(s);
            sysctls(s).insert(IPV6_PRESENT.into(), sysctl("0"));
        });
        assert_eq!(f.status, Status::Skipped);
        assert!(f.summary.contains("before 4.20"), "{}", f.summary);
        // The decision follows the recorded absence, not the wording of the error.
        let f = judge(icmp_echo6, |s| {
            echo6_knob_absent(s);
            if let Some(e) = sysctls(s).get_mut("net.ipv6.icmp.echo_ignore_all") {
                e.absent = false;
            }
        });
        assert_eq!(f.status, Status::Unknown, "{}", f.summary);
        assert_eq!(
            judge(icmp_echo6, |s| {
                sysctls(s).remove("net.ipv6.icmp.echo_ignore_all");
            })
            .status,
            Status::Unknown
        );
    }

    fn multi_homed(s: &mut Snapshot, reply_oif: u32) {
        links(s).push(Link {
            index: 3,
            name: "eth1".into(),
            admin_up: true,
            carrier: true,
            operstate: "up".into(),
            ..Default::default()
        });
        addresses(s).push(crate::snapshot::Address {
            ifindex: 3,
            address: ip("10.78.0.10"),
            prefix_len: 24,
            scope: "global".into(),
        });
        sysctls(s).insert("net.ipv4.conf.eth1.rp_filter".into(), sysctl("1"));
        let mut l = lookup("10.78.0.10", reply_oif, "unicast");
        l.source_ifindex = 3;
        if let Gathered::Ok(v) = &mut s.reply_lookups {
            v.push(l);
        }
    }

    #[test]
    fn rp_filter_paths() {
        assert_eq!(
            judge(rp_filter, |_| {}).summary,
            "single-homed: reverse-path filtering cannot drop pings"
        );
        let f = judge(rp_filter, |s| multi_homed(s, 2));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("strict rp_filter on eth1") && f.summary.contains("leaves by eth0"),
            "{}",
            f.summary
        );
        assert_eq!(judge(rp_filter, |s| multi_homed(s, 3)).status, Status::Ok);
        // Loose mode everywhere passes; conf.all = 1 makes eth1 strict even if its own is 2.
        assert_eq!(
            judge(rp_filter, |s| {
                multi_homed(s, 2);
                set("net.ipv4.conf.eth1.rp_filter", "2")(s);
            })
            .status,
            Status::Ok
        );
        assert_eq!(
            judge(rp_filter, |s| {
                multi_homed(s, 2);
                set("net.ipv4.conf.eth1.rp_filter", "0")(s);
                set("net.ipv4.conf.all.rp_filter", "1")(s);
            })
            .status,
            Status::Fail
        );
        assert_eq!(
            judge(rp_filter, |s| {
                multi_homed(s, 2);
                s.reply_lookups = Gathered::Failed("x".into());
            })
            .status,
            Status::Unknown
        );
        assert_eq!(
            judge(rp_filter, |s| s.sysctls = Gathered::Failed("x".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn ratelimit_paths() {
        assert_eq!(judge(icmp_ratelimit, |_| {}).status, Status::Ok);
        let f = judge(icmp_ratelimit, set("net.ipv4.icmp_ratemask", "6169"));
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.remedy[0], "sysctl -w net.ipv4.icmp_ratemask=6168");
        // The rate and the burst, per client and across all clients.
        assert!(
            f.summary
                .contains("one per 1000 ms per client after a burst of 6")
                && f.summary
                    .contains("1000/s after a burst of 50 across all clients"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["icmp_msgs_burst"], 50);
        // A snapshot without the global limiter's values still states the per-client burst.
        let f = judge(icmp_ratelimit, |s| {
            set("net.ipv4.icmp_ratemask", "6169")(s);
            sysctls(s).remove("net.ipv4.icmp_msgs_burst");
        });
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary.contains("after a burst of 6 (icmp_ratelimit)")
                && !f.summary.contains("all clients"),
            "{}",
            f.summary
        );
        let f = judge(icmp_ratelimit, |s| {
            set("net.ipv4.icmp_ratemask", "6169")(s);
            set("net.ipv4.icmp_ratelimit", "10000")(s);
        });
        assert_eq!(f.status, Status::Fail);
        assert_eq!(
            judge(icmp_ratelimit, |s| {
                set("net.ipv4.icmp_ratemask", "6169")(s);
                set("net.ipv4.icmp_ratelimit", "0")(s);
            })
            .status,
            Status::Ok
        );
        assert_eq!(
            judge(icmp_ratelimit, set("net.ipv4.icmp_ratemask", "abc")).status,
            Status::Unknown
        );
        assert_eq!(
            judge(icmp_ratelimit, |s| {
                sysctls(s).remove("net.ipv4.icmp_ratelimit");
            })
            .status,
            Status::Unknown
        );
    }
}
