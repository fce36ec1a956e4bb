//! Errors of GitLab API calls, as collectors branch on them and as operators read them in logs.
//!
//! No variant carries a request header or a full URL with its query, so the token can never
//! appear in an error message.

use std::time::Duration;

/// A GitLab API call that did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the token is missing, wrong, expired or revoked.
    #[error(
        "GitLab rejected the token with 401 Unauthorized on {endpoint} \
         (check GITLAB_TOKEN or --gitlab.token-file)"
    )]
    Unauthorized {
        /// Route template of the call.
        endpoint: &'static str,
    },
    /// Any other non-2xx answer.
    #[error("GitLab answered {status} on {endpoint}: {message}")]
    Status {
        /// Route template of the call.
        endpoint: &'static str,
        /// HTTP status code.
        status: u16,
        /// GitLab's `message` or `error`, shortened.
        message: String,
    },
    /// A 3xx answer: not followed, since the token would go along.
    #[error(
        "GitLab redirected {endpoint} with {status} to {location}; redirects are not followed \
         (the token would go along): set --gitlab.url to the address GitLab redirects to"
    )]
    Redirect {
        /// Route template of the call.
        endpoint: &'static str,
        /// HTTP status code.
        status: u16,
        /// Where GitLab pointed, without its query.
        location: String,
    },
    /// No complete answer within `--gitlab.request-timeout`.
    #[error("GitLab did not answer {endpoint} within {after:?}")]
    Timeout {
        /// Route template of the call.
        endpoint: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection failed (DNS, TCP, TLS, reset).
    #[error("cannot reach GitLab for {endpoint}: {detail}")]
    Transport {
        /// Route template of the call.
        endpoint: &'static str,
        /// What failed.
        detail: String,
    },
    /// A body over the size the client reads.
    #[error("GitLab's answer on {endpoint} is larger than {limit} bytes; not read")]
    TooLarge {
        /// Route template of the call.
        endpoint: &'static str,
        /// The cap.
        limit: u64,
    },
    /// A limit of one collection was passed (listings announcing pages without end, a
    /// collection running too long): the collection is abandoned.
    #[error("{detail}")]
    Limit {
        /// Route template of the listing that passed it (`""` for the collection's wall time).
        endpoint: &'static str,
        /// Which limit: `max_projects` (`--collect.max-projects`) or `timeout`
        /// (`--collect.timeout`).
        limit: &'static str,
        /// What happened, naming the flag that sets the limit.
        detail: String,
    },
    /// A GraphQL answer with errors and no data: GitLab refused the query (invalid, too
    /// complex, too deep, timed out).
    #[error("GitLab refused the GraphQL query {operation}: {message}")]
    Refused {
        /// Route template of the call (`/api/graphql`).
        endpoint: &'static str,
        /// Which query.
        operation: &'static str,
        /// GitLab's first error message, shortened.
        message: String,
    },
    /// A 2xx answer whose body was not what the API promises.
    #[error("unexpected answer from GitLab on {endpoint}: {detail}")]
    Decode {
        /// Route template of the call.
        endpoint: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// The HTTP status of the answer, if GitLab answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Status { status, .. } | Error::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for GitLab's `404 Project Not Found`: the project is gone or no longer visible.
    pub fn is_project_not_found(&self) -> bool {
        matches!(self, Error::Status { status: 404, message, .. } if message.contains("Project Not Found"))
    }

    /// The `reason` label of `gitlab_exporter_api_errors_total`: `timeout`, `transport`,
    /// `decode`, `too_large`, `unauthorized`, `redirect`, `throttled` (429), `server_error`
    /// (5xx) or `refused` (a GraphQL query answered with errors only); `None` for the answers collectors expect and branch on (403, 404, other 4xx).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Error::Timeout { .. } => Some("timeout"),
            Error::Transport { .. } => Some("transport"),
            Error::Decode { .. } => Some("decode"),
            Error::TooLarge { .. } => Some("too_large"),
            Error::Unauthorized { .. } => Some("unauthorized"),
            Error::Redirect { .. } => Some("redirect"),
            Error::Status { status: 429, .. } => Some("throttled"),
            Error::Status { status: 500.., .. } => Some("server_error"),
            Error::Refused { .. } => Some("refused"),
            Error::Status { .. } | Error::Limit { .. } => None,
        }
    }

    /// The limit passed, for a [`Error::Limit`].
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            Error::Limit { limit, .. } => Some(limit),
            _ => None,
        }
    }

    /// The route template of the failed call.
    pub fn endpoint(&self) -> &'static str {
        match self {
            Error::Unauthorized { endpoint }
            | Error::Status { endpoint, .. }
            | Error::Redirect { endpoint, .. }
            | Error::Timeout { endpoint, .. }
            | Error::Transport { endpoint, .. }
            | Error::TooLarge { endpoint, .. }
            | Error::Limit { endpoint, .. }
            | Error::Refused { endpoint, .. }
            | Error::Decode { endpoint, .. } => endpoint,
        }
    }
}
