//! Runs the crate's fake GitLab on its own, for trying the exporter by hand or profiling it:
//!
//! ```text
//! cargo run --release --example fake_gitlab -- --projects 10000 --rtt-ms 20
//! ```
//!
//! Prints the URL and the token, then serves until Ctrl-C. Without `--projects`, serves the
//! demo instance; `--no-merge-requests` disables merge requests everywhere (no per-project
//! calls: a quick way to exercise listing and encoding at scale).

use std::time::Duration;

use gitlab_api_exporter::fake::{FakeGitlab, Instance};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{flag} takes a number"))
            })
    };
    let mut instance = match value("--projects") {
        Some(n) => Instance::generated(n as usize),
        None => Instance::demo(),
    };
    if args.iter().any(|a| a == "--no-merge-requests") {
        instance = instance.with_merge_requests(false);
    }
    let gitlab = FakeGitlab::start(instance).await?;
    gitlab.set_latency(Duration::from_millis(value("--rtt-ms").unwrap_or(0)));
    println!("GITLAB_URL={}", gitlab.url());
    println!("GITLAB_TOKEN={}", gitlab.token());
    tokio::signal::ctrl_c().await?;
    gitlab.shutdown().await;
    Ok(())
}
