//! Kernel networking counters kept in `/proc`: per-CPU softnet backlog drops and time
//! squeezes (`/proc/net/softnet_stat`), and the connection-tracking table's fill and failures
//! (`/proc/sys/net/netfilter/nf_conntrack_{count,max}`, `/proc/net/stat/nf_conntrack`).

use std::path::Path;

use crate::snapshot::{Conntrack, Gathered, SoftnetCpu};

/// `/proc/net/softnet_stat`: one line per CPU of hex columns; 1st processed, 2nd dropped,
/// 3rd time_squeeze.
pub fn parse_softnet(text: &str) -> Result<Vec<SoftnetCpu>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let cols: Vec<u64> = l
                .split_whitespace()
                .map(|c| u64::from_str_radix(c, 16))
                .collect::<Result<_, _>>()
                .map_err(|_| format!("line {}: not hex counters: {l:?}", n + 1))?;
            if cols.len() < 3 {
                return Err(format!(
                    "line {}: expected at least 3 columns: {l:?}",
                    n + 1
                ));
            }
            Ok(SoftnetCpu {
                processed: cols[0],
                dropped: cols[1],
                time_squeeze: cols[2],
            })
        })
        .collect()
}

/// `/proc/net/stat/nf_conntrack`: a header line of names, then one hex line per CPU; sums
/// the failure counters by name (kernels differ in columns).
pub fn parse_conntrack_stat(text: &str) -> Result<(u64, u64, u64), String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty")?.split_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (mut insert_failed, mut drop, mut early_drop) = (0, 0, 0);
    for (n, l) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cols: Vec<u64> = l
            .split_whitespace()
            .map(|c| u64::from_str_radix(c, 16))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("line {}: not hex counters: {l:?}", n + 2))?;
        let get = |name: &str| col(name).and_then(|i| cols.get(i)).copied().unwrap_or(0);
        insert_failed += get("insert_failed");
        drop += get("drop");
        early_drop += get("early_drop");
    }
    Ok((insert_failed, drop, early_drop))
}

pub fn softnet(proc_root: &Path) -> Gathered<Vec<SoftnetCpu>> {
    let path = proc_root.join("net/softnet_stat");
    match std::fs::read_to_string(&path) {
        Ok(t) => match parse_softnet(&t) {
            Ok(v) => Gathered::Ok(v),
            Err(e) => Gathered::Failed(format!("{}: {e}", path.display())),
        },
        Err(e) => Gathered::Failed(format!("cannot read {}: {e}", path.display())),
    }
}

pub fn conntrack(proc_root: &Path) -> Gathered<Option<Conntrack>> {
    let read = |rel: &str| std::fs::read_to_string(proc_root.join(rel));
    let count = match read("sys/net/netfilter/nf_conntrack_count") {
        Ok(c) => c,
        // Not loaded (no stateful rule ever used): nothing to fill up.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Gathered::Ok(None),
        Err(e) => return Gathered::Failed(format!("cannot read nf_conntrack_count: {e}")),
    };
    let max = read("sys/net/netfilter/nf_conntrack_max").unwrap_or_default();
    let (Ok(count), Ok(max)) = (count.trim().parse::<u64>(), max.trim().parse::<u64>()) else {
        return Gathered::Failed(format!(
            "nf_conntrack_count/max are not numbers: {count:?}, {max:?}"
        ));
    };
    let (insert_failed, drop, early_drop) =
        match read("net/stat/nf_conntrack").map(|t| parse_conntrack_stat(&t)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Gathered::Failed(format!("/proc/net/stat/nf_conntrack: {e}")),
            Err(_) => (0, 0, 0),
        };
    Gathered::Ok(Some(Conntrack {
        count,
        max,
        insert_failed,
        drop,
        early_drop,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softnet_columns() {
        let v = parse_softnet(
            "0000272d 00000003 0000000a 00000000\n00000100 00000000 00000000 00000000\n",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].processed, v[0].dropped, v[0].time_squeeze),
            (0x272d, 3, 10)
        );
        assert!(parse_softnet("zz\n").unwrap_err().contains("line 1"));
        assert!(parse_softnet("01 02\n").unwrap_err().contains("3 columns"));
    }

    #[test]
    fn conntrack_stat_by_header_name() {
        let t = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
00000010  00000000 00000000 00000000 00000002 00000000 00000000 00000000 00000000 00000001 00000004 00000000 00000000  00000000 00000000 00000000 00000000\n\
00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 00000000 00000001 00000000  00000000 00000000 00000000 00000000\n";
        assert_eq!(parse_conntrack_stat(t).unwrap(), (3, 4, 1));
    }

    #[test]
    fn conntrack_absent_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(conntrack(dir.path()), Gathered::Ok(None));
    }
}
