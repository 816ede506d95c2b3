//! Prometheus metrics, updated once per refresh and encoded once per refresh, so a scrape is a
//! copy of a cached string: each check's status as a state set, refresh timestamp, duration and
//! outcome, per-source success and error counts, build info, and the kernel's ICMP echo
//! counters. Served as Prometheus text 0.0.4, or OpenMetrics when the scraper asks for it.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use crate::report::{Report, Status};
#[cfg(test)]
use crate::snapshot::Gathered;
use crate::snapshot::{increase, Snapshot};

type Labels = Vec<(&'static str, String)>;

const STATUSES: [Status; 5] = [
    Status::Ok,
    Status::Warn,
    Status::Fail,
    Status::Unknown,
    Status::Skipped,
];

pub struct Metrics {
    registry: Registry,
    check_status: Family<Labels, Gauge>,
    check_cause: Family<Labels, Gauge>,
    last_transition: Family<Labels, Gauge<f64, AtomicU64>>,
    last_refresh: Gauge<f64, AtomicU64>,
    stale: Gauge,
    refresh_duration: Histogram,
    refreshes: Family<Labels, Counter>,
    source_up: Family<Labels, Gauge>,
    source_errors: Family<Labels, Counter>,
    icmp_in_echos: Counter,
    icmp_out_echo_replies: Counter,
    last_icmp: Option<(u64, u64)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ecs_diag");
        let check_status = Family::<Labels, Gauge>::default();
        registry.register(
            "check_status",
            "Status of each check (state set: 1 for the current status)",
            check_status.clone(),
        );
        let check_cause = Family::<Labels, Gauge>::default();
        registry.register(
            "check_cause",
            "The cause a failing or warning check names (1; a registered cause id, `ecs-diag explain CHECK` lists them)",
            check_cause.clone(),
        );
        let last_transition = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "check_last_transition_timestamp",
            "When each check last changed status (Unix time; kept across restarts)",
            Unit::Seconds,
            last_transition.clone(),
        );
        let last_refresh = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "last_refresh_timestamp",
            "When the served report was produced (Unix time)",
            Unit::Seconds,
            last_refresh.clone(),
        );
        let stale = Gauge::default();
        registry.register(
            "report_stale",
            "1 when the last refresh failed or timed out and the previous report is served",
            stale.clone(),
        );
        let refresh_duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register_with_unit(
            "refresh_duration",
            "Time to gather and judge one diagnosis",
            Unit::Seconds,
            refresh_duration.clone(),
        );
        let refreshes = Family::<Labels, Counter>::default();
        registry.register(
            "refreshes",
            "Refreshes by result (ok, timeout, error)",
            refreshes.clone(),
        );
        let source_up = Family::<Labels, Gauge>::default();
        registry.register(
            "source_up",
            "1 when the source was read successfully in the last refresh",
            source_up.clone(),
        );
        let source_errors = Family::<Labels, Counter>::default();
        registry.register(
            "source_errors",
            "Refreshes in which the source failed",
            source_errors.clone(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        registry.register("build_info", "Build information", build_info);
        let icmp_in_echos = Counter::default();
        registry.register(
            "icmp_in_echos",
            "ICMP echo requests received by the kernel (/proc/net/snmp InEchos)",
            icmp_in_echos.clone(),
        );
        let icmp_out_echo_replies = Counter::default();
        registry.register(
            "icmp_out_echo_replies",
            "ICMP echo replies sent by the kernel (/proc/net/snmp OutEchoReps)",
            icmp_out_echo_replies.clone(),
        );
        Metrics {
            registry,
            check_status,
            check_cause,
            last_transition,
            last_refresh,
            stale,
            refresh_duration,
            refreshes,
            source_up,
            source_errors,
            icmp_in_echos,
            icmp_out_echo_replies,
            last_icmp: None,
        }
    }

    /// Records a completed refresh.
    pub fn record(&mut self, snapshot: &Snapshot, report: &Report, unix_seconds: f64) {
        // One series set per registered check: the label values come from the catalogue, so
        // a check the report lacks shows as unknown rather than vanishing from the scrape.
        for check in crate::checks::catalogue() {
            let status = report
                .checks
                .iter()
                .find(|f| f.id == check.id)
                .map_or(Status::Unknown, |f| f.status);
            for st in STATUSES {
                let labels = vec![
                    ("check", check.id.to_string()),
                    ("status", st.as_str().to_string()),
                ];
                self.check_status
                    .get_or_create(&labels)
                    .set(i64::from(status == st));
            }
        }
        // Only the causes named now: a cause that went away leaves the scrape. The labels are
        // registry ids (`classified` drops any other), so the series are bounded.
        self.check_cause.clear();
        for f in &report.checks {
            if let Some(cause) = f
                .cause
                .as_ref()
                .filter(|_| matches!(f.status, Status::Warn | Status::Fail))
            {
                self.check_cause
                    .get_or_create(&vec![("check", f.id.clone()), ("cause", cause.clone())])
                    .set(1);
            }
        }
        self.last_refresh.set(unix_seconds);
        self.stale.set(0);
        self.refresh_duration.observe(report.duration_ms / 1000.0);
        self.refreshes
            .get_or_create(&vec![("result", "ok".to_string())])
            .inc();
        for (source, result) in snapshot.source_results() {
            let ok = result.is_ok();
            let labels = vec![("source", source.to_string())];
            self.source_up.get_or_create(&labels).set(i64::from(ok));
            let errors = self.source_errors.get_or_create(&labels);
            if !ok {
                errors.inc();
            }
        }
        if let Ok(c) = snapshot.icmp.ok() {
            // Mirror the kernel counters; a reset (new namespace) restarts from the new value.
            let (last_in, last_out) = self.last_icmp.unwrap_or((0, 0));
            let mirror = |now, last| increase(now, last, false).unwrap_or(now);
            self.icmp_in_echos.inc_by(mirror(c.in_echos, last_in));
            self.icmp_out_echo_replies
                .inc_by(mirror(c.out_echo_reps, last_out));
            self.last_icmp = Some((c.in_echos, c.out_echo_reps));
        }
    }

    /// When each check last changed status, from the history (Unix seconds).
    pub fn record_transitions(&mut self, history: &crate::history::History) {
        for check in crate::checks::catalogue() {
            if let Some(ms) = history.since_ms(check.id) {
                self.last_transition
                    .get_or_create(&vec![("check", check.id.to_string())])
                    .set(ms as f64 / 1000.0);
            }
        }
    }

    /// Records a refresh that failed or timed out: the old report stays, marked stale.
    pub fn record_failure(&mut self, result: &'static str) {
        self.stale.set(1);
        self.refreshes
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    /// OpenMetrics text (ends with `# EOF`).
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Prometheus text format 0.0.4 from OpenMetrics text: counters' TYPE/HELP lines name the
/// `_total` series, and the OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_string());
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The shipped cause alerts (`packaging/prometheus/ecs-diag.causes.rules.yml`), generated from
/// the check registry: one alert rule per cause id, carrying the metric's `cause` label (so
/// Alertmanager can `group_by: [cause]`), its annotations the cause and its remedy.
pub fn cause_rules() -> String {
    // YAML double-quoted scalar.
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from(
        "# Generated from the check registry (agent/src/checks): do not edit; after changing a\n\
         # cause, `UPDATE_SNAPSHOTS=1 cargo test -p ecs-diag --lib cause_rules` rewrites it.\n\
         # One alert per cause id: its `cause` label lets Alertmanager group by cause\n\
         # (`group_by: [cause]`); the annotations say the cause and the remedy.\n\
         groups:\n  - name: ecs-diag-causes\n    rules:\n",
    );
    let mut seen: Vec<&str> = Vec::new();
    for check in crate::checks::catalogue() {
        for c in check.causes {
            if seen.contains(&c.id) {
                continue;
            }
            seen.push(c.id);
            out.push_str(&format!(
                "      - alert: EcsDiagCause\n        expr: ecs_diag_check_cause{{cause=\"{}\"}} == 1\n        for: 5m\n        labels:\n          severity: warning\n          cause: {}\n        annotations:\n          summary: {}\n          description: {}\n",
                c.id,
                c.id,
                quoted(&format!("{{{{ $labels.instance }}}}: {{{{ $labels.check }}}}: {}", c.cause)),
                quoted(&format!("Cause {} named by {{{{ $labels.check }}}} for 5 minutes. Remedy: {}", c.id, c.remedy)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::healthy;
    use crate::report::{Finding, REPORT_VERSION};

    fn report() -> Report {
        Report {
            version: REPORT_VERSION,
            generated_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 3.0,
            stale: false,
            checks: vec![
                Finding::ok("link.primary", "x"),
                Finding::fail("sysctl.icmp_echo", "y"),
            ],
        }
    }

    /// The shipped cause alerts are the registry's (`UPDATE_SNAPSHOTS=1` rewrites the file).
    #[test]
    fn cause_rules_are_generated_from_the_registry() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/prometheus/ecs-diag.causes.rules.yml");
        let want = cause_rules();
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
        assert_eq!(
            have, want,
            "UPDATE_SNAPSHOTS=1 cargo test -p ecs-diag --lib cause_rules"
        );
        for check in crate::checks::catalogue() {
            for c in check.causes {
                assert!(want.contains(&format!("cause=\"{}\"", c.id)), "{}", c.id);
            }
        }
    }

    /// The cause of each failing or warning finding, and only while it is named.
    #[test]
    fn causes_are_labelled_while_named() {
        let mut m = Metrics::new();
        let s = healthy();
        let mut r = report();
        r.checks[1] = Finding::fail("sysctl.icmp_echo", "y").cause("echo_ignored_now");
        r.checks
            .push(Finding::ok("route.default", "fine").cause("no_default_route"));
        m.record(&s, &r, 1.0);
        let text = prometheus_text(&m.openmetrics());
        assert!(text.contains("# TYPE ecs_diag_check_cause gauge"), "{text}");
        assert!(
            text.contains(
                "ecs_diag_check_cause{check=\"sysctl.icmp_echo\",cause=\"echo_ignored_now\"} 1"
            ),
            "{text}"
        );
        assert!(
            !text.contains("no_default_route"),
            "an ok finding names no cause: {text}"
        );
        m.record(&s, &report(), 2.0);
        let text = prometheus_text(&m.openmetrics());
        assert!(
            !text.contains("echo_ignored_now"),
            "gone once not named: {text}"
        );
    }

    #[test]
    fn state_set_and_counters() {
        let mut m = Metrics::new();
        let mut s = healthy();
        s.dmi = Gathered::Failed("no dmi".into());
        m.record(&s, &report(), 1_700_000_000.0);
        let text = prometheus_text(&m.openmetrics());
        assert!(
            text.contains("ecs_diag_check_status{check=\"sysctl.icmp_echo\",status=\"fail\"} 1"),
            "{text}"
        );
        assert!(text.contains("ecs_diag_check_status{check=\"sysctl.icmp_echo\",status=\"ok\"} 0"));
        assert!(text.contains("# TYPE ecs_diag_source_errors_total counter"));
        assert!(text.contains("ecs_diag_source_errors_total{source=\"dmi\"} 1"));
        assert!(text.contains("ecs_diag_source_up{source=\"links\"} 1"));
        assert!(text.contains("ecs_diag_icmp_in_echos_total 5"));
        assert!(text.contains("ecs_diag_last_refresh_timestamp_seconds 1700000000"));
        assert!(text.contains("ecs_diag_build_info{version="));
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        // A second refresh adds only the counter delta.
        if let Gathered::Ok(c) = &mut s.icmp {
            c.in_echos = 8;
        }
        m.record(&s, &report(), 1_700_000_030.0);
        m.record_failure("timeout");
        let om = m.openmetrics();
        assert!(om.contains("ecs_diag_icmp_in_echos_total 8"), "{om}");
        assert!(om.contains("ecs_diag_report_stale 1"));
        assert!(om.contains("ecs_diag_refreshes_total{result=\"timeout\"} 1"));
        assert!(om.ends_with("# EOF\n"));
    }
}
