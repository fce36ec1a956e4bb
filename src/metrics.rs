//! The exporter's own metrics, and the two text formats (OpenMetrics 1.0 or Prometheus text
//! 0.0.4) a scrape negotiates. A scrape is a snapshot's families (encoded once per collection,
//! see [`crate::collect::Snapshot::encoded`]) followed by these metrics.
//!
//! The exporter's own metrics live for the whole process (API calls by endpoint and code,
//! collections) or are computed per scrape (age of the served data); the GitLab data is encoded
//! once per collection by [`crate::collect::Snapshot`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
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

/// The exporter's own long-lived metrics.
#[derive(Debug, Clone, Default)]
pub struct ExporterMetrics {
    /// Updated by the GitLab client.
    pub api: ApiCounters,
    collections: Family<CollectionLabels, Counter>,
}

impl ExporterMetrics {
    /// Counts a finished collection.
    pub fn collection_finished(&self, snapshot: &Snapshot) {
        let result = if snapshot.data.projects.is_ok() {
            "success"
        } else {
            "failure"
        };
        self.collections
            .get_or_create(&CollectionLabels { result })
            .inc();
    }

    /// The exporter's own metrics, as of now, in `format`: what a scrape appends to the
    /// snapshot's families (with the final `# EOF` in OpenMetrics).
    pub fn render(&self, snapshot: &Snapshot, format: Format) -> String {
        let mut registry = Registry::default();
        registry.register(
            "gitlab_exporter_api_requests",
            "GitLab API answers by route template and HTTP status code",
            self.api.requests.clone(),
        );
        registry.register(
            "gitlab_exporter_api_errors",
            "GitLab API calls that got no usable answer, by route template and reason (timeout, transport, decode)",
            self.api.errors.clone(),
        );
        registry.register(
            "gitlab_exporter_collections",
            "Collections run, by result (success: GitLab was listed; failure: gitlab_up was 0)",
            self.collections.clone(),
        );
        registry.register_with_unit(
            "gitlab_exporter_cache_age",
            "Age of the served data: time since the collection that produced it finished",
            Unit::Seconds,
            ConstGauge::new(snapshot.finished.elapsed().as_secs_f64()),
        );
        registry.register(
            "gitlab_exporter_build",
            "Version of the exporter",
            Info::new(vec![("version", crate::VERSION)]),
        );
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
}
