//! `fake-gitlab`: the fake GitLab on its own, for trying the exporter by hand or profiling it.
//!
//! ```text
//! cargo run --release -p fake-gitlab -- --projects 10000 --listen 127.0.0.1:8080 --rtt-ms 20
//! ```
//!
//! Prints the URL and the token, then serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fake_gitlab::{FakeGitlab, Instance};

/// A deterministic fake GitLab speaking the REST API v4 and a subset of its GraphQL API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Serve this many generated projects instead of the demo instance.
    #[arg(long, value_name = "N")]
    projects: Option<usize>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Added to every answer, as a network round trip would be.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    rtt_ms: u64,
    /// Merge requests disabled everywhere (no per-project calls: listing and encoding at scale).
    #[arg(long)]
    no_merge_requests: bool,
    /// GitLab.com's API rate limit (requests per minute per user), off by default.
    #[arg(long, value_name = "N")]
    rate_limit_per_minute: Option<u32>,
    /// Server time of every merge request count (a REST merge request listing, each GraphQL
    /// `mergeRequests { count }`), for benchmarks.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    count_cost_ms: u64,
    /// Background activity every SECS seconds (pipelines, merges, deployments), as `--demo`.
    #[arg(long, value_name = "SECS")]
    lively_secs: Option<u64>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut instance = match args.projects {
        Some(n) => Instance::generated(n),
        None => Instance::demo(),
    };
    if args.no_merge_requests {
        instance = instance.with_merge_requests(false);
    }
    instance.rate_limit_per_minute = args.rate_limit_per_minute;
    let gitlab = FakeGitlab::start_on(instance, args.listen).await?;
    gitlab.set_latency(Duration::from_millis(args.rtt_ms));
    gitlab.set_count_cost(Duration::from_millis(args.count_cost_ms));
    if let Some(secs) = args.lively_secs {
        gitlab.start_lively(Duration::from_secs(secs));
    }
    println!("GITLAB_URL={}", gitlab.url());
    println!("GITLAB_TOKEN={}", gitlab.token());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    gitlab.shutdown().await;
    Ok(())
}
