//! `ecs-diag trace --client ADDR`: the instance's half of the seed's "bidirectional link test
//! (MTR)". Probes with increasing TTL (`sources::probes`, run only when a person asks) become
//! an mtr-style report — per hop: address, loss, sent, last / avg / best / worst / stdev RTT —
//! and a verdict: the first hop where loss starts and persists to the end (loss a later hop
//! does not show is that router rate-limiting its ICMP answers, and is said so), whether the
//! destination was reached, and whether the path leaves the instance's region (a jump in the
//! hops' round-trip time of a long-haul or cross-border link).

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use serde_json::json;

use crate::sources::probes::{self, Probe, Protocol};

/// A jump in average RTT between consecutive hops at least this large, ms: a long-haul link
/// (within a region, hops are a few ms apart; across a border or an ocean, tens to hundreds).
pub const LONG_HAUL_MS: f64 = 40.0;

/// One hop of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hop {
    pub hop: u8,
    /// The address that answered most often (None: nothing answered, "???").
    pub address: Option<Ipv4Addr>,
    /// Other addresses that answered at this TTL (load-balanced paths).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Ipv4Addr>,
    pub sent: u32,
    pub received: u32,
    pub loss_pct: f64,
    pub last_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub best_ms: Option<f64>,
    pub worst_ms: Option<f64>,
    pub stdev_ms: Option<f64>,
}

/// What the hops say.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub reached: bool,
    /// The first hop from which every hop to the end loses probes.
    pub loss_starts_at: Option<u8>,
    /// Hops that lose probes while a later hop does not: ICMP rate limiting there.
    pub rate_limited: Vec<u8>,
    /// The hop after which the RTT jumps by at least [`LONG_HAUL_MS`]: (hop, from ms, to ms).
    pub long_haul: Option<(u8, f64, f64)>,
    pub summary: String,
}

/// The hops from the probes, in TTL order.
pub fn hops(probes: &[Probe]) -> Vec<Hop> {
    let max = probes.iter().map(|p| p.ttl).max().unwrap_or(0);
    (1..=max)
        .map(|ttl| {
            let at: Vec<&Probe> = probes.iter().filter(|p| p.ttl == ttl).collect();
            let mut by_addr: Vec<(Ipv4Addr, usize)> = Vec::new();
            for a in at.iter().filter_map(|p| p.from) {
                match by_addr.iter_mut().find(|(x, _)| *x == a) {
                    Some(e) => e.1 += 1,
                    None => by_addr.push((a, 1)),
                }
            }
            by_addr.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            let mut rtts: Vec<(u32, f64)> = at
                .iter()
                .filter_map(|p| p.rtt_ms.map(|r| (p.round, r)))
                .collect();
            rtts.sort_by_key(|(round, _)| *round);
            let values: Vec<f64> = rtts.iter().map(|(_, r)| *r).collect();
            let sent = at.len() as u32;
            let received = values.len() as u32;
            let avg =
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
            let stdev = avg.map(|m| {
                (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / values.len() as f64).sqrt()
            });
            Hop {
                hop: ttl,
                address: by_addr.first().map(|(a, _)| *a),
                also: by_addr.iter().skip(1).map(|(a, _)| *a).collect(),
                sent,
                received,
                loss_pct: if sent == 0 {
                    0.0
                } else {
                    f64::from(sent - received) * 100.0 / f64::from(sent)
                },
                last_ms: values.last().copied(),
                avg_ms: avg,
                best_ms: values.iter().copied().reduce(f64::min),
                worst_ms: values.iter().copied().reduce(f64::max),
                stdev_ms: stdev,
            }
        })
        .collect()
}

/// Judges the hops.
pub fn verdict(hops: &[Hop], reached: bool, region: Option<&str>) -> Verdict {
    let n = hops.len();
    // Loss that persists: hop h and every hop after it lose probes.
    let loss_starts_at = (0..n)
        .find(|&i| hops[i..].iter().all(|h| h.loss_pct > 0.0))
        .map(|i| hops[i].hop);
    // A router that answers fewer probes than some hop after it lost: what it does not
    // answer still goes through, so its own ICMP answers are rate-limited.
    let rate_limited: Vec<u8> = hops
        .iter()
        .enumerate()
        .filter(|(i, h)| {
            h.loss_pct > 0.0
                && h.received > 0
                && hops[i + 1..]
                    .iter()
                    .map(|l| l.loss_pct)
                    .reduce(f64::min)
                    .is_some_and(|after| h.loss_pct > after)
        })
        .map(|(_, h)| h.hop)
        .collect();
    let mut long_haul = None;
    let mut prev: Option<f64> = None;
    for h in hops {
        if let Some(avg) = h.avg_ms {
            if let Some(p) = prev {
                if avg - p >= LONG_HAUL_MS && long_haul.is_none() {
                    long_haul = Some((h.hop, p, avg));
                }
            }
            prev = Some(avg);
        }
    }
    let name = |hop: u8| {
        hops.iter()
            .find(|h| h.hop == hop)
            .and_then(|h| h.address)
            .map_or_else(
                || format!("hop {hop} (???)"),
                |a| format!("hop {hop} ({a})"),
            )
    };
    let mut parts = Vec::new();
    match loss_starts_at {
        Some(h) => {
            let last = hops.last().map_or(0.0, |l| l.loss_pct);
            let before = h
                .checked_sub(1)
                .filter(|b| *b > 0)
                .map(|b| format!(" — between {} and it", name(b)))
                .unwrap_or_default();
            parts.push(format!(
                "loss starts at {}{before} and persists to the end ({last:.0}% at the last hop): packets are lost there, not just unanswered",
                name(h)
            ));
        }
        None if reached => parts.push("the client answered and no loss persists to it".into()),
        None => {}
    }
    if !reached {
        let last = hops.iter().rev().find(|h| h.received > 0);
        parts.push(match last {
            Some(l) => format!(
                "the client never answered: the last hop that did is {} (a firewall at or after it drops the probes, or the client does not answer them)",
                name(l.hop)
            ),
            None => "nothing answered, not even the first hop: see route.default and neigh.gateway".into(),
        });
    }
    if !rate_limited.is_empty() {
        parts.push(format!(
            "{} lose{} probes that later hops answer: ICMP rate limiting at that router, not loss",
            rate_limited
                .iter()
                .map(|h| name(*h))
                .collect::<Vec<_>>()
                .join(", "),
            if rate_limited.len() == 1 { "s" } else { "" }
        ));
    }
    let region = region.unwrap_or("unknown: no metadata");
    parts.push(match long_haul {
        Some((h, from, to)) => format!(
            "the path likely leaves the instance's region ({region}) at {}: the round trip jumps from {from:.1} ms to {to:.1} ms (a long-haul or cross-border link; expect its latency, loss and jitter)",
            name(h)
        ),
        None => format!(
            "no hop adds {LONG_HAUL_MS:.0} ms or more: the path shows no long-haul link out of the instance's region ({region})"
        ),
    });
    Verdict {
        reached,
        loss_starts_at,
        rate_limited,
        long_haul,
        summary: parts.join("; "),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The mtr-style table.
pub fn table(
    client: Ipv4Addr,
    protocol: Protocol,
    rounds: u32,
    hops: &[Hop],
    v: &Verdict,
) -> String {
    let mut out = format!(
        "Path from this instance to {client} ({}, {rounds} rounds)\n {:>3}  {:<16} {:>6} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7}\n",
        format!("{protocol:?}").to_lowercase(),
        "Hop", "Address", "Loss%", "Sent", "Last", "Avg", "Best", "Worst", "StDev"
    );
    for h in hops {
        out.push_str(&format!(
            " {:>3}. {:<16} {:>5.1}% {:>5} {:>7} {:>7} {:>7} {:>7} {:>7}\n",
            h.hop,
            h.address.map_or("???".into(), |a| a.to_string()),
            h.loss_pct,
            h.sent,
            ms(h.last_ms),
            ms(h.avg_ms),
            ms(h.best_ms),
            ms(h.worst_ms),
            ms(h.stdev_ms)
        ));
    }
    out.push_str(&format!("\n{}\n", v.summary));
    out
}

/// `ecs-diag trace`: runs the probes, prints the report; exit 0 reached with no persisting
/// loss, 1 persisting loss, 2 not reached.
pub fn run(
    config: &crate::config::Config,
    client: IpAddr,
    protocol: Protocol,
    port: Option<u16>,
    rounds: u32,
    max_hops: u8,
    json: bool,
) -> i32 {
    let IpAddr::V4(dest) = client else {
        eprintln!("ecs-diag: trace probes IPv4 paths; for {client}, use mtr -6 {client}");
        return crate::exit::USAGE;
    };
    let plan = probes::Plan {
        dest,
        protocol,
        port,
        rounds,
        max_hops,
        wait: std::time::Duration::from_millis(1000),
    };
    let probes = match probes::run(&plan) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ecs-diag: {e}");
            return if e == probes::NEEDS_RAW {
                crate::exit::NOPERM
            } else {
                crate::exit::OSERR
            };
        }
    };
    let region = region(config);
    let reached = probes.iter().any(|p| p.reached);
    let hops = hops(&probes);
    let v = verdict(&hops, reached, region.as_deref());
    if json {
        let doc = json!({
            "version": 1, "client": dest, "protocol": protocol, "rounds": rounds,
            "region": region, "hops": hops, "reached": v.reached,
            "loss_starts_at": v.loss_starts_at, "rate_limited": v.rate_limited,
            "long_haul": v.long_haul.map(|(h, from, to)| json!({"hop": h, "from_ms": from, "to_ms": to})),
            "verdict": v.summary,
        });
        println!("{doc:#}");
    } else {
        print!("{}", table(dest, protocol, rounds, &hops, &v));
    }
    match (v.reached, v.loss_starts_at) {
        (false, _) => 2,
        (true, Some(_)) => 1,
        (true, None) => 0,
    }
}

/// The instance's region from the metadata, where the config lets it be asked.
fn region(config: &crate::config::Config) -> Option<String> {
    let dmi = crate::sources::sysfs::dmi(&config.paths.sys);
    crate::sources::metadata_decision(config.metadata.mode, &dmi).ok()?;
    crate::sources::metadata::MetadataClient::new(&config.metadata)
        .read()
        .ok()
        .and_then(|m| m.region_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(round: u32, ttl: u8, from: Option<[u8; 4]>, rtt: f64, reached: bool) -> Probe {
        Probe {
            round,
            ttl,
            from: from.map(Ipv4Addr::from),
            rtt_ms: from.map(|_| rtt),
            reached,
        }
    }

    /// Hop 2 rate-limits (loses what hop 3 answers), loss starts at the destination (hop 4,
    /// reached); the RTT jumps at hop 3.
    fn path() -> Vec<Probe> {
        let mut v = Vec::new();
        for r in 0..10 {
            v.push(probe(r, 1, Some([10, 0, 1, 1]), 0.5, false));
            v.push(probe(
                r,
                2,
                (r % 2 == 0).then_some([10, 0, 2, 1]),
                1.0,
                false,
            ));
            v.push(probe(r, 3, Some([10, 0, 3, 1]), 80.0 + f64::from(r), false));
            v.push(probe(
                r,
                4,
                (r % 4 != 0).then_some([198, 18, 0, 2]),
                81.0,
                true,
            ));
        }
        v
    }

    #[test]
    fn hop_statistics_as_mtr_counts_them() {
        let h = hops(&path());
        assert_eq!(h.len(), 4);
        assert_eq!((h[0].sent, h[0].received, h[0].loss_pct), (10, 10, 0.0));
        assert_eq!((h[1].received, h[1].loss_pct), (5, 50.0));
        assert_eq!(h[2].best_ms, Some(80.0));
        assert_eq!(h[2].worst_ms, Some(89.0));
        assert_eq!(h[2].last_ms, Some(89.0));
        assert!((h[2].avg_ms.unwrap() - 84.5).abs() < 1e-9);
        assert!(h[2].stdev_ms.unwrap() > 2.0);
    }

    #[test]
    fn loss_that_persists_rate_limiting_and_a_long_haul_link() {
        let h = hops(&path());
        let v = verdict(&h, true, Some("cn-hangzhou"));
        assert_eq!(v.loss_starts_at, Some(4), "{}", v.summary);
        assert_eq!(v.rate_limited, [2]);
        assert_eq!(v.long_haul.map(|l| l.0), Some(3));
        assert!(
            v.summary.contains("loss starts at hop 4 (198.18.0.2)"),
            "{}",
            v.summary
        );
        assert!(v.summary.contains("rate limiting"), "{}", v.summary);
        assert!(
            v.summary
                .contains("leaves the instance's region (cn-hangzhou)"),
            "{}",
            v.summary
        );
        // A clean path: no loss, nothing rate-limited, stays in the region.
        let clean: Vec<Probe> = (0..5)
            .flat_map(|r| {
                [
                    probe(r, 1, Some([10, 0, 1, 1]), 0.5, false),
                    probe(r, 2, Some([198, 18, 0, 2]), 1.0, true),
                ]
            })
            .collect();
        let v = verdict(&hops(&clean), true, None);
        assert_eq!(
            (v.loss_starts_at, v.rate_limited.len(), v.long_haul),
            (None, 0, None)
        );
        assert!(v.summary.contains("no loss persists"), "{}", v.summary);
        // Never reached: the last hop that answered is named.
        let cut: Vec<Probe> = (0..3)
            .flat_map(|r| {
                [
                    probe(r, 1, Some([10, 0, 1, 1]), 0.5, false),
                    probe(r, 2, None, 0.0, false),
                ]
            })
            .collect();
        let v = verdict(&hops(&cut), false, None);
        assert!(
            v.summary
                .contains("the last hop that did is hop 1 (10.0.1.1)"),
            "{}",
            v.summary
        );
    }
}
