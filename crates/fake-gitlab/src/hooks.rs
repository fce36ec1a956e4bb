//! The fake GitLab's test hooks, compiled only with the `faults` feature (the exporter's tests
//! and benchmarks enable it; `--demo` and the `fake-gitlab` binary do without): requests counted
//! by route template, hold and release, the in-flight maximum, the `User-Agent`s seen, the clock
//! offset, live changes, vanishing projects, and the server loop's side of fault injection
//! ([`faults`](super::faults)).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::watch;

use super::api::Endpoint;
use super::faults::{self, FaultState, Faults, Verdict};
use super::graphql::Outcome;
use super::routes::Route;
use super::{
    Asked, DeploymentStatus, FakeGitlab, Instance, MergeRequestChange, PipelineStatus, Shared,
    Tier, into_response, read_body,
};

/// The hooks' state, shared by the handle and every connection task.
#[derive(Debug)]
pub(crate) struct Hooks {
    /// Requests per route, indexed by `Route::index`.
    counts: [AtomicU64; Route::ALL.len()],
    /// `true` while requests must wait (see `FakeGitlab::hold`).
    held: watch::Sender<bool>,
    pending: AtomicUsize,
    /// Requests being served now, and the most at once since start or the last reset.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Every distinct `User-Agent` seen.
    user_agents: Mutex<BTreeSet<String>>,
    /// What goes wrong (see `FakeGitlab::set_faults`).
    faults: FaultState,
    /// The GraphQL requests: the query texts received, and the scores of those scored.
    graphql: Mutex<GraphqlLog>,
}

/// What the hooks keep of GraphQL requests.
#[derive(Debug, Default)]
struct GraphqlLog {
    queries: Vec<String>,
    scores: Vec<u32>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            counts: Default::default(),
            held: watch::Sender::new(false),
            pending: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            user_agents: Mutex::new(BTreeSet::new()),
            faults: FaultState::default(),
            graphql: Mutex::new(GraphqlLog::default()),
        }
    }
}

impl Hooks {
    /// A request arrived on `route`: counted, its `User-Agent` noted, then held while
    /// [`FakeGitlab::hold`] says so. It stays in flight while the guard lives.
    async fn arrive(&self, route: Route, user_agent: Option<String>) -> CountGuard<'_> {
        self.counts[route.index()].fetch_add(1, Ordering::SeqCst);
        if let Some(agent) = user_agent {
            let mut agents = self.user_agents.lock().unwrap_or_else(|e| e.into_inner());
            if !agents.contains(&agent) {
                agents.insert(agent);
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let in_flight = CountGuard(&self.in_flight);
        self.wait_while_held().await;
        in_flight
    }

    /// Notes a GraphQL request's query text and complexity score.
    fn record_graphql(&self, outcome: Outcome) {
        let mut log = self.graphql_log();
        if let Some(q) = outcome.query {
            log.queries.push(q);
        }
        if let Some(s) = outcome.score {
            log.scores.push(s);
        }
    }

    fn graphql_log(&self) -> std::sync::MutexGuard<'_, GraphqlLog> {
        self.graphql.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn wait_while_held(&self) {
        let mut rx = self.held.subscribe();
        if !*rx.borrow_and_update() {
            return;
        }
        self.pending.fetch_add(1, Ordering::SeqCst);
        let _pending = CountGuard(&self.pending);
        // Err only if the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|held| !*held).await;
    }

    /// The server shuts down: held requests go on, hung ones end.
    pub(crate) fn close(&self) {
        self.held.send_replace(false);
        self.faults.close();
    }
}

/// Decrements a counter (pending, in flight) however the wait ends (answer, release or dropped
/// connection).
struct CountGuard<'a>(&'a AtomicUsize);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The service's error: hyper then closes the connection without an answer.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

/// One request: count, hold, latency, faults, then answer under the lock.
pub(crate) async fn serve(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let mut asked = Asked::of(&req);
    let hooks = &shared.hooks;
    if hooks.faults.normalizes_paths() {
        asked.path = faults::remove_dot_segments(&asked.path);
    }
    let endpoint = Endpoint::parse(&asked.path);
    let body = read_body(req, &endpoint).await;
    let route = Route::of(&endpoint);
    let _in_flight = hooks.arrive(route, asked.user_agent.take()).await;
    shared.wait_latency().await;
    let path_and_query = match &asked.query {
        Some(q) => format!("{}?{q}", asked.path),
        None => asked.path.clone(),
    };
    let (malformed, endless, corruptions, counted) = match hooks
        .faults
        .verdict(route, &path_and_query, asked.token.as_deref())
        .await
    {
        Verdict::Answer {
            malformed,
            endless,
            corrupt,
            counted,
        } => (
            malformed,
            endless.then(|| faults::Endless::ask(asked.query.as_deref())),
            corrupt,
            counted,
        ),
        Verdict::Drop => return Err(Dropped),
        Verdict::Reply(reply) => return Ok(into_response(reply, shared.now())),
    };
    let now = shared.now();
    if endpoint == Endpoint::Graphql {
        let knobs = hooks.faults.graphql();
        let mut reply = if knobs.disabled {
            if !counted {
                hooks.faults.count();
            }
            faults::graphql_disabled()
        } else {
            let (reply, outcome) = shared.answer_graphql(&asked, &body, now, knobs.knobs).await;
            hooks.record_graphql(outcome);
            reply
        };
        if let Some(bad) = malformed.and_then(|kind| faults::malform(&reply, &kind)) {
            if !counted {
                hooks.faults.count();
            }
            reply = bad;
        }
        return Ok(into_response(reply, now));
    }
    let query = match &endless {
        Some((query, _)) => query.as_deref(),
        None => asked.query.as_deref(),
    };
    let mut reply = shared.answer(&asked, query, &endpoint, now);
    shared.wait_rest_counts(&endpoint, &reply).await;
    if let Some((_, endless)) = &endless {
        reply = endless.rewrite(reply, &shared.url, asked.query.as_deref(), &hooks.faults);
    }
    reply = faults::corrupt(reply, &asked.path, &corruptions);
    if let Some(bad) = malformed.and_then(|kind| faults::malform(&reply, &kind)) {
        if !counted {
            hooks.faults.count();
        }
        reply = bad;
    }
    Ok(into_response(reply, now))
}

/// The hooks of a running fake.
impl FakeGitlab {
    fn hooks(&self) -> &Hooks {
        &self.shared.hooks
    }

    /// Requests received on a route template (e.g. `/projects/:id/merge_requests`, or `unknown`)
    /// since start or the last [`reset_counts`](Self::reset_counts), whatever their answer.
    /// A request counts as soon as it arrives, before `hold` and latency.
    pub fn requests(&self, route: &str) -> u64 {
        Route::ALL
            .iter()
            .find(|r| r.template() == route)
            .map_or(0, |r| self.hooks().counts[r.index()].load(Ordering::SeqCst))
    }

    /// Every route template with at least one request.
    pub fn requests_by_route(&self) -> BTreeMap<String, u64> {
        Route::ALL
            .iter()
            .map(|r| (r.template().to_string(), self.requests(r.template())))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Requests on all routes.
    pub fn total_requests(&self) -> u64 {
        self.hooks()
            .counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum()
    }

    /// The complexity score of every GraphQL request scored (parsed and validated, whether its
    /// score was within the limit or not), in order, since start or the last
    /// [`reset_counts`](Self::reset_counts).
    pub fn graphql_scores(&self) -> Vec<u32> {
        self.hooks().graphql_log().scores.clone()
    }

    /// The query text of every GraphQL request that got past authentication and the body, in
    /// order, since start or the last [`reset_counts`](Self::reset_counts).
    pub fn graphql_queries(&self) -> Vec<String> {
        self.hooks().graphql_log().queries.clone()
    }

    /// Sets every request counter, the in-flight maximum,
    /// [`faults_injected`](Self::faults_injected) and the GraphQL logs to zero.
    pub fn reset_counts(&self) {
        *self.hooks().graphql_log() = GraphqlLog::default();
        for c in &self.hooks().counts {
            c.store(0, Ordering::SeqCst);
        }
        self.hooks().max_in_flight.store(0, Ordering::SeqCst);
        self.hooks().faults.reset_injected();
    }

    /// Replaces the faults (see [`Faults`] and the crate docs); `Faults::default()` stops them.
    /// Restarts the numbering of affected requests, and releases hung requests whose route no
    /// longer hangs.
    ///
    /// # Panics
    /// When `faults.route` is not a route template of [`requests`](Self::requests) (a typo
    /// would silently inject nothing).
    pub fn set_faults(&self, faults: Faults) {
        self.hooks().faults.set(faults);
    }

    /// Requests that got an injected fault of any kind (hang, reset, 5xx, 429, malformed body)
    /// since start or the last [`reset_counts`](Self::reset_counts). A hung request counts as
    /// soon as it starts waiting.
    pub fn faults_injected(&self) -> u64 {
        self.hooks().faults.injected()
    }

    /// The most requests in flight at once (arrived, not yet answered) since start or the last
    /// [`reset_counts`](Self::reset_counts).
    pub fn max_in_flight(&self) -> usize {
        self.hooks().max_in_flight.load(Ordering::SeqCst)
    }

    /// Every distinct `User-Agent` header received.
    pub fn user_agents(&self) -> Vec<String> {
        let agents = self
            .hooks()
            .user_agents
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        agents.iter().cloned().collect()
    }

    /// From now on, requests wait (unanswered) until [`release`](Self::release).
    pub fn hold(&self) {
        self.hooks().held.send_replace(true);
    }

    /// Lets held and future requests through.
    pub fn release(&self) {
        self.hooks().held.send_replace(false);
    }

    /// Requests currently waiting in [`hold`](Self::hold).
    pub fn pending(&self) -> usize {
        self.hooks().pending.load(Ordering::SeqCst)
    }

    /// Reads or mutates the live data (e.g. to change projects between scrapes). Projects are
    /// re-sorted by id afterwards if the closure left them out of order.
    ///
    /// Editing a project's `merge_requests` counts here models a change no signal can see: the
    /// listings follow, but no merge request's `updated_at` moves (a removal leaves no trace; an
    /// addition is dated before [`HISTORY_HORIZON`](super::HISTORY_HORIZON)). Use
    /// [`change_merge_request`](Self::change_merge_request) for visible changes.
    pub fn with_instance<R>(&self, f: impl FnOnce(&mut Instance) -> R) -> R {
        let mut live = self.shared.live();
        let result = f(&mut live.instance);
        live.instance.sort_projects();
        live.instance.reconcile_changes();
        result
    }

    /// The fake's clock (Unix seconds): the host's time plus the offset. It dates every answer
    /// (`Date`) and every change.
    pub fn now(&self) -> i64 {
        self.shared.now()
    }

    /// Sets the fake's clock to the host's time plus `seconds` (e.g. -600: GitLab's clock is
    /// 10 minutes behind the host's). Default 0.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.shared.clock_offset.store(seconds, Ordering::SeqCst);
    }

    /// Changes one merge request of a project, stamped with the fake's clock; see
    /// [`Instance::change_merge_request`]. False (nothing changed) when the change is impossible.
    pub fn change_merge_request(&self, project_id: u64, change: MergeRequestChange) -> bool {
        let now = self.now();
        let mut live = self.shared.live();
        live.instance.change_merge_request(project_id, change, now)
    }

    /// Pushes `commits` commits to a project's default branch, stamped with the fake's clock;
    /// see [`Instance::push`]. Head SHA, commits list, `sequence` and `statistics.commit_count`
    /// follow at once (real GitLab refreshes `statistics` up to ~15 minutes later), and
    /// `last_activity_at` moves to now only if it is at least an hour old. False (nothing
    /// changed) for an unknown or archived project, or 0 commits.
    pub fn push(&self, project_id: u64, commits: u64) -> bool {
        let now = self.now();
        let mut live = self.shared.live();
        live.instance.push(project_id, commits, now)
    }

    /// Starts a pipeline on `reference` (the default branch, or any other ref) of a project,
    /// stamped with the fake's clock; see [`Instance::run_pipeline`]. Its id, or `None`
    /// (nothing changed) for an unknown or archived project, CI/CD disabled or an empty
    /// repository.
    pub fn run_pipeline(
        &self,
        project_id: u64,
        reference: &str,
        status: PipelineStatus,
    ) -> Option<u64> {
        let now = self.now();
        let mut live = self.shared.live();
        live.instance
            .run_pipeline(project_id, reference, status, now)
    }

    /// Finishes a pipeline with `status` after `duration_secs` of running, at the fake's clock
    /// (`finished_at`, `updated_at`, `duration`, `queued_duration`); see
    /// [`Instance::finish_pipeline`].
    pub fn finish_pipeline(
        &self,
        project_id: u64,
        pipeline_id: u64,
        status: PipelineStatus,
        duration_secs: i64,
    ) -> bool {
        let now = self.now();
        let mut live = self.shared.live();
        live.instance
            .finish_pipeline(project_id, pipeline_id, status, duration_secs, now)
    }

    /// Switches a project's CI/CD feature on or off (`builds_access_level`); see
    /// [`Instance::set_builds_enabled`].
    pub fn set_builds_enabled(&self, project_id: u64, enabled: bool) -> bool {
        self.shared
            .live()
            .instance
            .set_builds_enabled(project_id, enabled)
    }

    /// Switches a project's environments feature on or off (`environments_access_level`); see
    /// [`Instance::set_environments_enabled`].
    pub fn set_environments_enabled(&self, project_id: u64, enabled: bool) -> bool {
        self.shared
            .live()
            .instance
            .set_environments_enabled(project_id, enabled)
    }

    /// Creates an environment, stamped with the fake's clock; see
    /// [`Instance::create_environment`].
    pub fn create_environment(&self, project_id: u64, name: &str, tier: Tier) -> Option<u64> {
        let now = self.now();
        let mut live = self.shared.live();
        live.instance
            .create_environment(project_id, name, tier, now)
    }

    /// Deploys to an environment, stamped with the fake's clock, shipping the merged merge
    /// requests among `merge_requests` (iids), by a job of `pipeline` if given; see
    /// [`Instance::deploy`]. The deployment's id.
    pub fn deploy(
        &self,
        project_id: u64,
        environment: &str,
        status: DeploymentStatus,
        merge_requests: &[u64],
        pipeline: Option<u64>,
    ) -> Option<u64> {
        let now = self.now();
        let mut live = self.shared.live();
        live.instance.deploy(
            project_id,
            environment,
            status,
            merge_requests,
            pipeline,
            now,
        )
    }

    /// Moves a deployment to `status` at the fake's clock; see [`Instance::finish_deployment`].
    pub fn finish_deployment(
        &self,
        project_id: u64,
        deployment_id: u64,
        status: DeploymentStatus,
    ) -> bool {
        let now = self.now();
        let mut live = self.shared.live();
        live.instance
            .finish_deployment(project_id, deployment_id, status, now)
    }

    /// The project is still returned by the next project listing (`/projects` or
    /// `/groups/:id/projects`) that includes it, then deleted right after that listing is
    /// answered, so its detail calls get 404.
    pub fn vanish_after_listing(&self, project_id: u64) {
        self.shared.live().vanishing.insert(project_id);
    }
}
