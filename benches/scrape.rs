//! End-to-end benchmark of the REST path (`--gitlab.api rest`; `benches/graphql.rs` sets GraphQL
//! beside it): the exporter binary (release build) scraped over HTTP against the fake GitLab
//! serving N generated projects with a simulated network round trip per request.
//!
//! ```text
//! cargo bench --bench scrape                       # N = 100, 1,000, 10,000, 100,000
//! cargo bench --bench scrape -- --n 100,1000       # a subset
//! cargo bench --bench scrape -- --rtt-ms 20 --concurrency 4,16,64
//! ```
//!
//! For each N it prints one markdown row per concurrency (cold scrape) and one row for the
//! cached and steady-state measurements, in the tables BENCHMARKS.md keeps.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use common::{Exporter, http_request};
use fake_gitlab::{FakeGitlab, Instance, MergeRequestChange};

/// Benchmark settings from the command line.
struct Settings {
    sizes: Vec<usize>,
    rtt: Duration,
    concurrency: Vec<usize>,
    cached_scrapes: usize,
}

impl Settings {
    fn from_args() -> Settings {
        let mut settings = Settings {
            sizes: vec![100, 1_000, 10_000, 100_000],
            rtt: Duration::from_millis(20),
            concurrency: vec![4, 16, 64],
            cached_scrapes: 200,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let list = |v: &str| {
            v.split(',')
                .map(|n| n.trim().replace('_', "").parse().expect("a number"))
                .collect::<Vec<usize>>()
        };
        let mut i = 0;
        while i < args.len() {
            let value = args.get(i + 1).map(String::as_str).unwrap_or("");
            match args[i].as_str() {
                "--n" => settings.sizes = list(value),
                "--rtt-ms" => {
                    settings.rtt = Duration::from_millis(value.parse().expect("milliseconds"))
                }
                "--concurrency" => settings.concurrency = list(value),
                "--cached-scrapes" => settings.cached_scrapes = value.parse().expect("a number"),
                // cargo bench passes --bench; ignore anything else.
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        settings
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

async fn run(settings: Settings) {
    let rtt_ms = settings.rtt.as_millis();
    println!("## Cold scrape (RTT {rtt_ms} ms)\n");
    println!(
        "| projects | concurrency | API calls | lower bound | calls / bound | wall time | RTT bound | time / bound | exporter CPU | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut steady_rows = Vec::new();
    let mut cached_rows = Vec::new();
    for &n in &settings.sizes {
        let instance = Instance::generated(n);
        let bound_calls = lower_bound_calls(&instance);
        let gitlab = FakeGitlab::start(instance).await.expect("fake GitLab");
        gitlab.set_latency(settings.rtt);
        let concurrencies: Vec<usize> = if n >= 100_000 {
            vec![*settings.concurrency.iter().max().unwrap()]
        } else {
            settings.concurrency.clone()
        };
        for (k, &c) in concurrencies.iter().enumerate() {
            gitlab.reset_counts();
            // The last exporter goes on to the cached and steady-state measurements: the cache
            // holds long enough for the former, then is waited out for the latter.
            let ttl = if k + 1 == concurrencies.len() {
                "30s"
            } else {
                "1h"
            };
            let exporter = Exporter::start(
                &gitlab,
                &[
                    "--gitlab.concurrency",
                    &c.to_string(),
                    "--cache.ttl",
                    ttl,
                    "--gitlab.api",
                    "rest",
                ],
            );
            let cpu_before = cpu_seconds(&exporter);
            let started = Instant::now();
            let cold = scrape(&exporter, true).await;
            let wall = started.elapsed();
            let cpu = cpu_seconds(&exporter) - cpu_before;
            let calls = gitlab.total_requests();
            // Sequential steps no schedule can avoid: the first listing page, then one call per
            // project after it.
            let rtt_bound = settings.rtt * (2 + bound_calls.div_ceil(c as u64) as u32);
            println!(
                "| {n} | {c} | {calls} | {bound_calls} | {:.3} | {:.2} s | {:.2} s | {:.2} | {:.1} s ({:.0} µs/call) | {} |",
                calls as f64 / bound_calls as f64,
                wall.as_secs_f64(),
                rtt_bound.as_secs_f64(),
                wall.as_secs_f64() / rtt_bound.as_secs_f64(),
                cpu,
                cpu * 1e6 / calls as f64,
                mib(exporter.peak_rss()),
            );
            assert!(cold.len() > 100, "a real exposition");
            if k + 1 == concurrencies.len() {
                let cold_done = Instant::now();
                cached_rows.push(cached(&exporter, n, settings.cached_scrapes).await);
                steady_rows.push(steady(&exporter, &gitlab, n, cold_done).await);
            }
        }
        gitlab.shutdown().await;
    }
    println!("\n## Served from the cache\n");
    println!("| projects | p50 | p99 | scrapes/s (4 clients) | bytes (gzip) | bytes (plain) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for row in cached_rows {
        println!("{row}");
    }
    println!("\n## Steady state (TTL expired; RTT {rtt_ms} ms)\n");
    println!(
        "| projects | nothing changed: calls | wall time | 1 % changed: calls | wall time | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for row in steady_rows {
        println!("{row}");
    }
}

/// The calls the metrics need: one listing page per 100 projects and the empty page that ends a
/// keyset walk (GitLab links a next page from every page with a project), and per project the four
/// merge-request counts when its merge requests are enabled (statistics are visible in a
/// generated instance, so commits cost nothing).
fn lower_bound_calls(instance: &Instance) -> u64 {
    let pages = instance.projects.len().div_ceil(100) as u64 + 1;
    let merge_requests = instance
        .projects
        .iter()
        .filter(|p| p.merge_requests_enabled && !p.archived)
        .count() as u64;
    pages + 4 * merge_requests
}

/// One scrape as Prometheus does it (OpenMetrics, gzip) or as curl does (text, no gzip).
async fn scrape(exporter: &Exporter, as_prometheus: bool) -> Vec<u8> {
    let headers: &[(&str, &str)] = if as_prometheus {
        &[
            (
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            ),
            ("Accept-Encoding", "gzip"),
        ]
    } else {
        &[]
    };
    let response = exporter.get("/metrics", headers).await;
    assert_eq!(response.status, 200);
    response.body
}

/// Latency percentiles and throughput of scrapes served from the cache.
async fn cached(exporter: &Exporter, n: usize, scrapes: usize) -> String {
    let mut latencies = Vec::with_capacity(scrapes);
    let mut gzip_bytes = 0;
    for _ in 0..scrapes {
        let started = Instant::now();
        gzip_bytes = scrape(exporter, true).await.len();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let plain_bytes = scrape(exporter, false).await.len();
    let addr = exporter.addr;
    let window = Duration::from_secs(2);
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut done = 0u64;
                let headers = vec![
                    (
                        "Accept".to_owned(),
                        "application/openmetrics-text;version=1.0.0".to_owned(),
                    ),
                    ("Accept-Encoding".to_owned(), "gzip".to_owned()),
                ];
                while started.elapsed() < window {
                    http_request(addr, "GET", "/metrics", &headers);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    format!(
        "| {n} | {} | {} | {rate:.0} | {gzip_bytes} | {plain_bytes} |",
        ms(p(0.5)),
        ms(p(0.99))
    )
}

/// Calls and wall time of scrapes after the TTL expired, first with nothing changed, then with
/// 1 % of the projects changed (a merge request merged, a push).
async fn steady(exporter: &Exporter, gitlab: &FakeGitlab, n: usize, cold_done: Instant) -> String {
    let ttl = Duration::from_secs(31);
    tokio::time::sleep((cold_done + ttl).saturating_duration_since(Instant::now())).await;
    gitlab.reset_counts();
    let started = Instant::now();
    scrape(exporter, true).await;
    let (same_calls, same_wall) = (gitlab.total_requests(), started.elapsed());

    // 1 % of the projects change: a merge request merged (or opened), and a push.
    let changed = (n / 100).max(1);
    let ids: Vec<u64> = gitlab.with_instance(|i| {
        i.projects
            .iter()
            .step_by(100)
            .take(changed)
            .map(|p| p.id)
            .collect()
    });
    for id in ids {
        if !gitlab.change_merge_request(id, MergeRequestChange::Merge) {
            gitlab.change_merge_request(id, MergeRequestChange::Open);
        }
        gitlab.push(id, 1);
    }
    tokio::time::sleep(ttl).await;
    gitlab.reset_counts();
    let started = Instant::now();
    scrape(exporter, true).await;
    let (changed_calls, changed_wall) = (gitlab.total_requests(), started.elapsed());
    format!(
        "| {n} | {same_calls} | {:.2} s | {changed_calls} | {:.2} s | {} |",
        same_wall.as_secs_f64(),
        changed_wall.as_secs_f64(),
        mib(exporter.peak_rss()),
    )
}

/// CPU time (user and system) the exporter process used so far, in seconds.
fn cpu_seconds(exporter: &Exporter) -> f64 {
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", exporter.pid())).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    // The kernel reports clock ticks of 1/100 s on Linux.
    ticks / 100.0
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
