//! What `watch` prints while it runs: the header naming what is watched, and each second's
//! running totals, which add up (seen = answered + dropped by rules + unanswered) and tell the
//! verdict as soon as they can.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::WatchOptions;
use crate::checks::icmp::Arrival;
use crate::report::REPORT_VERSION;
use crate::sources::nftrace::TracedDrop;

/// What is watched, printed first.
#[derive(Debug, Serialize)]
pub struct Start {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub interface: Option<String>,
    pub private_ip: Option<IpAddr>,
    /// From the metadata (EIP, else the public IP); None when not known.
    pub public_ip: Option<IpAddr>,
    pub client: Option<IpAddr>,
    pub seconds: u64,
    /// The live evidence in use: `packet capture`, `ICMP counters`, `nftables trace`, `kernel
    /// drop reasons`.
    pub evidence: Vec<&'static str>,
}

/// One second's running totals. They add up: `requests_seen = answered + dropped +
/// unanswered`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Tick {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub second: u64,
    /// Echo requests seen on the interfaces (packet capture), else counted by the ICMP layer.
    pub requests_seen: u64,
    /// Of those, answered: replies seen leaving (capture), else sent by the ICMP layer.
    pub answered: u64,
    /// Dropped by a guest firewall rule (nftables trace).
    pub dropped: u64,
    /// Neither answered nor seen dropped (yet).
    pub unanswered: u64,
    /// Drops per rule, as the trace names it.
    pub dropped_by: BTreeMap<String, u64>,
    pub reached_icmp: u64,
    pub replies_sent: u64,
}

impl Tick {
    /// Totals that add up from the raw counts: answers and drops never exceed what was seen.
    pub fn of(
        second: u64,
        seen: u64,
        replies: u64,
        drops: BTreeMap<String, u64>,
        reached_icmp: u64,
        replies_sent: u64,
    ) -> Tick {
        let answered = replies.min(seen);
        let dropped = drops.values().sum::<u64>().min(seen - answered);
        Tick {
            version: REPORT_VERSION,
            kind: "tick",
            second,
            requests_seen: seen,
            answered,
            dropped,
            unanswered: seen - answered - dropped,
            dropped_by: drops,
            reached_icmp,
            replies_sent,
        }
    }

    /// The verdict these totals already tell, if any (`None`: nothing seen yet, too early to
    /// say nothing arrives).
    pub fn verdict(&self, previous: Option<&Tick>) -> Option<(Arrival, String)> {
        if self.dropped > 0 {
            let rules: Vec<&str> = self.dropped_by.keys().map(String::as_str).collect();
            return Some((
                Arrival::ArrivingNotAnswered,
                format!(
                    "echo requests arrive and the guest firewall drops them: {}",
                    rules.join("; ")
                ),
            ));
        }
        // Requests seen a second ago have had time to be answered.
        let settled = previous.map_or(0, |p| p.requests_seen);
        if settled > self.answered {
            return Some((
                Arrival::ArrivingNotAnswered,
                format!("echo requests arrive but {} of {settled} went unanswered: the guest drops or ignores them (the final verdict says why)", settled - self.answered),
            ));
        }
        if self.requests_seen > 0 && self.answered == self.requests_seen {
            return Some((
                Arrival::Answered,
                format!("echo requests arrive and all {} were answered: if the client sees no replies, they are lost on the way back", self.requests_seen),
            ));
        }
        if self.requests_seen == 0 && self.second >= 3 {
            return Some((
                Arrival::NotArriving,
                "no echo request arrives: they are dropped before the guest (security group, network ACL, public IP binding, blackhole) — or nobody is pinging yet".to_string(),
            ));
        }
        None
    }

    pub fn line(&self) -> String {
        format!(
            "{:>4} s  requests seen {} = answered {} + dropped by rules {} + unanswered {}",
            self.second, self.requests_seen, self.answered, self.dropped, self.unanswered
        )
    }
}

/// A traced rule as one label: the chain and the rule with its (per-event) counter values
/// dropped, so every drop by the same rule counts under one name.
pub fn rule_label(d: &TracedDrop) -> String {
    match &d.rule {
        Some(r) => {
            let words: Vec<&str> = r.split_whitespace().collect();
            let mut kept = Vec::with_capacity(words.len());
            let mut i = 0;
            while i < words.len() {
                if words[i] == "counter" && words.get(i + 1) == Some(&"packets") {
                    // `counter packets N bytes M` → `counter`
                    kept.push("counter");
                    i += 5;
                    continue;
                }
                kept.push(words[i]);
                i += 1;
            }
            format!("{} rule `{}`", d.chain, kept.join(" "))
        }
        None => format!("{} policy {}", d.chain, d.verdict),
    }
}

/// Inbound echo requests dropped per rule (the client's only, with `--client`).
pub fn drops_by_rule(drops: &[TracedDrop], client: Option<IpAddr>) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for d in drops
        .iter()
        .filter(|d| d.packet == "echo-request")
        .filter(|d| client.is_none() || d.source.is_none() || d.source == client)
    {
        *by.entry(rule_label(d)).or_insert(0) += 1;
    }
    by
}

/// The header's facts: the primary interface, its private address and the public one.
pub fn watched(
    snapshot: &crate::snapshot::Snapshot,
    opts: &WatchOptions,
    capture: bool,
    trace: bool,
    kernel_drops: bool,
) -> Start {
    let primary = crate::checks::primary_interface(snapshot).ok();
    let metadata = snapshot.metadata.ok();
    let private_ip = metadata
        .and_then(|m| m.private_ipv4)
        .map(IpAddr::V4)
        .or_else(|| {
            let index = primary.as_ref()?.link.index;
            snapshot
                .addresses
                .ok()
                .ok()?
                .iter()
                .find(|a| a.ifindex == index && a.address.is_ipv4())
                .map(|a| a.address)
        });
    let mut evidence = Vec::new();
    if capture {
        evidence.push("packet capture");
    }
    evidence.push("ICMP counters");
    if trace {
        evidence.push("nftables trace");
    }
    if kernel_drops {
        evidence.push("kernel drop reasons");
    }
    Start {
        version: REPORT_VERSION,
        kind: "start",
        interface: primary.map(|p| p.link.name.clone()),
        private_ip,
        public_ip: metadata
            .and_then(|m| m.eipv4.or(m.public_ipv4))
            .map(IpAddr::V4),
        client: opts.client,
        seconds: opts.seconds,
        evidence,
    }
}

pub fn render_start(s: &Start) -> String {
    let or_unknown = |a: Option<IpAddr>| a.map_or("unknown".to_string(), |a| a.to_string());
    format!(
        "ecs-diag watch: {} (private {}, public {}); echo requests from {}; {} s (Ctrl-C ends early)\n\
         Ping the public IP now. Live evidence: {}.\n\n",
        s.interface.as_deref().unwrap_or("primary interface unknown"),
        or_unknown(s.private_ip),
        s.public_ip.map_or("unknown: no metadata".to_string(), |a| a.to_string()),
        s.client.map_or("any source".to_string(), |c| c.to_string()),
        s.seconds,
        s.evidence.join(", "),
    )
}

/// The suggested mtr/traceroute commands with the addresses filled in where known.
pub fn fill_in(
    steps: Vec<String>,
    arrival: Arrival,
    public: Option<IpAddr>,
    client: Option<IpAddr>,
) -> Vec<String> {
    let mut steps: Vec<String> = steps
        .into_iter()
        .map(|s| {
            let s = match public {
                Some(p) => s.replace("<public-ip>", &p.to_string()),
                None => s,
            };
            match client {
                Some(c) => s.replace("<client-ip>", &c.to_string()),
                None => s,
            }
        })
        .collect();
    if let (Arrival::NotArriving, Some(c)) = (arrival, client) {
        steps.push(format!(
            "from this instance: ecs-diag trace --client {c}   (does the path to the client work the other way?)"
        ));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::icmp::Arrival;

    fn drop_of(rule: &str, source: &str) -> TracedDrop {
        TracedDrop {
            source: source.parse().ok(),
            packet: "echo-request".into(),
            chain: "ip filter INPUT".into(),
            rule: Some(rule.into()),
            verdict: "drop".into(),
        }
    }

    #[test]
    fn ticks_add_up_and_never_count_more_than_seen() {
        let drops = BTreeMap::from([("r".to_string(), 2)]);
        let t = Tick::of(3, 5, 2, drops, 2, 2);
        assert_eq!((t.answered, t.dropped, t.unanswered), (2, 2, 1));
        assert_eq!(t.requests_seen, t.answered + t.dropped + t.unanswered);
        assert_eq!(
            t.line(),
            "   3 s  requests seen 5 = answered 2 + dropped by rules 2 + unanswered 1"
        );
        // Replies or drops beyond what was seen (other sources, timing) are capped.
        let t = Tick::of(1, 2, 9, BTreeMap::from([("r".to_string(), 4)]), 9, 9);
        assert_eq!((t.answered, t.dropped, t.unanswered), (2, 0, 0));
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            (v["version"].clone(), v["type"].clone()),
            (1.into(), "tick".into())
        );
    }

    #[test]
    fn the_verdict_is_told_as_soon_as_the_totals_say_it() {
        let tick = |s, seen, ans, drops: &[(&str, u64)]| {
            let d = drops.iter().map(|(r, n)| (r.to_string(), *n)).collect();
            Tick::of(s, seen, ans, d, 0, 0)
        };
        // Nothing seen yet: too early to say.
        assert_eq!(tick(1, 0, 0, &[]).verdict(None), None);
        assert_eq!(
            tick(3, 0, 0, &[]).verdict(None).unwrap().0,
            Arrival::NotArriving
        );
        let one = tick(1, 1, 1, &[]);
        assert_eq!(one.verdict(None).unwrap().0, Arrival::Answered);
        // A request seen a second ago and still not answered.
        let two = tick(2, 2, 1, &[]);
        // ...but one seen this second may still be on its way: not yet a verdict change.
        assert_eq!(two.verdict(Some(&one)), None);
        let late = tick(3, 3, 1, &[]);
        let (a, sentence) = late.verdict(Some(&two)).unwrap();
        assert_eq!(a, Arrival::ArrivingNotAnswered);
        assert!(sentence.contains("1 of 2 went unanswered"), "{sentence}");
        // A traced drop names the rule at once.
        let (a, sentence) = tick(1, 1, 0, &[("ip filter INPUT rule `x drop`", 1)])
            .verdict(None)
            .unwrap();
        assert_eq!(a, Arrival::ArrivingNotAnswered);
        assert!(
            sentence.contains("ip filter INPUT rule `x drop`"),
            "{sentence}"
        );
    }

    #[test]
    fn drops_count_per_rule_whatever_the_counter_said() {
        let drops = [
            drop_of(
                "ip saddr 10.0.0.2 counter packets 0 bytes 0 drop",
                "10.0.0.2",
            ),
            drop_of(
                "ip saddr 10.0.0.2 counter packets 1 bytes 84 drop",
                "10.0.0.2",
            ),
            drop_of("ip saddr 10.0.0.3 drop", "10.0.0.3"),
        ];
        let all = drops_by_rule(&drops, None);
        assert_eq!(
            all.get("ip filter INPUT rule `ip saddr 10.0.0.2 counter drop`"),
            Some(&2)
        );
        assert_eq!(all.len(), 2);
        let one = drops_by_rule(&drops, "10.0.0.3".parse().ok());
        assert_eq!(one.values().sum::<u64>(), 1);
    }

    #[test]
    fn suggestions_name_the_addresses() {
        let steps = fill_in(
            crate::checks::icmp::outside_steps(),
            Arrival::NotArriving,
            "47.0.0.9".parse().ok(),
            "203.0.113.7".parse().ok(),
        );
        let all = steps.join("\n");
        assert!(
            all.contains("mtr -n 47.0.0.9") && !all.contains("<public-ip>"),
            "{all}"
        );
        assert!(
            all.contains("from this instance: ecs-diag trace --client 203.0.113.7"),
            "{all}"
        );
        let steps = fill_in(
            crate::checks::icmp::path_steps(),
            Arrival::Answered,
            None,
            "203.0.113.7".parse().ok(),
        );
        assert!(steps
            .join("\n")
            .contains("ecs-diag trace --client 203.0.113.7   (the return path"));
    }

    #[test]
    fn echo_path_names_registered_checks() {
        for id in crate::checks::icmp::ECHO_PATH {
            assert!(crate::checks::find(id).is_some(), "{id}");
        }
    }
}
