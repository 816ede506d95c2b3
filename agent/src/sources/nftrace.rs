//! nftables tracing for `watch`: a temporary table `inet ecs_diag_watch` marks ICMP and ICMPv6
//! echo requests (prerouting) and echo replies (output) with `meta nftrace set 1` at priority -350, before
//! every other chain, and `nft monitor trace` reports each chain the packet crosses and the
//! verdict — for iptables-nft rules too. The table is removed when the trace stops (also on
//! drop, so a panic or an early return does not leave it behind).

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::rulesets::run_tool;

pub const TABLE: &str = "ecs_diag_watch";
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct NftTrace {
    monitor: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// A traced packet that a rule or a chain policy dropped or rejected.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TracedDrop {
    pub source: Option<IpAddr>,
    /// `echo-request` or `echo-reply`.
    pub packet: String,
    /// `ip filter INPUT`.
    pub chain: String,
    /// The rule as nft prints it; None for the chain's policy.
    pub rule: Option<String>,
    pub verdict: String,
}

fn remove_table() {
    let _ = run_tool(&["nft", "delete", "table", "inet", TABLE], TIMEOUT);
}

impl NftTrace {
    /// Adds the trace table and starts listening. Err says why tracing is unavailable.
    pub fn start() -> Result<NftTrace, String> {
        // A table left by a killed earlier run.
        remove_table();
        let script = format!(
            "add table inet {TABLE}; \
             add chain inet {TABLE} pre {{ type filter hook prerouting priority -350 ; }}; \
             add rule inet {TABLE} pre icmp type echo-request meta nftrace set 1; \
             add rule inet {TABLE} pre icmpv6 type echo-request meta nftrace set 1; \
             add chain inet {TABLE} out {{ type filter hook output priority -350 ; }}; \
             add rule inet {TABLE} out icmp type echo-reply meta nftrace set 1; \
             add rule inet {TABLE} out icmpv6 type echo-reply meta nftrace set 1"
        );
        match run_tool(&["nft", &script], TIMEOUT) {
            Ok(Some(_)) => {}
            Ok(None) => return Err("nft is not installed".to_string()),
            Err(e) => return Err(format!("cannot add the trace table: {e}")),
        }
        let Some(nft) = super::tools::resolve("nft") else {
            remove_table();
            return Err(format!(
                "nft is not installed in {}",
                super::tools::describe()
            ));
        };
        let mut monitor = match Command::new(nft)
            .args(["monitor", "trace"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                remove_table();
                return Err(format!("cannot run nft monitor trace: {e}"));
            }
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = monitor.stdout.take().map(|out| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(mut l) = lines.lock() {
                        // Bounded: a flood of pings must not grow memory without end.
                        if l.len() < 100_000 {
                            l.push(line);
                        }
                    }
                }
            })
        });
        // Let the monitor subscribe before packets are traced.
        std::thread::sleep(Duration::from_millis(150));
        Ok(NftTrace {
            monitor,
            lines,
            reader,
        })
    }

    /// The drops traced so far (tracing goes on).
    pub fn drops_so_far(&self) -> Vec<TracedDrop> {
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        parse_trace(&lines)
    }

    /// Stops tracing, removes the table and returns the drops seen.
    pub fn stop(mut self) -> Vec<TracedDrop> {
        self.shutdown();
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        parse_trace(&lines)
    }

    fn shutdown(&mut self) {
        // Give the last events a moment to arrive.
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.monitor.kill();
        let _ = self.monitor.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        remove_table();
    }
}

impl Drop for NftTrace {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.shutdown();
        }
    }
}

/// Reads `nft monitor trace` lines: `trace id ID FAMILY TABLE CHAIN packet: ... ip saddr X ...
/// icmp type T ...`, then `... rule TEXT (verdict V)` or `... policy V` per chain.
pub fn parse_trace(lines: &[String]) -> Vec<TracedDrop> {
    let mut packets: std::collections::HashMap<String, (Option<IpAddr>, String)> =
        Default::default();
    let mut drops = Vec::new();
    for line in lines {
        let Some(rest) = line.strip_prefix("trace id ") else {
            continue;
        };
        let mut words = rest.splitn(5, ' ');
        let (Some(id), Some(family), Some(table), Some(chain), Some(what)) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            continue;
        };
        if let Some(pkt) = what.strip_prefix("packet: ") {
            let w: Vec<&str> = pkt.split_whitespace().collect();
            let after = |k1: &str, k2: &str| {
                w.windows(3)
                    .find(|x| x[0] == k1 && x[1] == k2)
                    .map(|x| x[2].to_string())
            };
            let entry = packets.entry(id.to_string()).or_default();
            if entry.0.is_none() {
                entry.0 = after("ip", "saddr")
                    .or_else(|| after("ip6", "saddr"))
                    .and_then(|a| a.parse().ok());
            }
            if entry.1.is_empty() {
                entry.1 = after("icmp", "type")
                    .or_else(|| after("icmpv6", "type"))
                    .unwrap_or_default();
            }
            continue;
        }
        if table == TABLE {
            continue;
        }
        let (rule, verdict) = if let Some(r) = what.strip_prefix("rule ") {
            let Some((text, v)) = r.trim_end().rsplit_once(" (verdict ") else {
                continue;
            };
            (Some(text.to_string()), v.trim_end_matches(')').to_string())
        } else if let Some(p) = what.strip_prefix("policy ") {
            (None, p.split_whitespace().next().unwrap_or("").to_string())
        } else {
            continue;
        };
        if verdict != "drop" && verdict != "reject" {
            continue;
        }
        let (source, packet) = packets.get(id).cloned().unwrap_or_default();
        drops.push(TracedDrop {
            source,
            packet,
            chain: format!("{family} {table} {chain}"),
            rule,
            verdict,
        });
    }
    drops
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saved from `nft monitor trace` (nft 1.0.6) with an iptables-nft DROP rule.
    const TRACE: &str = r#"trace id 0182508d inet ecs_diag_watch pre packet: iif "ea" ether saddr 2a:39:7d:d8:29:68 ether daddr 62:7e:4c:ec:37:d1 ip saddr 10.99.0.2 ip daddr 10.99.0.1 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 50589 ip protocol icmp ip length 84 icmp type echo-request icmp code net-unreachable icmp id 18815 icmp sequence 1 @th,64,96 0x5d42016b000000000e980900 
trace id 0182508d inet ecs_diag_watch pre rule icmp type echo-request meta nftrace set 1 (verdict continue)
trace id 0182508d inet ecs_diag_watch pre policy accept 
trace id 0182508d ip filter INPUT packet: iif "ea" ether saddr 2a:39:7d:d8:29:68 ether daddr 62:7e:4c:ec:37:d1 ip saddr 10.99.0.2 ip daddr 10.99.0.1 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 50589 ip length 84 icmp type echo-request icmp code net-unreachable icmp id 18815 icmp sequence 1 @th,64,96 0x5d42016b000000000e980900 
trace id 0182508d ip filter INPUT rule meta l4proto icmp ip saddr 10.99.0.2 icmp type echo-request counter packets 0 bytes 0 drop (verdict drop)
trace id 713cf16f inet ecs_diag_watch pre packet: iif "ea" ip saddr 10.99.0.3 ip daddr 10.99.0.1 icmp type echo-request
trace id 713cf16f ip filter INPUT policy accept 
trace id 99 inet fw input packet: iif "ea" ip saddr 10.99.0.4 icmp type echo-request
trace id 99 inet fw input policy drop 
trace id 77 inet fw input packet: iif "ea" ip6 saddr fd77::2 ip6 daddr fd77::10 icmpv6 type echo-request
trace id 77 inet fw input rule icmpv6 type echo-request reject (verdict drop)
garbage line
trace id short"#;

    #[test]
    fn drops_name_the_rule_and_the_source() {
        let lines: Vec<String> = TRACE.lines().map(String::from).collect();
        let d = parse_trace(&lines);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[2].source, Some("fd77::2".parse().unwrap()));
        assert_eq!(d[2].packet, "echo-request");
        assert_eq!(
            d[2].rule.as_deref(),
            Some("icmpv6 type echo-request reject")
        );
        assert_eq!(d[0].source, Some("10.99.0.2".parse().unwrap()));
        assert_eq!(d[0].packet, "echo-request");
        assert_eq!(d[0].chain, "ip filter INPUT");
        assert_eq!(
            d[0].rule.as_deref(),
            Some("meta l4proto icmp ip saddr 10.99.0.2 icmp type echo-request counter packets 0 bytes 0 drop")
        );
        assert_eq!(d[0].verdict, "drop");
        assert_eq!(d[1].chain, "inet fw input");
        assert_eq!(d[1].rule, None);
        assert_eq!(d[1].source, Some("10.99.0.4".parse().unwrap()));
    }
}
