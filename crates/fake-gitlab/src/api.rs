//! Routing, authentication, permissions and the endpoint handlers of the fake GitLab REST API v4.

use std::collections::{BTreeSet, BinaryHeap};

use serde_json::{Map, Value, json};

use super::changes::has_history;
use super::ci_api;
use super::common::splitmix64;
use super::dates::Timestamps;
#[cfg(test)]
use super::dates::{rfc3339_offset, rfc3339_z};
use super::history::{Mr, MrFilter, MrOrder, MrState};
use super::instance::{
    FakeGroup, FakeProject, Instance, Namespace, Role, USER_ID, USER_NAMESPACE_ID, Visibility,
};
use super::paginate::{
    BadParam, KeysetOrder, OffsetPage, PageRequest, Query, decode_component, keyset_headers,
    offset_limit_message, select_offset,
};
use super::ratelimit::RateLimiter;

/// Every route lives under this prefix.
pub(crate) const API_PREFIX: &str = "/api/v4";
/// GitLab's GraphQL endpoint.
pub(crate) const GRAPHQL_PATH: &str = "/api/graphql";

/// A matched route with its (percent-decoded) path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Projects,
    Project(String),
    /// `GET /groups/:id`.
    Group(String),
    GroupProjects(String),
    MergeRequests(String),
    GroupMergeRequests(String),
    Branch(String, String),
    Commits(String),
    CommitSequence(String, String),
    /// `GET /projects/:id/pipelines`.
    Pipelines(String),
    /// `GET /projects/:id/pipelines/latest`.
    PipelineLatest(String),
    /// `GET /projects/:id/pipelines/:pipeline_id`.
    Pipeline(String, String),
    /// `GET /projects/:id/environments`.
    Environments(String),
    /// `GET /projects/:id/deployments`.
    Deployments(String),
    /// `GET /projects/:id/deployments/:deployment_id`.
    Deployment(String, String),
    /// `GET /projects/:id/deployments/:deployment_id/merge_requests`.
    DeploymentMergeRequests(String, String),
    User,
    Version,
    /// `/api/graphql` (outside the REST prefix; answered by `graphql`, never by `respond`).
    Graphql,
    Unknown,
}

impl Endpoint {
    /// Matches a raw request path. Each segment is percent-decoded on its own, so `acme%2Fapi`
    /// is one id while a literal `/` in a branch name does not match (as in GitLab).
    pub(crate) fn parse(path: &str) -> Endpoint {
        if path == GRAPHQL_PATH {
            return Endpoint::Graphql;
        }
        let Some(rest) = path
            .strip_prefix(API_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Endpoint::Unknown;
        };
        let segs: Vec<&str> = rest.split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return Endpoint::Unknown;
        }
        let d = |s: &str| decode_component(s, false);
        match segs.as_slice() {
            ["projects"] => Endpoint::Projects,
            ["projects", id] => Endpoint::Project(d(id)),
            ["projects", id, "merge_requests"] => Endpoint::MergeRequests(d(id)),
            ["projects", id, "repository", "branches", b] => Endpoint::Branch(d(id), d(b)),
            ["projects", id, "repository", "commits"] => Endpoint::Commits(d(id)),
            ["projects", id, "repository", "commits", sha, "sequence"] => {
                Endpoint::CommitSequence(d(id), d(sha))
            }
            ["projects", id, "pipelines"] => Endpoint::Pipelines(d(id)),
            ["projects", id, "pipelines", "latest"] => Endpoint::PipelineLatest(d(id)),
            ["projects", id, "pipelines", pid] => Endpoint::Pipeline(d(id), d(pid)),
            ["projects", id, "environments"] => Endpoint::Environments(d(id)),
            ["projects", id, "deployments"] => Endpoint::Deployments(d(id)),
            ["projects", id, "deployments", did] => Endpoint::Deployment(d(id), d(did)),
            ["projects", id, "deployments", did, "merge_requests"] => {
                Endpoint::DeploymentMergeRequests(d(id), d(did))
            }
            ["groups", id] => Endpoint::Group(d(id)),
            ["groups", id, "projects"] => Endpoint::GroupProjects(d(id)),
            ["groups", id, "merge_requests"] => Endpoint::GroupMergeRequests(d(id)),
            ["user"] => Endpoint::User,
            ["version"] => Endpoint::Version,
            _ => Endpoint::Unknown,
        }
    }
}

/// The mutable state behind the server's lock.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) instance: Instance,
    /// Projects to delete right after the next listing that returns them.
    #[cfg(feature = "faults")]
    pub(crate) vanishing: BTreeSet<u64>,
}

impl Live {
    pub(crate) fn new(instance: Instance) -> Live {
        Live {
            instance,
            #[cfg(feature = "faults")]
            vanishing: BTreeSet::new(),
        }
    }

    /// A listing returned these projects: a vanishing one among them is deleted right after
    /// (see `FakeGitlab::vanish_after_listing`).
    #[cfg(feature = "faults")]
    pub(crate) fn listed(&mut self, ids: &[u64]) {
        for id in ids {
            if self.vanishing.remove(id) {
                self.instance.remove_project(*id);
            }
        }
    }

    #[cfg(not(feature = "faults"))]
    pub(crate) fn listed(&mut self, _ids: &[u64]) {}
}

/// The parts of an HTTP request the API looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiRequest<'a> {
    pub(crate) method: &'a str,
    /// Raw path, still percent-encoded (reused in `Link` URLs).
    pub(crate) path: &'a str,
    /// Raw query string.
    pub(crate) query: Option<&'a str>,
    /// Token from `PRIVATE-TOKEN` or `Authorization: Bearer`.
    pub(crate) token: Option<&'a str>,
    /// Unix seconds on the fake's clock, for the rate limiter.
    pub(crate) now: u64,
}

/// An answer, independent of hyper.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// `value` as an `application/json` answer.
    pub(crate) fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// `{"message": msg}`, GitLab's `render_api_error!` / `not_found!` shape.
    pub(crate) fn message(status: u16, msg: &str) -> Reply {
        Reply::json(status, &json!({ "message": msg }))
    }

    /// `{"error": msg}`, the Grape shape (unknown route, validation, 405).
    pub(crate) fn error(status: u16, msg: &str) -> Reply {
        Reply::json(status, &json!({ "error": msg }))
    }

    pub(crate) fn with_headers(mut self, headers: Vec<(&'static str, String)>) -> Reply {
        self.headers.extend(headers);
        self
    }
}

impl From<BadParam> for Reply {
    fn from(e: BadParam) -> Reply {
        Reply::error(400, &e.0)
    }
}

/// Extracts the token: `PRIVATE-TOKEN` first, then `Authorization: Bearer`. Blank values count as absent.
pub(crate) fn token_from_headers(
    private_token: Option<&[u8]>,
    authorization: Option<&[u8]>,
) -> Option<String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if let Some(t) = private_token.map(text).filter(|t| !t.is_empty()) {
        return Some(t);
    }
    let auth = text(authorization?);
    let (scheme, token) = auth.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// No token: public projects only.
    Anonymous,
    /// The valid token.
    User { admin: bool },
    /// A token that is not the instance's.
    Invalid,
}

impl Caller {
    pub(crate) fn authenticate(inst: &Instance, token: Option<&str>) -> Caller {
        match token {
            None => Caller::Anonymous,
            Some(t) if t == inst.token => Caller::User { admin: inst.admin },
            Some(_) => Caller::Invalid,
        }
    }

    pub(crate) fn admin(self) -> bool {
        matches!(self, Caller::User { admin: true })
    }

    /// The caller's role in `p` (anonymous callers have none).
    pub(crate) fn role(self, p: &FakeProject) -> Option<Role> {
        match self {
            Caller::User { .. } => p.role,
            _ => None,
        }
    }

    pub(crate) fn can_see(self, p: &FakeProject) -> bool {
        match self {
            Caller::User { admin } => {
                admin || p.visibility != Visibility::Private || p.role.is_some()
            }
            _ => p.visibility == Visibility::Public,
        }
    }

    /// `read_code`: everyone who sees a public/internal project, Reporter+ on private ones.
    pub(crate) fn can_read_code(self, p: &FakeProject) -> bool {
        self.can_see(p)
            && (self.admin()
                || p.visibility != Visibility::Private
                || self.role(p) >= Some(Role::Reporter))
    }

    /// `read_statistics`: administrators and Reporter+.
    pub(crate) fn can_read_statistics(self, p: &FakeProject) -> bool {
        self.can_see(p) && (self.admin() || self.role(p) >= Some(Role::Reporter))
    }

    /// `feature_available?(:merge_requests)`: the feature is on, and for members only
    /// (`private`) the caller is an administrator or at least a Reporter.
    pub(crate) fn has_merge_requests(self, p: &FakeProject) -> bool {
        p.merge_requests_enabled
            && (!p.merge_requests_private || self.admin() || self.role(p) >= Some(Role::Reporter))
    }

    /// `read_merge_request`: the feature is available and the caller may read code-level content.
    pub(crate) fn can_read_merge_requests(self, p: &FakeProject) -> bool {
        self.has_merge_requests(p) && self.can_read_code(p)
    }

    /// `read_pipeline`: everyone who sees the project (public pipelines, GitLab's default, give
    /// it to guests). CI/CD disabled does not take it away: GitLab keeps pipelines readable for
    /// external CI (`builds_disabled & ~internal_builds_disabled` is what prevents it).
    pub(crate) fn can_read_pipelines(self, p: &FakeProject) -> bool {
        self.can_see(p)
    }

    /// `read_build`: as `read_pipeline`, but prevented with CI/CD disabled.
    pub(crate) fn can_read_builds(self, p: &FakeProject) -> bool {
        p.builds_enabled && self.can_see(p)
    }

    /// `read_environment` and `read_deployment`: Reporter and up, administrators, or anyone on
    /// a public project; prevented with CI/CD or environments disabled.
    pub(crate) fn can_read_environments(self, p: &FakeProject) -> bool {
        p.builds_enabled
            && p.environments_enabled
            && self.can_see(p)
            && (self.admin()
                || p.visibility == Visibility::Public
                || self.role(p) >= Some(Role::Reporter))
    }
}

/// Per-request context shared by the handlers.
pub(crate) struct Ctx<'a> {
    pub(crate) caller: Caller,
    /// Base URL without trailing slash (`http://127.0.0.1:PORT` or the override).
    pub(crate) base: &'a str,
    /// Raw request path, for `Link` URLs.
    pub(crate) path: &'a str,
    pub(crate) query: &'a Query,
    /// How the instance writes times.
    pub(crate) stamps: Timestamps,
}

/// Answers one request: rate limit, method, authentication, then the endpoint.
pub(crate) fn respond(
    live: &mut Live,
    limiter: &RateLimiter,
    server_url: &str,
    req: &ApiRequest<'_>,
    endpoint: &Endpoint,
) -> Reply {
    let query = Query::parse(req.query);
    let token = req
        .token
        .or_else(|| query.get("private_token"))
        .or_else(|| query.get("access_token"));
    let caller = Caller::authenticate(&live.instance, token);
    let rate_headers = match throttle(&live.instance, limiter, caller, req.now) {
        Ok(headers) => headers,
        Err(reply) => return reply,
    };
    let base = live
        .instance
        .base_url_override
        .as_deref()
        .unwrap_or(server_url)
        .trim_end_matches('/')
        .to_string();
    let ctx = Ctx {
        caller,
        base: &base,
        path: req.path,
        query: &query,
        stamps: live.instance.timestamps,
    };
    dispatch(live, &ctx, req.method, endpoint).with_headers(rate_headers)
}

/// Counts one request against the instance's `rate_limit_per_minute`: its `RateLimit-*`
/// headers, or the 429 once over the limit (REST and GraphQL share the one limiter).
pub(crate) fn throttle(
    inst: &Instance,
    limiter: &RateLimiter,
    caller: Caller,
    now: u64,
) -> Result<Vec<(&'static str, String)>, Reply> {
    let period = inst.rate_limit_period_seconds.max(1);
    let verdict = inst
        .rate_limit_per_minute
        .map(|limit| limiter.admit(limit, period, now, matches!(caller, Caller::User { .. })));
    match verdict {
        Some(v) if v.throttled => Err(Reply {
            status: 429,
            content_type: "text/plain",
            headers: v.headers,
            body: b"Retry later\n".to_vec(),
        }),
        Some(v) => Ok(v.headers),
        None => Ok(Vec::new()),
    }
}

fn dispatch(live: &mut Live, ctx: &Ctx<'_>, method: &str, endpoint: &Endpoint) -> Reply {
    if matches!(endpoint, Endpoint::Unknown | Endpoint::Graphql) {
        return Reply::error(404, "404 Not Found");
    }
    if !matches!(method, "GET" | "HEAD") {
        return Reply::error(405, "405 Not Allowed")
            .with_headers(vec![("Allow", "OPTIONS, GET, HEAD".to_string())]);
    }
    if ctx.caller == Caller::Invalid {
        return Reply::message(401, "401 Unauthorized");
    }
    let inst = &live.instance;
    let result = match endpoint {
        Endpoint::Projects => return list_projects(live, ctx, None),
        Endpoint::GroupProjects(id) => return list_projects(live, ctx, Some(id)),
        Endpoint::Group(id) => single_group(inst, ctx, id),
        Endpoint::Project(id) => single_project(inst, ctx, id),
        Endpoint::MergeRequests(id) => merge_requests(inst, ctx, id),
        Endpoint::GroupMergeRequests(id) => group_merge_requests(inst, ctx, id),
        Endpoint::Branch(id, name) => branch(inst, ctx, id, name),
        Endpoint::Commits(id) => commits(inst, ctx, id),
        Endpoint::CommitSequence(id, sha) => sequence(inst, ctx, id, sha),
        Endpoint::Pipelines(id) => ci_api::pipelines(inst, ctx, id),
        Endpoint::PipelineLatest(id) => ci_api::latest_pipeline(inst, ctx, id),
        Endpoint::Pipeline(id, pid) => ci_api::pipeline(inst, ctx, id, pid),
        Endpoint::Environments(id) => ci_api::environments(inst, ctx, id),
        Endpoint::Deployments(id) => ci_api::deployments(inst, ctx, id),
        Endpoint::Deployment(id, did) => ci_api::deployment(inst, ctx, id, did),
        Endpoint::DeploymentMergeRequests(id, did) => {
            ci_api::deployment_merge_requests(inst, ctx, id, did)
        }
        Endpoint::User => user(inst, ctx),
        Endpoint::Version => version(ctx),
        Endpoint::Graphql | Endpoint::Unknown => Err(Reply::error(404, "404 Not Found")),
    };
    result.unwrap_or_else(|reply| reply)
}

/// A numeric id or a full path, visible to the caller.
pub(crate) fn find_project<'i>(
    inst: &'i Instance,
    caller: Caller,
    id: &str,
) -> Result<&'i FakeProject, Reply> {
    let found = if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        id.parse::<u64>().ok().and_then(|n| inst.project(n))
    } else {
        inst.project_by_path(id)
    };
    found
        .filter(|p| caller.can_see(p))
        .ok_or_else(|| Reply::message(404, "404 Project Not Found"))
}

// ---------------------------------------------------------------------------------------------
// Projects
// ---------------------------------------------------------------------------------------------

/// `order_by` values accepted by `GET /projects`.
const PROJECT_ORDERS: [&str; 12] = [
    "id",
    "name",
    "path",
    "created_at",
    "updated_at",
    "last_activity_at",
    "similarity",
    "star_count",
    "repository_size",
    "storage_size",
    "packages_size",
    "wiki_size",
];
/// `order_by` values accepted by `GET /groups/:id/projects`.
const GROUP_PROJECT_ORDERS: [&str; 8] = [
    "id",
    "name",
    "path",
    "created_at",
    "updated_at",
    "last_activity_at",
    "similarity",
    "star_count",
];
const MIN_ACCESS_LEVELS: [&str; 7] = ["5", "10", "15", "20", "30", "40", "50"];

/// Parameters of a project listing (both endpoints).
struct Listing {
    page: PageRequest,
    /// `Some` for `pagination=keyset`.
    keyset: Option<KeysetOrder>,
    desc: bool,
    simple: bool,
    statistics: bool,
    membership: bool,
    owned: bool,
    archived: Option<bool>,
    active: bool,
    visibility: Option<&'static str>,
    min_access_level: Option<u32>,
    with_issues_enabled: bool,
    with_merge_requests_enabled: bool,
    search: Vec<String>,
    id_after: Option<i64>,
    id_before: Option<i64>,
    include_subgroups: bool,
    with_shared: bool,
}

impl Listing {
    fn parse(q: &Query, group: bool) -> Result<Listing, Reply> {
        let orders: &[&str] = if group {
            &GROUP_PROJECT_ORDERS
        } else {
            &PROJECT_ORDERS
        };
        let order_by = q.choice("order_by", orders)?;
        let desc = q.choice("sort", &["asc", "desc"])? != Some("asc");
        // The group endpoint paginates with plain offsets (`paginate`, not
        // `paginate_with_strategies`): it ignores `pagination=keyset` and has no offset limit.
        let keyset = !group && q.choice("pagination", &["offset", "keyset"])? == Some("keyset");
        let flag = |k: &str| q.bool(k).map(|b| b.unwrap_or(false));
        let listing = Listing {
            page: PageRequest::from_query(q)?,
            keyset: keyset.then_some(if desc {
                KeysetOrder::Desc
            } else {
                KeysetOrder::Asc
            }),
            desc,
            simple: flag("simple")?,
            statistics: flag("statistics")? && !group,
            membership: flag("membership")?,
            owned: flag("owned")?,
            archived: q.bool("archived")?,
            active: flag("active")?,
            visibility: q.choice("visibility", &["private", "internal", "public"])?,
            min_access_level: q
                .choice("min_access_level", &MIN_ACCESS_LEVELS)?
                .and_then(|v| v.parse().ok()),
            with_issues_enabled: flag("with_issues_enabled")?,
            with_merge_requests_enabled: flag("with_merge_requests_enabled")?,
            search: q
                .get("search")
                .map(|s| s.split_whitespace().map(str::to_lowercase).collect())
                .unwrap_or_default(),
            id_after: q.int("id_after")?,
            id_before: q.int("id_before")?,
            include_subgroups: flag("include_subgroups")?,
            with_shared: q.bool("with_shared")?.unwrap_or(true),
        };
        if keyset && order_by != Some("id") {
            return Err(Reply::error(
                405,
                "Keyset pagination is not yet available for this type of request",
            ));
        }
        Ok(listing)
    }

    /// The filters common to both listing endpoints (the group scope is checked by the caller).
    fn keeps(&self, inst: &Instance, caller: Caller, p: &FakeProject) -> bool {
        let role = caller.role(p);
        caller.can_see(p)
            && (!self.membership || role.is_some())
            && (!self.owned || role == Some(Role::Owner))
            && self.archived.is_none_or(|a| p.archived == a)
            && (!self.active || !p.archived)
            && self.visibility.is_none_or(|v| p.visibility.as_str() == v)
            && self
                .min_access_level
                .is_none_or(|l| role.is_some_and(|r| r.access_level() >= l))
            && (!self.with_issues_enabled || p.issues_enabled)
            && (!self.with_merge_requests_enabled || p.merge_requests_enabled)
            && (self.search.is_empty() || {
                let hay = format!("{} {}", p.path_with_namespace(inst), p.name).to_lowercase();
                self.search.iter().all(|t| hay.contains(t.as_str()))
            })
    }
}

/// The groups whose projects a group listing covers: the group, plus its descendants when asked.
pub(crate) fn group_scope(inst: &Instance, root: u64, include_subgroups: bool) -> BTreeSet<u64> {
    let mut scope = BTreeSet::from([root]);
    if include_subgroups {
        // Groups are few; iterate to a fixed point instead of building a tree.
        loop {
            let before = scope.len();
            for g in &inst.groups {
                if g.parent_id.is_some_and(|p| scope.contains(&p)) {
                    scope.insert(g.id);
                }
            }
            if scope.len() == before {
                break;
            }
        }
    }
    scope
}

pub(crate) fn in_scope(p: &FakeProject, scope: &BTreeSet<u64>, with_shared: bool) -> bool {
    matches!(p.namespace, Namespace::Group(g) if scope.contains(&g))
        || (with_shared && p.shared_with_groups.iter().any(|g| scope.contains(g)))
}

/// A numeric id or a full path, visible to the caller. Groups have no visibility of their own
/// here: one is visible when the caller can see something in it (or is an administrator).
pub(crate) fn find_group<'i>(
    inst: &'i Instance,
    caller: Caller,
    id: &str,
) -> Result<&'i FakeGroup, Reply> {
    let g = if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        id.parse().ok().and_then(|n| inst.group(n))
    } else {
        inst.group_by_path(id)
    };
    let not_found = || Reply::message(404, "404 Group Not Found");
    let g = g.ok_or_else(not_found)?;
    let whole = group_scope(inst, g.id, true);
    let visible = caller.admin()
        || inst
            .projects
            .iter()
            .any(|p| in_scope(p, &whole, true) && caller.can_see(p));
    if visible { Ok(g) } else { Err(not_found()) }
}

/// `GET /projects` (`group = None`) and `GET /groups/:id/projects`.
fn list_projects(live: &mut Live, ctx: &Ctx<'_>, group: Option<&String>) -> Reply {
    match project_page(&live.instance, ctx, group) {
        Ok((reply, returned)) => {
            live.listed(&returned);
            reply
        }
        Err(reply) => reply,
    }
}

/// Selects and renders one page of a project listing; also returns the ids it contains.
fn project_page(
    inst: &Instance,
    ctx: &Ctx<'_>,
    group: Option<&String>,
) -> Result<(Reply, Vec<u64>), Reply> {
    let listing = Listing::parse(ctx.query, group.is_some())?;
    let scope = match group {
        None => None,
        Some(id) => {
            let g = find_group(inst, ctx.caller, id)?;
            Some(group_scope(inst, g.id, listing.include_subgroups))
        }
    };
    if group.is_none()
        && listing.keyset.is_none()
        && listing.page.exceeds_offset_limit(inst.offset_limit)
    {
        return Err(Reply::error(
            405,
            &offset_limit_message(inst.offset_limit, "Project"),
        ));
    }

    // Projects are sorted by id, so id_after/id_before are a sub-slice.
    let all = &inst.projects;
    let lo = listing.id_after.map_or(0, |a| {
        all.partition_point(|p| i128::from(p.id) <= i128::from(a))
    });
    let hi = listing.id_before.map_or(all.len(), |b| {
        all.partition_point(|p| i128::from(p.id) < i128::from(b))
    });
    let slice = all.get(lo..hi).unwrap_or(&[]);
    let ordered: Box<dyn Iterator<Item = &FakeProject>> = if listing.desc {
        Box::new(slice.iter().rev())
    } else {
        Box::new(slice.iter())
    };
    let matching = ordered.filter(|p| {
        listing.keeps(inst, ctx.caller, p)
            && scope
                .as_ref()
                .is_none_or(|s| in_scope(p, s, listing.with_shared))
    });

    let (items, headers) = match listing.keyset {
        Some(order) => {
            let items: Vec<&FakeProject> = matching.take(listing.page.per_page as usize).collect();
            let ids: Vec<u64> = items.iter().map(|p| p.id).collect();
            let headers = keyset_headers(ctx.query, ctx.base, ctx.path, order, &ids);
            (items, headers)
        }
        None => {
            let (items, page) = select_offset(matching, &listing.page);
            (items, page.headers(ctx.query, ctx.base, ctx.path))
        }
    };
    let view = if listing.simple || (group.is_none() && ctx.caller == Caller::Anonymous) {
        View::Basic
    } else {
        View::Full {
            statistics: listing.statistics,
            permissions: group.is_none(),
        }
    };
    let body = Value::Array(
        items
            .iter()
            .map(|p| project_json(inst, ctx, p, view))
            .collect(),
    );
    let ids = items.iter().map(|p| p.id).collect();
    Ok((Reply::json(200, &body).with_headers(headers), ids))
}

/// `GET /projects/:id`.
fn single_project(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let statistics = ctx.query.bool("statistics")?.unwrap_or(false);
    ctx.query.bool("license")?;
    let p = find_project(inst, ctx.caller, id)?;
    let view = match ctx.caller {
        Caller::Anonymous => View::Basic,
        _ => View::Full {
            statistics,
            permissions: true,
        },
    };
    Ok(Reply::json(200, &project_json(inst, ctx, p, view)))
}

/// Which project entity to render.
#[derive(Debug, Clone, Copy)]
pub(crate) enum View {
    /// `BasicProjectDetails` (`simple=true`, anonymous callers).
    Basic,
    /// `Project` / `ProjectWithAccess`.
    Full { statistics: bool, permissions: bool },
}

/// "Acme / Platform / Infra" for a group namespace, the user's name for the personal one.
pub(crate) fn namespace_full_name(inst: &Instance, ns: Namespace) -> String {
    match ns {
        Namespace::User => display_name(&inst.username),
        Namespace::Group(id) => {
            let mut names = Vec::new();
            let mut current = inst.group(id);
            while let Some(g) = current {
                names.push(g.name.as_str());
                if names.len() > 32 {
                    break; // a parent cycle in test data
                }
                current = g.parent_id.and_then(|p| inst.group(p));
            }
            names.reverse();
            names.join(" / ")
        }
    }
}

/// "demo-user" -> "Demo User".
fn display_name(username: &str) -> String {
    username
        .split(['-', '_', '.'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /groups/:id` (by id or full path): the group as GitLab's `Entities::Group` has it
/// (the fields the fake models; `projects` only with `with_projects`, which the fake never
/// lists: GitLab's default `true` is deprecated for API v4 clients that page projects).
fn single_group(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let g = find_group(inst, ctx.caller, id)?;
    let path = g.full_path.rsplit('/').next().unwrap_or("");
    Ok(Reply::json(
        200,
        &json!({
            "id": g.id,
            "name": g.name,
            "path": path,
            "full_name": g.full_path.replace('/', " / "),
            "full_path": g.full_path,
            "parent_id": g.parent_id,
            "visibility": "private",
            "web_url": format!("{}/groups/{}", ctx.base, g.full_path),
        }),
    ))
}

fn namespace_json(inst: &Instance, base: &str, ns: Namespace) -> Value {
    match ns {
        Namespace::User => json!({
            "id": USER_NAMESPACE_ID,
            "name": display_name(&inst.username),
            "path": inst.username,
            "kind": "user",
            "full_path": inst.username,
            "parent_id": null,
            "avatar_url": null,
            "web_url": format!("{base}/{}", inst.username),
        }),
        Namespace::Group(id) => {
            let g = inst.group(id);
            let full_path = g.map_or("", |g| g.full_path.as_str());
            json!({
                "id": id,
                "name": g.map_or("", |g| g.name.as_str()),
                "path": full_path.rsplit('/').next().unwrap_or(""),
                "kind": "group",
                "full_path": full_path,
                "parent_id": g.and_then(|g| g.parent_id),
                "avatar_url": null,
                "web_url": format!("{base}/groups/{full_path}"),
            })
        }
    }
}

pub(crate) fn user_json(inst: &Instance, base: &str) -> Value {
    json!({
        "id": USER_ID,
        "username": inst.username,
        "name": display_name(&inst.username),
        "state": "active",
        "locked": false,
        "avatar_url": null,
        "web_url": format!("{base}/{}", inst.username),
    })
}

/// The project entity as the caller may see it.
pub(crate) fn project_json(inst: &Instance, ctx: &Ctx<'_>, p: &FakeProject, view: View) -> Value {
    let base = ctx.base;
    let pwn = p.path_with_namespace(inst);
    let web_url = format!("{base}/{pwn}");
    let host = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .split([':', '/'])
        .next()
        .unwrap_or("");
    let read_code = ctx.caller.can_read_code(p);
    // GitLab exposes `default_branch_or_main`: an empty repository still says "main" (older
    // GitLab said null).
    let default_branch = match p.default_branch.as_deref() {
        Some(branch) => json!(branch),
        None if p.null_default_branch => Value::Null,
        None => json!("main"),
    };
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("id", json!(p.id));
    put("description", Value::Null);
    put("name", json!(p.name));
    put(
        "name_with_namespace",
        json!(format!(
            "{} / {}",
            namespace_full_name(inst, p.namespace),
            p.name
        )),
    );
    put("path", json!(p.path));
    put("path_with_namespace", json!(pwn));
    put("created_at", json!(ctx.stamps.api(p.created_at())));
    if read_code {
        put("default_branch", default_branch);
    }
    put("tag_list", json!([]));
    put("topics", json!([]));
    put("ssh_url_to_repo", json!(format!("git@{host}:{pwn}.git")));
    put("http_url_to_repo", json!(format!("{web_url}.git")));
    put("web_url", json!(web_url));
    if read_code {
        let readme = match &p.default_branch {
            Some(b) if !p.is_empty_repo() => json!(format!("{web_url}/-/blob/{b}/README.md")),
            _ => Value::Null,
        };
        put("readme_url", readme);
        put("forks_count", json!(p.forks_count));
    }
    put("avatar_url", Value::Null);
    put("star_count", json!(p.star_count));
    put(
        "last_activity_at",
        json!(ctx.stamps.api(p.last_activity_at)),
    );
    put("namespace", namespace_json(inst, base, p.namespace));
    let View::Full {
        statistics,
        permissions,
    } = view
    else {
        return Value::Object(m);
    };

    let enabled = |on: bool| json!(if on { "enabled" } else { "disabled" });
    let merge_requests = ctx.caller.has_merge_requests(p);
    let api = format!("{base}{API_PREFIX}/projects/{}", p.id);
    let mut links = Map::new();
    links.insert("self".into(), json!(api));
    if p.issues_enabled {
        links.insert("issues".into(), json!(format!("{api}/issues")));
    }
    if merge_requests {
        links.insert(
            "merge_requests".into(),
            json!(format!("{api}/merge_requests")),
        );
    }
    links.insert(
        "repo_branches".into(),
        json!(format!("{api}/repository/branches")),
    );
    links.insert("labels".into(), json!(format!("{api}/labels")));
    links.insert("events".into(), json!(format!("{api}/events")));
    links.insert("members".into(), json!(format!("{api}/members")));
    links.insert(
        "cluster_agents".into(),
        json!(format!("{api}/cluster_agents")),
    );

    put("visibility", json!(p.visibility));
    put("archived", json!(p.archived));
    put("updated_at", json!(ctx.stamps.api(p.updated_at())));
    put("empty_repo", json!(p.is_empty_repo()));
    if p.namespace == Namespace::User {
        put("owner", user_json(inst, base));
    }
    put("_links", Value::Object(links));
    put("creator_id", json!(USER_ID));
    put("import_status", json!("none"));
    put("issues_enabled", json!(p.issues_enabled));
    if p.issues_enabled {
        put("open_issues_count", json!(p.open_issues));
    }
    put("merge_requests_enabled", json!(merge_requests));
    put("wiki_enabled", json!(true));
    put("jobs_enabled", json!(p.builds_enabled));
    put("snippets_enabled", json!(true));
    put("issues_access_level", enabled(p.issues_enabled));
    put(
        "merge_requests_access_level",
        match (p.merge_requests_enabled, p.merge_requests_private) {
            (false, _) => json!("disabled"),
            (true, true) => json!("private"),
            (true, false) => json!("enabled"),
        },
    );
    put("repository_access_level", enabled(true));
    put("builds_access_level", enabled(p.builds_enabled));
    put("wiki_access_level", enabled(true));
    put("snippets_access_level", enabled(true));
    put("environments_access_level", enabled(p.environments_enabled));
    put("merge_method", json!("merge"));
    let shared: Vec<Value> = p
        .shared_with_groups
        .iter()
        .map(|gid| {
            let g = inst.group(*gid);
            json!({
                "group_id": gid,
                "group_name": g.map_or("", |g| g.name.as_str()),
                "group_full_path": g.map_or("", |g| g.full_path.as_str()),
                "group_access_level": 30,
                "expires_at": null,
            })
        })
        .collect();
    put("shared_with_groups", json!(shared));
    if statistics && ctx.caller.can_read_statistics(p) {
        let s = &p.storage;
        put(
            "statistics",
            json!({
                "commit_count": p.commits,
                "storage_size": s.total(),
                "repository_size": s.repository,
                "wiki_size": s.wiki,
                "lfs_objects_size": s.lfs_objects,
                "job_artifacts_size": s.job_artifacts,
                "pipeline_artifacts_size": s.pipeline_artifacts,
                "packages_size": s.packages,
                "snippets_size": s.snippets,
                "uploads_size": s.uploads,
                "container_registry_size": s.container_registry,
            }),
        );
    }
    if permissions {
        let access = ctx
            .caller
            .role(p)
            .map(|r| json!({ "access_level": r.access_level(), "notification_level": 3 }));
        // `ProjectWithAccess`: the direct membership, and the highest in the project's groups.
        let inherited = p.role_inherited && matches!(p.namespace, Namespace::Group(_));
        let (project_access, group_access) = if inherited {
            (Value::Null, access.unwrap_or(Value::Null))
        } else {
            (access.unwrap_or(Value::Null), Value::Null)
        };
        put(
            "permissions",
            json!({ "project_access": project_access, "group_access": group_access }),
        );
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------------------------
// Merge requests
// ---------------------------------------------------------------------------------------------

const MR_STATES: [&str; 5] = ["opened", "closed", "locked", "merged", "all"];
/// `order_by` values GitLab accepts. `created_at` (the default) and `updated_at` are modelled;
/// the others sort like `created_at`.
const MR_ORDERS: [&str; 8] = [
    "created_at",
    "updated_at",
    "title",
    "merged_at",
    "label_priority",
    "milestone_due",
    "popularity",
    "priority",
];
/// `scope` values. Only `all` matches anything: the fake's merge requests are authored by,
/// assigned to and reviewed by other users than the token's.
const MR_SCOPES: [&str; 6] = [
    "created-by-me",
    "assigned-to-me",
    "created_by_me",
    "assigned_to_me",
    "reviews_for_me",
    "all",
];

/// Parameters common to both merge request listings.
struct MrQuery {
    filter: MrFilter,
    order: MrOrder,
    desc: bool,
    simple: bool,
    page: PageRequest,
}

impl MrQuery {
    fn parse(q: &Query, stamps: Timestamps) -> Result<MrQuery, BadParam> {
        let state = q.choice("state", &MR_STATES)?;
        let simple = q.choice("view", &["simple"])?.is_some();
        let order = match q.choice("order_by", &MR_ORDERS)? {
            Some("updated_at") => MrOrder::Updated,
            _ => MrOrder::Created,
        };
        let desc = q.choice("sort", &["asc", "desc"])? != Some("asc");
        // No default here (the project and group endpoints): a missing scope means all. Only
        // `GET /merge_requests` defaults to `created_by_me`.
        let scope = q.choice("scope", &MR_SCOPES)?.unwrap_or("all");
        let filter = MrFilter {
            state: state.and_then(MrState::parse),
            created_after: q.datetime("created_after", true, stamps)?,
            created_before: q.datetime("created_before", false, stamps)?,
            updated_after: q.datetime("updated_after", true, stamps)?,
            updated_before: q.datetime("updated_before", false, stamps)?,
            merged_after: None,
            merged_before: None,
            nothing: scope != "all",
        };
        Ok(MrQuery {
            filter,
            order,
            desc,
            simple,
            page: PageRequest::from_query(q)?,
        })
    }
}

/// The global merge request id (`id`, as opposed to the per-project `iid`).
pub(crate) fn merge_request_id(p: &FakeProject, iid: u64) -> u64 {
    p.id.wrapping_mul(1_000_000).wrapping_add(iid)
}

/// `GET /projects/:id/merge_requests`: offset pagination, totals up to 10,000, no offset limit.
fn merge_requests(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let mq = MrQuery::parse(ctx.query, ctx.stamps)?;
    let p = find_project(inst, ctx.caller, id)?;
    if !ctx.caller.can_read_merge_requests(p) {
        return Err(Reply::message(403, "403 Forbidden"));
    }
    let view = p.merge_request_view();
    let page = OffsetPage::for_total(&mq.page, view.count(&mq.filter));
    let mut sorted = view.sorted(&mq.filter, mq.order, mq.desc);
    sorted.skip_items(mq.page.offset());
    let pwn = p.path_with_namespace(inst);
    let items: Vec<Value> = sorted
        .take(mq.page.per_page as usize)
        .filter_map(|(_, iid)| view.get(iid))
        .map(|m| merge_request_json(ctx, p, &pwn, &m, mq.simple, None))
        .collect();
    let headers = page.headers(ctx.query, ctx.base, ctx.path);
    Ok(Reply::json(200, &Value::Array(items)).with_headers(headers))
}

/// `GET /groups/:id/merge_requests`: the merge requests of every project in the group and its
/// subgroups (always, as GitLab's group finder), not of projects merely shared into it, that the
/// caller may read (`read_merge_request`, as on the project endpoint); archived projects only
/// with `non_archived=false`. Sorted across projects by the `order_by` time, then the id.
fn group_merge_requests(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let mq = MrQuery::parse(ctx.query, ctx.stamps)?;
    let non_archived = ctx.query.bool("non_archived")?.unwrap_or(true);
    let group = find_group(inst, ctx.caller, id)?;
    let scope = group_scope(inst, group.id, true);
    let f = &mq.filter;

    // One sorted stream per project with matches. The count is cheap (O(log N) per project, and
    // O(1) for a window after everything synthesised), so this scan stays fast on 100,000 projects.
    let mut streams = Vec::new();
    let mut total = 0u64;
    let only_changed = f.after_horizon();
    for p in inst.projects.iter().filter(|_| !f.nothing) {
        if (only_changed && !has_history(p))
            || (non_archived && p.archived)
            || !matches!(p.namespace, Namespace::Group(g) if scope.contains(&g))
            || !ctx.caller.can_read_merge_requests(p)
        {
            continue;
        }
        let view = p.merge_request_view();
        let n = view.count(f);
        if n > 0 {
            total += n;
            streams.push((p, view, view.sorted(f, mq.order, mq.desc)));
        }
    }

    // k-way merge on (time, id): a max-heap, with both keys inverted for ascending order.
    let desc = mq.desc;
    let rank = |key: i64, id: u64| if desc { (key, id) } else { (!key, !id) };
    let mut heap = BinaryHeap::with_capacity(streams.len());
    for (i, (p, _, sorted)) in streams.iter_mut().enumerate() {
        if let Some((key, iid)) = sorted.next() {
            heap.push((rank(key, merge_request_id(p, iid)), i, iid));
        }
    }
    let (offset, per_page) = (mq.page.offset(), mq.page.per_page as usize);
    let mut page_items = Vec::with_capacity(per_page);
    let mut skipped = 0u64;
    while page_items.len() < per_page {
        let Some((_, i, iid)) = heap.pop() else {
            break;
        };
        let (p, _, sorted) = &mut streams[i];
        if let Some((key, next)) = sorted.next() {
            heap.push((rank(key, merge_request_id(p, next)), i, next));
        }
        if skipped < offset {
            skipped += 1;
        } else {
            page_items.push((i, iid));
        }
    }
    let items: Vec<Value> = page_items
        .into_iter()
        .filter_map(|(i, iid)| {
            let (p, view, _) = &streams[i];
            let m = view.get(iid)?;
            let pwn = p.path_with_namespace(inst);
            Some(merge_request_json(
                ctx,
                p,
                &pwn,
                &m,
                mq.simple,
                Some(group.id),
            ))
        })
        .collect();
    let page = OffsetPage::for_total(&mq.page, total);
    let headers = page.headers(ctx.query, ctx.base, ctx.path);
    Ok(Reply::json(200, &Value::Array(items)).with_headers(headers))
}

const VERBS: [&str; 8] = [
    "Fix", "Add", "Refactor", "Update", "Remove", "Improve", "Document", "Speed up",
];
const NOUNS: [&str; 8] = [
    "pagination",
    "cache invalidation",
    "login flow",
    "CI configuration",
    "metrics endpoint",
    "README",
    "dependency pins",
    "error handling",
];
const AUTHORS: [&str; 5] = [
    "Ada Lovelace",
    "Grace Hopper",
    "Margaret Hamilton",
    "Ken Thompson",
    "Barbara Liskov",
];

pub(crate) fn title(seed: u64) -> String {
    let h = splitmix64(seed);
    format!(
        "{} {}",
        VERBS[(h % 8) as usize],
        NOUNS[((h >> 8) % 8) as usize]
    )
}

/// The merge request entity: `MergeRequestSimple` for `view=simple`, else `MergeRequestBasic`.
/// `group`: the group a group listing is for (`references.relative` is relative to it).
pub(crate) fn merge_request_json(
    ctx: &Ctx<'_>,
    p: &FakeProject,
    pwn: &str,
    mr: &Mr,
    simple: bool,
    group: Option<u64>,
) -> Value {
    let iid = mr.iid;
    let state = mr.state.as_str();
    let seed = p.id.wrapping_shl(24) ^ iid;
    let name = match mr.edits {
        0 => title(seed),
        n => format!("{} (edit {n})", title(seed)),
    };
    let updated = mr.updated_at;
    let base = ctx.base;
    let web_url = format!("{base}/{pwn}/-/merge_requests/{iid}");
    let mut m = json!({
        "id": merge_request_id(p, iid),
        "iid": iid,
        "project_id": p.id,
        "title": name,
        "description": format!("Merge request {iid} of {pwn}."),
        "state": state,
        "created_at": ctx.stamps.api(mr.created_at),
        "updated_at": ctx.stamps.api(updated),
        "web_url": web_url,
    });
    if simple {
        return m;
    }
    let author = AUTHORS[(splitmix64(seed ^ 0xA) % 5) as usize];
    let finished = |s: &str| {
        if state == s {
            json!(ctx.stamps.api(updated))
        } else {
            Value::Null
        }
    };
    // `to_reference(group)`: the project path alone inside its own namespace, else the full path.
    let relative = match group {
        None => format!("!{iid}"),
        Some(g) if p.namespace == Namespace::Group(g) => format!("{}!{iid}", p.path),
        Some(_) => format!("{pwn}!{iid}"),
    };
    let extra = json!({
        "merged_at": mr.merged_at.map(|t| ctx.stamps.api(t)),
        "closed_at": finished("closed"),
        "target_branch": p.default_branch.as_deref().unwrap_or("main"),
        "source_branch": format!("feature/{iid}"),
        "source_project_id": p.id,
        "target_project_id": p.id,
        "author": {
            "id": 100 + splitmix64(seed ^ 0xA) % 5,
            "username": author.to_lowercase().replace(' ', "."),
            "name": author,
            "state": "active",
            "avatar_url": null,
            "web_url": format!("{base}/{}", author.to_lowercase().replace(' ', ".")),
        },
        "upvotes": splitmix64(seed) % 4,
        "downvotes": 0,
        "labels": [],
        "draft": false,
        "work_in_progress": false,
        "imported": false,
        "imported_from": "none",
        "merge_status": if state == "opened" { "can_be_merged" } else { "unchecked" },
        "detailed_merge_status": if state == "opened" { "mergeable" } else { "not_open" },
        "sha": format!("{:016x}{:016x}{:08x}", splitmix64(seed ^ 1), splitmix64(seed ^ 2), seed as u32),
        "user_notes_count": splitmix64(seed ^ 3) % 12,
        "references": {
            "short": format!("!{iid}"),
            "relative": relative,
            "full": format!("{pwn}!{iid}"),
        },
    });
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Repository
// ---------------------------------------------------------------------------------------------

/// A project whose code the caller may read (404 if invisible, 403 if code is not readable).
fn code_project<'i>(
    inst: &'i Instance,
    caller: Caller,
    id: &str,
) -> Result<&'i FakeProject, Reply> {
    let p = find_project(inst, caller, id)?;
    if caller.can_read_code(p) {
        Ok(p)
    } else {
        Err(Reply::message(403, "403 Forbidden"))
    }
}

fn commit_json(ctx: &Ctx<'_>, p: &FakeProject, pwn: &str, k: u64) -> Value {
    let base = ctx.base;
    let sha = p.commit_sha(k).unwrap_or_default();
    let parents: Vec<String> = p.commit_sha(k.wrapping_sub(1)).into_iter().collect();
    let seed = p.id.wrapping_shl(32) ^ k;
    let title = format!("{} ({k})", title(seed));
    let date = ctx.stamps.commit(p.commit_time(k));
    let author = AUTHORS[(splitmix64(seed ^ 0xC) % 5) as usize];
    let email = format!("{}@example.com", author.to_lowercase().replace(' ', "."));
    json!({
        "id": sha,
        "short_id": sha.get(..8).unwrap_or(""),
        "created_at": date,
        "parent_ids": parents,
        "title": title,
        "message": format!("{title}\n"),
        "author_name": author,
        "author_email": email,
        "authored_date": date,
        "committer_name": author,
        "committer_email": email,
        "committed_date": date,
        "trailers": {},
        "extended_trailers": {},
        "web_url": format!("{base}/{pwn}/-/commit/{sha}"),
    })
}

/// `GET /projects/:id/repository/branches/:branch`: only the default branch exists.
fn branch(inst: &Instance, ctx: &Ctx<'_>, id: &str, name: &str) -> Result<Reply, Reply> {
    let p = code_project(inst, ctx.caller, id)?;
    if p.is_empty_repo() {
        return Err(Reply::message(404, "404 Repository Not Found"));
    }
    if p.default_branch.as_deref() != Some(name) {
        return Err(Reply::message(404, "404 Branch Not Found"));
    }
    let pwn = p.path_with_namespace(inst);
    let can_push = ctx.caller.admin() || ctx.caller.role(p) >= Some(Role::Developer);
    let body = json!({
        "name": name,
        "merged": false,
        "protected": true,
        "default": true,
        "developers_can_push": false,
        "developers_can_merge": false,
        "can_push": can_push,
        "web_url": format!("{}/{pwn}/-/tree/{name}", ctx.base),
        "commit": commit_json(ctx, p, &pwn, p.commits),
    });
    Ok(Reply::json(200, &body))
}

/// `GET /projects/:id/repository/commits`: newest first, never totals, phantom next page.
fn commits(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let q = ctx.query;
    let req = PageRequest::from_query(q)?;
    for flag in ["all", "with_stats", "first_parent", "trailers"] {
        q.bool(flag)?;
    }
    let p = code_project(inst, ctx.caller, id)?;
    // An empty repository exists (it was created with the project): it simply has no commits.
    let head = match q.get("ref_name") {
        _ if p.is_empty_repo() => 0,
        None | Some("HEAD") => p.commits,
        Some(r) if p.default_branch.as_deref() == Some(r) => p.commits,
        Some(r) => p.commit_number(r).unwrap_or(0),
    };
    let remaining = head.saturating_sub(req.offset());
    let len = remaining.min(req.per_page);
    let pwn = p.path_with_namespace(inst);
    let items: Vec<Value> = (0..len)
        .map(|i| commit_json(ctx, p, &pwn, remaining - i))
        .collect();
    let page = OffsetPage::commits(&req, items.len());
    Ok(Reply::json(200, &Value::Array(items)).with_headers(page.headers(q, ctx.base, ctx.path)))
}

/// `GET /projects/:id/repository/commits/:sha/sequence` (GitLab 16.9+).
fn sequence(inst: &Instance, ctx: &Ctx<'_>, id: &str, sha: &str) -> Result<Reply, Reply> {
    ctx.query.bool("first_parent")?;
    let p = code_project(inst, ctx.caller, id)?;
    let k = if !p.is_empty_repo() && p.default_branch.as_deref() == Some(sha) {
        Some(p.commits)
    } else {
        p.commit_number(sha)
    };
    match k {
        Some(count) => Ok(Reply::json(200, &json!({ "count": count }))),
        None => Err(Reply::message(404, "404 Commit Not Found")),
    }
}

// ---------------------------------------------------------------------------------------------
// User and version
// ---------------------------------------------------------------------------------------------

fn user(inst: &Instance, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let Caller::User { admin } = ctx.caller else {
        return Err(Reply::message(401, "401 Unauthorized"));
    };
    let mut body = user_json(inst, ctx.base);
    if let Some(m) = body.as_object_mut() {
        m.insert("is_admin".into(), json!(admin));
        m.insert("bot".into(), json!(false));
    }
    Ok(Reply::json(200, &body))
}

fn version(ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    if ctx.caller == Caller::Anonymous {
        return Err(Reply::message(401, "401 Unauthorized"));
    }
    Ok(Reply::json(
        200,
        &json!({ "version": "17.6.0", "revision": "abc123" }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::MergeRequestCounts;
    use crate::history::{HISTORY_HORIZON, MergeRequestChange};

    const URL: &str = "http://127.0.0.1:1";

    fn demo() -> Live {
        Live::new(Instance::demo())
    }

    /// Calls the API without HTTP; `token` None = anonymous.
    fn call_as(live: &mut Live, target: &str, token: Option<&str>) -> Reply {
        let (path, query) = target
            .split_once('?')
            .map_or((target, None), |(p, q)| (p, Some(q)));
        let path = format!("{API_PREFIX}{path}");
        let req = ApiRequest {
            method: "GET",
            path: &path,
            query,
            token,
            now: 0,
        };
        respond(
            live,
            &RateLimiter::default(),
            URL,
            &req,
            &Endpoint::parse(&path),
        )
    }

    fn call(live: &mut Live, target: &str) -> Reply {
        let token = live.instance.token.clone();
        call_as(live, target, Some(&token))
    }

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    fn body(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    }

    fn items(r: &Reply) -> Vec<Value> {
        body(r).as_array().cloned().unwrap_or_default()
    }

    fn by_path(list: &[Value], path: &str) -> Value {
        list.iter()
            .find(|p| p["path_with_namespace"] == path)
            .cloned()
            .unwrap_or_else(|| panic!("{path} not listed"))
    }

    /// Every page of an offset listing, following X-Next-Page.
    fn all_pages(live: &mut Live, target: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let r = call(live, &format!("{target}&page={page}"));
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            out.extend(items(&r));
            match header(&r, "X-Next-Page").and_then(|n| n.parse().ok()) {
                Some(n) => page = n,
                None => return out,
            }
        }
    }

    #[test]
    fn routes_decode_segments() {
        assert_eq!(
            Endpoint::parse(
                "/api/v4/projects/acme%2Frelease-train/repository/branches/release%2F2.0"
            ),
            Endpoint::Branch("acme/release-train".into(), "release/2.0".into())
        );
        assert_eq!(
            Endpoint::parse("/api/v4/projects/1/repository/branches/release/2.0"),
            Endpoint::Unknown
        );
        assert_eq!(Endpoint::parse("/api/v4/projects/"), Endpoint::Unknown);
        assert_eq!(Endpoint::parse("/api/v4"), Endpoint::Unknown);
        assert_eq!(
            Endpoint::parse("/api/v4/groups/acme%2Fweb/projects"),
            Endpoint::GroupProjects("acme/web".into())
        );
        assert!(matches!(
            Endpoint::parse("/api/v4/projects/%E0%A4%A/repository/commits/%ZZ/sequence"),
            Endpoint::CommitSequence(..)
        ));
        assert_eq!(
            token_from_headers(None, Some(b"bearer abc ")),
            Some("abc".to_string())
        );
        assert_eq!(token_from_headers(Some(b" "), Some(b"Basic xyz")), None);
        assert_eq!(
            token_from_headers(Some(b"t1"), Some(b"Bearer t2")),
            Some("t1".to_string())
        );
    }

    #[test]
    fn inherited_roles_private_merge_requests_and_null_default_branch() {
        let mut live = demo();
        let listed = all_pages(&mut live, "/projects?per_page=100&order_by=id&sort=asc");
        let permissions = |path: &str| by_path(&listed, path)["permissions"].clone();
        let access = |level: u32| json!({"access_level": level, "notification_level": 3});
        // ProjectWithAccess: a group membership is `group_access`, the direct one `project_access`.
        assert_eq!(
            permissions("acme/platform/infra/terraform"),
            json!({"project_access": null, "group_access": access(20)})
        );
        assert_eq!(
            permissions("labs/secret"),
            json!({"project_access": null, "group_access": access(10)})
        );
        assert_eq!(
            permissions("acme/api"),
            json!({"project_access": access(40), "group_access": null})
        );
        assert_eq!(
            permissions("other-org/public-lib"),
            json!({"project_access": null, "group_access": null})
        );
        let inherited = live
            .instance
            .projects
            .iter()
            .filter(|p| p.role_inherited)
            .count();
        assert!(inherited > 40, "{inherited}");
        // Merge requests for members only: hidden from a non-member, read from Reporter up.
        let portal = by_path(&listed, "partners/portal");
        assert_eq!(portal["merge_requests_access_level"], "private");
        assert_eq!(portal["merge_requests_enabled"], false);
        assert!(portal["_links"].get("merge_requests").is_none());
        assert_eq!(call(&mut live, "/projects/34/merge_requests").status, 403);
        let private_for_reporters = live
            .instance
            .projects
            .iter()
            .find(|p| p.merge_requests_private && p.role.is_some())
            .map(|p| p.id)
            .unwrap_or_default();
        let member = by_path(
            &listed,
            &live
                .instance
                .project(private_for_reporters)
                .map(|p| p.path_with_namespace(&live.instance))
                .unwrap_or_default(),
        );
        assert_eq!(member["merge_requests_access_level"], "private");
        assert_eq!(member["merge_requests_enabled"], true);
        let r = call(
            &mut live,
            &format!("/projects/{private_for_reporters}/merge_requests?per_page=1"),
        );
        assert_eq!(r.status, 200);
        // A Guest is refused too; an administrator is not.
        live.instance.project_mut(34).unwrap().role = Some(Role::Guest);
        assert_eq!(call(&mut live, "/projects/34/merge_requests").status, 403);
        live.instance.project_mut(34).unwrap().role = Some(Role::Reporter);
        assert_eq!(call(&mut live, "/projects/34/merge_requests").status, 200);
        live.instance.project_mut(34).unwrap().role = None;
        live.instance.admin = true;
        assert_eq!(call(&mut live, "/projects/34/merge_requests").status, 200);
        live.instance.admin = false;
        // An empty repository as older GitLab wrote it, and as newer GitLab does.
        let sandbox = by_path(&listed, "partners/sandbox");
        assert!(sandbox["default_branch"].is_null(), "{sandbox}");
        assert_eq!(sandbox["empty_repo"], true);
        assert_eq!(by_path(&listed, "acme/empty")["default_branch"], "main");
    }

    #[test]
    fn self_managed_instance_writes_its_zone_and_milliseconds() {
        let mut live = demo();
        live.instance.timestamps = Timestamps::self_managed(-300);
        let stamps = live.instance.timestamps;
        let p = call(&mut live, "/projects/42");
        let activity = live.instance.project(42).map_or(0, |p| p.last_activity_at);
        assert_eq!(body(&p)["last_activity_at"], stamps.api(activity));
        assert!(stamps.api(activity).ends_with("-05:00"));
        let mrs = items(&call(
            &mut live,
            "/projects/42/merge_requests?state=merged&per_page=1&order_by=updated_at",
        ));
        let updated = mrs[0]["updated_at"].as_str().unwrap_or("").to_owned();
        assert!(updated.ends_with("-05:00"), "{updated}");
        // The time written is a bound that keeps the merge request, in both directions.
        for (key, expected) in [("updated_after", 1), ("updated_before", 1)] {
            let r = call(
                &mut live,
                &format!(
                    "/projects/42/merge_requests?state=merged&per_page=1&order_by=updated_at&{key}={}",
                    updated.replace('+', "%2B")
                ),
            );
            assert!(
                total(&r).is_some_and(|t| t >= expected),
                "{key}={updated}: {:?}",
                total(&r)
            );
        }
        let commit = body(&call(&mut live, "/projects/42/repository/branches/main"));
        assert!(
            commit["commit"]["committed_date"]
                .as_str()
                .is_some_and(|d| d.ends_with("-05:00")),
            "{commit}"
        );
    }

    #[test]
    fn statistics_visibility() {
        let mut live = demo();
        let listed = all_pages(
            &mut live,
            "/projects?membership=true&statistics=true&per_page=100&order_by=id&sort=asc",
        );
        assert_eq!(listed.len(), 131);
        let stats = |path: &str| by_path(&listed, path).get("statistics").cloned();
        let terraform = stats("acme/platform/infra/terraform").unwrap_or(Value::Null);
        assert_eq!(terraform["commit_count"], 200);
        let p = live.instance.project(88).map(|p| p.storage.total());
        assert_eq!(terraform["storage_size"].as_u64(), p);
        assert_eq!(stats("labs/secret"), None, "Guest on private");
        assert_eq!(stats("labs/guest-public"), None, "Guest on public");
        // Code: a Guest on a private project has no default_branch; on a public one it does.
        assert_eq!(by_path(&listed, "labs/secret").get("default_branch"), None);
        assert_eq!(
            by_path(&listed, "labs/guest-public")["default_branch"],
            "main"
        );
        // default_branch_or_main: an empty repository still names a branch that does not exist.
        assert_eq!(by_path(&listed, "acme/empty")["default_branch"], "main");
        let r = call(&mut live, "/projects/61/repository/branches/main");
        assert_eq!(r.status, 404);
        // forks_count and readme_url need read_code too.
        assert_eq!(by_path(&listed, "labs/secret").get("forks_count"), None);
        assert!(
            by_path(&listed, "labs/guest-public")
                .get("forks_count")
                .is_some()
        );
        assert_eq!(by_path(&listed, "acme/empty")["empty_repo"], true);
        // Issues disabled: no open_issues_count key at all.
        assert_eq!(by_path(&listed, "acme/docs").get("open_issues_count"), None);
        assert!(
            by_path(&listed, "acme/api")
                .get("open_issues_count")
                .is_some()
        );
        assert_eq!(
            by_path(&listed, "acme/api")["permissions"]["project_access"]["access_level"],
            40
        );
        assert_eq!(
            by_path(&listed, "demo-user/dotfiles")["namespace"]["kind"],
            "user"
        );
        assert_eq!(
            by_path(&listed, "acme/platform/infra/terraform")["name_with_namespace"],
            "Acme / Platform / Infra / Terraform"
        );

        // simple=true drops statistics; so does the group endpoint.
        let simple = items(&call(
            &mut live,
            "/projects?membership=true&statistics=true&simple=true&per_page=100",
        ));
        assert!(
            simple
                .iter()
                .all(|p| p.get("statistics").is_none() && p.get("visibility").is_none())
        );
        let group = items(&call(
            &mut live,
            "/groups/acme%2Fplatform%2Finfra/projects?statistics=true",
        ));
        assert_eq!(group.len(), 1);
        assert_eq!(group[0].get("statistics"), None);
        // Single project honours the param.
        let single = body(&call(&mut live, "/projects/acme%2Fapi?statistics=true"));
        assert_eq!(single["statistics"]["commit_count"], 347);
        assert_eq!(
            body(&call(&mut live, "/projects/42")).get("statistics"),
            None
        );

        // Admin sees everything with statistics, including non-member projects.
        live.instance.admin = true;
        let admin = all_pages(&mut live, "/projects?statistics=true&per_page=100");
        assert_eq!(admin.len(), live.instance.projects.len());
        assert!(admin.iter().all(|p| p.get("statistics").is_some()));
        live.instance.admin = false;

        // Anonymous: public projects only, no statistics; non-members see internal ones.
        let anon = call_as(&mut live, "/projects?statistics=true", None);
        let anon = items(&anon);
        let paths: BTreeSet<&str> = anon
            .iter()
            .filter_map(|p| p["path_with_namespace"].as_str())
            .collect();
        assert_eq!(
            paths,
            BTreeSet::from([
                "labs/guest-public",
                "other-org/public-lib",
                "partners/portal",
                "partners/sandbox"
            ])
        );
        assert!(anon.iter().all(|p| p.get("statistics").is_none()));
        let all_visible = all_pages(&mut live, "/projects?per_page=100");
        assert_eq!(
            all_visible.len(),
            135,
            "members + the public and internal non-member projects"
        );
        assert_eq!(call_as(&mut live, "/projects/77", None).status, 404);
        assert_eq!(call_as(&mut live, "/projects/9", None).status, 200);
        assert_eq!(call_as(&mut live, "/projects", Some("bad")).status, 401);
        assert_eq!(
            body(&call_as(&mut live, "/projects", Some("bad"))),
            json!({"message": "401 Unauthorized"})
        );
        assert_eq!(call_as(&mut live, "/user", None).status, 401);
        assert_eq!(body(&call(&mut live, "/user"))["username"], "demo-user");
    }

    #[test]
    fn listing_filters_and_order() {
        let mut live = demo();
        let first = items(&call(&mut live, "/projects?membership=true"));
        assert_eq!(first.len(), 20, "default per_page");
        let ids: Vec<u64> = first.iter().filter_map(|p| p["id"].as_u64()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "default sort is desc");
        let active = all_pages(
            &mut live,
            "/projects?membership=true&archived=false&per_page=100",
        );
        assert_eq!(
            active.len(),
            131 - 4,
            "acme/legacy and 3 bulk projects are archived"
        );
        let archived = items(&call(&mut live, "/projects?archived=true"));
        assert_eq!(archived.len(), 4);
        let search = items(&call(&mut live, "/projects?search=ACME/PLATFORM"));
        assert_eq!(search.len(), 2);
        let after = items(&call(
            &mut live,
            "/projects?order_by=id&sort=asc&id_after=42&id_before=61",
        ));
        let ids: Vec<u64> = after.iter().filter_map(|p| p["id"].as_u64()).collect();
        assert_eq!(ids, vec![50]);
        let bad = call(&mut live, "/projects?archived=maybe");
        assert_eq!(
            (bad.status, body(&bad)),
            (400, json!({"error": "archived is invalid"}))
        );
        let bad = call(&mut live, "/projects?sort=up");
        assert_eq!(
            body(&bad),
            json!({"error": "sort does not have a valid value"})
        );
        assert_eq!(
            call(&mut live, "/projects?per_page=200").headers[1],
            ("X-Per-Page", "100".to_string())
        );
    }

    #[test]
    fn offset_limit_answers_405() {
        let mut live = demo();
        let expected = json!({"error": "Offset pagination has a maximum allowed offset of 50000 for requests that return objects of type Project. Remaining records can be retrieved using keyset pagination."});
        let r = call(&mut live, "/projects?page=501&per_page=100");
        assert_eq!((r.status, body(&r)), (405, expected.clone()));
        // The group endpoint paginates with plain offsets: no limit, and keyset is ignored.
        let r = call(&mut live, "/groups/acme/projects?page=2501&per_page=20");
        assert_eq!((r.status, items(&r).len()), (200, 0));
        let r = call(
            &mut live,
            "/groups/acme/projects?pagination=keyset&order_by=name&per_page=2",
        );
        assert_eq!((r.status, items(&r).len()), (200, 2));
        assert!(
            r.headers.iter().any(|(k, _)| *k == "X-Page"),
            "offset headers"
        );
        let r = call(&mut live, "/projects?page=500&per_page=100");
        assert_eq!((r.status, items(&r).len()), (200, 0));
        // Merge requests have no offset limit.
        assert_eq!(
            call(
                &mut live,
                "/projects/15/merge_requests?page=600&per_page=100"
            )
            .status,
            200
        );
        live.instance.offset_limit = 0;
        assert_eq!(
            call(&mut live, "/projects?page=501&per_page=100").status,
            200
        );
        live.instance.offset_limit = 1_000;
        let r = call(&mut live, "/projects?page=11&per_page=100");
        assert!(
            body(&r)["error"]
                .as_str()
                .is_some_and(|e| e.contains("offset of 1000 "))
        );
    }

    #[test]
    fn keyset_walks_every_member_project() {
        let mut live = demo();
        let mut next = Some(format!(
            "{URL}/api/v4/projects?pagination=keyset&order_by=id&sort=asc&per_page=50&membership=true"
        ));
        let (mut ids, mut calls) = (Vec::new(), 0);
        while let Some(url) = next.take() {
            let target = url
                .trim_start_matches(URL)
                .trim_start_matches(API_PREFIX)
                .to_string();
            let r = call(&mut live, &target);
            calls += 1;
            assert_eq!(r.status, 200);
            assert!(
                r.headers.iter().all(|(k, _)| *k == "Link"),
                "no X-* headers on keyset pages"
            );
            ids.extend(items(&r).iter().filter_map(|p| p["id"].as_u64()));
            next = header(&r, "Link").map(|l| {
                assert!(l.ends_with("; rel=\"next\""));
                l.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_string()
            });
        }
        assert_eq!(
            calls, 4,
            "131 projects: 50, 50 and 31 with a next link, then none"
        );
        let mut expected: Vec<u64> = live
            .instance
            .projects
            .iter()
            .filter(|p| p.role.is_some())
            .map(|p| p.id)
            .collect();
        expected.sort_unstable();
        assert_eq!(ids, expected);
        // Descending uses id_before.
        let r = call(
            &mut live,
            "/projects?pagination=keyset&order_by=id&sort=desc&per_page=2",
        );
        assert!(header(&r, "Link").is_some_and(|l| l.contains("&id_before=")));
        // Every page with a project advertises one more, the short last one too; the page after
        // it is empty and has no Link.
        let r = call(
            &mut live,
            "/projects?pagination=keyset&order_by=id&sort=asc&per_page=1&id_after=300",
        );
        assert!(header(&r, "Link").is_some());
        let r = call(
            &mut live,
            "/projects?pagination=keyset&order_by=id&sort=asc&per_page=100&id_after=300",
        );
        assert_eq!(items(&r).len(), 19);
        assert!(header(&r, "Link").is_some_and(|l| l.contains("&id_after=319")));
        let r = call(
            &mut live,
            "/projects?pagination=keyset&order_by=id&sort=asc&per_page=1&id_after=319",
        );
        assert_eq!((items(&r).len(), header(&r, "Link")), (0, None));
        let r = call(&mut live, "/projects?pagination=keyset&per_page=5");
        assert_eq!(
            (r.status, body(&r)),
            (
                405,
                json!({"error": "Keyset pagination is not yet available for this type of request"})
            )
        );
        // Keyset ignores the offset limit.
        assert_eq!(
            call(
                &mut live,
                "/projects?pagination=keyset&order_by=id&page=999&per_page=100"
            )
            .status,
            200
        );
    }

    #[test]
    fn group_projects_subgroups_and_sharing() {
        let mut live = demo();
        let paths = |r: &Reply| -> BTreeSet<String> {
            items(r)
                .iter()
                .filter_map(|p| p["path_with_namespace"].as_str().map(str::to_string))
                .collect()
        };
        let direct = paths(&call(&mut live, "/groups/acme/projects?per_page=100"));
        let expected: BTreeSet<String> = [
            "acme/api",
            "acme/legacy",
            "acme/empty",
            "acme/docs",
            "acme/release-train",
            "other-org/public-lib",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(direct, expected, "direct projects plus the shared-in one");
        let r = call(&mut live, "/groups/10/projects?with_shared=false");
        assert_eq!(header(&r, "X-Total"), Some("5"));
        let r = call(
            &mut live,
            "/groups/acme/projects?include_subgroups=true&per_page=100",
        );
        assert_eq!(
            header(&r, "X-Total"),
            Some("129"),
            "5 + deploy + terraform + frontend + 120 services + shared"
        );
        let r = call(
            &mut live,
            "/groups/acme%2Fplatform/projects?include_subgroups=true",
        );
        assert_eq!(header(&r, "X-Total"), Some("2"));
        let r = call(&mut live, "/groups/nope/projects");
        assert_eq!(
            (r.status, body(&r)),
            (404, json!({"message": "404 Group Not Found"}))
        );
        assert_eq!(
            call_as(&mut live, "/groups/acme/projects", None).status,
            200,
            "public-lib is shared in"
        );
        assert_eq!(
            call_as(&mut live, "/groups/acme%2Fweb/projects", None).status,
            404
        );
        assert_eq!(
            call(&mut live, "/groups/30/projects?with_shared=maybe").status,
            400
        );
    }

    #[test]
    fn merge_request_counts_per_state() {
        let mut live = demo();
        let mut count = |id: u64, state: &str| {
            let r = call(
                &mut live,
                &format!("/projects/{id}/merge_requests?state={state}&per_page=1&view=simple"),
            );
            assert_eq!(r.status, 200);
            (
                header(&r, "X-Total").map(str::to_string),
                header(&r, "X-Next-Page").map(str::to_string),
            )
        };
        let some = |n: &str| Some(n.to_string());
        assert_eq!(count(42, "opened"), (some("7"), some("2")));
        assert_eq!(count(42, "merged"), (some("312"), some("2")));
        assert_eq!(count(42, "closed"), (some("41"), some("2")));
        assert_eq!(count(42, "locked"), (some("2"), some("2")));
        assert_eq!(count(42, "all"), (some("362"), some("2")));
        assert_eq!(
            count(15, "opened"),
            (some("10000"), some("2")),
            "exactly 10,000 is still counted"
        );
        assert_eq!(count(15, "merged"), (None, some("2")));
        assert_eq!(count(15, "closed"), (None, some("2")));
        assert_eq!(count(15, "locked"), (some("1"), some("")));
        assert_eq!(count(61, "all"), (some("0"), some("")));

        let r = call(
            &mut live,
            "/projects/15/merge_requests?state=merged&per_page=100&page=124",
        );
        let list = items(&r);
        assert_eq!(list.len(), 45);
        assert_eq!(header(&r, "X-Next-Page"), Some(""));
        assert_eq!(header(&r, "X-Prev-Page"), Some("123"));
        assert!(header(&r, "Link").is_some_and(|l| !l.contains("rel=\"last\"")));
        assert!(list.iter().all(|m| m["state"] == "merged"));
        let simple = items(&call(
            &mut live,
            "/projects/42/merge_requests?view=simple&state=opened",
        ));
        assert_eq!(simple.len(), 7);
        assert!(
            simple
                .iter()
                .all(|m| m.as_object().map(Map::len) == Some(9) && m["state"] == "opened")
        );
        let iids: Vec<u64> = simple.iter().filter_map(|m| m["iid"].as_u64()).collect();
        assert_eq!(iids, (356..=362).rev().collect::<Vec<_>>());
        let full = items(&call(
            &mut live,
            "/projects/42/merge_requests?state=merged&per_page=1",
        ));
        assert!(full[0]["merged_at"].is_string() && full[0]["author"]["name"].is_string());

        let forbidden = call(&mut live, "/projects/77/merge_requests");
        assert_eq!(
            (forbidden.status, body(&forbidden)),
            (403, json!({"message": "403 Forbidden"}))
        );
        assert_eq!(
            call(&mut live, "/projects/29/merge_requests").status,
            403,
            "MRs disabled"
        );
        assert_eq!(
            call(&mut live, "/projects/9/merge_requests?state=all").status,
            200
        );
        assert_eq!(call(&mut live, "/projects/999/merge_requests").status, 404);
        assert_eq!(
            call(&mut live, "/projects/42/merge_requests?state=draft").status,
            400
        );
    }

    #[test]
    fn commits_have_phantom_page_and_no_totals() {
        let mut live = demo();
        let r = call(
            &mut live,
            "/projects/demo-user%2Fdotfiles/repository/commits?per_page=20&page=2",
        );
        assert_eq!(items(&r).len(), 20);
        assert_eq!(header(&r, "X-Next-Page"), Some("3"));
        assert_eq!(header(&r, "X-Total"), None);
        assert_eq!(header(&r, "X-Total-Pages"), None);
        let r = call(
            &mut live,
            "/projects/2/repository/commits?per_page=20&page=3",
        );
        assert_eq!((items(&r).len(), header(&r, "X-Next-Page")), (0, Some("")));

        let r = call(&mut live, "/projects/7/repository/commits");
        let page1 = items(&r);
        assert_eq!((page1.len(), header(&r, "X-Next-Page")), (20, Some("2")));
        let head = live.instance.project(7).and_then(FakeProject::head_sha);
        assert_eq!(page1[0]["id"].as_str(), head.as_deref());
        assert_eq!(page1[0]["parent_ids"][0], page1[1]["id"]);
        let r = call(&mut live, "/projects/7/repository/commits?page=2");
        let page2 = items(&r);
        assert_eq!((page2.len(), header(&r, "X-Next-Page")), (5, Some("")));
        assert_eq!(page2[4]["parent_ids"], json!([]));
        let mid = page1[10]["id"].as_str().unwrap_or_default().to_string();
        let r = call(
            &mut live,
            &format!("/projects/7/repository/commits?ref_name={mid}&per_page=100"),
        );
        assert_eq!(items(&r).len(), 15);
        assert_eq!(
            items(&call(
                &mut live,
                "/projects/7/repository/commits?ref_name=nope"
            ))
            .len(),
            0
        );
        let empty = call(&mut live, "/projects/61/repository/commits");
        assert_eq!((empty.status, items(&empty).len()), (200, 0));
        assert_eq!(
            call(&mut live, "/projects/77/repository/commits").status,
            403
        );
    }

    #[test]
    fn branch_and_sequence() {
        let mut live = demo();
        let r = call(&mut live, "/projects/21/repository/branches/main");
        let sha = body(&r)["commit"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(body(&r)["default"], true);
        let r = call(
            &mut live,
            &format!("/projects/21/repository/commits/{sha}/sequence"),
        );
        assert_eq!(body(&r), json!({"count": 57}));
        let r = call(
            &mut live,
            &format!("/projects/42/repository/commits/{sha}/sequence"),
        );
        assert_eq!(
            (r.status, body(&r)),
            (404, json!({"message": "404 Commit Not Found"}))
        );
        let r = call(&mut live, "/projects/50/repository/branches/release%2F2.0");
        assert_eq!(body(&r)["commit"]["id"].as_str().map(str::len), Some(40));
        let r = call(&mut live, "/projects/50/repository/branches/main");
        assert_eq!(
            (r.status, body(&r)),
            (404, json!({"message": "404 Branch Not Found"}))
        );
        let r = call(&mut live, "/projects/61/repository/branches/main");
        assert_eq!(
            (r.status, body(&r)),
            (404, json!({"message": "404 Repository Not Found"}))
        );
        assert_eq!(
            call(&mut live, "/projects/77/repository/branches/main").status,
            403
        );
        assert_eq!(
            call_as(&mut live, "/projects/77/repository/branches/main", None).status,
            404
        );
        let r = call(&mut live, "/projects/7/repository/commits/main/sequence");
        assert_eq!(body(&r), json!({"count": 25}));
    }

    #[test]
    fn rate_limit_headers_and_429() {
        let mut live = demo();
        live.instance.rate_limit_per_minute = Some(1);
        let limiter = RateLimiter::default();
        let token = live.instance.token.clone();
        let req = ApiRequest {
            method: "GET",
            path: "/api/v4/version",
            query: None,
            token: Some(&token),
            now: 1_609_844_370,
        };
        let ep = Endpoint::parse(req.path);
        let ok = respond(&mut live, &limiter, URL, &req, &ep);
        assert_eq!(ok.status, 200);
        assert_eq!(header(&ok, "RateLimit-Remaining"), Some("0"));
        assert_eq!(header(&ok, "Retry-After"), None);
        let limited = respond(&mut live, &limiter, URL, &req, &ep);
        assert_eq!((limited.status, limited.content_type), (429, "text/plain"));
        assert_eq!(header(&limited, "Retry-After"), Some("30"));
        assert_eq!(
            header(&limited, "RateLimit-ResetTime"),
            Some("Tue, 05 Jan 2021 11:00:00 GMT")
        );
        live.instance.rate_limit_per_minute = None;
        assert!(
            respond(&mut live, &limiter, URL, &req, &ep)
                .headers
                .is_empty()
        );
    }

    /// A fixed "now" after the horizon, so the tests do not depend on the host's clock.
    const NOW: i64 = HISTORY_HORIZON + 5 * 86_400;

    fn total(r: &Reply) -> Option<u64> {
        header(r, "X-Total").and_then(|t| t.parse().ok())
    }

    fn change(live: &mut Live, id: u64, c: MergeRequestChange, at: i64) -> bool {
        live.instance.change_merge_request(id, c, at)
    }

    /// `(project_id, iid, state)` of every item.
    fn triples(r: &Reply) -> Vec<(u64, u64, String)> {
        items(r)
            .iter()
            .map(|m| {
                (
                    m["project_id"].as_u64().unwrap_or(0),
                    m["iid"].as_u64().unwrap_or(0),
                    m["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn merge_request_changes_move_counts_and_windows() {
        use MergeRequestChange as C;
        let mut live = demo();
        let since = rfc3339_z(NOW);
        let recent = format!(
            "/projects/42/merge_requests?state=all&updated_after={since}&view=simple&per_page=1"
        );
        let x_total = |live: &mut Live, target: &str| total(&call(live, target));
        assert_eq!(x_total(&mut live, &recent), Some(0));
        assert_eq!(
            x_total(
                &mut live,
                &format!(
                    "/projects/42/merge_requests?updated_after={}",
                    rfc3339_z(HISTORY_HORIZON)
                )
            ),
            Some(0),
            "nothing synthesised after the horizon"
        );

        assert!(change(&mut live, 42, C::Open, NOW));
        assert_eq!(
            live.instance.project(42).map(|p| p.merge_requests.opened),
            Some(8)
        );
        let r = call(
            &mut live,
            &format!("/projects/42/merge_requests?updated_after={since}"),
        );
        assert_eq!(triples(&r), vec![(42, 363, "opened".to_string())]);
        let opened = &items(&r)[0];
        assert_eq!(
            (opened["created_at"].as_str(), opened["updated_at"].as_str()),
            (Some(since.as_str()), Some(since.as_str()))
        );
        assert_eq!(
            x_total(
                &mut live,
                "/projects/42/merge_requests?state=opened&per_page=1"
            ),
            Some(8)
        );

        assert!(change(&mut live, 42, C::Merge, NOW + 10));
        let r = call(
            &mut live,
            &format!("/projects/42/merge_requests?state=merged&updated_after={since}"),
        );
        assert_eq!(triples(&r), vec![(42, 363, "merged".to_string())]);
        assert_eq!(items(&r)[0]["updated_at"], rfc3339_z(NOW + 10));
        assert_eq!(items(&r)[0]["merged_at"], rfc3339_z(NOW + 10));
        assert_eq!(
            x_total(
                &mut live,
                "/projects/42/merge_requests?state=merged&per_page=1"
            ),
            Some(313)
        );
        assert!(
            change(&mut live, 42, C::Close, NOW + 20),
            "closes 362, the newest opened"
        );
        assert!(
            change(&mut live, 42, C::Reopen, NOW + 30),
            "reopens 362, the newest closed"
        );
        assert!(change(&mut live, 42, C::Lock, NOW + 40));
        let counts = live.instance.project(42).map(|p| p.merge_requests);
        assert_eq!(
            counts,
            Some(MergeRequestCounts {
                opened: 6,
                merged: 313,
                closed: 41,
                locked: 3
            })
        );
        let r = call(
            &mut live,
            &format!("/projects/42/merge_requests?updated_after={since}&order_by=updated_at"),
        );
        assert_eq!(
            triples(&r),
            vec![
                (42, 362, "locked".to_string()),
                (42, 363, "merged".to_string())
            ]
        );
        for (state, n) in [
            ("opened", 6),
            ("merged", 313),
            ("closed", 41),
            ("locked", 3),
            ("all", 363),
        ] {
            let t = format!("/projects/42/merge_requests?state={state}&per_page=1");
            assert_eq!(x_total(&mut live, &t), Some(n), "{state}");
        }

        let before = items(&call(&mut live, "/projects/42/merge_requests?per_page=1"));
        assert!(change(&mut live, 42, C::Edit, NOW + 50));
        let after = items(&call(&mut live, "/projects/42/merge_requests?per_page=1"));
        assert_eq!(
            (before[0]["iid"].as_u64(), after[0]["iid"].as_u64()),
            (Some(363), Some(363))
        );
        assert_ne!(before[0]["title"], after[0]["title"]);
        assert_eq!(
            (after[0]["state"].as_str(), after[0]["updated_at"].clone()),
            (Some("merged"), json!(rfc3339_z(NOW + 50)))
        );

        // Delete: 363 is gone from every listing, count and window.
        assert!(change(&mut live, 42, C::Delete, NOW + 60));
        assert_eq!(
            x_total(
                &mut live,
                "/projects/42/merge_requests?state=merged&per_page=1"
            ),
            Some(312)
        );
        assert_eq!(
            x_total(
                &mut live,
                "/projects/42/merge_requests?state=all&per_page=1"
            ),
            Some(362)
        );
        let r = call(
            &mut live,
            &format!("/projects/42/merge_requests?updated_after={since}&per_page=100"),
        );
        assert_eq!(triples(&r), vec![(42, 362, "locked".to_string())]);
        let everything = all_pages(
            &mut live,
            "/projects/42/merge_requests?state=all&per_page=100",
        );
        assert_eq!(everything.len(), 362);
        assert!(everything.iter().all(|m| m["iid"] != 363));

        // Impossible changes change nothing.
        assert!(!change(&mut live, 2, C::Merge, NOW), "no opened MR");
        assert!(!change(&mut live, 2, C::Reopen, NOW), "no closed MR");
        assert!(!change(&mut live, 29, C::Open, NOW), "MRs disabled");
        assert!(!change(&mut live, 3, C::Open, NOW), "archived is read-only");
        assert!(!change(&mut live, 4_242, C::Open, NOW), "no such project");
        assert_eq!(
            live.instance.project(2).map(|p| p.merge_requests.total()),
            Some(1)
        );

        // Editing the counts directly is invisible to the windows.
        if let Some(p) = live.instance.project_mut(42) {
            p.merge_requests.opened += 2;
            p.merge_requests.merged -= 2;
        }
        live.instance.reconcile_changes();
        assert_eq!(
            x_total(
                &mut live,
                "/projects/42/merge_requests?state=opened&per_page=1"
            ),
            Some(8)
        );
        assert_eq!(
            x_total(
                &mut live,
                "/projects/42/merge_requests?state=merged&per_page=1"
            ),
            Some(310)
        );
        assert_eq!(x_total(&mut live, &recent), Some(1));

        let bad = call(
            &mut live,
            "/projects/42/merge_requests?updated_after=yesterday",
        );
        assert_eq!(
            (bad.status, body(&bad)),
            (400, json!({"error": "updated_after is invalid"}))
        );
        assert_eq!(
            call(&mut live, "/projects/42/merge_requests?scope=mine").status,
            400
        );
        assert_eq!(
            x_total(&mut live, "/projects/42/merge_requests?scope=created_by_me"),
            Some(0)
        );
    }

    #[test]
    fn windows_before_the_horizon_are_exact() {
        let mut live = demo();
        assert!(change(&mut live, 42, MergeRequestChange::Close, NOW));
        let all = all_pages(
            &mut live,
            "/projects/42/merge_requests?state=all&per_page=100",
        );
        assert_eq!(all.len(), 362);
        let times = |m: &Value, k: &str| m[k].as_str().unwrap_or("").to_string();
        // Windows around synthesised times: X-Total and items agree with filtering by hand.
        let mid_created = times(&all[200], "created_at");
        let mid_updated = times(&all[100], "updated_at");
        for (state, q) in [
            ("all", format!("created_before={mid_created}")),
            ("merged", format!("created_after={mid_created}")),
            (
                "all",
                format!("updated_after={mid_updated}&created_before={mid_created}"),
            ),
            ("closed", format!("updated_before={mid_updated}")),
            (
                "all",
                format!("updated_after={}", rfc3339_z(HISTORY_HORIZON - 86_400 * 3)),
            ),
        ] {
            let keep = |m: &Value| {
                let c = times(m, "created_at");
                let u = times(m, "updated_at");
                (state == "all" || m["state"] == state)
                    && q.split('&').all(|kv| match kv.split_once('=') {
                        Some(("created_before", t)) => c.as_str() <= t,
                        Some(("created_after", t)) => c.as_str() >= t,
                        Some(("updated_before", t)) => u.as_str() <= t,
                        Some(("updated_after", t)) => u.as_str() >= t,
                        _ => false,
                    })
            };
            let expected: Vec<&Value> = all.iter().filter(|m| keep(m)).collect();
            let target = format!("/projects/42/merge_requests?state={state}&{q}&per_page=100");
            let listed = all_pages(&mut live, &target);
            assert_eq!(
                total(&call(&mut live, &target)),
                Some(expected.len() as u64),
                "{target}"
            );
            assert_eq!(listed.len(), expected.len(), "{target}");
            assert!(
                listed
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a["id"] == b["id"]),
                "{target}"
            );
        }
        // Default order: created_at desc; asc and updated_at orders are sorted too.
        let created: Vec<String> = all.iter().map(|m| times(m, "created_at")).collect();
        assert!(created.windows(2).all(|w| w[0] >= w[1]));
        let by_updated = all_pages(
            &mut live,
            "/projects/42/merge_requests?order_by=updated_at&sort=asc&per_page=100",
        );
        assert_eq!(by_updated.len(), 362);
        assert!(
            by_updated
                .windows(2)
                .all(|w| times(&w[0], "updated_at") <= times(&w[1], "updated_at"))
        );
        assert_eq!(
            by_updated[361]["state"], "closed",
            "the MR closed now is the last updated"
        );
    }

    #[test]
    fn group_merge_requests_scope_and_permissions() {
        use MergeRequestChange as C;
        let mut live = demo();
        let since = rfc3339_z(NOW);
        // acme/legacy is archived: changes need it active for a moment.
        if let Some(p) = live.instance.project_mut(3) {
            p.archived = false;
        }
        for (id, c) in [
            (42, C::Open),  // acme/api
            (88, C::Merge), // acme/platform/infra/terraform (nested subgroup)
            (3, C::Open),   // acme/legacy (archived again below)
            (9, C::Open),   // other-org/public-lib, shared into acme
            (77, C::Open),  // labs/secret: Guest on private, MRs forbidden
            (21, C::Close), // labs/guest-public: Guest on public, MRs readable
        ] {
            assert!(change(&mut live, id, c, NOW), "{id}");
        }
        if let Some(p) = live.instance.project_mut(3) {
            p.archived = true;
        }
        let ids = |r: &Reply| -> BTreeSet<u64> { triples(r).into_iter().map(|t| t.0).collect() };

        let exporter = format!(
            "/groups/acme/merge_requests?state=all&scope=all&updated_after={since}&non_archived=false&view=simple&per_page=100"
        );
        let r = call(&mut live, &exporter);
        assert_eq!(r.status, 200);
        assert_eq!(
            ids(&r),
            BTreeSet::from([3, 42, 88]),
            "subgroups and archived in, shared-in out"
        );
        assert_eq!(total(&r), Some(3));
        assert!(
            items(&r)
                .iter()
                .all(|m| m.as_object().map(Map::len) == Some(9))
        );
        let r = call(
            &mut live,
            &format!("/groups/10/merge_requests?updated_after={since}"),
        );
        assert_eq!(
            ids(&r),
            BTreeSet::from([42, 88]),
            "archived excluded by default"
        );
        let r = call(
            &mut live,
            &format!("/groups/labs/merge_requests?updated_after={since}"),
        );
        assert_eq!(
            triples(&r),
            vec![(21, 18, "closed".to_string())],
            "labs/secret is forbidden"
        );
        let r = call(
            &mut live,
            &format!("/groups/acme%2Fplatform/merge_requests?updated_after={since}"),
        );
        assert_eq!(triples(&r), vec![(88, 23, "merged".to_string())]);
        let r = call(
            &mut live,
            &format!("/groups/other-org/merge_requests?updated_after={since}&state=opened"),
        );
        assert_eq!(triples(&r), vec![(9, 96, "opened".to_string())]);

        // Totals without a window: the sum of the readable projects' counts.
        let project_total = |live: &mut Live, id: u64| {
            total(&call(
                live,
                &format!("/projects/{id}/merge_requests?per_page=1"),
            ))
            .unwrap_or(0)
        };
        let platform = project_total(&mut live, 7) + project_total(&mut live, 88);
        let r = call(
            &mut live,
            "/groups/acme%2Fplatform/merge_requests?per_page=1",
        );
        assert_eq!(total(&r), Some(platform));
        let labs = call(&mut live, "/groups/labs/merge_requests?per_page=1");
        assert_eq!(total(&labs), Some(project_total(&mut live, 21)));
        let acme = call(&mut live, "/groups/acme/merge_requests?per_page=100&page=2");
        assert_eq!(
            (total(&acme), header(&acme, "X-Next-Page")),
            (None, Some("3")),
            "over 10,000"
        );

        // Every page, sorted across projects, each MR once.
        for order in ["order_by=updated_at&sort=asc", "sort=desc"] {
            let listed = all_pages(
                &mut live,
                &format!("/groups/acme%2Fplatform/merge_requests?{order}&per_page=7"),
            );
            assert_eq!(listed.len() as u64, platform);
            let key = if order.contains("updated") {
                "updated_at"
            } else {
                "created_at"
            };
            let keys: Vec<(String, u64)> = listed
                .iter()
                .map(|m| {
                    (
                        m[key].as_str().unwrap_or("").to_string(),
                        m["id"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            if !order.contains("asc") {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "{order}");
        }

        // Full view: references relative to the group.
        let full = items(&call(
            &mut live,
            &format!("/groups/acme/merge_requests?updated_after={since}"),
        ));
        let refs: BTreeSet<String> = full
            .iter()
            .filter_map(|m| m["references"]["relative"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            refs,
            BTreeSet::from([
                "api!363".to_string(),
                "acme/platform/infra/terraform!23".to_string()
            ])
        );

        let r = call(&mut live, "/groups/nope/merge_requests");
        assert_eq!(
            (r.status, body(&r)),
            (404, json!({"message": "404 Group Not Found"}))
        );
        assert_eq!(
            call_as(&mut live, "/groups/acme%2Fweb/merge_requests", None).status,
            404
        );
        assert_eq!(
            total(&call(
                &mut live,
                "/groups/acme/merge_requests?scope=created_by_me"
            )),
            Some(0)
        );
        assert_eq!(
            call(&mut live, "/groups/acme/merge_requests?scope=everything").status,
            400
        );
        assert_eq!(
            call(&mut live, "/groups/acme/merge_requests?non_archived=maybe").status,
            400
        );
        assert_eq!(
            Endpoint::parse("/api/v4/groups/acme%2Fweb/merge_requests"),
            Endpoint::GroupMergeRequests("acme/web".into())
        );
    }

    #[test]
    fn push_moves_head_statistics_and_activity() {
        let mut live = demo();
        let project = |live: &mut Live| body(&call(live, "/projects/7?statistics=true"));
        let before = project(&mut live);
        let old_commits = items(&call(
            &mut live,
            "/projects/7/repository/commits?per_page=100",
        ));
        let last_activity = live.instance.project(7).map_or(0, |p| p.last_activity_at);
        assert!(last_activity < NOW - 3_600);

        assert!(live.instance.push(7, 3, NOW));
        let head = live
            .instance
            .project(7)
            .and_then(FakeProject::head_sha)
            .unwrap_or_default();
        let branch = body(&call(&mut live, "/projects/7/repository/branches/main"));
        assert_eq!(branch["commit"]["id"].as_str(), Some(head.as_str()));
        assert_eq!(branch["commit"]["committed_date"], rfc3339_offset(NOW));
        let seq = body(&call(
            &mut live,
            &format!("/projects/7/repository/commits/{head}/sequence"),
        ));
        assert_eq!(seq, json!({"count": 28}));
        let after = project(&mut live);
        assert_eq!(after["statistics"]["commit_count"], 28);
        let grown = after["statistics"]["repository_size"].as_u64().unwrap_or(0)
            - before["statistics"]["repository_size"]
                .as_u64()
                .unwrap_or(0);
        assert_eq!(grown, 3 * 14_336);
        assert_eq!(after["last_activity_at"], rfc3339_z(NOW));
        assert_eq!(after["updated_at"], rfc3339_z(NOW));
        assert_eq!(
            after["created_at"], before["created_at"],
            "created_at is stable"
        );
        let new_commits = items(&call(
            &mut live,
            "/projects/7/repository/commits?per_page=100",
        ));
        assert_eq!(new_commits.len(), 28);
        assert_eq!(
            new_commits[3..],
            old_commits[..],
            "old commits keep their SHAs and dates"
        );
        assert_eq!(new_commits[2]["parent_ids"][0], old_commits[0]["id"]);

        // Within the hour, last_activity_at stays; updated_at follows the repository (5 min).
        assert!(live.instance.push(7, 1, NOW + 1_800));
        let p = project(&mut live);
        assert_eq!(
            (p["last_activity_at"].clone(), p["updated_at"].clone()),
            (json!(rfc3339_z(NOW)), json!(rfc3339_z(NOW + 1_800)))
        );
        assert!(live.instance.push(7, 1, NOW + 1_900));
        assert_eq!(
            project(&mut live)["updated_at"],
            rfc3339_z(NOW + 1_800),
            "less than 5 minutes later"
        );
        assert!(live.instance.push(7, 1, NOW + 3_600));
        let p = project(&mut live);
        assert_eq!(
            (
                p["last_activity_at"].clone(),
                p["statistics"]["commit_count"].clone()
            ),
            (json!(rfc3339_z(NOW + 3_600)), json!(31))
        );
        // Merge request events are project events too, throttled the same way.
        assert!(change(&mut live, 7, MergeRequestChange::Open, NOW + 3_700));
        assert_eq!(
            project(&mut live)["last_activity_at"],
            rfc3339_z(NOW + 3_600)
        );
        assert!(change(&mut live, 7, MergeRequestChange::Merge, NOW + 7_200));
        assert_eq!(
            project(&mut live)["last_activity_at"],
            rfc3339_z(NOW + 7_200)
        );

        assert!(!live.instance.push(3, 1, NOW), "archived");
        assert!(!live.instance.push(7, 0, NOW));
        assert!(
            live.instance.push(61, 2, NOW),
            "first push to an empty repository"
        );
        let r = call(&mut live, "/projects/61/repository/branches/main");
        assert_eq!(r.status, 200);
        assert_eq!(
            body(&call(
                &mut live,
                "/projects/61/repository/commits/main/sequence"
            )),
            json!({"count": 2})
        );
    }

    #[test]
    fn group_window_is_fast_on_a_big_instance() {
        let mut live = Live::new(Instance::generated(100_000));
        for (id, c) in [
            (7, MergeRequestChange::Open),
            (55_555, MergeRequestChange::Edit),
            (99_999, MergeRequestChange::Delete),
        ] {
            assert!(change(&mut live, id, c, NOW));
        }
        let target = format!(
            "/groups/scale/merge_requests?state=all&scope=all&updated_after={}&non_archived=false&view=simple&per_page=100",
            rfc3339_z(NOW)
        );
        call(&mut live, &target); // warm-up
        let t0 = std::time::Instant::now();
        let r = call(&mut live, &target);
        let elapsed = t0.elapsed();
        eprintln!("group merge requests, updated_after, 100,000 projects: {elapsed:?}");
        let ids: BTreeSet<u64> = triples(&r).into_iter().map(|t| t.0).collect();
        assert_eq!(
            ids,
            BTreeSet::from([7, 55_555]),
            "the deleted MR leaves no trace"
        );
        assert_eq!(total(&r), Some(2));
        assert!(
            elapsed < std::time::Duration::from_millis(200),
            "{elapsed:?}"
        );
    }

    #[test]
    fn generated_instance_pages_are_cheap() {
        let mut live = Live::new(Instance::generated(100_000));
        let t0 = std::time::Instant::now();
        let r = call(
            &mut live,
            "/projects?membership=true&statistics=true&per_page=100&order_by=id&sort=asc&page=500",
        );
        assert_eq!(items(&r).len(), 100);
        assert_eq!(header(&r, "X-Total"), None, "100,000 projects: no totals");
        assert_eq!(header(&r, "X-Next-Page"), Some("501"));
        assert_eq!(
            call(&mut live, "/projects?per_page=100&page=501").status,
            405
        );
        let r = call(
            &mut live,
            "/projects?pagination=keyset&order_by=id&sort=asc&per_page=100&id_after=99950&statistics=true",
        );
        assert_eq!(items(&r).len(), 50);
        assert!(items(&r).iter().all(|p| p.get("statistics").is_some()));
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }
}
