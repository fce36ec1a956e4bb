//! The files in examples/ that operators load into Prometheus stay valid: the alerting rules
//! (examples/alerts.yml) pass `promtool check rules` and their unit tests
//! (examples/alerts.test.yml, `promtool test rules`), and every alert is complete and tested.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crate's root: promtool runs there, with paths relative to it, as a reader would type them.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs promtool with `args` from the crate's root.
fn promtool(args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
        .expect("promtool is installed (Debian package prometheus; scripts/test installs it)")
}

/// Asserts that promtool succeeded, showing everything it printed if not.
fn assert_promtool_success(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(Path::new(path))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The alert rules of examples/alerts.yml: each alert's name and the lines of its rule.
fn alert_rules() -> Vec<(String, String)> {
    let text = read("examples/alerts.yml");
    let mut rules: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            rules.push((name.trim().to_string(), String::new()));
        } else if trimmed.starts_with("- name:") || trimmed.starts_with('#') {
            continue;
        } else if let Some((_, body)) = rules.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    rules
}

#[test]
fn alert_rules_pass_promtool_check() {
    let args = ["check", "rules", "examples/alerts.yml"];
    let output = promtool(&args);
    assert_promtool_success(&args, &output);
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let args = ["test", "rules", "examples/alerts.test.yml"];
    let output = promtool(&args);
    assert_promtool_success(&args, &output);
}

/// What promtool does not check: every alert waits (`for:`), has a known severity, a summary
/// and a description, and has unit tests (a case where it fires, with its labels and
/// annotations, and one where it does not: `exp_alerts: []`).
#[test]
fn every_alert_is_complete_and_tested() {
    let rules = alert_rules();
    assert!(rules.len() >= 10, "alerts found: {rules:?}");
    let tests = read("examples/alerts.test.yml");
    for (name, body) in &rules {
        for key in ["expr:", "for:", "summary:", "description:"] {
            assert!(body.contains(key), "alert {name} has no {key}\n{body}");
        }
        assert!(
            ["severity: critical", "severity: warning", "severity: info"]
                .iter()
                .any(|s| body.contains(s)),
            "alert {name} has no severity critical, warning or info\n{body}"
        );
        // The alert_rule_test entries of this alert, each from `alertname:` to the next entry.
        let marker = format!("alertname: {name}\n");
        let cases: Vec<&str> = tests
            .match_indices(&marker)
            .map(|(at, _)| {
                let rest = &tests[at + marker.len()..];
                let end = rest
                    .find("- eval_time:")
                    .into_iter()
                    .chain(rest.find("- name:"))
                    .min()
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "alert {name} has no unit test where it does not fire (exp_alerts: [])"
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_labels:")
                && c.contains("severity:")
                && c.contains("exp_annotations:")
                && c.contains("summary:")
                && c.contains("description:")),
            "alert {name} has no unit test where it fires with its labels, summary and description"
        );
    }
}
