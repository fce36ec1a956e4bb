//! The GraphQL path of a collection: the listing's page queries, to which every enabled family
//! adds the project fields it reads ([`super::families::Family::PAGE_FIELDS`]), and the batched
//! queries (`projects(ids:)`) of the families whose data costs GitLab work per project
//! ([`super::families::Family::BATCH_FIELDS`]: merge-request counts), with page and batch sizes
//! that adapt to what GitLab accepts.
//!
//! Sizes: a query refused as too complex, timed out, or failed with a 5xx after its retries is
//! asked again at half the size (down to one project); the size found is kept for the next
//! collections, and grows back (doubling, up to the configured size) while GitLab's reported
//! score stays under half its limit. A query GitLab refuses as invalid (a field or argument
//! this GitLab lacks) is logged once per collection as an error, with GitLab's message, and
//! its family is collected over REST for the rest of the collection. A GitLab without GraphQL
//! (404 or 405 on `/api/graphql`) is logged once and collected over REST from then on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;
use tracing::{error, warn};

use super::families::{Id, Set};
use crate::gitlab::graphql::{Refusal, project_gid};
use crate::gitlab::types::Project;
use crate::gitlab::{Client, Error};

/// Which API collections use (`--gitlab.api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// Batched GraphQL queries, REST where GraphQL cannot give a value exactly.
    #[default]
    Graphql,
    /// REST only.
    Rest,
}

/// GitLab's page size: the most projects one page or batch holds.
pub(crate) const MAX_BATCH: usize = 100;
/// Most full paths one `projects(fullPaths:)` query takes.
const MAX_FULL_PATHS: usize = 50;

/// What the GraphQL path learns and keeps between collections.
#[derive(Debug)]
pub(crate) struct State {
    /// GitLab answered 404/405 on `/api/graphql`: REST from then on.
    unavailable: AtomicBool,
    /// Projects per page of the listing.
    page_size: AtomicUsize,
    /// Projects per batch, per family.
    batch_size: [AtomicUsize; Id::ALL.len()],
    /// `--gitlab.graphql.batch-size`.
    configured: usize,
    /// Sizes were lowered in this collection (the listing's, each family's): no growing back
    /// before the next.
    lowered: [AtomicBool; Id::ALL.len() + 1],
}

impl State {
    pub(crate) fn new(batch_size: usize) -> State {
        let configured = batch_size.clamp(1, MAX_BATCH);
        State {
            unavailable: AtomicBool::new(false),
            page_size: AtomicUsize::new(MAX_BATCH),
            batch_size: std::array::from_fn(|_| AtomicUsize::new(configured)),
            configured,
            lowered: std::array::from_fn(|_| AtomicBool::new(false)),
        }
    }

    /// The slot of [`State::lowered`] of a family's batches, or of the listing's pages (`None`).
    fn lowered(&self, family: Option<Id>) -> &AtomicBool {
        &self.lowered[family.map_or(Id::ALL.len(), |id| id as usize)]
    }

    /// True while GraphQL may be used.
    pub(crate) fn available(&self) -> bool {
        !self.unavailable.load(Ordering::Relaxed)
    }

    /// Notes an error; true when it says GitLab has no GraphQL API (the first time, logged).
    pub(crate) fn unavailable_after(&self, client: &Client, e: &Error) -> bool {
        if !e.is_graphql_unavailable() {
            return false;
        }
        if !self.unavailable.swap(true, Ordering::Relaxed) {
            warn!(error = %e, "GitLab has no GraphQL API here (or a proxy blocks it): collecting over REST from now on (--gitlab.api rest says so without trying)");
            client.rest_fallback("unavailable");
        }
        true
    }
}

/// One collection's use of GraphQL: which families' queries GitLab refused as invalid.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    pub(crate) client: &'a Client,
    pub(crate) state: &'a State,
    refused: Mutex<Set>,
}

impl<'a> Run<'a> {
    pub(crate) fn new(client: &'a Client, state: &'a State) -> Run<'a> {
        for lowered in &state.lowered {
            lowered.store(false, Ordering::Relaxed);
        }
        Run {
            client,
            state,
            refused: Mutex::new(Set::EMPTY),
        }
    }

    /// True when the family's batches go over GraphQL in this collection.
    pub(crate) fn batches(&self, id: Id) -> bool {
        self.state.available()
            && !self
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(id)
    }

    /// A refusal as invalid: logged once per family and collection, loudly.
    fn refused(&self, id: Id, e: &Error) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if !refused.contains(id) {
            *refused = refused.with(id);
            self.client.rest_fallback("refused");
            error!(family = id.name(), error = %e, "GitLab refused the family's GraphQL query as invalid (a bug of the exporter, or a GitLab without these fields): the family is collected over REST for the rest of this collection");
        }
    }

    /// The nodes of the family `id`'s batch query for `ids`, by project id: `BATCH_FIELDS` of
    /// each project GitLab answered without errors. A project missing from the result is
    /// collected over REST (its batch failed, even alone, or its fields came back with errors).
    pub(crate) async fn batch(&self, client: &Client, id: Id, ids: &[u64]) -> HashMap<u64, Value> {
        let size = self.state.batch_size[id as usize]
            .load(Ordering::Relaxed)
            .max(1);
        let chunks = futures::future::join_all(
            ids.chunks(size)
                .map(|chunk| self.batch_chunk(client, id, chunk)),
        )
        .await;
        chunks.into_iter().flatten().collect()
    }

    /// One chunk of a batch, halved while GitLab finds it too big.
    async fn batch_chunk(&self, client: &Client, id: Id, ids: &[u64]) -> HashMap<u64, Value> {
        let mut found = HashMap::with_capacity(ids.len());
        let size = &self.state.batch_size[id as usize];
        let mut pending: Vec<&[u64]> = vec![ids];
        while let Some(chunk) = pending.pop() {
            if !self.batches(id) {
                break;
            }
            match self.batch_once(client, id, chunk).await {
                Ok(nodes) => found.extend(nodes),
                Err(e) if self.state.unavailable_after(self.client, &e) => break,
                Err(e) => match e.refusal() {
                    Some(Refusal::TooBig) if chunk.len() > 1 => {
                        let half = chunk.len().div_ceil(2);
                        shrink(size, half);
                        self.state.lowered(Some(id)).store(true, Ordering::Relaxed);
                        self.client.batch_size(id.name(), half);
                        warn!(family = id.name(), projects = chunk.len(), error = %e, "GraphQL batch too big for GitLab; asking again in halves");
                        let (a, b) = chunk.split_at(half);
                        pending.push(a);
                        pending.push(b);
                    }
                    Some(Refusal::Invalid) => self.refused(id, &e),
                    _ => {
                        warn!(family = id.name(), projects = chunk.len(), error = %e, "GraphQL batch failed; its projects are collected over REST");
                        self.client.rest_fallback("failed");
                    }
                },
            }
        }
        found
    }

    async fn batch_once(
        &self,
        client: &Client,
        id: Id,
        ids: &[u64],
    ) -> Result<HashMap<u64, Value>, Error> {
        let query = format!(
            "query($ids: [ID!], $first: Int) {{ queryComplexity {{ score limit }} \
             projects(ids: $ids, first: $first) {{ nodes {{ id {} }} }} }}",
            id.batch_fields()
        );
        let gids: Vec<String> = ids.iter().map(|id| project_gid(*id)).collect();
        let answer = client
            .graphql(
                id.name(),
                &query,
                serde_json::json!({ "ids": gids, "first": ids.len() }),
            )
            .await?;
        let in_use = self.state.batch_size[id as usize].load(Ordering::Relaxed);
        self.client.batch_size(id.name(), in_use);
        if let Some(c) = answer
            .complexity
            .filter(|_| !self.state.lowered(Some(id)).load(Ordering::Relaxed))
        {
            grow(
                &self.state.batch_size[id as usize],
                ids.len(),
                c,
                self.state.configured,
            );
        }
        let nodes = answer
            .data
            .pointer("/projects/nodes")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        if answer.errors.iter().any(|e| e.path.len() < 3) {
            // An error above the nodes (the whole list): nothing of it is trusted.
            self.client.rest_fallback("partial");
            return Ok(HashMap::new());
        }
        let mut found = HashMap::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let at = [
                Value::from("projects"),
                Value::from("nodes"),
                Value::from(i),
            ];
            let Some(project) = node
                .get("id")
                .and_then(Value::as_str)
                .and_then(crate::gitlab::graphql::gid_number)
            else {
                continue;
            };
            if let Some(e) = answer.errors.iter().find(|e| e.within(&at)) {
                warn!(family = id.name(), project, error = %crate::redact::log_line(&e.message, 300), "GraphQL answered this project's fields with an error; collected over REST");
                self.client.rest_fallback("partial");
                continue;
            }
            found.insert(project, node.clone());
        }
        Ok(found)
    }
}

/// Lowers a size to `to`, if it is above.
fn shrink(size: &AtomicUsize, to: usize) {
    size.fetch_min(to.max(1), Ordering::Relaxed);
}

/// Doubles a size that was lowered, up to `max`, after a query of `used` projects scored under
/// half the limit.
fn grow(size: &AtomicUsize, used: usize, c: crate::gitlab::graphql::Complexity, max: usize) {
    let current = size.load(Ordering::Relaxed);
    if used >= current && current < max && c.score.saturating_mul(2) < c.limit {
        let _ = size.compare_exchange(
            current,
            (current * 2).min(max),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// Where a listing's projects come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// `projects(membership: true)`.
    Membership,
    /// `projects`: every project the token can see.
    All,
    /// `group(fullPath:) { projects(includeSubgroups: true) }`.
    Group(String),
    /// `projects(ids:)`: named projects, by id.
    Ids(Vec<u64>),
    /// `projects(fullPaths:)`: named projects, by path.
    FullPaths(Vec<String>),
}

impl Source {
    /// The query's operation name in the self-metrics.
    fn operation(&self) -> &'static str {
        match self {
            Source::Ids(_) | Source::FullPaths(_) => "named_projects",
            _ => "projects",
        }
    }
}

/// A page of a listing: its projects (decoded as REST projects, see
/// [`Project::from_graphql`]), and the records that could not be used, with why.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    pub(crate) projects: Vec<Project>,
    pub(crate) dropped: Vec<String>,
}

/// Walks a listing page by page (cursor after cursor), each page holding the fields `fields`
/// of every project; `on_page` gets each page. Named sources are split into queries of at most
/// 100 ids or 50 paths.
pub(crate) async fn walk<Done>(
    run: &Run<'_>,
    source: Source,
    fields: &str,
    mut on_page: impl FnMut(Listed) -> Done,
) -> Result<(), Error>
where
    Done: std::future::Future<Output = Result<(), Error>>,
{
    let operation = source.operation();
    let (selection, close, variables): (String, &str, Vec<Value>) = match &source {
        Source::Membership => (
            "projects(membership: true, first: $first, after: $after)".into(),
            "",
            vec![Value::Null],
        ),
        Source::All => (
            "projects(first: $first, after: $after)".into(),
            "",
            vec![Value::Null],
        ),
        Source::Group(path) => (
            "group(fullPath: $group) { projects(includeSubgroups: true, first: $first, after: $after)"
                .into(),
            " }",
            vec![Value::from(path.as_str())],
        ),
        Source::Ids(ids) => (
            "projects(ids: $ids, first: $first, after: $after)".into(),
            "",
            ids.chunks(MAX_BATCH)
                .map(|c| c.iter().map(|id| Value::from(project_gid(*id))).collect())
                .collect(),
        ),
        Source::FullPaths(paths) => (
            "projects(fullPaths: $paths, first: $first, after: $after)".into(),
            "",
            paths
                .chunks(MAX_FULL_PATHS)
                .map(|c| c.iter().map(|p| Value::from(p.as_str())).collect())
                .collect(),
        ),
    };
    let declared = match &source {
        Source::Group(_) => ", $group: ID!",
        Source::Ids(_) => ", $ids: [ID!]",
        Source::FullPaths(_) => ", $paths: [String!]",
        _ => "",
    };
    let query = format!(
        "query($first: Int, $after: String{declared}) {{ queryComplexity {{ score limit }} \
         {selection} {{ pageInfo {{ hasNextPage endCursor }} nodes {{ id {fields} }} }}{close} }}"
    );
    let pointer = match &source {
        Source::Group(_) => "/group/projects",
        _ => "/projects",
    };
    for argument in variables {
        let mut after: Option<String> = None;
        loop {
            let size = run.state.page_size.load(Ordering::Relaxed).max(1);
            let mut vars = serde_json::json!({ "first": size, "after": after });
            match &source {
                Source::Group(_) => vars["group"] = argument.clone(),
                Source::Ids(_) => vars["ids"] = argument.clone(),
                Source::FullPaths(_) => vars["paths"] = argument.clone(),
                _ => {}
            }
            let answer = match run.client.graphql(operation, &query, vars).await {
                Ok(answer) => answer,
                Err(e) if e.refusal() == Some(Refusal::TooBig) && size > 1 => {
                    let half = size.div_ceil(2);
                    shrink(&run.state.page_size, half);
                    run.state.lowered(None).store(true, Ordering::Relaxed);
                    run.client.batch_size(operation, half);
                    warn!(projects = size, error = %e, "GraphQL page too big for GitLab; asking again at half the size");
                    continue;
                }
                Err(e) => return Err(e),
            };
            run.client.batch_size(operation, size);
            if let Some(c) = answer
                .complexity
                .filter(|_| !run.state.lowered(None).load(Ordering::Relaxed))
            {
                grow(&run.state.page_size, size, c, MAX_BATCH);
            }
            let connection = answer.data.pointer(pointer);
            let Some(connection) = connection.filter(|c| !c.is_null()) else {
                if let Source::Group(_) = source {
                    // GitLab answers `group: null` for a group it does not show the token.
                    return Err(Error::Status {
                        endpoint: crate::gitlab::endpoint::GRAPHQL,
                        status: 404,
                        message: format!(
                            "group not found: {}",
                            crate::redact::log_line(argument.as_str().unwrap_or_default(), 200)
                        ),
                    });
                }
                return Err(listing_error(&answer.errors, "no projects connection"));
            };
            if !answer.errors.is_empty() {
                // A listing with errors may be missing projects: never served as complete.
                return Err(listing_error(
                    &answer.errors,
                    "errors in a page of the listing",
                ));
            }
            let mut listed = Listed::default();
            if let Some(nodes) = connection.get("nodes").and_then(Value::as_array) {
                for (i, node) in nodes.iter().enumerate() {
                    match Project::from_graphql(node) {
                        Ok(project) => listed.projects.push(project),
                        Err(why) => listed.dropped.push(format!("record {}: {why}", i + 1)),
                    }
                }
            }
            let next = connection
                .pointer("/pageInfo/hasNextPage")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let cursor = connection
                .pointer("/pageInfo/endCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let empty = listed.projects.is_empty() && listed.dropped.is_empty();
            on_page(listed).await?;
            match cursor {
                Some(cursor) if next && !empty && after.as_deref() != Some(&cursor) => {
                    after = Some(cursor);
                }
                _ if next => {
                    return Err(Error::Decode {
                        endpoint: crate::gitlab::endpoint::GRAPHQL,
                        detail: "a next page was announced, but the cursor did not advance"
                            .to_owned(),
                    });
                }
                _ => break,
            }
        }
    }
    Ok(())
}

/// A listing answered with errors: it cannot be trusted as complete.
fn listing_error(errors: &[crate::gitlab::graphql::FieldError], what: &str) -> Error {
    Error::Decode {
        endpoint: crate::gitlab::endpoint::GRAPHQL,
        detail: format!(
            "{what}: {}",
            errors.first().map_or("(no error given)".to_owned(), |e| {
                crate::redact::log_line(&e.message, 300)
            })
        ),
    }
}

/// The fields of a listing's project nodes for the families in `enabled`: what decoding a
/// project needs (`fullPath`, the namespace), and each family's own.
pub(crate) fn page_fields(enabled: Set) -> String {
    let mut fields = String::from("fullPath namespace { fullPath } group { id } archived");
    for id in enabled.iter() {
        let own = id.page_fields();
        if !own.is_empty() {
            fields.push(' ');
            fields.push_str(own);
        }
    }
    fields
}
