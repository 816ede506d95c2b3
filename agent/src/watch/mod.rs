//! `ecs-diag watch`: the user pings the instance while this runs. Each second it shows the echo
//! requests seen on the interfaces (per source), those the ICMP layer counted, the replies sent
//! and those that left; at the end the firewall rules whose counters moved, the nftables trace's
//! drops, and the verdict from [`checks::icmp::attribute`]: answered, arriving but not answered
//! (and why, from the checks), or not arriving (the block is outside the guest).

pub mod moved;

use moved::MovedRule;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checks::icmp::{attribute, Arrival, Attribution, EchoEvidence};
use crate::config::Config;
use crate::report::{Status, REPORT_VERSION};
use crate::snapshot::{Gathered, IcmpCounters};
use crate::sources::capture::{EchoCapture, EchoPacket};
use crate::sources::nftrace::{NftTrace, TracedDrop};
use crate::sources::{self, rulesets, snmp, GatherOptions};

pub struct WatchOptions {
    pub seconds: u64,
    pub client: Option<IpAddr>,
    pub json: bool,
    /// Add the temporary nftables trace table.
    pub trace: bool,
}

/// `watch --json` prints JSON Lines: one `start` line, a `tick` line per second, a
/// `verdict_so_far` line whenever the verdict becomes known or changes, and the final `verdict`
/// (this struct). Every line carries `version` (the report's) and `type`.
#[derive(Debug, Serialize)]
pub struct WatchReport {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub seconds: f64,
    pub client: Option<IpAddr>,
    pub verdict: Arrival,
    pub summary: String,
    pub steps: Vec<String>,
    pub evidence: EchoEvidence,
    /// Echo requests seen on the interfaces by source, and replies to each.
    pub sources: BTreeMap<IpAddr, PerSource>,
    pub moved_rules: Vec<MovedRule>,
    pub traced_drops: Vec<TracedDrop>,
    /// Live evidence that could not be collected, and why.
    pub unavailable: Vec<String>,
    /// Checks on the echo path that fail or warn (the "why" when requests go unanswered).
    pub guest_findings: Vec<String>,
}

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
    /// The live evidence in use: `packet capture`, `ICMP counters`, `nftables trace`.
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
    fn of(
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
    fn verdict(&self, previous: Option<&Tick>) -> Option<(Arrival, String)> {
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

    fn line(&self) -> String {
        format!(
            "{:>4} s  requests seen {} = answered {} + dropped by rules {} + unanswered {}",
            self.second, self.requests_seen, self.answered, self.dropped, self.unanswered
        )
    }
}

/// A traced rule as one label: the chain and the rule with its (per-event) counter values
/// dropped, so every drop by the same rule counts under one name.
fn rule_label(d: &TracedDrop) -> String {
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
fn drops_by_rule(drops: &[TracedDrop], client: Option<IpAddr>) -> BTreeMap<String, u64> {
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

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PerSource {
    pub requests: u64,
    pub replies: u64,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(sig: libc::c_int) {
    // An atomic store and signal(2): both async-signal-safe. A second Ctrl-C then kills at
    // once (a table left behind is removed by the next watch).
    INTERRUPTED.store(true, Ordering::SeqCst);
    // SAFETY: resets the disposition of the signal being handled.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Ctrl-C ends the watch early (and still cleans up the trace table and reports).
fn catch_interrupt() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    // SAFETY: installs a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// Counts echo packets per source: requests received, replies sent to it. Loopback (ifindex 1
/// in every network namespace) is left out: those pings never crossed the network.
#[derive(Default)]
struct Tally {
    sources: BTreeMap<IpAddr, PerSource>,
}

impl Tally {
    fn add(&mut self, packets: &[EchoPacket]) {
        for p in packets.iter().filter(|p| p.ifindex != 1) {
            match (p.outgoing, p.request) {
                (false, true) => self.sources.entry(p.source).or_default().requests += 1,
                (true, false) => self.sources.entry(p.destination).or_default().replies += 1,
                _ => {}
            }
        }
    }
    /// Requests and replies, for one client or all sources.
    fn totals(&self, client: Option<IpAddr>) -> (u64, u64) {
        self.sources
            .iter()
            .filter(|(a, _)| client.is_none_or(|c| **a == c))
            .fold((0, 0), |(q, r), (_, s)| (q + s.requests, r + s.replies))
    }
}

fn icmp_now(config: &Config) -> Result<IcmpCounters, String> {
    match snmp::icmp(&config.paths.proc) {
        Gathered::Ok(c) => Ok(c),
        Gathered::Failed(e) => Err(e),
    }
}

/// Echo requests the ICMP and ICMPv6 layers counted between two reads (0 after a reset).
fn echo_requests(first: &IcmpCounters, last: &IcmpCounters) -> u64 {
    last.since(first).map_or(0, |c| c.all_requests())
}

/// Echo replies the ICMP and ICMPv6 layers sent between two reads (0 after a reset).
fn echo_replies(first: &IcmpCounters, last: &IcmpCounters) -> u64 {
    last.since(first).map_or(0, |c| c.all_replies())
}

pub fn run(config: &Config, opts: &WatchOptions) -> i32 {
    catch_interrupt();
    let mut unavailable = Vec::new();
    let client = opts.client;
    let mut out = std::io::stdout();
    let before_fw = rulesets::read_all(&config.paths.proc, None);
    // What is watched (header) and the checks that explain unanswered requests, judged once up
    // front (the ruleset just read is reused).
    let snapshot = sources::gather(
        config,
        &GatherOptions {
            client: opts.client,
            firewall_cache: Some(before_fw.clone()),
        },
    );
    let capture = EchoCapture::open()
        .map_err(|e| unavailable.push(format!("packet capture: {e}")))
        .ok();
    let trace = if opts.trace {
        NftTrace::start()
            .map_err(|e| unavailable.push(format!("nftables trace: {e}")))
            .ok()
    } else {
        None
    };
    let first = match icmp_now(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ecs-diag: cannot read the ICMP counters: {e}");
            return crate::exit::NOINPUT;
        }
    };
    let start = watched(&snapshot, opts, capture.is_some(), trace.is_some());
    let public_ip = start.public_ip;
    if opts.json {
        json_line(&mut out, &start);
    } else {
        let _ = write!(out, "{}", render_start(&start));
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut last = first.clone();
    let mut previous: Option<Tick> = None;
    let mut told: Option<Arrival> = None;
    let mut named: Vec<String> = Vec::new();
    for second in 1..=opts.seconds {
        let until = started + Duration::from_secs(second);
        while Instant::now() < until && !INTERRUPTED.load(Ordering::SeqCst) {
            if let Some(c) = &capture {
                tally.add(&c.drain());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(c) = icmp_now(config) {
            last = c;
        }
        let (req, rep) = tally.totals(client);
        let (reached, sent) = (echo_requests(&first, &last), echo_replies(&first, &last));
        let (seen, answered) = if capture.is_some() {
            (req, rep)
        } else {
            (reached, sent)
        };
        let drops = trace
            .as_ref()
            .map(|t| drops_by_rule(&t.drops_so_far(), client))
            .unwrap_or_default();
        let tick = Tick::of(second, seen, answered, drops, reached, sent);
        let so_far = tick.verdict(previous.as_ref());
        if opts.json {
            json_line(&mut out, &tick);
        } else {
            let _ = writeln!(out, "{}", tick.line());
            for rule in tick.dropped_by.keys().filter(|r| !named.contains(r)) {
                let _ = writeln!(out, "         dropped by {rule}");
            }
        }
        named = tick.dropped_by.keys().cloned().collect();
        if let Some((arrival, sentence)) = so_far {
            if told != Some(arrival) {
                told = Some(arrival);
                if opts.json {
                    json_line(
                        &mut out,
                        &serde_json::json!({"version": REPORT_VERSION, "type": "verdict_so_far",
                            "second": second, "verdict": arrival, "summary": sentence}),
                    );
                } else {
                    let _ = writeln!(out, "         → so far: {sentence}");
                }
            }
        }
        previous = Some(tick);
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
    }
    // Replies to the last requests may still be on their way out.
    std::thread::sleep(Duration::from_millis(200));
    if let Some(c) = &capture {
        tally.add(&c.drain());
    }
    if let Ok(c) = icmp_now(config) {
        last = c;
    }
    let seconds = started.elapsed().as_secs_f64();
    let traced_drops = trace.map(NftTrace::stop).unwrap_or_default();
    let after_fw = rulesets::read_all(&config.paths.proc, None);
    let mut moved_rules = Vec::new();
    match (&before_fw.firewall, &after_fw.firewall) {
        (Gathered::Ok(b), Gathered::Ok(a)) => moved_rules.extend(moved::iptables(b, a)),
        (_, Gathered::Failed(e)) | (Gathered::Failed(e), _) => {
            unavailable.push(format!("iptables rule counters: {e}"))
        }
    }
    if let (Gathered::Ok(b), Gathered::Ok(Some(a))) = (&before_fw.nftables, &after_fw.nftables) {
        moved_rules.extend(moved::nft(b.as_deref(), a));
    }
    // Only the checks on the echo path: a warning about disks is not why pings go unanswered.
    let guest_findings: Vec<String> =
        crate::checks::evaluate(&snapshot, &crate::checks::Criteria::of(config))
            .into_iter()
            .filter(|f| {
                matches!(f.status, Status::Fail | Status::Warn)
                    && crate::checks::icmp::ECHO_PATH.contains(&f.id.as_str())
            })
            .map(|f| format!("{} ({}): {}", f.id, f.status.as_str(), f.summary))
            .collect();

    let (req, rep) = tally.totals(client);
    // Replies dropped on the way out count too; one entry per rule, with its count.
    let mut per_rule: Vec<(String, u64)> = Vec::new();
    for d in traced_drops
        .iter()
        .filter(|d| client.is_none() || d.source.is_none() || d.source == client)
    {
        let label = format!("{} ({}, nftables trace)", rule_label(d), d.packet);
        match per_rule.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => per_rule.push((label, 1)),
        }
    }
    let mut dropped_by: Vec<String> = per_rule
        .into_iter()
        .map(|(label, n)| format!("{label}: {n} packet(s)"))
        .collect();
    for m in moved_rules.iter().filter(|m| m.drops) {
        dropped_by.push(format!(
            "{}: `{}` counted {} packet(s)",
            m.place, m.rule, m.packets
        ));
    }
    // The kernel counters count every source. With --client and a capture, the client's own
    // requests bound them, so other hosts pinging meanwhile do not count as the client's.
    let (mut reached, mut sent) = (echo_requests(&first, &last), echo_replies(&first, &last));
    if client.is_some() && capture.is_some() {
        reached = reached.min(req);
        sent = sent.min(req);
    }
    let evidence = EchoEvidence {
        window: format!("in the last {seconds:.1} s"),
        requests_on_wire: capture.as_ref().map(|_| req),
        requests_reached_icmp: reached,
        replies_sent: sent,
        replies_on_wire: capture.as_ref().map(|_| rep),
        dropped_by,
    };
    let Attribution {
        arrival,
        mut summary,
        steps,
        ..
    } = attribute(&evidence, &guest_findings);
    if arrival == Arrival::NotArriving && capture.is_none() {
        // Only the ICMP counters looked: they do not see what the guest firewall drops.
        summary.push_str(" — as far as the ICMP counters tell: without packet capture (run as root) requests dropped by the guest firewall are not seen");
    }
    let report = WatchReport {
        version: REPORT_VERSION,
        kind: "verdict",
        seconds,
        client: opts.client,
        verdict: arrival,
        summary,
        steps: fill_in(steps, arrival, public_ip, client),
        evidence,
        sources: tally.sources,
        moved_rules,
        traced_drops,
        unavailable,
        guest_findings,
    };
    if opts.json {
        json_line(&mut out, &report);
    } else {
        let _ = write!(out, "{}", render(&report));
    }
    exit_code(arrival)
}

/// One compact JSON line (JSON Lines), flushed so a reader sees it at once.
fn json_line(out: &mut impl Write, value: &impl Serialize) {
    match serde_json::to_string(value) {
        Ok(s) => {
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
        Err(e) => eprintln!("ecs-diag: cannot serialise a watch line: {e}"),
    }
}

/// The header's facts: the primary interface, its private address and the public one.
fn watched(
    snapshot: &crate::snapshot::Snapshot,
    opts: &WatchOptions,
    capture: bool,
    trace: bool,
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

fn render_start(s: &Start) -> String {
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
fn fill_in(
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
            "from this instance: mtr -n {c}   (does the path to the client work the other way?)"
        ));
    }
    steps
}

/// 0 answered, 1 not arriving (outside the guest), 2 arriving but not answered (inside it).
pub fn exit_code(a: Arrival) -> i32 {
    match a {
        Arrival::Answered => 0,
        Arrival::NotArriving => 1,
        Arrival::ArrivingNotAnswered => 2,
    }
}

fn render(r: &WatchReport) -> String {
    let mut out = String::new();
    if !r.sources.is_empty() {
        out.push_str("\nby source:\n");
        for (a, s) in &r.sources {
            out.push_str(&format!(
                "  {a:<16} {} request(s), {} reply(ies)\n",
                s.requests, s.replies
            ));
        }
    }
    if !r.moved_rules.is_empty() {
        out.push_str("\nfirewall rules that counted packets:\n");
        for m in r.moved_rules.iter().take(10) {
            out.push_str(&format!(
                "  {:>6}  {}{}  [{}]\n",
                m.packets,
                if m.drops { "DROPS  " } else { "" },
                m.rule,
                m.place
            ));
        }
    }
    let verdict = match r.verdict {
        Arrival::Answered => "ANSWERED",
        Arrival::ArrivingNotAnswered => "ARRIVING, NOT ANSWERED",
        Arrival::NotArriving => "NOT ARRIVING",
    };
    out.push_str(&format!("\nverdict: {verdict} — {}\n", r.summary));
    for s in &r.steps {
        out.push_str(&format!("  → {s}\n"));
    }
    for u in &r.unavailable {
        out.push_str(&format!("  (not available: {u})\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
            all.contains("from this instance: mtr -n 203.0.113.7"),
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
            .contains("mtr -n 203.0.113.7   (the return path)"));
    }

    #[test]
    fn echo_path_names_registered_checks() {
        for id in crate::checks::icmp::ECHO_PATH {
            assert!(crate::checks::find(id).is_some(), "{id}");
        }
    }
}
