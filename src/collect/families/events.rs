//! What the families that count events share (pipelines, merge-request flow): a project's feed
//! window on GitLab's clock with its overlap, the events already counted in it, and cumulative
//! histograms.
//!
//! A feed asks GitLab for the events after a point of GitLab's own clock (`updatedAfter`,
//! `mergedAfter`). Each project's window starts where its last successful read ended, minus
//! [`OVERLAP`] (GitLab's clocks differ between nodes, and an event is stamped before it is
//! committed); the events of that margin that were already counted are remembered and
//! counted once. A project seen for the first time counts nothing: what its first feed holds
//! is history. A read that fails leaves the window where it was, so the next one reaches back
//! to it: nothing is lost, nothing counted twice.

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Rows;
use crate::collect::memory::OVERLAP;
use crate::gitlab::types::{Page, host_time, parse_timestamp};
use crate::gitlab::{Client, Error, endpoint};

/// `--collector.pipelines.duration-buckets`: 1, 5, 10, 30 and 60 minutes.
pub(crate) const PIPELINE_DURATION_BUCKETS: &[f64] = &[60.0, 300.0, 600.0, 1800.0, 3600.0];
/// `--collector.merge_request_flow.time-to-merge-buckets`: 1 hour, 1 day, 3 days, 1 week and 4
/// weeks.
pub(crate) const TIME_TO_MERGE_BUCKETS: &[f64] =
    &[3600.0, 86_400.0, 259_200.0, 604_800.0, 2_419_200.0];

/// `--collector.deployments.lead-time-buckets`: 1 hour, 4 hours, 1 day, 3 days and 1 week.
pub(crate) const LEAD_TIME_BUCKETS: &[f64] = &[3600.0, 14_400.0, 86_400.0, 259_200.0, 604_800.0];

/// One event of a feed: what it is (a pipeline, a merge request) and when it happened, by
/// GitLab's clock in milliseconds. A pipeline that finishes again (retried) is a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) id: u64,
    pub(crate) at_ms: i64,
}

impl Key {
    /// The key of event `id` at the RFC 3339 time `at`, if it parses.
    pub(crate) fn at(id: u64, at: &str) -> Option<Key> {
        let seconds = parse_timestamp(at)?;
        Some(Key {
            id,
            at_ms: (seconds * 1000.0).round() as i64,
        })
    }

    pub(crate) fn seconds(self) -> f64 {
        self.at_ms as f64 / 1000.0
    }
}

/// Where one project's feed stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    /// GitLab's clock (Unix seconds): the next feed asks for the events after this, and
    /// events before it are not counted (they were, or they are history).
    pub(crate) from: i64,
    /// The events at or after `from` already counted (or seen at the start).
    seen: Vec<Key>,
}

impl Window {
    /// A window from `from` on, with nothing counted yet: for a feed not asked at first sight,
    /// whose events before `from` are history.
    pub(crate) fn from(from: i64) -> Window {
        Window {
            from,
            seen: Vec::new(),
        }
    }

    /// The window of a project seen for the first time, by a feed asked at `asked_at`
    /// (GitLab's clock): what it holds is history, counted by no one.
    pub(crate) fn start(asked_at: i64, events: impl IntoIterator<Item = Key>) -> Window {
        let mut window = Window {
            from: overlapped(asked_at),
            seen: Vec::new(),
        };
        let from_ms = window.from * 1000;
        window.seen = events.into_iter().filter(|k| k.at_ms >= from_ms).collect();
        window.seen.sort_unstable_by_key(|k| (k.at_ms, k.id));
        window.seen.dedup();
        window
    }

    /// The events of a feed asked at `asked_at` that are not counted yet (each once, oldest
    /// first); the window then moves on to `asked_at` minus the overlap.
    pub(crate) fn advance(
        &mut self,
        asked_at: i64,
        events: impl IntoIterator<Item = Key>,
    ) -> Vec<Key> {
        let from_ms = self.from * 1000;
        let mut new: Vec<Key> = events
            .into_iter()
            .filter(|k| k.at_ms >= from_ms && !self.seen.contains(k))
            .collect();
        new.sort_unstable_by_key(|k| (k.at_ms, k.id));
        new.dedup();
        self.seen.extend_from_slice(&new);
        self.from = self.from.max(overlapped(asked_at));
        let from_ms = self.from * 1000;
        self.seen.retain(|k| k.at_ms >= from_ms);
        new
    }

    /// Whether an event of `id` is among those already counted in the window.
    pub(crate) fn seen_id(&self, id: u64) -> bool {
        self.seen.iter().any(|k| k.id == id)
    }
}

/// A cumulative histogram of one project: counts per bucket (the last one `+Inf`), sum and count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    counts: Box<[u64]>,
    sum: f64,
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1].into_boxed_slice(),
            sum: 0.0,
        }
    }

    pub(crate) fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|le| value <= *le)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, count)` per bucket, not cumulated, as prometheus-client takes them.
    fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect()
    }
}

/// Encodes a histogram family, one histogram per project for which `value` has one with an
/// observation, with the extra labels it gives. A histogram appears with its first observation,
/// as a labelled histogram of a client library does: the buckets of the many projects with no
/// event since the exporter started would be most of the exposition, all zeros.
pub(crate) fn encode_histograms<'a, V: 'a>(
    rows: &Rows<'a, V>,
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    value: impl Fn(&'a V) -> Vec<(Option<(&'static str, &'a str)>, &'a Histogram)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for ([id, path], v) in rows.iter() {
        for (extra, histogram) in value(v) {
            if histogram.count() == 0 {
                continue;
            }
            let buckets = histogram.buckets();
            let (sum, count) = (histogram.sum, histogram.count());
            match extra {
                Some(label) => family
                    .encode_family(&[id, path, label])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?,
                None => family
                    .encode_family(&[id, path])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?,
            }
        }
    }
    Ok(())
}

/// Parses a bucket flag: upper bounds in seconds, comma-separated, strictly increasing, finite
/// and positive (the `+Inf` bucket is always there).
pub(crate) fn parse_buckets(s: &str) -> Result<&'static [f64], String> {
    let mut bounds = Vec::new();
    for part in s.split(',').map(str::trim) {
        let value: f64 = part
            .parse()
            .map_err(|_| format!("`{part}` is not a number of seconds"))?;
        if !value.is_finite() || value <= 0.0 {
            return Err(format!("`{part}`: bounds are finite and positive"));
        }
        if bounds.last().is_some_and(|last| value <= *last) {
            return Err(format!("`{part}`: bounds must increase"));
        }
        bounds.push(value);
    }
    Ok(Box::leak(bounds.into_boxed_slice()))
}

/// Where a window opened at `t` (GitLab's clock) starts: [`OVERLAP`] before it.
pub(crate) fn overlapped(t: i64) -> i64 {
    t - OVERLAP.as_secs() as i64
}

/// Where a project's feed starts: its window's start, or, for a project seen for the first
/// time, the overlap before GitLab's clock now.
pub(crate) fn feed_from(client: &Client, window: Option<&Window>) -> i64 {
    window.map_or_else(|| overlapped(gitlab_now(client)), |w| w.from)
}

/// The `nodes` of a connection (none when it is absent or not a list).
pub(crate) fn nodes(connection: Option<&Value>) -> &[Value] {
    connection
        .and_then(|c| c.get("nodes"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// GitLab's clock now, as its last answer's `Date` said (this host's clock before any).
pub(crate) fn gitlab_now(client: &Client) -> i64 {
    client.gitlab_time().unwrap_or_else(host_time)
}

/// Most pages a walk of one project's feed reads: 10,000 events between two collections.
const MAX_FEED_PAGES: usize = 100;

/// The records of a walk, and whether it read them all: a walk stops after
/// [`MAX_FEED_PAGES`] pages (more than 10,000 events between two collections).
#[derive(Debug)]
pub(crate) struct Feed<T = Value> {
    pub(crate) records: Vec<T>,
    pub(crate) complete: bool,
}

/// The window after a feed that was not read to its end (`cut`): counting resumes from now
/// (what was not read is not counted), logged, rather than asking for an ever longer range at
/// every collection.
pub(crate) fn after_cut(client: &Client, what: &str, asked_at: i64) -> Window {
    tracing::warn!(
        feed = what,
        "more than {MAX_FEED_PAGES} pages of events since the last collection: counting goes on from now, the rest is not counted"
    );
    client.bad_record(
        endpoint::GRAPHQL,
        &format!("{what}: feed cut after {MAX_FEED_PAGES} pages"),
    );
    Window::start(asked_at, [])
}

/// The error of a project's flow family whose GraphQL batch was asked but not answered: its
/// values and window are kept, and the next collection counts what happened meanwhile (a call
/// per project over REST instead would cost what the batch spares).
pub(crate) fn unbatched(family: &str) -> Error {
    Error::Decode {
        endpoint: endpoint::GRAPHQL,
        detail: format!(
            "{family}: GraphQL did not answer the project's batch; its values are kept until the next collection"
        ),
    }
}

/// The nodes of one project's connection over GraphQL, page after page: `query` selects it
/// under `project(fullPath: $path)` at `connection` (an alias) with `first: 100, after:
/// $cursor`, and `nodes` and `pageInfo { hasNextPage endCursor }`. A project GitLab no longer
/// answers (renamed, moved, access lost since the listing) is an error: the window stays.
pub(crate) async fn walk_project(
    client: &Client,
    operation: &'static str,
    query: &str,
    mut variables: Value,
    connection: &str,
) -> Result<Feed, Error> {
    let mut nodes = Vec::new();
    for _ in 0..MAX_FEED_PAGES {
        let answer = client
            .graphql(operation, query, variables.clone())
            .await?
            .unless_timed_out(operation)?;
        if let Some(e) = answer.errors.first() {
            return Err(Error::Decode {
                endpoint: endpoint::GRAPHQL,
                detail: format!("{operation}: {}", crate::redact::log_line(&e.message, 300)),
            });
        }
        let Some(page) = answer
            .data
            .pointer(&format!("/project/{connection}"))
            .filter(|v| !v.is_null())
        else {
            return Err(Error::Decode {
                endpoint: endpoint::GRAPHQL,
                detail: format!("{operation}: the project or its {connection} is not answered"),
            });
        };
        nodes.extend(
            page.get("nodes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .cloned(),
        );
        match next_cursor(page) {
            Some(cursor) => variables["cursor"] = cursor.into(),
            None => {
                return Ok(Feed {
                    records: nodes,
                    complete: true,
                });
            }
        }
    }
    Ok(Feed {
        records: nodes,
        complete: false,
    })
}

/// The cursor of the next page of a connection, when `pageInfo` says there is one.
pub(crate) fn next_cursor(connection: &Value) -> Option<&str> {
    let info = connection.get("pageInfo")?;
    if info.get("hasNextPage").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    info.get("endCursor").and_then(Value::as_str)
}

/// Every record of a REST list, page after page (`per_page=100`), up to GitLab's own last page
/// or [`MAX_FEED_PAGES`], each decoded as a `T` (only the fields it names are kept); a record
/// that cannot be costs only itself (logged and counted).
pub(crate) async fn rest_list<T: DeserializeOwned + Send + 'static>(
    client: &Client,
    endpoint: &'static str,
    path: String,
    query: Vec<(&'static str, String)>,
) -> Result<Feed<T>, Error> {
    let mut records = Vec::new();
    let mut page = 1u64;
    for _ in 0..MAX_FEED_PAGES {
        let mut query = query.clone();
        query.push(("per_page", "100".to_owned()));
        query.push(("page", page.to_string()));
        let reply = client.get::<Page<T>>(endpoint, path.clone(), query).await?;
        for why in &reply.body.dropped {
            client.bad_record(endpoint, why);
        }
        let empty = reply.body.items.is_empty() && reply.body.dropped.is_empty();
        records.extend(reply.body.items);
        match reply.page.next_page {
            Some(next) if next > page && !empty => page = next,
            _ => {
                return Ok(Feed {
                    records,
                    complete: true,
                });
            }
        }
    }
    Ok(Feed {
        records,
        complete: false,
    })
}

/// A GraphQL or REST id: a number, a numeric string or a global id (`gid://gitlab/X/N`).
pub(crate) fn id_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s
            .parse()
            .ok()
            .or_else(|| crate::gitlab::graphql::gid_number(s)),
        _ => None,
    }
}

/// A field of a REST (`snake_case`) or GraphQL (`camelCase`) record.
pub(crate) fn field<'a>(record: &'a Value, rest: &str, graphql: &str) -> Option<&'a Value> {
    record
        .get(graphql)
        .or_else(|| record.get(rest))
        .filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u64, at: i64) -> Key {
        Key {
            id,
            at_ms: at * 1000,
        }
    }

    #[test]
    fn a_first_feed_is_history_and_an_overlap_counts_once() {
        let mut window = Window::start(10_000, [key(1, 9_990), key(2, 9_000)]);
        assert_eq!(window.from, 10_000 - 120);
        // The next feed reaches back over the overlap: event 1 again, and a new one.
        let new = window.advance(10_060, [key(1, 9_990), key(3, 10_030)]);
        assert_eq!(new, vec![key(3, 10_030)]);
        // And again, overlapping both.
        let new = window.advance(10_120, [key(3, 10_030), key(4, 10_100), key(4, 10_100)]);
        assert_eq!(new, vec![key(4, 10_100)]);
        // A retried pipeline finishes again: a new event.
        let new = window.advance(10_200, [key(4, 10_100), key(4, 10_190)]);
        assert_eq!(new, vec![key(4, 10_190)]);
        // An event older than the window (touched again long after) is not counted.
        assert!(window.advance(10_300, [key(9, 5_000)]).is_empty());
    }

    #[test]
    fn a_window_never_moves_back() {
        let mut window = Window::start(10_000, []);
        // A feed asked by an earlier clock (another GitLab node) keeps the window where it is.
        assert_eq!(window.advance(9_000, [key(1, 9_950)]), vec![key(1, 9_950)]);
        assert_eq!(window.from, 10_000 - 120);
        assert!(window.advance(9_500, [key(1, 9_950)]).is_empty());
    }

    #[test]
    fn histograms_are_cumulative_by_bound() {
        let mut h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 5.0, 11.0] {
            h.observe(v);
        }
        assert_eq!(h.buckets(), vec![(1.0, 2), (10.0, 1), (f64::INFINITY, 1)]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum, 17.5);
    }

    #[test]
    fn bucket_flags() {
        assert_eq!(
            parse_buckets("60, 300,3600").unwrap(),
            &[60.0, 300.0, 3600.0]
        );
        assert!(parse_buckets("60,60").unwrap_err().contains("increase"));
        assert!(parse_buckets("x").unwrap_err().contains("not a number"));
        assert!(parse_buckets("-1").unwrap_err().contains("positive"));
        assert!(parse_buckets("inf").is_err());
    }
}
