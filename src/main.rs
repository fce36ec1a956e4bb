//! The `gitlab-api-exporter` binary: flags, logging, runtime, then [`gitlab_api_exporter::run`]
//! until SIGINT or SIGTERM.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use gitlab_api_exporter::config::Config;
use gitlab_api_exporter::server::shutdown_signal;

fn main() -> ExitCode {
    let config = Config::from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::from(config.log_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // GitLab calls block a pool thread each, at most --gitlab.concurrency at once.
        .max_blocking_threads(config.concurrency + 16)
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(gitlab_api_exporter::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
