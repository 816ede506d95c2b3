//! The command line: `check` (one-shot diagnosis), `serve` (the daemon), `watch` (live echo
//! attribution while the user pings), `snapshot` (the facts as JSON), and `checks` / `explain`
//! (the catalogue, printed from the check registry).
//! Exit codes for `check` follow DESIGN.md (2 fail, 1 warn, 3 unknown, 0 ok); errors before a
//! diagnosis use the sysexits codes 64 (usage), 66 (unreadable input), 78 (bad config).

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::Config;
use crate::exit::{CONFIG as EXIT_CONFIG, NOINPUT as EXIT_NOINPUT, USAGE as EXIT_USAGE};
use crate::snapshot::Snapshot;
use crate::sources;

/// `ecs-diag --version`: the package version and the git revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("ECS_DIAG_GIT_REV"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "ecs-diag",
    version = VERSION,
    about = "Why can't this ECS instance be pinged or reached? Checks everything inside the guest and says what it found, with evidence and the fix."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
// Each subcommand's arguments are built only when it is the one asked for (or for help, man
// pages and completions, which build them all): building every one took 0.1 ms of each
// `check`'s serial start.
#[command(defer = true)]
pub enum Command {
    /// Diagnose once and print the findings.
    Check {
        /// Print the JSON report instead of a table (the same as --format json).
        #[arg(long)]
        json: bool,
        /// Output format: table (for people; colour only on a terminal, honours NO_COLOR,
        /// wraps to the terminal width), json (the report), prometheus (text exposition, e.g.
        /// for node_exporter's textfile collector) or nagios (one line with perfdata; the exit
        /// code is the plugin state).
        #[arg(long, value_enum, value_name = "FORMAT", conflicts_with = "json")]
        format: Option<Format>,
        /// Judge routes and reverse path for replies to this client address.
        #[arg(long, value_name = "ADDR")]
        client: Option<IpAddr>,
        /// Config file (default /etc/ecs-diag/config.toml if it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Judge a saved snapshot (from `ecs-diag snapshot`) instead of this machine.
        #[arg(long, value_name = "SNAPSHOT")]
        from: Option<PathBuf>,
        /// Sample the counters (CPU, memory, disks, interfaces, ICMP) twice, this many seconds
        /// apart, and judge on the rates between them.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        window: Option<u64>,
        /// Also judge that NAME resolves, as this guest resolves it, to this instance's public
        /// IP or EIP (dns.resolution); repeatable, added to [dns] domains.
        #[arg(long = "domain", value_name = "NAME", value_parser = domain_name)]
        domains: Vec<String>,
    },
    /// Run the daemon: refresh periodically and serve the report, metrics and health over HTTP.
    Serve {
        /// Config file (default /etc/ecs-diag/config.toml if it exists). SIGHUP re-reads it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Ping this instance from outside while this runs: shows where the echo requests stop.
    Watch {
        /// How long to watch.
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
        seconds: u64,
        /// Count only this client's requests and the replies to it.
        #[arg(long, value_name = "ADDR")]
        client: Option<IpAddr>,
        /// Print the verdict as JSON (the live lines go to stderr).
        #[arg(long)]
        json: bool,
        /// Do not add the temporary nftables trace table.
        #[arg(long)]
        no_trace: bool,
        /// Config file (default /etc/ecs-diag/config.toml if it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The path from this instance towards a client, hop by hop, mtr-style
    ///
    /// Per hop: loss, sent and last/avg/best/worst/stdev RTT, from probes with increasing TTL;
    /// then where loss starts and persists, which router only rate-limits its answers, and
    /// whether the path leaves the instance's region. Sends probes only when run (needs
    /// CAP_NET_RAW).
    Trace {
        /// The client to trace towards (IPv4).
        #[arg(long, value_name = "ADDR")]
        client: IpAddr,
        /// What to send: ICMP echo requests, UDP datagrams (traceroute's ports from 33434) or
        /// TCP SYNs (to --port, default 80).
        #[arg(long, value_enum, default_value = "icmp")]
        protocol: crate::sources::probes::Protocol,
        /// UDP or TCP destination port.
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// Rounds of probes (one per hop each round).
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
        count: u32,
        /// The farthest hop probed.
        #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u8).range(1..=64))]
        max_hops: u8,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Config file (default /etc/ecs-diag/config.toml if it exists): the metadata settings
        /// the instance's region is read with.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List every check: its id and the question it answers.
    Checks {
        /// Print a JSON array of {id, decides} instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Explain one check: what it decides, the evidence it reads, the causes it can name and
    /// their remedies.
    Explain {
        /// A check id, as `ecs-diag checks` lists them (e.g. route.default).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Fix the causes a diagnosis proves: print the plan (commands and file diffs); with
    /// --apply, back up, apply, re-check and roll back unless the fixed checks are ok.
    Fix {
        /// Only this check (repeatable; default: every failing check that has a fix).
        #[arg(long = "check", value_name = "ID")]
        checks: Vec<String>,
        /// Judge routes and reverse path for replies to this client address.
        #[arg(long, value_name = "ADDR")]
        client: Option<IpAddr>,
        /// Apply the plan (needs root): backup, change, re-check, roll back on failure.
        #[arg(long, conflicts_with_all = ["history", "undo"])]
        apply: bool,
        /// Do not ask before applying (non-interactive).
        #[arg(long, requires = "apply")]
        yes: bool,
        /// A fix that can cut connectivity (link, route, firewall) is reverted after this many
        /// seconds unless confirmed with --confirm ID.
        #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
        revert_after: u64,
        /// Keep fix ID (one awaiting confirmation): it is not reverted.
        #[arg(long, value_name = "ID", conflicts_with_all = ["apply", "history", "undo", "checks", "client"])]
        confirm: Option<String>,
        /// Internal: the process that reverts fix ID unless it is confirmed in time.
        #[arg(long, value_name = "ID", hide = true, conflicts_with_all = ["apply", "history", "undo", "confirm"])]
        revert_pending: Option<String>,
        /// List the applied fixes, oldest first.
        #[arg(long, conflicts_with_all = ["undo", "checks", "client"])]
        history: bool,
        /// Restore the backup of fix ID (from --history).
        #[arg(long, value_name = "ID", conflicts_with_all = ["checks", "client"])]
        undo: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Config file (default /etc/ecs-diag/config.toml if it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Internal, run as root by the packaged unit before the daemon (ExecStartPre=+): opens
    /// the root-only /proc/net/ip{,6}_tables_names and passes them to the daemon through
    /// systemd's file-descriptor store (sources::held_files).
    #[command(hide = true)]
    HandOver,
    /// Print every gathered fact as JSON (replay it with `check --from`).
    Snapshot {
        /// Config file (default /etc/ecs-diag/config.toml if it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Make the reply-route lookups for this client address.
        #[arg(long, value_name = "ADDR")]
        client: Option<IpAddr>,
    },
}

/// How `check` prints its report.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Prometheus,
    Nagios,
}

/// The width to wrap the table to: `COLUMNS` when set, else the terminal's when stdout is
/// one; None (no wrapping) when piped, so each finding stays on one line for `grep`.
fn table_width() -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(c);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct passed; stdout is a terminal.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (r == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, i32> {
    let config = Config::load(path).map_err(|e| {
        eprintln!("ecs-diag: {e}");
        EXIT_CONFIG
    })?;
    sources::tools::set_dirs(&config.paths.tools);
    Ok(config)
}

fn read_snapshot(path: &std::path::Path) -> Result<Snapshot, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read snapshot {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        // A report has `checks` and `generated_at` where a snapshot has `taken_at`.
        let is_report = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .is_some_and(|v| v.get("checks").is_some() && v.get("taken_at").is_none());
        if is_report {
            format!(
                "{} is a report, not a snapshot: take one with `ecs-diag snapshot > FILE`",
                path.display()
            )
        } else {
            format!("{} is not an ecs-diag snapshot: {e}", path.display())
        }
    })
}

/// `ecs-diag checks`: every check id and what it decides.
fn list_checks(json: bool) -> i32 {
    let checks: Vec<&crate::checks::Check> = crate::checks::catalogue().collect();
    if json {
        let v: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| serde_json::json!({"id": c.id, "decides": c.decides}))
            .collect();
        return print(&format!("{}\n", serde_json::Value::Array(v)));
    }
    let width = checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!("{:width$}  {}\n", c.id, c.decides));
    }
    print(&out)
}

/// `ecs-diag explain ID`.
fn explain(id: &str, json: bool) -> i32 {
    let Some(c) = crate::checks::find(id) else {
        let near: Vec<&str> = crate::checks::catalogue()
            .map(|c| c.id)
            .filter(|c| {
                c.split('.').next() == id.split('.').next() || c.contains(id) || id.contains(c)
            })
            .collect();
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", near.join(", "))
        };
        eprintln!("ecs-diag: no check has the id {id:?}{hint}; `ecs-diag checks` lists them");
        return EXIT_USAGE;
    };
    if json {
        let v = serde_json::json!({
            "id": c.id, "decides": c.decides, "evidence": c.evidence,
            "causes": c.causes.iter().map(|k| serde_json::json!({"id": k.id, "cause": k.cause, "remedy": k.remedy})).collect::<Vec<_>>(),
        });
        return print(&format!("{v}\n"));
    }
    let mut out = format!("{}\n  {}\n\nEvidence:\n", c.id, c.decides);
    for e in c.evidence {
        out.push_str(&format!("  - {e}\n"));
    }
    out.push_str("\nCauses it can name (the cause id a finding and ecs_diag_check_cause carry), and their remedies:\n");
    for k in c.causes {
        out.push_str(&format!(
            "  - {}: {}\n      remedy: {}\n",
            k.id, k.cause, k.remedy
        ));
    }
    print(&out)
}

/// One line per source that could not be read for lack of privilege, e.g. "firewall:
/// iptables-nft-save needs CAP_NET_ADMIN — run as root" (empty when nothing was denied).
pub fn denied_lines(denied: &[crate::snapshot::Denied]) -> String {
    let mut sources: Vec<&str> = denied.iter().map(|d| d.source.as_str()).collect();
    sources.dedup();
    if sources.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nNot readable without privileges (the checks that need them say unknown):\n",
    );
    for source in sources {
        let of: Vec<&crate::snapshot::Denied> =
            denied.iter().filter(|d| d.source == source).collect();
        out.push_str(&format!(
            "  {source}: {} — run as root\n",
            crate::snapshot::Denied::describe(&of)
        ));
    }
    out
}

fn print(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    0
}

/// `--domain NAME`: a name that can be asked (letters, digits, '-', '_', dots).
fn domain_name(s: &str) -> Result<String, String> {
    sources::dns::valid_name(s).map(|_| s.to_string())
}

pub fn run(cli: Cli) -> i32 {
    if let Err(e) = sources::held_files::adopt() {
        eprintln!("ecs-diag: warning: {e}");
    }
    match cli.command {
        Command::HandOver => match sources::held_files::hand_over(std::path::Path::new("/proc")) {
            Ok(said) => {
                for line in said {
                    println!("ecs-diag hand-over: {line}");
                }
                0
            }
            Err(e) => {
                eprintln!("ecs-diag hand-over: {e}");
                crate::exit::OSERR
            }
        },
        Command::Check {
            json,
            format,
            client,
            config,
            from,
            window,
            domains,
        } => {
            let started = Instant::now();
            if from.is_some() && window.is_some() {
                eprintln!("ecs-diag: --window samples this machine twice; a saved snapshot cannot be re-sampled: drop --window, or take the snapshot with the window (ecs-diag check --window N)");
                return EXIT_USAGE;
            }
            let mut config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if from.is_some() && !domains.is_empty() {
                eprintln!("ecs-diag: --domain resolves names on this machine; a saved snapshot holds the names it was taken with: drop --domain");
                return EXIT_USAGE;
            }
            config.dns.domains.extend(domains);
            let snapshot = match from {
                Some(path) => match read_snapshot(&path) {
                    Ok(s) if client.is_some() && s.client != client => {
                        eprintln!(
                            "ecs-diag: the snapshot's route lookups were made for {}; take a new snapshot with --client {}",
                            s.client.map(|c| c.to_string()).unwrap_or_else(|| "no client".into()),
                            client.map(|c| c.to_string()).unwrap_or_default()
                        );
                        return EXIT_USAGE;
                    }
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("ecs-diag: {e}");
                        return EXIT_NOINPUT;
                    }
                },
                None => {
                    // A fix a crash left half-done is finished first (root only), so the
                    // diagnosis sees the machine as it will stay.
                    crate::fix::recover_at_start(&config.paths);
                    sources::take_snapshot(&config, client, window.map(Duration::from_secs))
                }
            };
            let report =
                crate::checks::report(&snapshot, &crate::checks::Criteria::of(&config), started);
            let format = format.unwrap_or(if json { Format::Json } else { Format::Table });
            match format {
                Format::Json => match serde_json::to_string_pretty(&report) {
                    Ok(s) => {
                        print(&(s + "\n"));
                    }
                    Err(e) => {
                        eprintln!("ecs-diag: cannot serialise the report: {e}");
                        return 70;
                    }
                },
                Format::Table => {
                    let colour =
                        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                    print(&report.render_table(colour, table_width()));
                    print(&denied_lines(&snapshot.denied));
                }
                Format::Prometheus => {
                    let mut metrics = crate::metrics::Metrics::new();
                    metrics.record(&snapshot, &report, crate::unix_ms() as f64 / 1000.0);
                    print(&crate::metrics::prometheus_text(&metrics.openmetrics()));
                }
                Format::Nagios => {
                    print(&report.render_nagios());
                }
            }
            let code = report.exit_code();
            // The process ends with this command: freeing a snapshot of 100,000 rules one
            // string at a time would only delay the exit (20 ms), so the memory goes with it.
            std::mem::forget(snapshot);
            std::mem::forget(report);
            code
        }
        Command::Serve { config } => crate::daemon::run(config),
        Command::Trace {
            client,
            protocol,
            port,
            count,
            max_hops,
            json,
            config,
        } => match load_config(config.as_deref()) {
            Ok(config) => crate::trace::run(&config, client, protocol, port, count, max_hops, json),
            Err(code) => code,
        },
        Command::Watch {
            seconds,
            client,
            json,
            no_trace,
            config,
        } => match load_config(config.as_deref()) {
            Ok(config) => crate::watch::run(
                &config,
                &crate::watch::WatchOptions {
                    seconds,
                    client,
                    json,
                    trace: !no_trace,
                },
            ),
            Err(code) => code,
        },
        Command::Fix {
            checks,
            client,
            apply,
            yes,
            revert_after,
            confirm,
            revert_pending,
            history,
            undo,
            json,
            config: config_path,
        } => {
            let config = match load_config(config_path.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if history {
                return crate::fix::history(&config, json);
            }
            if let Some(id) = undo {
                return crate::fix::undo(&config, &id, json);
            }
            if let Some(id) = confirm {
                return crate::fix::confirm(&config, &id, json);
            }
            if let Some(id) = revert_pending {
                return crate::fix::revert_pending(&config, &id, revert_after);
            }
            crate::fix::run(
                &config,
                &crate::fix::FixOptions {
                    checks,
                    client,
                    apply,
                    yes,
                    json,
                    revert_after,
                    config_path,
                },
            )
        }
        Command::Checks { json } => list_checks(json),
        Command::Explain { id, json } => explain(&id, json),
        Command::Snapshot { config, client } => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let snapshot = sources::take_snapshot(&config, client, None);
            match serde_json::to_string_pretty(&snapshot) {
                Ok(s) => print(&(s + "\n")),
                Err(e) => {
                    eprintln!("ecs-diag: cannot serialise the snapshot: {e}");
                    70
                }
            }
        }
    }
}

/// The command line with each command's manual (files, exit status, examples) after its
/// `--help`; `xtask` renders the man pages from the same definition.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    if let Some(m) = crate::manual::of("") {
        cmd = cmd.after_long_help(m.help_text());
    }
    for m in crate::manual::MANUALS
        .iter()
        .filter(|m| !m.command.is_empty())
    {
        cmd = cmd.mut_subcommand(m.command, |c| c.after_long_help(m.help_text()));
    }
    cmd
}

/// Entry point for the binary: parse, run, exit code.
pub fn main() -> i32 {
    // The manuals (long help) are text for a person: built only when help is asked for.
    let help = std::env::args_os()
        .skip(1)
        .any(|a| a == "--help" || a == "-h" || a == "help");
    let cmd = if help { command() } else { Cli::command() };
    let parsed = cmd
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => run(cli),
        Err(e) => {
            let _ = e.print();
            match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => EXIT_USAGE,
            }
        }
    }
}
