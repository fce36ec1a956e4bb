//! The GitLab REST API v4 as the exporter uses it: one [`Client`] through which every call
//! passes, the pagination headers, the JSON types and the errors.
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
}
