//! The refresh engine shared by `serve` (its timer and signals), the HTTP handlers (which only
//! read what it publishes, and `POST /v1/diagnose`) and the metrics: it gathers and judges on
//! a blocking thread bounded by `refresh.timeout_s`, keeps the previous refresh's counters
//! for rates and its firewall facts for reuse, and publishes the report, its JSON and the
//! encoded metrics through a `watch` channel. It also knows when refreshes have stalled.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::Config;
use crate::history::History;
use crate::metrics::{prometheus_text, Metrics};
use crate::report::Report;
use crate::snapshot::Sample;
use crate::sources::rulesets::FirewallFacts;
use crate::sources::{self, GatherOptions};

/// What the handlers serve: everything pre-encoded once per refresh.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// None until the first refresh completes.
    pub report: Option<Arc<Report>>,
    /// Shared, not copied, by every answer: a thousand slow clients hold one copy.
    pub report_json: axum::body::Bytes,
    pub metrics_openmetrics: axum::body::Bytes,
    pub metrics_text: axum::body::Bytes,
    /// Unix seconds of the served report.
    pub refreshed_at: Option<f64>,
    /// `GET /v1/history`: the kept transitions, oldest first.
    pub history_json: axum::body::Bytes,
}

/// How a refresh ended.
#[derive(Debug)]
pub enum Refresh {
    Done(Arc<Report>),
    /// Another refresh is still running.
    Busy,
    TimedOut,
    Failed(String),
}

#[derive(Default)]
struct EngineState {
    metrics: Metrics,
    /// The previous refresh's counters: rates are computed against them.
    previous: Option<Sample>,
    firewall_cache: Option<FirewallFacts>,
    /// The cloud facts and when they were read: reused for `cloud.cache_s`.
    cloud_cache: Option<(Instant, crate::snapshot::CloudState)>,
    last_diagnose: Option<Instant>,
    history: History,
    /// The history could not be saved: logged once, not every refresh.
    history_save_failed: bool,
}

/// Runs diagnoses and publishes them.
pub struct Engine {
    config: RwLock<Arc<Config>>,
    /// A gather is running (it may outlive an abandoned, timed-out refresh).
    busy: Arc<AtomicBool>,
    state: Mutex<EngineState>,
    tx: watch::Sender<Arc<Published>>,
    /// Unix ms when the engine started, and when a refresh last completed (0: none yet).
    started_ms: u64,
    completed_ms: AtomicU64,
}

/// Clears the busy flag when the gather thread ends, however it ends.
struct BusyGuard(Arc<AtomicBool>);
impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Engine {
    pub fn new(config: Config) -> (Arc<Engine>, watch::Receiver<Arc<Published>>) {
        let (history, warning) = History::load(&config.paths.state, config.server.history_entries);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        let engine = Engine {
            config: RwLock::new(Arc::new(config)),
            busy: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(EngineState {
                history,
                ..Default::default()
            }),
            tx: watch::channel(Arc::new(Published::default())).0,
            started_ms: crate::unix_ms(),
            completed_ms: AtomicU64::new(0),
        };
        let engine = Arc::new(engine);
        let rx = engine.tx.subscribe();
        engine.publish_metrics_only();
        (engine, rx)
    }

    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_config(&self, config: Config) {
        match self.config.write() {
            Ok(mut c) => *c = Arc::new(config),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, EngineState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `POST /v1/diagnose` gate: Ok if a fresh diagnosis may start now, else how long to wait.
    pub fn claim_diagnose(&self) -> Result<(), Duration> {
        let min = Duration::from_secs(self.config().server.diagnose_min_interval_s);
        let mut st = self.state();
        if let Some(last) = st.last_diagnose {
            let since = last.elapsed();
            if since < min {
                return Err(min - since);
            }
        }
        if self.busy.load(Ordering::SeqCst) {
            return Err(Duration::from_secs(1));
        }
        st.last_diagnose = Some(Instant::now());
        Ok(())
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Unix ms since which no refresh has completed, once that has lasted 3 refresh
    /// intervals (a wedged source, a refresh that never ends): `/healthz` turns 503 and the
    /// systemd watchdog goes silent. None while refreshes complete.
    pub fn stalled_since(&self) -> Option<u64> {
        let interval_ms = self.config().refresh.interval_s.saturating_mul(1000);
        let last = match self.completed_ms.load(Ordering::SeqCst) {
            0 => self.started_ms,
            t => t,
        };
        (crate::unix_ms().saturating_sub(last) > interval_ms.saturating_mul(3)).then_some(last)
    }

    /// Gathers and judges once (on a blocking thread, bounded by `refresh.timeout_s`) and
    /// publishes the result; on timeout or failure the previous report stays, marked stale.
    /// Cloud facts younger than `cloud.cache_s` are reused.
    pub async fn refresh(&self) -> Refresh {
        self.run(false).await
    }

    /// A refresh that reads the cloud side afresh (`POST /v1/diagnose`).
    pub async fn diagnose(&self) -> Refresh {
        self.run(true).await
    }

    async fn run(&self, fresh_cloud: bool) -> Refresh {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Refresh::Busy;
        }
        let guard = BusyGuard(self.busy.clone());
        let config = self.config();
        let cache_for = Duration::from_secs(config.cloud.cache_s);
        let (previous, cache, cloud) = {
            let st = self.state();
            let cloud = st
                .cloud_cache
                .as_ref()
                .filter(|(at, _)| !fresh_cloud && at.elapsed() < cache_for)
                .map(|(_, c)| c.clone());
            (st.previous.clone(), st.firewall_cache.clone(), cloud)
        };
        let reused = cloud.is_some();
        let timeout = Duration::from_secs(config.refresh.timeout_s);
        let task = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let started = Instant::now();
            let options = GatherOptions {
                firewall_cache: cache,
                cloud,
                ..Default::default()
            };
            let mut snapshot = sources::gather(&config, &options);
            snapshot.earlier = previous.map(Box::new);
            let report =
                crate::checks::report(&snapshot, &crate::checks::Criteria::of(&config), started);
            (snapshot, report)
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok((snapshot, mut report))) => {
                let now_ms = crate::unix_ms();
                {
                    let mut st = self.state();
                    if st.history.observe(&mut report, now_ms) {
                        match st.history.save(&self.config().paths.state) {
                            Ok(()) => st.history_save_failed = false,
                            Err(e) if !st.history_save_failed => {
                                st.history_save_failed = true;
                                tracing::warn!("history kept in memory only: {e}");
                            }
                            Err(_) => {}
                        }
                    }
                    let st = &mut *st;
                    st.metrics.record_transitions(&st.history);
                }
                let report = Arc::new(report);
                {
                    let mut st = self.state();
                    st.previous = Some(Sample::of(&snapshot));
                    if !reused {
                        st.cloud_cache = Some((Instant::now(), snapshot.cloud.clone()));
                    }
                    // Reused next time if the ruleset's generation has not moved.
                    st.firewall_cache = Some(FirewallFacts {
                        legacy_signature: snapshot.legacy_signature.clone(),
                        ipsets: snapshot.ipsets.clone(),
                        firewall: snapshot.firewall.clone(),
                        nftables: snapshot.nftables.clone(),
                        genid: snapshot.nft_genid,
                        denied: snapshot.denied.clone(),
                    });
                    st.metrics
                        .record(&snapshot, &report, crate::unix_ms() as f64 / 1000.0);
                }
                self.publish(Some(report.clone()), Some(crate::unix_ms() as f64 / 1000.0));
                self.completed_ms.store(crate::unix_ms(), Ordering::SeqCst);
                Refresh::Done(report)
            }
            Ok(Err(e)) => {
                tracing::error!("refresh failed: {e}");
                self.mark_stale("error");
                Refresh::Failed(e.to_string())
            }
            Err(_) => {
                tracing::warn!(
                    "refresh took longer than refresh.timeout_s = {}s: serving the previous report, marked stale",
                    timeout.as_secs()
                );
                self.mark_stale("timeout");
                Refresh::TimedOut
            }
        }
    }

    fn mark_stale(&self, result: &'static str) {
        self.state().metrics.record_failure(result);
        let current = self.tx.borrow().clone();
        let report = current.report.as_ref().map(|r| {
            let mut r = (**r).clone();
            r.stale = true;
            Arc::new(r)
        });
        self.publish(report, current.refreshed_at);
    }

    fn publish_metrics_only(&self) {
        self.publish(None, None);
    }

    fn publish(&self, report: Option<Arc<Report>>, refreshed_at: Option<f64>) {
        let (openmetrics, history_json) = {
            let st = self.state();
            let transitions: Vec<_> = st.history.transitions().collect();
            (
                st.metrics.openmetrics(),
                serde_json::to_vec(&serde_json::json!({
                    "version": crate::report::REPORT_VERSION,
                    "transitions": transitions,
                }))
                .unwrap_or_default(),
            )
        };
        let report_json = report
            .as_ref()
            .and_then(|r| serde_json::to_vec(&**r).ok())
            .unwrap_or_default();
        let published = Published {
            report,
            report_json: report_json.into(),
            metrics_text: prometheus_text(&openmetrics).into(),
            metrics_openmetrics: openmetrics.into(),
            refreshed_at,
            history_json: history_json.into(),
        };
        self.tx.send_replace(Arc::new(published));
    }
}
