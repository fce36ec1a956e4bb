//! The exporter's own metrics, and the two text formats (OpenMetrics 1.0 or Prometheus text
//! 0.0.4) a scrape negotiates. A scrape is a snapshot's families (encoded once per collection,
//! see [`crate::collect::Snapshot::encoded`]) followed by these metrics.
//!
//! The exporter's own metrics live for the whole process (API calls by endpoint and code,
//! collections) or are computed per scrape (age of the served data); the GitLab data is encoded
//! once per collection by [`crate::collect::Snapshot`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::collect::Snapshot;
use crate::gitlab::ApiCounters;

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (what Prometheus asks for first).
    OpenMetrics,
    /// Prometheus text 0.0.4 (curl, promtool, older scrapers).
    Text,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// Labels of `gitlab_exporter_collections_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectionLabels {
    /// `success` or `failure`.
    result: &'static str,
}

/// Labels of `gitlab_exporter_collections_aborted_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AbortedLabels {
    /// `max_projects` or `timeout`.
    limit: &'static str,
}

/// Labels of `gitlab_exporter_scrapes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScrapeLabels {
    /// `cached`, `collected` or `timeout`.
    result: &'static str,
}

/// Labels of `gitlab_exporter_web_refused_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    /// `unauthorized`, `auth_busy` or `rate_limited`.
    reason: &'static str,
}

/// What one scrape serves: a snapshot, and whether GitLab counts as up right now.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    /// The snapshot whose data is served.
    pub snapshot: &'a Snapshot,
    /// The value of `gitlab_up`.
    pub up: bool,
}

/// What the process-wide metrics need besides [`ExporterMetrics`].
#[derive(Debug, Clone, Copy)]
pub struct Process<'a> {
    /// Probe targets held, in multi-target mode.
    pub targets: Option<usize>,
    /// The server's connections.
    pub connections: &'a crate::server::Connections,
}

/// The exporter's own long-lived metrics.
#[derive(Debug, Clone, Default)]
pub struct ExporterMetrics {
    /// Updated by the GitLab client.
    pub api: ApiCounters,
    collections: Family<CollectionLabels, Counter>,
    aborted: Family<AbortedLabels, Counter>,
    scrapes: Family<ScrapeLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
}

impl ExporterMetrics {
    /// Counts a scrape by where its data came from.
    pub fn scraped(&self, source: crate::cache::Source) {
        self.scrapes
            .get_or_create(&ScrapeLabels {
                result: source.label(),
            })
            .inc();
    }

    /// Counts a request refused by the web config (`--web.config.file`).
    pub fn refused(&self, kind: web_config::DeniedKind) {
        self.refused
            .get_or_create(&RefusedLabels {
                reason: kind.label(),
            })
            .inc();
    }

    /// Counts a finished collection.
    pub fn collection_finished(&self, snapshot: &Snapshot) {
        let result = if snapshot.is_success() {
            "success"
        } else {
            "failure"
        };
        self.collections
            .get_or_create(&CollectionLabels { result })
            .inc();
        if let Some(limit) = snapshot.data.aborted {
            self.aborted.get_or_create(&AbortedLabels { limit }).inc();
        }
    }

    /// The metrics a scrape appends to the snapshot's families (with the final `# EOF` in
    /// OpenMetrics), as of now: those of the served data (`served`: `gitlab_up`, its age) and,
    /// with `process`, the process-wide ones (API calls, collections, scrapes, rate limit,
    /// connections, build; probe targets held, in multi-target mode).
    pub fn render(
        &self,
        served: Option<Served<'_>>,
        process: Option<Process<'_>>,
        format: Format,
    ) -> String {
        let mut registry = Registry::default();
        if let Some(served) = served {
            register_served(&mut registry, served);
        }
        if let Some(process) = process {
            self.register_process(&mut registry, process);
        }
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail, and every name and HELP text is a constant.
        let _ = match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
        };
        out
    }

    fn register_process(&self, registry: &mut Registry, process: Process<'_>) {
        registry.register(
            "gitlab_exporter_api_requests",
            "GitLab API answers by route template and HTTP status code",
            self.api.requests.clone(),
        );
        registry.register(
            "gitlab_exporter_api_errors",
            "GitLab API attempts that failed, and records of answers that could not be used (decode), by route template and reason (timeout, transport, decode, too_large, unauthorized, redirect, throttled, server_error)",
            self.api.errors.clone(),
        );
        registry.register(
            "gitlab_exporter_collections",
            "Collections run, by result (success: GitLab was listed; failure: gitlab_up was 0)",
            self.collections.clone(),
        );
        registry.register(
            "gitlab_exporter_collections_aborted",
            "Collections abandoned at a limit, by limit (max_projects: the listings returned more than --collect.max-projects projects; timeout: the collection ran longer than --collect.timeout); each also counts as a failure",
            self.aborted.clone(),
        );
        registry.register(
            "gitlab_exporter_scrapes",
            "Scrapes answered, by where the data came from (cached: within --cache.ttl; collected: a collection finished in time; timeout: it did not, the last data was served)",
            self.scrapes.clone(),
        );
        registry.register(
            "gitlab_exporter_web_refused_requests",
            "HTTP requests refused before being served, by reason (unauthorized: missing or wrong credentials; auth_busy: too many password checks waiting; rate_limited: over the web config's rate_limit)",
            self.refused.clone(),
        );
        let connections = process.connections;
        registry.register(
            "gitlab_exporter_web_connections",
            "Connections to the exporter open now",
            ConstGauge::new(i64::try_from(connections.open()).unwrap_or(i64::MAX)),
        );
        registry.register(
            "gitlab_exporter_web_connections_limit",
            "Most connections served at once (--web.max-connections, lowered at start to what the descriptor limit allows)",
            ConstGauge::new(i64::try_from(connections.cap()).unwrap_or(i64::MAX)),
        );
        registry.register(
            "gitlab_exporter_web_idle_connections_closed",
            "Idle connections closed to make room for new ones at the connection limit",
            ConstCounter::new(connections.closed_idle()),
        );
        if let Some(targets) = process.targets {
            registry.register(
                "gitlab_exporter_probe_targets",
                "Targets of /probe held, each with its cache (at most 4096; the least recently probed go first)",
                ConstGauge::new(i64::try_from(targets).unwrap_or(i64::MAX)),
            );
        }
        let rate_limit = *self
            .api
            .rate_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(limit) = rate_limit {
            registry.register(
                "gitlab_api_rate_limit_limit",
                "RateLimit-Limit on GitLab's last answer that had it: calls allowed per window",
                ConstGauge::new(i64::try_from(limit.limit).unwrap_or(i64::MAX)),
            );
            registry.register(
                "gitlab_api_rate_limit_remaining",
                "RateLimit-Remaining on GitLab's last answer that had it: calls left in the window",
                ConstGauge::new(i64::try_from(limit.remaining).unwrap_or(i64::MAX)),
            );
            registry.register_with_unit(
                "gitlab_api_rate_limit_reset_timestamp",
                "RateLimit-Reset on GitLab's last answer that had it: when the window ends (Unix time, GitLab's clock)",
                Unit::Seconds,
                ConstGauge::new(limit.reset),
            );
        }
        registry.register(
            "gitlab_exporter_build",
            "Version of the exporter",
            Info::new(vec![
                ("version", crate::VERSION),
                ("revision", crate::REVISION),
            ]),
        );
    }
}

/// `gitlab_up` and the age of the served data.
fn register_served(registry: &mut Registry, served: Served<'_>) {
    let snapshot = served.snapshot;
    registry.register(
        "gitlab_up",
        "1 when the last collection reached GitLab and was authorized, and GitLab is not leaving calls unanswered for longer than a scrape may wait; else 0",
        ConstGauge::new(i64::from(served.up)),
    );
    if !snapshot.data.pending {
        registry.register_with_unit(
            "gitlab_exporter_cache_age",
            "Age of the served snapshot: time since the collection that produced it finished",
            Unit::Seconds,
            ConstGauge::new(snapshot.finished.elapsed().as_secs_f64()),
        );
    }
    if let Some(stamp) = snapshot.data.projects_from {
        let unix = stamp
            .wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        registry.register_with_unit(
            "gitlab_exporter_last_success_timestamp",
            "When the collection whose project data is served finished (Unix time); the data is at most --cache.max-stale old",
            Unit::Seconds,
            ConstGauge::new(unix),
        );
    }
}
