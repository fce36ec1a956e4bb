//! The `gitlab-api-exporter` binary: malloc tuning, flags, logging, the descriptor limit,
//! runtime, then [`gitlab_api_exporter::run`] until SIGINT or SIGTERM.

use std::process::ExitCode;

use gitlab_api_exporter::config::{Config, LogFormat};
use gitlab_api_exporter::shutdown_signal;

fn main() -> ExitCode {
    tune_malloc();
    let config = Config::from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let level = tracing::Level::from(config.log_level());
    match config.log_format() {
        LogFormat::Logfmt => tracing_logfmt::builder()
            .with_target(false)
            .with_span_name(false)
            .with_span_path(false)
            .subscriber_builder()
            .with_max_level(level)
            .with_writer(gitlab_api_exporter::redact::Stderr)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_max_level(level)
            .with_writer(gitlab_api_exporter::redact::Stderr)
            .with_target(false)
            .init(),
    }
    raise_descriptor_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // GitLab calls block a pool thread each, at most --gitlab.concurrency at once.
        .max_blocking_threads(config.concurrency() + 16)
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

/// Raises the soft limit on open files to the hard one, as Go programs do at start: the soft
/// default (1024 in Docker, in many distributions' services) is far below what the kernel allows
/// the process, and a server whose connections exhaust it can no longer accept scrapes.
fn raise_descriptor_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(
            limit,
            "open files limit (soft RLIMIT_NOFILE) raised to the hard limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit (RLIMIT_NOFILE)"),
    }
}

/// Fixes glibc's mmap and trim thresholds (128 KiB), which otherwise adapt upwards after large
/// blocks are freed: GitLab pages and encoded expositions would then be carved out of the
/// per-thread arenas, and the resident size of a 100,000-project exporter would creep up by
/// tens of MiB per collection (from 90 to 375 MiB over ten collections; with fixed thresholds
/// it stays under 100 MiB, see BENCHMARKS.md). Equivalent to the environment variables
/// MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_, which, when set, take precedence.
///
/// Also caps glibc's arenas at 2 (MALLOC_ARENA_MAX): GitLab calls run on blocking threads, up
/// to `--gitlab.concurrency` of them, and each would get an arena of its own whose freed memory
/// stays resident; with the flow collectors' REST calls at a first collection of 10,000
/// projects, 16 arenas held about 20 MiB more than 2 (BENCHMARKS.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    const ARENAS: libc::c_int = 2;
    for (param, env, value) in [
        (libc::M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", THRESHOLD),
        (libc::M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", THRESHOLD),
        (libc::M_ARENA_MAX, "MALLOC_ARENA_MAX", ARENAS),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: mallopt only sets a glibc tuning parameter; it is called at start, before
            // any other thread exists, with a documented parameter and a valid value.
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
