//! The GraphQL side of CI/CD (a child module of `graphql`): `Project.pipelines`,
//! `Project.environments` and `Project.environment`, the `Pipeline`, `Environment` and
//! `Deployment` types and their enums, keyset (pipelines) and offset (environments,
//! deployments) cursors, and GitLab's `FieldCallCount` limits on `environments` and
//! `deployments`.

use std::sync::atomic::Ordering;

use async_graphql::{Context, Enum, Error, ID, InputObject, Object, Scalar, ScalarType};

use super::super::ci::{
    Ci, Deployment, DeploymentStatus, Environment, Pipeline, PipelineStatus, Tier,
};
use super::super::ci_api::{DeploymentQuery, PipelineFilter};
use super::super::instance::FakeProject;
use super::{
    Env, GqlValue, InputValueError, InputValueResult, PageInfo, Time, b64_decode, b64_encode,
    cursor, page_limit, parse_cursor, time, time_bound,
};

/// `Gitlab::Graphql::Limit::FieldCallCount`: the field resolves at most `limit` times per
/// query; past that, GitLab's `LimitError` message.
pub(super) fn count_call(
    env: &Env,
    field: &'static str,
    owner: &str,
    limit: usize,
) -> async_graphql::Result<()> {
    let mut calls = env.calls.lock().unwrap_or_else(|e| e.into_inner());
    let n = calls.entry(field).or_insert(0);
    *n += 1;
    if *n > limit {
        return Err(Error::new(format!(
            "\"{field}\" field can be requested only for {limit} {owner}(s) at a time."
        )));
    }
    Ok(())
}

/// GitLab's `Duration` scalar: a fractional number of seconds.
pub(super) struct Duration(f64);

#[Scalar(name = "Duration")]
impl ScalarType for Duration {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        match &value {
            GqlValue::Number(n) => n
                .as_f64()
                .map(Duration)
                .ok_or_else(|| InputValueError::expected_type(value.clone())),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> GqlValue {
        serde_json::Number::from_f64(self.0).map_or(GqlValue::Null, GqlValue::Number)
    }
}

/// `PipelineStatusEnum`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "PipelineStatusEnum", rename_items = "SCREAMING_SNAKE_CASE")]
pub(super) enum PipelineStatusEnum {
    Created,
    WaitingForResource,
    Preparing,
    Pending,
    Running,
    Failed,
    Success,
    Canceled,
    Skipped,
    Manual,
    Scheduled,
}

impl PipelineStatusEnum {
    fn of(s: PipelineStatus) -> PipelineStatusEnum {
        use PipelineStatus as P;
        use PipelineStatusEnum as E;
        match s {
            P::Created => E::Created,
            P::WaitingForResource => E::WaitingForResource,
            P::Preparing => E::Preparing,
            P::Pending => E::Pending,
            P::Running => E::Running,
            P::Success => E::Success,
            P::Failed => E::Failed,
            P::Canceled => E::Canceled,
            P::Skipped => E::Skipped,
            P::Manual => E::Manual,
            P::Scheduled => E::Scheduled,
        }
    }

    fn status(self) -> PipelineStatus {
        PipelineStatus::ALL
            .into_iter()
            .find(|s| PipelineStatusEnum::of(*s) == self)
            .unwrap_or(PipelineStatus::Created)
    }
}

/// `PipelineScopeEnum`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "PipelineScopeEnum", rename_items = "SCREAMING_SNAKE_CASE")]
pub(super) enum PipelineScopeEnum {
    Running,
    Pending,
    Finished,
    Branches,
    Tags,
}

impl PipelineScopeEnum {
    fn scope(self) -> &'static str {
        match self {
            PipelineScopeEnum::Running => "running",
            PipelineScopeEnum::Pending => "pending",
            PipelineScopeEnum::Finished => "finished",
            PipelineScopeEnum::Branches => "branches",
            PipelineScopeEnum::Tags => "tags",
        }
    }
}

/// `DeploymentStatus`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "DeploymentStatus", rename_items = "SCREAMING_SNAKE_CASE")]
pub(super) enum DeploymentStatusEnum {
    Created,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
    Blocked,
}

impl DeploymentStatusEnum {
    fn of(s: DeploymentStatus) -> DeploymentStatusEnum {
        use DeploymentStatus as D;
        use DeploymentStatusEnum as E;
        match s {
            D::Created => E::Created,
            D::Running => E::Running,
            D::Success => E::Success,
            D::Failed => E::Failed,
            D::Canceled => E::Canceled,
            D::Skipped => E::Skipped,
            D::Blocked => E::Blocked,
        }
    }

    fn status(self) -> DeploymentStatus {
        DeploymentStatus::ALL
            .into_iter()
            .find(|s| DeploymentStatusEnum::of(*s) == self)
            .unwrap_or(DeploymentStatus::Created)
    }
}

/// `DeploymentTier`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "DeploymentTier", rename_items = "SCREAMING_SNAKE_CASE")]
pub(super) enum DeploymentTierEnum {
    Production,
    Staging,
    Testing,
    Development,
    Other,
}

/// `SortDirectionEnum`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "SortDirectionEnum", rename_items = "SCREAMING_SNAKE_CASE")]
pub(super) enum SortDirectionEnum {
    Asc,
    Desc,
}

/// `DeploymentsOrderByInput`: exactly one key.
#[derive(InputObject, Debug, Clone, Copy)]
#[graphql(name = "DeploymentsOrderByInput")]
pub(super) struct DeploymentsOrderByInput {
    /// Order by Created time.
    created_at: Option<SortDirectionEnum>,
    /// Order by Finished time.
    finished_at: Option<SortDirectionEnum>,
}

// ---------------------------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------------------------

/// The arguments of `Project.pipelines`.
pub(super) struct PipelineArgs {
    pub(super) status: Option<PipelineStatusEnum>,
    pub(super) scope: Option<PipelineScopeEnum>,
    pub(super) reference: Option<String>,
    pub(super) sha: Option<String>,
    pub(super) source: Option<String>,
    pub(super) updated_after: Option<Time>,
    pub(super) updated_before: Option<Time>,
    pub(super) first: Option<i32>,
    pub(super) after: Option<String>,
    pub(super) last: Option<i32>,
    pub(super) before: Option<String>,
}

/// `Project.pipelines` (`Resolvers::Ci::ProjectPipelinesResolver`, `Ci::PipelinesFinder`):
/// newest first, keyset cursors on the id.
pub(super) fn pipelines(
    env: &Env,
    project: u64,
    a: PipelineArgs,
) -> async_graphql::Result<PipelineConnection> {
    if a.first.is_some() && a.last.is_some() {
        return Err(Error::new(
            "Can only provide either `first` or `last`, not both",
        ));
    }
    let after = a.after.as_deref().map(parse_cursor).transpose()?;
    let before = a.before.as_deref().map(parse_cursor).transpose()?;
    let bound = |t: &Option<Time>, lower: bool| {
        t.as_ref()
            .map(|t| time_bound(env.stamps, t, lower))
            .transpose()
    };
    let filter = PipelineFilter {
        scope: a.scope.map(PipelineScopeEnum::scope),
        status: a.status.map(PipelineStatusEnum::status),
        reference: a.reference,
        sha: a.sha,
        source: a.source,
        username: None,
        updated_after: bound(&a.updated_after, true)?,
        updated_before: bound(&a.updated_before, false)?,
        created_after: None,
        created_before: None,
    };
    let limit = page_limit(a.first, a.last);
    env.project(project, |inst, p| {
        let ci = p.ci();
        // `read_pipeline` stays with CI/CD disabled (external CI); the finder checks only that.
        let all: Vec<Pipeline> = if env.caller.can_read_pipelines(p) {
            filter.apply(inst, p, &ci).into_iter().cloned().collect()
        } else {
            Vec::new()
        };
        let count = all.len();
        let window: Vec<Pipeline> = all
            .into_iter()
            .filter(|pl| after.is_none_or(|c| pl.id < c) && before.is_none_or(|c| pl.id > c))
            .collect();
        let n = window.len();
        let (start, end) = if a.last.is_some() {
            (n.saturating_sub(limit), n)
        } else {
            (0, n.min(limit))
        };
        PipelineConnection {
            project: p.path_with_namespace(inst),
            has_next: end < n || before.is_some(),
            has_previous: start > 0 || after.is_some(),
            items: window[start..end].to_vec(),
            count,
        }
    })
}

pub(super) struct PipelineConnection {
    project: String,
    items: Vec<Pipeline>,
    has_next: bool,
    has_previous: bool,
    count: usize,
}

#[Object(name = "PipelineConnection")]
impl PipelineConnection {
    /// Total count of collection.
    async fn count(&self) -> i32 {
        i32::try_from(self.count).unwrap_or(i32::MAX)
    }

    /// A list of nodes.
    async fn nodes(&self) -> Vec<Option<PipelineNode>> {
        self.items
            .iter()
            .map(|pl| Some(PipelineNode(pl.clone(), self.project.clone())))
            .collect()
    }

    /// A list of edges.
    async fn edges(&self) -> Vec<Option<PipelineEdge>> {
        self.items
            .iter()
            .map(|pl| Some(PipelineEdge(PipelineNode(pl.clone(), self.project.clone()))))
            .collect()
    }

    /// Information to aid in pagination.
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next,
            has_previous_page: self.has_previous,
            start_cursor: self.items.first().map(|p| cursor(p.id)),
            end_cursor: self.items.last().map(|p| cursor(p.id)),
        }
    }
}

pub(super) struct PipelineEdge(PipelineNode);

#[Object(name = "PipelineEdge")]
impl PipelineEdge {
    /// A cursor for use in pagination.
    async fn cursor(&self) -> String {
        cursor(self.0.0.id)
    }

    /// The item at the end of the edge.
    async fn node(&self) -> &PipelineNode {
        &self.0
    }
}

/// A pipeline and its project's full path.
pub(super) struct PipelineNode(Pipeline, String);

#[Object(name = "Pipeline")]
impl PipelineNode {
    /// ID of the pipeline.
    async fn id(&self) -> ID {
        ID(format!("gid://gitlab/Ci::Pipeline/{}", self.0.id))
    }

    /// Internal ID of the pipeline.
    async fn iid(&self) -> String {
        self.0.iid.to_string()
    }

    /// SHA of the pipeline's commit.
    async fn sha(&self) -> Option<&str> {
        Some(&self.0.sha)
    }

    /// Reference to the branch from which the pipeline was triggered.
    #[graphql(name = "ref")]
    async fn reference(&self) -> Option<&str> {
        Some(&self.0.reference)
    }

    /// Status of the pipeline.
    async fn status(&self) -> PipelineStatusEnum {
        PipelineStatusEnum::of(self.0.status)
    }

    /// Source of the pipeline.
    async fn source(&self) -> Option<&str> {
        Some(self.0.source)
    }

    /// Duration of the pipeline in seconds.
    async fn duration(&self) -> Option<i32> {
        self.0.duration.and_then(|d| i32::try_from(d).ok())
    }

    /// How long the pipeline was queued before starting.
    async fn queued_duration(&self) -> Option<Duration> {
        self.0.queued_duration().map(|d| Duration(d as f64))
    }

    /// Timestamp of the pipeline's creation.
    async fn created_at(&self, ctx: &Context<'_>) -> Time {
        time(Env::of(ctx).stamps, self.0.created_at)
    }

    /// Timestamp of the pipeline's last activity.
    async fn updated_at(&self, ctx: &Context<'_>) -> Time {
        time(Env::of(ctx).stamps, self.0.updated_at)
    }

    /// Timestamp when the pipeline was started.
    async fn started_at(&self, ctx: &Context<'_>) -> Option<Time> {
        let stamps = Env::of(ctx).stamps;
        self.0.started_at.map(|t| time(stamps, t))
    }

    /// Timestamp of the pipeline's completion.
    async fn finished_at(&self, ctx: &Context<'_>) -> Option<Time> {
        let stamps = Env::of(ctx).stamps;
        self.0.finished_at.map(|t| time(stamps, t))
    }

    /// Relative path to the pipeline's page.
    async fn path(&self) -> Option<String> {
        Some(format!("/{}/-/pipelines/{}", self.1, self.0.id))
    }
}

// ---------------------------------------------------------------------------------------------
// Environments and deployments
// ---------------------------------------------------------------------------------------------

/// graphql-ruby's offset cursor: base64 of the index.
fn offset_cursor(index: usize) -> String {
    b64_encode(index.to_string().as_bytes())
}

fn parse_offset_cursor(text: &str) -> Result<usize, Error> {
    let invalid = || Error::new("Please provide a valid cursor");
    let bytes = b64_decode(text).ok_or_else(invalid)?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(invalid)
}

/// An offset page out of `n` items: the index range and `(has_next, has_previous)`.
fn offset_page(
    n: usize,
    first: Option<i32>,
    after: Option<&str>,
    last: Option<i32>,
    before: Option<&str>,
) -> async_graphql::Result<(std::ops::Range<usize>, bool, bool)> {
    if first.is_some() && last.is_some() {
        return Err(Error::new(
            "Can only provide either `first` or `last`, not both",
        ));
    }
    let lo = after
        .map(parse_offset_cursor)
        .transpose()?
        .map_or(0, |i| i + 1)
        .min(n);
    let hi = before
        .map(parse_offset_cursor)
        .transpose()?
        .map_or(n, |i| i.min(n))
        .max(lo);
    let limit = page_limit(first, last);
    let range = if last.is_some() {
        hi.saturating_sub(limit).max(lo)..hi
    } else {
        lo..(lo + limit).min(hi)
    };
    let (has_next, has_previous) = (range.end < hi || hi < n, range.start > lo || lo > 0);
    Ok((range, has_next, has_previous))
}

/// The arguments of `Project.environments`.
pub(super) struct EnvironmentArgs {
    pub(super) name: Option<String>,
    pub(super) search: Option<String>,
    pub(super) states: Option<Vec<String>>,
    pub(super) kind: Option<String>,
}

/// The project's environments the caller may read (`read_environment`; none otherwise, as
/// GitLab's type authorization drops them), by id.
fn readable_environments(
    env: &Env,
    p: &FakeProject,
    a: &EnvironmentArgs,
) -> async_graphql::Result<Vec<Environment>> {
    if let Some(states) = &a.states {
        if states
            .iter()
            .any(|s| !matches!(s.as_str(), "available" | "stopping" | "stopped"))
        {
            return Err(Error::new("Requested states are invalid"));
        }
    }
    if !env.caller.can_read_environments(p) {
        return Ok(Vec::new());
    }
    let search = a.search.as_deref().map(str::to_lowercase);
    Ok(p.ci()
        .environments
        .iter()
        .filter(|e| {
            a.name.as_deref().is_none_or(|n| e.name == n)
                && search
                    .as_deref()
                    .is_none_or(|s| e.name.to_lowercase().contains(s))
                && a.states
                    .as_ref()
                    .is_none_or(|st| st.iter().any(|s| s == e.state))
                && a.kind.as_deref().is_none_or(|t| {
                    e.name
                        .split_once('/')
                        .is_some_and(|(folder, _)| folder == t)
                })
        })
        .cloned()
        .collect())
}

/// `Project.environments`: one project per query (`FieldCallCount`, limit 1).
pub(super) fn environments(
    env: &Env,
    project: u64,
    a: EnvironmentArgs,
    page: (Option<i32>, Option<String>, Option<i32>, Option<String>),
) -> async_graphql::Result<EnvironmentConnection> {
    count_call(env, "environments", "Project", 1)?;
    let (first, after, last, before) = page;
    env.project(project, |_, p| {
        let all = readable_environments(env, p, &a)?;
        let (range, has_next, has_previous) =
            offset_page(all.len(), first, after.as_deref(), last, before.as_deref())?;
        Ok(EnvironmentConnection {
            project,
            start: range.start,
            items: all[range].to_vec(),
            has_next,
            has_previous,
        })
    })?
}

/// `Project.environment(name:)` (`EnvironmentsResolver.single`).
pub(super) fn environment(
    env: &Env,
    project: u64,
    a: EnvironmentArgs,
) -> async_graphql::Result<Option<EnvironmentNode>> {
    env.project(project, |_, p| {
        let all = readable_environments(env, p, &a)?;
        Ok(all
            .into_iter()
            .next()
            .map(|e| EnvironmentNode { project, env: e }))
    })?
}

pub(super) struct EnvironmentConnection {
    project: u64,
    start: usize,
    items: Vec<Environment>,
    has_next: bool,
    has_previous: bool,
}

#[Object(name = "EnvironmentConnection")]
impl EnvironmentConnection {
    /// A list of nodes.
    async fn nodes(&self) -> Vec<Option<EnvironmentNode>> {
        self.items
            .iter()
            .map(|e| {
                Some(EnvironmentNode {
                    project: self.project,
                    env: e.clone(),
                })
            })
            .collect()
    }

    /// A list of edges.
    async fn edges(&self) -> Vec<Option<EnvironmentEdge>> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Some(EnvironmentEdge {
                    cursor: offset_cursor(self.start + i),
                    node: EnvironmentNode {
                        project: self.project,
                        env: e.clone(),
                    },
                })
            })
            .collect()
    }

    /// Information to aid in pagination.
    async fn page_info(&self) -> PageInfo {
        let n = self.items.len();
        PageInfo {
            has_next_page: self.has_next,
            has_previous_page: self.has_previous,
            start_cursor: (n > 0).then(|| offset_cursor(self.start)),
            end_cursor: (n > 0).then(|| offset_cursor(self.start + n - 1)),
        }
    }
}

pub(super) struct EnvironmentEdge {
    cursor: String,
    node: EnvironmentNode,
}

#[Object(name = "EnvironmentEdge")]
impl EnvironmentEdge {
    /// A cursor for use in pagination.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The item at the end of the edge.
    async fn node(&self) -> &EnvironmentNode {
        &self.node
    }
}

pub(super) struct EnvironmentNode {
    project: u64,
    env: Environment,
}

impl EnvironmentNode {
    fn ci<T>(&self, env: &Env, f: impl FnOnce(&FakeProject, &Ci) -> T) -> async_graphql::Result<T> {
        env.project(self.project, |_, p| f(p, &p.ci()))
    }
}

#[Object(name = "Environment")]
impl EnvironmentNode {
    /// ID of the environment.
    async fn id(&self) -> ID {
        ID(format!("gid://gitlab/Environment/{}", self.env.id))
    }

    /// Human-readable name of the environment.
    async fn name(&self) -> &str {
        &self.env.name
    }

    /// Slug of the environment.
    async fn slug(&self) -> Option<String> {
        Some(self.env.slug())
    }

    /// State of the environment, for example: available/stopped.
    async fn state(&self) -> &str {
        self.env.state
    }

    /// Deployment tier of the environment.
    async fn tier(&self) -> Option<DeploymentTierEnum> {
        Some(match self.env.tier {
            Tier::Production => DeploymentTierEnum::Production,
            Tier::Staging => DeploymentTierEnum::Staging,
            Tier::Testing => DeploymentTierEnum::Testing,
            Tier::Development => DeploymentTierEnum::Development,
            Tier::Other => DeploymentTierEnum::Other,
        })
    }

    /// External URL of the environment.
    async fn external_url(&self) -> Option<String> {
        None
    }

    /// When the environment was created.
    async fn created_at(&self, ctx: &Context<'_>) -> Option<Time> {
        Some(time(Env::of(ctx).stamps, self.env.created_at))
    }

    /// When the environment was updated.
    async fn updated_at(&self, ctx: &Context<'_>) -> Option<Time> {
        Some(time(Env::of(ctx).stamps, self.env.updated_at))
    }

    /// Last deployment of the environment (`status` a finished or upcoming one).
    #[graphql(complexity = "super::resolver_cost(child_complexity, 1, None, 0.0)")]
    async fn last_deployment(
        &self,
        ctx: &Context<'_>,
        status: DeploymentStatusEnum,
    ) -> async_graphql::Result<Option<DeploymentNode>> {
        let status = status.status();
        if !status.is_finished() && !status.is_upcoming() {
            return Err(Error::new(format!(
                "\"{}\" status is not supported.",
                status.as_str()
            )));
        }
        let env = Env::of(ctx);
        let id = self.env.id;
        self.ci(env, |p, ci| {
            if !env.caller.can_read_environments(p) {
                return None;
            }
            // `last_<status>_deployment`: the newest by id (finished ones by finish time).
            let mut found: Vec<&Deployment> = ci
                .deployments
                .iter()
                .filter(|d| d.environment == id && d.status == status)
                .collect();
            if status.is_finished() {
                found.sort_by_key(|d| (d.finished_at, d.id));
            }
            found.last().map(|d| DeploymentNode((*d).clone()))
        })
    }

    /// Deployments of the environment (one environment per query: `FieldCallCount`, limit 1).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::resolver_cost(child_complexity, 1, Some((first, last)), 0.01)")]
    async fn deployments(
        &self,
        ctx: &Context<'_>,
        statuses: Option<Vec<DeploymentStatusEnum>>,
        order_by: Option<DeploymentsOrderByInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Option<DeploymentConnection>> {
        let env = Env::of(ctx);
        count_call(env, "deployments", "Environment", 1)?;
        let (order_by, desc) = match order_by {
            None => (None, false),
            Some(DeploymentsOrderByInput {
                created_at: Some(d),
                finished_at: None,
            }) => (Some("created_at"), d == SortDirectionEnum::Desc),
            Some(DeploymentsOrderByInput {
                created_at: None,
                finished_at: Some(d),
            }) => (Some("finished_at"), d == SortDirectionEnum::Desc),
            Some(_) => {
                return Err(Error::new(
                    "orderBy parameter must contain one key-value pair.",
                ));
            }
        };
        let dq = DeploymentQuery {
            order_by,
            desc,
            environment: Some(self.env.id),
            statuses: statuses
                .unwrap_or_default()
                .into_iter()
                .map(DeploymentStatusEnum::status)
                .collect(),
            ..DeploymentQuery::default()
        };
        if dq.validate().is_err() {
            // `DeploymentsFinder::InefficientQueryError` is not rescued: GitLab answers 500.
            env.internal_error.store(true, Ordering::SeqCst);
            return Err(Error::new("Internal server error"));
        }
        let items = self.ci(env, |p, ci| {
            if env.caller.can_read_environments(p) {
                dq.apply(ci).into_iter().cloned().collect()
            } else {
                Vec::new()
            }
        })?;
        let (range, has_next, has_previous) = offset_page(
            items.len(),
            first,
            after.as_deref(),
            last,
            before.as_deref(),
        )?;
        Ok(Some(DeploymentConnection {
            start: range.start,
            items: items[range].to_vec(),
            has_next,
            has_previous,
        }))
    }
}

pub(super) struct DeploymentConnection {
    start: usize,
    items: Vec<Deployment>,
    has_next: bool,
    has_previous: bool,
}

#[Object(name = "DeploymentConnection")]
impl DeploymentConnection {
    /// A list of nodes.
    async fn nodes(&self) -> Vec<Option<DeploymentNode>> {
        self.items
            .iter()
            .map(|d| Some(DeploymentNode(d.clone())))
            .collect()
    }

    /// A list of edges.
    async fn edges(&self) -> Vec<Option<DeploymentEdge>> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Some(DeploymentEdge {
                    cursor: offset_cursor(self.start + i),
                    node: DeploymentNode(d.clone()),
                })
            })
            .collect()
    }

    /// Information to aid in pagination.
    async fn page_info(&self) -> PageInfo {
        let n = self.items.len();
        PageInfo {
            has_next_page: self.has_next,
            has_previous_page: self.has_previous,
            start_cursor: (n > 0).then(|| offset_cursor(self.start)),
            end_cursor: (n > 0).then(|| offset_cursor(self.start + n - 1)),
        }
    }
}

pub(super) struct DeploymentEdge {
    cursor: String,
    node: DeploymentNode,
}

#[Object(name = "DeploymentEdge")]
impl DeploymentEdge {
    /// A cursor for use in pagination.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The item at the end of the edge.
    async fn node(&self) -> &DeploymentNode {
        &self.node
    }
}

pub(super) struct DeploymentNode(Deployment);

#[Object(name = "Deployment")]
impl DeploymentNode {
    /// Global ID of the deployment.
    async fn id(&self) -> Option<ID> {
        Some(ID(format!("gid://gitlab/Deployment/{}", self.0.id)))
    }

    /// Project-level internal ID of the deployment.
    async fn iid(&self) -> Option<ID> {
        Some(ID(self.0.iid.to_string()))
    }

    /// Git-Ref that the deployment ran on.
    #[graphql(name = "ref")]
    async fn reference(&self) -> Option<&str> {
        Some(&self.0.reference)
    }

    /// True or false if the deployment ran on a Git-tag.
    async fn tag(&self) -> Option<bool> {
        Some(false)
    }

    /// Git-SHA that the deployment ran on.
    async fn sha(&self) -> Option<&str> {
        Some(&self.0.sha)
    }

    /// Status of the deployment.
    async fn status(&self) -> Option<DeploymentStatusEnum> {
        Some(DeploymentStatusEnum::of(self.0.status))
    }

    /// When the deployment record was created.
    async fn created_at(&self, ctx: &Context<'_>) -> Option<Time> {
        Some(time(Env::of(ctx).stamps, self.0.created_at))
    }

    /// When the deployment record was updated.
    async fn updated_at(&self, ctx: &Context<'_>) -> Option<Time> {
        Some(time(Env::of(ctx).stamps, self.0.updated_at))
    }

    /// When the deployment finished.
    async fn finished_at(&self, ctx: &Context<'_>) -> Option<Time> {
        let stamps = Env::of(ctx).stamps;
        self.0.finished_at.map(|t| time(stamps, t))
    }
}
