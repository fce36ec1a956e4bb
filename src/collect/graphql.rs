//! The GraphQL path of a collection: the listing's page queries, to which every enabled family
//! adds the project fields it reads ([`super::families::Family::PAGE_FIELDS`]), and the batched
//! queries (`projects(ids:)`) of the families whose data costs GitLab work per project
//! ([`super::families::Family::BATCH_FIELDS`]: merge-request counts), with page and batch sizes
//! that adapt to what GitLab accepts.
//!
//! Sizes: a query refused as too complex, timed out (here, or GitLab's own timeout: a 503, or a
//! partial answer with "Timeout on" errors), or failed with a 5xx after its retries is asked
//! again in halves (down to one project); when the query was more than half the size in use,
//! that size is halved, and stays so for the exporter's life. Every query asks
//! `queryComplexity { score limit }`, which the self-metrics show. A query GitLab refuses as invalid (a field or argument this GitLab
//! lacks) is logged as an error with GitLab's message (the first time; later at debug level),
//! and what it was for is collected over REST for the rest of the collection: the family of a
//! batch, or the whole listing. A GitLab without GraphQL (404 or 405 on `/api/graphql`) is
//! logged once and collected over REST from then on (see [`Client::graphql_unavailable`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tracing::{error, warn};

use super::families::{Id, Set};
use crate::gitlab::graphql::{Refusal, project_gid};
use crate::gitlab::types::{Project, format_timestamp};
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

/// A page or batch size that adapts to what GitLab accepts: halved when GitLab finds a query
/// too big, and kept so for the exporter's life (a GitLab that times out on a size once would do
/// it again; restarting tries the configured size again).
#[derive(Debug)]
struct Size(AtomicUsize);

impl Size {
    fn new(size: usize) -> Size {
        Size(AtomicUsize::new(size))
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed).max(1)
    }

    /// A query of `asked` projects was too big: when it was more than half the size in use
    /// (a smaller one failing says little about the size), the size becomes half of `asked`.
    /// True when it was lowered.
    fn too_big(&self, asked: usize) -> bool {
        let current = self.get();
        if asked * 2 <= current || asked == 1 {
            return false;
        }
        self.0
            .fetch_min(asked.div_ceil(2).min(current - 1).max(1), Ordering::Relaxed);
        true
    }
}

/// What the GraphQL path learns and keeps between collections.
#[derive(Debug)]
pub(crate) struct State {
    /// Projects per page of the listing.
    page_size: Size,
    /// Projects per batch, per family.
    batch_size: [Size; Id::ALL.len()],
    /// The queries (by operation) whose refusal as invalid was logged as an error.
    logged: Mutex<std::collections::HashSet<&'static str>>,
}

impl State {
    pub(crate) fn new(batch_size: usize) -> State {
        let configured = batch_size.clamp(1, MAX_BATCH);
        State {
            page_size: Size::new(MAX_BATCH),
            batch_size: std::array::from_fn(|_| Size::new(configured)),
            logged: Mutex::default(),
        }
    }

    /// Logs a refusal as invalid: as an error the first time for this operation, then at debug
    /// level (the fallback counter counts every one).
    pub(crate) fn refused(&self, operation: &'static str, e: &Error, what: &str) {
        let first = self
            .logged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(operation);
        if first {
            error!(operation, error = %e, "GitLab refused a GraphQL query as invalid (a bug of the exporter, or a GitLab without these fields): {what}");
        } else {
            tracing::debug!(operation, error = %e, "GitLab refused a GraphQL query as invalid: {what}");
        }
    }
}

/// Notes an error; true when it says GitLab has no GraphQL API (the first time, logged).
pub(crate) fn unavailable_after(client: &Client, e: &Error) -> bool {
    if !e.is_graphql_unavailable() {
        return false;
    }
    if client.graphql_unavailable_now() {
        warn!(error = %e, "GitLab has no GraphQL API here (or a proxy blocks it): collecting over REST from now on (--gitlab.api rest says so without trying)");
        client.rest_fallback("unavailable");
    }
    true
}

/// One collection's use of GraphQL: which families' queries GitLab refused as invalid.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    pub(crate) client: &'a Client,
    pub(crate) state: &'a State,
    refused: Mutex<Set>,
    /// A combined batch failed in this collection: the families ask on their own until its end.
    combined_failed: std::sync::atomic::AtomicBool,
}

impl<'a> Run<'a> {
    pub(crate) fn new(client: &'a Client, state: &'a State) -> Run<'a> {
        Run {
            client,
            state,
            refused: Mutex::new(Set::EMPTY),
            combined_failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True when the family's batches go over GraphQL in this collection.
    pub(crate) fn batches(&self, id: Id) -> bool {
        !self.client.graphql_unavailable()
            && !self
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(id)
    }

    /// A refusal as invalid: the family goes over REST for the rest of the collection (logged
    /// and counted once per collection).
    fn refused(&self, id: Id, e: &Error) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if !refused.contains(id) {
            *refused = refused.with(id);
            self.client.rest_fallback("refused");
            self.state.refused(
                id.name(),
                e,
                "the family's batches are collected over REST for the rest of this collection",
            );
        }
    }

    /// The nodes of the family `id`'s batch query for `ids`, by project id: `BATCH_FIELDS` of
    /// each project GitLab answered without errors. A project missing from the result is
    /// collected over REST (its batch failed, even alone, or its fields came back with errors).
    /// Each id comes with where its event feed starts: a query whose fields use `$after` asks
    /// from the earliest of its projects'.
    pub(crate) async fn batch(
        &self,
        client: &Client,
        id: Id,
        ids: &[(u64, i64)],
    ) -> HashMap<u64, Value> {
        let size = self.state.batch_size[id as usize].get();
        let chunks = futures::future::join_all(
            ids.chunks(size)
                .map(|chunk| self.batch_chunk(client, id, chunk)),
        )
        .await;
        chunks.into_iter().flatten().collect()
    }

    /// One chunk of a batch, halved while GitLab finds it too big.
    async fn batch_chunk(
        &self,
        client: &Client,
        id: Id,
        ids: &[(u64, i64)],
    ) -> HashMap<u64, Value> {
        let mut found = HashMap::with_capacity(ids.len());
        let size = &self.state.batch_size[id as usize];
        let mut pending: Vec<&[(u64, i64)]> = vec![ids];
        while let Some(chunk) = pending.pop() {
            if !self.batches(id) {
                break;
            }
            match self.batch_once(client, id, chunk).await {
                Ok(nodes) => found.extend(nodes),
                Err(e) if unavailable_after(self.client, &e) => break,
                Err(e) => match e.refusal() {
                    Some(Refusal::TooBig) if chunk.len() > 1 => {
                        if size.too_big(chunk.len()) {
                            self.client.batch_size(id.name(), size.get());
                        }
                        warn!(family = id.name(), projects = chunk.len(), error = %e, "GraphQL batch too big for GitLab; asking again in halves");
                        let (a, b) = chunk.split_at(chunk.len().div_ceil(2));
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
        chunk: &[(u64, i64)],
    ) -> Result<HashMap<u64, Value>, Error> {
        let mut found = self.batch_parts(client, id.name(), &[(id, chunk)]).await?;
        self.client
            .batch_size(id.name(), self.state.batch_size[id as usize].get());
        Ok(found.pop().unwrap_or_default())
    }

    /// The batches of several families for one page, in one query (an alias each), when
    /// GitLab accepts it: `None` when it does not (too complex, or failed), and each family
    /// then asks on its own, as [`Run::batch`] does.
    pub(crate) async fn combined(
        &self,
        client: &Client,
        parts: &[(Id, &[(u64, i64)])],
    ) -> Option<Vec<HashMap<u64, Value>>> {
        if self.combined_failed.load(Ordering::Relaxed)
            || parts.iter().any(|(id, chunk)| {
                !self.batches(*id) || chunk.len() > self.state.batch_size[*id as usize].get()
            })
        {
            return None;
        }
        match self.batch_parts(client, "families", parts).await {
            Ok(found) => Some(found),
            Err(e) => {
                unavailable_after(self.client, &e);
                self.combined_failed.store(true, Ordering::Relaxed);
                tracing::debug!(error = %e, "families' combined GraphQL batch not answered; asking family by family for the rest of the collection");
                None
            }
        }
    }

    /// One query holding each part's batch (`projects(ids:)` under an alias when there are
    /// several), and each part's nodes by project id: those GitLab answered without errors.
    async fn batch_parts(
        &self,
        client: &Client,
        operation: &'static str,
        parts: &[(Id, &[(u64, i64)])],
    ) -> Result<Vec<HashMap<u64, Value>>, Error> {
        let single = parts.len() == 1;
        let mut declared = Vec::new();
        let mut selections = Vec::new();
        let mut variables = serde_json::Map::new();
        for (i, (id, chunk)) in parts.iter().enumerate() {
            let n = if single { String::new() } else { i.to_string() };
            let fields = id.batch_fields();
            let alias = if single { "projects" } else { id.name() };
            declared.push(format!("$ids{n}: [ID!], $first{n}: Int"));
            let gids: Vec<String> = chunk.iter().map(|(id, _)| project_gid(*id)).collect();
            variables.insert(format!("ids{n}"), gids.into());
            variables.insert(format!("first{n}"), chunk.len().into());
            let mut fields = fields.to_owned();
            if fields.contains("$after") {
                declared.push(format!("$after{n}: Time"));
                let after = chunk
                    .iter()
                    .map(|(_, after)| *after)
                    .min()
                    .unwrap_or_default();
                variables.insert(format!("after{n}"), format_timestamp(after).into());
                fields = fields.replace("$after", &format!("$after{n}"));
            }
            let head = if single {
                String::new()
            } else {
                format!("{alias}: ")
            };
            selections.push(format!(
                "{head}projects(ids: $ids{n}, first: $first{n}) {{ nodes {{ id {fields} }} }}"
            ));
        }
        let query = format!(
            "query({}) {{ queryComplexity {{ score limit }} {} }}",
            declared.join(", "),
            selections.join(" ")
        );
        let mut answer = client
            .graphql(operation, &query, Value::Object(variables))
            .await?
            .unless_timed_out(operation)?;
        let mut found = Vec::with_capacity(parts.len());
        for (id, chunk) in parts {
            let alias = if single { "projects" } else { id.name() };
            found.push(self.part_nodes(&mut answer, alias, *id, chunk));
        }
        Ok(found)
    }

    /// The nodes of one part of an answer (under `alias`), by project id.
    fn part_nodes(
        &self,
        answer: &mut crate::gitlab::graphql::Answer,
        alias: &str,
        id: Id,
        chunk: &[(u64, i64)],
    ) -> HashMap<u64, Value> {
        // Taken out of the answer, not copied.
        let nodes = answer
            .data
            .pointer_mut(&format!("/{alias}/nodes"))
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let in_part = |e: &&crate::gitlab::graphql::FieldError| {
            e.path.is_empty() || e.within(&[Value::from(alias)])
        };
        if answer
            .errors
            .iter()
            .filter(in_part)
            .any(|e| e.path.len() < 3)
        {
            // An error above the nodes (the whole list): nothing of it is trusted.
            self.client.rest_fallback("partial");
            return HashMap::new();
        }
        let mut found = HashMap::with_capacity(nodes.len());
        for (i, node) in nodes.into_iter().enumerate() {
            let at = [Value::from(alias), Value::from("nodes"), Value::from(i)];
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
            found.insert(project, node);
        }
        let missing = chunk
            .iter()
            .filter(|(id, _)| !found.contains_key(id))
            .count();
        if missing > 0 {
            // Gone since the listing, or not answered: counted over REST, which tells.
            tracing::debug!(
                family = id.name(),
                missing,
                "projects missing from a GraphQL batch's answer; collected over REST"
            );
        }
        found
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
    /// Projects whose fields came back with errors: to read over REST.
    pub(crate) failed: Vec<u64>,
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
            let size = run.state.page_size.get();
            let mut vars = serde_json::json!({ "first": size, "after": after });
            match &source {
                Source::Group(_) => vars["group"] = argument.clone(),
                Source::Ids(_) => vars["ids"] = argument.clone(),
                Source::FullPaths(_) => vars["paths"] = argument.clone(),
                _ => {}
            }
            let answer = run
                .client
                .graphql(operation, &query, vars)
                .await
                .and_then(|answer| answer.unless_timed_out(operation));
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) if e.refusal() == Some(Refusal::TooBig) && size > 1 => {
                    run.state.page_size.too_big(size);
                    run.client.batch_size(operation, run.state.page_size.get());
                    warn!(projects = size, error = %e, "GraphQL page too big for GitLab; asking again at half the size");
                    continue;
                }
                Err(e) => return Err(e),
            };
            run.client.batch_size(operation, size);
            let connection = answer.data.pointer(pointer);
            let Some(connection) = connection.filter(|c| !c.is_null()) else {
                if let (Source::Group(_), true) = (&source, answer.errors.is_empty()) {
                    // GitLab answers `group: null` for a group it does not show the token.
                    return Err(Error::Status {
                        endpoint: crate::gitlab::endpoint::GROUP,
                        status: 404,
                        message: format!(
                            "404 Group Not Found: {}",
                            crate::redact::log_line(argument.as_str().unwrap_or_default(), 200)
                        ),
                    });
                }
                return Err(listing_error(&answer.errors, "no projects connection"));
            };
            // An error about the connection itself (not one project): the page may be missing
            // projects, and is never served as complete.
            let depth = pointer.matches('/').count();
            if let Some(e) = answer.errors.iter().find(|e| e.path.len() <= depth + 1) {
                return Err(listing_error(
                    std::slice::from_ref(e),
                    "errors in a page of the listing",
                ));
            }
            let mut listed = Listed::default();
            if let Some(nodes) = connection.get("nodes").and_then(Value::as_array) {
                let at: Vec<Value> = pointer[1..].split('/').map(Value::from).collect();
                for (i, node) in nodes.iter().enumerate() {
                    let mut here = at.clone();
                    here.extend([Value::from("nodes"), Value::from(i)]);
                    let error = answer.errors.iter().find(|e| e.within(&here));
                    match (Project::from_graphql(node), error) {
                        (Ok(project), None) => listed.projects.push(project),
                        // Some of its fields came back with an error: read over REST.
                        (Ok(project), Some(e)) => {
                            warn!(project = project.id, error = %crate::redact::log_line(&e.message, 300), "GraphQL answered some of this project's fields with an error; read over REST");
                            run.client.rest_fallback("partial");
                            listed.failed.push(project.id);
                        }
                        (Err(why), _) => listed.dropped.push(format!("record {}: {why}", i + 1)),
                    }
                }
            }
            let Some(next) = connection
                .pointer("/pageInfo/hasNextPage")
                .and_then(Value::as_bool)
            else {
                return Err(Error::Decode {
                    endpoint: crate::gitlab::endpoint::GRAPHQL,
                    detail: "a page of the listing without pageInfo.hasNextPage".to_owned(),
                });
            };
            let cursor = connection
                .pointer("/pageInfo/endCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let empty =
                listed.projects.is_empty() && listed.dropped.is_empty() && listed.failed.is_empty();
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
        // Families may share fields (the same constant): once is enough.
        if !own.is_empty()
            && !enabled
                .iter()
                .take_while(|i| *i != id)
                .any(|i| i.page_fields() == own)
        {
            fields.push(' ');
            fields.push_str(own);
        }
    }
    fields
}
