//! Everything a scrape's body is made of, in the two text formats a scrape negotiates
//! (OpenMetrics 1.0 or Prometheus text 0.0.4): a snapshot's data (every enabled family, encoded
//! by its own file, and the collection's own lines), encoded once per collection and held
//! compressed ([`exposition`]), followed by the lines of the scrape (`gitlab_up`, the data's
//! age) and, on the telemetry path, the process's (API calls, collections, scrapes, ...).

pub mod exposition;

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::collect::families::{self, encode_gauge};
use crate::collect::{Collected, Snapshot};
use crate::metrics::ExporterMetrics;
use exposition::Compressed;

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

/// A snapshot, and its data encoded at most once per format.
#[derive(Debug)]
pub struct Rendered {
    /// The snapshot.
    pub snapshot: Snapshot,
    openmetrics: OnceLock<Compressed>,
    text: OnceLock<Compressed>,
}

impl std::ops::Deref for Rendered {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl Rendered {
    /// A snapshot, not encoded yet.
    pub fn new(snapshot: Snapshot) -> Rendered {
        Rendered {
            snapshot,
            openmetrics: OnceLock::new(),
            text: OnceLock::new(),
        }
    }

    /// The snapshot with its OpenMetrics exposition (what Prometheus asks for) encoded, on the
    /// blocking pool, as part of the collection: a scrape then never spends its time budget
    /// encoding (a second or more at 100,000 projects). Other formats are encoded on demand.
    pub async fn prepared(snapshot: Snapshot) -> Rendered {
        let encoding = tokio::task::spawn_blocking(move || {
            let rendered = Rendered::new(snapshot);
            rendered.encoded(Format::OpenMetrics);
            rendered
        });
        match encoding.await {
            Ok(rendered) => rendered,
            Err(e) => Rendered::new(Snapshot::failed(format!(
                "encoding the collection failed: {e}"
            ))),
        }
    }

    /// The snapshot's data in `format` (OpenMetrics without its `# EOF`), compressed. Encoded
    /// on first use, once: CPU-bound for a big instance, so call it on the blocking pool
    /// unless [`Rendered::is_encoded`].
    pub fn encoded(&self, format: Format) -> &Compressed {
        self.cell(format).get_or_init(|| {
            let mut registry = Registry::default();
            registry.register_collector(Box::new(SnapshotMetrics(Arc::clone(&self.snapshot.data))));
            Compressed::encode(|w| match format {
                Format::OpenMetrics => {
                    prometheus_client::encoding::text::encode_registry(w, &registry)
                }
                Format::Text => prometheus_client::encoding::prometheus_text::encode(w, &registry),
            })
        })
    }

    /// True when [`Rendered::encoded`] would not have to encode.
    pub fn is_encoded(&self, format: Format) -> bool {
        self.cell(format).get().is_some()
    }

    fn cell(&self, format: Format) -> &OnceLock<Compressed> {
        match format {
            Format::OpenMetrics => &self.openmetrics,
            Format::Text => &self.text,
        }
    }
}

/// Labels of the per-family self-metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectorLabels {
    collector: &'static str,
}

/// A snapshot's data as a prometheus-client collector: the families, then the collection's own
/// lines.
#[derive(Debug)]
struct SnapshotMetrics(Arc<Collected>);

impl PromCollector for SnapshotMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let data = &self.0;
        if data.projects_from.is_some() {
            families::encode(&data.projects, data.enabled, &mut encoder)?;
        }
        if data.pending {
            return Ok(());
        }
        encode_gauge(
            &mut encoder,
            (
                "gitlab_exporter_collect_duration",
                "Wall time of the collection whose data is served.",
                Some(&Unit::Seconds),
            ),
            data.duration.as_secs_f64(),
        )?;
        encode_gauge(
            &mut encoder,
            (
                "gitlab_exporter_collect_api_requests",
                "GitLab API calls made by the collection whose data is served, retries included.",
                None,
            ),
            data.api_calls,
        )?;
        encode_gauge(
            &mut encoder,
            (
                "gitlab_exporter_collect_incomplete_projects",
                "Projects whose calls failed in the collection whose data is served: some of their series keep an earlier collection's values (up to --cache.max-stale old) or are left out.",
                None,
            ),
            data.incomplete_projects,
        )?;
        let per_family = |encoder: &mut DescriptorEncoder,
                          (name, help, unit): (&str, &str, Option<&Unit>),
                          value: &dyn Fn(&families::Report) -> f64|
         -> std::fmt::Result {
            let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
            for report in &data.families {
                family
                    .encode_family(&CollectorLabels {
                        collector: report.family.name(),
                    })?
                    .encode_gauge(&value(report))?;
            }
            Ok(())
        };
        per_family(
            &mut encoder,
            (
                "gitlab_exporter_collector_success",
                "1 when every call of the metric family (collector) succeeded in the collection whose data is served, else 0 (its failed projects keep their last values up to --cache.max-stale)",
                None,
            ),
            &|r| f64::from(u8::from(r.success)),
        )?;
        per_family(
            &mut encoder,
            (
                "gitlab_exporter_collector_duration",
                "Time from the start of the collection whose data is served until the metric family (collector) had its last value; families run concurrently",
                Some(&Unit::Seconds),
            ),
            &|r| r.duration.as_secs_f64(),
        )?;
        per_family(
            &mut encoder,
            (
                "gitlab_exporter_collector_api_requests",
                "GitLab API calls made for the metric family (collector) by the collection whose data is served, retries included (the listing's calls count under no collector)",
                None,
            ),
            &|r| r.api_calls as f64,
        )
    }
}

/// What one scrape serves: a snapshot, and whether GitLab counts as up right now.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    snapshot: &'a Snapshot,
    /// GitLab left the calls of a collection that ran late unanswered for most of the wait.
    hanging: bool,
}

impl<'a> Served<'a> {
    /// `snapshot`, served while GitLab is `hanging` or not.
    pub fn new(snapshot: &'a Snapshot, hanging: bool) -> Served<'a> {
        Served { snapshot, hanging }
    }

    /// `gitlab_up`: the last collection reached GitLab and was authorized, and GitLab is not
    /// hanging.
    pub fn up(&self) -> bool {
        self.snapshot.data.error.is_none() && !self.hanging
    }
}

/// What the process-wide metrics need besides [`ExporterMetrics`].
#[derive(Debug, Clone, Copy)]
pub struct Process {
    /// Probe targets held, in multi-target mode.
    pub targets: Option<usize>,
    /// The server's connections open now.
    pub connections_open: usize,
    /// The most connections served at once.
    pub connections_limit: usize,
    /// Idle connections closed to make room.
    pub idle_connections_closed: u64,
}

/// The lines a scrape appends to the snapshot's data (with the final `# EOF` in OpenMetrics),
/// as of now: those of the served data (`served`: `gitlab_up`, its age) and, with `process`,
/// the process-wide ones (API calls, collections, scrapes, rate limit, connections, build;
/// probe targets held, in multi-target mode).
pub fn scrape_lines(
    metrics: &ExporterMetrics,
    served: Option<Served<'_>>,
    process: Option<Process>,
    format: Format,
) -> String {
    let mut registry = Registry::default();
    if let Some(served) = served {
        register_served(&mut registry, served);
    }
    if let Some(process) = process {
        register_process(metrics, &mut registry, process);
    }
    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail, and every name and HELP text is a constant.
    let _ = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
    };
    out
}

fn register_process(metrics: &ExporterMetrics, registry: &mut Registry, process: Process) {
    registry.register(
        "gitlab_exporter_api_requests",
        "GitLab API answers by route template and HTTP status code",
        metrics.api.requests.clone(),
    );
    registry.register(
        "gitlab_exporter_api_errors",
        "GitLab API attempts that failed, and records of answers that could not be used (decode), by route template and reason (timeout, transport, decode, too_large, unauthorized, redirect, throttled, server_error, refused: a GraphQL answer with errors and no data)",
        metrics.api.errors.clone(),
    );
    registry.register(
        "gitlab_exporter_graphql_requests",
        "GraphQL queries sent to GitLab, by operation (projects: a page of the listing; named_projects; families: the batch of several families for one page; a family whose batch it is; pipelines_feed, pipelines_latest, merge_requests_merged: a busy project's own query) and result (success; partial: data with errors, the projects concerned collected over REST; refused: errors only; error: no usable answer)",
        metrics.api.graphql.clone(),
    );
    registry.register(
        "gitlab_exporter_graphql_query_complexity",
        "Complexity score GitLab gave the last GraphQL query of each operation (queryComplexity.score)",
        metrics.api.graphql_complexity.clone(),
    );
    registry.register(
        "gitlab_exporter_graphql_complexity_limit",
        "Most complexity GitLab allows one query of this token, as it reported last (queryComplexity.limit; 0 before the first query)",
        metrics.api.graphql_complexity_limit.clone(),
    );
    registry.register(
        "gitlab_exporter_graphql_batch_size",
        "Projects per GraphQL query of each operation, as last sent (halved while GitLab finds a query too complex or too slow)",
        metrics.api.graphql_batch_size.clone(),
    );
    registry.register(
        "gitlab_exporter_rest_fallbacks",
        "Uses of REST in place of GraphQL, by reason (unavailable: no GraphQL API, REST from then on; refused: a query refused as invalid, REST for the rest of the collection; failed: a batch failed even for one project; partial: a project's fields came back with errors; count_over_limit: a merge-request count above 1,000, counted exactly over REST)",
        metrics.api.rest_fallbacks.clone(),
    );
    registry.register(
        "gitlab_exporter_collections",
        "Collections run, by result (success: GitLab was listed; failure: gitlab_up was 0)",
        metrics.collections.clone(),
    );
    registry.register(
        "gitlab_exporter_collections_aborted",
        "Collections abandoned at a limit, by limit (max_projects: the listings returned more than --collect.max-projects projects; timeout: the collection ran longer than --collect.timeout); each also counts as a failure",
        metrics.aborted.clone(),
    );
    registry.register(
        "gitlab_exporter_scrapes",
        "Scrapes answered, by where the data came from (cached: within --cache.ttl; collected: a collection finished in time; timeout: it did not, the last data was served)",
        metrics.scrapes.clone(),
    );
    registry.register(
        "gitlab_exporter_web_refused_requests",
        "HTTP requests refused before being served, by reason (unauthorized: missing or wrong credentials; auth_busy: too many password checks waiting; rate_limited: over the web config's rate_limit)",
        metrics.refused.clone(),
    );
    registry.register(
        "gitlab_exporter_web_connections",
        "Connections to the exporter open now",
        ConstGauge::new(i64::try_from(process.connections_open).unwrap_or(i64::MAX)),
    );
    registry.register(
        "gitlab_exporter_web_connections_limit",
        "Most connections served at once (--web.max-connections, lowered at start to what the descriptor limit allows)",
        ConstGauge::new(i64::try_from(process.connections_limit).unwrap_or(i64::MAX)),
    );
    registry.register(
        "gitlab_exporter_web_idle_connections_closed",
        "Idle connections closed to make room for new ones at the connection limit",
        ConstCounter::new(process.idle_connections_closed),
    );
    if let Some(targets) = process.targets {
        registry.register(
            "gitlab_exporter_probe_targets",
            "Targets of /probe held, each with its cache (at most 4096; the least recently probed go first)",
            ConstGauge::new(i64::try_from(targets).unwrap_or(i64::MAX)),
        );
    }
    let rate_limit = *metrics
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

/// `gitlab_up` and the age of the served data.
fn register_served(registry: &mut Registry, served: Served<'_>) {
    let snapshot = served.snapshot;
    registry.register(
        "gitlab_up",
        "1 when the last collection reached GitLab and was authorized, and GitLab is not leaving calls unanswered for longer than a scrape may wait; else 0",
        ConstGauge::new(i64::from(served.up())),
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
