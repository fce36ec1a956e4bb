//! The `pipelines` family: pipelines on each project's default branch. The latest one's status
//! (`gitlab_project_pipeline_status{status}`), the latest finished one's durations and finish
//! time, and, counted from the exporter's first collection on, the pipelines that reached a
//! final status (`gitlab_project_pipelines_finished_total{status}`) and their durations
//! (`gitlab_project_pipeline_duration_seconds`).
//!
//! Over GraphQL every collection asks, in the batches of 100 projects, each project's 20
//! latest pipelines and its feed of pipelines updated since its window ([`super::events`])
//! began; a pipeline's `updated_at` moves whenever its status does. Both are read on every ref
//! and kept for the default branch here, since one batch cannot filter each project on its own
//! branch. Only a busy project costs a call of its own: one whose feed has more than 20
//! pipelines, or, read from scratch, whose 5 latest are all on other refs (or not finished). Over REST (no
//! durations in GitLab's lists) a project costs three calls per collection and one per
//! pipeline finished since the last.
//!
//! Nothing for projects with CI/CD off for the token (`jobs_enabled`), or without a default
//! branch.

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use serde_json::Value;
use tracing::debug;

use super::events::{
    self, Histogram, Key, Window, encode_histograms, field, gitlab_now, id_of, next_cursor,
};
use super::{Current, Family, Fetched, Interner, Rows};
use crate::gitlab::types::{format_timestamp, parse_timestamp};
use crate::gitlab::{Client, Error, endpoint};

/// The `pipelines` family (see the module's docs).
#[derive(Debug)]
pub(crate) struct Pipelines;

/// The final statuses, in the order of [`Flow::finished_total`].
const FINAL: [&str; 4] = ["success", "failed", "canceled", "skipped"];
/// The statuses of GitLab's `finished` scope: the latest finished pipeline is one of these.
const FINISHED_SCOPE: [&str; 3] = ["success", "failed", "canceled"];

/// The latest pipelines (any ref) a batch asks of each project: enough for the default branch's
/// to be among them, mostly, when the project is read from scratch.
const LATEST_FIRST: usize = 5;

/// The fields read of each pipeline.
const FIELDS: &str = "id ref status duration queuedDuration finishedAt updatedAt";

/// What is exported for one project.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Flow {
    latest: Option<Latest>,
    finished: Option<Finished>,
    /// Pipelines that reached each of [`FINAL`] since the project was first seen.
    finished_total: [u64; 4],
    durations: Histogram,
}

/// The latest pipeline of the default branch.
#[derive(Debug, Clone, PartialEq)]
struct Latest {
    id: u64,
    status: Cow<'static, str>,
}

/// GitLab's pipeline statuses (`Ci::HasStatus::AVAILABLE_STATUSES` and the newer ones), kept
/// without an allocation per project.
const STATUSES: [&str; 13] = [
    "created",
    "waiting_for_resource",
    "preparing",
    "waiting_for_callback",
    "pending",
    "running",
    "success",
    "failed",
    "canceling",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
];

fn status(s: &str) -> Cow<'static, str> {
    match STATUSES.iter().find(|known| **known == s) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(s.to_owned()),
    }
}

/// The latest finished pipeline of the default branch.
#[derive(Debug, Clone, PartialEq)]
struct Finished {
    id: u64,
    duration: Option<f64>,
    queued: Option<f64>,
    finished_at: Option<f64>,
}

/// What is remembered: the values (the counters go on from them), the feed's window, and the
/// branch they are about.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    /// Shared with the exported value, and from one collection to the next while unchanged.
    flow: Arc<Flow>,
    window: Window,
    branch: Arc<str>,
}

/// One pipeline as GitLab lists it (GraphQL node or REST record).
#[derive(Debug, Clone)]
struct Run {
    id: u64,
    reference: Option<String>,
    status: String,
    duration: Option<f64>,
    queued: Option<f64>,
    finished_at: Option<String>,
    updated_at: Option<String>,
}

impl Run {
    fn parse(record: &Value) -> Result<Run, String> {
        let id = id_of(record.get("id")).ok_or("pipeline without a usable id")?;
        let status = field(record, "status", "status")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("pipeline {id}: no status"))?
            .to_ascii_lowercase();
        let text = |rest, graphql| {
            field(record, rest, graphql)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let seconds = |rest, graphql| field(record, rest, graphql).and_then(Value::as_f64);
        Ok(Run {
            id,
            reference: text("ref", "ref"),
            status,
            duration: seconds("duration", "duration"),
            queued: seconds("queued_duration", "queuedDuration"),
            finished_at: text("finished_at", "finishedAt"),
            updated_at: text("updated_at", "updatedAt"),
        })
    }

    fn is_final(&self) -> bool {
        FINAL.contains(&self.status.as_str())
    }

    /// The event of its reaching a final status: when it finished (or, without a finish time,
    /// such as a pipeline skipped before it ran, when it was last updated).
    fn key(&self) -> Option<Key> {
        Key::at(
            self.id,
            self.finished_at.as_deref().or(self.updated_at.as_deref())?,
        )
    }

    fn finished(&self) -> Finished {
        Finished {
            id: self.id,
            duration: self.duration,
            queued: self.queued,
            finished_at: self.finished_at.as_deref().and_then(parse_timestamp),
        }
    }
}

/// The pipelines of the default branch found in one collection.
#[derive(Debug, Default)]
struct Read {
    /// Pipelines whose status may be the latest's (newest lists).
    recent: Vec<Run>,
    /// The feed: pipelines updated since the window began.
    feed: Vec<Run>,
    /// The feed was not read to its end.
    cut: bool,
}

impl Family for Pipelines {
    const ABOUT: &'static str = "pipelines on each project's default branch: latest status and durations, and the pipelines finished since the exporter started (over GraphQL in the listing's batches; over REST, where it costs 3 calls per project and collection, only when asked for by name)";
    const COUNTS_EVENTS: bool = true;
    const REST_BY_DEFAULT: bool = false;
    const PAGE_FIELDS: &'static str = "jobsEnabled repository { rootRef empty }";
    const BATCH_FIELDS: &'static str = "latest: pipelines(first: 5) { \
        nodes { id ref status duration queuedDuration finishedAt updatedAt } } \
        recent: pipelines(updatedAfter: $after, first: 20) { \
        nodes { id ref status duration queuedDuration finishedAt updatedAt } \
        pageInfo { hasNextPage endCursor } }";

    type Value = Arc<Flow>;
    type Memo = Known;
    type Signal = ();

    fn wants_batch(project: &Project, _: &(), _: Option<&Known>) -> bool {
        branch(project).is_some()
    }

    fn batch_after(known: Option<&Known>) -> Option<i64> {
        known.map(|k| k.window.from)
    }

    async fn fetch<'a>(
        current: Current<'a>,
        _: &'a (),
        known: Option<&'a Known>,
    ) -> Result<Fetched<Pipelines>, Error> {
        let project = current.project;
        let Some(branch) = branch(project) else {
            // Counters wait, should CI/CD come back.
            return Ok(Fetched {
                value: None,
                memo: known.cloned(),
            });
        };
        let client = current.client;
        // What the last collection knew still holds, unless the project is read from scratch
        // or its default branch changed.
        let reusable = known.filter(|k| !current.fresh && *k.branch == *branch);
        let (asked_at, read) = match current.batched {
            // Asked in a batch GitLab did not answer: kept, not read call by call.
            None if current.batch_asked => return Err(events::unbatched("pipelines")),
            Some(node) => {
                let asked_at = current.asked_at.unwrap_or_else(|| gitlab_now(client));
                let Some(read) =
                    from_batch(client, project, branch, node, known, reusable.is_none()).await?
                else {
                    debug!(project = project.path_with_namespace, "pipelines not readable");
                    return Ok(Fetched {
                        value: None,
                        memo: known.cloned(),
                    });
                };
                (asked_at, read)
            }
            None => {
                let asked_at = gitlab_now(client);
                match over_rest(client, project.id, branch, known, reusable).await {
                    Ok(read) => (asked_at, read),
                    Err(e) if e.status() == Some(403) => {
                        debug!(project = project.path_with_namespace, error = %e, "pipelines not readable");
                        return Ok(Fetched {
                            value: None,
                            memo: known.cloned(),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let cut = read.cut;
        let mut known = account(
            current.options.pipeline_duration_buckets,
            known,
            reusable,
            branch,
            asked_at,
            read,
        );
        if cut {
            known.window = events::after_cut(client, "pipelines", asked_at);
        }
        Ok(Fetched {
            value: Some(Arc::clone(&known.flow)),
            memo: Some(known),
        })
    }

    fn share_memo(known: &mut Known, strings: &mut Interner) {
        known.branch = strings.get(&known.branch);
    }

    fn encode(rows: Rows<'_, Arc<Flow>>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "gitlab_project_pipeline_status",
            "1 for the status of the latest pipeline on the project's default branch (GitLab's statuses: created, waiting_for_resource, preparing, pending, running, success, failed, canceled, skipped, manual, scheduled, ...).",
            None,
            MetricType::Gauge,
        )?;
        for ([id, path], flow) in rows.iter() {
            if let Some(latest) = &flow.latest {
                family
                    .encode_family(&[id, path, ("status", &latest.status)])?
                    .encode_gauge(&1)?;
            }
        }
        rows.gauge(
            encoder,
            (
                "gitlab_project_pipeline_last_duration_seconds",
                "Running time of the latest finished (success, failed, canceled) pipeline on the default branch, as GitLab computes it.",
                None,
            ),
            |flow| flow.finished.as_ref()?.duration,
        )?;
        rows.gauge(
            encoder,
            (
                "gitlab_project_pipeline_last_queued_duration_seconds",
                "Time the latest finished pipeline on the default branch waited before it started.",
                None,
            ),
            |flow| flow.finished.as_ref()?.queued,
        )?;
        rows.gauge(
            encoder,
            (
                "gitlab_project_pipeline_last_finished_timestamp_seconds",
                "When the latest finished pipeline on the default branch finished (Unix seconds).",
                None,
            ),
            |flow| flow.finished.as_ref()?.finished_at,
        )?;
        let mut family = encoder.encode_descriptor(
            "gitlab_project_pipelines_finished",
            "Pipelines on the default branch that reached a final status (success, failed, canceled, skipped) since the exporter first saw the project: counted from GitLab's feed of updated pipelines, each finish once (a retried pipeline that finishes again counts again); from zero at every restart.",
            None,
            MetricType::Counter,
        )?;
        for ([id, path], flow) in rows.iter() {
            for (status, count) in FINAL.iter().zip(flow.finished_total) {
                family
                    .encode_family(&[id, path, ("status", status)])?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }
        encode_histograms(
            &rows,
            encoder,
            (
                "gitlab_project_pipeline_duration_seconds",
                "Running time of the pipelines counted by gitlab_project_pipelines_finished_total that have one (a pipeline skipped or canceled before it ran has none); buckets by --collector.pipelines.duration-buckets.",
            ),
            |flow| vec![(None, &flow.durations)],
        )
    }
}

use crate::gitlab::types::Project;

/// The default branch whose pipelines are exported: none without CI/CD or without commits.
fn branch(project: &Project) -> Option<&str> {
    if !project.jobs_enabled() || project.empty_repo == Some(true) {
        return None;
    }
    project.default_branch.as_deref()
}

/// The pipelines of a list of project `id`, each bad record costing only itself.
fn runs(client: &Client, endpoint: &'static str, id: u64, records: &[Value]) -> Vec<Run> {
    records
        .iter()
        .filter_map(|r| match Run::parse(r) {
            Ok(run) => Some(run),
            Err(why) => {
                client.bad_record(endpoint, &format!("project {id}: {why}"));
                None
            }
        })
        .collect()
}

/// The counters and values after this collection's read.
fn account(
    buckets: &'static [f64],
    known: Option<&Known>,
    reusable: Option<&Known>,
    branch: &str,
    asked_at: i64,
    read: Read,
) -> Known {
    let keys = || read.feed.iter().filter(|r| r.is_final()).filter_map(Run::key);
    let (mut flow, window) = match known {
        // Seen before: the counters go on.
        Some(known) => {
            let mut window = known.window.clone();
            let new = window.advance(asked_at, keys());
            let mut flow = (*known.flow).clone();
            for key in new {
                let Some(run) = read.feed.iter().find(|r| r.key() == Some(key)) else {
                    continue;
                };
                if let Some(i) = FINAL.iter().position(|s| *s == run.status) {
                    flow.finished_total[i] += 1;
                }
                if let Some(duration) = run.duration {
                    flow.durations.observe(duration);
                }
            }
            (flow, window)
        }
        // First seen: what the feed holds is history.
        None => (
            Flow {
                latest: None,
                finished: None,
                finished_total: [0; 4],
                durations: Histogram::new(buckets),
            },
            Window::start(asked_at, keys()),
        ),
    };
    let mut latest: Option<&Run> = None;
    let mut finished: Option<&Run> = None;
    for run in read.recent.iter().chain(&read.feed) {
        if latest.is_none_or(|l| run.id > l.id) {
            latest = Some(run);
        }
        // Of two records of one pipeline, the one with durations (REST lists have none).
        let newer = |f: &Run| run.id > f.id || (run.id == f.id && f.duration.is_none());
        if FINISHED_SCOPE.contains(&run.status.as_str()) && finished.is_none_or(newer) {
            finished = Some(run);
        }
    }
    let old = reusable.map(|k| &k.flow);
    flow.latest = match (latest, old.and_then(|f| f.latest.as_ref())) {
        (Some(new), Some(old)) if old.id > new.id => Some(old.clone()),
        (Some(new), _) => Some(Latest {
            id: new.id,
            status: status(&new.status),
        }),
        (None, old) => old.cloned(),
    };
    flow.finished = match (finished, old.and_then(|f| f.finished.as_ref())) {
        (Some(new), Some(old)) if old.id > new.id => Some(old.clone()),
        (Some(new), _) => Some(new.finished()),
        (None, old) => old.cloned(),
    };
    // Unchanged: the same allocation as last time.
    let flow = match known {
        Some(known) if *known.flow == flow => Arc::clone(&known.flow),
        _ => Arc::new(flow),
    };
    Known {
        flow,
        window,
        branch: known
            .filter(|k| *k.branch == *branch)
            .map_or_else(|| branch.into(), |k| Arc::clone(&k.branch)),
    }
}

/// Pipelines of the default branch from the project's batch node; `None` when GitLab does not
/// let the token read them. `scratch`: nothing remembered holds, so when the 5 latest are all
/// on other refs the branch's latest are asked for alone.
async fn from_batch(
    client: &Client,
    project: &Project,
    branch: &str,
    node: &Value,
    known: Option<&Known>,
    scratch: bool,
) -> Result<Option<Read>, Error> {
    let (Some(latest), Some(recent)) = (
        node.get("latest").filter(|v| !v.is_null()),
        node.get("recent").filter(|v| !v.is_null()),
    ) else {
        return Ok(None);
    };
    let on_branch = |nodes: &[Value]| -> Vec<Run> {
        let mut runs = runs(client, endpoint::GRAPHQL, project.id, nodes);
        runs.retain(|r| r.reference.as_deref() == Some(branch));
        runs
    };
    let latest_nodes = events::nodes(Some(latest));
    let mut read = Read {
        recent: on_branch(latest_nodes),
        feed: on_branch(events::nodes(Some(recent))),
        cut: false,
    };
    if next_cursor(recent).is_some() {
        // More than a page of updates: the branch's feed alone, all of it.
        let after = events::feed_from(client, known.map(|k| &k.window));
        let query = format!(
            "query($path: ID!, $ref: String, $after: Time, $cursor: String) {{ \
             project(fullPath: $path) {{ feed: pipelines(ref: $ref, updatedAfter: $after, \
             first: 100, after: $cursor) {{ nodes {{ {FIELDS} }} \
             pageInfo {{ hasNextPage endCursor }} }} }} }}"
        );
        let walked = events::walk_project(
            client,
            "pipelines_feed",
            &query,
            serde_json::json!({
                "path": project.path_with_namespace,
                "ref": branch,
                "after": format_timestamp(after),
            }),
            "feed",
        )
        .await?;
        read.feed = on_branch(&walked.records);
        read.cut = !walked.complete;
    }
    let all_latest_elsewhere = read.recent.is_empty() && latest_nodes.len() >= LATEST_FIRST;
    let no_finished = !read
        .recent
        .iter()
        .chain(&read.feed)
        .any(|r| FINISHED_SCOPE.contains(&r.status.as_str()));
    if scratch && (all_latest_elsewhere || (no_finished && latest_nodes.len() >= LATEST_FIRST)) {
        let query = format!(
            "query($path: ID!, $ref: String) {{ project(fullPath: $path) {{ \
             latest: pipelines(ref: $ref, first: 1) {{ nodes {{ {FIELDS} }} }} \
             finished: pipelines(ref: $ref, scope: FINISHED, first: 1) {{ nodes {{ {FIELDS} }} }} \
             }} }}"
        );
        let answer = client
            .graphql(
                "pipelines_latest",
                &query,
                serde_json::json!({ "path": project.path_with_namespace, "ref": branch }),
            )
            .await?
            .unless_timed_out("pipelines_latest")?;
        for alias in ["latest", "finished"] {
            if let Some(connection) = answer.data.pointer(&format!("/project/{alias}")) {
                read.recent.extend(on_branch(events::nodes(Some(connection))));
            }
        }
    }
    Ok(Some(read))
}

/// Pipelines of the default branch over REST: the latest, the latest finished (its durations
/// from its own record, unless it is the one remembered) and the feed (each pipeline that
/// reached a final status and is not counted yet read on its own: lists have no durations).
async fn over_rest(
    client: &Client,
    id: u64,
    branch: &str,
    known: Option<&Known>,
    reusable: Option<&Known>,
) -> Result<Read, Error> {
    let list = |extra: Vec<(&'static str, String)>| {
        let mut query = vec![("ref", branch.to_owned())];
        query.extend(extra);
        client.get::<Vec<Value>>(endpoint::PIPELINES, format!("/projects/{id}/pipelines"), query)
    };
    let after = events::feed_from(client, known.map(|k| &k.window));
    let (latest, finished, feed) = futures::join!(
        list(vec![("per_page", "1".to_owned())]),
        list(vec![
            ("scope", "finished".to_owned()),
            ("per_page", "1".to_owned())
        ]),
        events::rest_list(
            client,
            endpoint::PIPELINES,
            format!("/projects/{id}/pipelines"),
            vec![
                ("ref", branch.to_owned()),
                ("updated_after", format_timestamp(after)),
                ("order_by", "updated_at".to_owned()),
                ("sort", "asc".to_owned()),
            ],
        ),
    );
    let mut recent = runs(client, endpoint::PIPELINES, id, &latest?.body);
    let finished = runs(client, endpoint::PIPELINES, id, &finished?.body);
    let feed = feed?;
    let cut = !feed.complete;
    let feed = runs(client, endpoint::PIPELINES, id, &feed.records);
    let detail = |pipeline: u64| async move {
        let reply = client
            .get::<Value>(
                endpoint::PIPELINE,
                format!("/projects/{id}/pipelines/{pipeline}"),
                Vec::new(),
            )
            .await?;
        Run::parse(&reply.body).map_err(|detail| Error::Decode {
            endpoint: endpoint::PIPELINE,
            detail,
        })
    };
    let mut last = None;
    if let Some(run) = finished.into_iter().next() {
        let remembered = reusable
            .and_then(|k| k.flow.finished.as_ref())
            .is_some_and(|f| f.id == run.id);
        if !remembered {
            let run = detail(run.id).await?;
            recent.push(run.clone());
            last = Some(run);
        }
    }
    let Some(known) = known else {
        // First seen: the feed is history, and its list records are enough to know it again.
        return Ok(Read { recent, feed, cut });
    };
    let mut new = Vec::new();
    for run in feed {
        if known.window.seen_id(run.id) {
            // Counted already (a pipeline retried and finished again within the window is
            // counted once over REST).
            continue;
        }
        if !run.is_final() {
            new.push(run);
            continue;
        }
        new.push(match &last {
            Some(last) if last.id == run.id => last.clone(),
            _ => detail(run.id).await?,
        });
    }
    Ok(Read {
        recent,
        feed: new,
        cut,
    })
}
