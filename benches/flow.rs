//! The flow collectors' cost (pipelines, deployments, merge-request flow), side by side in one
//! run with them off: the exporter binary (release build) scraped over HTTP, over GraphQL, against
//! one fake GitLab serving N generated projects (every project with commits has a pipeline
//! history; one in four has production and staging environments), with a simulated round trip
//! per request.
//!
//! ```text
//! cargo bench --bench flow                      # N = 1,000 and 10,000
//! cargo bench --bench flow -- --n 10000 --rtt-ms 0
//! ```
//!
//! For each N and each setting (every collector on; the flow collectors off) it prints one
//! markdown row: the calls of a cold scrape (GraphQL and REST) and its wall time, the calls and
//! wall time of a steady collection with nothing changed, the calls of one after a pipeline
//! finished, a merge request merged and a deployment in 1 % of the projects, and the exporter's
//! peak RSS.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::Exporter;
use fake_gitlab::{DeploymentStatus, FakeGitlab, Instance, MergeRequestChange, PipelineStatus};

/// Benchmark settings from the command line.
#[derive(Parser)]
#[command(name = "flow", bin_name = "cargo bench --bench flow --")]
struct Settings {
    /// Project counts, comma-separated.
    #[arg(long = "n", value_delimiter = ',', default_values_t = [1_000, 10_000])]
    sizes: Vec<usize>,
    /// Simulated round trip per request, in milliseconds.
    #[arg(long = "rtt-ms", default_value_t = 20)]
    rtt_ms: u64,
    /// The exporter's --gitlab.concurrency.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Row {
    label: String,
    cold_graphql: u64,
    cold_rest: u64,
    cold: Duration,
    steady_calls: u64,
    steady: Duration,
    changed_calls: u64,
    changed: Duration,
    rss: u64,
}

fn main() {
    let settings = Settings::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&settings));
}

async fn run(settings: &Settings) {
    println!(
        "## The flow collectors' cost over GraphQL (RTT {} ms, concurrency {})\n",
        settings.rtt_ms, settings.concurrency
    );
    println!(
        "| projects | collectors | cold calls (GraphQL + REST) | cold wall time | steady calls | steady wall time | calls after 1 % changed | its wall time | peak RSS |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &settings.sizes {
        for (label, off) in [("all", false), ("flow off", true)] {
            let gitlab = FakeGitlab::start(Instance::generated(n))
                .await
                .expect("fake GitLab starts");
            gitlab.set_latency(Duration::from_millis(settings.rtt_ms));
            let row = measure(&gitlab, settings, label, off, n).await;
            println!(
                "| {n} | {} | {} + {} | {:.2} s | {} | {:.2} s | {} | {:.2} s | {:.0} MiB |",
                row.label,
                row.cold_graphql,
                row.cold_rest,
                row.cold.as_secs_f64(),
                row.steady_calls,
                row.steady.as_secs_f64(),
                row.changed_calls,
                row.changed.as_secs_f64(),
                row.rss as f64 / (1 << 20) as f64,
            );
            gitlab.shutdown().await;
        }
    }
}

async fn measure(
    gitlab: &FakeGitlab,
    settings: &Settings,
    label: &str,
    off: bool,
    n: usize,
) -> Row {
    let concurrency = settings.concurrency.to_string();
    let mut args: Vec<&str> = vec![
        "--gitlab.concurrency",
        &concurrency,
        "--cache.ttl",
        "0s",
        "--web.max-timeout",
        "30m",
    ];
    if off {
        args.extend(common::NO_FLOW);
    }
    let exporter = Exporter::start(gitlab, &args);
    gitlab.reset_counts();
    let (cold, text) = timed(&exporter).await;
    assert!(
        text.contains("gitlab_up 1"),
        "{label}: the cold scrape failed"
    );
    let cold_graphql = gitlab.requests("/api/graphql");
    let cold_rest = gitlab.total_requests() - cold_graphql;
    // A second collection settles what the first started (windows, signals).
    timed(&exporter).await;
    gitlab.reset_counts();
    let (steady, text) = timed(&exporter).await;
    assert!(text.contains("gitlab_up 1"), "{label}: steady");
    let steady_calls = gitlab.total_requests();
    // 1 % of the projects: a pipeline finishes, a merge request is merged, a deployment ships
    // it (GitLab's clock then moves on two minutes, so that the deployments have settled).
    let ids: Vec<(u64, Option<String>)> = gitlab.with_instance(|i| {
        i.projects
            .iter()
            .step_by(100)
            .take(n.div_ceil(100))
            .map(|p| (p.id, p.default_branch.clone()))
            .collect()
    });
    for (id, branch) in &ids {
        let Some(branch) = branch else { continue };
        let pipeline = gitlab.run_pipeline(*id, branch, PipelineStatus::Running);
        if let Some(pipeline) = pipeline {
            gitlab.finish_pipeline(*id, pipeline, PipelineStatus::Success, 60);
        }
        gitlab.change_merge_request(*id, MergeRequestChange::Open);
        gitlab.change_merge_request(*id, MergeRequestChange::Merge);
        gitlab.deploy(*id, "production", DeploymentStatus::Success, &[], pipeline);
    }
    gitlab.set_clock_offset(120);
    gitlab.reset_counts();
    let (changed, text) = timed(&exporter).await;
    assert!(text.contains("gitlab_up 1"), "{label}: changed");
    let changed_calls = gitlab.total_requests();
    gitlab.set_clock_offset(0);
    let rss = exporter.peak_rss();
    Row {
        label: label.to_owned(),
        cold_graphql,
        cold_rest,
        cold,
        steady_calls,
        steady,
        changed_calls,
        changed,
        rss,
    }
}

async fn timed(exporter: &Exporter) -> (Duration, String) {
    let started = Instant::now();
    let response = exporter.get("/metrics", &[]).await;
    assert_eq!(response.status, 200);
    (started.elapsed(), response.text())
}
