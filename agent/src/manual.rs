//! What each command's `--help` ends with and its man page adds: the files it reads, its exit
//! status, examples and related commands. One source for both, so they cannot disagree; the
//! options themselves come from the clap definitions in `cli`.

/// The manual sections of one command.
pub struct Manual {
    /// The command (`check`), or "" for `ecs-diag` itself.
    pub command: &'static str,
    /// Defaults, and how it behaves, beyond the one-line description.
    pub details: &'static [&'static str],
    /// (path or resource, what is read there)
    pub files: &'static [(&'static str, &'static str)],
    /// (code, meaning)
    pub exit_status: &'static [(&'static str, &'static str)],
    /// (command line, what it does)
    pub examples: &'static [(&'static str, &'static str)],
    pub see_also: &'static [&'static str],
}

const CONFIG: (&str, &str) = (
    "/etc/ecs-diag/config.toml",
    "the configuration, when it exists and no --config is given (every key optional)",
);
const FACTS: &[(&str, &str)] = &[
    CONFIG,
    ("netlink", "links, addresses, routes, policy rules, neighbours, qdiscs, the kernel's route lookups"),
    ("/proc/sys/net/...", "icmp_echo_ignore_all, echo_ignore_all (IPv6), rp_filter, icmp_ratelimit/ratemask and more"),
    ("/etc/sysctl.conf, /etc/sysctl.d, /run/sysctl.d, /usr/lib/sysctl.d", "what the sysctls become after a reboot, in systemd-sysctl's order"),
    ("/proc/net/snmp, /proc/net/snmp6", "ICMP echo counters"),
    ("/proc/stat, /proc/meminfo, /proc/vmstat, /proc/pressure, /proc/diskstats, /proc/PID/stat", "load"),
    ("/etc/sysconfig/network-scripts, /etc/netplan, /etc/network/interfaces, /etc/NetworkManager, /etc/systemd/network", "the persisted network configuration"),
    ("/sys/class/dmi/id, /sys/class/net", "whether this is Alibaba Cloud ECS; NIC drivers"),
    ("iptables-save, ip6tables-save, iptables-legacy-save, nft, ipset", "the firewall rulesets, run from /usr/sbin, /sbin, /usr/bin, /bin ([paths] tools), never $PATH"),
    ("http://100.100.100.200", "the instance metadata service: only where DMI says Alibaba Cloud ECS, or [metadata] mode = \"always\""),
    ("https://ecs-vpc.REGION.aliyuncs.com, https://vpc-vpc.REGION.aliyuncs.com, Anti-DDoS, Cloud Firewall, Security Center", "the cloud.* checks: read-only Describe*/List* calls signed with the instance RAM role's keys (from the metadata service), where [cloud] mode allows; the policy they need is /usr/share/ecs-diag/ram-policy.json"),
];

const EXIT_ERRORS: &[(&str, &str)] = &[
    ("64", "usage error"),
    ("66", "an input cannot be read"),
    (
        "78",
        "bad configuration file (the message names the key, the value and what is allowed)",
    ),
];

pub const MANUALS: &[Manual] = &[
    Manual {
        command: "",
        details: &[
            "Diagnoses, with evidence, why this ECS instance's public IP cannot be pinged or reached: the interfaces, addresses and routes against what the cloud assigned, the kernel parameters, the firewall, the load, and what the evidence says about causes outside the guest.",
        ],
        files: &[CONFIG],
        exit_status: &[("0-3", "ecs-diag check: see ecs-diag-check(1)"), ("64", "usage error")],
        examples: &[
            ("sudo ecs-diag check", "diagnose once, as a table"),
            ("ecs-diag explain sysctl.icmp_echo", "what one check decides and how"),
            ("systemctl enable --now ecs-diag", "run the daemon; curl -s 127.0.0.1:9717/v1/report"),
        ],
        see_also: &["ecs-diag-check(1)", "ecs-diag-serve(1)", "ecs-diag-watch(1)", "ecs-diag-fix(1)", "ecs-diag-snapshot(1)", "ecs-diag-checks(1)", "ecs-diag-explain(1)"],
    },
    Manual {
        command: "check",
        details: &[
            "Reads every fact once (no packet is sent), judges each check and prints a table: status, check id, summary, and the remedy for what fails. Without --window it never sleeps: counters are judged since boot and rates from the kernel's own averages. Needs root (or CAP_NET_ADMIN and CAP_NET_RAW) to read the firewall; without them the affected checks say unknown and the table ends with one line per source saying what needs which privilege.",
            "Formats: the table wraps to the terminal width (or COLUMNS) and is coloured only on a terminal without NO_COLOR; piped, each finding stays on one line. --format json (or --json) prints the report, prometheus the metrics as text (for node_exporter's textfile collector), nagios one line with performance data whose exit code is the plugin state (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).",
        ],
        files: FACTS,
        exit_status: &[
            ("0", "every check ok or skipped"),
            ("1", "some check warns (and none fails)"),
            ("2", "some check fails"),
            ("3", "some check is unknown (and none warns or fails)"),
            EXIT_ERRORS[0],
            ("66", "the --from snapshot cannot be read"),
            EXIT_ERRORS[2],
        ],
        examples: &[
            ("sudo ecs-diag check", "diagnose this instance"),
            ("sudo ecs-diag check --client 203.0.113.7 --window 5", "judge replies to that client, and rates over 5 s"),
            ("ecs-diag check --from snapshot.json --json", "judge a snapshot taken elsewhere, as JSON"),
            ("sudo ecs-diag check --format nagios", "as a Nagios/Icinga/Zabbix check"),
        ],
        see_also: &["ecs-diag-snapshot(1)", "ecs-diag-watch(1)", "ecs-diag-explain(1)"],
    },
    Manual {
        command: "serve",
        details: &[
            "Refreshes the diagnosis every [refresh] interval_s (default 30 s; each refresh judges the rates since the previous one) and serves it on [server] listen (default 127.0.0.1:9717): GET /v1/report (JSON; each check with `since`, when its status last changed), GET /v1/checks/ID, GET /v1/history (the last [server] history_entries status transitions, default 256), POST /v1/diagnose (a fresh run, rate-limited), GET /metrics (Prometheus text, or OpenMetrics when asked), GET /healthz (503 when refreshes have stalled). Reads are served from the last report: a scrape never runs a diagnosis.",
            "Signals: SIGHUP reloads the configuration ([server] changes need a restart); SIGTERM and SIGINT stop it within 5 s, abandoning a source that hangs. Under systemd it notifies readiness and pings the watchdog only while refreshes complete.",
        ],
        files: &[
            CONFIG,
            ("the facts of ecs-diag-check(1)", "read on each refresh; an unchanged firewall ruleset is not re-read"),
            ("/var/lib/ecs-diag/history.json", "status transitions kept across restarts ([paths] state; the unit's StateDirectory)"),
        ],
        exit_status: &[
            ("0", "stopped by SIGTERM or SIGINT"),
            ("71", "cannot start: the listen address or unix socket is refused, or no runtime"),
            EXIT_ERRORS[2],
        ],
        examples: &[
            ("ecs-diag serve --config /etc/ecs-diag/config.toml", "run in the foreground"),
            ("curl -s 127.0.0.1:9717/v1/report | jq '.checks[] | select(.status != \"ok\")'", "what is wrong now"),
            ("curl -s 127.0.0.1:9717/metrics | grep ecs_diag_check_status", "the metrics a fleet scrapes"),
        ],
        see_also: &["ecs-diag-check(1)", "systemctl(1)"],
    },
    Manual {
        command: "watch",
        details: &[
            "Ping this instance's public IP from outside while it runs (default 20 s). It first names what it watches: the primary interface, its private and public IP (from the metadata) and the client filter. Each second it prints running totals that add up: requests seen on the interfaces (before the firewall; the ICMP counters without packet capture) = answered + dropped by guest firewall rules (named, from an nftables trace in a temporary table inet ecs_diag_watch, removed at the end; --no-trace leaves the ruleset alone) + otherwise unanswered. Where no rule explains a drop, the kernel's skb:kfree_skb tracepoint (kernels >= 5.17; a private ftrace instance, tracefs mounted privately if needed, all removed at the end) names each dropped IPv4/IPv6 packet's reason and kernel function (every source's: the tracepoint carries no addresses). The verdict is said in one sentence as soon as the totals tell it; at the end come the firewall rules whose counters moved, the kernel's drop reasons, the checks on the echo path that fail or warn, and the final verdict with the mtr commands filled in.",
            "--json prints JSON Lines, each with `version` and `type`: `start`, a `tick` per second, `verdict_so_far` when the verdict becomes known or changes, and the final `verdict`.",
            "Needs root, or CAP_NET_RAW (the packet capture) and CAP_NET_ADMIN (the firewall counters and the trace); the kernel's drop reasons need root (tracefs).",
        ],
        files: &[
            CONFIG,
            ("AF_PACKET socket", "ICMP and ICMPv6 echo packets on every interface (a kernel filter passes only those)"),
            ("/proc/net/snmp, /proc/net/snmp6", "ICMP echo counters"),
            ("iptables-save -c, nft", "rule counters; the nftables trace"),
            ("tracefs: instances/ecs-diag-PID, events/skb/kfree_skb", "the kernel's drop reasons (a private instance, removed at the end)"),
        ],
        exit_status: &[
            ("0", "the requests arrived and were answered: the problem is on the way back or at the client"),
            ("1", "none arrived: blocked outside the guest (security group, network ACL, route, blackhole)"),
            ("2", "they arrived and (some) went unanswered: the guest drops or ignores them"),
            EXIT_ERRORS[0],
            ("66", "the ICMP counters cannot be read"),
            EXIT_ERRORS[2],
        ],
        examples: &[
            ("sudo ecs-diag watch", "20 s; ping the public IP meanwhile"),
            ("sudo ecs-diag watch --client 203.0.113.7 --seconds 60", "only that client's pings"),
            ("sudo ecs-diag watch --json | tail -n 1 | jq -r .verdict", "the verdict for a script"),
        ],
        see_also: &["ecs-diag-check(1)", "ping(8)", "mtr(8)"],
    },
    Manual {
        command: "trace",
        details: &[
            "The instance's half of a bidirectional link test (the other half is mtr from the client towards the public IP). Sends --count rounds (default 10) of probes towards the client, one per TTL from 1 up to the client's distance (at most --max-hops, 30): ICMP echo requests (default), UDP datagrams to traceroute's ports from 33434 (or --port), or TCP SYNs to --port (default 80). Each round waits at most 1 s for the answers: a router's time exceeded, the client's echo reply, port unreachable, SYN-ACK or RST. It prints one line per hop (address, loss %, sent, last/avg/best/worst/stdev RTT in ms) and the verdict: the first hop from which every hop to the end loses probes (where packets are lost), hops that lose probes a later hop answers (that router rate-limits its ICMP answers: not loss), whether the client was reached, and whether the path leaves the instance's region (a hop adding 40 ms or more: a long-haul or cross-border link). IPv4 only (for IPv6: mtr -6).",
            "Only a person running it sends probes: check and serve never do. Needs root or CAP_NET_RAW (a raw ICMP socket); the region comes from the metadata where [metadata] mode allows it.",
        ],
        files: &[
            CONFIG,
            ("raw ICMP socket, UDP and TCP sockets", "the probes (TTL set per probe) and the routers' ICMP answers"),
            ("http://100.100.100.200", "the region: only where DMI says Alibaba Cloud ECS, or [metadata] mode = \"always\""),
        ],
        exit_status: &[
            ("0", "the client answered and no loss persists to it"),
            ("1", "the client answered, but loss starting at a hop persists to it"),
            ("2", "the client never answered"),
            EXIT_ERRORS[0],
            ("71", "a socket cannot be opened"),
            ("77", "without CAP_NET_RAW"),
            EXIT_ERRORS[2],
        ],
        examples: &[
            ("sudo ecs-diag trace --client 203.0.113.7", "ICMP, 10 rounds"),
            ("sudo ecs-diag trace --client 203.0.113.7 --protocol tcp --port 443 --count 20", "the way HTTPS goes"),
            ("sudo ecs-diag trace --client 203.0.113.7 --json | jq .verdict", "the verdict for a script"),
        ],
        see_also: &["ecs-diag-watch(1)", "mtr(8)", "traceroute(8)"],
    },
    Manual {
        command: "fix",
        details: &[
            "Diagnoses, then plans a fix for each failing check that has a safe automatic one, and prints the plan: the exact commands and a unified diff of each file it would change, and why. Nothing is changed without --apply. Fixes so far: sysctl.icmp_echo and sysctl.icmp_echo6 (the running value, and the exact sysctl.d or sysctl.conf line that wins at boot, commented with why; a vendor file or a glob is overridden in /etc/sysctl.d/zz-ecs-diag.conf), sysctl.rp_filter (loose mode, 2, on exactly the interfaces the finding proved strict and asymmetric, now and at boot), link.primary (an administratively down primary interface is brought up), route.default (a missing IPv4 default route is added via the vSwitch gateway the metadata assigns, on the primary interface, and where the instance uses IPv6 a missing IPv6 default route via the assigned IPv6 gateway), addr.primary (an assigned IPv6 address missing from the primary interface, as after the link was set down, is added back with the vSwitch prefix; a wrong IPv4 address is left to a person), addr.secondary (each missing assigned secondary private IP added to its interface, and persisted where one format alone configures it: IPADDRn=/PREFIXn= in its ifcfg file, addresses: under its ethernets id in /etc/netplan/99-ecs-diag.yaml, which netplan appends to the interface's own, or addressN= in the [ipv4] section of its NetworkManager keyfile; elsewhere until reboot, said in the plan), and firewall.icmp_in / firewall.icmp_out (an ACCEPT for ICMP echo from or to the client inserted just before the deciding iptables rule, same table, chain and backend, or before a native nftables rule by its handle, tagged with a comment the undo finds it by; no other rule is ever deleted; where ufw manages the rules the accept goes first into ufw-before-input in /etc/ufw/before.rules, or before6.rules, and ufw reload loads it; where firewalld manages them, a rich rule at the lowest priority, rule priority=\"-32768\" … icmp-type name=\"echo-request\" accept, in the zone whose chain decided, added at runtime and with --permanent so a firewall-cmd --reload keeps it, and removed the same way by --undo; an outgoing packet or a rule outside the zone chains is left to a person), and firewall.icmp6 (the same with ip6tables or nftables, for every IPv6 packet the check finds blocked in one run: echo either way, and neighbour discovery with the router, accepted from any address). Every other failing check is listed as not fixed, with why.",
            "--apply (root) is a journaled transaction: after the question is answered the lock is taken and the plan made again (applied only if it is the one shown); the intent and every before-image are fsynced (0600, in 0700 directories) before the first change, and each change is recorded as it completes. A fix that can cut connectivity (link, address, route, firewall) arms its revert before the first change (a systemd transient timer where systemd runs this namespace, else a detached reverter) and is kept only if `ecs-diag fix --confirm ID` comes within --revert-after seconds (default 60), from a session that still has access; a fix whose process dies half-way is rolled back by its reverter or by the next fix, check or serve run as root. Files keep mode, owner, group and extended attributes; symlinks out of [paths] etc and files with several hard links are refused. It waits 1 s for the change to settle, diagnoses again and rolls everything back unless each fixed check is ok. A rollback, revert or --undo restores only what still equals what the fix wrote: newer content is kept (saved beside the backup) and the restore recorded as revert_failed or undo_failed, retried with --undo ID. --history lists the fixes, whether their reverter is alive and why a restore failed. One fix runs at a time (a lock file). The daemon and the HTTP API never change anything.",
        ],
        files: &[
            CONFIG,
            ("/var/lib/ecs-diag/fixes/ID/record.json", "each fix: its checks, state and every changed value and file as it was before ([paths] state)"),
            ("/var/lib/ecs-diag/fixes/ID/*.before", "copies of the files a fix edits, and the touched rulesets as iptables-save or nft list ruleset printed them before"),
            ("/var/lib/ecs-diag/fixes/lock", "held while a fix is applied or undone"),
            ("/proc/sys, /etc/sysctl.d, /etc/sysctl.conf", "what the sysctl fixes change ([paths] proc and etc)"),
        ],
        exit_status: &[
            ("0", "planned, applied and verified (or awaiting confirmation), confirmed, or undone"),
            ("1", "rolled back: a change failed or a fixed check was not ok afterwards"),
            EXIT_ERRORS[0],
            ("66", "--undo: no such fix"),
            ("71", "another fix is running, or the backup cannot be written (nothing changed)"),
            ("77", "--apply or --undo without root"),
            EXIT_ERRORS[2],
        ],
        examples: &[
            ("sudo ecs-diag fix", "what would be fixed, and how (changes nothing)"),
            ("sudo ecs-diag fix --apply --yes", "fix, verify, roll back on failure"),
            ("sudo ecs-diag fix --confirm 20261204T182059.045Z", "keep a fix that awaits confirmation"),
            ("sudo ecs-diag fix --history --json", "the applied fixes, oldest first"),
            ("sudo ecs-diag fix --undo 20261204T182059.045Z", "restore what that fix changed"),
        ],
        see_also: &["ecs-diag-check(1)", "sysctl.d(5)"],
    },
    Manual {
        command: "snapshot",
        details: &[
            "Prints every fact `check` would judge, as JSON, without judging: hand it to a support engineer, who replays it with `ecs-diag check --from FILE` (judged by the thresholds of the --config given there).",
        ],
        files: FACTS,
        exit_status: &[("0", "printed"), EXIT_ERRORS[0], EXIT_ERRORS[2]],
        examples: &[
            ("sudo ecs-diag snapshot > snapshot.json", "capture this machine"),
            ("ecs-diag check --from snapshot.json", "judge it, here or elsewhere"),
        ],
        see_also: &["ecs-diag-check(1)"],
    },
    Manual {
        command: "checks",
        details: &["Lists every check: its stable id (the report's `id`, the metric label) and the question it answers."],
        files: &[],
        exit_status: &[("0", "listed")],
        examples: &[
            ("ecs-diag checks", "the catalogue"),
            ("ecs-diag checks --json | jq -r '.[].id'", "the ids alone"),
        ],
        see_also: &["ecs-diag-explain(1)"],
    },
    Manual {
        command: "explain",
        details: &["Prints what one check decides, the evidence it reads, and the causes it can name with their remedies: the same registry the code judges with."],
        files: &[],
        exit_status: &[("0", "explained"), ("64", "no check has that id (close matches are suggested)")],
        examples: &[
            ("ecs-diag explain sysctl.icmp_echo", "one check"),
            ("ecs-diag explain firewall.icmp_in --json", "the same, as JSON"),
        ],
        see_also: &["ecs-diag-checks(1)", "ecs-diag-check(1)"],
    },
];

/// The manual of one command ("" for `ecs-diag` itself).
pub fn of(command: &str) -> Option<&'static Manual> {
    MANUALS.iter().find(|m| m.command == command)
}

impl Manual {
    /// The text `--help` ends with.
    pub fn help_text(&self) -> String {
        let mut out = String::new();
        for d in self.details {
            out.push_str(d);
            out.push_str("\n\n");
        }
        let section = |out: &mut String, title: &str, rows: &[(&str, &str)]| {
            if rows.is_empty() {
                return;
            }
            out.push_str(title);
            out.push_str(":\n");
            for (a, b) in rows {
                if a.len() < 6 {
                    out.push_str(&format!("  {a:<6}{b}\n"));
                } else {
                    out.push_str(&format!("  {a}\n        {b}\n"));
                }
            }
            out.push('\n');
        };
        section(&mut out, "Files", self.files);
        section(&mut out, "Exit status", self.exit_status);
        section(&mut out, "Examples", self.examples);
        if !self.see_also.is_empty() {
            out.push_str(&format!("See also: {}\n", self.see_also.join(", ")));
        }
        out.trim_end().to_string()
    }
}
