//! A real Prometheus (Debian's `prometheus` package) scrapes the exporter over loopback with a
//! tuned scrape_timeout, negotiating OpenMetrics and gzip as it does in production, and sees
//! the target up with one commits series per project.

mod common;

use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::{Exporter, demo_gitlab, expected_membership};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_the_exporter() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "1m"]);
    let projects = gitlab.with_instance(|i| expected_membership(i)).len();
    let with_commits = gitlab
        .with_instance(|i| expected_membership(i))
        .iter()
        .filter(|e| e.commits.is_some())
        .count();
    let prometheus = Prometheus::start(exporter.addr);
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = prometheus.query_one("up{job=\"gitlab\"}");
            let commits = prometheus.query_one("count(gitlab_project_commits)");
            let count = prometheus.query_one("gitlab_projects");
            let info = prometheus.query_one("count(gitlab_project_info)");
            if (up, commits, count, info)
                == (
                    Some(1.0),
                    Some(with_commits as f64),
                    Some(projects as f64),
                    Some(projects as f64),
                )
                || Instant::now() > deadline
            {
                let samples = prometheus.query_one("scrape_samples_scraped{job=\"gitlab\"}");
                return (up, commits, count, info, samples);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
    .await
    .unwrap();
    let (up, commits, count, info, samples) = seen;
    assert_eq!(up, Some(1.0), "Prometheus sees the target up");
    assert_eq!(
        commits,
        Some(with_commits as f64),
        "one commits series per project with readable code"
    );
    assert_eq!(count, Some(projects as f64));
    assert_eq!(
        info,
        Some(projects as f64),
        "OpenMetrics info family ingested as gitlab_project_info"
    );
    assert!(samples.unwrap_or(0.0) > 1000.0, "{samples:?}");
    gitlab.shutdown().await;
}
