//! `ecs-diag serve`: the process around the [`crate::engine::Engine`] — listeners, the refresh
//! timer every `refresh.interval_s`, signals (SIGHUP reloads the config, an invalid one is
//! logged and the old one kept; SIGTERM/SIGINT shut down), and under systemd readiness and a
//! watchdog pinged only while refreshes complete.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::engine::{Engine, Refresh};

fn init_logging() {
    let stderr_tty = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_tty)
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        // A failed log write (journald restarting, a closed pipe) must not reach eprintln!,
        // which panics on a broken pipe and would take the daemon down.
        .log_internal_errors(false);
    // journald stamps each line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// `ecs-diag serve`: returns the process exit code.
pub fn run(config_path: Option<PathBuf>) -> i32 {
    init_logging();
    let config = match Config::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return crate::exit::CONFIG;
        }
    };
    crate::sources::tools::set_dirs(&config.paths.tools);
    // Root only (the packaged unit is not): a fix a crash left half-done is finished first.
    crate::fix::recover_at_start(&config.paths);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return crate::exit::OSERR;
        }
    };
    let code = runtime.block_on(serve(config_path, config));
    // A source stuck in a blocking thread (a tool, a read that never returns) cannot be
    // cancelled: abandon it rather than wait, so SIGTERM always ends the process.
    runtime.shutdown_background();
    code
}

async fn serve(config_path: Option<PathBuf>, config: Config) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};

    let (engine, _) = Engine::new(config.clone());
    let app = crate::http::router(crate::http::AppState::new(engine.clone()));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let listen = match config.server.listen_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return crate::exit::CONFIG;
        }
    };
    let tcp = match crate::http::listen_tcp(listen) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {listen}: {e}");
            return crate::exit::OSERR;
        }
    };
    // Port 0 asks the kernel for a free port; the log names the one bound.
    let bound = tcp.local_addr().unwrap_or(listen);
    tracing::info!("listening on http://{bound}");
    let limits = crate::http::ConnLimits::from(&config.server);
    let mut servers = vec![tokio::spawn(crate::http::serve_tcp(
        tcp,
        app.clone(),
        Arc::new(config.server.allow.clone()),
        limits,
        shutdown_rx.clone(),
    ))];
    if let Some(path) = &config.server.unix_socket {
        match crate::http::bind_unix(path) {
            Ok(l) => {
                tracing::info!("listening on unix:{}", path.display());
                servers.push(tokio::spawn(crate::http::serve_unix(
                    l,
                    app.clone(),
                    limits,
                    shutdown_rx.clone(),
                )));
            }
            Err(e) => {
                tracing::error!("cannot listen on unix socket {}: {e}", path.display());
                return crate::exit::OSERR;
            }
        }
    }

    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return crate::exit::OSERR;
    };

    // The first report, then readiness; a stop signal meanwhile still ends the daemon at once.
    let mut stopping = false;
    tokio::select! {
        r = engine.refresh() => {
            if let Refresh::Done(r) = r {
                tracing::info!(
                    "first diagnosis: {} checks in {:.1} ms",
                    r.checks.len(),
                    r.duration_ms
                );
            }
        }
        _ = term.recv() => stopping = true,
        _ = int.recv() => stopping = true,
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    if let Some(period) = sd_notify::watchdog_enabled() {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 2);
            let mut silent = false;
            loop {
                tick.tick().await;
                // Only while refreshes complete: a wedged daemon is restarted by systemd.
                match engine.stalled_since() {
                    None => {
                        silent = false;
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                    Some(since) if !silent => {
                        silent = true;
                        tracing::error!(
                            "no refresh has completed since {}: not pinging the systemd watchdog",
                            crate::rfc3339_ms(since)
                        );
                    }
                    Some(_) => {}
                }
            }
        });
    }

    let mut interval_s = config.refresh.interval_s;
    let mut ticker = new_ticker(interval_s);
    while !stopping {
        tokio::select! {
            _ = ticker.tick() => {
                let engine = engine.clone();
                // In its own task, so a slow refresh never delays signals.
                tokio::spawn(async move {
                    if let Refresh::Busy = engine.refresh().await {
                        tracing::warn!("previous refresh still running: skipped this one");
                    }
                });
            }
            _ = hup.recv() => {
                match Config::load(config_path.as_deref()) {
                    Ok(new) => {
                        crate::sources::tools::set_dirs(&new.paths.tools);
                        if new.server != engine.config().server {
                            tracing::warn!("config reloaded; [server] changes take effect after a restart");
                        } else {
                            tracing::info!("config reloaded");
                        }
                        if new.refresh.interval_s != interval_s {
                            interval_s = new.refresh.interval_s;
                            ticker = new_ticker(interval_s);
                        }
                        engine.set_config(new);
                    }
                    Err(e) => tracing::error!("config reload failed, keeping the previous config: {e}"),
                }
            }
            _ = term.recv() => stopping = true,
            _ = int.recv() => stopping = true,
        }
    }
    tracing::info!("shutting down");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);
    for s in servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    if let Some(path) = &config.server.unix_socket {
        let _ = std::fs::remove_file(path);
    }
    0
}

fn new_ticker(interval_s: u64) -> tokio::time::Interval {
    let period = Duration::from_secs(interval_s);
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}
