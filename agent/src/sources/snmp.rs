//! Reads the kernel's ICMP counters from `/proc/net/snmp` (and `snmp6`), parsed by header name
//! so counters a kernel lacks (OutRateLimit*, before 6.0) are simply absent; also TCP's
//! ActiveOpens and `/proc/uptime` (outbound connections against the instance's own average).

use std::collections::HashMap;
use std::path::Path;

use crate::snapshot::{Gathered, IcmpCounters};

/// Parses the `Icmp:` header/value line pair of `/proc/net/snmp` into name → value.
pub fn parse_snmp_section(text: &str, section: &str) -> Result<HashMap<String, u64>, String> {
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (Some(header), Some(values)) = (lines.next(), lines.next()) else {
        return Err(format!(
            "no {section} section (expected a header line and a value line)"
        ));
    };
    let names: Vec<&str> = header[prefix.len()..].split_whitespace().collect();
    let values: Vec<&str> = values[prefix.len()..].split_whitespace().collect();
    if names.len() != values.len() {
        return Err(format!(
            "{section}: {} names but {} values",
            names.len(),
            values.len()
        ));
    }
    names
        .into_iter()
        .zip(values)
        .map(|(n, v)| {
            v.parse::<u64>()
                .map(|v| (n.to_string(), v))
                .map_err(|_| format!("{section} {n}: {v:?} is not a counter"))
        })
        .collect()
}

/// One counter of a section whose other values need not be counters (`Tcp: MaxConn` is -1).
pub fn one_counter(text: &str, section: &str, name: &str) -> Option<u64> {
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (header, values) = (lines.next()?, lines.next()?);
    let at = header[prefix.len()..]
        .split_whitespace()
        .position(|n| n == name)?;
    values[prefix.len()..]
        .split_whitespace()
        .nth(at)?
        .parse()
        .ok()
}

/// Parses `/proc/net/snmp6` (`Name value` per line).
pub fn parse_snmp6(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

pub fn icmp_from(snmp: &str, snmp6: Option<&str>, at_ms: u64) -> Result<IcmpCounters, String> {
    let icmp = parse_snmp_section(snmp, "Icmp")?;
    let tcp_active_opens = one_counter(snmp, "Tcp", "ActiveOpens");
    let need = |k: &str| {
        icmp.get(k)
            .copied()
            .ok_or_else(|| format!("Icmp section has no {k} counter"))
    };
    let v6 = snmp6.map(parse_snmp6);
    Ok(IcmpCounters {
        at_ms,
        in_msgs: need("InMsgs")?,
        in_errors: need("InErrors")?,
        in_echos: need("InEchos")?,
        out_echo_reps: need("OutEchoReps")?,
        out_rate_limit_global: icmp.get("OutRateLimitGlobal").copied(),
        out_rate_limit_host: icmp.get("OutRateLimitHost").copied(),
        in_echos6: v6.as_ref().and_then(|m| m.get("Icmp6InEchos").copied()),
        out_echo_replies6: v6
            .as_ref()
            .and_then(|m| m.get("Icmp6OutEchoReplies").copied()),
        tcp_active_opens,
        uptime_ms: None,
    })
}

/// `/proc/uptime`'s first field (seconds since boot, with a fraction) in milliseconds.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let secs = text.split_whitespace().next()?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(1000)?
        .checked_add(frac.parse().ok()?)
}

pub fn icmp(proc_root: &Path) -> Gathered<IcmpCounters> {
    let path = proc_root.join("net/snmp");
    let snmp = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => return Gathered::Failed(format!("cannot read {}: {e}", path.display())),
    };
    // IPv6 may be disabled: then there is no snmp6 and the v6 counters are absent.
    let snmp6 = std::fs::read_to_string(proc_root.join("net/snmp6")).ok();
    let uptime = std::fs::read_to_string(proc_root.join("uptime")).ok();
    match icmp_from(&snmp, snmp6.as_deref(), crate::unix_ms()) {
        Ok(mut c) => {
            c.uptime_ms = uptime.as_deref().and_then(parse_uptime);
            Gathered::Ok(c)
        }
        Err(e) => Gathered::Failed(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Saved from a 6.1 kernel.
    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives InHdrErrors
Ip: 2 64 1000 0
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps
Icmp: 45 0 0 3 0 0 0 0 42 0 0 0 0 0 40 0 0 1 0 0 0 0 0 0 40 0 0 0 0
IcmpMsg: InType3 InType8 OutType0
IcmpMsg: 3 42 40
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 1234 56 7 8 9 10000 9000 11 0 12 0
";

    #[test]
    fn parses_icmp_by_header_name() {
        let c = icmp_from(SNMP, Some("Icmp6InEchos 7\nIcmp6OutEchoReplies 6\n"), 5).unwrap();
        assert_eq!(c.in_echos, 42);
        assert_eq!(c.out_echo_reps, 40);
        assert_eq!(c.in_msgs, 45);
        assert_eq!(c.out_rate_limit_host, Some(1));
        assert_eq!(c.in_echos6, Some(7));
        assert_eq!(c.out_echo_replies6, Some(6));
        assert_eq!(c.tcp_active_opens, Some(1234));
    }

    #[test]
    fn uptime_in_milliseconds() {
        assert_eq!(parse_uptime("12345.67 2345.00\n"), Some(12_345_670));
        assert_eq!(parse_uptime("7 1"), Some(7_000));
        assert_eq!(parse_uptime("garbage"), None);
        assert_eq!(parse_uptime("99999999999999999999.1 0"), None);
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn older_kernel_without_rate_limit_counters() {
        let old = "Icmp: InMsgs InErrors InEchos OutEchoReps\nIcmp: 1 0 1 1\n";
        let c = icmp_from(old, None, 0).unwrap();
        assert_eq!(c.out_rate_limit_global, None);
        assert_eq!(c.in_echos6, None);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(icmp_from("nothing here", None, 0)
            .unwrap_err()
            .contains("no Icmp section"));
        let e = icmp_from("Icmp: InMsgs InEchos\nIcmp: 1\n", None, 0).unwrap_err();
        assert!(e.contains("2 names but 1 values"), "{e}");
        let e = icmp_from("Icmp: InMsgs\nIcmp: x\n", None, 0).unwrap_err();
        assert!(e.contains("not a counter"), "{e}");
        let e = icmp_from("Icmp: InMsgs\nIcmp: 1\n", None, 0).unwrap_err();
        assert!(e.contains("no InErrors"), "{e}");
    }

    #[test]
    fn unreadable_proc_fails_the_source() {
        let g = icmp(Path::new("/nonexistent-proc"));
        assert!(g.ok().unwrap_err().contains("/nonexistent-proc/net/snmp"));
    }
}
