//! GraphQL against REST, side by side in one run: the exporter binary (release build) scraped
//! over HTTP against one fake GitLab serving N generated projects, with a simulated round trip
//! per request and the same server time per merge-request count on both APIs (a REST list call
//! runs one count for `X-Total`; a GraphQL query runs one per `count` field, one after another,
//! as GitLab resolves them).
//!
//! ```text
//! cargo bench --bench graphql                                   # N = 1,000 and 10,000
//! cargo bench --bench graphql -- --n 100000 --rtt-ms 0 --count-cost-ms 0 --batch-sizes 100
//! cargo bench --bench graphql -- --rtt-ms 20 --count-cost-ms 1 --concurrency 16 --batch-sizes 25,50,100
//! ```
//!
//! For each N and each path (REST, then GraphQL at each batch size) it prints one markdown row:
//! calls of a cold scrape (GraphQL and REST separately), the bound the issue sets
//! (ceil(N/100) + ceil(N/25)), the ratio of REST's calls to this path's, the cold wall time and
//! its ratio to REST's, then the calls and wall time of a steady collection with nothing
//! changed, and peak RSS.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::Exporter;
use fake_gitlab::{FakeGitlab, Instance};

/// Benchmark settings from the command line.
#[derive(Parser)]
#[command(name = "graphql", bin_name = "cargo bench --bench graphql --")]
struct Settings {
    /// Project counts, comma-separated.
    #[arg(long = "n", value_delimiter = ',', default_values_t = [1_000, 10_000])]
    sizes: Vec<usize>,
    /// Simulated round trip per request, in milliseconds.
    #[arg(long = "rtt-ms", default_value_t = 20)]
    rtt_ms: u64,
    /// Server time per merge-request count, in milliseconds.
    #[arg(long = "count-cost-ms", default_value_t = 1)]
    count_cost_ms: u64,
    /// The exporter's --gitlab.concurrency.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// GraphQL batch sizes to measure, comma-separated.
    #[arg(long = "batch-sizes", value_delimiter = ',', default_values_t = [25, 50, 100])]
    batch_sizes: Vec<usize>,
    /// Skip REST above this many projects (its cold scrape is 4 calls per project).
    #[arg(long = "rest-max", default_value_t = usize::MAX)]
    rest_max: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let settings = Settings::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(settings));
}

/// One path's measurements.
struct Row {
    label: String,
    graphql_calls: u64,
    rest_calls: u64,
    cold: Duration,
    steady_calls: u64,
    steady: Duration,
    rss: u64,
}

async fn run(settings: Settings) {
    println!(
        "## Cold and steady scrapes, REST and GraphQL side by side (RTT {} ms, {} ms per count, concurrency {})\n",
        settings.rtt_ms, settings.count_cost_ms, settings.concurrency
    );
    println!(
        "| projects | path | cold calls (GraphQL + REST) | bound | REST calls / these | cold wall time | REST time / this | steady calls | steady wall time | peak RSS |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &settings.sizes {
        let gitlab = FakeGitlab::start(Instance::generated(n))
            .await
            .expect("fake GitLab");
        gitlab.set_latency(Duration::from_millis(settings.rtt_ms));
        gitlab.set_count_cost(Duration::from_millis(settings.count_cost_ms));
        let bound = n.div_ceil(100) + n.div_ceil(25);
        let mut paths: Vec<(String, Vec<String>)> = Vec::new();
        if n <= settings.rest_max {
            paths.push(("REST".into(), vec!["--gitlab.api".into(), "rest".into()]));
        }
        for b in &settings.batch_sizes {
            paths.push((
                format!("GraphQL, batches of {b}"),
                vec!["--gitlab.graphql.batch-size".into(), b.to_string()],
            ));
        }
        let mut rest: Option<(u64, Duration)> = None;
        for (label, args) in paths {
            let row = measure(&gitlab, &settings, label, &args).await;
            let calls = row.graphql_calls + row.rest_calls;
            let (calls_ratio, time_ratio) = match rest {
                Some((c, t)) => (
                    format!("{:.0}x", c as f64 / calls as f64),
                    format!("{:.1}x", t.as_secs_f64() / row.cold.as_secs_f64()),
                ),
                None => ("1x".into(), "1x".into()),
            };
            println!(
                "| {n} | {} | {calls} ({} + {}) | {bound} | {calls_ratio} | {:.2} s | {time_ratio} | {} | {:.2} s | {:.0} MiB |",
                row.label,
                row.graphql_calls,
                row.rest_calls,
                row.cold.as_secs_f64(),
                row.steady_calls,
                row.steady.as_secs_f64(),
                row.rss as f64 / (1 << 20) as f64,
            );
            if rest.is_none() && row.label == "REST" {
                rest = Some((calls, row.cold));
            }
        }
        gitlab.shutdown().await;
    }
}

async fn measure(gitlab: &FakeGitlab, settings: &Settings, label: String, args: &[String]) -> Row {
    let concurrency = settings.concurrency.to_string();
    let mut all: Vec<&str> = vec![
        "--gitlab.concurrency",
        &concurrency,
        "--cache.ttl",
        "0s",
        "--web.max-timeout",
        "30m",
    ];
    all.extend(args.iter().map(String::as_str));
    // The merge-request counts against REST's: the flow collectors (GraphQL's only, by
    // default) have their own benchmark, benches/flow.rs.
    all.extend(common::NO_FLOW);
    let exporter = Exporter::start(gitlab, &all);
    gitlab.reset_counts();
    let started = Instant::now();
    let response = exporter.get("/metrics", &[]).await;
    let cold = started.elapsed();
    assert_eq!(response.status, 200);
    assert!(
        response.text().contains("gitlab_up 1"),
        "{label}: the cold scrape failed"
    );
    let graphql_calls = gitlab.requests("/api/graphql");
    let rest_calls = gitlab.total_requests() - graphql_calls;
    gitlab.reset_counts();
    let started = Instant::now();
    let response = exporter.get("/metrics", &[]).await;
    let steady = started.elapsed();
    assert!(response.text().contains("gitlab_up 1"), "{label}: steady");
    let steady_calls = gitlab.total_requests();
    let rss = exporter.peak_rss();
    Row {
        label,
        graphql_calls,
        rest_calls,
        cold,
        steady_calls,
        steady,
        rss,
    }
}
