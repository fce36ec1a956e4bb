//! Multi-target mode: `/probe?target=…` exports one scope per target (groups, projects, ids),
//! with exact values and its own cache; bad targets get clear answers; and a real Prometheus
//! running `examples/prometheus.yml` scrapes two scopes through `/probe` and sees both.

mod common;

use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::{Exporter, Exposition, assert_exact, demo_gitlab, expected, expected_in_group};

/// `/probe` of a target, as text, parsed; panics unless 200.
async fn probe(exporter: &Exporter, target: &str) -> Exposition {
    let response = exporter.get(&format!("/probe?target={target}"), &[]).await;
    assert_eq!(response.status, 200, "{target}: {}", response.text());
    Exposition::parse(&response.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_is_its_own_scope() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--multi-target", "--cache.ttl", "1h"]);

    let platform = probe(&exporter, "acme/platform").await;
    assert_exact(
        &platform,
        &gitlab.with_instance(|i| expected_in_group(i, "acme/platform")),
    );
    let labs = probe(&exporter, "group%3Alabs").await;
    assert_exact(
        &labs,
        &gitlab.with_instance(|i| expected_in_group(i, "labs")),
    );

    let api = gitlab.with_instance(|i| expected(i, i.project(42).unwrap()));
    for target in ["acme/api", "42", "project:acme%2Fapi"] {
        let one = probe(&exporter, target).await;
        assert_exact(&one, std::slice::from_ref(&api));
    }
    // Its own cache: within the TTL, probing again costs nothing.
    gitlab.reset_counts();
    probe(&exporter, "acme/platform").await;
    assert_eq!(gitlab.total_requests(), 0);

    // /metrics has the exporter's own metrics, no GitLab data.
    let own = exporter.scrape().await;
    assert!(own.series("gitlab_project_info").is_empty());
    assert_eq!(own.value("gitlab_up", &[]), None);
    assert_eq!(own.value("gitlab_exporter_probe_targets", &[]), Some(5.0));
    assert!(!own.series("gitlab_exporter_api_requests_total").is_empty());
    // /probe has no process-wide counters (they would repeat under every target).
    assert!(
        platform
            .series("gitlab_exporter_api_requests_total")
            .is_empty()
    );
    assert!(
        platform
            .value("gitlab_exporter_last_success_timestamp_seconds", &[])
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_get_clear_answers() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--multi-target"]);
    let missing = exporter.get("/probe", &[]).await;
    assert_eq!(missing.status, 400);
    assert!(missing.text().contains("target"), "{}", missing.text());
    let invalid = exporter.get("/probe?target=acme%2F..%2Fx", &[]).await;
    assert_eq!(invalid.status, 400);
    assert!(
        invalid.text().contains("invalid target"),
        "{}",
        invalid.text()
    );

    for target in ["acme/nothing-here", "group:no-such-group", "999999"] {
        let unknown = probe(&exporter, target).await;
        assert_eq!(unknown.value("gitlab_up", &[]), Some(0.0), "{target}");
        assert_eq!(unknown.value("gitlab_projects", &[]), None, "{target}");
    }
    let logs = exporter.logs_once("probe target cannot be resolved");
    assert!(logs.contains("404"), "{logs}");

    // Without --multi-target, /probe says how to turn it on.
    let single = Exporter::start(&gitlab, &[]);
    let off = single.get("/probe?target=acme", &[]).await;
    assert_eq!(off.status, 404);
    assert!(off.text().contains("--multi-target"), "{}", off.text());
}

/// `examples/prometheus.yml`, as shipped (with `examples/alerts.yml`), pointed at the test's
/// exporter with short intervals: Prometheus scrapes the exporter and three probe targets,
/// and sees each scope with the right values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_runs_the_example_config() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--multi-target", "--cache.ttl", "1m"]);
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let config = std::fs::read_to_string(format!("{examples}/prometheus.yml"))
        .unwrap()
        .replace("gitlab-exporter:9835", &exporter.addr.to_string())
        .replace("scrape_interval: 60s", "scrape_interval: 1s")
        .replace("scrape_timeout: 50s", "scrape_timeout: 900ms");
    let rules = std::fs::read_to_string(format!("{examples}/alerts.yml")).unwrap();
    let prometheus = Prometheus::start_with_files(&config, &[("alerts.yml", &rules)]);

    let group = |path: &str| gitlab.with_instance(|i| expected_in_group(i, path));
    let (platform, labs) = (group("acme/platform"), group("labs"));
    let api_commits = gitlab.with_instance(|i| i.project(42).unwrap().commits) as f64;
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = (
                prometheus.query_one(r#"count(up{job="gitlab-probe"} == 1)"#),
                prometheus.query_one(r#"gitlab_projects{job="gitlab-probe",instance="acme/platform"}"#),
                prometheus.query_one(r#"gitlab_projects{job="gitlab-probe",instance="labs"}"#),
                prometheus.query_one(
                    r#"gitlab_project_commits{job="gitlab-probe",instance="project:acme/api"}"#,
                ),
                prometheus.query_one(r#"up{job="gitlab"}"#),
                prometheus.query_one(
                    r#"sum(gitlab_project_merge_requests{job="gitlab-probe",instance="acme/platform",state="merged"})"#,
                ),
            );
            let done = seen.0 == Some(3.0)
                && seen.1.is_some()
                && seen.2.is_some()
                && seen.3.is_some()
                && seen.4 == Some(1.0)
                && seen.5.is_some();
            if done || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
    .await
    .unwrap();
    let merged: u64 = platform
        .iter()
        .filter_map(|e| e.merge_requests.map(|m| m[1]))
        .sum();
    assert_eq!(
        seen,
        (
            Some(3.0),
            Some(platform.len() as f64),
            Some(labs.len() as f64),
            Some(api_commits),
            Some(1.0),
            Some(merged as f64),
        )
    );
}
