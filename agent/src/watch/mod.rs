//! `ecs-diag watch`: the user pings the instance while this runs. Each second it shows the echo
//! requests seen on the interfaces (per source), those the ICMP layer counted, the replies sent
//! and those that left; at the end the firewall rules whose counters moved, the nftables trace's
//! drops, the packets the kernel dropped by reason (`skb:kfree_skb`), and the verdict from
//! [`checks::icmp::attribute`]: answered, arriving but not answered (and why, from the
//! checks), or not arriving (the block is outside the guest).

pub mod live;
pub mod moved;

use live::{drops_by_rule, fill_in, render_start, rule_label, watched, Tick};
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
use crate::sources::kfree_skb::{KernelDrop, KfreeSkbTrace};
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
    /// IPv4/IPv6 packets the kernel dropped while watching, by reason and function
    /// (`skb:kfree_skb`, kernels ≥ 5.17). The tracepoint carries no addresses: these are every
    /// source's, not only the client's.
    pub kernel_drops: Vec<KernelDrop>,
    /// Live evidence that could not be collected, and why.
    pub unavailable: Vec<String>,
    /// Checks on the echo path that fail or warn (the "why" when requests go unanswered).
    pub guest_findings: Vec<String>,
    /// The failing `cloud.*` verdicts: why requests do not arrive, when the cloud side says.
    pub cloud_blocks: Vec<String>,
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
            cloud: None,
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
    let mut kernel_drops = KfreeSkbTrace::start()
        .map_err(|e| unavailable.push(format!("kernel drop reasons: {e}")))
        .ok();
    let first = match icmp_now(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ecs-diag: cannot read the ICMP counters: {e}");
            return crate::exit::NOINPUT;
        }
    };
    let start = watched(
        &snapshot,
        opts,
        capture.is_some(),
        trace.is_some(),
        kernel_drops.is_some(),
    );
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
            if let Some(k) = kernel_drops.as_mut() {
                k.drain();
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
    let (kernel_drops, lost) = kernel_drops.map_or((Vec::new(), 0), |k| {
        let lost = k.lost;
        (k.stop(), lost)
    });
    if lost > 0 {
        unavailable.push(format!(
            "kernel drop reasons: the trace lost {lost} event(s) (buffer full): the counts are low"
        ));
    }
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
    let findings = crate::checks::evaluate(&snapshot, &crate::checks::Criteria::of(config));
    let cloud_blocks = crate::checks::cloud::blocking(&findings);
    let guest_findings: Vec<String> = findings
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
        cloud_blocks: cloud_blocks.clone(),
    };
    let Attribution {
        arrival,
        mut summary,
        steps,
        ..
    } = attribute(&evidence, &guest_findings);
    if arrival == Arrival::ArrivingNotAnswered && evidence.dropped_by.is_empty() {
        // No rule explains it: the kernel's own reasons are the best evidence there is. Named
        // are those of the client's family that can befall an arriving echo request.
        let family = client.map(|c| if c.is_ipv4() { "IPv4" } else { "IPv6" });
        let telling: Vec<&KernelDrop> = kernel_drops
            .iter()
            .filter(|k| on_the_echo_path(&k.reason) && family.is_none_or(|f| k.protocol == f))
            .collect();
        if !telling.is_empty() {
            let named: Vec<String> = telling
                .iter()
                .take(3)
                .map(|k| {
                    format!(
                        "{} in {} ({} {} packet(s))",
                        k.reason, k.location, k.packets, k.protocol
                    )
                })
                .collect();
            summary.push_str(&format!(
                " — the kernel dropped packets meanwhile: {} (skb:kfree_skb, any source)",
                named.join(", ")
            ));
        }
    }
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
        kernel_drops,
        unavailable,
        guest_findings,
        cloud_blocks,
    };
    if opts.json {
        json_line(&mut out, &report);
    } else {
        let _ = write!(out, "{}", render(&report));
    }
    exit_code(arrival)
}

/// Whether a drop reason can befall an echo request on its way to the ICMP layer, or its
/// reply: not the reasons of sockets and TCP (the kernel answers echo without a socket), and
/// not NOT_SPECIFIED, which says nothing.
fn on_the_echo_path(reason: &str) -> bool {
    const ELSEWHERE: &[&str] = &["TCP_", "SOCKET_", "UNIX_", "UDP_"];
    !ELSEWHERE.iter().any(|p| reason.starts_with(p))
        && !matches!(
            reason,
            "NOT_SPECIFIED" | "NO_SOCKET" | "QUEUE_PURGE" | "PROTO_MEM" | "PACKET_SOCK_ERROR"
        )
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
    if !r.kernel_drops.is_empty() {
        out.push_str("\npackets the kernel dropped (skb:kfree_skb, every source):\n");
        for k in r.kernel_drops.iter().take(10) {
            out.push_str(&format!(
                "  {:>6}  {} {} in {}\n",
                k.packets, k.protocol, k.reason, k.location
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

    #[test]
    fn drop_reasons_on_the_echo_path() {
        for r in [
            "IP_RPFILTER",
            "NETFILTER_DROP",
            "IP_INADDRERRORS",
            "NEIGH_FAILED",
            "QDISC_DROP",
            "OTHERHOST",
        ] {
            assert!(on_the_echo_path(r), "{r}");
        }
        for r in [
            "NOT_SPECIFIED",
            "NO_SOCKET",
            "QUEUE_PURGE",
            "TCP_CSUM",
            "SOCKET_FILTER",
            "UNIX_DISCONNECT",
            "UDP_CSUM",
        ] {
            assert!(!on_the_echo_path(r), "{r}");
        }
    }
}
