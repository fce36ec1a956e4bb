//! The GitLab REST API v4 and GraphQL API as the exporter uses them: one [`Client`] through
//! which every call passes, the pagination headers, the JSON types, GraphQL answers
//! ([`graphql`]) and the errors.
//!
//! The client does not decide which calls to make; the collectors in [`crate::collect`] do.
//! It does make sure every call carries the token in one header, goes through one connection
//! pool and one concurrency limit, is counted by route template, times out, and is retried
//! when GitLab is briefly unavailable or rate-limits.

mod client;
#[cfg(test)]
mod client_tests;
mod error;
#[cfg(test)]
mod fuzz;
pub mod graphql;
pub mod pacing;
pub mod pagination;
pub mod tls;
pub mod types;

pub use client::{ApiCounters, Client, ClientOptions, encode_segment};
pub use error::Error;

/// Route templates: the `endpoint` label of the exporter's API metrics. Never an id.
pub mod endpoint {
    /// `GET /projects`: the projects list.
    pub const PROJECTS: &str = "/projects";
    /// `GET /projects/:id`: one project.
    pub const PROJECT: &str = "/projects/:id";
    /// `GET /groups/:id`: one group (its full path, for a group named by id).
    pub const GROUP: &str = "/groups/:id";
    /// `GET /groups/:id/projects`: a group's projects.
    pub const GROUP_PROJECTS: &str = "/groups/:id/projects";
    /// `GET /projects/:id/merge_requests`: a project's merge requests.
    pub const MERGE_REQUESTS: &str = "/projects/:id/merge_requests";
    /// `GET /groups/:id/merge_requests`: merge requests of a group and its subgroups.
    pub const GROUP_MERGE_REQUESTS: &str = "/groups/:id/merge_requests";
    /// `GET /projects/:id/repository/branches/:branch`: one branch and its head commit.
    pub const BRANCH: &str = "/projects/:id/repository/branches/:branch";
    /// `GET /projects/:id/repository/commits/:sha/sequence`: the number of commits up to a commit.
    pub const COMMIT_SEQUENCE: &str = "/projects/:id/repository/commits/:sha/sequence";
    /// `GET /projects/:id/pipelines`: a project's pipelines (no durations).
    pub const PIPELINES: &str = "/projects/:id/pipelines";
    /// `GET /projects/:id/pipelines/:pipeline_id`: one pipeline, with its durations.
    pub const PIPELINE: &str = "/projects/:id/pipelines/:pipeline_id";
    /// `GET /projects/:id/environments`: a project's environments and their tiers.
    pub const ENVIRONMENTS: &str = "/projects/:id/environments";
    /// `GET /projects/:id/deployments`: a project's deployments.
    pub const DEPLOYMENTS: &str = "/projects/:id/deployments";
    /// `GET /projects/:id/deployments/:deployment_id/merge_requests`: what a deployment shipped.
    pub const DEPLOYMENT_MERGE_REQUESTS: &str =
        "/projects/:id/deployments/:deployment_id/merge_requests";
    /// `POST /api/graphql`: GitLab's GraphQL API.
    pub const GRAPHQL: &str = "/api/graphql";
}

/// True when the URL's host is `localhost` or a loopback address.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod loopback_tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:80/gitlab",
            "https://127.1.2.3",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://127.0.0.1.evil.com",
            "https://gitlab.com",
            "http://[::2]:80",
            "http://10.0.0.1",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
