//! The report: one finding per check, with its verdict, evidence and remedy, plus how it renders
//! (JSON per the DESIGN.md contract, a table for people) and the CLI exit code it implies.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

pub const REPORT_VERSION: u32 = 1;

/// A check's verdict.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Unknown,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Unknown => "unknown",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's verdict on a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub id: String,
    pub status: Status,
    /// One line a person reads.
    pub summary: String,
    /// The facts that led to the verdict.
    pub evidence: serde_json::Value,
    /// Exact commands or console steps; empty when nothing is to be done.
    pub remedy: Vec<String>,
}

impl Finding {
    pub fn new(id: &str, status: Status, summary: impl Into<String>) -> Finding {
        Finding {
            id: id.to_string(),
            status,
            summary: summary.into(),
            evidence: serde_json::Value::Object(Default::default()),
            remedy: Vec::new(),
        }
    }
    pub fn ok(id: &str, summary: impl Into<String>) -> Finding {
        Finding::new(id, Status::Ok, summary)
    }
    pub fn warn(id: &str, summary: impl Into<String>) -> Finding {
        Finding::new(id, Status::Warn, summary)
    }
    pub fn fail(id: &str, summary: impl Into<String>) -> Finding {
        Finding::new(id, Status::Fail, summary)
    }
    pub fn unknown(id: &str, summary: impl Into<String>) -> Finding {
        Finding::new(id, Status::Unknown, summary)
    }
    pub fn skipped(id: &str, summary: impl Into<String>) -> Finding {
        Finding::new(id, Status::Skipped, summary)
    }
    pub fn evidence(mut self, evidence: serde_json::Value) -> Finding {
        self.evidence = evidence;
        self
    }
    pub fn remedy<S: Into<String>>(mut self, steps: impl IntoIterator<Item = S>) -> Finding {
        self.remedy = steps.into_iter().map(Into::into).collect();
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub version: u32,
    /// RFC 3339.
    pub generated_at: String,
    pub duration_ms: f64,
    /// `serve` only: the last refresh failed or timed out and this older report is served.
    /// Additive to DESIGN.md's contract; absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    pub checks: Vec<Finding>,
}

impl Report {
    pub fn worst(&self) -> Option<Status> {
        self.checks.iter().map(|f| f.status).max()
    }

    /// DESIGN.md: 2 if any check fails, else 1 if any warns, else 3 if any is unknown, else 0.
    pub fn exit_code(&self) -> i32 {
        let has = |s| self.checks.iter().any(|f| f.status == s);
        if has(Status::Fail) {
            2
        } else if has(Status::Warn) {
            1
        } else if has(Status::Unknown) {
            3
        } else {
            0
        }
    }

    /// A table for a terminal: worst first, remedies under failing and warning checks.
    pub fn render_table(&self, colour: bool) -> String {
        let mut rows: Vec<&Finding> = self.checks.iter().collect();
        rows.sort_by_key(|f| std::cmp::Reverse(f.status));
        let width = rows.iter().map(|f| f.id.len()).max().unwrap_or(5).max(5);
        let mut out = String::new();
        let _ = writeln!(out, "{:<7}  {:<width$}  SUMMARY", "STATUS", "CHECK");
        for f in rows {
            let status = f.status.as_str();
            let painted = if colour {
                let code = match f.status {
                    Status::Ok => "32",
                    Status::Skipped => "90",
                    Status::Unknown => "35",
                    Status::Warn => "33",
                    Status::Fail => "1;31",
                };
                format!("\x1b[{code}m{status:<7}\x1b[0m")
            } else {
                format!("{status:<7}")
            };
            let _ = writeln!(out, "{painted}  {:<width$}  {}", f.id, f.summary);
            if matches!(f.status, Status::Fail | Status::Warn) {
                for step in &f.remedy {
                    let _ = writeln!(out, "{:<7}  {:<width$}    → {step}", "", "");
                }
            }
        }
        let count = |s| self.checks.iter().filter(|f| f.status == s).count();
        let _ = writeln!(
            out,
            "\n{} ok, {} warn, {} fail, {} unknown, {} skipped in {:.1} ms",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::Unknown),
            count(Status::Skipped),
            self.duration_ms
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(statuses: &[Status]) -> Report {
        Report {
            version: REPORT_VERSION,
            generated_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 1.0,
            stale: false,
            checks: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| Finding::new(&format!("c.{i}"), *s, "x"))
                .collect(),
        }
    }

    #[test]
    fn exit_code_follows_the_contract() {
        assert_eq!(report(&[Status::Ok, Status::Skipped]).exit_code(), 0);
        assert_eq!(report(&[Status::Ok, Status::Unknown]).exit_code(), 3);
        assert_eq!(report(&[Status::Unknown, Status::Warn]).exit_code(), 1);
        assert_eq!(report(&[Status::Warn, Status::Fail]).exit_code(), 2);
    }

    #[test]
    fn status_serialises_lower_case() {
        let json = serde_json::to_value(report(&[Status::Fail])).unwrap();
        assert_eq!(json["checks"][0]["status"], "fail");
        assert_eq!(json["version"], 1);
    }

    #[test]
    fn table_shows_remedy_only_for_problems_and_colour_only_when_asked() {
        let mut r = report(&[Status::Ok, Status::Fail]);
        r.checks[0].remedy = vec!["never shown".into()];
        r.checks[1].remedy = vec!["sysctl -w x=0".into()];
        let plain = r.render_table(false);
        assert!(plain.contains("→ sysctl -w x=0"));
        assert!(!plain.contains("never shown"));
        assert!(!plain.contains('\x1b'));
        assert!(r.render_table(true).contains("\x1b[1;31m"));
        // Worst first.
        assert!(plain.find("c.1").unwrap() < plain.find("c.0").unwrap());
    }
}
