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

use common::Exporter;
use fake_gitlab::{FakeGitlab, Instance};

struct Settings {
    sizes: Vec<usize>,
    rtt: Duration,
    count_cost: Duration,
    concurrency: usize,
    batch_sizes: Vec<usize>,
    /// Skip REST above this many projects (its cold scrape is 4 calls per project).
    rest_max: usize,
}

impl Settings {
    fn from_args() -> Settings {
        let mut s = Settings {
            sizes: vec![1_000, 10_000],
            rtt: Duration::from_millis(20),
            count_cost: Duration::from_millis(1),
            concurrency: 16,
            batch_sizes: vec![25, 50, 100],
            rest_max: usize::MAX,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let list = |v: &str| -> Vec<usize> {
            v.split(',')
                .map(|n| n.trim().replace('_', "").parse().expect("a number"))
                .collect()
        };
        let mut i = 0;
        while i < args.len() {
            let value = args.get(i + 1).map(String::as_str).unwrap_or("");
            match args[i].as_str() {
                "--n" => s.sizes = list(value),
                "--rtt-ms" => s.rtt = Duration::from_millis(value.parse().expect("ms")),
                "--count-cost-ms" => {
                    s.count_cost = Duration::from_millis(value.parse().expect("ms"))
                }
                "--concurrency" => s.concurrency = value.parse().expect("a number"),
                "--batch-sizes" => s.batch_sizes = list(value),
                "--rest-max" => s.rest_max = value.replace('_', "").parse().expect("a number"),
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        s
    }
}

fn main() {
    let settings = Settings::from_args();
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
        settings.rtt.as_millis(),
        settings.count_cost.as_millis(),
        settings.concurrency
    );
    println!(
        "| projects | path | cold calls (GraphQL + REST) | bound | REST calls / these | cold wall time | REST time / this | steady calls | steady wall time | peak RSS |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &settings.sizes {
        let gitlab = FakeGitlab::start(Instance::generated(n))
            .await
            .expect("fake GitLab");
        gitlab.set_latency(settings.rtt);
        gitlab.set_count_cost(settings.count_cost);
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
    let rss = peak_rss(&exporter);
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

/// Peak resident set size of the exporter process (VmHWM), in bytes.
fn peak_rss(exporter: &Exporter) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", exporter.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
