//! The shipped Prometheus alert rules are valid and behave as their unit tests say
//! (`promtool check rules`, `promtool test rules`; promtool comes with Debian's prometheus).

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("promtool (Debian package prometheus) is needed: {e}"));
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_are_valid() {
    promtool(&["check", "rules", "ecs-diag.rules.yml"]);
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "ecs-diag.rules.test.yml"]);
}

/// The cause alerts generated from the check registry: valid, and one fires for a cause named
/// for 5 minutes with the cause label (to group by) and the remedy in its description.
#[test]
fn cause_alert_rules_are_valid_and_pass_their_unit_tests() {
    promtool(&["check", "rules", "ecs-diag.causes.rules.yml"]);
    promtool(&["test", "rules", "ecs-diag.causes.rules.test.yml"]);
}
