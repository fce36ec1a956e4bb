//! gitlab-api-exporter: a Prometheus exporter that turns GitLab's GraphQL and REST APIs into
//! metrics about projects, commits and merge requests, collected at scrape time.
//!
//! There is no background loop. A request to the telemetry path asks the [`cache`] for a
//! snapshot; when the cached one is older than `--cache.ttl`, one collection runs (concurrent
//! scrapes share it), fanning out bounded, concurrent calls through the one [`gitlab::Client`].
//!
//! # Layout
//! - [`config`]: command-line flags, validation, the token ([`redact::Secret`]).
//! - [`server`]: the HTTP server: routes, content negotiation, gzip, graceful shutdown.
//! - [`cache`]: the snapshot cache: TTL and single flight.
//! - [`collect`]: one collection: the projects in scope, then every enabled metric family's
//!   calls; one file per family (`collect/families/`), the max-stale policy (`collect/stale.rs`),
//!   the GraphQL pages and batches (`collect/graphql.rs`).
//! - [`render`]: everything a scrape's body is made of: the formats, every family's encoding
//!   (through the families' list), the exporter's own lines, the compressed exposition.
//! - [`metrics`]: the exporter's own counters, and the last hour of collections.
//! - [`status`]: the status page.
//! - [`probe`]: multi-target mode.
//! - [`redact`]: secrets (the token, passwords in URLs) kept out of logs, pages and labels.
//! - [`gitlab`]: the GitLab client through which every API call passes (auth, concurrency limit,
//!   accounting, retries), REST and GraphQL (`gitlab/graphql.rs`), pagination and the JSON types.
//!
//! Beside it in the workspace: `fake-gitlab` (a fake GitLab speaking the REST and GraphQL APIs, for tests,
//! benchmarks and `--demo`) and `web-config` (`--web.config.file`: TLS, basic auth, headers).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub(crate) mod cache;
pub(crate) mod collect;
pub mod config;
pub(crate) mod gitlab;
pub(crate) mod metrics;
pub(crate) mod probe;
pub mod redact;
pub(crate) mod render;
pub(crate) mod server;
pub(crate) mod status;

pub use server::shutdown_signal;

/// The exporter's version, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit it was built from (`unknown` outside a git checkout).
pub const REVISION: &str = env!("GIT_COMMIT");
/// What `--version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("GIT_COMMIT"),
    ")"
);

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use futures::FutureExt as _;
use tracing::{info, warn};

/// Runs the exporter until `shutdown` completes: starts the demo GitLab if asked, builds the
/// client, collector and cache, binds the listen address and serves.
pub async fn run(config: config::Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut config = config;
    let demo = start_demo(&mut config).await?;
    if config.gitlab_url.starts_with("http://") && !gitlab::is_loopback_url(&config.gitlab_url) {
        warn!(url = %config.gitlab_url, "plain http:// to a GitLab that is not on loopback: the token travels unencrypted");
    }

    let exporter_metrics = metrics::ExporterMetrics::default();
    let client = gitlab::Client::new(
        gitlab::ClientOptions {
            base_url: config.gitlab_url.clone(),
            token: config.token.clone(),
            concurrency: config.concurrency,
            request_timeout: config.request_timeout,
            max_requests_per_second: config.max_requests_per_second,
            ca_certs: config.ca_certs.clone(),
        },
        exporter_metrics.api.clone(),
    );
    let settings = collect::Settings {
        concurrency: config.concurrency,
        full_refresh_interval: config.full_refresh_interval,
        max_stale: config.max_stale,
        limits: config.limits,
        families: config.collectors,
        api: config.api,
        batch_size: config.batch_size,
        options: config.family_options,
    };
    let collector = collect::Collector::new(client.clone(), config.scope.clone(), settings);
    let counted = exporter_metrics.clone();
    let cache = cache::Cache::new(config.cache_ttl, config.max_stale, move || {
        let (collector, counted) = (collector.clone(), counted.clone());
        async move {
            let snapshot = collector.collect().await;
            counted.collection_finished(&snapshot);
            render::Rendered::prepared(snapshot).await
        }
        .boxed()
    });
    let probes = config.multi_target.then(|| {
        probe::Probes::new(
            client.clone(),
            probe::Settings {
                ttl: config.cache_ttl,
                include_archived: config.scope.include_archived,
                collect: settings,
            },
            exporter_metrics.clone(),
        )
    });
    let app = Arc::new(server::App {
        probes,
        cache: cache.clone(),
        metrics: exporter_metrics,
        telemetry_path: config.telemetry_path.clone(),
        description: describe(&config),
        client: client.clone(),
        timeout_offset: config.timeout_offset,
        max_timeout: config.max_timeout,
        connections: server::Connections::new(server::connection_cap(
            config.max_connections,
            config.concurrency,
        )),
    });
    let reloading = tokio::spawn(reload_token_on_sighup(
        config.token_file.clone(),
        client,
        cache,
    ));

    let listener = server::bind(&config.listen_address)
        .await
        .with_context(|| {
            format!(
                "--web.listen-address: cannot listen on {}",
                config.listen_address
            )
        })?;
    let tls = config
        .web_config
        .as_ref()
        .is_some_and(|w| w.tls_acceptor().is_some());
    info!(
        address = %listener.local_addr().context("--web.listen-address: no local address")?,
        telemetry_path = %config.telemetry_path,
        tls,
        max_connections = app.connections.cap(),
        gitlab = %config.gitlab_url,
        collectors = %config.collectors.names().join(","),
        version = VERSION,
        "listening"
    );
    server::run(listener, app, config.web_config.clone(), shutdown).await;
    reloading.abort();
    if let Some(fake) = demo {
        fake.shutdown().await;
    }
    Ok(())
}

/// How long a SIGHUP waits for the token file to be read before keeping the current token.
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the token file again on each SIGHUP (a rotated token), and makes the next scrape
/// collect with it. The file is read on the blocking pool, never on the async workers; a file
/// that cannot be read, or is not read within [`RELOAD_TIMEOUT`] (a hung network file system),
/// leaves the current token in use while serving goes on. While a slow read is still going, a
/// further SIGHUP is ignored (with a warning) rather than piling up reads.
async fn reload_token_on_sighup(
    token_file: Option<std::path::PathBuf>,
    client: gitlab::Client,
    cache: cache::Cache,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP; the token file will not be re-read");
            return;
        }
    };
    let mut slow: Option<tokio::task::JoinHandle<Result<redact::Secret, String>>> = None;
    while hangups.recv().await.is_some() {
        let Some(path) = &token_file else {
            info!("SIGHUP received; the token is not from --gitlab.token-file, nothing to re-read");
            continue;
        };
        if slow.as_ref().is_some_and(|read| !read.is_finished()) {
            warn!(file = %path.display(), "SIGHUP received, but the last read of the token file has not finished; keeping the current token");
            continue;
        }
        let file = path.clone();
        let mut read = tokio::task::spawn_blocking(move || config::read_token_file(&file));
        let outcome = match tokio::time::timeout(RELOAD_TIMEOUT, &mut read).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Err(format!("the read failed: {e}")),
            Err(_) => {
                slow = Some(read);
                Err(format!("not read within {RELOAD_TIMEOUT:?}"))
            }
        };
        match outcome {
            Ok(token) => {
                client.set_token(Some(token));
                cache.invalidate();
                info!(file = %path.display(), "SIGHUP received: token re-read from its file");
            }
            Err(e) => {
                warn!(error = %e, "SIGHUP received, but the token file cannot be used; keeping the current token");
            }
        }
    }
}

/// One line on what is exported from where, for the landing page.
fn describe(config: &config::Config) -> String {
    if config.multi_target {
        return format!(
            "Multi-target mode: /probe?target=<group or project> exports that scope ({} archived) from {}, cached for {:?}.",
            if config.scope.include_archived {
                "including"
            } else {
                "without"
            },
            config.gitlab_url,
            config.cache_ttl,
        );
    }
    let scope = &config.scope;
    let mut parts = Vec::new();
    if scope.is_membership() {
        parts.push("the projects the token's user is a member of".to_owned());
    }
    if scope.all_projects {
        parts.push("every project the token can see".to_owned());
    }
    if !scope.groups.is_empty() {
        parts.push(format!(
            "the projects of group(s) {}",
            scope.groups.join(", ")
        ));
    }
    if !scope.projects.is_empty() {
        parts.push(format!("project(s) {}", scope.projects.join(", ")));
    }
    format!(
        "Exporting {} ({} archived) from {}, cached for {:?}.",
        parts.join(", "),
        if scope.include_archived {
            "including"
        } else {
            "without"
        },
        config.gitlab_url,
        config.cache_ttl,
    )
}

/// `--demo`: starts the built-in fake GitLab and points the configuration at it.
#[cfg(feature = "demo")]
async fn start_demo(
    config: &mut config::Config,
) -> anyhow::Result<Option<fake_gitlab::FakeGitlab>> {
    if !config.demo {
        return Ok(None);
    }
    // GitLab.com's limit for authenticated API calls, so that the rate-limit metrics and the
    // status page's budget show something.
    let mut instance = fake_gitlab::Instance::demo();
    instance.rate_limit_per_minute = Some(2000);
    let fake = fake_gitlab::FakeGitlab::start(instance)
        .await
        .context("--demo: cannot start the built-in fake GitLab")?;
    // A lively instance: pipelines run and finish, merge requests are merged, deployments
    // ship them, so that every flow series moves.
    fake.start_lively(std::time::Duration::from_secs(5));
    info!(url = %fake.url(), "demo mode: exporting the built-in fake GitLab, changing every 5 s");
    config.gitlab_url = fake.url();
    config.token = Some(redact::Secret::new(fake.token()));
    Ok(Some(fake))
}

/// A build without the `demo` feature: `--demo` was refused with the flags.
#[cfg(not(feature = "demo"))]
async fn start_demo(_: &mut config::Config) -> anyhow::Result<Option<NoDemo>> {
    Ok(None)
}

/// What a build without the `demo` feature never starts.
#[cfg(not(feature = "demo"))]
enum NoDemo {}

#[cfg(not(feature = "demo"))]
impl NoDemo {
    async fn shutdown(self) {
        match self {}
    }
}
