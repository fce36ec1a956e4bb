//! The metric families as units: `--collector.<name>` / `--no-collector.<name>` switch a family
//! off (no call, no series), `gitlab_exporter_collector_*{collector}` say what each family cost
//! and whether it succeeded, and a family whose calls fail fails alone.

mod common;

use std::process::Command;

use common::{Exporter, assert_exact, demo_gitlab, expected_in_group, expected_membership};
use fake_gitlab::Faults;

const BINARY: &str = env!("CARGO_BIN_EXE_gitlab-api-exporter");
const FAMILIES: [&str; 4] = ["projects", "storage", "commits", "merge_requests"];
const MERGE_REQUESTS: &str = "/projects/:id/merge_requests";

use common::calls_made as calls;

/// Every family on by default: each reports success, and the calls each reports add up to the
/// calls made on its routes; the listing's count under none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_reports_its_calls_and_success() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--gitlab.group", "acme"]);
    let metrics = exporter.scrape().await;
    assert_exact(
        &metrics,
        &gitlab.with_instance(|i| expected_in_group(i, "acme")),
    );
    let made = calls(&gitlab);
    let of = |family: &str, name: &str| {
        metrics
            .value(name, &[("collector", family)])
            .unwrap_or_else(|| panic!("{name}{{collector={family}}} missing"))
    };
    for family in FAMILIES {
        assert_eq!(
            of(family, "gitlab_exporter_collector_success"),
            1.0,
            "{family}"
        );
        let seconds = of(family, "gitlab_exporter_collector_duration_seconds");
        let total = metrics
            .value("gitlab_exporter_collect_duration_seconds", &[])
            .unwrap();
        assert!(
            (0.0..=total).contains(&seconds),
            "{family}: {seconds} of {total}"
        );
    }
    let route = |r: &str| made.get(r).copied().unwrap_or(0) as f64;
    assert_eq!(
        of("projects", "gitlab_exporter_collector_api_requests"),
        0.0
    );
    // A group listing has no statistics: one detail call per project not in the token user's
    // own listing, counted as storage's.
    assert_eq!(
        of("storage", "gitlab_exporter_collector_api_requests"),
        route("/projects/:id")
    );
    assert_eq!(
        of("commits", "gitlab_exporter_collector_api_requests"),
        route("/projects/:id/repository/branches/:branch")
            + route("/projects/:id/repository/commits/:sha/sequence")
    );
    assert_eq!(
        of("merge_requests", "gitlab_exporter_collector_api_requests"),
        route(MERGE_REQUESTS)
    );
    let per_family: f64 = metrics
        .series("gitlab_exporter_collector_api_requests")
        .iter()
        .map(|s| s.value)
        .sum();
    let listing = route("/groups/:id/projects") + route("/projects");
    assert_eq!(
        metrics.value("gitlab_exporter_collect_api_requests", &[]),
        Some(per_family + listing)
    );
}

/// A family switched off makes no call and exports nothing, not even its HELP line; the others
/// keep their exact values. The last of `--collector.x` / `--no-collector.x` wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_switched_off_makes_no_call_and_exports_nothing() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--no-collector.merge_requests",
            "--no-collector.storage",
            "--no-collector.commits",
            "--collector.commits",
        ],
    );
    let response = exporter.get("/metrics", &[]).await;
    let text = response.text();
    let metrics = common::Exposition::parse(&text);
    for gone in [
        "gitlab_project_merge_requests",
        "gitlab_project_storage_bytes",
    ] {
        assert!(
            !text.contains(&format!("# HELP {gone} ")) && !text.contains(&format!("{gone}{{")),
            "{gone} is exported:\n{text}"
        );
    }
    assert_eq!(calls(&gitlab).get(MERGE_REQUESTS), None);
    let mut expected = gitlab.with_instance(|i| expected_membership(i));
    for e in &mut expected {
        e.merge_requests = None;
        e.statistics = false;
    }
    assert_exact(&metrics, &expected);
    let reported: Vec<&str> = metrics
        .series("gitlab_exporter_collector_success")
        .iter()
        .map(|s| s.labels["collector"].as_str())
        .collect();
    assert_eq!(
        reported,
        [
            "projects",
            "commits",
            "pipelines",
            "deployments",
            "merge_request_flow"
        ]
    );
}

/// Over REST, in a group scope with storage off, no project is read on its own for its statistics (with
/// it on, the projects of a group the token's user is no member of are).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_off_in_a_group_makes_no_detail_call() {
    let group = ["--gitlab.group", "other-org"];
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", group[0], group[1]]);
    let metrics = exporter.scrape().await;
    let detail = calls(&gitlab).get("/projects/:id").copied().unwrap_or(0);
    assert!(detail > 0, "{:?}", calls(&gitlab));
    assert_eq!(
        metrics.value(
            "gitlab_exporter_collector_api_requests",
            &[("collector", "storage")]
        ),
        Some(detail as f64)
    );
    drop(exporter);
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            group[0],
            group[1],
            "--no-collector.storage",
        ],
    );
    let metrics = exporter.scrape().await;
    assert_eq!(calls(&gitlab).get("/projects/:id"), None);
    let mut expected = gitlab.with_instance(|i| expected_in_group(i, "other-org"));
    for e in &mut expected {
        e.statistics = false;
    }
    assert_exact(&metrics, &expected);
}

/// A family whose calls all fail says so (`success` 0) while the others succeed, and the
/// collection as a whole succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_family_fails_alone() {
    let gitlab = demo_gitlab().await;
    gitlab.set_faults(Faults {
        route: Some(MERGE_REQUESTS.to_owned()),
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let exporter = Exporter::start(
        &gitlab,
        &["--gitlab.api", "rest", "--gitlab.request-timeout", "2s"],
    );
    let metrics = exporter.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
    for family in FAMILIES {
        let success = metrics.value(
            "gitlab_exporter_collector_success",
            &[("collector", family)],
        );
        let want = if family == "merge_requests" { 0.0 } else { 1.0 };
        assert_eq!(success, Some(want), "{family}");
    }
    assert!(metrics.series("gitlab_project_merge_requests").is_empty());
    assert!(!metrics.series("gitlab_project_commits").is_empty());
}

/// An unknown collector is refused at start, naming the flag.
#[test]
fn an_unknown_collector_is_refused() {
    let output = Command::new(BINARY)
        .args(["--demo", "--no-collector.pipelinez"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--no-collector.pipelinez"), "{stderr}");
    let help = Command::new(BINARY).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for family in FAMILIES {
        assert!(help.contains(&format!("--collector.{family}")), "{help}");
        assert!(help.contains(&format!("--no-collector.{family}")), "{help}");
    }
}
