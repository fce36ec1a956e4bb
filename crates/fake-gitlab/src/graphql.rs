//! The fake GitLab's GraphQL API (`POST`/`GET /api/graphql`) on async-graphql: the schema subset
//! (projects, groups, repository, statistics, merge request counts), GitLab's complexity formula
//! and limits, keyset cursors, and the HTTP side (body, size limit, authentication, errors).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Enum, Error, ID, InputValueError, InputValueResult,
    Object, Request, Scalar, ScalarType, Schema, ServerError, ValidationResult, Value as GqlValue,
    Variables,
};
use serde_json::{Value, json};

use super::api::{
    Caller, Live, Reply, find_group, group_scope, in_scope, namespace_full_name, throttle, title,
};
use super::dates::{Timestamps, parse_datetime};
use super::history::{Mr, MrFilter, MrOrder, MrState};
use super::instance::{FakeProject, Instance, Namespace, Role, USER_NAMESPACE_ID};
use super::paginate::Query;
use super::ratelimit::RateLimiter;

#[path = "graphql_ci.rs"]
mod cicd;

/// GitLab's `GraphqlController::MAX_QUERY_SIZE`, in characters.
pub(crate) const MAX_QUERY_SIZE: usize = 10_000;
/// The largest request body read; above it the answer is 413.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;
/// `GitlabSchema`: complexity for anonymous callers, signed-in users and administrators.
const ANONYMOUS_MAX_COMPLEXITY: usize = 200;
const AUTHENTICATED_MAX_COMPLEXITY: usize = 250;
const ADMIN_MAX_COMPLEXITY: usize = 300;
/// `GitlabSchema`: depth for anonymous and signed-in callers.
const ANONYMOUS_MAX_DEPTH: usize = 15;
const AUTHENTICATED_MAX_DEPTH: usize = 20;
/// `default_max_page_size`: `first`/`last` above it are clamped to it.
const MAX_PAGE_SIZE: usize = 100;
/// `LimitedCountableConnectionType::COUNT_LIMIT`.
const COUNT_LIMIT: i32 = 1_000;
/// GitLab's answer when a statement runs past its timeout (`ActiveRecord::QueryCanceled`).
pub(crate) const TIMEOUT_MESSAGE: &str =
    "Request timed out. Please try a less complex query or a smaller set of records.";
/// `Gitlab::Graphql::Errors::ResourceNotAvailable`, the field error of `Knobs::field_error`.
const NOT_AVAILABLE: &str = "The resource that you are attempting to access does not exist or you don't have permission to perform this action";

/// Test knobs of one request (all off without the `faults` feature).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Knobs {
    /// A lower complexity limit than GitLab's.
    pub(crate) max_complexity: Option<u32>,
    /// More work than this (project nodes resolved plus counts run): the answer is GitLab's
    /// timeout (503).
    pub(crate) timeout_above: Option<usize>,
    /// Every `mergeRequests.count` of this project answers a field error.
    pub(crate) field_error: Option<u64>,
    /// `repository.tree.lastCommit` of this project answers a field error.
    pub(crate) last_commit_error: Option<u64>,
    /// A field this GitLab does not have: a query asking it is refused at validation.
    pub(crate) unknown_field: Option<&'static str>,
}

/// What a GraphQL request did, for the server loop and the test hooks.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The query text received (when the request got that far).
    #[cfg_attr(not(feature = "faults"), allow(dead_code))]
    pub(crate) query: Option<String>,
    /// The complexity score (when the query was parsed and validated).
    #[cfg_attr(not(feature = "faults"), allow(dead_code))]
    pub(crate) score: Option<u32>,
    /// `count` fields of merge request connections resolved (each one a count run).
    pub(crate) counts: usize,
}

/// The HTTP request as the endpoint sees it.
#[derive(Debug)]
pub(crate) struct GraphqlRequest<'a> {
    pub(crate) method: &'a str,
    /// Raw query string (a GET carries the query there).
    pub(crate) query: Option<&'a str>,
    /// The body, or `Err` when it was over [`MAX_BODY_BYTES`] (or could not be read).
    pub(crate) body: Result<&'a [u8], ()>,
    pub(crate) token: Option<&'a str>,
    /// Unix seconds on the fake's clock (rate limiter).
    pub(crate) now: u64,
}

fn errors_reply(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({ "errors": [{ "message": message }] }))
}

fn lock(live: &Mutex<Live>) -> MutexGuard<'_, Live> {
    live.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the query (parsed with async-graphql's parser) selects the field `name`, and the type
/// it would be on (from the field selecting it, for the error message).
fn asks_field(query: &str, name: &'static str) -> Option<(&'static str, &'static str)> {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn on(parent: &str) -> &'static str {
        match parent {
            "nodes" | "node" | "project" => "Project",
            "userPermissions" => "ProjectPermissions",
            "repository" => "Repository",
            "statistics" => "ProjectStatistics",
            "tree" => "Tree",
            "lastCommit" => "Commit",
            "mergeRequests" => "MergeRequestConnection",
            "group" => "Group",
            _ => "Query",
        }
    }
    fn walk(set: &SelectionSet, parent: &str, name: &'static str) -> Option<&'static str> {
        set.items.iter().find_map(|item| match &item.node {
            Selection::Field(f) => {
                let field = f.node.name.node.as_str();
                if field == name {
                    Some(on(parent))
                } else {
                    walk(&f.node.selection_set.node, field, name)
                }
            }
            Selection::InlineFragment(i) => walk(&i.node.selection_set.node, parent, name),
            Selection::FragmentSpread(_) => None,
        })
    }
    let doc = async_graphql::parser::parse_query(query).ok()?;
    let found = doc
        .operations
        .iter()
        .find_map(|(_, op)| walk(&op.node.selection_set.node, "", name))
        .or_else(|| {
            doc.fragments
                .values()
                .find_map(|f| walk(&f.node.selection_set.node, "", name))
        })?;
    Some((name, found))
}

/// The operation asked for: query text, variables, operation name.
struct Operation {
    query: String,
    variables: Option<Value>,
    operation_name: Option<String>,
}

impl Operation {
    /// From the body of a POST, or the query string of a GET.
    fn read(req: &GraphqlRequest<'_>) -> Result<Operation, Reply> {
        if req.method == "POST" {
            let body = req.body.map_err(|()| {
                Reply::json(413, &json!({ "message": "413 Request Entity Too Large" }))
            })?;
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| errors_reply(400, &format!("Invalid JSON body: {e}")))?;
            let Value::Object(m) = value else {
                return Err(errors_reply(
                    400,
                    "The fake GitLab answers one query per request (no multiplexing)",
                ));
            };
            let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
            Ok(Operation {
                query: text("query").unwrap_or_default(),
                variables: m.get("variables").cloned(),
                operation_name: text("operationName"),
            })
        } else {
            let q = Query::parse(req.query);
            Ok(Operation {
                query: q.get("query").unwrap_or_default().to_owned(),
                variables: q.get("variables").map(|v| Value::String(v.to_owned())),
                operation_name: q.get("operationName").map(str::to_owned),
            })
        }
    }

    /// Variables as GitLab's `Gitlab::Graphql::Variables` takes them: an object, a JSON text
    /// of one, or nothing.
    fn variables(&self) -> Result<Variables, Reply> {
        let invalid = |detail: &str| errors_reply(422, &format!("Invalid variables: {detail}"));
        match &self.variables {
            None | Some(Value::Null) => Ok(Variables::default()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Variables::default()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => Ok(Variables::from_json(v)),
                Ok(Value::Null) => Ok(Variables::default()),
                Ok(_) => Err(invalid("not an object")),
                Err(e) => Err(invalid(&e.to_string())),
            },
            Some(v @ Value::Object(_)) => Ok(Variables::from_json(v.clone())),
            Some(_) => Err(invalid("not an object")),
        }
    }
}

/// Answers one request on `/api/graphql`: body, rate limit, authentication, size, then the query.
pub(crate) async fn respond(
    live: &Arc<Mutex<Live>>,
    limiter: &RateLimiter,
    req: &GraphqlRequest<'_>,
    knobs: Knobs,
) -> (Reply, Outcome) {
    let mut outcome = Outcome::default();
    if !matches!(req.method, "GET" | "HEAD" | "POST") {
        return (errors_reply(404, "Not found!"), outcome);
    }
    if req.method == "POST" && req.body.is_err() {
        let reply = Reply::json(413, &json!({ "message": "413 Request Entity Too Large" }));
        return (reply, outcome);
    }
    let (caller, stamps, rate_headers) = {
        let live = lock(live);
        let caller = Caller::authenticate(&live.instance, req.token);
        match throttle(&live.instance, limiter, caller, req.now) {
            Ok(headers) => (caller, live.instance.timestamps, headers),
            Err(reply) => return (reply, outcome),
        }
    };
    let reply = match answer(live, req, knobs, caller, stamps, &mut outcome).await {
        Ok(reply) | Err(reply) => reply,
    };
    (reply.with_headers(rate_headers), outcome)
}

async fn answer(
    live: &Arc<Mutex<Live>>,
    req: &GraphqlRequest<'_>,
    knobs: Knobs,
    caller: Caller,
    stamps: Timestamps,
    outcome: &mut Outcome,
) -> Result<Reply, Reply> {
    if caller == Caller::Invalid {
        return Err(errors_reply(401, "Invalid token"));
    }
    let op = Operation::read(req)?;
    outcome.query = Some(op.query.clone());
    if op.query.chars().count() > MAX_QUERY_SIZE {
        return Err(errors_reply(422, "Query too large"));
    }
    if op.query.trim().is_empty() {
        return Err(errors_reply(200, "No query string was present"));
    }
    if let Some((field, on)) = knobs.unknown_field.and_then(|f| asks_field(&op.query, f)) {
        // graphql-ruby's validation error for a field the schema lacks.
        return Ok(errors_reply(
            200,
            &format!("Field '{field}' doesn't exist on type '{on}'"),
        ));
    }
    let variables = op.variables()?;
    let (max_complexity, max_depth) = match caller {
        Caller::User { admin: true } => (ADMIN_MAX_COMPLEXITY, AUTHENTICATED_MAX_DEPTH),
        Caller::User { admin: false } => (AUTHENTICATED_MAX_COMPLEXITY, AUTHENTICATED_MAX_DEPTH),
        _ => (ANONYMOUS_MAX_COMPLEXITY, ANONYMOUS_MAX_DEPTH),
    };
    let max_complexity = knobs
        .max_complexity
        .map_or(max_complexity, |k| max_complexity.min(k as usize));
    let env = Arc::new(Env {
        live: Arc::clone(live),
        caller,
        stamps,
        knobs,
        max_complexity,
        max_depth,
        score: AtomicUsize::new(0),
        scored: AtomicBool::new(false),
        executed: AtomicBool::new(false),
        calls: Mutex::new(BTreeMap::new()),
        internal_error: AtomicBool::new(false),
        counts: AtomicUsize::new(0),
        nodes: AtomicUsize::new(0),
        listed: Mutex::new(Vec::new()),
    });
    let mut request = Request::new(op.query)
        .variables(variables)
        .data(Arc::clone(&env));
    if let Some(name) = op.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    let response = schema().execute(request).await;
    if env.scored.load(Ordering::SeqCst) {
        outcome.score = Some(u32::try_from(env.score.load(Ordering::SeqCst)).unwrap_or(u32::MAX));
    }
    outcome.counts = env.counts.load(Ordering::SeqCst);
    let listed = std::mem::take(&mut *env.listed.lock().unwrap_or_else(|e| e.into_inner()));
    lock(live).listed(&listed);
    if knobs
        .timeout_above
        .is_some_and(|n| env.nodes.load(Ordering::SeqCst) + env.counts.load(Ordering::SeqCst) > n)
    {
        return Err(errors_reply(503, TIMEOUT_MESSAGE));
    }
    if env.internal_error.load(Ordering::SeqCst) {
        return Err(errors_reply(500, "Internal server error"));
    }
    let mut body = serde_json::Map::new();
    if !response.errors.is_empty() {
        body.insert(
            "errors".into(),
            serde_json::to_value(&response.errors).unwrap_or(Value::Null),
        );
    }
    // Refused before execution (syntax, validation, limits): no `data` at all, as graphql-ruby.
    if env.executed.load(Ordering::SeqCst) {
        body.insert(
            "data".into(),
            serde_json::to_value(&response.data).unwrap_or(Value::Null),
        );
    }
    Ok(Reply::json(200, &Value::Object(body)))
}

// ---------------------------------------------------------------------------------------------
// Request state, limits and complexity
// ---------------------------------------------------------------------------------------------

/// Per-request state shared by the resolvers (request data).
struct Env {
    live: Arc<Mutex<Live>>,
    caller: Caller,
    stamps: Timestamps,
    knobs: Knobs,
    max_complexity: usize,
    max_depth: usize,
    /// The whole query's complexity, once validated.
    score: AtomicUsize,
    scored: AtomicBool,
    /// Validation and limits passed: the operation ran.
    executed: AtomicBool,
    /// Merge request counts run.
    counts: AtomicUsize,
    /// Project nodes resolved (for `Knobs::timeout_above`).
    nodes: AtomicUsize,
    /// Projects listed by connections (for `FakeGitlab::vanish_after_listing`).
    listed: Mutex<Vec<u64>>,
    /// Resolutions of fields under `FieldCallCount` limits, by field.
    calls: Mutex<BTreeMap<&'static str, usize>>,
    /// A resolver hit an error GitLab does not rescue: the answer is its 500.
    internal_error: AtomicBool,
}

impl Env {
    fn of<'c>(ctx: &Context<'c>) -> &'c Arc<Env> {
        ctx.data_unchecked::<Arc<Env>>()
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        lock(&self.live)
    }

    /// Runs `f` on a project the caller can see, under the lock (never across an await).
    fn project<T>(
        &self,
        id: u64,
        f: impl FnOnce(&Instance, &FakeProject) -> T,
    ) -> async_graphql::Result<T> {
        let live = self.live();
        let inst = &live.instance;
        match inst.project(id).filter(|p| self.caller.can_see(p)) {
            Some(p) => Ok(f(inst, p)),
            None => Err(Error::new(NOT_AVAILABLE)),
        }
    }
}

/// GitLab's limits, checked on async-graphql's validation result (its complexity is GitLab's:
/// every field's `complexity` below follows `Types::BaseField`), with graphql-ruby's messages.
struct Limits;

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Limits)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Limits {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let Some(env) = ctx.data_opt::<Arc<Env>>() else {
            return Ok(result);
        };
        env.score.store(result.complexity, Ordering::SeqCst);
        env.scored.store(true, Ordering::SeqCst);
        let mut errors = Vec::new();
        if result.depth > env.max_depth {
            errors.push(ServerError::new(
                format!(
                    "Query has depth of {}, which exceeds max depth of {}",
                    result.depth, env.max_depth
                ),
                None,
            ));
        }
        if result.complexity > env.max_complexity {
            errors.push(ServerError::new(
                format!(
                    "Query has complexity of {}, which exceeds max complexity of {}",
                    result.complexity, env.max_complexity
                ),
                None,
            ));
        }
        if errors.is_empty() {
            env.executed.store(true, Ordering::SeqCst);
            Ok(result)
        } else {
            Err(errors)
        }
    }
}

/// The complexity of a field with a resolver (`Types::BaseField#field_resolver_complexity`):
/// `child + resolver_complexity (+1 calls_gitaly)`, and for a connection that plus itself times
/// `min(first, last, 100) * 0.01` (the multiplier is 0 with `iid`/`iids`), truncated.
fn resolver_cost(
    child: usize,
    resolver: usize,
    connection: Option<(Option<i32>, Option<i32>)>,
    multiplier: f64,
) -> usize {
    let c = (child + resolver) as f64;
    let c = match connection {
        None => c,
        Some((first, last)) => {
            let limit = page_limit(first, last) as f64;
            c + c * (limit * multiplier)
        }
    };
    c as usize
}

/// `BaseResolver.resolver_complexity`: 1, +1 with `sort`, +5 with `search`.
fn base_resolver(sort: bool, search: bool) -> usize {
    1 + usize::from(sort) + 5 * usize::from(search)
}

/// `[first, last, max_page_size].compact.min` (negative values count as 0).
fn page_limit(first: Option<i32>, last: Option<i32>) -> usize {
    [first, last]
        .into_iter()
        .flatten()
        .map(|n| usize::try_from(n).unwrap_or(0))
        .fold(MAX_PAGE_SIZE, usize::min)
}

type GitlabSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

fn schema() -> &'static GitlabSchema {
    static SCHEMA: OnceLock<GitlabSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
            .extension(Limits)
            .finish()
    })
}

/// The schema's SDL (for the docs and the tests).
#[cfg(test)]
pub(crate) fn sdl() -> String {
    schema().sdl()
}

// ---------------------------------------------------------------------------------------------
// Scalars, global ids, cursors
// ---------------------------------------------------------------------------------------------

/// GitLab's `Time` scalar: ISO 8601 in the instance's zone, whole seconds (`Time#iso8601`).
struct Time(String);

#[Scalar(name = "Time")]
impl ScalarType for Time {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        match value {
            GqlValue::String(s) => Ok(Time(s)),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> GqlValue {
        GqlValue::String(self.0.clone())
    }
}

fn time(stamps: Timestamps, secs: i64) -> Time {
    // `api` writes `2026-11-20T10:15:00.000Z` / `...000-05:00`: drop the milliseconds.
    let full = stamps.api(secs);
    let iso = match full.find('.') {
        Some(dot) => format!("{}{}", &full[..dot], &full[dot + 4..]),
        None => full,
    };
    Time(iso)
}

fn project_gid(id: u64) -> ID {
    ID(format!("gid://gitlab/Project/{id}"))
}

fn group_gid(id: u64) -> ID {
    ID(format!("gid://gitlab/Group/{id}"))
}

/// `gid://gitlab/Project/42` (GitLab refuses other types; the fake ignores them).
fn parse_project_gid(gid: &str) -> Result<u64, Error> {
    gid.strip_prefix("gid://gitlab/Project/")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            if gid.starts_with("gid://gitlab/") {
                Error::new(format!("{gid} is not a valid ID for Project."))
            } else {
                Error::new(format!("{gid} is not a valid GitLab ID."))
            }
        })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// URL-safe base64 without padding.
fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Either base64 alphabet, padding optional.
fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// GitLab's keyset cursor: `{"id":"42"}`, base64.
fn cursor(id: u64) -> String {
    b64_encode(format!(r#"{{"id":"{id}"}}"#).as_bytes())
}

fn parse_cursor(text: &str) -> Result<u64, Error> {
    let invalid = || Error::new("Please provide a valid cursor");
    let bytes = b64_decode(text).ok_or_else(invalid)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    match &v["id"] {
        Value::String(s) => s.parse().map_err(|_| invalid()),
        Value::Number(n) => n.as_u64().ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

// ---------------------------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------------------------

struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// Projects visible to the caller (`Resolvers::ProjectsResolver`), id descending unless
    /// `sort: "id_asc"`.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "resolver_cost(child_complexity, base_resolver(sort.is_some(), search.is_some()), Some((first, last)), 0.01)"
    )]
    async fn projects(
        &self,
        ctx: &Context<'_>,
        membership: Option<bool>,
        ids: Option<Vec<ID>>,
        full_paths: Option<Vec<String>>,
        search: Option<String>,
        sort: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Option<ProjectConnection>> {
        let env = Env::of(ctx);
        if full_paths.as_ref().is_some_and(|p| p.len() > 50) {
            return Err(Error::new("You cannot provide more than 50 full_paths"));
        }
        let ids = ids
            .map(|ids| ids.iter().map(|g| parse_project_gid(g)).collect())
            .transpose()?;
        let filter = ProjectFilter {
            membership: membership.unwrap_or(false),
            ids,
            full_paths,
            search: search
                .map(|s| s.split_whitespace().map(str::to_lowercase).collect())
                .unwrap_or_default(),
            scope: None,
        };
        let pages = PageArgs {
            first,
            after,
            last,
            before,
            desc: sort.as_deref() != Some("id_asc"),
        };
        ProjectConnection::resolve(env, filter, pages).map(Some)
    }

    /// One project by full path (`Resolvers::ProjectResolver`); null when invisible.
    async fn project(&self, ctx: &Context<'_>, full_path: ID) -> Option<ProjectNode> {
        let env = Env::of(ctx);
        let live = env.live();
        let p = live
            .instance
            .project_by_path(&full_path)
            .filter(|p| env.caller.can_see(p))?;
        env.nodes.fetch_add(1, Ordering::SeqCst);
        Some(ProjectNode { id: p.id })
    }

    /// One group by full path (`Resolvers::GroupResolver`); null when invisible.
    async fn group(&self, ctx: &Context<'_>, full_path: ID) -> Option<GroupNode> {
        let env = Env::of(ctx);
        let live = env.live();
        let g = find_group(&live.instance, env.caller, &full_path).ok()?;
        Some(GroupNode { id: g.id })
    }

    /// The score of the whole query and the limit in force.
    async fn query_complexity(&self, ctx: &Context<'_>) -> Option<QueryComplexity> {
        let env = Env::of(ctx);
        Some(QueryComplexity {
            score: env.score.load(Ordering::SeqCst),
            limit: env.max_complexity,
        })
    }
}

struct QueryComplexity {
    score: usize,
    limit: usize,
}

#[Object(name = "QueryComplexity")]
impl QueryComplexity {
    /// GraphQL query complexity score.
    async fn score(&self) -> Option<i32> {
        i32::try_from(self.score).ok()
    }

    /// GraphQL query complexity limit.
    async fn limit(&self) -> Option<i32> {
        i32::try_from(self.limit).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Project connections
// ---------------------------------------------------------------------------------------------

/// Which projects a connection lists.
#[derive(Debug, Clone)]
struct ProjectFilter {
    membership: bool,
    ids: Option<BTreeSet<u64>>,
    full_paths: Option<Vec<String>>,
    /// Lowercase terms, all of which must be in `path_with_namespace name` (as REST's `search`).
    search: Vec<String>,
    /// A group listing: the groups whose own projects count (no shared projects).
    scope: Option<BTreeSet<u64>>,
}

impl ProjectFilter {
    /// `full_paths` resolved to ids (a path the caller cannot see matches nothing).
    fn resolve(mut self, inst: &Instance) -> ProjectFilter {
        if let Some(paths) = self.full_paths.take() {
            let found: BTreeSet<u64> = paths
                .iter()
                .filter_map(|path| inst.project_by_path(path).map(|p| p.id))
                .collect();
            self.ids = Some(match self.ids {
                Some(ids) => ids.intersection(&found).copied().collect(),
                None => found,
            });
        }
        self
    }

    fn keeps(&self, inst: &Instance, caller: Caller, p: &FakeProject) -> bool {
        caller.can_see(p)
            && (!self.membership || caller.role(p).is_some())
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&p.id))
            && self
                .scope
                .as_ref()
                .is_none_or(|scope| in_scope(p, scope, false))
            && (self.search.is_empty() || {
                let hay = format!("{} {}", p.path_with_namespace(inst), p.name).to_lowercase();
                self.search.iter().all(|t| hay.contains(t.as_str()))
            })
    }
}

/// Connection arguments.
struct PageArgs {
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
    /// Id descending (GitLab's default) or ascending.
    desc: bool,
}

/// One page of projects.
struct ProjectConnection {
    ids: Vec<u64>,
    has_next: bool,
    has_previous: bool,
    filter: ProjectFilter,
}

impl ProjectConnection {
    /// Selects the page: the ids beyond the cursors are a sub-slice of the id-sorted projects,
    /// so a page costs its own length (plus what the filter skips), however deep the walk.
    fn resolve(
        env: &Env,
        filter: ProjectFilter,
        args: PageArgs,
    ) -> async_graphql::Result<ProjectConnection> {
        if args.first.is_some() && args.last.is_some() {
            return Err(Error::new(
                "Can only provide either `first` or `last`, not both",
            ));
        }
        let after = args.after.as_deref().map(parse_cursor).transpose()?;
        let before = args.before.as_deref().map(parse_cursor).transpose()?;
        let limit = page_limit(args.first, args.last);
        let live = env.live();
        let inst = &live.instance;
        let filter = filter.resolve(inst);
        // Exclusive id bounds below and above.
        let (below, above) = if args.desc {
            (before, after)
        } else {
            (after, before)
        };
        let all = &inst.projects;
        let lo = below.map_or(0, |b| all.partition_point(|p| p.id <= b));
        let hi = above.map_or(all.len(), |a| all.partition_point(|p| p.id < a));
        let slice = all.get(lo..hi.max(lo)).unwrap_or(&[]);
        let keep = |p: &&FakeProject| filter.keeps(inst, env.caller, p);
        // `last`: the end of the range, read backwards.
        let from_end = args.last.is_some();
        let forward = args.desc == from_end;
        let mut taken: Vec<u64> = if forward {
            slice
                .iter()
                .filter(keep)
                .take(limit + 1)
                .map(|p| p.id)
                .collect()
        } else {
            slice
                .iter()
                .rev()
                .filter(keep)
                .take(limit + 1)
                .map(|p| p.id)
                .collect()
        };
        let more = taken.len() > limit;
        taken.truncate(limit);
        if from_end {
            taken.reverse();
        }
        let (has_next, has_previous) = if from_end {
            (before.is_some(), more)
        } else {
            (more, after.is_some())
        };
        env.nodes.fetch_add(taken.len(), Ordering::SeqCst);
        env.listed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(&taken);
        Ok(ProjectConnection {
            ids: taken,
            has_next,
            has_previous,
            filter,
        })
    }
}

#[Object(name = "ProjectConnection")]
impl ProjectConnection {
    /// A list of nodes.
    async fn nodes(&self) -> Vec<Option<ProjectNode>> {
        self.ids
            .iter()
            .map(|&id| Some(ProjectNode { id }))
            .collect()
    }

    /// A list of edges.
    async fn edges(&self) -> Vec<Option<ProjectEdge>> {
        self.ids
            .iter()
            .map(|&id| Some(ProjectEdge { id }))
            .collect()
    }

    /// Information to aid in pagination.
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next,
            has_previous_page: self.has_previous,
            start_cursor: self.ids.first().map(|&id| cursor(id)),
            end_cursor: self.ids.last().map(|&id| cursor(id)),
        }
    }

    /// Total count of collection (with `limit`: up to `limit`, then `limit + 1`).
    async fn count(&self, ctx: &Context<'_>, limit: Option<i32>) -> async_graphql::Result<i32> {
        let env = Env::of(ctx);
        if limit.is_some_and(|l| l <= 0) {
            return Err(Error::new("limit must be greater than 0"));
        }
        let live = env.live();
        let inst = &live.instance;
        let n = inst
            .projects
            .iter()
            .filter(|p| self.filter.keeps(inst, env.caller, p))
            .count();
        let n = match limit {
            Some(l) => n.min(l as usize + 1),
            None => n,
        };
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

struct ProjectEdge {
    id: u64,
}

#[Object(name = "ProjectEdge")]
impl ProjectEdge {
    /// A cursor for use in pagination.
    async fn cursor(&self) -> String {
        cursor(self.id)
    }

    /// The item at the end of the edge.
    async fn node(&self) -> Option<ProjectNode> {
        Some(ProjectNode { id: self.id })
    }
}

struct PageInfo {
    has_next_page: bool,
    has_previous_page: bool,
    start_cursor: Option<String>,
    end_cursor: Option<String>,
}

#[Object(name = "PageInfo")]
impl PageInfo {
    /// When paginating forwards, are there more items?
    async fn has_next_page(&self) -> bool {
        self.has_next_page
    }

    /// When paginating backwards, are there more items?
    async fn has_previous_page(&self) -> bool {
        self.has_previous_page
    }

    /// When paginating backwards, the cursor to continue.
    async fn start_cursor(&self) -> Option<String> {
        self.start_cursor.clone()
    }

    /// When paginating forwards, the cursor to continue.
    async fn end_cursor(&self) -> Option<String> {
        self.end_cursor.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Groups and namespaces
// ---------------------------------------------------------------------------------------------

struct GroupNode {
    id: u64,
}

#[Object(name = "Group")]
impl GroupNode {
    /// ID of the namespace.
    async fn id(&self) -> ID {
        group_gid(self.id)
    }

    /// Full path of the namespace.
    async fn full_path(&self, ctx: &Context<'_>) -> ID {
        let env = Env::of(ctx);
        ID(env
            .live()
            .instance
            .group(self.id)
            .map(|g| g.full_path.clone())
            .unwrap_or_default())
    }

    /// Name of the namespace.
    async fn name(&self, ctx: &Context<'_>) -> String {
        let env = Env::of(ctx);
        env.live()
            .instance
            .group(self.id)
            .map(|g| g.name.clone())
            .unwrap_or_default()
    }

    /// Projects within this namespace (`Resolvers::NamespaceProjectsResolver`: the group's
    /// own projects, and its subgroups' with `includeSubgroups`; never shared ones).
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "resolver_cost(child_complexity, 10 + base_resolver(sort.is_some(), search.is_some()), Some((first, last)), 0.01)"
    )]
    async fn projects(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] include_subgroups: Option<bool>,
        search: Option<String>,
        sort: Option<String>,
        ids: Option<Vec<ID>>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ProjectConnection> {
        let env = Env::of(ctx);
        let ids = ids
            .map(|ids| ids.iter().map(|g| parse_project_gid(g)).collect())
            .transpose()?;
        let scope = group_scope(
            &env.live().instance,
            self.id,
            include_subgroups.unwrap_or(false),
        );
        let filter = ProjectFilter {
            membership: false,
            ids,
            full_paths: None,
            search: search
                .map(|s| s.split_whitespace().map(str::to_lowercase).collect())
                .unwrap_or_default(),
            scope: Some(scope),
        };
        let pages = PageArgs {
            first,
            after,
            last,
            before,
            desc: sort.as_deref() != Some("id_asc"),
        };
        ProjectConnection::resolve(env, filter, pages)
    }
}

/// A project's namespace: a group, or the user's personal namespace.
struct NamespaceNode {
    namespace: Namespace,
}

#[Object(name = "Namespace")]
impl NamespaceNode {
    /// ID of the namespace.
    async fn id(&self) -> ID {
        match self.namespace {
            Namespace::Group(id) => group_gid(id),
            Namespace::User => ID(format!(
                "gid://gitlab/Namespaces::UserNamespace/{USER_NAMESPACE_ID}"
            )),
        }
    }

    /// Full path of the namespace.
    async fn full_path(&self, ctx: &Context<'_>) -> ID {
        let env = Env::of(ctx);
        ID(env
            .live()
            .instance
            .namespace_full_path(self.namespace)
            .to_owned())
    }

    /// Full name of the namespace.
    async fn full_name(&self, ctx: &Context<'_>) -> String {
        let env = Env::of(ctx);
        namespace_full_name(&env.live().instance, self.namespace)
    }
}

// ---------------------------------------------------------------------------------------------
// Projects
// ---------------------------------------------------------------------------------------------

struct ProjectNode {
    id: u64,
}

fn int(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[Object(name = "Project")]
impl ProjectNode {
    /// ID of the project.
    async fn id(&self) -> ID {
        project_gid(self.id)
    }

    /// Full path of the project.
    async fn full_path(&self, ctx: &Context<'_>) -> async_graphql::Result<ID> {
        Env::of(ctx).project(self.id, |inst, p| ID(p.path_with_namespace(inst)))
    }

    /// Path of the project.
    async fn path(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Env::of(ctx).project(self.id, |_, p| p.path.clone())
    }

    /// Name of the project (without namespace).
    async fn name(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Env::of(ctx).project(self.id, |_, p| p.name.clone())
    }

    /// Full name of the project with its namespace.
    async fn name_with_namespace(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Env::of(ctx).project(self.id, |inst, p| {
            format!("{} / {}", namespace_full_name(inst, p.namespace), p.name)
        })
    }

    /// Indicates the archived status of the project.
    async fn archived(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<bool>> {
        Env::of(ctx).project(self.id, |_, p| Some(p.archived))
    }

    /// Visibility of the project.
    async fn visibility(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Env::of(ctx).project(self.id, |_, p| Some(p.visibility.as_str().to_owned()))
    }

    /// Number of times the project has been starred.
    async fn star_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Env::of(ctx).project(self.id, |_, p| int(p.star_count))
    }

    /// Number of times the project has been forked (`calls_gitaly`).
    #[graphql(complexity = "2 + child_complexity")]
    async fn forks_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Env::of(ctx).project(self.id, |_, p| int(p.forks_count))
    }

    /// Number of open issues for the project; null with issues disabled.
    async fn open_issues_count(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        Env::of(ctx).project(self.id, |_, p| p.issues_enabled.then(|| int(p.open_issues)))
    }

    /// Timestamp of the project creation.
    async fn created_at(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Time>> {
        let env = Env::of(ctx);
        env.project(self.id, |_, p| Some(time(env.stamps, p.created_at())))
    }

    /// Timestamp of the project last activity.
    async fn last_activity_at(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Time>> {
        let env = Env::of(ctx);
        env.project(self.id, |_, p| Some(time(env.stamps, p.last_activity_at)))
    }

    /// Timestamp of the project last update.
    async fn updated_at(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Time>> {
        let env = Env::of(ctx);
        env.project(self.id, |_, p| Some(time(env.stamps, p.updated_at())))
    }

    /// Namespace of the project.
    async fn namespace(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<NamespaceNode>> {
        Env::of(ctx).project(self.id, |_, p| {
            Some(NamespaceNode {
                namespace: p.namespace,
            })
        })
    }

    /// Group of the project; null in a personal namespace.
    async fn group(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<GroupNode>> {
        Env::of(ctx).project(self.id, |_, p| match p.namespace {
            Namespace::Group(id) => Some(GroupNode { id }),
            Namespace::User => None,
        })
    }

    /// Indicates if Issues are enabled for the current user.
    async fn issues_enabled(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<bool>> {
        Env::of(ctx).project(self.id, |_, p| Some(p.issues_enabled))
    }

    /// Indicates if CI/CD pipeline jobs are enabled for the current user (as REST's
    /// `jobs_enabled`).
    async fn jobs_enabled(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<bool>> {
        Env::of(ctx).project(self.id, |_, p| Some(p.builds_enabled))
    }

    /// Indicates if Merge requests are enabled for the current user.
    async fn merge_requests_enabled(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<bool>> {
        let env = Env::of(ctx);
        env.project(self.id, |_, p| Some(env.caller.has_merge_requests(p)))
    }

    /// Statistics of the project; null without `read_statistics` (below Reporter).
    async fn statistics(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ProjectStatistics>> {
        let env = Env::of(ctx);
        env.project(self.id, |_, p| {
            env.caller
                .can_read_statistics(p)
                .then(|| ProjectStatistics::of(p))
        })
    }

    /// Git repository of the project; null without `read_code`.
    async fn repository(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Repository>> {
        let env = Env::of(ctx);
        env.project(self.id, |_, p| {
            env.caller
                .can_read_code(p)
                .then_some(Repository { project: self.id })
        })
    }

    /// Permissions for the current user on the resource.
    async fn user_permissions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<ProjectPermissions> {
        let env = Env::of(ctx);
        env.project(self.id, |_, p| {
            let c = env.caller;
            let at_least = |r: Role| c.admin() || c.role(p) >= Some(r);
            ProjectPermissions {
                read_project: true,
                download_code: c.can_read_code(p),
                read_merge_request: c.can_read_merge_requests(p),
                push_code: !p.archived && at_least(Role::Developer),
                admin_project: at_least(Role::Maintainer),
            }
        })
    }

    /// The maximum access level of the current user in the project.
    async fn max_access_level(&self, ctx: &Context<'_>) -> async_graphql::Result<AccessLevel> {
        let env = Env::of(ctx);
        env.project(self.id, |_, p| AccessLevel(env.caller.role(p)))
    }

    /// Build pipelines of the project (`Resolvers::Ci::ProjectPipelinesResolver`: calls
    /// Gitaly, +2 with `sha`, +2 with `ref`).
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "resolver_cost(child_complexity, 2 + 2 * usize::from(sha.is_some()) + 2 * usize::from(reference.is_some()), Some((first, last)), 0.01)"
    )]
    async fn pipelines(
        &self,
        ctx: &Context<'_>,
        status: Option<cicd::PipelineStatusEnum>,
        scope: Option<cicd::PipelineScopeEnum>,
        #[graphql(name = "ref")] reference: Option<String>,
        sha: Option<String>,
        source: Option<String>,
        updated_after: Option<Time>,
        updated_before: Option<Time>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Option<cicd::PipelineConnection>> {
        let args = cicd::PipelineArgs {
            status,
            scope,
            reference,
            sha,
            source,
            updated_after,
            updated_before,
            first,
            after,
            last,
            before,
        };
        cicd::pipelines(Env::of(ctx), self.id, args).map(Some)
    }

    /// Environments of the project. This field can only be resolved for one project in any
    /// single request.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "resolver_cost(child_complexity, base_resolver(false, search.is_some()), Some((first, last)), 0.01)"
    )]
    async fn environments(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        search: Option<String>,
        states: Option<Vec<String>>,
        #[graphql(name = "type")] kind: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Option<cicd::EnvironmentConnection>> {
        let args = cicd::EnvironmentArgs {
            name,
            search,
            states,
            kind,
        };
        cicd::environments(Env::of(ctx), self.id, args, (first, after, last, before)).map(Some)
    }

    /// A single environment of the project.
    #[graphql(
        complexity = "resolver_cost(child_complexity, base_resolver(false, search.is_some()), None, 0.0)"
    )]
    async fn environment(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        search: Option<String>,
        states: Option<Vec<String>>,
        #[graphql(name = "type")] kind: Option<String>,
    ) -> async_graphql::Result<Option<cicd::EnvironmentNode>> {
        let args = cicd::EnvironmentArgs {
            name,
            search,
            states,
            kind,
        };
        cicd::environment(Env::of(ctx), self.id, args)
    }

    /// Merge requests of the project (`Resolvers::ProjectMergeRequestsResolver`; its `sort`
    /// defaults to `created_desc`, which counts in the complexity).
    #[graphql(
        complexity = "resolver_cost(child_complexity, base_resolver(true, false), Some((first, last)), if iids.is_some() { 0.0 } else { 0.01 })"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn merge_requests(
        &self,
        ctx: &Context<'_>,
        state: Option<MergeRequestState>,
        iids: Option<Vec<String>>,
        created_after: Option<Time>,
        created_before: Option<Time>,
        updated_after: Option<Time>,
        updated_before: Option<Time>,
        merged_after: Option<Time>,
        merged_before: Option<Time>,
        #[graphql(default_with = "Some(MergeRequestSort::CreatedDesc)")] sort: Option<
            MergeRequestSort,
        >,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Option<MergeRequestConnection>> {
        let env = Env::of(ctx);
        if first.is_some() && last.is_some() {
            return Err(Error::new(
                "Can only provide either `first` or `last`, not both",
            ));
        }
        let iids = iids.map(|l| l.iter().filter_map(|s| s.parse().ok()).collect());
        let bound = |t: &Option<Time>, lower: bool| {
            t.as_ref()
                .map(|t| time_bound(env.stamps, t, lower))
                .transpose()
        };
        let filter = MrFilter {
            state: state.and_then(MergeRequestState::state),
            created_after: bound(&created_after, true)?,
            created_before: bound(&created_before, false)?,
            updated_after: bound(&updated_after, true)?,
            updated_before: bound(&updated_before, false)?,
            merged_after: bound(&merged_after, true)?,
            merged_before: bound(&merged_before, false)?,
            nothing: false,
        };
        let (order, desc) = sort.unwrap_or(MergeRequestSort::CreatedDesc).order();
        let after = after.as_deref().map(parse_mr_cursor).transpose()?;
        let before = before.as_deref().map(parse_mr_cursor).transpose()?;
        env.project(self.id, |_, p| {
            Some(MergeRequestConnection {
                project: self.id,
                readable: env.caller.can_read_merge_requests(p),
                iids,
                filter,
                order,
                desc,
                page: MrPageArgs {
                    first,
                    after,
                    last,
                    before,
                },
            })
        })
    }
}

/// `ProjectStatistics`: every size a Float, as GitLab's type.
#[derive(Debug, Clone, Copy)]
struct ProjectStatistics {
    commits: u64,
    storage: super::instance::Storage,
}

impl ProjectStatistics {
    fn of(p: &FakeProject) -> ProjectStatistics {
        ProjectStatistics {
            commits: p.commits,
            storage: p.storage,
        }
    }
}

#[Object(name = "ProjectStatistics")]
impl ProjectStatistics {
    /// Commit count of the project.
    async fn commit_count(&self) -> f64 {
        self.commits as f64
    }

    /// Storage size of the project in bytes.
    async fn storage_size(&self) -> f64 {
        self.storage.total() as f64
    }

    /// Repository size of the project in bytes.
    async fn repository_size(&self) -> f64 {
        self.storage.repository as f64
    }

    /// Large File Storage (LFS) object size of the project in bytes.
    async fn lfs_objects_size(&self) -> f64 {
        self.storage.lfs_objects as f64
    }

    /// Build artifacts size of the project in bytes (REST's `job_artifacts_size`).
    async fn build_artifacts_size(&self) -> f64 {
        self.storage.job_artifacts as f64
    }

    /// Packages size of the project in bytes.
    async fn packages_size(&self) -> f64 {
        self.storage.packages as f64
    }

    /// CI Pipeline artifacts size in bytes.
    async fn pipeline_artifacts_size(&self) -> Option<f64> {
        Some(self.storage.pipeline_artifacts as f64)
    }

    /// Wiki size of the project in bytes.
    async fn wiki_size(&self) -> Option<f64> {
        Some(self.storage.wiki as f64)
    }

    /// Snippets size of the project in bytes.
    async fn snippets_size(&self) -> Option<f64> {
        Some(self.storage.snippets as f64)
    }

    /// Uploads size of the project in bytes.
    async fn uploads_size(&self) -> Option<f64> {
        Some(self.storage.uploads as f64)
    }

    /// Container Registry size of the project in bytes.
    async fn container_registry_size(&self) -> Option<f64> {
        Some(self.storage.container_registry as f64)
    }
}

/// `ProjectPermissions`: the abilities the fake models.
struct ProjectPermissions {
    read_project: bool,
    download_code: bool,
    read_merge_request: bool,
    push_code: bool,
    admin_project: bool,
}

#[Object(name = "ProjectPermissions")]
impl ProjectPermissions {
    /// If `true`, the user can perform `read_project` on this resource.
    async fn read_project(&self) -> bool {
        self.read_project
    }

    /// If `true`, the user can perform `download_code` on this resource.
    async fn download_code(&self) -> bool {
        self.download_code
    }

    /// If `true`, the user can perform `read_merge_request` on this resource.
    async fn read_merge_request(&self) -> bool {
        self.read_merge_request
    }

    /// If `true`, the user can perform `push_code` on this resource.
    async fn push_code(&self) -> bool {
        self.push_code
    }

    /// If `true`, the user can perform `admin_project` on this resource.
    async fn admin_project(&self) -> bool {
        self.admin_project
    }
}

/// `AccessLevelEnum`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "AccessLevelEnum", rename_items = "SCREAMING_SNAKE_CASE")]
enum AccessLevelEnum {
    NoAccess,
    MinimalAccess,
    Guest,
    Planner,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

/// `AccessLevel` of the caller's role (none: `NO_ACCESS`, 0).
struct AccessLevel(Option<Role>);

#[Object(name = "AccessLevel")]
impl AccessLevel {
    /// Integer number of the access level.
    async fn integer_value(&self) -> Option<i32> {
        Some(self.0.map_or(0, |r| r.access_level() as i32))
    }

    /// Enum string of the access level.
    async fn string_value(&self) -> Option<AccessLevelEnum> {
        Some(match self.0 {
            None => AccessLevelEnum::NoAccess,
            Some(Role::Guest) => AccessLevelEnum::Guest,
            Some(Role::Reporter) => AccessLevelEnum::Reporter,
            Some(Role::Developer) => AccessLevelEnum::Developer,
            Some(Role::Maintainer) => AccessLevelEnum::Maintainer,
            Some(Role::Owner) => AccessLevelEnum::Owner,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Repository
// ---------------------------------------------------------------------------------------------

struct Repository {
    project: u64,
}

#[Object(name = "Repository")]
impl Repository {
    /// Default branch of the repository (null while it is empty).
    #[graphql(complexity = "2 + child_complexity")]
    async fn root_ref(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Env::of(ctx).project(self.project, |_, p| {
            (!p.is_empty_repo())
                .then(|| p.default_branch.clone())
                .flatten()
        })
    }

    /// Indicates repository has no visible content.
    #[graphql(complexity = "2 + child_complexity")]
    async fn empty(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Env::of(ctx).project(self.project, |_, p| p.is_empty_repo())
    }

    /// Indicates a corresponding Git repository exists on disk.
    #[graphql(complexity = "2 + child_complexity")]
    async fn exists(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Env::of(ctx).project(self.project, |_, _| true)
    }

    /// Tree of the repository (`Resolvers::TreeResolver`, `calls_gitaly`).
    #[graphql(complexity = "resolver_cost(child_complexity, 2, None, 0.0)")]
    async fn tree(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "ref")] reference: Option<String>,
    ) -> async_graphql::Result<Option<Tree>> {
        Env::of(ctx).project(self.project, |_, p| {
            let head = match reference.as_deref() {
                _ if p.is_empty_repo() => None,
                None | Some("HEAD") => Some(p.commits),
                Some(r) if p.default_branch.as_deref() == Some(r) => Some(p.commits),
                Some(r) => p.commit_number(r),
            };
            Some(Tree {
                project: self.project,
                commit: head,
            })
        })
    }
}

struct Tree {
    project: u64,
    /// The commit number the ref points at; `None` = no such ref.
    commit: Option<u64>,
}

#[Object(name = "Tree")]
impl Tree {
    /// Last commit for the tree (`complexity: 10`).
    #[graphql(complexity = "10 + child_complexity")]
    async fn last_commit(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Commit>> {
        let commit = self.commit;
        if Env::of(ctx).knobs.last_commit_error == Some(self.project) {
            return Err(Error::new(NOT_AVAILABLE));
        }
        Env::of(ctx).project(self.project, |_, p| {
            commit
                .and_then(|k| p.commit_sha(k))
                .map(|sha| Commit { sha })
        })
    }
}

struct Commit {
    sha: String,
}

#[Object(name = "Commit")]
impl Commit {
    /// SHA1 ID of the commit.
    async fn sha(&self) -> &str {
        &self.sha
    }
}

// ---------------------------------------------------------------------------------------------
// Merge requests
// ---------------------------------------------------------------------------------------------

/// `MergeRequestState`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "MergeRequestState", rename_items = "lowercase")]
enum MergeRequestState {
    Opened,
    Closed,
    Locked,
    Merged,
    All,
}

impl MergeRequestState {
    fn state(self) -> Option<MrState> {
        match self {
            MergeRequestState::Opened => Some(MrState::Opened),
            MergeRequestState::Closed => Some(MrState::Closed),
            MergeRequestState::Locked => Some(MrState::Locked),
            MergeRequestState::Merged => Some(MrState::Merged),
            MergeRequestState::All => None,
        }
    }
}

/// A project's merge requests of one state; empty when the caller may not read them (the
/// feature disabled, members only, or no code access), as GitLab's finder.
struct MergeRequestConnection {
    project: u64,
    readable: bool,
    iids: Option<BTreeSet<u64>>,
    filter: MrFilter,
    order: MrOrder,
    desc: bool,
    page: MrPageArgs,
}

/// Page arguments of a merge request connection; cursors decoded to `(time, iid)`.
struct MrPageArgs {
    first: Option<i32>,
    after: Option<(i64, u64)>,
    last: Option<i32>,
    before: Option<(i64, u64)>,
}

/// `MergeRequestSort` (`SortEnum`'s values, deprecated lowercase ones included, and
/// `MergeRequestSortEnum`'s). The fake orders by created, updated and merge time; the others
/// order as `CREATED_*`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "MergeRequestSort")]
enum MergeRequestSort {
    #[graphql(
        name = "updated_desc",
        deprecation = "Use UPDATED_DESC. Deprecated in GitLab 13.5."
    )]
    UpdatedDescLegacy,
    #[graphql(
        name = "updated_asc",
        deprecation = "Use UPDATED_ASC. Deprecated in GitLab 13.5."
    )]
    UpdatedAscLegacy,
    #[graphql(
        name = "created_desc",
        deprecation = "Use CREATED_DESC. Deprecated in GitLab 13.5."
    )]
    CreatedDescLegacy,
    #[graphql(
        name = "created_asc",
        deprecation = "Use CREATED_ASC. Deprecated in GitLab 13.5."
    )]
    CreatedAscLegacy,
    #[graphql(name = "UPDATED_DESC")]
    UpdatedDesc,
    #[graphql(name = "UPDATED_ASC")]
    UpdatedAsc,
    #[graphql(name = "CREATED_DESC")]
    CreatedDesc,
    #[graphql(name = "CREATED_ASC")]
    CreatedAsc,
    #[graphql(name = "PRIORITY_ASC")]
    PriorityAsc,
    #[graphql(name = "PRIORITY_DESC")]
    PriorityDesc,
    #[graphql(name = "LABEL_PRIORITY_ASC")]
    LabelPriorityAsc,
    #[graphql(name = "LABEL_PRIORITY_DESC")]
    LabelPriorityDesc,
    #[graphql(name = "MILESTONE_DUE_ASC")]
    MilestoneDueAsc,
    #[graphql(name = "MILESTONE_DUE_DESC")]
    MilestoneDueDesc,
    #[graphql(name = "MERGED_AT_ASC")]
    MergedAtAsc,
    #[graphql(name = "MERGED_AT_DESC")]
    MergedAtDesc,
    #[graphql(name = "CLOSED_AT_ASC")]
    ClosedAtAsc,
    #[graphql(name = "CLOSED_AT_DESC")]
    ClosedAtDesc,
    #[graphql(name = "TITLE_ASC")]
    TitleAsc,
    #[graphql(name = "TITLE_DESC")]
    TitleDesc,
    #[graphql(name = "POPULARITY_ASC")]
    PopularityAsc,
    #[graphql(name = "POPULARITY_DESC")]
    PopularityDesc,
}

impl MergeRequestSort {
    /// The time sorted on, and whether descending.
    fn order(self) -> (MrOrder, bool) {
        use MergeRequestSort as S;
        match self {
            S::UpdatedDesc | S::UpdatedDescLegacy => (MrOrder::Updated, true),
            S::UpdatedAsc | S::UpdatedAscLegacy => (MrOrder::Updated, false),
            S::MergedAtDesc => (MrOrder::Merged, true),
            S::MergedAtAsc => (MrOrder::Merged, false),
            S::CreatedAsc
            | S::CreatedAscLegacy
            | S::PriorityAsc
            | S::LabelPriorityAsc
            | S::MilestoneDueAsc
            | S::ClosedAtAsc
            | S::TitleAsc
            | S::PopularityAsc => (MrOrder::Created, false),
            _ => (MrOrder::Created, true),
        }
    }

    fn key(order: MrOrder) -> &'static str {
        match order {
            MrOrder::Created => "created_at",
            MrOrder::Updated => "updated_at",
            MrOrder::Merged => "merged_at",
        }
    }
}

/// A `Time` argument as an inclusive bound in whole seconds (see `Query::datetime`).
fn time_bound(stamps: Timestamps, t: &Time, lower: bool) -> async_graphql::Result<i64> {
    let (secs, nanos) = parse_datetime(&t.0)
        .ok_or_else(|| Error::new(format!("\"{}\" is not a valid ISO 8601 time", t.0)))?;
    let written = u32::from(stamps.millis(secs)) * 1_000_000;
    Ok(match lower {
        true if written < nanos => secs + 1,
        false if written > nanos => secs - 1,
        _ => secs,
    })
}

/// GitLab's keyset cursor of a merge request: `{"<order>_at":"<time>","id":"<id>"}`.
fn mr_cursor(order: MrOrder, t: i64, p: u64, iid: u64) -> String {
    let at = super::dates::Timestamps::default().api(t);
    let id = p.wrapping_mul(1_000_000).wrapping_add(iid);
    b64_encode(
        format!(
            r#"{{"{}":"{at}","id":"{id}"}}"#,
            MergeRequestSort::key(order)
        )
        .as_bytes(),
    )
}

/// `(time, iid)` of a merge request cursor.
fn parse_mr_cursor(text: &str) -> Result<(i64, u64), Error> {
    let invalid = || Error::new("Please provide a valid cursor");
    let bytes = b64_decode(text).ok_or_else(invalid)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let id: u64 = v["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(invalid)?;
    let t = ["created_at", "updated_at", "merged_at"]
        .iter()
        .find_map(|k| v[*k].as_str())
        .and_then(parse_datetime)
        .ok_or_else(invalid)?;
    Ok((t.0, id % 1_000_000))
}

/// One page of merge requests.
struct MrPage {
    items: Vec<(i64, Mr)>,
    has_next: bool,
    has_previous: bool,
}

impl MergeRequestConnection {
    fn resolve_page(&self, env: &Env) -> async_graphql::Result<MrPage> {
        let empty = MrPage {
            items: Vec::new(),
            has_next: false,
            has_previous: false,
        };
        if !self.readable {
            return Ok(empty);
        }
        let limit = page_limit(self.page.first, self.page.last);
        let (order, desc) = (self.order, self.desc);
        // Strictly beyond a cursor in the listing's order.
        let beyond = |k: (i64, u64), c: (i64, u64)| if desc { k < c } else { k > c };
        env.project(self.project, |_, p| {
            let view = p.merge_request_view();
            let keep_iid = |iid: u64| self.iids.as_ref().is_none_or(|s| s.contains(&iid));
            let sorted = view
                .sorted(&self.filter, order, desc)
                .filter(|(_, iid)| keep_iid(*iid));
            let (keys, has_next, has_previous) =
                if self.page.last.is_some() || self.page.before.is_some() {
                    let all: Vec<(i64, u64)> = sorted
                        .filter(|k| self.page.after.is_none_or(|c| beyond(*k, c)))
                        .take_while(|k| self.page.before.is_none_or(|c| beyond(c, *k)))
                        .collect();
                    let n = all.len();
                    let from_end = self.page.last.is_some();
                    let (start, end) = if from_end {
                        (n.saturating_sub(limit), n)
                    } else {
                        (0, n.min(limit))
                    };
                    let has_next = end < n || self.page.before.is_some();
                    let has_previous = start > 0 || self.page.after.is_some();
                    (all[start..end].to_vec(), has_next, has_previous)
                } else {
                    let mut taken: Vec<(i64, u64)> = sorted
                        .skip_while(|k| self.page.after.is_some_and(|c| !beyond(*k, c)))
                        .take(limit + 1)
                        .collect();
                    let more = taken.len() > limit;
                    taken.truncate(limit);
                    (taken, more, self.page.after.is_some())
                };
            MrPage {
                items: keys
                    .into_iter()
                    .filter_map(|(t, iid)| view.get(iid).map(|m| (t, m)))
                    .collect(),
                has_next,
                has_previous,
            }
        })
    }
}

/// One merge request (`MergeRequest`).
struct MergeRequestNode {
    project: u64,
    path: String,
    mr: Mr,
}

#[Object(name = "MergeRequest")]
impl MergeRequestNode {
    /// ID of the merge request.
    async fn id(&self) -> ID {
        ID(format!(
            "gid://gitlab/MergeRequest/{}",
            self.project
                .wrapping_mul(1_000_000)
                .wrapping_add(self.mr.iid)
        ))
    }

    /// Internal ID of the merge request.
    async fn iid(&self) -> String {
        self.mr.iid.to_string()
    }

    /// Title of the merge request.
    async fn title(&self) -> String {
        let seed = self.project.wrapping_shl(24) ^ self.mr.iid;
        match self.mr.edits {
            0 => title(seed),
            n => format!("{} (edit {n})", title(seed)),
        }
    }

    /// State of the merge request.
    async fn state(&self) -> MergeRequestState {
        match self.mr.state {
            MrState::Opened => MergeRequestState::Opened,
            MrState::Closed => MergeRequestState::Closed,
            MrState::Locked => MergeRequestState::Locked,
            MrState::Merged => MergeRequestState::Merged,
        }
    }

    /// Timestamp of when the merge request was created.
    async fn created_at(&self, ctx: &Context<'_>) -> Time {
        time(Env::of(ctx).stamps, self.mr.created_at)
    }

    /// Timestamp of when the merge request was last updated.
    async fn updated_at(&self, ctx: &Context<'_>) -> Time {
        time(Env::of(ctx).stamps, self.mr.updated_at)
    }

    /// Timestamp of when the merge request was merged, null if not merged.
    async fn merged_at(&self, ctx: &Context<'_>) -> Option<Time> {
        let stamps = Env::of(ctx).stamps;
        self.mr.merged_at.map(|t| time(stamps, t))
    }

    /// Web URL of the merge request.
    async fn web_url(&self, ctx: &Context<'_>) -> Option<String> {
        let _ = ctx;
        Some(format!("/{}/-/merge_requests/{}", self.path, self.mr.iid))
    }
}

struct MergeRequestEdge {
    cursor: String,
    node: MergeRequestNode,
}

#[Object(name = "MergeRequestEdge")]
impl MergeRequestEdge {
    /// A cursor for use in pagination.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The item at the end of the edge.
    async fn node(&self) -> &MergeRequestNode {
        &self.node
    }
}

#[Object(name = "MergeRequestConnection")]
impl MergeRequestConnection {
    /// A list of nodes.
    async fn nodes(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<Option<MergeRequestNode>>> {
        let env = Env::of(ctx);
        let page = self.resolve_page(env)?;
        let path = env.project(self.project, |inst, p| p.path_with_namespace(inst))?;
        Ok(page
            .items
            .into_iter()
            .map(|(_, mr)| {
                Some(MergeRequestNode {
                    project: self.project,
                    path: path.clone(),
                    mr,
                })
            })
            .collect())
    }

    /// A list of edges.
    async fn edges(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<Option<MergeRequestEdge>>> {
        let env = Env::of(ctx);
        let page = self.resolve_page(env)?;
        let path = env.project(self.project, |inst, p| p.path_with_namespace(inst))?;
        Ok(page
            .items
            .into_iter()
            .map(|(t, mr)| {
                Some(MergeRequestEdge {
                    cursor: mr_cursor(self.order, t, self.project, mr.iid),
                    node: MergeRequestNode {
                        project: self.project,
                        path: path.clone(),
                        mr,
                    },
                })
            })
            .collect())
    }

    /// Information to aid in pagination.
    async fn page_info(&self, ctx: &Context<'_>) -> async_graphql::Result<PageInfo> {
        let page = self.resolve_page(Env::of(ctx))?;
        let cursor = |x: &(i64, Mr)| mr_cursor(self.order, x.0, self.project, x.1.iid);
        Ok(PageInfo {
            has_next_page: page.has_next,
            has_previous_page: page.has_previous,
            start_cursor: page.items.first().map(cursor),
            end_cursor: page.items.last().map(cursor),
        })
    }

    /// Returns the number of items in the connection up to a limit. If the number is greater
    /// than the limit, returns `limit + 1`.
    async fn count(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(1000)")] limit: Option<i32>,
    ) -> async_graphql::Result<i32> {
        let env = Env::of(ctx);
        let limit = limit.unwrap_or(COUNT_LIMIT);
        if limit <= 0 {
            return Err(Error::new("limit must be greater than 0"));
        }
        if limit > COUNT_LIMIT {
            return Err(Error::new(format!(
                "limit must be less than or equal to {COUNT_LIMIT}"
            )));
        }
        if env.knobs.field_error == Some(self.project) {
            return Err(Error::new(NOT_AVAILABLE));
        }
        if !self.readable {
            return Ok(0);
        }
        let n = env.project(self.project, |_, p| {
            let view = p.merge_request_view();
            match &self.iids {
                Some(iids) => iids
                    .iter()
                    .filter_map(|&iid| view.get(iid))
                    .filter(|m| {
                        self.filter
                            .matches(m.state, m.created_at, m.updated_at, m.merged_at)
                    })
                    .count() as u64,
                None => view.count(&self.filter),
            }
        })?;
        env.counts.fetch_add(1, Ordering::SeqCst);
        let limit = u64::try_from(limit).unwrap_or(0);
        Ok(int(n.min(limit + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiRequest, Endpoint, respond as rest};

    fn demo() -> Arc<Mutex<Live>> {
        Arc::new(Mutex::new(Live::new(Instance::demo())))
    }

    fn token(live: &Arc<Mutex<Live>>) -> String {
        lock(live).instance.token.clone()
    }

    /// Posts `query` (with `variables`) as `token` (None = anonymous) and the knobs.
    async fn call_as(
        live: &Arc<Mutex<Live>>,
        query: &str,
        variables: Value,
        token: Option<&str>,
        knobs: Knobs,
    ) -> (u16, Value, Outcome) {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))
            .unwrap_or_default();
        let req = GraphqlRequest {
            method: "POST",
            query: None,
            body: Ok(&body),
            token,
            now: 0,
        };
        let (reply, outcome) = respond(live, &RateLimiter::default(), &req, knobs).await;
        let value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status, value, outcome)
    }

    /// As the instance's user, no knobs: the answer's JSON (status 200 asserted).
    async fn call(live: &Arc<Mutex<Live>>, query: &str, variables: Value) -> Value {
        let t = token(live);
        let (status, value, _) = call_as(live, query, variables, Some(&t), Knobs::default()).await;
        assert_eq!(status, 200, "{value}");
        value
    }

    /// A REST GET as the instance's user.
    fn rest_get(live: &Arc<Mutex<Live>>, target: &str) -> Value {
        let t = token(live);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let path = format!("/api/v4{path}");
        let req = ApiRequest {
            method: "GET",
            path: &path,
            query: Some(query),
            token: Some(&t),
            now: 0,
        };
        let reply = rest(
            &mut lock(live),
            &RateLimiter::default(),
            "http://127.0.0.1:1",
            &req,
            &Endpoint::parse(&path),
        );
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
    }

    fn gid_number(v: &Value) -> u64 {
        v.as_str()
            .and_then(|s| s.rsplit('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    const PAGE: &str = "query($after: String, $membership: Boolean) {
        projects(first: 50, after: $after, membership: $membership) {
            count pageInfo { hasNextPage hasPreviousPage endCursor startCursor } nodes { id }
        } }";

    /// Every page of `Query.projects`, following `endCursor`.
    async fn walk(live: &Arc<Mutex<Live>>, membership: bool) -> (Vec<u64>, u64) {
        let (mut ids, mut after, mut count) = (Vec::new(), Value::Null, 0);
        for page in 0.. {
            let v = call(
                live,
                PAGE,
                json!({ "after": after, "membership": membership }),
            )
            .await;
            let c = &v["data"]["projects"];
            count = c["count"].as_u64().unwrap_or(0);
            assert_eq!(c["pageInfo"]["hasPreviousPage"], page > 0, "{c}");
            ids.extend(
                c["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| gid_number(&n["id"])),
            );
            if c["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = c["pageInfo"]["endCursor"].clone();
        }
        (ids, count)
    }

    #[tokio::test]
    async fn listing_walks_every_page_with_cursors() {
        let live = demo();
        let (members, count) = walk(&live, true).await;
        assert_eq!((members.len(), count), (131, 131));
        assert!(members.is_sorted_by(|a, b| a > b), "id descending");
        let (visible, count) = walk(&live, false).await;
        let rest: Vec<u64> = rest_get(&live, "/projects?per_page=100&order_by=id&sort=desc")
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                rest_get(&live, "/projects?per_page=100&order_by=id&sort=desc&page=2")
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
            .filter_map(|p| p["id"].as_u64())
            .collect();
        assert_eq!(visible, rest);
        assert_eq!(count as usize, rest.len());
        // The cursor is GitLab's: base64 of {"id":"N"}; `last`/`before` walk back.
        let first = call(
            &live,
            "{ projects(first: 2) { edges { cursor node { id } } } }",
            json!({}),
        )
        .await;
        let edge = &first["data"]["projects"]["edges"][1];
        let id = gid_number(&edge["node"]["id"]);
        assert_eq!(edge["cursor"], cursor(id));
        assert_eq!(
            b64_decode(&cursor(id)),
            Some(format!(r#"{{"id":"{id}"}}"#).into_bytes())
        );
        let back = call(
            &live,
            "query($b: String) { projects(last: 1, before: $b) { pageInfo { hasNextPage hasPreviousPage } nodes { id } } }",
            json!({ "b": edge["cursor"] }),
        )
        .await;
        let c = &back["data"]["projects"];
        assert_eq!(gid_number(&c["nodes"][0]["id"]), visible[0]);
        assert_eq!(
            c["pageInfo"],
            json!({ "hasNextPage": true, "hasPreviousPage": false })
        );
        // `first` above 100 is clamped; both `first` and `last`, or a bad cursor, are errors.
        let big = call(
            &live,
            "{ projects(first: 500) { nodes { id } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            big["data"]["projects"]["nodes"].as_array().map(Vec::len),
            Some(100)
        );
        let both = call(
            &live,
            "{ projects(first: 1, last: 1) { count } }",
            json!({}),
        )
        .await;
        assert_eq!(both["data"]["projects"], Value::Null);
        assert_eq!(both["errors"][0]["path"], json!(["projects"]));
        let bad = call(&live, r#"{ projects(after: "nope") { count } }"#, json!({})).await;
        assert_eq!(bad["errors"][0]["message"], "Please provide a valid cursor");
    }

    #[tokio::test]
    async fn ids_full_paths_and_single_lookups() {
        let live = demo();
        let v = call(
            &live,
            r#"{ projects(ids: ["gid://gitlab/Project/42", "gid://gitlab/Project/77"]) { nodes { fullPath } }
                 byPath: projects(fullPaths: ["acme/docs", "ACME/Empty", "nope/nope"]) { count nodes { id } }
                 project(fullPath: "demo-user/dotfiles") { id name nameWithNamespace group { id } namespace { id fullPath } }
                 missing: project(fullPath: "other-org/secret") { id } }"#,
            json!({}),
        )
        .await;
        let d = &v["data"];
        assert_eq!(
            d["projects"]["nodes"],
            json!([{ "fullPath": "labs/secret" }, { "fullPath": "acme/api" }])
        );
        assert_eq!(d["byPath"]["count"], 2);
        assert_eq!(
            d["byPath"]["nodes"],
            json!([{ "id": "gid://gitlab/Project/61" }, { "id": "gid://gitlab/Project/29" }])
        );
        assert_eq!(d["project"]["id"], "gid://gitlab/Project/2");
        assert_eq!(d["project"]["nameWithNamespace"], "Demo User / dotfiles");
        assert_eq!(d["project"]["group"], Value::Null);
        assert_eq!(d["project"]["namespace"]["fullPath"], "demo-user");
        assert_eq!(d["missing"], Value::Null);
        let bad = call(&live, r#"{ projects(ids: ["42"]) { count } }"#, json!({})).await;
        assert_eq!(bad["errors"][0]["message"], "42 is not a valid GitLab ID.");
    }

    #[tokio::test]
    async fn group_projects_with_and_without_subgroups() {
        let live = demo();
        let q = "query($sub: Boolean) { group(fullPath: \"acme\") { id fullPath
            projects(includeSubgroups: $sub, first: 100) { count nodes { id } } } }";
        for sub in [false, true] {
            let v = call(&live, q, json!({ "sub": sub })).await;
            let g = &v["data"]["group"];
            assert_eq!(g["id"], "gid://gitlab/Group/10");
            let got: BTreeSet<u64> = g["projects"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| gid_number(&n["id"]))
                .collect();
            let mut want = BTreeSet::new();
            for page in 1..=2 {
                let r = rest_get(
                    &live,
                    &format!(
                        "/groups/acme/projects?include_subgroups={sub}&with_shared=false&per_page=100&page={page}"
                    ),
                );
                want.extend(
                    r.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["id"].as_u64()),
                );
            }
            // The first page: the 100 highest ids, as GitLab's id-descending order.
            let top: BTreeSet<u64> = want.iter().rev().take(100).copied().collect();
            assert_eq!(got, top, "include_subgroups={sub}");
            assert_eq!(g["projects"]["count"].as_u64(), Some(want.len() as u64));
            assert!(
                !got.contains(&9),
                "other-org/public-lib is only shared into acme"
            );
        }
        let none = call(&live, r#"{ group(fullPath: "nope") { id } }"#, json!({})).await;
        assert_eq!(none["data"]["group"], Value::Null);
    }

    #[tokio::test]
    async fn merge_request_counts_are_limited_to_a_thousand() {
        let live = demo();
        let v = call(
            &live,
            r#"{ project(fullPath: "acme/web/frontend") {
                opened: mergeRequests(state: opened) { count }
                merged: mergeRequests(state: merged) { count }
                closed: mergeRequests(state: closed) { count }
                locked: mergeRequests(state: locked) { count }
                all: mergeRequests(state: all) { count }
                small: mergeRequests(state: merged) { count(limit: 5) } }
              api: project(fullPath: "acme/api") { merged: mergeRequests(state: merged) { count }
                two: mergeRequests(iids: ["1", "2", "999"]) { count } } }"#,
            json!({}),
        )
        .await;
        let p = &v["data"]["project"];
        for (k, n) in [
            ("opened", 1001),
            ("merged", 1001),
            ("closed", 1001),
            ("locked", 1),
            ("all", 1001),
            ("small", 6),
        ] {
            assert_eq!(p[k]["count"], n, "{k}: {v}");
        }
        assert_eq!(v["data"]["api"]["merged"]["count"], 312);
        assert_eq!(v["data"]["api"]["two"]["count"], 2);
        let over = call(
            &live,
            r#"{ project(fullPath: "acme/api") { name mergeRequests { count(limit: 1001) } } }"#,
            json!({}),
        )
        .await;
        assert_eq!(over["data"]["project"]["mergeRequests"], Value::Null);
        assert_eq!(
            over["errors"][0]["message"],
            "limit must be less than or equal to 1000"
        );
        // Live changes show at once.
        {
            let mut l = lock(&live);
            assert!(
                l.instance
                    .change_merge_request(42, crate::MergeRequestChange::Merge, 1)
            );
        }
        let after = call(
            &live,
            r#"{ project(fullPath: "acme/api") { mergeRequests(state: merged) { count } } }"#,
            json!({}),
        )
        .await;
        assert_eq!(after["data"]["project"]["mergeRequests"]["count"], 313);
    }

    const DETAILS: &str = "query($p: ID!) { project(fullPath: $p) {
        forksCount openIssuesCount visibility archived createdAt lastActivityAt
        mergeRequestsEnabled issuesEnabled
        statistics { commitCount storageSize repositorySize lfsObjectsSize buildArtifactsSize
          pipelineArtifactsSize packagesSize wikiSize snippetsSize uploadsSize containerRegistrySize }
        repository { rootRef empty exists tree { lastCommit { sha } } }
        userPermissions { readProject downloadCode readMergeRequest pushCode adminProject }
        maxAccessLevel { integerValue stringValue }
        mergeRequests(state: all) { count } } }";

    #[tokio::test]
    async fn values_equal_rest() {
        let live = demo();
        for path in ["acme/api", "acme/docs", "acme/empty", "acme/legacy"] {
            let v = call(&live, DETAILS, json!({ "p": path })).await;
            let g = &v["data"]["project"];
            let r = rest_get(
                &live,
                &format!("/projects/{}?statistics=true", path.replace('/', "%2F")),
            );
            let s = &r["statistics"];
            for (gql, rest) in [
                ("commitCount", "commit_count"),
                ("storageSize", "storage_size"),
                ("repositorySize", "repository_size"),
                ("lfsObjectsSize", "lfs_objects_size"),
                ("buildArtifactsSize", "job_artifacts_size"),
                ("pipelineArtifactsSize", "pipeline_artifacts_size"),
                ("packagesSize", "packages_size"),
                ("wikiSize", "wiki_size"),
                ("snippetsSize", "snippets_size"),
                ("uploadsSize", "uploads_size"),
                ("containerRegistrySize", "container_registry_size"),
            ] {
                assert!(g["statistics"][gql].is_f64(), "{path} {gql}: a Float");
                assert_eq!(
                    g["statistics"][gql].as_f64(),
                    s[rest].as_f64(),
                    "{path} {gql}"
                );
            }
            assert_eq!(
                g["openIssuesCount"],
                r.get("open_issues_count").cloned().unwrap_or(Value::Null),
                "{path}"
            );
            assert_eq!(g["forksCount"], r["forks_count"]);
            assert_eq!(g["visibility"], r["visibility"]);
            assert_eq!(g["archived"], r["archived"]);
            assert_eq!(g["mergeRequestsEnabled"], r["merge_requests_enabled"]);
            assert_eq!(g["repository"]["empty"], r["empty_repo"]);
            let rest_time = r["last_activity_at"]
                .as_str()
                .unwrap_or("")
                .replace(".000", "");
            assert_eq!(g["lastActivityAt"], rest_time.as_str());
            let expected = if r["empty_repo"] == true {
                Value::Null
            } else {
                r["default_branch"].clone()
            };
            assert_eq!(g["repository"]["rootRef"], expected, "{path}");
        }
        let api = call(&live, DETAILS, json!({ "p": "acme/api" })).await;
        let head = lock(&live)
            .instance
            .project(42)
            .and_then(FakeProject::head_sha);
        assert_eq!(
            api["data"]["project"]["repository"]["tree"]["lastCommit"]["sha"],
            json!(head)
        );
        assert_eq!(
            api["data"]["project"]["maxAccessLevel"],
            json!({ "integerValue": 40, "stringValue": "MAINTAINER" })
        );
        assert_eq!(api["data"]["project"]["mergeRequests"]["count"], 362);
        let docs = call(&live, DETAILS, json!({ "p": "acme/docs" })).await;
        assert_eq!(docs["data"]["project"]["openIssuesCount"], Value::Null);
        assert_eq!(
            docs["data"]["project"]["mergeRequests"]["count"], 0,
            "feature disabled"
        );
        // A push shows at once.
        lock(&live).instance.push(42, 3, 1);
        let pushed = call(&live, DETAILS, json!({ "p": "acme/api" })).await;
        assert_eq!(
            pushed["data"]["project"]["statistics"]["commitCount"].as_f64(),
            Some(350.0)
        );
    }

    #[tokio::test]
    async fn guests_and_non_members_see_what_rest_shows() {
        let live = demo();
        let secret = call(&live, DETAILS, json!({ "p": "labs/secret" })).await;
        let p = &secret["data"]["project"];
        assert_eq!(p["statistics"], Value::Null);
        assert_eq!(p["repository"], Value::Null);
        assert_eq!(p["mergeRequests"]["count"], 0);
        assert_eq!(p["userPermissions"]["downloadCode"], false);
        assert_eq!(p["userPermissions"]["readMergeRequest"], false);
        assert_eq!(
            p["maxAccessLevel"],
            json!({ "integerValue": 10, "stringValue": "GUEST" })
        );
        let public = call(&live, DETAILS, json!({ "p": "labs/guest-public" })).await;
        let p = &public["data"]["project"];
        assert_eq!(p["statistics"], Value::Null);
        assert_eq!(p["repository"]["empty"], false);
        assert_eq!(p["mergeRequests"]["count"], 18);
        let portal = call(&live, DETAILS, json!({ "p": "partners/portal" })).await;
        let p = &portal["data"]["project"];
        assert_eq!(p["mergeRequestsEnabled"], false);
        assert_eq!(p["mergeRequests"]["count"], 0);
        assert_eq!(p["userPermissions"]["readMergeRequest"], false);
        assert_eq!(p["maxAccessLevel"]["stringValue"], "NO_ACCESS");
        assert!(secret.get("errors").is_none(), "{secret}");
    }

    #[tokio::test]
    async fn authentication_and_anonymous_callers() {
        let live = demo();
        let (status, v, _) = call_as(
            &live,
            "{ projects { count } }",
            json!({}),
            Some("wrong"),
            Knobs::default(),
        )
        .await;
        assert_eq!(
            (status, v),
            (401, json!({ "errors": [{ "message": "Invalid token" }] }))
        );
        let (status, v, _) = call_as(
            &live,
            "{ projects { count } queryComplexity { limit } }",
            json!({}),
            None,
            Knobs::default(),
        )
        .await;
        assert_eq!(status, 200);
        let public = lock(&live)
            .instance
            .projects
            .iter()
            .filter(|p| p.visibility == crate::Visibility::Public)
            .count();
        assert_eq!(v["data"]["projects"]["count"].as_u64(), Some(public as u64));
        assert_eq!(v["data"]["queryComplexity"]["limit"], 200);
    }

    /// Scores worked out by hand from GitLab's formula (`Types::BaseField`, `BaseResolver`).
    #[tokio::test]
    async fn complexity_is_gitlabs() {
        let live = demo();
        let score = |q: &'static str| {
            let live = Arc::clone(&live);
            async move {
                let t = token(&live);
                let (status, v, outcome) =
                    call_as(&live, q, json!({}), Some(&t), Knobs::default()).await;
                assert_eq!(status, 200, "{v}");
                outcome.score
            }
        };
        // queryComplexity (1) + score (1) + limit (1).
        let v = call(&live, "{ queryComplexity { score limit } }", json!({})).await;
        assert_eq!(
            v["data"]["queryComplexity"],
            json!({ "score": 3, "limit": 250 })
        );
        // The worked example: leaves 1; statistics 1+2 = 3; mergeRequests (1 + 2) × 2 = 6;
        // nodes 1 + 11 = 12; pageInfo 3; projects (15 + 1) × (1 + 100 × 0.01) = 32.
        assert_eq!(
            score(
                "{ projects(membership: true, first: 100) { pageInfo { hasNextPage endCursor }
                nodes { id fullPath statistics { commitCount repositorySize }
                a: mergeRequests(state: opened) { count } } } }"
            )
            .await,
            Some(32)
        );
        // sha 1; lastCommit 10 + 1; tree 11 + 1 + 1 (gitaly); rootRef 2; repository 1 + 15;
        // project 16 + 1.
        assert_eq!(
            score(r#"{ project(fullPath: "acme/api") { repository { rootRef tree { lastCommit { sha } } } } }"#).await,
            Some(17)
        );
        // Group.projects: (nodes 2 + 1 + 10) × (1 + 50 × 0.01) = 19.5 → 19; group 1 + 19.
        assert_eq!(
            score(r#"{ group(fullPath: "acme") { projects(includeSubgroups: true, first: 50) { nodes { id } } } }"#).await,
            Some(20)
        );
        // iids: no page multiplier: (1 + 2) + project 1.
        assert_eq!(
            score(r#"{ project(fullPath: "acme/api") { mergeRequests(iids: ["1"]) { count } } }"#)
                .await,
            Some(4)
        );
        // search +5, sort +1: (1 + 1 + 1 + 5) × (1 + 10 × 0.01) = 8.8 → 8.
        assert_eq!(
            score(r#"{ projects(search: "api", sort: "id_asc", first: 10) { count } }"#).await,
            Some(8)
        );
        // forksCount calls Gitaly (2); no `first`: the page is 100.
        assert_eq!(
            score("{ projects { nodes { forksCount } } }").await,
            Some(8)
        );
    }

    #[tokio::test]
    async fn limits_answer_as_gitlab() {
        let live = demo();
        let t = token(&live);
        // Complexity: each project node field costs ~2 within a page of 100.
        let fields = "id fullPath path name nameWithNamespace archived visibility starCount forksCount createdAt lastActivityAt";
        let aliases: String = (0..20)
            .map(|i| format!("m{i}: mergeRequests {{ count }} "))
            .collect();
        let heavy = format!(
            "{{ projects {{ nodes {{ {fields} repository {{ rootRef empty exists tree {{ lastCommit {{ sha }} }} }} {aliases} }} }} }}"
        );
        let (status, v, outcome) =
            call_as(&live, &heavy, json!({}), Some(&t), Knobs::default()).await;
        let score = outcome.score.unwrap_or(0);
        assert!(score > 250, "{score}");
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({ "errors": [{ "message": format!("Query has complexity of {score}, which exceeds max complexity of 250") }] })
        );
        // A lower limit from the knob.
        let knobs = Knobs {
            max_complexity: Some(5),
            ..Knobs::default()
        };
        let (_, v, _) = call_as(
            &live,
            "{ projects { nodes { id } } }",
            json!({}),
            Some(&t),
            knobs,
        )
        .await;
        assert_eq!(
            v["errors"][0]["message"],
            "Query has complexity of 6, which exceeds max complexity of 5"
        );
        // Depth: project > (group > projects > nodes) × 7 > id = 23.
        let deep = format!(
            "{{ project(fullPath: \"acme/api\") {{ {} id {} }} }}",
            "group { projects(first: 1) { nodes { ".repeat(7),
            "} } } ".repeat(7)
        );
        let (status, v, _) = call_as(&live, &deep, json!({}), Some(&t), Knobs::default()).await;
        assert_eq!(status, 200);
        assert_eq!(
            v["errors"][0]["message"],
            "Query has depth of 23, which exceeds max depth of 20"
        );
        assert!(v.get("data").is_none());
        // Size, syntax, unknown fields, an empty query.
        let long = format!("{{ projects {{ count }} }}{}", " ".repeat(MAX_QUERY_SIZE));
        let (status, v, _) = call_as(&live, &long, json!({}), Some(&t), Knobs::default()).await;
        assert_eq!(
            (status, v),
            (422, json!({ "errors": [{ "message": "Query too large" }] }))
        );
        let (status, v, _) = call_as(
            &live,
            "{ projects { nope } }",
            json!({}),
            Some(&t),
            Knobs::default(),
        )
        .await;
        assert_eq!(status, 200);
        assert!(v["errors"][0]["locations"].is_array(), "{v}");
        assert!(v.get("data").is_none());
        let (status, v, _) = call_as(
            &live,
            "{ projects { ",
            json!({}),
            Some(&t),
            Knobs::default(),
        )
        .await;
        assert_eq!(status, 200);
        assert!(v["errors"][0]["message"].is_string());
        let (_, v, _) = call_as(&live, "", json!({}), Some(&t), Knobs::default()).await;
        assert_eq!(
            v,
            json!({ "errors": [{ "message": "No query string was present" }] })
        );
    }

    #[tokio::test]
    async fn knobs_give_partial_answers_and_timeouts() {
        let live = demo();
        let t = token(&live);
        let knobs = Knobs {
            field_error: Some(42),
            ..Knobs::default()
        };
        let (status, v, outcome) = call_as(
            &live,
            r#"{ projects(ids: ["gid://gitlab/Project/42", "gid://gitlab/Project/7"]) { nodes { fullPath mergeRequests(state: opened) { count } } } }"#,
            json!({}),
            Some(&t),
            knobs,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            v["data"]["projects"]["nodes"],
            json!([{ "fullPath": "acme/api", "mergeRequests": null }, { "fullPath": "acme/platform/deploy", "mergeRequests": { "count": 2 } }])
        );
        assert_eq!(
            v["errors"][0]["path"],
            json!(["projects", "nodes", 0, "mergeRequests", "count"])
        );
        assert_eq!(v["errors"][0]["message"], NOT_AVAILABLE);
        assert_eq!(outcome.counts, 1);
        let knobs = Knobs {
            timeout_above: Some(5),
            ..Knobs::default()
        };
        let (status, v, _) = call_as(
            &live,
            "{ projects(first: 6) { nodes { id } } }",
            json!({}),
            Some(&t),
            knobs,
        )
        .await;
        assert_eq!(
            (status, v),
            (503, json!({ "errors": [{ "message": TIMEOUT_MESSAGE }] }))
        );
        let (status, _, _) = call_as(
            &live,
            "{ projects(first: 5) { nodes { id } } }",
            json!({}),
            Some(&t),
            knobs,
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn deep_cursors_are_cheap_on_a_big_instance() {
        let live = Arc::new(Mutex::new(Live::new(Instance::generated(100_000))));
        let ids: Vec<u64> = lock(&live).instance.projects.iter().map(|p| p.id).collect();
        let middle = ids[ids.len() / 2];
        let t0 = std::time::Instant::now();
        let mut after = json!(cursor(middle));
        for _ in 0..20 {
            let v = call(
                &live,
                "query($a: String) { projects(first: 100, after: $a) { pageInfo { endCursor } nodes { id } } }",
                json!({ "a": after }),
            )
            .await;
            let nodes = v["data"]["projects"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(nodes.len(), 100);
            assert!(nodes.iter().all(|n| gid_number(&n["id"]) < middle));
            after = v["data"]["projects"]["pageInfo"]["endCursor"].clone();
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn base64_round_trips_and_schema_has_gitlabs_names() {
        for s in ["", "a", "ab", "abc", r#"{"id":"123456"}"#] {
            assert_eq!(
                b64_decode(&b64_encode(s.as_bytes())),
                Some(s.as_bytes().to_vec())
            );
        }
        assert_eq!(b64_encode(br#"{"id":"42"}"#), "eyJpZCI6IjQyIn0");
        let sdl = sdl();
        for needle in [
            "projects(membership: Boolean, ids: [ID!], fullPaths: [String!], search: String, sort: String, first: Int, after: String, last: Int, before: String): ProjectConnection",
            "count(limit: Int = 1000): Int!",
            "projects(includeSubgroups: Boolean = false,",
            "enum MergeRequestState",
            "buildArtifactsSize: Float!",
            "scalar Time",
            "queuedDuration: Duration",
            "scalar Duration",
            "enum MergeRequestSort",
            "MERGED_AT_DESC",
            "enum PipelineStatusEnum",
            "enum DeploymentTier",
        ] {
            assert!(sdl.contains(needle), "{needle} not in\n{sdl}");
        }
    }

    #[tokio::test]
    async fn pipelines_newest_first_with_filters_and_cursors() {
        let live = demo();
        let ci = lock(&live)
            .instance
            .project(42)
            .map(|p| p.ci().into_owned())
            .unwrap_or_default();
        let n = ci.pipelines.len();
        let q = r#"query($after: String) { project(fullPath: "acme/api") {
            pipelines(first: 3, after: $after) { count pageInfo { hasNextPage endCursor }
              nodes { id iid ref sha status source duration queuedDuration createdAt updatedAt startedAt finishedAt } } } }"#;
        let v = call(&live, q, json!({})).await;
        let c = &v["data"]["project"]["pipelines"];
        assert_eq!(c["count"], n);
        let newest = &ci.pipelines[n - 1];
        let node = &c["nodes"][0];
        assert_eq!(
            node["id"],
            format!("gid://gitlab/Ci::Pipeline/{}", newest.id)
        );
        assert_eq!(node["iid"], newest.iid.to_string());
        assert_eq!(node["status"], newest.status.as_str().to_uppercase());
        assert_eq!(node["duration"], json!(newest.duration));
        if let Some(q) = newest.queued_duration() {
            assert!(node["queuedDuration"].is_f64(), "Duration is a Float");
            assert_eq!(node["queuedDuration"].as_f64(), Some(q as f64));
        }
        assert_eq!(
            node["createdAt"],
            crate::dates::rfc3339_z(newest.created_at).replace(".000", "")
        );
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let v = call(&live, q, json!({ "after": after })).await;
            let c = &v["data"]["project"]["pipelines"];
            seen.extend(
                c["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| gid_number(&n["id"])),
            );
            if c["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = c["pageInfo"]["endCursor"].clone();
        }
        let mut want: Vec<u64> = ci.pipelines.iter().map(|p| p.id).collect();
        want.reverse();
        assert_eq!(seen, want, "every pipeline once, id descending");
        let success = ci
            .pipelines
            .iter()
            .filter(|p| p.status.as_str() == "success")
            .count();
        let t = ci.pipelines[n / 2].updated_at;
        let since = ci.pipelines.iter().filter(|p| p.updated_at >= t).count();
        let v = call(
            &live,
            r#"query($t: Time) { project(fullPath: "acme/api") {
                ok: pipelines(status: SUCCESS) { count }
                main: pipelines(ref: "main", scope: BRANCHES) { count }
                recent: pipelines(updatedAfter: $t) { count } } }"#,
            json!({ "t": crate::dates::rfc3339_z(t) }),
        )
        .await;
        let p = &v["data"]["project"];
        assert_eq!(p["ok"]["count"], success);
        assert_eq!(p["main"]["count"], 1);
        assert_eq!(p["recent"]["count"], since, "updatedAfter is inclusive");
        // CI/CD disabled: GitLab keeps `read_pipeline`, so GraphQL still lists them.
        assert!(lock(&live).instance.set_builds_enabled(42, false));
        let v = call(
            &live,
            r#"{ project(fullPath: "acme/api") { pipelines { count } } }"#,
            json!({}),
        )
        .await;
        assert_eq!(v["data"]["project"]["pipelines"]["count"], n);
    }

    #[tokio::test]
    async fn merge_request_nodes_sort_filter_and_page() {
        let live = demo();
        let q = r#"query($after: String, $sort: MergeRequestSort, $t: Time) { project(fullPath: "acme/api") {
            mergeRequests(state: merged, sort: $sort, mergedAfter: $t, first: 50, after: $after) {
              count pageInfo { hasNextPage endCursor } nodes { iid id state createdAt updatedAt mergedAt title } } } }"#;
        let v = call(&live, q, json!({})).await;
        let c = &v["data"]["project"]["mergeRequests"];
        assert_eq!(c["count"], 312);
        let iids: Vec<u64> = c["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["iid"].as_str().and_then(|s| s.parse().ok()))
            .collect();
        assert_eq!(iids.len(), 50);
        assert!(iids.is_sorted_by(|a, b| a > b), "CREATED_DESC by default");
        assert_eq!(c["nodes"][0]["state"], "merged");
        assert!(c["nodes"][0]["mergedAt"].is_string());
        // Walk MERGED_AT_ASC with cursors: every merged one once, merge times ascending.
        let (mut all, mut after) = (Vec::new(), Value::Null);
        loop {
            let v = call(&live, q, json!({ "after": after, "sort": "MERGED_AT_ASC" })).await;
            let c = &v["data"]["project"]["mergeRequests"];
            all.extend(
                c["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| n["mergedAt"].as_str().unwrap_or("").to_string()),
            );
            if c["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = c["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(all.len(), 312);
        assert!(all.is_sorted());
        let t = all[300].clone();
        let v = call(&live, q, json!({ "t": t, "sort": "MERGED_AT_DESC" })).await;
        let c = &v["data"]["project"]["mergeRequests"];
        let at_or_after = all.iter().filter(|m| **m >= t).count();
        assert_eq!(c["count"], at_or_after, "mergedAfter is inclusive");
        assert_eq!(c["nodes"].as_array().map(Vec::len), Some(at_or_after));
        // A live merge shows with the fake's clock.
        {
            let mut l = lock(&live);
            assert!(l.instance.change_merge_request(
                42,
                crate::MergeRequestChange::Merge,
                crate::HISTORY_HORIZON + 500
            ));
        }
        let v = call(&live, q, json!({ "t": crate::dates::rfc3339_z(crate::HISTORY_HORIZON + 500), "sort": "UPDATED_DESC" })).await;
        let c = &v["data"]["project"]["mergeRequests"];
        assert_eq!(c["count"], 1);
        assert_eq!(
            c["nodes"][0]["mergedAt"],
            crate::dates::rfc3339_z(crate::HISTORY_HORIZON + 500).replace(".000", "")
        );
    }

    #[tokio::test]
    async fn environments_deployments_and_their_limits() {
        let live = demo();
        let q = r#"{ project(fullPath: "acme/api") {
            environments { nodes { id name tier state
              lastDeployment(status: SUCCESS) { iid status finishedAt }
              } }
            environment(name: "production") { name tier
              deployments(statuses: [SUCCESS], orderBy: { finishedAt: DESC }, first: 2) {
                pageInfo { hasNextPage endCursor } nodes { id iid status ref sha createdAt updatedAt finishedAt } } } } }"#;
        let v = call(&live, q, json!({})).await;
        assert!(v.get("errors").is_none(), "{v}");
        let p = &v["data"]["project"];
        assert_eq!(p["environments"]["nodes"][0]["name"], "production");
        assert_eq!(p["environments"]["nodes"][0]["tier"], "PRODUCTION");
        assert_eq!(p["environments"]["nodes"][1]["tier"], "STAGING");
        let deps = &p["environment"]["deployments"]["nodes"];
        assert_eq!(deps[0]["status"], "SUCCESS");
        assert!(deps[0]["finishedAt"].as_str() >= deps[1]["finishedAt"].as_str());
        assert_eq!(
            p["environments"]["nodes"][0]["lastDeployment"]["finishedAt"],
            deps[0]["finishedAt"]
        );
        assert!(
            deps[0]["id"]
                .as_str()
                .is_some_and(|s| s.starts_with("gid://gitlab/Deployment/"))
        );
        // FieldCallCount: a second project's environments, a second environment's deployments.
        let two = call(
            &live,
            r#"{ a: project(fullPath: "acme/api") { environments { nodes { name } } }
                 b: project(fullPath: "acme/platform/deploy") { environments { nodes { name } } } }"#,
            json!({}),
        )
        .await;
        assert_eq!(
            two["errors"][0]["message"],
            "\"environments\" field can be requested only for 1 Project(s) at a time."
        );
        assert_eq!(two["data"]["b"]["environments"], Value::Null);
        assert!(two["data"]["a"]["environments"]["nodes"].is_array());
        let deps = call(
            &live,
            r#"{ project(fullPath: "acme/api") { environments { nodes { name deployments { nodes { iid } } } } } }"#,
            json!({}),
        )
        .await;
        assert_eq!(
            deps["errors"][0]["message"],
            "\"deployments\" field can be requested only for 1 Environment(s) at a time."
        );
        // finishedAt order without a finished status: GitLab's unrescued error, a 500.
        let t = token(&live);
        let (status, v, _) = call_as(
            &live,
            r#"{ project(fullPath: "acme/api") { environment(name: "staging") { deployments(orderBy: { finishedAt: DESC }) { nodes { iid } } } } }"#,
            json!({}),
            Some(&t),
            Knobs::default(),
        )
        .await;
        assert_eq!(
            (status, v),
            (
                500,
                json!({"errors": [{"message": "Internal server error"}]})
            )
        );
        let bad = call(
            &live,
            r#"{ project(fullPath: "acme/api") { environment(name: "staging") { lastDeployment(status: SKIPPED) { iid } } } }"#,
            json!({}),
        )
        .await;
        assert_eq!(
            bad["errors"][0]["message"],
            "\"skipped\" status is not supported."
        );
        // Environments disabled: none readable.
        assert!(lock(&live).instance.set_environments_enabled(42, false));
        let off = call(
            &live,
            r#"{ project(fullPath: "acme/api") { environments { nodes { name } } environment(name: "production") { name } } }"#,
            json!({}),
        )
        .await;
        assert_eq!(off["data"]["project"]["environments"]["nodes"], json!([]));
        assert_eq!(off["data"]["project"]["environment"], Value::Null);
    }
}
