//! The fake GitLab: a deterministic in-process HTTP server speaking the GitLab REST API v4 and a
//! subset of its GraphQL API, used by the integration tests, the benchmarks and `--demo` mode. This file owns the public handle
//! ([`FakeGitlab`]) and the server loop.
//!
//! Layout: `common` (small shared items: the built-in instances' "now", commit spacing, merge
//! request counts, the splitmix64 mixer), `history` (the merge request model: synthesised merge
//! requests and the changes recorded on top), `instance` (data model, demo and generated
//! instances), `changes` (the change API on projects: merge request events, pushes, direct count
//! edits), `ci` (pipelines, environments, deployments: the synthesised CI/CD history and its
//! mutations), `api` (routing, permissions, endpoint handlers; `ci_api` the CI/CD ones), `graphql` (`/api/graphql`: the
//! schema on async-graphql, GitLab's complexity and limits), `paginate` (offset and keyset
//! pagination, headers), `ratelimit` (`RateLimit-*` and 429), `dates` (timestamps written and
//! read), and with the `faults` feature `routes` (the route templates requests are counted and
//! faulted by), `hooks` (the test hooks below) and `faults` (fault injection). The merge request data flows one way: `history` knows no project, `instance` holds
//! a project's history, and `changes` works on both.
//!
//! # The `faults` feature
//!
//! Tests and benchmarks drive the fake through hooks that a demo or the `fake-gitlab` binary never
//! needs, so they are compiled only with the feature `faults` (the exporter's dev-dependency
//! enables it, its `--demo` does not): request counting ([`FakeGitlab::requests`] and the like),
//! [`hold`](FakeGitlab::hold) and [`release`](FakeGitlab::release), the clock offset, live
//! changes ([`FakeGitlab::with_instance`], [`FakeGitlab::change_merge_request`],
//! [`FakeGitlab::push`]), [`FakeGitlab::vanish_after_listing`] and fault injection
//! ([`FakeGitlab::set_faults`]). Without it the fake serves the instance it was started with,
//! with [`FakeGitlab::set_latency`] as its only knob.
//!
//! ```text
//! let fake = FakeGitlab::start(Instance::demo()).await?;
//! // GET {fake.url()}/api/v4/projects?membership=true with header PRIVATE-TOKEN: {fake.token()}
//! fake.with_instance(|i| i.project_mut(42).map(|p| p.commits += 1));
//! assert_eq!(fake.requests("/projects"), 1);
//! fake.shutdown().await;
//! ```
//!
//! # GraphQL
//!
//! `POST /api/graphql` (JSON `{"query", "variables", "operationName"}`, body up to 1 MiB, else
//! 413) and `GET /api/graphql?query=...` run queries through async-graphql (no mutations, no
//! multiplexing), on the same data, permissions, clock, latency and `rate_limit_per_minute`
//! limiter as REST (one request counts once; 429 and `RateLimit-*` as on REST). Tokens as on REST
//! (`PRIVATE-TOKEN`, `Authorization: Bearer`); a wrong one answers 401
//! `{"errors":[{"message":"Invalid token"}]}`, none is anonymous (public projects only).
//!
//! The schema, GitLab's names: `Query.projects(membership, ids, fullPaths, search, sort, first,
//! after, last, before)` (what the caller can see, id descending, `sort: "id_asc"` ascending;
//! `ids` are `gid://gitlab/Project/N`), `Query.project(fullPath)`, `Query.group(fullPath)` with
//! `Group.projects(includeSubgroups, search, sort, ids, first, ...)` (the group's own projects,
//! never shared ones), `Query.queryComplexity { score limit }`. `ProjectConnection { nodes edges
//! { cursor node } pageInfo count }`; cursors are GitLab's (base64 of `{"id":"N"}`), and a page
//! costs its length however deep the walk. `Project { id fullPath path name nameWithNamespace
//! archived visibility starCount forksCount openIssuesCount createdAt lastActivityAt updatedAt
//! namespace group issuesEnabled mergeRequestsEnabled statistics repository userPermissions
//! maxAccessLevel mergeRequests(state, iids) { count(limit = 1000) } }`: statistics (Floats, REST's
//! `job_artifacts_size` is `buildArtifactsSize`) are null below Reporter, `repository { rootRef
//! empty exists tree(ref) { lastCommit { sha } } }` is null without code access, and merge
//! requests the caller may not read count 0. `count` answers the exact number up to `limit` and
//! `limit + 1` above it (`1001` for the demo's frontend); a `limit` outside 1..=1000 is a field
//! error.
//!
//! `Project.mergeRequests(state, iids, createdAfter, createdBefore, updatedAfter,
//! updatedBefore, mergedAfter, mergedBefore, sort: MergeRequestSort = CREATED_DESC, first,
//! after, last, before) { count nodes edges pageInfo }` lists `MergeRequest { id iid title state
//! createdAt updatedAt mergedAt webUrl }` (time bounds inclusive; cursors carry the sort time
//! and id; `MERGED_AT_*` lists merged ones only). `Project.pipelines(status, scope, ref, sha,
//! source, updatedAfter, updatedBefore, first, after, last, before)` is a `PipelineConnection {
//! count nodes edges pageInfo }` of `Pipeline { id iid sha ref status source duration
//! queuedDuration createdAt updatedAt startedAt finishedAt path }`, id descending.
//! `Project.environments(name, search, states, type, first, ...)` and
//! `Project.environment(name, ...)` give `Environment { id name slug state tier externalUrl
//! createdAt updatedAt lastDeployment(status) deployments(statuses, orderBy, first, ...) }` of
//! `Deployment { id iid ref tag sha status createdAt updatedAt finishedAt }`; `environments`
//! resolves for one project per query and `deployments` for one environment (GitLab's
//! `FieldCallCount`: `"environments" field can be requested only for 1 Project(s) at a time.`),
//! and a `DeploymentsFinder` refusal is GitLab's unrescued 500 `Internal server error`.
//!
//! Limits as GitLab's: query text over 10,000 characters is 422 `Query too large`; complexity
//! (GitLab's formula: 1 per field, 2 for Gitaly fields, `child + 1 (+1 sort, +5 search)` for
//! resolvers, +10 for `Group.projects`, 10 for `lastCommit`, connections times `1 +
//! min(first, last, 100) / 100` unless `iids`) up to 250 signed in, 200 anonymous, 300 for
//! administrators, depth up to 20 (15 anonymous): above, HTTP 200 with graphql-ruby's "Query has
//! complexity of N, which exceeds max complexity of M" (or depth) and no `data`. `first` above
//! 100 is clamped. Field errors (a bad cursor, `first` and `last` together) give `data` with
//! that field null and an error with its `path`.
//!
//! [`FakeGitlab::set_count_cost`] gives every merge request count server time, on both APIs.
//! With `faults`: requests count under `/api/graphql`, [`FakeGitlab::graphql_scores`] and
//! [`FakeGitlab::graphql_queries`] keep what was asked, every fault applies to the route, and
//! [`Faults::graphql_disabled`], [`Faults::graphql_max_complexity`],
//! [`Faults::graphql_timeout_above`] and [`Faults::graphql_field_error`] are GraphQL's own.
//!
//! # Clock and changes
//!
//! The fake has its own clock, [`FakeGitlab::now`]: the host's time plus an offset
//! ([`FakeGitlab::set_clock_offset`], e.g. -600 for a GitLab 10 minutes behind). Every answer
//! carries `Date` from it, as GitLab does, and every change is stamped with it.
//!
//! Everything synthesised (merge requests, commits, project times) lies at or before
//! [`HISTORY_HORIZON`] (2026-11-20T10:15:00Z). Changes happen on top:
//! [`FakeGitlab::change_merge_request`] ([`MergeRequestChange`]: open, merge, close, reopen, lock,
//! edit, delete) and [`FakeGitlab::push`]. They show in every endpoint at once, including the
//! `created_after`/`created_before`/`updated_after`/`updated_before` windows of
//! `/projects/:id/merge_requests` and `/groups/:id/merge_requests`, which are exact for any window.
//! Editing `merge_requests` counts through [`FakeGitlab::with_instance`] still works and models a
//! change no signal can see (no `updated_at` moves).
//!
//! # CI/CD
//!
//! Pipelines, environments and deployments (module `ci`): a deterministic history before
//! [`HISTORY_HORIZON`] for projects with `pipeline_history` (and `environment_history`:
//! `production` and `staging` with deployments and the merged merge requests they shipped).
//! REST: `GET /projects/:id/pipelines` (`scope`, `status`, `ref`, `sha`, `source`, `username`,
//! `updated_after`/`updated_before` and `created_*`, inclusive; `order_by` id, status, ref,
//! updated_at, user_id; `sort`, default id desc; entity `PipelineBasicWithMetadata`),
//! `/pipelines/latest?ref=` and `/pipelines/:pipeline_id` (`PipelineWithMetadata`: duration,
//! queued_duration, started_at, finished_at), `GET /projects/:id/environments` (`name`,
//! `search` of 3+ characters, `states`), `GET /projects/:id/deployments` (`order_by`, `sort`
//! default id asc, `updated_*`, `finished_after` (>=) / `finished_before` (<), `environment`,
//! `status`, with `DeploymentsFinder`'s 400s), `/deployments/:deployment_id` and
//! `/deployments/:deployment_id/merge_requests`. With CI/CD off (`builds_enabled: false`,
//! `builds_access_level: disabled`, `jobs_enabled: false`) the pipeline list, environments and
//! deployments answer 403, a single pipeline stays readable (GitLab keeps `read_pipeline`);
//! with environments off (`environments_access_level: disabled`) environments and deployments
//! answer 403. The change API: [`Instance::run_pipeline`], [`Instance::finish_pipeline`],
//! [`Instance::create_environment`], [`Instance::deploy`], [`Instance::finish_deployment`],
//! [`Instance::set_builds_enabled`], [`Instance::set_environments_enabled`] (with `faults`, the
//! same on `FakeGitlab`, stamped with its clock).
//!
//! # Lively demo
//!
//! [`FakeGitlab::start_lively`] (module `lively`, no `faults` needed) runs one step of
//! activity every few seconds on the fake's clock: pipelines started and finished on default
//! branches, merge requests opened and merged, deployments to staging and production shipping
//! what was merged since. Off unless called (the `fake-gitlab` binary: `--lively-secs N`).
//!
//! # Faults (feature `faults`)
//!
//! [`FakeGitlab::set_faults`] makes the fake misbehave, on one route template or on all
//! ([`Faults::route`]); [`Faults::default`] turns everything off. A fault comes after the
//! request is counted ([`FakeGitlab::requests`]) and after [`hold`](FakeGitlab::hold) and
//! latency; answered faults carry `Date` like every answer. Kinds, tried in this order:
//!
//! - [`Faults::hang`]: no answer until `set_faults` stops hanging the route (the request then
//!   goes on through the other kinds) or the fake shuts down (connection closed).
//! - [`Faults::redirect_to`]: `302 Found` to that base URL with the request's path and query.
//! - [`Faults::echo_token`]: `400` with a JSON body quoting the request's token in `\uXXXX`
//!   escapes.
//! - [`Faults::reset_rate`]: the connection is closed without any answer.
//! - [`Faults::server_error_rate`]: rotating 500 `{"message":"500 Internal Server Error"}`
//!   (`application/json`), 502 nginx's HTML page (`text/html`), 503 `no healthy upstream`
//!   (`text/plain`).
//! - [`Faults::endpoint_throttle_rate`]: GitLab's application-limit 429,
//!   `{"message":{"error":"This endpoint has been requested too many times. Try again later."}}`
//!   (`application/json`), without `Retry-After` or `RateLimit-*` headers.
//! - [`Faults::malformed`]: every 2xx answer gets a broken body ([`Malformed`]).
//!
//! - [`Faults::endless`]: every list announces one more page, forever.
//! - [`Faults::corrupt`]: one field of one project's JSON replaced by raw text ([`Corruption`]).
//!
//! And one that is no fault but what some proxies in front of GitLab do:
//! [`Faults::normalize_paths`] resolves `.` and `..` segments of every request path before
//! routing it.
//!
//! Rates are exact and evenly spread, not random: affected requests are numbered from the last
//! `set_faults`, and a rate of 0.05 hits exactly every 20th (requests 19, 39, ...). Injected 5xx
//! and 429 answers skip the API, so they neither consume the `rate_limit_per_minute` throttle
//! nor carry its headers. [`FakeGitlab::faults_injected`] counts faulted requests (a hung one as
//! soon as it starts waiting).
//!
//! # The demo instance ([`Instance::demo`])
//!
//! User `demo-user` (not admin), token `glpat-demo-0000000000000000`. Groups `acme` (10),
//! `acme/platform` (11), `acme/platform/infra` (12), `acme/web` (13), `acme/services` (14),
//! `labs` (20), `other-org` (30), `partners` (40). MR counts are opened/merged/closed/locked.
//! A role "via group" comes from a group membership (`permissions.group_access`,
//! `project_access: null`).
//!
//! | project | id | role | commits | MRs | notes |
//! |---|---|---|---|---|---|
//! | `acme/api` | 42 | Maintainer | 347 | 7/312/41/2 | |
//! | `acme/platform/deploy` | 7 | Developer | 25 | 2/40/5/0 | 2 pages at 20 per page |
//! | `acme/platform/infra/terraform` | 88 | Reporter via group | 200 | 1/19/3/0 | nested subgroup; phantom page at 100 |
//! | `acme/web/frontend` | 15 | Owner | 4,321 | 10,000/12,345/10,001/1 | totals missing for merged, closed, all |
//! | `acme/legacy` | 3 | Maintainer | 880 | 0/57/9/0 | archived |
//! | `acme/empty` | 61 | Developer | 0 | 0 | empty repo; API still says `default_branch: "main"` |
//! | `acme/docs` | 29 | Developer | 73 | disabled | issues disabled (no `open_issues_count`) |
//! | `acme/release-train` | 50 | Developer | 129 | 3/88/6/0 | default branch `release/2.0` |
//! | `labs/secret` | 77 | Guest via group | 45 | 4/10/1/0 | private: no statistics, no code (no `default_branch`, `forks_count`), MRs 403 |
//! | `labs/guest-public` | 21 | Guest | 57 | 2/14/2/0 | public: code readable, no statistics |
//! | `other-org/public-lib` | 9 | none | 512 | 5/77/12/1 | public, shared into `acme` |
//! | `other-org/internal-tool` | 33 | none | 96 | 1/8/0/0 | internal |
//! | `partners/portal` | 34 | none | 230 | 6/52/7/0 | public; MRs for members only (`merge_requests_access_level: private`): hidden, `merge_requests_enabled: false` |
//! | `partners/sandbox` | 35 | none | 0 | 0 | public, empty repo written as older GitLab did: `default_branch: null` |
//! | `demo-user/dotfiles` | 2 | Owner | 40 | 0/1/0/0 | user namespace; phantom page at 20 |
//! | `acme/services/svc-001..120` | 200..319 | Reporter+ | 21..2999 | varied | 6 with 21..99 commits, 3 archived, 4 without MRs, 7 without issues; every 3rd role via group, 17 with MRs for members only |
//!
//! Times are written as gitlab.com does (UTC, `.000`) unless [`Instance::timestamps`] says
//! otherwise ([`Timestamps::self_managed`]: a zone offset and real milliseconds).

mod api;
mod changes;
mod ci;
mod ci_api;
mod common;
mod dates;
#[cfg(feature = "faults")]
mod faults;
mod graphql;
mod history;
#[cfg(feature = "faults")]
mod hooks;
mod instance;
mod lively;
mod paginate;
mod ratelimit;
#[cfg(feature = "faults")]
mod routes;

pub use ci::{DeploymentStatus, PipelineStatus, Tier};
pub use common::MergeRequestCounts;
pub use dates::Timestamps;
#[cfg(feature = "faults")]
pub use faults::{Corruption, Faults, Malformed};
pub use history::{HISTORY_HORIZON, MergeRequestChange};
pub use instance::{FakeGroup, FakeProject, Instance, Namespace, Role, Storage, Visibility};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, DATE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use api::{ApiRequest, Endpoint, Live, Reply};
#[cfg(feature = "faults")]
use hooks::serve;
use ratelimit::RateLimiter;

/// How long `shutdown` waits for in-flight requests before dropping connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// State shared by the handle and every connection task.
struct Shared {
    /// The data and the pending vanishings. A std mutex: it is never held across an await
    /// (shared with the GraphQL resolvers of the requests in flight).
    live: Arc<Mutex<Live>>,
    limiter: RateLimiter,
    latency_nanos: AtomicU64,
    /// Server time of one merge request count (see [`FakeGitlab::set_count_cost`]).
    count_cost_nanos: AtomicU64,
    /// Seconds added to the host's clock to make the fake's (set by a test hook).
    clock_offset: AtomicI64,
    /// Counters, hold, faults (see `hooks`).
    #[cfg(feature = "faults")]
    hooks: hooks::Hooks,
    /// `http://127.0.0.1:PORT`.
    url: String,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, Live> {
        // A test closure that panicked inside `with_instance` must not take the server down.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fake's clock, Unix seconds.
    fn now(&self) -> i64 {
        dates::now_unix().saturating_add(self.clock_offset.load(Ordering::SeqCst))
    }

    /// The latency of [`FakeGitlab::set_latency`].
    async fn wait_latency(&self) {
        let latency = Duration::from_nanos(self.latency_nanos.load(Ordering::SeqCst));
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// Waits the server time of `counts` merge request counts ([`FakeGitlab::set_count_cost`]),
    /// outside the instance lock.
    async fn wait_counts(&self, counts: usize) {
        let cost = Duration::from_nanos(self.count_cost_nanos.load(Ordering::SeqCst));
        let total = cost.saturating_mul(u32::try_from(counts).unwrap_or(u32::MAX));
        if !total.is_zero() {
            tokio::time::sleep(total).await;
        }
    }

    /// The REST answer's count cost: one count for an answered merge request listing.
    async fn wait_rest_counts(&self, endpoint: &Endpoint, reply: &Reply) {
        let counted = matches!(
            endpoint,
            Endpoint::MergeRequests(_) | Endpoint::GroupMergeRequests(_)
        ) && reply.status == 200;
        if counted {
            self.wait_counts(1).await;
        }
    }

    /// The GraphQL endpoint's answer at `now` (`body`: `Err` when over the limit), then the
    /// server time of the merge request counts it ran.
    async fn answer_graphql(
        &self,
        asked: &Asked,
        body: &Result<Bytes, ()>,
        now: i64,
        knobs: graphql::Knobs,
    ) -> (Reply, graphql::Outcome) {
        let request = graphql::GraphqlRequest {
            method: &asked.method,
            query: asked.query.as_deref(),
            body: match body {
                Ok(b) => Ok(b.as_ref()),
                Err(()) => Err(()),
            },
            token: asked.token.as_deref(),
            now: u64::try_from(now).unwrap_or(0),
        };
        let (reply, outcome) = graphql::respond(&self.live, &self.limiter, &request, knobs).await;
        self.wait_counts(outcome.counts).await;
        (reply, outcome)
    }

    /// The API's answer to `asked`, with `query` in place of its own, at `now`.
    fn answer(&self, asked: &Asked, query: Option<&str>, endpoint: &Endpoint, now: i64) -> Reply {
        let request = ApiRequest {
            method: &asked.method,
            path: &asked.path,
            query,
            token: asked.token.as_deref(),
            now: u64::try_from(now).unwrap_or(0),
        };
        api::respond(
            &mut self.live(),
            &self.limiter,
            &self.url,
            &request,
            endpoint,
        )
    }
}

/// A running fake GitLab on 127.0.0.1 (random port). Dropping it or calling
/// [`shutdown`](Self::shutdown) stops the server.
pub struct FakeGitlab {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeGitlab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGitlab")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

impl FakeGitlab {
    /// Binds 127.0.0.1:0 and spawns the server task on the current tokio runtime.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(instance: Instance) -> std::io::Result<FakeGitlab> {
        FakeGitlab::start_on(instance, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Binds `addr` and spawns the server task on the current tokio runtime.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start_on(
        mut instance: Instance,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<FakeGitlab> {
        let listener = TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        instance.sort_projects();
        instance.reconcile_changes();
        let shared = Arc::new(Shared {
            live: Arc::new(Mutex::new(Live::new(instance))),
            limiter: RateLimiter::default(),
            latency_nanos: AtomicU64::new(0),
            count_cost_nanos: AtomicU64::new(0),
            clock_offset: AtomicI64::new(0),
            #[cfg(feature = "faults")]
            hooks: hooks::Hooks::default(),
            url,
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(listener, Arc::clone(&shared), stop_rx));
        Ok(FakeGitlab {
            shared,
            stop,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT` (clients append `/api/v4/...`).
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The valid token of the instance's user.
    pub fn token(&self) -> String {
        self.shared.live().instance.token.clone()
    }

    /// Every request waits `d` (async sleep) before being answered, as over a network with
    /// that round trip; default 0.
    pub fn set_latency(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Every merge request count the fake runs costs `d` of server time (async sleep, outside
    /// the instance lock), on both APIs: a REST `/projects/:id/merge_requests` or
    /// `/groups/:id/merge_requests` answer (one count, for `X-Total`) waits `d`; a GraphQL
    /// answer waits `d` times the `count` fields of merge request connections it resolved,
    /// summed and slept once after execution (GitLab resolves them one after another).
    /// Default 0.
    pub fn set_count_cost(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.shared.count_cost_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Stops accepting, lets in-flight (and held) requests finish for up to 2 s, then closes
    /// every connection. Requests hung by a fault (`Faults::hang`) are dropped at once,
    /// unanswered.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeGitlab {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The accept loop: one task per connection, HTTP/1.1 keep-alive, graceful stop.
async fn run(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .keep_alive(true)
        // In hyper 1.x this is also the idle keep-alive timeout. Off: a test fake must not close
        // pooled connections, least of all under tokio's paused clock, where it would fire at once.
        .header_read_timeout(None);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let service = service_fn(move |req| serve(req, Arc::clone(&shared)));
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    conns.spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "fake gitlab: connection error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fake gitlab: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    #[cfg(feature = "faults")]
    shared.hooks.close();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    conns.abort_all();
}

/// Resolves once a stop is asked for (or the handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The returned `Ref` is dropped here, so the accept loop stays `Send`.
    let _ = stop.wait_for(|s| *s).await;
}

/// What the server keeps of a request.
struct Asked {
    method: String,
    /// Raw path, still percent-encoded.
    path: String,
    /// Raw query string.
    query: Option<String>,
    /// From `PRIVATE-TOKEN` or `Authorization: Bearer`.
    token: Option<String>,
    #[cfg(feature = "faults")]
    user_agent: Option<String>,
}

impl Asked {
    fn of(req: &Request<Incoming>) -> Asked {
        let headers = req.headers();
        Asked {
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            token: api::token_from_headers(
                headers.get("private-token").map(HeaderValue::as_bytes),
                headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            ),
            #[cfg(feature = "faults")]
            user_agent: headers
                .get(hyper::header::USER_AGENT)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        }
    }
}

/// One request: latency, then the answer under the lock (with the `faults` feature,
/// `hooks::serve` counts, holds and injects faults too).
#[cfg(not(feature = "faults"))]
async fn serve(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let asked = Asked::of(&req);
    let endpoint = Endpoint::parse(&asked.path);
    let body = read_body(req, &endpoint).await;
    shared.wait_latency().await;
    let now = shared.now();
    let reply = if endpoint == Endpoint::Graphql {
        let knobs = graphql::Knobs::default();
        shared.answer_graphql(&asked, &body, now, knobs).await.0
    } else {
        let reply = shared.answer(&asked, asked.query.as_deref(), &endpoint, now);
        shared.wait_rest_counts(&endpoint, &reply).await;
        reply
    };
    Ok(into_response(reply, now))
}

/// The body of a GraphQL request, up to [`graphql::MAX_BODY_BYTES`] (`Err` beyond, or when it
/// cannot be read); other requests' bodies are not read.
async fn read_body(req: Request<Incoming>, endpoint: &Endpoint) -> Result<Bytes, ()> {
    use http_body_util::{BodyExt, Limited};
    if *endpoint != Endpoint::Graphql {
        return Ok(Bytes::new());
    }
    let limited = Limited::new(req.into_body(), graphql::MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(()),
    }
}

/// The hyper response, with `Date` from the fake's clock (hyper adds its own only when absent).
fn into_response(reply: Reply, now: i64) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Ok(date) = HeaderValue::from_str(&dates::http_date(now)) {
        h.insert(DATE, date);
    }
    for (name, value) in reply.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                h.append(n, v);
            }
            // Only a strange base_url_override can produce this; skip the header, keep serving.
            _ => tracing::warn!(header = name, "fake gitlab: invalid header value skipped"),
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// A minimal keep-alive HTTP/1.1 client over a raw `TcpStream` (tokio's `io-util` feature is
    /// not enabled, so it uses `try_read`/`try_write`). Responses here always carry Content-Length.
    /// Also used by the tests of `faults`.
    pub(super) struct Client {
        stream: TcpStream,
        /// Bytes read but not consumed yet.
        buf: Vec<u8>,
    }

    /// Status, lowercase headers, body (lossy text and raw bytes).
    pub(super) struct Answer {
        pub(super) status: u16,
        pub(super) headers: Vec<(String, String)>,
        pub(super) body: String,
        /// Read by the tests of `faults` (bodies that are not UTF-8).
        #[cfg_attr(not(feature = "faults"), allow(dead_code))]
        pub(super) bytes: Vec<u8>,
    }

    impl Answer {
        pub(super) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        pub(super) fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
        }
    }

    impl Client {
        pub(super) async fn connect(fake: &FakeGitlab) -> Client {
            let addr = fake.url().trim_start_matches("http://").to_string();
            let stream = TcpStream::connect(addr).await.expect("connect");
            Client {
                stream,
                buf: Vec::new(),
            }
        }

        async fn write_all(&self, mut data: &[u8]) {
            while !data.is_empty() {
                self.stream.writable().await.expect("writable");
                match self.stream.try_write(data) {
                    Ok(n) => data = &data[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("write: {e}"),
                }
            }
        }

        /// Reads more bytes into `buf`; panics on EOF.
        async fn fill(&mut self) {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                self.stream.readable().await.expect("readable");
                match self.stream.try_read(&mut chunk) {
                    Ok(0) => panic!("connection closed"),
                    Ok(n) => return self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
        }

        async fn write_request(&self, method: &str, path: &str, token: Option<&str>) {
            let auth = token.map_or(String::new(), |t| format!("PRIVATE-TOKEN: {t}\r\n"));
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: fake\r\n{auth}Content-Length: 0\r\n\r\n"
            );
            self.write_all(head.as_bytes()).await;
        }

        /// Sends a request and expects the server to close (or reset) the connection without
        /// sending a single byte. False when bytes arrive instead.
        #[cfg(feature = "faults")]
        pub(super) async fn send_expecting_close(
            &mut self,
            method: &str,
            path: &str,
            token: Option<&str>,
        ) -> bool {
            self.write_request(method, path, token).await;
            let mut chunk = [0u8; 1024];
            loop {
                self.stream.readable().await.expect("readable");
                match self.stream.try_read(&mut chunk) {
                    Ok(0) => return self.buf.is_empty(),
                    Ok(_) => return false,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        return self.buf.is_empty();
                    }
                    Err(e) => panic!("read: {e}"),
                }
            }
        }

        pub(super) async fn send(
            &mut self,
            method: &str,
            path: &str,
            token: Option<&str>,
        ) -> Answer {
            self.write_request(method, path, token).await;
            self.read_answer(method).await
        }

        /// A POST with a JSON body (`Authorization: Bearer` when a token is given).
        pub(super) async fn post(&mut self, path: &str, token: Option<&str>, body: &str) -> Answer {
            let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: fake\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            self.write_all(head.as_bytes()).await;
            self.write_all(body.as_bytes()).await;
            self.read_answer("POST").await
        }

        async fn read_answer(&mut self, method: &str) -> Answer {
            let head_end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                self.fill().await;
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            // A HEAD answer announces a length but carries no body.
            let len = if method == "HEAD" { 0 } else { len };
            while self.buf.len() < head_end + len {
                self.fill().await;
            }
            let bytes = self.buf[head_end..head_end + len].to_vec();
            let body = String::from_utf8_lossy(&bytes).into_owned();
            self.buf.drain(..head_end + len);
            Answer {
                status,
                headers,
                body,
                bytes,
            }
        }
    }

    #[test]
    fn handle_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FakeGitlab>();
    }

    /// One GET with the instance's token, on a new connection.
    pub(super) async fn get(fake: &FakeGitlab, path: &str) -> Answer {
        let token = fake.token();
        Client::connect(fake)
            .await
            .send("GET", path, Some(&token))
            .await
    }

    #[tokio::test]
    async fn serves_the_demo_over_keep_alive_http() {
        let fake = FakeGitlab::start(Instance::demo()).await.expect("start");
        let token = fake.token();
        let mut c = Client::connect(&fake).await;
        let a = c
            .send(
                "GET",
                "/api/v4/projects?membership=true&per_page=100&statistics=true",
                Some(&token),
            )
            .await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert_eq!(a.header("x-total"), Some("131"));
        assert_eq!(a.header("x-total-pages"), Some("2"));
        assert_eq!(a.header("x-next-page"), Some("2"));
        assert_eq!(a.header("x-prev-page"), Some(""));
        let next = format!(
            "<{}/api/v4/projects?membership=true&per_page=100&statistics=true&page=2>; rel=\"next\"",
            fake.url()
        );
        assert!(
            a.header("link").is_some_and(|l| l.starts_with(&next)),
            "{:?}",
            a.header("link")
        );
        assert_eq!(a.json().as_array().map(Vec::len), Some(100));
        // Same connection: wrong token, unknown route, wrong method, encoded path.
        assert_eq!(
            c.send("GET", "/api/v4/user", Some("nope")).await.status,
            401
        );
        let unknown = c.send("GET", "/api/v4/nothing", Some(&token)).await;
        assert_eq!(
            (unknown.status, unknown.body.as_str()),
            (404, r#"{"error":"404 Not Found"}"#)
        );
        assert_eq!(
            c.send("POST", "/api/v4/projects", Some(&token))
                .await
                .status,
            405
        );
        let branch = c
            .send(
                "GET",
                "/api/v4/projects/acme%2Frelease-train/repository/branches/release%2F2.0",
                Some(&token),
            )
            .await;
        assert_eq!(branch.status, 200);
        assert_eq!(branch.json()["name"], "release/2.0");
        assert_eq!(
            c.send("HEAD", "/api/v4/version", Some(&token)).await.status,
            200
        );

        #[cfg(feature = "faults")]
        {
            assert_eq!(fake.requests("/projects"), 2);
            assert_eq!(fake.requests("/user"), 1);
            assert_eq!(fake.requests("unknown"), 1);
            assert_eq!(
                fake.requests("/projects/:id/repository/branches/:branch"),
                1
            );
            assert_eq!(fake.total_requests(), 6);
            assert_eq!(fake.requests_by_route().len(), 5);
            fake.reset_counts();
            assert_eq!(fake.total_requests(), 0);
        }
        fake.shutdown().await;
    }

    #[cfg(feature = "faults")]
    #[tokio::test]
    async fn hold_and_release() {
        let fake = Arc::new(FakeGitlab::start(Instance::demo()).await.expect("start"));
        fake.hold();
        let f2 = Arc::clone(&fake);
        let waiting = tokio::spawn(async move { get(&f2, "/api/v4/version").await.status });
        for _ in 0..200 {
            if fake.pending() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(fake.pending(), 1);
        assert!(!waiting.is_finished());
        fake.release();
        assert_eq!(waiting.await.ok(), Some(200));
        assert_eq!(fake.pending(), 0);
    }

    #[tokio::test]
    async fn latency_delays_every_answer() {
        let fake = FakeGitlab::start(Instance::demo()).await.expect("start");
        fake.set_latency(Duration::from_millis(60));
        let t0 = std::time::Instant::now();
        assert_eq!(get(&fake, "/api/v4/user").await.status, 200);
        assert!(t0.elapsed() >= Duration::from_millis(60));
    }

    #[cfg(feature = "faults")]
    #[tokio::test]
    async fn vanishing_project_is_listed_once_then_gone() {
        let fake = FakeGitlab::start(Instance::demo()).await.expect("start");
        fake.vanish_after_listing(42);
        assert_eq!(get(&fake, "/api/v4/projects/42").await.status, 200);
        let list = get(
            &fake,
            "/api/v4/projects?membership=true&order_by=id&sort=asc&per_page=100",
        )
        .await;
        let ids: Vec<u64> = list.json().as_array().map_or(Vec::new(), |a| {
            a.iter().filter_map(|p| p["id"].as_u64()).collect()
        });
        assert!(ids.contains(&42));
        let gone = get(&fake, "/api/v4/projects/42").await;
        assert_eq!(
            (gone.status, gone.body.as_str()),
            (404, r#"{"message":"404 Project Not Found"}"#)
        );
        assert!(fake.with_instance(|i| i.project(42).is_none()));
    }

    #[tokio::test]
    async fn rate_limit_answers_429() {
        let mut instance = Instance::demo();
        instance.rate_limit_per_minute = Some(2);
        let fake = FakeGitlab::start(instance).await.expect("start");
        let ok = get(&fake, "/api/v4/version").await;
        assert_eq!(
            ok.header("ratelimit-name"),
            Some("throttle_authenticated_api")
        );
        assert_eq!(ok.header("ratelimit-limit"), Some("2"));
        // A minute boundary may reset the window once; the limit is still hit within 6 calls.
        let mut throttled = None;
        for _ in 0..6 {
            let a = get(&fake, "/api/v4/version").await;
            if a.status == 429 {
                throttled = Some(a);
                break;
            }
        }
        let a = throttled.expect("a 429");
        assert_eq!(a.body, "Retry later\n");
        assert_eq!(a.header("content-type"), Some("text/plain"));
        assert_eq!(a.header("ratelimit-remaining"), Some("0"));
        assert!(
            a.header("retry-after")
                .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n <= 60))
        );
        assert!(
            a.header("ratelimit-resettime")
                .is_some_and(|s| s.ends_with(" GMT"))
        );
    }

    /// The `Date` header as Unix seconds (checked by formatting candidates around `near`).
    #[cfg(feature = "faults")]
    pub(super) fn date_of(a: &Answer, near: i64) -> Option<i64> {
        let date = a.header("date")?;
        (near - 5..=near + 5).find(|t| dates::http_date(*t) == date)
    }

    #[cfg(feature = "faults")]
    #[tokio::test]
    async fn date_header_follows_the_fake_clock() {
        let fake = FakeGitlab::start(Instance::demo()).await.expect("start");
        let host = dates::now_unix();
        assert!((fake.now() - host).abs() <= 1);
        let a = get(&fake, "/api/v4/version").await;
        assert!(date_of(&a, host).is_some(), "{:?}", a.header("date"));
        assert_eq!(a.headers.iter().filter(|(k, _)| k == "date").count(), 1);

        fake.set_clock_offset(-600);
        assert!((fake.now() - (host - 600)).abs() <= 2);
        for path in [
            "/api/v4/projects/42",
            "/api/v4/nothing",
            "/api/v4/projects/999",
        ] {
            let a = get(&fake, path).await;
            assert!(
                date_of(&a, host - 600).is_some(),
                "{path}: {:?}",
                a.header("date")
            );
        }
        let mut c = Client::connect(&fake).await;
        let a = c.send("GET", "/api/v4/user", Some("wrong")).await;
        assert_eq!(a.status, 401);
        assert!(date_of(&a, host - 600).is_some(), "errors carry Date too");
    }

    #[cfg(feature = "faults")]
    #[tokio::test]
    async fn changes_are_stamped_with_the_fake_clock() {
        let fake = FakeGitlab::start(Instance::demo()).await.expect("start");
        fake.set_clock_offset(-600);
        // GitLab's clock, as the exporter reads it: the Date of an answer.
        let first = get(&fake, "/api/v4/version").await;
        let since = date_of(&first, fake.now()).expect("Date");
        let window = |id: &str| {
            format!(
                "/api/v4/groups/{id}/merge_requests?state=all&scope=all&updated_after={}&non_archived=false&view=simple&per_page=100",
                dates::rfc3339_z(since)
            )
        };
        assert_eq!(
            get(&fake, &window("acme")).await.header("x-total"),
            Some("0")
        );

        assert!(fake.change_merge_request(42, MergeRequestChange::Open));
        assert!(fake.change_merge_request(88, MergeRequestChange::Close));
        assert!(!fake.change_merge_request(61, MergeRequestChange::Merge));
        let a = get(&fake, &window("acme")).await;
        assert_eq!(a.header("x-total"), Some("2"));
        let changed: Vec<(u64, String)> = a.json().as_array().map_or(Vec::new(), |l| {
            l.iter()
                .map(|m| {
                    (
                        m["project_id"].as_u64().unwrap_or(0),
                        m["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        });
        assert!(
            changed.contains(&(42, "opened".to_string()))
                && changed.contains(&(88, "closed".to_string()))
        );
        let stamp = a.json()[0]["updated_at"].as_str().unwrap_or("").to_string();
        let stamped = (since..=since + 5).any(|t| dates::rfc3339_z(t) == stamp);
        assert!(stamped, "{stamp} is on the fake clock (host - 600 s)");
        assert_eq!(fake.requests("/groups/:id/merge_requests"), 2);

        // A project outside any group: X-Total of the project endpoint.
        assert!(fake.change_merge_request(2, MergeRequestChange::Open));
        let own = format!(
            "/api/v4/projects/2/merge_requests?state=all&updated_after={}&view=simple&per_page=1",
            dates::rfc3339_z(since)
        );
        assert_eq!(get(&fake, &own).await.header("x-total"), Some("1"));

        // Counts edited directly: listings follow, the window does not.
        fake.with_instance(|i| i.project_mut(42).map(|p| p.merge_requests.merged -= 10));
        let merged = get(
            &fake,
            "/api/v4/projects/42/merge_requests?state=merged&per_page=1",
        )
        .await;
        assert_eq!(merged.header("x-total"), Some("302"));
        assert_eq!(
            get(&fake, &window("acme")).await.header("x-total"),
            Some("2")
        );

        assert!(fake.push(7, 2));
        let seq = get(&fake, "/api/v4/projects/7/repository/commits/main/sequence").await;
        assert_eq!(seq.json()["count"], 27);
        assert!(!fake.push(3, 1), "archived");
    }

    #[tokio::test]
    async fn graphql_over_http() {
        let mut instance = Instance::demo();
        instance.rate_limit_per_minute = Some(1000);
        let fake = FakeGitlab::start(instance).await.expect("start");
        let token = fake.token();
        let mut c = Client::connect(&fake).await;
        let query = r#"{"query":"{ project(fullPath: \"acme/api\") { id mergeRequests(state: merged) { count } } }"}"#;
        let a = c.post("/api/graphql", Some(&token), query).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["data"]["project"]["mergeRequests"]["count"], 312);
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert!(a.header("date").is_some());
        assert_eq!(a.header("ratelimit-limit"), Some("1000"));
        let wrong = c.post("/api/graphql", Some("nope"), query).await;
        assert_eq!(
            (wrong.status, wrong.body.as_str()),
            (401, r#"{"errors":[{"message":"Invalid token"}]}"#)
        );
        // GET executes a query string; a bare GET has none.
        let get = c
            .send(
                "GET",
                "/api/graphql?query=%7B%20queryComplexity%20%7B%20limit%20%7D%20%7D",
                None,
            )
            .await;
        assert_eq!(get.json()["data"]["queryComplexity"]["limit"], 200);
        let bare = c.send("GET", "/api/graphql", Some(&token)).await;
        assert_eq!(
            (bare.status, bare.body.as_str()),
            (
                200,
                r#"{"errors":[{"message":"No query string was present"}]}"#
            )
        );
        let huge = format!(r#"{{"query":"{}"}}"#, " ".repeat(graphql::MAX_BODY_BYTES));
        assert_eq!(
            c.post("/api/graphql", Some(&token), &huge).await.status,
            413
        );
        // Each merge request count costs server time: two counts, then one REST count.
        fake.set_count_cost(Duration::from_millis(40));
        let two = r#"{"query":"{ project(fullPath: \"acme/api\") { a: mergeRequests { count } b: mergeRequests(state: opened) { count } } }"}"#;
        let t0 = std::time::Instant::now();
        assert_eq!(c.post("/api/graphql", Some(&token), two).await.status, 200);
        assert!(t0.elapsed() >= Duration::from_millis(80));
        let t0 = std::time::Instant::now();
        let rest = c
            .send(
                "GET",
                "/api/v4/projects/42/merge_requests?per_page=1",
                Some(&token),
            )
            .await;
        assert_eq!(rest.status, 200);
        assert!(t0.elapsed() >= Duration::from_millis(40));
        fake.set_count_cost(Duration::ZERO);

        #[cfg(feature = "faults")]
        {
            assert_eq!(fake.requests("/api/graphql"), 6);
            assert_eq!(fake.graphql_scores(), vec![8, 2, 13]);
            assert_eq!(fake.graphql_queries().len(), 4, "not the 401 nor the 413");
            fake.set_faults(Faults {
                route: Some("/api/graphql".into()),
                graphql_disabled: true,
                ..Faults::default()
            });
            let off = c.post("/api/graphql", Some(&token), query).await;
            assert_eq!(
                (off.status, off.body.as_str()),
                (404, r#"{"message":"404 Not Found"}"#)
            );
            fake.set_faults(Faults {
                route: Some("/api/graphql".into()),
                server_error_rate: 1.0,
                ..Faults::default()
            });
            assert_eq!(
                c.post("/api/graphql", Some(&token), query).await.status,
                500
            );
            fake.set_faults(Faults::default());
            assert_eq!(fake.faults_injected(), 2);
            fake.reset_counts();
            assert!(fake.graphql_scores().is_empty());
        }
        fake.shutdown().await;
    }

    #[cfg(feature = "faults")]
    #[tokio::test]
    async fn ci_hooks_are_stamped_with_the_fake_clock_and_counted() {
        let fake = FakeGitlab::start(Instance::demo()).await.expect("start");
        fake.set_clock_offset(-600);
        let since = fake.now();
        let id = fake
            .run_pipeline(42, "main", PipelineStatus::Running)
            .expect("a pipeline");
        assert!(fake.finish_pipeline(42, id, PipelineStatus::Success, 30));
        let window = format!(
            "/api/v4/projects/42/pipelines?updated_after={}",
            dates::rfc3339_z(since)
        );
        let a = get(&fake, &window).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json()[0]["id"].as_u64(), Some(id));
        let stamp = a.json()[0]["updated_at"].as_str().unwrap_or("").to_string();
        assert!(
            (since..=since + 5).any(|t| dates::rfc3339_z(t) == stamp),
            "{stamp}"
        );
        let one = get(&fake, &format!("/api/v4/projects/42/pipelines/{id}")).await;
        assert_eq!(one.json()["duration"], 30);
        let dep = fake
            .deploy(
                42,
                "production",
                DeploymentStatus::Running,
                &[1, 2],
                Some(id),
            )
            .expect("a deployment");
        assert!(fake.finish_deployment(42, dep, DeploymentStatus::Success));
        let mrs = get(
            &fake,
            &format!("/api/v4/projects/42/deployments/{dep}/merge_requests"),
        )
        .await;
        assert_eq!(mrs.json().as_array().map(Vec::len), Some(2));
        assert!(fake.create_environment(42, "qa", Tier::Testing).is_some());
        assert!(fake.set_builds_enabled(7, false));
        assert_eq!(get(&fake, "/api/v4/projects/7/pipelines").await.status, 403);
        assert!(fake.set_environments_enabled(42, false));
        assert_eq!(
            get(&fake, "/api/v4/projects/42/environments").await.status,
            403
        );
        assert_eq!(fake.requests("/projects/:id/pipelines"), 2);
        assert_eq!(fake.requests("/projects/:id/pipelines/:pipeline_id"), 1);
        assert_eq!(
            fake.requests("/projects/:id/deployments/:deployment_id/merge_requests"),
            1
        );
        assert_eq!(fake.requests("/projects/:id/environments"), 1);
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_stops_the_server() {
        let fake = FakeGitlab::start(Instance::generated(50))
            .await
            .expect("start");
        let addr = fake.url().trim_start_matches("http://").to_string();
        assert_eq!(get(&fake, "/api/v4/projects/7").await.status, 200);
        fake.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
