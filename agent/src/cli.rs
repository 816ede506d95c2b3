//! The command line: `check` (one-shot diagnosis), `serve` (the daemon), `watch` (live echo
//! attribution while the user pings) and `snapshot` (the facts as JSON).
//! Exit codes for `check` follow DESIGN.md (2 fail, 1 warn, 3 unknown, 0 ok); errors before a
//! diagnosis use the sysexits codes 64 (usage), 66 (unreadable input), 78 (bad config).

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::exit::{CONFIG as EXIT_CONFIG, NOINPUT as EXIT_NOINPUT, USAGE as EXIT_USAGE};
use crate::snapshot::Snapshot;
use crate::sources::{self, GatherOptions};

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
pub enum Command {
    /// Diagnose once and print the findings.
    #[command(
        after_long_help = "Exit status: 0 every check ok or skipped; 1 some check warns; 2 some check fails; 3 some check is unknown (and none warns or fails); 64 usage error; 66 unreadable snapshot; 78 bad config file."
    )]
    Check {
        /// Print the JSON report instead of a table.
        #[arg(long)]
        json: bool,
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
    },
    /// Run the daemon: refresh periodically and serve the report, metrics and health over HTTP.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Ping this instance from outside while this runs: shows where the echo requests stop.
    #[command(
        after_long_help = "Shows each second the echo requests seen on the interfaces (before the firewall), those the ICMP layer counted, the replies sent and those that left; then the firewall rules whose counters moved, the nftables trace's drops (a temporary table inet ecs_diag_watch, removed at the end) and the verdict.\n\nExit status: 0 answered (the problem is on the way back or at the client); 1 not arriving (blocked outside the guest: security group, network ACL, route, blackhole); 2 arriving but not answered (the guest drops or ignores them); 64 usage; 66 unreadable counters; 78 bad config."
    )]
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
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print every gathered fact as JSON (replay it with `check --from`).
    Snapshot {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "ADDR")]
        client: Option<IpAddr>,
    },
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, i32> {
    Config::load(path).map_err(|e| {
        eprintln!("ecs-diag: {e}");
        EXIT_CONFIG
    })
}

fn read_snapshot(path: &std::path::Path) -> Result<Snapshot, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read snapshot {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not an ecs-diag snapshot: {e}", path.display()))
}

/// Gathers a snapshot; with a window, the ICMP counters are sampled before and after it.
pub fn take_snapshot(
    config: &Config,
    client: Option<IpAddr>,
    window: Option<Duration>,
) -> Snapshot {
    let first = window.map(|w| {
        let s = sources::sample(config);
        std::thread::sleep(w);
        s
    });
    let mut snapshot = sources::gather(
        config,
        &GatherOptions {
            client,
            ..Default::default()
        },
    );
    if let Some(first) = first {
        snapshot.earlier = Some(Box::new(first));
    }
    snapshot
}

fn print(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    0
}

pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Check {
            json,
            client,
            config,
            from,
            window,
        } => {
            let started = Instant::now();
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
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
                None => take_snapshot(&config, client, window.map(Duration::from_secs)),
            };
            let report =
                crate::checks::report(&snapshot, &crate::checks::Criteria::of(&config), started);
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => print(&(s + "\n")),
                    Err(e) => {
                        eprintln!("ecs-diag: cannot serialise the report: {e}");
                        return 70;
                    }
                };
            } else {
                let colour =
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                print(&report.render_table(colour));
            }
            report.exit_code()
        }
        Command::Serve { config } => crate::daemon::run(config),
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
        Command::Snapshot { config, client } => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let snapshot = take_snapshot(&config, client, None);
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

/// Entry point for the binary: parse, run, exit code.
pub fn main() -> i32 {
    match Cli::try_parse() {
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
