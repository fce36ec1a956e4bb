//! The exporter's own counters that live for the whole process (API calls by endpoint and code,
//! collections, scrapes, refused requests) and the recent collections' history for the status
//! page; [`crate::render`] encodes them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::collect::Snapshot;
use crate::gitlab::ApiCounters;

/// Labels of `gitlab_exporter_collections_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CollectionLabels {
    /// `success` or `failure`.
    result: &'static str,
}

/// Labels of `gitlab_exporter_collections_aborted_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AbortedLabels {
    /// `max_projects` or `timeout`.
    limit: &'static str,
}

/// Labels of `gitlab_exporter_scrapes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ScrapeLabels {
    /// `cached`, `collected` or `timeout`.
    result: &'static str,
}

/// Labels of `gitlab_exporter_web_refused_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusedLabels {
    /// `unauthorized`, `auth_busy` or `rate_limited`.
    reason: &'static str,
}

/// The exporter's own long-lived metrics.
#[derive(Debug, Clone, Default)]
pub struct ExporterMetrics {
    /// Updated by the GitLab client.
    pub api: ApiCounters,
    pub(crate) collections: Family<CollectionLabels, Counter>,
    pub(crate) aborted: Family<AbortedLabels, Counter>,
    pub(crate) scrapes: Family<ScrapeLabels, Counter>,
    pub(crate) refused: Family<RefusedLabels, Counter>,
    /// The collections of the last hour, oldest first.
    history: Arc<Mutex<VecDeque<CollectionPoint>>>,
}

/// One collection, for the status page's chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollectionPoint {
    /// When it finished.
    pub at: SystemTime,
    /// Its wall time.
    pub duration: Duration,
    /// Its API calls.
    pub api_calls: u64,
    /// Whether it succeeded.
    pub success: bool,
}

/// How far back the history goes.
const HISTORY: Duration = Duration::from_secs(3600);
/// Most collections held (one per second for an hour).
const HISTORY_MAX: usize = 3600;

impl ExporterMetrics {
    /// Counts a scrape by where its data came from.
    pub fn scraped(&self, result: &'static str) {
        self.scrapes.get_or_create(&ScrapeLabels { result }).inc();
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
        let now = SystemTime::now();
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.push_back(CollectionPoint {
            at: now,
            duration: snapshot.data.duration,
            api_calls: snapshot.data.api_calls,
            success: snapshot.is_success(),
        });
        while history.len() > HISTORY_MAX
            || history
                .front()
                .is_some_and(|p| now.duration_since(p.at).unwrap_or_default() > HISTORY)
        {
            history.pop_front();
        }
    }

    /// The collections of the last hour, oldest first.
    pub fn recent_collections(&self) -> Vec<CollectionPoint> {
        let now = SystemTime::now();
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history
            .iter()
            .filter(|p| now.duration_since(p.at).unwrap_or_default() <= HISTORY)
            .copied()
            .collect()
    }
}
