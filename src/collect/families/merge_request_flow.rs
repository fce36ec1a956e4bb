//! The `merge_request_flow` family: merge requests merged since the exporter first saw each
//! project (`gitlab_project_merge_requests_merged_total`), their time from creation to merge
//! (`gitlab_project_merge_request_time_to_merge_seconds`), and the creation time of the oldest
//! open merge request (`gitlab_project_merge_request_oldest_open_timestamp_seconds`).
//!
//! Over GraphQL every collection asks, in the batches of 100 projects, each project's merge
//! requests merged since its window ([`super::events`]) began (`mergedAfter`, on GitLab's
//! clock) and its oldest open one; a project with more than 20 merges in its window reads the
//! rest on its own. Over REST a project costs two calls per collection: merged merge requests
//! updated since the window began (a merge updates a merge request), and the oldest open one.
//!
//! Nothing for projects whose merge requests are off or not readable with the token.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use serde_json::Value;
use tracing::debug;

use super::events::{
    self, Histogram, Key, Window, encode_histograms, field, gitlab_now, id_of, next_cursor,
};
use super::merge_requests::MergeRequests;
use super::{Current, Family, Fetched, Rows};
use crate::gitlab::types::{Project, format_timestamp, parse_timestamp};
use crate::gitlab::{Client, Error, endpoint};

/// The `merge_request_flow` family (see the module's docs).
#[derive(Debug)]
pub(crate) struct MergeRequestFlow;

/// What is exported for one project.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Flow {
    merged_total: u64,
    time_to_merge: Histogram,
    /// Unix seconds; `None` when no merge request is open.
    oldest_open: Option<f64>,
}

/// What is remembered: the values (the counter goes on from them) and the feed's window.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    /// Shared with the exported value, and from one collection to the next while unchanged.
    flow: Arc<Flow>,
    window: Window,
}

/// A merge of the feed: which merge request, and its creation and merge times.
#[derive(Debug, Clone, Copy)]
struct Merge {
    key: Key,
    created_at: f64,
}

impl Merge {
    fn parse(record: &Value) -> Result<Merge, String> {
        let iid = id_of(record.get("iid")).ok_or("merge request without a usable iid")?;
        let time = |rest, graphql| {
            field(record, rest, graphql)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("merge request !{iid}: no {rest}"))
        };
        let merged_at = time("merged_at", "mergedAt")?;
        let key = Key::at(iid, merged_at).ok_or_else(|| format!("merge request !{iid}: bad merged_at"))?;
        let created_at = parse_timestamp(time("created_at", "createdAt")?)
            .ok_or_else(|| format!("merge request !{iid}: bad created_at"))?;
        Ok(Merge { key, created_at })
    }

    fn time_to_merge(&self) -> f64 {
        (self.key.seconds() - self.created_at).max(0.0)
    }
}

/// The merge requests found in one collection.
#[derive(Debug, Default)]
struct Read {
    merged: Vec<Merge>,
    oldest_open: Option<f64>,
    /// The merges were not read to their end.
    cut: bool,
}

impl Family for MergeRequestFlow {
    const ABOUT: &'static str = "merge requests merged since the exporter started, their time to merge, and the oldest open one (over GraphQL in the listing's batches; over REST, where it costs 2 calls per project and collection, only when asked for by name)";
    const COUNTS_EVENTS: bool = true;
    const REST_BY_DEFAULT: bool = false;
    const PAGE_FIELDS: &'static str = MergeRequests::PAGE_FIELDS;
    const BATCH_FIELDS: &'static str = "merged: mergeRequests(state: merged, \
        mergedAfter: $after, sort: MERGED_AT_ASC, first: 20) { \
        nodes { iid createdAt mergedAt } pageInfo { hasNextPage endCursor } } \
        oldestOpen: mergeRequests(state: opened, sort: CREATED_ASC, first: 1) { \
        nodes { iid createdAt } }";

    type Value = Arc<Flow>;
    type Memo = Known;
    type Signal = ();

    /// Only for projects listed over GraphQL, which says whether the token may read them.
    fn wants_batch(project: &Project, _: &(), _: Option<&Known>) -> bool {
        project.merge_requests_readable == Some(true) && project.merge_requests_enabled()
    }

    fn batch_after(known: Option<&Known>) -> Option<i64> {
        known.map(|k| k.window.from)
    }

    async fn fetch<'a>(
        current: Current<'a>,
        _: &'a (),
        known: Option<&'a Known>,
    ) -> Result<Fetched<MergeRequestFlow>, Error> {
        let project = current.project;
        let client = current.client;
        let unreadable = || Fetched {
            value: None,
            // The counter waits, should the merge requests come back.
            memo: known.cloned(),
        };
        if !project.merge_requests_enabled() || project.merge_requests_readable == Some(false) {
            return Ok(unreadable());
        }
        let (asked_at, read) = match current.batched {
            // Asked in a batch GitLab did not answer: kept, not read call by call.
            None if current.batch_asked => {
                return Err(events::unbatched("merge_request_flow"));
            }
            Some(node) => (
                current.asked_at.unwrap_or_else(|| gitlab_now(client)),
                from_batch(client, project, node, known).await?,
            ),
            None => {
                let asked_at = gitlab_now(client);
                match over_rest(client, project.id, known).await {
                    Ok(read) => (asked_at, read),
                    Err(e) if e.status() == Some(403) => {
                        debug!(project = project.path_with_namespace, error = %e, "merge requests not readable");
                        return Ok(unreadable());
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let keys = || read.merged.iter().map(|m| m.key);
        let known = match known {
            Some(known) => {
                let mut window = known.window.clone();
                let mut flow = (*known.flow).clone();
                for key in window.advance(asked_at, keys()) {
                    if let Some(merge) = read.merged.iter().find(|m| m.key == key) {
                        flow.merged_total += 1;
                        flow.time_to_merge.observe(merge.time_to_merge());
                    }
                }
                flow.oldest_open = read.oldest_open;
                Known {
                    // Unchanged: the same allocation as last time.
                    flow: if flow == *known.flow {
                        Arc::clone(&known.flow)
                    } else {
                        Arc::new(flow)
                    },
                    window,
                }
            }
            None => Known {
                flow: Arc::new(Flow {
                    merged_total: 0,
                    time_to_merge: Histogram::new(current.options.time_to_merge_buckets),
                    oldest_open: read.oldest_open,
                }),
                window: Window::start(asked_at, keys()),
            },
        };
        let mut known = known;
        if read.cut {
            known.window = events::after_cut(client, "merge_request_flow", asked_at);
        }
        Ok(Fetched {
            value: Some(Arc::clone(&known.flow)),
            memo: Some(known),
        })
    }

    fn encode(rows: Rows<'_, Arc<Flow>>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "gitlab_project_merge_requests_merged",
            "Merge requests merged since the exporter first saw the project, each once, from GitLab's merge times (its clock, with an overlap between collections); from zero at every restart.",
            None,
            MetricType::Counter,
        )?;
        for ([id, path], flow) in rows.iter() {
            family
                .encode_family(&[id, path])?
                .encode_counter::<NoLabelSet, _, u64>(&flow.merged_total, None)?;
        }
        encode_histograms(
            &rows,
            encoder,
            (
                "gitlab_project_merge_request_time_to_merge_seconds",
                "Creation to merge of the merge requests counted by gitlab_project_merge_requests_merged_total; buckets by --collector.merge_request_flow.time-to-merge-buckets.",
            ),
            |flow| vec![(None, &flow.time_to_merge)],
        )?;
        rows.gauge(
            encoder,
            (
                "gitlab_project_merge_request_oldest_open_timestamp_seconds",
                "When the oldest open merge request of the project was created (Unix seconds); absent when none is open.",
                None,
            ),
            |flow| flow.oldest_open,
        )
    }
}

/// Parses the merges of a list, each bad record costing only itself.
fn merges(client: &Client, id: u64, endpoint: &'static str, records: &[Value]) -> Vec<Merge> {
    records
        .iter()
        .filter_map(|r| match Merge::parse(r) {
            Ok(merge) => Some(merge),
            Err(why) => {
                client.bad_record(endpoint, &format!("project {id}: {why}"));
                None
            }
        })
        .collect()
}

/// The creation time of the first record of a list, if it has one.
fn first_created(records: &[Value]) -> Option<f64> {
    records
        .first()
        .and_then(|r| field(r, "created_at", "createdAt"))
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
}

/// The merges and the oldest open merge request from the project's batch node; more than a
/// page of merges is read on its own.
async fn from_batch(
    client: &Client,
    project: &Project,
    node: &Value,
    known: Option<&Known>,
) -> Result<Read, Error> {
    let Some(merged) = node.get("merged").filter(|v| !v.is_null()) else {
        // Not answered: the window stays.
        return Err(events::unbatched("merge_request_flow"));
    };
    let walked;
    let mut records = events::nodes(Some(merged));
    let mut cut = false;
    if next_cursor(merged).is_some() {
        let after = events::feed_from(client, known.map(|k| &k.window));
        walked = events::walk_project(
            client,
            "merge_requests_merged",
            "query($path: ID!, $after: Time, $cursor: String) { project(fullPath: $path) { \
             merged: mergeRequests(state: merged, mergedAfter: $after, sort: MERGED_AT_ASC, \
             first: 100, after: $cursor) { nodes { iid createdAt mergedAt } \
             pageInfo { hasNextPage endCursor } } } }",
            serde_json::json!({
                "path": project.path_with_namespace,
                "after": format_timestamp(after),
            }),
            "merged",
        )
        .await?;
        cut = !walked.complete;
        records = &walked.records;
    }
    Ok(Read {
        merged: merges(client, project.id, endpoint::GRAPHQL, records),
        oldest_open: first_created(events::nodes(node.get("oldestOpen"))),
        cut,
    })
}

/// The merges and the oldest open merge request over REST.
async fn over_rest(client: &Client, id: u64, known: Option<&Known>) -> Result<Read, Error> {
    let after = events::feed_from(client, known.map(|k| &k.window));
    let path = format!("/projects/{id}/merge_requests");
    let (merged, oldest) = futures::join!(
        events::rest_list(
            client,
            endpoint::MERGE_REQUESTS,
            path.clone(),
            vec![
                ("state", "merged".to_owned()),
                ("updated_after", format_timestamp(after)),
                ("order_by", "updated_at".to_owned()),
                ("sort", "asc".to_owned()),
            ],
        ),
        client.get::<Vec<Value>>(
            endpoint::MERGE_REQUESTS,
            path,
            vec![
                ("state", "opened".to_owned()),
                ("order_by", "created_at".to_owned()),
                ("sort", "asc".to_owned()),
                ("per_page", "1".to_owned()),
            ],
        ),
    );
    let merged = merged?;
    Ok(Read {
        merged: merges(client, id, endpoint::MERGE_REQUESTS, &merged.records),
        oldest_open: first_created(&oldest?.body),
        cut: !merged.complete,
    })
}
