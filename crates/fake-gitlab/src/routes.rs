//! Route templates (`/projects/:id/merge_requests`, ...): the unit in which the test hooks count
//! requests and faults choose the requests they affect (compiled with the `faults` feature).

use super::api::Endpoint;

/// Route templates, the unit of request counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Projects,
    Project,
    Group,
    GroupProjects,
    MergeRequests,
    GroupMergeRequests,
    Branch,
    Commits,
    CommitSequence,
    Pipelines,
    PipelineLatest,
    Pipeline,
    Environments,
    Deployments,
    Deployment,
    DeploymentMergeRequests,
    User,
    Version,
    Graphql,
    Unknown,
}

impl Route {
    /// Every route, in counter-index order.
    pub(crate) const ALL: [Route; 20] = [
        Route::Projects,
        Route::Project,
        Route::Group,
        Route::GroupProjects,
        Route::MergeRequests,
        Route::GroupMergeRequests,
        Route::Branch,
        Route::Commits,
        Route::CommitSequence,
        Route::Pipelines,
        Route::PipelineLatest,
        Route::Pipeline,
        Route::Environments,
        Route::Deployments,
        Route::Deployment,
        Route::DeploymentMergeRequests,
        Route::User,
        Route::Version,
        Route::Graphql,
        Route::Unknown,
    ];

    /// The template string used by `FakeGitlab::requests`.
    pub(crate) fn template(self) -> &'static str {
        match self {
            Route::Projects => "/projects",
            Route::Project => "/projects/:id",
            Route::Group => "/groups/:id",
            Route::GroupProjects => "/groups/:id/projects",
            Route::MergeRequests => "/projects/:id/merge_requests",
            Route::GroupMergeRequests => "/groups/:id/merge_requests",
            Route::Branch => "/projects/:id/repository/branches/:branch",
            Route::Commits => "/projects/:id/repository/commits",
            Route::CommitSequence => "/projects/:id/repository/commits/:sha/sequence",
            Route::Pipelines => "/projects/:id/pipelines",
            Route::PipelineLatest => "/projects/:id/pipelines/latest",
            Route::Pipeline => "/projects/:id/pipelines/:pipeline_id",
            Route::Environments => "/projects/:id/environments",
            Route::Deployments => "/projects/:id/deployments",
            Route::Deployment => "/projects/:id/deployments/:deployment_id",
            Route::DeploymentMergeRequests => {
                "/projects/:id/deployments/:deployment_id/merge_requests"
            }
            Route::User => "/user",
            Route::Version => "/version",
            Route::Graphql => "/api/graphql",
            Route::Unknown => "unknown",
        }
    }

    /// Index into the counter array.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The counting route of an endpoint.
    pub(crate) fn of(endpoint: &Endpoint) -> Route {
        match endpoint {
            Endpoint::Projects => Route::Projects,
            Endpoint::Project(_) => Route::Project,
            Endpoint::Group(_) => Route::Group,
            Endpoint::GroupProjects(_) => Route::GroupProjects,
            Endpoint::MergeRequests(_) => Route::MergeRequests,
            Endpoint::GroupMergeRequests(_) => Route::GroupMergeRequests,
            Endpoint::Branch(..) => Route::Branch,
            Endpoint::Commits(_) => Route::Commits,
            Endpoint::CommitSequence(..) => Route::CommitSequence,
            Endpoint::Pipelines(_) => Route::Pipelines,
            Endpoint::PipelineLatest(_) => Route::PipelineLatest,
            Endpoint::Pipeline(..) => Route::Pipeline,
            Endpoint::Environments(_) => Route::Environments,
            Endpoint::Deployments(_) => Route::Deployments,
            Endpoint::Deployment(..) => Route::Deployment,
            Endpoint::DeploymentMergeRequests(..) => Route::DeploymentMergeRequests,
            Endpoint::User => Route::User,
            Endpoint::Version => Route::Version,
            Endpoint::Graphql => Route::Graphql,
            Endpoint::Unknown => Route::Unknown,
        }
    }
}
