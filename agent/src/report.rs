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
    /// The failing or warning checks this finding follows from, root causes only, in report
    /// order (`["link.primary"]` on `route.default` when the link is down). Empty when the
    /// finding stands on its own. Decided from what each finding judges and relies on.
    #[serde(default)]
    pub caused_by: Vec<String>,
    /// On warn and fail: the stable id of the cause named (one of its check's registered
    /// causes, `ecs-diag explain ID` lists them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// `serve`: when this check last changed status (RFC 3339), kept across restarts. Absent
    /// from one-shot reports, which have no history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// What this finding judges (its link, the default route, a sysctl, ...): a finding that
    /// relies on one of these follows from this one when it is not ok. Not serialized.
    #[serde(skip)]
    pub judges: Vec<Subject>,
    /// What this verdict relies on: when another finding judges one of these and is not ok,
    /// this one is its consequence. Not serialized.
    #[serde(skip)]
    pub relies_on: Vec<Subject>,
}

/// A thing in the guest a verdict is about, named from the evidence (the device, the table,
/// the key), so consequences are linked to causes by what they share, not by check id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A network interface, by name.
    Link(String),
    /// A local address.
    Address(std::net::IpAddr),
    /// The default route of a family (4 or 6) in the tables the kernel consults.
    DefaultRoute(u8),
    /// A sysctl, by dotted name.
    Sysctl(String),
    /// The kernel's route for replies to the client, of a family (4 or 6).
    ReplyRoute(u8),
    /// One direction of the echo path through the guest firewall.
    FirewallPath(&'static str),
}

impl Finding {
    pub fn new(id: &str, status: Status, summary: impl Into<String>) -> Finding {
        Finding {
            id: id.to_string(),
            status,
            summary: summary.into(),
            evidence: serde_json::Value::Object(Default::default()),
            remedy: Vec::new(),
            caused_by: Vec::new(),
            cause: None,
            since: None,
            judges: Vec::new(),
            relies_on: Vec::new(),
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
    /// Names the cause (a registered cause id of this check).
    pub fn cause(mut self, id: &str) -> Finding {
        self.cause = Some(id.to_string());
        self
    }
    pub fn remedy<S: Into<String>>(mut self, steps: impl IntoIterator<Item = S>) -> Finding {
        self.remedy = steps.into_iter().map(Into::into).collect();
        self
    }
    /// Declares what this finding judges (see [`Subject`]).
    pub fn judges(mut self, subjects: impl IntoIterator<Item = Subject>) -> Finding {
        self.judges.extend(subjects);
        self
    }
    /// Declares what this verdict relies on (see [`Subject`]).
    pub fn relies_on(mut self, subjects: impl IntoIterator<Item = Subject>) -> Finding {
        self.relies_on.extend(subjects);
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub version: u32,
    /// RFC 3339.
    pub generated_at: String,
    pub duration_ms: f64,
    /// `serve`: the last refresh failed or timed out and this older report is served. Always
    /// present (false when fresh), so scripts can test it without a default.
    #[serde(default)]
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

    /// A table for a terminal: worst first, remedies under failing and warning checks. With a
    /// `width` (the terminal's), summaries and remedies wrap at word boundaries under their
    /// column; without one, each stays on one line (for `grep`).
    pub fn render_table(&self, colour: bool, width: Option<usize>) -> String {
        let mut rows: Vec<&Finding> = self.checks.iter().collect();
        rows.sort_by_key(|f| std::cmp::Reverse(f.status));
        let id_width = rows.iter().map(|f| f.id.len()).max().unwrap_or(5).max(5);
        // STATUS (7) + 2 spaces + CHECK + 2 spaces.
        let indent = 7 + 2 + id_width + 2;
        let remedy_indent = indent + 4;
        let mut out = String::new();
        let _ = writeln!(out, "{:<7}  {:<id_width$}  SUMMARY", "STATUS", "CHECK");
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
            let summary = match f.caused_by.as_slice() {
                [] => wrap(&f.summary, width.map(|w| w.saturating_sub(indent))),
                causes => wrap(
                    &format!(
                        "{} (because {} {})",
                        f.summary,
                        causes.join(" and "),
                        if causes.len() == 1 { "fails" } else { "fail" }
                    ),
                    width.map(|w| w.saturating_sub(indent)),
                ),
            };
            let _ = writeln!(
                out,
                "{painted}  {:<id_width$}  {}",
                f.id,
                summary.join(&format!("\n{:indent$}", ""))
            );
            if matches!(f.status, Status::Fail | Status::Warn) {
                for step in &f.remedy {
                    let lines = wrap(step, width.map(|w| w.saturating_sub(remedy_indent)));
                    let _ = writeln!(
                        out,
                        "{:indent$}  → {}",
                        "",
                        lines.join(&format!("\n{:remedy_indent$}", ""))
                    );
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

    /// One line for Nagios/Icinga/Zabbix agents, `ECS-DIAG CRITICAL - id: summary; ... |
    /// perfdata`. The plugin exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) are
    /// `exit_code`'s.
    pub fn render_nagios(&self) -> String {
        let (state, worst) = match self.exit_code() {
            2 => ("CRITICAL", Some(Status::Fail)),
            1 => ("WARNING", Some(Status::Warn)),
            3 => ("UNKNOWN", Some(Status::Unknown)),
            _ => ("OK", None),
        };
        let count = |s| self.checks.iter().filter(|f| f.status == s).count();
        let text = match worst {
            Some(w) => self
                .checks
                .iter()
                .filter(|f| f.status == w)
                .map(|f| format!("{}: {}", f.id, f.summary))
                .collect::<Vec<_>>()
                .join("; "),
            None => format!(
                "{} checks ok, {} skipped",
                count(Status::Ok),
                count(Status::Skipped)
            ),
        };
        // `|` starts the performance data and a newline ends the first line: neither may
        // appear in the text.
        let text = text.replace('|', "/").replace(['\n', '\r'], " ");
        format!(
            "ECS-DIAG {state} - {text} | fail={} warn={} unknown={} ok={} skipped={} duration={:.4}s\n",
            count(Status::Fail),
            count(Status::Warn),
            count(Status::Unknown),
            count(Status::Ok),
            count(Status::Skipped),
            self.duration_ms / 1000.0
        )
    }
}

/// Splits `text` into lines of at most `width` characters at spaces (a longer word stays
/// whole on its own line). No width, or one too narrow to be useful: one line.
fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    let Some(width) = width.filter(|w| *w >= 20) else {
        return vec![text.to_string()];
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut len = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let n = word.chars().count();
        if len > 0 && len + 1 + n > width {
            lines.push(std::mem::take(&mut line));
            len = 0;
        }
        if len > 0 {
            line.push(' ');
            len += 1;
        }
        line.push_str(word);
        len += n;
    }
    lines.push(line);
    lines
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
        let plain = r.render_table(false, None);
        assert!(plain.contains("→ sysctl -w x=0"));
        assert!(!plain.contains("never shown"));
        assert!(!plain.contains('\x1b'));
        assert!(r.render_table(true, None).contains("\x1b[1;31m"));
        // Worst first.
        assert!(plain.find("c.1").unwrap() < plain.find("c.0").unwrap());
    }

    #[test]
    fn consequences_say_what_they_follow_from_in_the_table_and_json() {
        let mut r = report(&[Status::Fail, Status::Fail, Status::Ok]);
        r.checks[1].caused_by = vec!["c.0".into()];
        let plain = r.render_table(false, None);
        assert!(plain.contains("c.1    x (because c.0 fails)"), "{plain}");
        assert!(!plain.contains("c.0    x (because"), "{plain}");
        r.checks[1].caused_by = vec!["c.0".into(), "c.2".into()];
        assert!(r
            .render_table(false, None)
            .contains("x (because c.0 and c.2 fail)"));
        // Always present in JSON (empty when the finding stands on its own); the subjects
        // it was decided from are not part of the contract.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"][0]["caused_by"], serde_json::json!([]));
        assert_eq!(
            json["checks"][1]["caused_by"],
            serde_json::json!(["c.0", "c.2"])
        );
        assert!(json["checks"][1].get("judges").is_none());
        // Reports written before the field existed still load.
        let mut old = json.clone();
        old["checks"][1]
            .as_object_mut()
            .unwrap()
            .remove("caused_by");
        let back: Report = serde_json::from_value(old).unwrap();
        assert!(back.checks[1].caused_by.is_empty());
    }

    #[test]
    fn table_wraps_to_the_width_under_its_column() {
        let mut r = report(&[Status::Fail]);
        r.checks[0].summary = "the quick brown fox jumps over the lazy dog ".repeat(4);
        r.checks[0].remedy =
            vec!["one two three four five six seven eight nine ten eleven twelve thirteen".into()];
        let wide = r.render_table(false, None);
        assert_eq!(wide.lines().count(), 5, "{wide}");
        let table = r.render_table(false, Some(60));
        for line in table.lines() {
            assert!(line.chars().count() <= 60, "{line:?} in\n{table}");
        }
        // Continuation lines start under the summary column (7 + 2 + 5 + 2 = 16).
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with("fail     c.0    the quick"), "{table}");
        assert!(
            lines[2].starts_with(&" ".repeat(16)) && !lines[2].starts_with(&" ".repeat(17)),
            "{table}"
        );
        let arrow = lines.iter().position(|l| l.contains('→')).unwrap();
        assert!(
            lines[arrow].ends_with("→ one two three four five six seven eight"),
            "{table}"
        );
        assert_eq!(
            lines[arrow + 1],
            format!("{}nine ten eleven twelve thirteen", " ".repeat(20))
        );
        // The words are all there, in order.
        let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(&table), words(&wide));
        // A word longer than the width is not cut.
        assert_eq!(
            wrap("abcdefghijklmnopqrstuvwxyz0123 x", Some(20)),
            ["abcdefghijklmnopqrstuvwxyz0123", "x"]
        );
        assert_eq!(wrap("a b", Some(5)), ["a b"], "too narrow: not wrapped");
    }

    #[test]
    fn nagios_line_has_state_text_and_perfdata() {
        let mut r = report(&[Status::Ok, Status::Fail, Status::Warn]);
        r.checks[1].summary = "drops | echo\nrequests".into();
        let line = r.render_nagios();
        assert_eq!(line.lines().count(), 1);
        assert!(
            line.starts_with("ECS-DIAG CRITICAL - c.1: drops / echo requests | "),
            "{line}"
        );
        assert!(
            !line.contains("c.2"),
            "only the worst status is listed: {line}"
        );
        assert!(
            line.trim_end()
                .ends_with("fail=1 warn=1 unknown=0 ok=1 skipped=0 duration=0.0010s"),
            "{line}"
        );
        assert_eq!(line.matches('|').count(), 1);
        let ok = report(&[Status::Ok, Status::Skipped]).render_nagios();
        assert!(
            ok.starts_with("ECS-DIAG OK - 1 checks ok, 1 skipped | "),
            "{ok}"
        );
        assert!(report(&[Status::Unknown])
            .render_nagios()
            .starts_with("ECS-DIAG UNKNOWN - c.0: x |"));
        assert!(report(&[Status::Warn])
            .render_nagios()
            .starts_with("ECS-DIAG WARNING - "));
    }
}
