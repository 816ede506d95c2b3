//! `dns.resolution`: each name given (`check --domain`, `[dns] domains`) resolves, as this
//! guest resolves it, to this instance's public IP or EIP. Evidence: per name, the source
//! (`/etc/hosts` or DNS), the nameserver that answered, its answer code, the addresses and
//! their TTL; the public addresses from the metadata (`eipv4`, `public-ipv4`) and, where read,
//! the cloud API's. In a mainland China region (metadata `region-id` `cn-*`, Hong Kong aside)
//! a name that resolves right is said to need an ICP filing that the guest cannot see —
//! never a filing state it did not read.

use std::net::IpAddr;

use serde_json::json;

use super::{Cause, Check};
use crate::report::{Finding, Status};
use crate::snapshot::{CloudState, Resolution, Snapshot};

pub const RESOLUTION: &str = "dns.resolution";

pub const CHECKS: &[Check] = &[Check {
    id: RESOLUTION,
    decides: "each name given with --domain or [dns] domains resolves, as this guest resolves it, to this instance's public IP or EIP",
    evidence: &[
        "nsswitch.conf's hosts order, /etc/hosts, resolv.conf's nameservers and search list",
        "A and AAAA answers: the nameserver asked, the answer code, the addresses and their TTL",
        "the public IP and EIP from the metadata, and from the cloud API where it is read",
    ],
    causes: &[
        Cause { id: "domain_nxdomain", cause: "the name does not exist (NXDOMAIN): no record, or a typo", remedy: "add an A record for the name pointing at the public IP (Alibaba Cloud DNS console, or the DNS provider's)" },
        Cause { id: "domain_no_address", cause: "the name exists but has no A or AAAA record", remedy: "add an A record pointing at the public IP" },
        Cause { id: "domain_wrong_address", cause: "the name resolves, but not to this instance's public IP or EIP (an old record, another instance, a pin in /etc/hosts)", remedy: "point the A record at the public IP (and wait out the TTL), or remove the /etc/hosts line" },
    ],
    judge: |s, _| resolution(s),
}];

/// This instance's public addresses and where each was read.
fn public_addresses(s: &Snapshot) -> Vec<(IpAddr, &'static str)> {
    let mut out: Vec<(IpAddr, &'static str)> = Vec::new();
    let mut add = |ip: IpAddr, from: &'static str| {
        if !out.iter().any(|(i, _)| *i == ip) {
            out.push((ip, from));
        }
    };
    if let Some(m) = s.metadata.ok() {
        for ip in [m.eipv4, m.public_ipv4].into_iter().flatten() {
            add(IpAddr::V4(ip), "metadata");
        }
    }
    if let CloudState::Ok(f) = &s.cloud {
        if let Ok(i) = f.instance.ok() {
            for ip in i.public_ips.iter().chain(i.eip.iter()) {
                add(IpAddr::V4(*ip), "cloud API");
            }
        }
        if let Ok(enis) = f.enis.ok() {
            for ip in enis.iter().filter_map(|e| e.public_ip) {
                add(IpAddr::V4(ip), "cloud API");
            }
        }
    }
    out
}

/// A mainland China region (ICP filing applies): `cn-*` except Hong Kong.
fn mainland(region: &str) -> bool {
    region.starts_with("cn-") && region != "cn-hongkong"
}

/// One name's verdict: status, cause, the line said.
fn judge_name(r: &Resolution, public: &[IpAddr]) -> (Status, Option<&'static str>, String) {
    let via = r
        .resolver
        .as_deref()
        .map(|v| {
            format!(
                " ({} {v})",
                if r.source == "files" { "from" } else { "asked" }
            )
        })
        .unwrap_or_default();
    let ttl = r.ttl_s.map(|t| format!(", TTL {t} s")).unwrap_or_default();
    let shown: Vec<String> = r.addresses.iter().map(IpAddr::to_string).collect();
    if r.addresses.is_empty() {
        return match (r.rcode.as_deref(), &r.error) {
            (Some("NXDOMAIN"), _) => (
                Status::Fail,
                Some("domain_nxdomain"),
                format!("{} does not exist: NXDOMAIN{via}", r.name),
            ),
            (Some("NOERROR"), _) => (
                Status::Fail,
                Some("domain_no_address"),
                format!("{} has no A or AAAA record{via}", r.name),
            ),
            (Some(code), _) => (
                Status::Unknown,
                None,
                format!(
                    "{} could not be resolved: the nameserver answered {code}{via}",
                    r.name
                ),
            ),
            (None, Some(e)) => (
                Status::Unknown,
                None,
                format!("{} could not be resolved: {e}", r.name),
            ),
            (None, None) => (
                Status::Unknown,
                None,
                format!("{} was not resolved", r.name),
            ),
        };
    }
    if public.is_empty() {
        return (
            Status::Unknown,
            None,
            format!(
                "{} resolves to {}{via}{ttl}, but this instance's public IP is not known (no metadata, no cloud API)",
                r.name,
                shown.join(", ")
            ),
        );
    }
    if r.addresses.iter().any(|a| public.contains(a)) {
        return (
            Status::Ok,
            None,
            format!("{} resolves to {}{via}{ttl}", r.name, shown.join(", ")),
        );
    }
    let pinned = if r.source == "files" {
        " — pinned in /etc/hosts, which this guest reads before DNS"
    } else {
        ""
    };
    (
        Status::Fail,
        Some("domain_wrong_address"),
        format!(
            "{} resolves to {}{via}{ttl}, not to this instance's public IP {}{pinned}",
            r.name,
            shown.join(", "),
            public
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    )
}

pub fn resolution(s: &Snapshot) -> Finding {
    let names = match s.dns.ok() {
        Ok(n) => n,
        Err(e) => return Finding::unknown(RESOLUTION, format!("cannot resolve: {e}")),
    };
    if names.is_empty() {
        return Finding::skipped(
            RESOLUTION,
            "no domain to check: give one with --domain NAME, or [dns] domains in the config",
        );
    }
    let public = public_addresses(s);
    let public_ips: Vec<IpAddr> = public.iter().map(|(ip, _)| *ip).collect();
    let region = s.metadata.ok().and_then(|m| m.region_id.clone());
    let judged: Vec<(Status, Option<&str>, String)> =
        names.iter().map(|r| judge_name(r, &public_ips)).collect();
    let evidence = json!({
        "public_addresses": public.iter().map(|(ip, from)| json!({"ip": ip, "from": from})).collect::<Vec<_>>(),
        "region": region,
        "names": names.iter().zip(&judged).map(|(r, (st, cause, _))| json!({
            "name": r.name, "status": st.as_str(), "cause": cause, "source": r.source,
            "resolver": r.resolver, "asked": r.asked, "rcode": r.rcode,
            "addresses": r.addresses, "ttl_s": r.ttl_s, "error": r.error,
        })).collect::<Vec<_>>(),
    });
    // The names with this status, and their lines.
    let with = |st: Status| {
        names
            .iter()
            .zip(&judged)
            .filter(move |(_, (s, _, _))| *s == st)
    };
    let lines = |st: Status| {
        with(st)
            .map(|(_, (_, _, l))| l.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some((first, (_, cause, _))) = with(Status::Fail).next() {
        let mut remedy = vec![format!(
            "point the name's A record at {} (Alibaba Cloud DNS console → the domain → records), then wait out the old TTL",
            public_ips
                .first()
                .map(IpAddr::to_string)
                .unwrap_or_else(|| "the public IP".into())
        )];
        if first.source == "files" {
            remedy.insert(
                0,
                "remove or correct the name's line in /etc/hosts".to_string(),
            );
        }
        remedy.push(format!(
            "check it yourself: dig {} A +noall +answer",
            first.name
        ));
        // Every failing verdict of judge_name names its cause.
        return Finding::fail(RESOLUTION, lines(Status::Fail))
            .cause(cause.unwrap_or("domain_wrong_address"))
            .evidence(evidence)
            .remedy(remedy);
    }
    if with(Status::Unknown).next().is_some() {
        return Finding::unknown(RESOLUTION, lines(Status::Unknown)).evidence(evidence);
    }
    let lines: Vec<&str> = judged.iter().map(|(_, _, l)| l.as_str()).collect();
    let mut summary = lines.join("; ");
    if region.as_deref().is_some_and(mainland) {
        summary.push_str(&format!(
            ": this instance is in a mainland China region ({}), where a website needs an ICP filing — the guest cannot see whether the name has one: check it in the ICP filing console (beian.aliyun.com) if browsers are refused while the ping works",
            region.as_deref().unwrap_or_default()
        ));
    }
    Finding::ok(RESOLUTION, summary).evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;
    use crate::snapshot::Gathered;

    /// A made-up public IP (documentation range).
    const PUBLIC: &str = "198.51.100.10";

    fn with_names(names: Vec<Resolution>) -> Snapshot {
        let mut s = healthy();
        metadata(&mut s).public_ipv4 = Some(v4(PUBLIC));
        s.dns = Gathered::Ok(names);
        s
    }

    fn answered(name: &str, ips: &[&str], rcode: &str) -> Resolution {
        Resolution {
            name: name.into(),
            source: "dns".into(),
            resolver: Some("100.100.2.136:53".into()),
            asked: Some(name.into()),
            addresses: ips.iter().map(|i| ip(i)).collect(),
            ttl_s: (!ips.is_empty()).then_some(600),
            rcode: Some(rcode.into()),
            error: None,
        }
    }

    #[test]
    fn right_address_is_ok_and_names_resolver_and_ttl() {
        let f = resolution(&with_names(vec![answered(
            "www.example.com",
            &[PUBLIC],
            "NOERROR",
        )]));
        assert_eq!(f.status, Status::Ok, "{}", f.summary);
        assert!(
            f.summary.contains("100.100.2.136:53") && f.summary.contains("TTL 600 s"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["names"][0]["addresses"][0], PUBLIC);
    }

    #[test]
    fn wrong_address_nxdomain_and_no_record_fail_with_their_causes() {
        let f = resolution(&with_names(vec![answered(
            "www.example.com",
            &["203.0.113.9"],
            "NOERROR",
        )]));
        assert_eq!(
            (f.status, f.cause.as_deref()),
            (Status::Fail, Some("domain_wrong_address")),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("203.0.113.9")
                && f.summary.contains("not to this instance's public IP"),
            "{}",
            f.summary
        );
        let f = resolution(&with_names(vec![answered(
            "nx.example.com",
            &[],
            "NXDOMAIN",
        )]));
        assert_eq!(
            (f.status, f.cause.as_deref()),
            (Status::Fail, Some("domain_nxdomain"))
        );
        let f = resolution(&with_names(vec![answered(
            "empty.example.com",
            &[],
            "NOERROR",
        )]));
        assert_eq!(
            (f.status, f.cause.as_deref()),
            (Status::Fail, Some("domain_no_address"))
        );
        // /etc/hosts pins it elsewhere: said, and its remedy first.
        let mut pinned = answered("www.example.com", &["203.0.113.9"], "NOERROR");
        pinned.source = "files".into();
        let f = resolution(&with_names(vec![pinned]));
        assert!(f.summary.contains("pinned in /etc/hosts"), "{}", f.summary);
        assert!(f.remedy[0].contains("/etc/hosts"), "{:?}", f.remedy);
    }

    #[test]
    fn a_timeout_or_an_unknown_public_ip_is_unknown_and_no_names_is_skipped() {
        let mut silent = answered("www.example.com", &[], "NOERROR");
        silent.rcode = None;
        silent.error = Some("100.100.2.136:53 did not answer within 1000 ms".into());
        let f = resolution(&with_names(vec![silent]));
        assert_eq!(f.status, Status::Unknown);
        assert!(
            f.summary.contains("did not answer within 1000 ms"),
            "{}",
            f.summary
        );
        let mut s = with_names(vec![answered(
            "www.example.com",
            &["203.0.113.9"],
            "NOERROR",
        )]);
        no_metadata(&mut s);
        // The cloud API's public IP still counts; without it too, nothing to compare with.
        assert_eq!(resolution(&s).status, Status::Fail);
        s.cloud = CloudState::NotProbed {
            reason: "made up".into(),
        };
        let f = resolution(&s);
        assert_eq!(f.status, Status::Unknown, "{}", f.summary);
        assert!(
            f.summary.contains("public IP is not known"),
            "{}",
            f.summary
        );
        assert_eq!(resolution(&healthy()).status, Status::Skipped);
    }

    #[test]
    fn icp_is_mentioned_in_mainland_regions_and_never_claimed() {
        let mut s = with_names(vec![answered("www.example.com", &[PUBLIC], "NOERROR")]);
        metadata(&mut s).region_id = Some("cn-hangzhou".into());
        let f = resolution(&s);
        assert_eq!(f.status, Status::Ok);
        assert!(
            f.summary.contains("ICP filing") && f.summary.contains("cannot see"),
            "{}",
            f.summary
        );
        metadata(&mut s).region_id = Some("cn-hongkong".into());
        assert!(!resolution(&s).summary.contains("ICP"));
        metadata(&mut s).region_id = Some("ap-southeast-1".into());
        assert!(!resolution(&s).summary.contains("ICP"));
    }
}
